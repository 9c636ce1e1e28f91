"""Exchange symbol filters (tick size, step size, min notional) and exact rounding.

Pure: built from a Binance ``exchangeInfo`` symbol entry or given directly. Every price or
quantity that leaves the bot passes through here as a ``Decimal``; nothing is rounded silently.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import Any

import msgspec

from models.enums import Side

ZERO = Decimal(0)


class FilterViolation(ValueError):
    """An order that breaks a symbol filter; ``code`` is Binance's error code for it."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg


class SymbolFilters(msgspec.Struct, frozen=True, kw_only=True):
    """The filters of one symbol on one market."""

    symbol: str
    base_asset: str
    quote_asset: str
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    min_notional: Decimal
    price_precision: int
    qty_precision: int

    # -- rounding -----------------------------------------------------------------------------
    def round_price(self, price: Decimal, side: Side | None = None) -> Decimal:
        """Round to the tick: a BUY rounds down, a SELL rounds up (never more aggressive);
        with no side, round half-way down to the nearest tick."""
        ticks = price / self.tick_size
        if side is Side.BUY:
            n = ticks.to_integral_value(rounding=ROUND_FLOOR)
        elif side is Side.SELL:
            n = ticks.to_integral_value(rounding=ROUND_CEILING)
        else:
            n = ticks.to_integral_value()
        return (n * self.tick_size).quantize(self.tick_size)

    def round_qty(self, qty: Decimal, market: bool = False) -> Decimal:
        """Round a quantity down to the (market) step size."""
        step = self.market_step_size if market else self.step_size
        n = (qty / step).to_integral_value(rounding=ROUND_DOWN)
        return (n * step).quantize(step)

    # -- checks -------------------------------------------------------------------------------
    def check(self, price: Decimal | None, qty: Decimal, market: bool = False) -> None:
        """Raise ``FilterViolation`` (Binance code -1013 / -4014 / -4164 shaped) if the order
        breaks a filter. ``price`` is None for market orders (min notional is then not checked
        here; the caller checks it against the fill price)."""
        if price is not None:
            if price <= ZERO:
                raise FilterViolation(-1013, "Filter failure: PRICE_FILTER")
            if price < self.min_price or (self.max_price > ZERO and price > self.max_price):
                raise FilterViolation(-1013, "Filter failure: PRICE_FILTER")
            if price % self.tick_size != ZERO:
                raise FilterViolation(-1013, "Filter failure: PRICE_FILTER")
        step = self.market_step_size if market else self.step_size
        lo = self.market_min_qty if market else self.min_qty
        hi = self.market_max_qty if market else self.max_qty
        if qty <= ZERO or qty < lo or qty > hi or qty % step != ZERO:
            raise FilterViolation(-1013, "Filter failure: LOT_SIZE")
        if price is not None and price * qty < self.min_notional:
            raise FilterViolation(-1013, "Filter failure: NOTIONAL")

    def is_valid(self, price: Decimal | None, qty: Decimal, market: bool = False) -> bool:
        """True when ``check`` would pass."""
        try:
            self.check(price, qty, market)
        except FilterViolation:
            return False
        return True

    # -- exchangeInfo ---------------------------------------------------------------------------
    @classmethod
    def from_exchange_info(cls, sym: dict[str, Any]) -> SymbolFilters:
        """Build from one entry of ``exchangeInfo['symbols']`` (spot or futures shape)."""
        f = {x["filterType"]: x for x in sym.get("filters", [])}
        try:
            pf, ls = f["PRICE_FILTER"], f["LOT_SIZE"]
        except KeyError as e:
            raise ValueError(f"exchangeInfo for {sym.get('symbol')!r} lacks filter {e}") from e
        ms = f.get("MARKET_LOT_SIZE", ls)
        notional = f.get("NOTIONAL") or f.get("MIN_NOTIONAL") or {}
        min_notional = notional.get("minNotional", notional.get("notional", "0"))
        tick = Decimal(pf["tickSize"])
        step = Decimal(ls["stepSize"])
        mstep = Decimal(ms["stepSize"])
        return cls(
            symbol=sym["symbol"],
            base_asset=sym["baseAsset"],
            quote_asset=sym["quoteAsset"],
            tick_size=tick.normalize(),
            min_price=Decimal(pf["minPrice"]),
            max_price=Decimal(pf["maxPrice"]),
            step_size=step.normalize(),
            min_qty=Decimal(ls["minQty"]),
            max_qty=Decimal(ls["maxQty"]),
            market_step_size=(mstep if mstep > ZERO else step).normalize(),
            market_min_qty=Decimal(ms["minQty"]),
            market_max_qty=Decimal(ms["maxQty"]),
            min_notional=Decimal(str(min_notional)),
            price_precision=int(sym.get("pricePrecision", max(0, -tick.normalize().as_tuple().exponent))),
            qty_precision=int(sym.get("quantityPrecision", max(0, -step.normalize().as_tuple().exponent))),
        )
