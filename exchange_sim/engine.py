"""Pure matching engine of the embedded Binance-compatible exchange.

No I/O and no clock reads: every call carries its timestamp (``ts_ms``), and the replayed market
arrives as klines through ``on_bar`` (or single prices through ``set_last_price``). The engine
keeps per-symbol books of *our* resting orders (of every account) and matches them against the
replayed market; our orders never match each other (no self-trade, no market impact).

Fill model
----------
* **Intrabar path.** A bar is walked as straight price segments from the previous last price to
  the open (a *gap*: no trades in between), then O→L→H→C when ``close >= open`` (a bullish
  candle dips first) else O→H→L→C. Events on a segment are handled in the order the path
  reaches their prices; fills are timestamped ``open_time + fraction of path length travelled ×
  (close_time - open_time)`` (gap fills at ``open_time``). The last price follows the path and is
  the close at the end of the bar.
* **Resting limits** are makers and fill at their own limit price when the path trades
  *through* it (strictly below a buy / above a sell); an equal touch fills only with
  ``FillConfig.fill_on_touch``. Within a bar the fills of one symbol (all accounts together) are
  capped at ``max_volume_share × bar volume`` (default 10 %; ``0``/``None`` = uncapped); a capped
  fill rounds down to the step size and is skipped for the bar if that gives 0, leaving the order
  PARTIALLY_FILLED / NEW for later bars.
* **Market orders** fill at once, in full, at the last price moved by ``market_slippage_bps``
  against the taker (buy higher, sell lower) and rounded to the tick in the adverse direction.
  They are not volume-capped (they count against the bar's cap when triggered inside a bar).
* **Limits that cross the last price at placement** (buy above / sell below it; equal counts only
  with ``fill_on_touch``) are takers and fill at once at the last price (their limit or better),
  uncapped. IOC: fill what is possible, expire the rest; FOK: all or nothing (EXPIRED); a
  non-crossing IOC/FOK expires. With uncapped taker fills, "what is possible" is only less than
  the quantity for reduce-only orders.
* **Post-only**: spot LIMIT_MAKER that would take → -2010 "Order would immediately match and
  take."; futures GTX that would take → -5022 (Binance accepts and expires it; rejecting is the
  simplest faithful equivalent).
* **STOP_MARKET / TAKE_PROFIT_MARKET** (futures only) trigger on the last-price path (buy stop /
  sell TP when the price rises to the stop price, sell stop / buy TP when it falls to it; touch
  triggers) and then fill as a market order at the stop price (at the open after a gap) plus
  slippage. A stop that would trigger at placement is rejected (-2021). A triggered non-reduce-only
  stop without enough margin expires.
* **Reduce-only** (futures): rejected with -2022 if the position is flat or on the order's side;
  fills are capped at the position size; a resting reduce-only order is shrunk (AMENDMENT event) when
  the position shrinks below its remaining quantity and expires when the position is flat or flips.
* With no last price known, limits rest and market orders are rejected (-2010 "No market price
  available."); the first price (bar or ``set_last_price``) fills whatever it crosses as a gap.

Fees
----
Maker/taker rates per market (defaults spot 0.1 %/0.1 %, futures 0.02 %/0.05 %). With
``bnb_discount`` spot rates are 25 % off and futures 10 % off, and the fee is still charged in
the quote asset (no BNB balance is needed or used): spot buys then reserve the fee at the taker
rate in the order's quote lock. Without the discount spot fees are charged in the asset received
(base for buys, quote for sells), as on Binance. Commissions and funding are rounded down / to
8 decimals; realized PnL is rounded half-even to 8 decimals. Amounts booked are exactly the
amounts recorded, so money is conserved exactly.

Spot accounts
-------------
Per-asset free/locked balances. A LIMIT/LIMIT_MAKER buy locks ``price × qty`` quote (+ fee reserve
with BNB discount), a sell locks ``qty`` base; fills consume the lock, cancel/expire releases the
rest. Insufficient free balance → -2010 "Account has insufficient balance for requested action.".

Futures accounts (USDT-M, one-way, USDT margin)
-----------------------------------------------
Per-symbol leverage (1..125, default 20) and margin type (CROSSED default; ISOLATED is stored and
reported but margined as cross). Positions carry a signed quantity and an average entry price
(weighted on increase; realized PnL on reduce; a flip re-opens at the fill price). Mark price is
set from outside (``set_mark_price``) or else is the last price (then it moves along the bar
path). Initial margin = |notional at mark| / leverage; open orders add the margin of the part of
their quantity that would increase the position (max of the buy and sell sides). A new order whose
margin exceeds the available balance (wallet + unrealized PnL − position IM − order IM) is
rejected with -2019. Funding ``apply_funding(symbol, rate, ts)`` books
``−qty × mark × rate`` (longs pay a positive rate) as FUNDING_FEE income. Income records:
TRANSFER (deposits), REALIZED_PNL, COMMISSION, FUNDING_FEE, INSURANCE_CLEAR.
Liquidation (cross): when margin balance ≤ maintenance margin (bracket tables in
``exchange_sim.specs``), the account's orders on the symbol are cancelled and the position is
closed by a MARKET order ``autoclose-<orderId>`` without commission at the mark price (when the
mark follows the path: at the path's liquidation price, or at the open after a gap; rounded to
the tick against the account); cross liquidation closes all positions of the account; then a
clearance fee of 1.25 % of the closed notional, capped at the remaining wallet, is booked as
INSURANCE_CLEAR, and a negative wallet without other positions is reset to 0 by the insurance fund
(positive INSURANCE_CLEAR). An ``AccountEvent`` with reason "LIQUIDATION" is emitted.

Not modelled: order-book depth and queue position, self-trade prevention, hedge mode,
isolated-margin accounting, closePosition / trailing / STOP / TAKE_PROFIT limit orders, bracket
limits on leverage vs position size, price bands (PERCENT_PRICE), rate limits (server side),
spot stop-loss orders, BNB balances.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal
from typing import Any

from exchange_sim.accounts import (
    FuturesAccount,
    FuturesAccountView,
    IncomeRecord,
    OrderAgg,
    PositionView,
    SpotAccount,
)
from exchange_sim.intrabar import path_points
from exchange_sim.specs import (
    bracket_for,
    default_specs,
    exchange_info_symbol,
    maintenance_brackets,
)
from models.enums import Market, OrderType, Side, TimeInForce
from models.filters import FilterViolation, SymbolFilters

__all__ = [
    "AccountEvent", "CancelReplaceError", "Engine", "ExchangeError", "FeeSchedule", "Fill",
    "FillConfig", "FuturesAccountView", "IllegalTransition", "IncomeRecord", "Order",
    "OrderEvent", "PositionView",
]

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10000)
Q8 = Decimal("1E-8")
INF = float("inf")
LIQUIDATION_FEE_RATE = Decimal("0.0125")
MAX_LEVERAGE = 125

_LIMITS = (OrderType.LIMIT, OrderType.LIMIT_MAKER)
_STOPS = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)


class ExchangeError(Exception):
    """An order/request rejected with Binance's own error code and message."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


class CancelReplaceError(ExchangeError):
    """Spot cancel-replace that failed in part or in full (-2021 / -2022).

    Carries what happened: ``cancel_result`` / ``new_order_result`` are "SUCCESS", "FAILURE" or
    "NOT_ATTEMPTED"; ``cancel_error`` / ``new_order_error`` the underlying errors; ``cancelled``
    and ``new_order`` the orders; ``events`` the events of the part that did happen."""

    def __init__(self, code: int, msg: str, *, cancel_result: str, new_order_result: str,
                 cancel_error: ExchangeError | None, new_order_error: ExchangeError | None,
                 cancelled: Order | None, new_order: Order | None,
                 events: list[OrderEvent | AccountEvent]) -> None:
        super().__init__(code, msg, 409 if code == -2021 else 400)
        self.cancel_result = cancel_result
        self.new_order_result = new_order_result
        self.cancel_error = cancel_error
        self.new_order_error = new_order_error
        self.cancelled = cancelled
        self.new_order = new_order
        self.events = events


class IllegalTransition(RuntimeError):
    """An order status change the state machine does not allow (an engine bug)."""


# Order status state machine.
TRANSITIONS: dict[str, frozenset[str]] = {
    "NEW": frozenset({"PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"}),
    "PARTIALLY_FILLED": frozenset({"PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"}),
    "FILLED": frozenset(),
    "CANCELED": frozenset(),
    "EXPIRED": frozenset(),
    "REJECTED": frozenset(),
}
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(frozen=True)
class FeeSchedule:
    """Maker/taker commission rates (fractions, e.g. 0.001 = 0.1 %)."""

    maker: Decimal
    taker: Decimal
    bnb_discount: bool = False

    @classmethod
    def default(cls, market: Market, bnb_discount: bool = False) -> FeeSchedule:
        """Binance's base VIP0 rates for ``market``."""
        if market is Market.SPOT:
            return cls(Decimal("0.001"), Decimal("0.001"), bnb_discount)
        return cls(Decimal("0.0002"), Decimal("0.0005"), bnb_discount)

    def rates(self, market: Market) -> tuple[Decimal, Decimal]:
        """Effective (maker, taker) after the BNB discount (spot 25 % off, futures 10 % off)."""
        if not self.bnb_discount:
            return self.maker, self.taker
        k = Decimal("0.75") if market is Market.SPOT else Decimal("0.9")
        return self.maker * k, self.taker * k


@dataclass(frozen=True)
class FillConfig:
    """Fill-model knobs (see the module docstring)."""

    fill_on_touch: bool = False
    max_volume_share: float | None = 0.1
    market_slippage_bps: Decimal = Decimal("1")


@dataclass
class Order:
    """The engine's order record; attribute names carry Binance's field meanings."""

    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce | None
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cum_quote: Decimal
    status: str
    stop_price: Decimal
    reduce_only: bool
    time_ms: int
    update_ms: int
    orig_quote_qty: Decimal = ZERO
    # Spot: amount still locked for this order (quote for buys incl. fee reserve, base for sells).
    locked: Decimal = field(default=ZERO, repr=False)

    @property
    def avg_price(self) -> Decimal:
        """Average fill price (0 before any fill)."""
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        """NEW or PARTIALLY_FILLED."""
        return self.status in OPEN_STATUSES

    def to_state(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "order_id": self.order_id, "client_order_id": self.client_order_id,
            "account": self.account, "symbol": self.symbol, "side": self.side.value,
            "type": self.type.value, "tif": self.tif.value if self.tif else None,
            "price": str(self.price), "orig_qty": str(self.orig_qty),
            "executed_qty": str(self.executed_qty), "cum_quote": str(self.cum_quote),
            "status": self.status, "stop_price": str(self.stop_price),
            "reduce_only": self.reduce_only, "time_ms": self.time_ms, "update_ms": self.update_ms,
            "orig_quote_qty": str(self.orig_quote_qty), "locked": str(self.locked),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Order:
        """Inverse of ``to_state``."""
        return cls(
            int(s["order_id"]), s["client_order_id"], s["account"], s["symbol"], Side(s["side"]),
            OrderType(s["type"]), TimeInForce(s["tif"]) if s["tif"] else None,
            Decimal(s["price"]), Decimal(s["orig_qty"]), Decimal(s["executed_qty"]),
            Decimal(s["cum_quote"]), s["status"], Decimal(s["stop_price"]),
            bool(s["reduce_only"]), int(s["time_ms"]), int(s["update_ms"]),
            Decimal(s["orig_quote_qty"]), Decimal(s["locked"]),
        )


@dataclass(frozen=True)
class Fill:
    """One execution of one of our orders."""

    trade_id: int
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    realized_pnl: Decimal
    time_ms: int

    def to_state(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "trade_id": self.trade_id, "order_id": self.order_id,
            "client_order_id": self.client_order_id, "account": self.account,
            "symbol": self.symbol, "side": self.side.value, "price": str(self.price),
            "qty": str(self.qty), "quote_qty": str(self.quote_qty),
            "commission": str(self.commission), "commission_asset": self.commission_asset,
            "maker": self.maker, "realized_pnl": str(self.realized_pnl), "time_ms": self.time_ms,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Fill:
        """Inverse of ``to_state``."""
        return cls(
            int(s["trade_id"]), int(s["order_id"]), s["client_order_id"], s["account"],
            s["symbol"], Side(s["side"]), Decimal(s["price"]), Decimal(s["qty"]),
            Decimal(s["quote_qty"]), Decimal(s["commission"]), s["commission_asset"],
            bool(s["maker"]), Decimal(s["realized_pnl"]), int(s["time_ms"]),
        )


@dataclass(frozen=True)
class OrderEvent:
    """An order update (executionReport / ORDER_TRADE_UPDATE); ``order`` is a snapshot."""

    order: Order
    exec_type: str
    fill: Fill | None
    time_ms: int


@dataclass(frozen=True)
class AccountEvent:
    """A balance/position update (outboundAccountPosition / ACCOUNT_UPDATE).

    Spot: ``balances`` = {asset: (free, locked)} of the assets touched, ``positions`` empty.
    Futures: ``balances`` = {"USDT": (wallet balance, cross wallet balance[, balance change])},
    ``positions`` the positions touched (the balance change is set on FUNDING_FEE)."""

    account: str
    reason: str
    balances: dict[str, tuple[Decimal, ...]]
    positions: list[PositionView]
    time_ms: int


Event = OrderEvent | AccountEvent


class _Book:
    """Our resting orders on one symbol plus the cached trigger bounds of the fast path."""

    __slots__ = ("f", "symbol", "orders", "lo", "hi", "stale", "last_f", "last_d", "mark_ext",
                 "liq_epoch", "pos_accounts", "n_reduce", "down", "up")

    def __init__(self, f: SymbolFilters) -> None:
        self.f = f
        self.symbol = f.symbol
        self.orders: dict[int, Order] = {}
        self.lo = -INF  # a bar with low > lo and high < hi triggers nothing
        self.hi = INF
        self.stale = False
        self.last_f: float | None = None
        self.last_d: Decimal | None = None
        self.mark_ext: Decimal | None = None
        self.liq_epoch = -1
        self.pos_accounts: set[str] = set()
        self.n_reduce = 0
        # (level, order) of the orders a falling / rising price reaches (rebuilt by _refresh)
        self.down: list[tuple[float, Order]] = []
        self.up: list[tuple[float, Order]] = []

    def last(self) -> Decimal | None:
        """Last price as a Decimal on the tick grid (converted lazily from the bar close)."""
        d = self.last_d
        if d is None and self.last_f is not None:
            d = self.last_d = _to_tick(Decimal(repr(self.last_f)), self.f.tick_size)
        return d


class _BarState:
    __slots__ = ("cap", "skip")

    def __init__(self, cap: Decimal | None) -> None:
        self.cap = cap
        self.skip: set[int] = set()


def _to_tick(x: Decimal, tick: Decimal) -> Decimal:
    if x % tick == 0:
        return x
    return (x / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


def _digits(x: Decimal) -> int:
    e = x.normalize().as_tuple().exponent
    return max(0, -e) if isinstance(e, int) else 0


class Engine:
    """The matching engine of one market (spot or USDT-M futures); see the module docstring."""

    def __init__(self, market: Market, specs: dict[str, SymbolFilters] | None = None,
                 fees: FeeSchedule | None = None, fill: FillConfig | None = None) -> None:
        self.market = market
        self.futures = market is Market.FUTURES
        self.specs: dict[str, SymbolFilters] = dict(
            specs if specs is not None else default_specs(market))
        self.fees = fees or FeeSchedule.default(market)
        self.fill = fill or FillConfig()
        self._maker, self._taker = self.fees.rates(market)
        self._reserve_rate = max(self._maker, self._taker)
        self._fee_in_quote = (not self.futures) and self.fees.bnb_discount
        share = self.fill.max_volume_share
        self._share = Decimal(repr(float(share))) if share else None
        self._slip = Decimal(self.fill.market_slippage_bps) / BPS
        self._touch = self.fill.fill_on_touch
        self._books: dict[str, _Book] = {s: _Book(f) for s, f in self.specs.items()}
        self._accounts: dict[str, SpotAccount | FuturesAccount] = {}
        self._orders: dict[int, Order] = {}
        self._acct_orders: dict[tuple[str, str], list[int]] = {}
        self._open_coid: dict[tuple[str, str], int] = {}
        self._coid_any: dict[tuple[str, str], int] = {}
        self._fills: dict[tuple[str, str], list[Fill]] = {}
        self._income: dict[str, list[IncomeRecord]] = {}
        self._pos_syms: dict[str, set[str]] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._next_tran_id = 1
        self._epoch = 0  # bumped whenever a futures account's margin state changes
        self._multi = 0  # futures accounts with positions on >= 2 symbols

    # ------------------------------------------------------------------------------------------
    # accounts
    # ------------------------------------------------------------------------------------------
    def create_account(self, account: str, balances: dict[str, Decimal]) -> None:
        """Open an account; futures: ``balances["USDT"]`` is the wallet balance."""
        if account in self._accounts:
            raise ValueError(f"account {account!r} exists")
        if self.futures:
            bad = set(balances) - {"USDT"}
            if bad:
                raise ValueError(f"futures accounts hold USDT only, got {sorted(bad)}")
            self._accounts[account] = FuturesAccount(account, Decimal(balances.get("USDT", 0)))
            self._pos_syms[account] = set()
            self._income[account] = []
        else:
            self._accounts[account] = SpotAccount(
                account, {a: Decimal(v) for a, v in balances.items()}, {a: ZERO for a in balances})

    def deposit(self, account: str, asset: str, amount: Decimal) -> None:
        """Credit ``amount`` of ``asset`` (futures: USDT into the wallet, a TRANSFER income)."""
        acct = self._acct(account)
        amount = Decimal(amount)
        if isinstance(acct, FuturesAccount):
            if asset != "USDT":
                raise ValueError("futures accounts hold USDT only")
            acct.wallet += amount
            self._add_income(acct, "", "TRANSFER", amount, 0, "deposit")
            self._epoch += 1
        else:
            acct.free[asset] = acct.free.get(asset, ZERO) + amount
            acct.locked.setdefault(asset, ZERO)

    def _acct(self, account: str) -> SpotAccount | FuturesAccount:
        try:
            return self._accounts[account]
        except KeyError:
            raise ExchangeError(-2015, "Invalid API-key, IP, or permissions for action.",
                                401) from None

    def _book(self, symbol: str) -> _Book:
        try:
            return self._books[symbol]
        except KeyError:
            raise ExchangeError(-1121, "Invalid symbol.") from None

    def _facct(self, account: str) -> FuturesAccount:
        a = self._acct(account)
        if not isinstance(a, FuturesAccount):
            raise ExchangeError(-1000, "This request is only available on the futures market.")
        return a

    # ------------------------------------------------------------------------------------------
    # prices
    # ------------------------------------------------------------------------------------------
    def last_price(self, symbol: str) -> Decimal | None:
        """Last traded price of the replayed market (None before the first price)."""
        return self._book(symbol).last()

    def mark_price(self, symbol: str) -> Decimal | None:
        """Mark price: the one set from outside, else the last price."""
        b = self._book(symbol)
        return b.mark_ext if b.mark_ext is not None else b.last()

    def _mark(self, book: _Book) -> Decimal | None:
        return book.mark_ext if book.mark_ext is not None else book.last()

    def _set_last(self, book: _Book, price: Decimal) -> None:
        book.last_d = price
        book.last_f = float(price)
        if self._multi and book.pos_accounts and book.mark_ext is None:
            self._epoch += 1

    def _taker_price(self, book: _Book, side: Side, base: Decimal) -> Decimal:
        """``base`` moved by the slippage against the taker, on the tick grid (adverse)."""
        tick = book.f.tick_size
        if side is Side.BUY:
            x = base * (ONE + self._slip)
            n = (x / tick).to_integral_value(rounding=ROUND_CEILING)
        else:
            x = base * (ONE - self._slip)
            n = (x / tick).to_integral_value(rounding=ROUND_FLOOR)
        return (n * tick).quantize(tick)

    def _crosses(self, book: _Book, side: Side, price: Decimal) -> bool:
        last = book.last()
        if last is None:
            return False
        if side is Side.BUY:
            return price > last or (self._touch and price == last)
        return price < last or (self._touch and price == last)

    # ------------------------------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------------------------------
    def _prepare(self, acct: SpotAccount | FuturesAccount, book: _Book, side: Side,
                 otype: OrderType, qty: Decimal | None, quote_qty: Decimal | None,
                 price: Decimal | None, tif: TimeInForce | None, coid: str | None,
                 stop_price: Decimal | None, reduce_only: bool, ts: int
                 ) -> tuple[Order, Decimal | None, Decimal, bool]:
        """Check a new order without changing anything.

        Returns (order without id, market fill price, spot lock amount, crosses-at-placement)."""
        side = Side(side)
        otype = OrderType(otype)
        tif = TimeInForce(tif) if tif is not None else None
        qty = Decimal(qty) if qty is not None else None
        price = Decimal(price) if price is not None else None
        stop_price = Decimal(stop_price) if stop_price is not None else None
        if coid is not None and not (0 < len(coid) <= 36):
            raise ExchangeError(-1100 if not self.futures else -4015,
                                "Client order id is not valid.")
        if self.futures:
            assert isinstance(acct, FuturesAccount)
            px, crossing, qty = self._prepare_futures(acct, book, side, otype, qty, quote_qty,
                                                      price, tif, coid, stop_price, reduce_only)
            lock = ZERO
        else:
            assert isinstance(acct, SpotAccount)
            px, lock, crossing, qty = self._prepare_spot(acct, book, side, otype, qty, quote_qty,
                                                         price, tif, coid, stop_price, reduce_only)
        o = Order(
            order_id=0, client_order_id=coid or "", account=acct.name, symbol=book.symbol,
            side=side, type=otype, tif=tif, price=price if price is not None else ZERO,
            orig_qty=qty, executed_qty=ZERO, cum_quote=ZERO, status="NEW",
            stop_price=stop_price if stop_price is not None else ZERO, reduce_only=reduce_only,
            time_ms=ts, update_ms=ts,
            orig_quote_qty=Decimal(quote_qty) if quote_qty is not None else ZERO,
        )
        return o, px, lock, crossing

    def _prepare_spot(self, acct: SpotAccount, book: _Book, side: Side, otype: OrderType,
                      qty: Decimal | None, quote_qty: Decimal | None, price: Decimal | None,
                      tif: TimeInForce | None, coid: str | None, stop_price: Decimal | None,
                      reduce_only: bool) -> tuple[Decimal | None, Decimal, bool, Decimal]:
        f = book.f
        if otype not in (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET):
            raise ExchangeError(-1116, "Invalid orderType.")
        if reduce_only:
            raise ExchangeError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if stop_price is not None:
            raise ExchangeError(-1106, "Parameter 'stopPrice' sent when not required.")
        px: Decimal | None = None
        crossing = False
        if otype is OrderType.MARKET:
            if price is not None:
                raise ExchangeError(-1106, "Parameter 'price' sent when not required.")
            if tif is not None:
                raise ExchangeError(-1106, "Parameter 'timeInForce' sent when not required.")
            if (qty is None) == (quote_qty is None):
                raise ExchangeError(
                    -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                    "empty/null!" if qty is None else
                    "Parameter 'quantity' and 'quoteOrderQty' cannot both be sent.")
            last = book.last()
            if last is None:
                raise ExchangeError(-2010, "No market price available.")
            px = self._taker_price(book, side, last)
            if quote_qty is not None:
                quote_qty = Decimal(quote_qty)
                if quote_qty <= 0:
                    raise ExchangeError(-1013, "Filter failure: NOTIONAL")
                # a quote-sized buy must also cover a quote-asset fee (BNB mode)
                div = px * (ONE + self._taker) if (self._fee_in_quote and side is Side.BUY) \
                    else px
                qty = f.round_qty(quote_qty / div, market=True)
            assert qty is not None
            try:
                f.check(None, qty, market=True)
            except FilterViolation as e:
                raise ExchangeError(e.code, e.msg) from None
            if qty * px < f.min_notional:
                raise ExchangeError(-1013, "Filter failure: NOTIONAL")
            lock = ZERO
        else:
            if price is None:
                raise ExchangeError(-1102, "Mandatory parameter 'price' was not sent, was "
                                    "empty/null, or malformed.")
            if qty is None:
                raise ExchangeError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                                    "empty/null, or malformed.")
            if quote_qty is not None:
                raise ExchangeError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
            if otype is OrderType.LIMIT:
                if tif is None:
                    raise ExchangeError(-1102, "Mandatory parameter 'timeInForce' was not sent, "
                                        "was empty/null, or malformed.")
                if tif is TimeInForce.GTX:
                    raise ExchangeError(-1115, "Invalid timeInForce.")
            elif tif is not None:
                raise ExchangeError(-1106, "Parameter 'timeInForce' sent when not required.")
            try:
                f.check(price, qty)
            except FilterViolation as e:
                raise ExchangeError(e.code, e.msg) from None
            crossing = self._crosses(book, side, price)
            if otype is OrderType.LIMIT_MAKER and crossing:
                raise ExchangeError(-2010, "Order would immediately match and take.")
            if side is Side.BUY:
                lock = price * qty
                if self._fee_in_quote:
                    lock += (lock * self._reserve_rate).quantize(Q8, rounding=ROUND_CEILING)
            else:
                lock = qty
        if coid and (acct.name, coid) in self._open_coid:
            raise ExchangeError(-2010, "Duplicate order sent.")
        if side is Side.BUY:
            need = lock if otype is not OrderType.MARKET else qty * px  # type: ignore[operator]
            if otype is OrderType.MARKET and self._fee_in_quote:
                need += (need * self._taker).quantize(Q8, rounding=ROUND_DOWN)
            have = acct.free.get(f.quote_asset, ZERO)
        else:
            need = qty
            have = acct.free.get(f.base_asset, ZERO)
        if need > have:
            raise ExchangeError(-2010, "Account has insufficient balance for requested action.")
        return px, lock, crossing, qty

    def _check_fut_price(self, f: SymbolFilters, p: Decimal) -> None:
        if p <= 0:
            raise ExchangeError(-4001, "Price less than 0.")
        if _digits(p) > f.price_precision:
            raise ExchangeError(-1111, "Precision is over the maximum defined for this asset.")
        if p < f.min_price:
            raise ExchangeError(-4013, "Price less than min price.")
        if f.max_price > 0 and p > f.max_price:
            raise ExchangeError(-4002, "Price greater than max price.")
        if p % f.tick_size:
            raise ExchangeError(-4014, "Price not increased by tick size.")

    def _check_fut_qty(self, f: SymbolFilters, q: Decimal, market: bool) -> None:
        if q <= 0:
            raise ExchangeError(-4003, "Quantity less than or equal to zero.")
        if _digits(q) > f.qty_precision:
            raise ExchangeError(-1111, "Precision is over the maximum defined for this asset.")
        step = f.market_step_size if market else f.step_size
        if q < (f.market_min_qty if market else f.min_qty):
            raise ExchangeError(-4004, "Quantity less than min quantity.")
        if q > (f.market_max_qty if market else f.max_qty):
            raise ExchangeError(-4005, "Quantity greater than max quantity.")
        if q % step:
            raise ExchangeError(-4023, "Quantity not increased by step size.")

    def _prepare_futures(self, acct: FuturesAccount, book: _Book, side: Side, otype: OrderType,
                         qty: Decimal | None, quote_qty: Decimal | None, price: Decimal | None,
                         tif: TimeInForce | None, coid: str | None, stop_price: Decimal | None,
                         reduce_only: bool) -> tuple[Decimal | None, bool, Decimal]:
        f = book.f
        if otype not in (OrderType.LIMIT, OrderType.MARKET, *_STOPS):
            raise ExchangeError(-1116, "Invalid orderType.")
        if quote_qty is not None:
            raise ExchangeError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if qty is None:
            raise ExchangeError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                                "empty/null, or malformed.")
        px: Decimal | None = None
        crossing = False
        last = book.last()
        if otype is OrderType.LIMIT:
            if price is None:
                raise ExchangeError(-1102, "Mandatory parameter 'price' was not sent, was "
                                    "empty/null, or malformed.")
            if tif is None:
                raise ExchangeError(-1102, "Mandatory parameter 'timeInForce' was not sent, was "
                                    "empty/null, or malformed.")
            if stop_price is not None:
                raise ExchangeError(-1106, "Parameter 'stopPrice' sent when not required.")
            self._check_fut_price(f, price)
            self._check_fut_qty(f, qty, False)
            notional = price * qty
        else:
            if price is not None:
                raise ExchangeError(-1106, "Parameter 'price' sent when not required.")
            if tif is not None:
                raise ExchangeError(-1106, "Parameter 'timeInForce' sent when not required.")
            self._check_fut_qty(f, qty, True)
            if otype is OrderType.MARKET:
                if stop_price is not None:
                    raise ExchangeError(-1106, "Parameter 'stopPrice' sent when not required.")
                if last is None:
                    raise ExchangeError(-2010, "No market price available.")
                px = self._taker_price(book, side, last)
                notional = px * qty
            else:
                if stop_price is None:
                    raise ExchangeError(-1102, "Mandatory parameter 'stopPrice' was not sent, "
                                        "was empty/null, or malformed.")
                self._check_fut_price(f, stop_price)
                notional = stop_price * qty
        if notional < f.min_notional and not reduce_only:
            raise ExchangeError(-4164, f"Order's notional must be no smaller than "
                                f"{format(f.min_notional.normalize(), 'f')} (unless you choose "
                                "reduce only).")
        if coid and (acct.name, coid) in self._open_coid:
            raise ExchangeError(-4116, "ClientOrderId is duplicated.")
        pos = acct.peek(book.symbol)
        if reduce_only and (pos.qty == 0 or (pos.qty > 0) == (side is Side.BUY)):
            raise ExchangeError(-2022, "ReduceOnly Order is rejected.")
        if otype in _STOPS and last is not None:
            s = stop_price
            up = (otype is OrderType.STOP_MARKET) == (side is Side.BUY)
            if (up and last >= s) or (not up and last <= s):  # type: ignore[operator]
                raise ExchangeError(-2021, "Order would immediately trigger.")
        if otype is OrderType.LIMIT:
            crossing = self._crosses(book, side, price)  # type: ignore[arg-type]
            if tif is TimeInForce.GTX and crossing:
                raise ExchangeError(-5022, "Due to the order could not be executed as maker, the "
                                    "Post Only order will be rejected.")
        if not reduce_only and otype is not OrderType.STOP_MARKET \
                and otype is not OrderType.TAKE_PROFIT_MARKET:
            if otype is OrderType.MARKET or crossing:
                fill_px = px if px is not None else last
                need = self._increase_qty(pos.qty, side, qty) * fill_px / pos.leverage
            else:
                need = self._order_im_delta(acct, book.symbol, side, qty, price)  # type: ignore
            if need > 0 and need > self._available(acct):
                raise ExchangeError(-2019, "Margin is insufficient.")
        return px, crossing, qty

    @staticmethod
    def _increase_qty(pos_qty: Decimal, side: Side, qty: Decimal) -> Decimal:
        """Part of ``qty`` that would increase the position (the rest reduces it)."""
        if pos_qty == 0 or (pos_qty > 0) == (side is Side.BUY):
            return qty
        return max(ZERO, qty - abs(pos_qty))

    @staticmethod
    def _agg_im(pos_qty: Decimal, agg: OrderAgg, lev: int) -> Decimal:
        buy = sell = ZERO
        if agg.buy_qty > 0:
            inc = agg.buy_qty - max(-pos_qty, ZERO)
            if inc > 0:
                buy = agg.buy_notional * inc / agg.buy_qty
        if agg.sell_qty > 0:
            inc = agg.sell_qty - max(pos_qty, ZERO)
            if inc > 0:
                sell = agg.sell_notional * inc / agg.sell_qty
        return max(buy, sell) / lev

    def _order_im_delta(self, acct: FuturesAccount, symbol: str, side: Side, qty: Decimal,
                        price: Decimal) -> Decimal:
        pos = acct.peek(symbol)
        agg = acct.peek_agg(symbol)
        before = self._agg_im(pos.qty, agg, pos.leverage)
        after_agg = OrderAgg(agg.buy_qty, agg.buy_notional, agg.sell_qty, agg.sell_notional)
        after_agg.add(side.sign, qty, price)
        return self._agg_im(pos.qty, after_agg, pos.leverage) - before

    # ------------------------------------------------------------------------------------------
    # margin arithmetic (futures)
    # ------------------------------------------------------------------------------------------
    def _pos_mark(self, symbol: str, entry: Decimal) -> Decimal:
        m = self._mark(self._books[symbol])
        return m if m is not None else entry

    @staticmethod
    def _maint(symbol: str, notional: Decimal) -> Decimal:
        b = bracket_for(symbol, notional)
        return notional * b.mmr - b.cum

    def _totals(self, acct: FuturesAccount) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(unrealized PnL, position IM, open-order IM, maintenance margin)."""
        upnl = pim = oim = mm = ZERO
        for sym in self._pos_syms[acct.name]:
            p = acct.positions[sym]
            m = self._pos_mark(sym, p.entry_price)
            upnl += p.qty * (m - p.entry_price)
            notional = abs(p.qty) * m
            pim += notional / p.leverage
            mm += self._maint(sym, notional)
        for sym, agg in acct.orders.items():
            if agg.buy_qty or agg.sell_qty:
                p = acct.peek(sym)
                oim += self._agg_im(p.qty, agg, p.leverage)
        return upnl, pim, oim, mm

    def _available(self, acct: FuturesAccount) -> Decimal:
        upnl, pim, oim, _ = self._totals(acct)
        return acct.wallet + upnl - pim - oim

    def _margin_state(self, acct: FuturesAccount) -> tuple[Decimal, Decimal]:
        """(margin balance, maintenance margin)."""
        upnl = mm = ZERO
        for sym in self._pos_syms[acct.name]:
            p = acct.positions[sym]
            m = self._pos_mark(sym, p.entry_price)
            upnl += p.qty * (m - p.entry_price)
            mm += self._maint(sym, abs(p.qty) * m)
        return acct.wallet + upnl, mm

    def _liq_price(self, acct: FuturesAccount, symbol: str) -> Decimal | None:
        """Mark price of ``symbol`` at which margin balance == maintenance margin (cross,
        other symbols' marks fixed); None when the position cannot be liquidated."""
        p = acct.positions.get(symbol)
        if p is None or not p.qty:
            return None
        w = acct.wallet
        m_other = ZERO
        for sym in self._pos_syms[acct.name]:
            if sym == symbol:
                continue
            o = acct.positions[sym]
            m = self._pos_mark(sym, o.entry_price)
            w += o.qty * (m - o.entry_price)
            m_other += self._maint(sym, abs(o.qty) * m)
        q = p.qty
        aq = abs(q)
        for b in maintenance_brackets(symbol):
            den = q - aq * b.mmr
            if not den:
                continue
            m = (m_other - b.cum - w + q * p.entry_price) / den
            if m <= 0:
                continue
            n = aq * m
            if b.floor <= n < b.cap:
                return m
        return None

    # ------------------------------------------------------------------------------------------
    # order book bookkeeping
    # ------------------------------------------------------------------------------------------
    def _register(self, o: Order) -> None:
        self._orders[o.order_id] = o
        self._acct_orders.setdefault((o.account, o.symbol), []).append(o.order_id)
        self._coid_any[(o.account, o.client_order_id)] = o.order_id
        self._open_coid[(o.account, o.client_order_id)] = o.order_id

    def _rest(self, book: _Book, o: Order) -> None:
        book.orders[o.order_id] = o
        book.stale = True
        if o.reduce_only:
            book.n_reduce += 1
        elif self.futures and o.type is OrderType.LIMIT:
            acct = self._accounts[o.account]
            assert isinstance(acct, FuturesAccount)
            acct.agg(o.symbol).add(o.side.sign, o.remaining, o.price)

    def _unrest(self, book: _Book, o: Order) -> None:
        if book.orders.pop(o.order_id, None) is None:
            return
        book.stale = True
        if o.reduce_only:
            book.n_reduce -= 1
        elif self.futures and o.type is OrderType.LIMIT:
            acct = self._accounts[o.account]
            assert isinstance(acct, FuturesAccount)
            acct.agg(o.symbol).add(o.side.sign, -o.remaining, o.price)

    @staticmethod
    def _transition(o: Order, status: str) -> None:
        if status not in TRANSITIONS[o.status]:
            raise IllegalTransition(f"order {o.order_id}: {o.status} -> {status}")
        o.status = status

    def _finish(self, book: _Book, o: Order, status: str, ts: int) -> None:
        """Move ``o`` to a terminal status and release everything it held."""
        self._unrest(book, o)
        self._transition(o, status)
        o.update_ms = ts
        self._open_coid.pop((o.account, o.client_order_id), None)
        if o.locked:
            acct = self._accounts[o.account]
            assert isinstance(acct, SpotAccount)
            asset = book.f.quote_asset if o.side is Side.BUY else book.f.base_asset
            acct.locked[asset] -= o.locked
            acct.free[asset] = acct.free.get(asset, ZERO) + o.locked
            o.locked = ZERO

    def _refresh(self, book: _Book) -> None:
        """Recompute the fast-path trigger bounds of ``book``."""
        lo, hi = -INF, INF
        down: list[tuple[float, Order]] = []
        up: list[tuple[float, Order]] = []
        for o in book.orders.values():
            t = o.type
            if t is OrderType.LIMIT or t is OrderType.LIMIT_MAKER:
                x = float(o.price)
                if o.side is Side.BUY:
                    lo = max(lo, x)
                    down.append((x, o))
                else:
                    hi = min(hi, x)
                    up.append((x, o))
            else:
                x = float(o.stop_price)
                if (t is OrderType.STOP_MARKET) == (o.side is Side.BUY):
                    hi = min(hi, x)
                    up.append((x, o))
                else:
                    lo = max(lo, x)
                    down.append((x, o))
        book.down, book.up = down, up
        if book.pos_accounts and book.mark_ext is None:
            for name in book.pos_accounts:
                acct = self._accounts[name]
                assert isinstance(acct, FuturesAccount)
                lp = self._liq_price(acct, book.symbol)
                if lp is None:
                    continue
                x = float(lp)
                if acct.positions[book.symbol].qty > 0:
                    lo = max(lo, x * (1 + 1e-9))
                else:
                    hi = min(hi, x * (1 - 1e-9))
        book.lo, book.hi = lo, hi
        book.stale = False
        book.liq_epoch = self._epoch

    # ------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _oev(o: Order, exec_type: str, fill: Fill | None, ts: int) -> OrderEvent:
        snap = object.__new__(Order)
        snap.__dict__.update(o.__dict__)  # a shallow copy, ~3x faster than copy.copy
        return OrderEvent(snap, exec_type, fill, ts)

    def _aev(self, acct: SpotAccount | FuturesAccount, book: _Book, reason: str,
             ts: int) -> AccountEvent:
        if isinstance(acct, SpotAccount):
            bal = {a: (acct.free.get(a, ZERO), acct.locked.get(a, ZERO))
                   for a in (book.f.base_asset, book.f.quote_asset)}
            return AccountEvent(acct.name, reason, bal, [], ts)
        return AccountEvent(acct.name, reason, {"USDT": (acct.wallet, acct.wallet)},
                            [self._position_view(acct, book.symbol)], ts)

    def _add_income(self, acct: FuturesAccount, symbol: str, itype: str, amount: Decimal,
                    ts: int, info: str = "", trade_id: str = "") -> None:
        self._income[acct.name].append(IncomeRecord(
            self._next_tran_id, symbol, itype, amount, "USDT", ts, info, trade_id))
        self._next_tran_id += 1

    # ------------------------------------------------------------------------------------------
    # fills
    # ------------------------------------------------------------------------------------------
    def _fill(self, acct: SpotAccount | FuturesAccount, book: _Book, o: Order, qty: Decimal,
              px: Decimal, maker: bool, ts: int, events: list[Event],
              liquidation: bool = False) -> Fill:
        """Execute ``qty`` (≤ remaining, on the step grid) of ``o`` at ``px``."""
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        if isinstance(acct, SpotAccount):
            commission, asset = self._settle_spot(acct, book, o, qty, px, maker)
            rpnl = ZERO
        else:
            rpnl, commission = self._settle_futures(acct, book, o.side, qty, px, maker, ts,
                                                    trade_id, liquidation)
            asset = "USDT"
        resting = o.order_id in book.orders
        if resting and self.futures and o.type is OrderType.LIMIT and not o.reduce_only:
            assert isinstance(acct, FuturesAccount)
            acct.agg(o.symbol).add(o.side.sign, -qty, o.price)
        o.executed_qty += qty
        o.cum_quote += qty * px
        o.update_ms = ts
        fill = Fill(trade_id, o.order_id, o.client_order_id, o.account, o.symbol, o.side, px, qty,
                    qty * px, commission, asset, maker, rpnl, ts)
        self._fills.setdefault((o.account, o.symbol), []).append(fill)
        if o.executed_qty == o.orig_qty:
            self._finish(book, o, "FILLED", ts)
        else:
            self._transition(o, "PARTIALLY_FILLED")
        events.append(self._oev(o, "TRADE", fill, ts))
        events.append(self._aev(acct, book, "ORDER", ts))
        if isinstance(acct, FuturesAccount) and book.n_reduce:
            self._adjust_reduce_only(acct, book, ts, events)
        return fill

    def _settle_spot(self, acct: SpotAccount, book: _Book, o: Order, qty: Decimal, px: Decimal,
                     maker: bool) -> tuple[Decimal, str]:
        base, quote = book.f.base_asset, book.f.quote_asset
        rate = self._maker if maker else self._taker
        notional = px * qty
        fq = self._fee_in_quote
        buy = o.side is Side.BUY
        fee = ((notional if (fq or not buy) else qty) * rate).quantize(Q8, rounding=ROUND_DOWN)
        free, locked = acct.free, acct.locked
        if o.type is not OrderType.MARKET:
            if buy:
                rel = o.price * qty
                o.locked -= rel
                locked[quote] -= rel
                free[quote] = free.get(quote, ZERO) + rel - notional
                if fq:
                    o.locked -= fee
                    locked[quote] -= fee
                free[base] = free.get(base, ZERO) + qty - (ZERO if fq else fee)
            else:
                o.locked -= qty
                locked[base] -= qty
                free[quote] = free.get(quote, ZERO) + notional - fee
        elif buy:
            free[quote] = free.get(quote, ZERO) - notional - (fee if fq else ZERO)
            free[base] = free.get(base, ZERO) + qty - (ZERO if fq else fee)
        else:
            free[base] = free.get(base, ZERO) - qty
            free[quote] = free.get(quote, ZERO) + notional - fee
        locked.setdefault(base, ZERO)
        locked.setdefault(quote, ZERO)
        return fee, (quote if (fq or not buy) else base)

    def _settle_futures(self, acct: FuturesAccount, book: _Book, side: Side, qty: Decimal,
                        px: Decimal, maker: bool, ts: int, trade_id: int,
                        liquidation: bool) -> tuple[Decimal, Decimal]:
        symbol = book.symbol
        pos = acct.position(symbol)
        q, e = pos.qty, pos.entry_price
        d = qty if side is Side.BUY else -qty
        nq = q + d
        rpnl = ZERO
        if q == 0 or (q > 0) == (d > 0):
            pos.entry_price = (abs(q) * e + qty * px) / abs(nq)
        else:
            close = min(qty, abs(q))
            rpnl = (close * (px - e) * (1 if q > 0 else -1)).quantize(Q8, rounding=ROUND_HALF_EVEN)
            if nq == 0:
                pos.entry_price = ZERO
            elif (nq > 0) != (q > 0):
                pos.entry_price = px
        pos.qty = nq
        pos.update_ms = ts
        fee = ZERO if liquidation else \
            (px * qty * (self._maker if maker else self._taker)).quantize(Q8, rounding=ROUND_DOWN)
        acct.wallet += rpnl - fee
        if rpnl:
            self._add_income(acct, symbol, "REALIZED_PNL", rpnl, ts, "", str(trade_id))
        if fee:
            self._add_income(acct, symbol, "COMMISSION", -fee, ts, "", str(trade_id))
        if (q == 0) != (nq == 0):
            syms = self._pos_syms[acct.name]
            before = len(syms) >= 2
            if nq == 0:
                syms.discard(symbol)
                book.pos_accounts.discard(acct.name)
            else:
                syms.add(symbol)
                book.pos_accounts.add(acct.name)
            self._multi += (len(syms) >= 2) - before
        self._epoch += 1
        return rpnl, fee

    def _reducible(self, acct: SpotAccount | FuturesAccount, o: Order) -> Decimal:
        """How much of reduce-only ``o`` may fill now (0 when it would not reduce)."""
        assert isinstance(acct, FuturesAccount)
        q = acct.peek(o.symbol).qty
        if q == 0 or (q > 0) == (o.side is Side.BUY):
            return ZERO
        return min(o.remaining, abs(q))

    def _adjust_reduce_only(self, acct: FuturesAccount, book: _Book, ts: int,
                            events: list[Event]) -> None:
        q = acct.peek(book.symbol).qty
        for o in [x for x in book.orders.values() if x.reduce_only and x.account == acct.name]:
            if q == 0 or (q > 0) == (o.side is Side.BUY):
                self._finish(book, o, "EXPIRED", ts)
                events.append(self._oev(o, "EXPIRED", None, ts))
            elif o.remaining > abs(q):
                o.orig_qty = o.executed_qty + abs(q)
                o.update_ms = ts
                events.append(self._oev(o, "AMENDMENT", None, ts))

    def _exec_taker(self, acct: SpotAccount | FuturesAccount, book: _Book, o: Order,
                    px: Decimal, ts: int, events: list[Event], fok: bool = False,
                    check_margin: bool = False) -> Decimal:
        """Fill what is possible of ``o`` as a taker at ``px``, expire the rest; returns the
        filled quantity."""
        q = o.remaining
        if o.reduce_only:
            q = self._reducible(acct, o)
        elif check_margin and isinstance(acct, FuturesAccount):
            pos = acct.peek(o.symbol)
            need = self._increase_qty(pos.qty, o.side, q) * px / pos.leverage
            if need > 0 and need > self._available(acct):
                q = ZERO
        if fok and q < o.remaining:
            q = ZERO
        if q > 0:
            self._fill(acct, book, o, q, px, False, ts, events)
        if o.is_open:
            self._finish(book, o, "EXPIRED", ts)
            events.append(self._oev(o, "EXPIRED", None, ts))
        if isinstance(acct, FuturesAccount) and q > 0:
            self._liq_check(acct, book.symbol, ts, events)
        return q

    # ------------------------------------------------------------------------------------------
    # order entry
    # ------------------------------------------------------------------------------------------
    def place_order(self, account: str, symbol: str, side: Side, type: OrderType, *,
                    qty: Decimal | None = None, quote_qty: Decimal | None = None,
                    price: Decimal | None = None, tif: TimeInForce | None = None,
                    client_order_id: str | None = None, stop_price: Decimal | None = None,
                    reduce_only: bool = False, ts_ms: int) -> tuple[Order, list[Event]]:
        """Place an order; raises ``ExchangeError`` on rejection (then nothing changed).

        Returns the order (live object; snapshot it if you keep it) and the events."""
        book = self._book(symbol)
        acct = self._acct(account)
        o, px, lock, crossing = self._prepare(acct, book, side, type, qty, quote_qty, price, tif,
                                              client_order_id, stop_price, reduce_only, ts_ms)
        return o, self._submit(acct, book, o, px, lock, crossing, ts_ms)

    def test_order(self, account: str, symbol: str, side: Side, type: OrderType, *,
                   qty: Decimal | None = None, quote_qty: Decimal | None = None,
                   price: Decimal | None = None, tif: TimeInForce | None = None,
                   client_order_id: str | None = None, stop_price: Decimal | None = None,
                   reduce_only: bool = False, ts_ms: int) -> None:
        """Validate an order like ``place_order`` without placing it."""
        self._prepare(self._acct(account), self._book(symbol), side, type, qty, quote_qty, price,
                      tif, client_order_id, stop_price, reduce_only, ts_ms)

    def _submit(self, acct: SpotAccount | FuturesAccount, book: _Book, o: Order,
                px: Decimal | None, lock: Decimal, crossing: bool, ts: int) -> list[Event]:
        o.order_id = self._next_order_id
        self._next_order_id += 1
        if not o.client_order_id:
            o.client_order_id = f"sim-{o.order_id}"
        self._register(o)
        events: list[Event] = [self._oev(o, "NEW", None, ts)]
        if lock:
            assert isinstance(acct, SpotAccount)
            asset = book.f.quote_asset if o.side is Side.BUY else book.f.base_asset
            acct.free[asset] -= lock
            acct.locked[asset] = acct.locked.get(asset, ZERO) + lock
            o.locked = lock
            events.append(self._aev(acct, book, "ORDER", ts))
        if o.type is OrderType.MARKET:
            assert px is not None
            self._exec_taker(acct, book, o, px, ts, events)
        elif o.type in _LIMITS:
            if crossing:
                last = book.last()
                assert last is not None
                if o.reduce_only or o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                    self._exec_taker(acct, book, o, last, ts, events,
                                     fok=o.tif is TimeInForce.FOK)
                else:
                    self._fill(acct, book, o, o.remaining, last, False, ts, events)
                    if isinstance(acct, FuturesAccount):
                        self._liq_check(acct, book.symbol, ts, events)
            elif o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._finish(book, o, "EXPIRED", ts)
                events.append(self._oev(o, "EXPIRED", None, ts))
            else:
                self._rest(book, o)
        else:
            self._rest(book, o)
        return events

    def _find(self, account: str, symbol: str, order_id: int | None,
              client_order_id: str | None) -> Order | None:
        if order_id is not None:
            o = self._orders.get(int(order_id))
        elif client_order_id is not None:
            oid = self._coid_any.get((account, client_order_id))
            o = self._orders.get(oid) if oid is not None else None
        else:
            raise ExchangeError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                                "both were empty/null!")
        if o is None or o.account != account or o.symbol != symbol:
            return None
        return o

    def cancel_order(self, account: str, symbol: str, *, order_id: int | None = None,
                     client_order_id: str | None = None, ts_ms: int
                     ) -> tuple[Order, list[Event]]:
        """Cancel an open order; -2011 if unknown or no longer open."""
        book = self._book(symbol)
        acct = self._acct(account)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None or not o.is_open:
            raise ExchangeError(-2011, "Unknown order sent.")
        events: list[Event] = []
        self._cancel(acct, book, o, ts_ms, events)
        return o, events

    def _cancel(self, acct: SpotAccount | FuturesAccount, book: _Book, o: Order, ts: int,
                events: list[Event]) -> None:
        had_lock = bool(o.locked)
        self._finish(book, o, "CANCELED", ts)
        events.append(self._oev(o, "CANCELED", None, ts))
        if had_lock:
            events.append(self._aev(acct, book, "ORDER", ts))

    def cancel_all(self, account: str, symbol: str, ts_ms: int
                   ) -> tuple[list[Order], list[Event]]:
        """Cancel every open order of ``account`` on ``symbol`` (none: empty lists)."""
        book = self._book(symbol)
        acct = self._acct(account)
        events: list[Event] = []
        done = [o for o in book.orders.values() if o.account == account]
        for o in sorted(done, key=lambda x: x.order_id):
            self._cancel(acct, book, o, ts_ms, events)
        return done, events

    def modify_order(self, account: str, symbol: str, *, order_id: int | None = None,
                     client_order_id: str | None = None, side: Side, qty: Decimal,
                     price: Decimal, ts_ms: int) -> tuple[Order, list[Event]]:
        """Amend an open futures LIMIT order (PUT /fapi/v1/order): keeps the order id, emits
        AMENDMENT and fills at once if the new price crosses. As on Binance the order is
        cancelled when the new quantity is not above the executed quantity or when a GTX
        order would cross."""
        if not self.futures:
            raise ExchangeError(-1000, "Order modification is only available on futures.")
        book = self._book(symbol)
        acct = self._facct(account)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None or not o.is_open:
            raise ExchangeError(-2013, "Order does not exist.")
        if o.type is not OrderType.LIMIT:
            raise ExchangeError(-5025, "Only limit order is supported.")
        side, qty, price = Side(side), Decimal(qty), Decimal(price)
        if side is not o.side:
            raise ExchangeError(-1102, "Parameter 'side' must equal the order's side.")
        f = book.f
        self._check_fut_price(f, price)
        self._check_fut_qty(f, qty, False)
        if price * qty < f.min_notional and not o.reduce_only:
            raise ExchangeError(-4164, f"Order's notional must be no smaller than "
                                f"{format(f.min_notional.normalize(), 'f')} (unless you choose "
                                "reduce only).")
        if price == o.price and qty == o.orig_qty:
            raise ExchangeError(-5027, "No need to modify the order.")
        events: list[Event] = []
        crossing = self._crosses(book, side, price)
        if qty <= o.executed_qty or (o.tif is TimeInForce.GTX and crossing):
            self._cancel(acct, book, o, ts_ms, events)
            return o, events
        if not o.reduce_only:
            pos = acct.peek(symbol)
            if crossing:
                need = self._increase_qty(pos.qty, side, qty - o.executed_qty) \
                    * (book.last() or price) / pos.leverage
            else:
                agg = acct.peek_agg(symbol)
                before = self._agg_im(pos.qty, agg, pos.leverage)
                after = OrderAgg(agg.buy_qty, agg.buy_notional, agg.sell_qty, agg.sell_notional)
                after.add(side.sign, -o.remaining, o.price)
                after.add(side.sign, qty - o.executed_qty, price)
                need = self._agg_im(pos.qty, after, pos.leverage) - before
            if need > 0 and need > self._available(acct):
                raise ExchangeError(-2019, "Margin is insufficient.")
        self._unrest(book, o)
        o.price, o.orig_qty, o.update_ms = price, qty, ts_ms
        events.append(self._oev(o, "AMENDMENT", None, ts_ms))
        if crossing:
            last = book.last()
            assert last is not None
            if o.reduce_only or o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._exec_taker(acct, book, o, last, ts_ms, events,
                                 fok=o.tif is TimeInForce.FOK)
            else:
                self._fill(acct, book, o, o.remaining, last, False, ts_ms, events)
                self._liq_check(acct, symbol, ts_ms, events)
        else:
            self._rest(book, o)
            if o.reduce_only:
                self._adjust_reduce_only(acct, book, ts_ms, events)
        return o, events

    def cancel_replace(self, account: str, symbol: str, *, cancel_order_id: int | None = None,
                       cancel_client_order_id: str | None = None, new_order: dict[str, Any],
                       mode: str = "STOP_ON_FAILURE", ts_ms: int
                       ) -> tuple[Order | None, Order | None, list[Event]]:
        """Spot cancel-replace (POST /api/v3/order/cancelReplace).

        ``new_order`` holds ``place_order`` keyword arguments (side, type, qty, price, ...).
        On any failure raises ``CancelReplaceError`` (-2022 when nothing was done, -2021 when
        one half succeeded) carrying the results and the events of what happened."""
        if self.futures:
            raise ExchangeError(-1000, "Cancel-replace is only available on spot.")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise ExchangeError(-1102, "Invalid cancelReplaceMode.")
        events: list[Event] = []
        cancelled: Order | None = None
        cancel_err: ExchangeError | None = None
        try:
            cancelled, ev = self.cancel_order(account, symbol, order_id=cancel_order_id,
                                              client_order_id=cancel_client_order_id, ts_ms=ts_ms)
            events += ev
        except ExchangeError as e:
            cancel_err = e
            if mode == "STOP_ON_FAILURE":
                raise CancelReplaceError(
                    -2022, "Order cancel-replace failed.", cancel_result="FAILURE",
                    new_order_result="NOT_ATTEMPTED", cancel_error=e, new_order_error=None,
                    cancelled=None, new_order=None, events=events) from None
        kw = dict(new_order)
        kw.pop("ts_ms", None)
        side = kw.pop("side")
        otype = kw.pop("type")
        try:
            new, ev = self.place_order(account, symbol, side, otype, ts_ms=ts_ms, **kw)
            events += ev
        except ExchangeError as e:
            both = cancel_err is not None
            raise CancelReplaceError(
                -2022 if both else -2021,
                "Order cancel-replace failed." if both else
                "Order cancel-replace partially failed.",
                cancel_result="FAILURE" if both else "SUCCESS", new_order_result="FAILURE",
                cancel_error=cancel_err, new_order_error=e, cancelled=cancelled,
                new_order=None, events=events) from None
        if cancel_err is not None:
            raise CancelReplaceError(
                -2021, "Order cancel-replace partially failed.", cancel_result="FAILURE",
                new_order_result="SUCCESS", cancel_error=cancel_err, new_order_error=None,
                cancelled=None, new_order=new, events=events)
        return cancelled, new, events

    # ------------------------------------------------------------------------------------------
    # market data
    # ------------------------------------------------------------------------------------------
    def on_bar(self, symbol: str, open_time_ms: int, close_time_ms: int, o: float, h: float,
               l: float, c: float, v: float) -> list[Event]:  # noqa: E741
        """Replay one kline: walk its intrabar path, fill/trigger what it reaches, set the last
        price to the close. Bars that reach nothing cost a few float comparisons."""
        book = self._books.get(symbol)
        if book is None:
            raise ExchangeError(-1121, "Invalid symbol.")
        if book.stale or (book.pos_accounts and book.liq_epoch != self._epoch):
            self._refresh(book)
        if l > book.lo and h < book.hi and book.last_f is not None:
            book.last_f = c
            book.last_d = None
            if self._multi and book.pos_accounts and book.mark_ext is None:
                self._epoch += 1
            return []
        return self._bar_slow(book, open_time_ms, close_time_ms, o, h, l, c, v)

    def _bar_slow(self, book: _Book, t0: int, t1: int, o: float, h: float, l: float,  # noqa: E741
                  c: float, v: float) -> list[Event]:
        tick = book.f.tick_size

        def dec(x: float) -> Decimal:
            return _to_tick(Decimal(repr(x)), tick)

        od, hd, ld, cd = dec(o), dec(h), dec(l), dec(c)
        pts = path_points(od, hd, ld, cd, bullish=c >= o)
        cap = Decimal(repr(float(v))) * self._share if self._share is not None else None
        st = _BarState(cap)
        events: list[Event] = []
        prev = book.last()
        if prev is None:
            self._first_price(book, od, t0, st, events)
        elif prev != od:
            self._segment(book, prev, od, od < prev, True, lambda p: t0, st, events)
        total = abs(pts[1] - pts[0]) + abs(pts[2] - pts[1]) + abs(pts[3] - pts[2])
        dur = t1 - t0
        cum = ZERO
        for a, b in ((pts[0], pts[1]), (pts[1], pts[2]), (pts[2], pts[3])):
            if a == b:
                continue
            base = cum

            def t_of(p: Decimal, a: Decimal = a, base: Decimal = base) -> int:
                return t0 + int((base + abs(p - a)) * dur / total) if total else t0

            self._segment(book, a, b, b < a, False, t_of, st, events)
            cum += abs(b - a)
        self._set_last(book, cd)
        return events

    def _first_price(self, book: _Book, p: Decimal, ts: int, st: _BarState,
                     events: list[Event]) -> None:
        """The first price of a symbol: fill whatever rests across it (as a gap)."""
        self._segment(book, None, p, True, True, lambda x: ts, st, events)
        self._segment(book, None, p, False, True, lambda x: ts, st, events)

    def _fire_price(self, o: Order, a: Decimal | None, b: Decimal, down: bool) -> Decimal | None:
        """Price at which the path a→b reaches ``o`` (None if it does not)."""
        t = o.type
        if t is OrderType.LIMIT or t is OrderType.LIMIT_MAKER:
            p = o.price
            if down:
                if o.side is Side.BUY and (b < p or (self._touch and b == p)):
                    return p
            elif o.side is Side.SELL and (b > p or (self._touch and b == p)):
                return p
            return None
        s = o.stop_price
        if (t is OrderType.STOP_MARKET) == (o.side is Side.BUY):  # fires on the way up
            if not down and b >= s:
                return s if a is None or s > a else a
        elif down and b <= s:
            return s if a is None or s < a else a
        return None

    def _segment(self, book: _Book, a: Decimal | None, b: Decimal, down: bool, gap: bool,
                 t_of: Callable[[Decimal], int], st: _BarState, events: list[Event]) -> None:
        """Walk the straight path a→b (``gap``: no trades in between, fills of triggered
        market orders happen at b)."""
        heap: list[tuple[Decimal, int, int, Any, Decimal]] = []
        skip = st.skip
        if book.stale:
            self._refresh(book)
        orders = book.orders
        # float pre-filter (with slack for rounding); _fire_price decides exactly
        if down:
            bf = float(b) * (1 - 1e-9)
            cands = [o for x, o in book.down if x >= bf]
        else:
            bf = float(b) * (1 + 1e-9)
            cands = [o for x, o in book.up if x <= bf]
        for o in cands:
            if o.order_id in skip or o.order_id not in orders:
                continue
            p = self._fire_price(o, a, b, down)
            if p is not None:
                rank = 0 if o.type in _LIMITS else 1
                heap.append((-p if down else p, rank, o.order_id, o.order_id, p))
        follow = self.futures and book.mark_ext is None
        seq = 0
        if follow and not gap:
            for name in book.pos_accounts:
                seq += 1
                self._push_liq(heap, name, book, a, b, down, seq)
        if not heap and not (follow and book.pos_accounts):
            return
        heapq.heapify(heap)
        while heap:
            _key, rank, _, ref, p = heapq.heappop(heap)
            if rank == 2:
                acct = self._accounts[ref]
                assert isinstance(acct, FuturesAccount)
                if acct.name in book.pos_accounts:
                    self._set_last(book, p)
                    self._liq_check(acct, book.symbol, t_of(p), events)
                continue
            o = book.orders.get(ref)
            if o is None or ref in skip:
                continue
            acct = self._accounts[o.account]
            t = t_of(p)
            if follow:
                self._set_last(book, p)
            if rank == 0:
                q = o.remaining
                if st.cap is not None:
                    q = min(q, book.f.round_qty(st.cap))
                if o.reduce_only:
                    q = min(q, self._reducible(acct, o))
                if q <= 0:
                    skip.add(ref)
                    continue
                if st.cap is not None:
                    st.cap -= q
                self._fill(acct, book, o, q, o.price, True, t, events)
                if isinstance(acct, FuturesAccount):
                    self._liq_check(acct, book.symbol, t, events)
            else:
                px = self._taker_price(book, o.side, b if gap else p)
                q = self._exec_taker(acct, book, o, px, t, events, check_margin=True)
                if st.cap is not None:
                    st.cap = max(ZERO, st.cap - q)
            if follow and not gap and acct.name in book.pos_accounts:
                seq += 1
                self._push_liq(heap, acct.name, book, p, b, down, seq)
        if follow:
            self._set_last(book, b)
            for name in sorted(book.pos_accounts):
                acct = self._accounts[name]
                assert isinstance(acct, FuturesAccount)
                self._liq_check(acct, book.symbol, t_of(b), events)

    def _push_liq(self, heap: list[Any], name: str, book: _Book, a: Decimal | None, b: Decimal,
                  down: bool, seq: int) -> None:
        acct = self._accounts[name]
        assert isinstance(acct, FuturesAccount)
        lp = self._liq_price(acct, book.symbol)
        if lp is None:
            return
        q = acct.positions[book.symbol].qty
        tick = book.f.tick_size
        if down and q > 0:
            p = (lp / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
            if b <= p and (a is None or p < a):
                heapq.heappush(heap, (-p, 2, seq, name, p))
        elif not down and q < 0:
            p = (lp / tick).to_integral_value(rounding=ROUND_CEILING) * tick
            if b >= p and (a is None or p > a):
                heapq.heappush(heap, (p, 2, seq, name, p))

    def set_last_price(self, symbol: str, price: Decimal, ts_ms: int) -> list[Event]:
        """Set the last traded price (e.g. at replay start or from tick data); orders it
        crosses fill as after a gap (uncapped)."""
        book = self._book(symbol)
        price = Decimal(price)
        events: list[Event] = []
        st = _BarState(None)
        prev = book.last()
        if prev is None:
            self._first_price(book, price, ts_ms, st, events)
        elif prev != price:
            self._segment(book, prev, price, price < prev, True, lambda p: ts_ms, st, events)
        self._set_last(book, price)
        if self.futures and book.mark_ext is None:
            for name in sorted(book.pos_accounts):
                acct = self._accounts[name]
                assert isinstance(acct, FuturesAccount)
                self._liq_check(acct, symbol, ts_ms, events)
        return events

    def set_mark_price(self, symbol: str, price: Decimal, ts_ms: int) -> list[Event]:
        """Set the futures mark price from outside (from then on it no longer follows the last
        price); liquidates accounts whose margin balance falls to the maintenance margin."""
        if not self.futures:
            raise ExchangeError(-1000, "Mark price is only available on futures.")
        book = self._book(symbol)
        if book.mark_ext is None:
            # the fast-path bounds stop including liquidation prices (checked here from now
            # on); later marks change no order bound, so the bounds stay valid
            book.stale = True
        book.mark_ext = Decimal(price)
        if self._multi and book.pos_accounts:
            self._epoch += 1
        events: list[Event] = []
        for name in sorted(book.pos_accounts):
            acct = self._accounts[name]
            assert isinstance(acct, FuturesAccount)
            self._liq_check(acct, symbol, ts_ms, events)
        return events

    def apply_funding(self, symbol: str, rate: Decimal, ts_ms: int) -> list[Event]:
        """Settle funding on ``symbol``: each position pays ``qty × mark × rate`` (longs pay a
        positive rate), booked as FUNDING_FEE income."""
        if not self.futures:
            raise ExchangeError(-1000, "Funding is only available on futures.")
        book = self._book(symbol)
        rate = Decimal(rate)
        mark = self._mark(book)
        events: list[Event] = []
        if mark is None:
            if book.pos_accounts:
                raise ValueError(f"no mark price for {symbol}")
            return events
        for name in sorted(book.pos_accounts):
            acct = self._accounts[name]
            assert isinstance(acct, FuturesAccount)
            pos = acct.positions[symbol]
            amount = -(pos.qty * mark * rate).quantize(Q8, rounding=ROUND_HALF_EVEN)
            if not amount:
                continue
            acct.wallet += amount
            self._add_income(acct, symbol, "FUNDING_FEE", amount, ts_ms)
            self._epoch += 1
            ev = self._aev(acct, book, "FUNDING_FEE", ts_ms)
            # balance change "bc" of ACCOUNT_UPDATE carries the funding amount (as Binance)
            events.append(AccountEvent(ev.account, ev.reason,
                                       {"USDT": (acct.wallet, acct.wallet, amount)},
                                       ev.positions, ev.time_ms))
            self._liq_check(acct, symbol, ts_ms, events)
        return events

    # ------------------------------------------------------------------------------------------
    # liquidation
    # ------------------------------------------------------------------------------------------
    def _liq_check(self, acct: FuturesAccount, symbol: str, ts: int,
                   events: list[Event]) -> None:
        """Liquidate ``acct`` when its margin balance is at or below its maintenance margin:
        cross liquidation closes all its positions (the one on ``symbol`` first)."""
        syms = self._pos_syms[acct.name]
        if not syms:
            return
        mb, mm = self._margin_state(acct)
        if mb > mm:
            return
        for sym in sorted(syms, key=lambda s: (s != symbol, s)):
            book = self._books[sym]
            pos = acct.positions[sym]
            m = self._pos_mark(sym, pos.entry_price)
            # on the tick grid, against the account (a mark can be finer than the tick)
            rnd = ROUND_FLOOR if pos.qty > 0 else ROUND_CEILING
            px = (m / book.f.tick_size).to_integral_value(rounding=rnd) * book.f.tick_size
            self._liquidate(acct, book, px, ts, events)

    def _liquidate(self, acct: FuturesAccount, book: _Book, px: Decimal, ts: int,
                   events: list[Event]) -> None:
        for o in sorted((x for x in book.orders.values() if x.account == acct.name),
                        key=lambda x: x.order_id):
            self._cancel(acct, book, o, ts, events)
        pos = acct.positions[book.symbol]
        q = pos.qty
        lo = Order(self._next_order_id, "", acct.name, book.symbol,
                   Side.SELL if q > 0 else Side.BUY, OrderType.MARKET, None, ZERO, abs(q), ZERO,
                   ZERO, "NEW", ZERO, True, ts, ts)
        self._next_order_id += 1
        lo.client_order_id = f"autoclose-{lo.order_id}"
        self._register(lo)
        events.append(self._oev(lo, "NEW", None, ts))
        self._fill(acct, book, lo, abs(q), px, False, ts, events, liquidation=True)
        fee = min((abs(q) * px * LIQUIDATION_FEE_RATE).quantize(Q8, rounding=ROUND_DOWN),
                  max(acct.wallet, ZERO))
        if fee > 0:
            acct.wallet -= fee
            self._add_income(acct, book.symbol, "INSURANCE_CLEAR", -fee, ts, "liquidation fee")
        if acct.wallet < 0 and not self._pos_syms[acct.name]:
            cover = -acct.wallet
            acct.wallet = ZERO
            self._add_income(acct, book.symbol, "INSURANCE_CLEAR", cover, ts,
                             "insurance fund cover")
        self._epoch += 1
        events.append(self._aev(acct, book, "LIQUIDATION", ts))

    # ------------------------------------------------------------------------------------------
    # futures settings
    # ------------------------------------------------------------------------------------------
    def set_leverage(self, account: str, symbol: str, leverage: int) -> int:
        """Set the symbol's leverage (1..125); returns it."""
        self._book(symbol)
        acct = self._facct(account)
        if not isinstance(leverage, int) or not 1 <= leverage <= MAX_LEVERAGE:
            raise ExchangeError(-4028, f"Leverage {leverage} is not valid")
        acct.position(symbol).leverage = leverage
        self._epoch += 1
        return leverage

    def set_margin_type(self, account: str, symbol: str, margin_type: str) -> None:
        """Set CROSSED or ISOLATED (stored and reported; margined as cross)."""
        book = self._book(symbol)
        acct = self._facct(account)
        mt = {"CROSS": "CROSSED"}.get(margin_type.upper(), margin_type.upper())
        if mt not in ("CROSSED", "ISOLATED"):
            raise ExchangeError(-1102, "Invalid marginType.")
        pos = acct.peek(symbol)
        if pos.margin_type == mt:
            raise ExchangeError(-4046, "No need to change margin type.")
        if pos.qty:
            raise ExchangeError(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.account == account for o in book.orders.values()):
            raise ExchangeError(-4047,
                                "Margin type cannot be changed if there exists open orders.")
        acct.position(symbol).margin_type = mt

    # ------------------------------------------------------------------------------------------
    # queries
    # ------------------------------------------------------------------------------------------
    def get_order(self, account: str, symbol: str, *, order_id: int | None = None,
                  client_order_id: str | None = None) -> Order:
        """One order of the account (any status); -2013 if unknown."""
        self._book(symbol)
        self._acct(account)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None:
            raise ExchangeError(-2013, "Order does not exist.")
        return o

    def open_orders(self, account: str, symbol: str | None = None) -> list[Order]:
        """Open orders of the account, oldest first."""
        self._acct(account)
        books = [self._book(symbol)] if symbol is not None else list(self._books.values())
        out = [o for b in books for o in b.orders.values() if o.account == account]
        return sorted(out, key=lambda o: o.order_id)

    def all_orders(self, account: str, symbol: str, *, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 500,
                   from_order_id: int | None = None) -> list[Order]:
        """Orders of the account on ``symbol`` (allOrders): from ``from_order_id`` on, else the
        most recent ``limit`` within the time range; oldest first."""
        self._book(symbol)
        self._acct(account)
        ids = self._acct_orders.get((account, symbol), [])
        out = [self._orders[i] for i in ids]
        if from_order_id is not None:
            return [o for o in out if o.order_id >= from_order_id][:limit]
        if start_ms is not None:
            out = [o for o in out if o.time_ms >= start_ms]
        if end_ms is not None:
            out = [o for o in out if o.time_ms <= end_ms]
        if start_ms is not None:
            return out[:limit]
        return out[-limit:] if limit else []

    def trades(self, account: str, symbol: str, *, start_ms: int | None = None,
               end_ms: int | None = None, from_id: int | None = None,
               limit: int = 500) -> list[Fill]:
        """Fills of the account on ``symbol`` (myTrades / userTrades), oldest first."""
        self._book(symbol)
        self._acct(account)
        out = self._fills.get((account, symbol), [])
        if from_id is not None:
            return [f for f in out if f.trade_id >= from_id][:limit]
        if start_ms is not None:
            out = [f for f in out if f.time_ms >= start_ms]
        if end_ms is not None:
            out = [f for f in out if f.time_ms <= end_ms]
        if start_ms is not None:
            return out[:limit]
        return out[-limit:] if limit else []

    def balances(self, account: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Spot balances {asset: (free, locked)}."""
        acct = self._acct(account)
        if not isinstance(acct, SpotAccount):
            raise ExchangeError(-1000, "Balances by asset are only available on spot.")
        assets = sorted(set(acct.free) | set(acct.locked))
        return {a: (acct.free.get(a, ZERO), acct.locked.get(a, ZERO)) for a in assets}

    def _position_view(self, acct: FuturesAccount, symbol: str) -> PositionView:
        p = acct.peek(symbol)
        book = self._books[symbol]
        m = self._mark(book)
        mark = m if m is not None else p.entry_price
        notional = p.qty * mark
        lp = self._liq_price(acct, symbol) if p.qty else None
        im = abs(notional) / p.leverage
        return PositionView(
            symbol=symbol, qty=p.qty, entry_price=p.entry_price, mark_price=mark,
            unrealized_pnl=p.qty * (mark - p.entry_price) if p.qty else ZERO,
            leverage=p.leverage, margin_type=p.margin_type,
            liquidation_price=lp if lp is not None else ZERO, notional=notional,
            isolated_margin=im if p.margin_type == "ISOLATED" else ZERO, initial_margin=im,
            maint_margin=self._maint(symbol, abs(notional)) if p.qty else ZERO,
            update_ms=p.update_ms,
        )

    def positions(self, account: str, symbol: str | None = None) -> list[PositionView]:
        """Position views (every symbol when ``symbol`` is None, flat ones included)."""
        acct = self._facct(account)
        syms = [self._book(symbol).symbol] if symbol is not None else sorted(self._books)
        return [self._position_view(acct, s) for s in syms]

    def futures_account(self, account: str) -> FuturesAccountView:
        """Account totals and positions (/fapi/v2/account meaning)."""
        acct = self._facct(account)
        upnl, pim, oim, mm = self._totals(acct)
        mb = acct.wallet + upnl
        avail = mb - pim - oim
        return FuturesAccountView(
            wallet_balance=acct.wallet, unrealized_pnl=upnl, margin_balance=mb,
            available_balance=avail, initial_margin=pim + oim, position_initial_margin=pim,
            open_order_initial_margin=oim, maint_margin=mm,
            max_withdraw_amount=max(ZERO, min(avail, acct.wallet - pim - oim)),
            positions=self.positions(account),
        )

    def income(self, account: str, *, symbol: str | None = None, income_type: str | None = None,
               start_ms: int | None = None, end_ms: int | None = None,
               limit: int = 100) -> list[IncomeRecord]:
        """Income records (/fapi/v1/income), oldest first."""
        self._facct(account)
        out = self._income[account]
        if symbol is not None:
            out = [r for r in out if r.symbol == symbol]
        if income_type is not None:
            out = [r for r in out if r.income_type == income_type]
        if start_ms is not None:
            out = [r for r in out if r.time_ms >= start_ms]
        if end_ms is not None:
            out = [r for r in out if r.time_ms <= end_ms]
        if start_ms is not None:
            return out[:limit]
        return out[-limit:] if limit else []

    # ------------------------------------------------------------------------------------------
    # persistence
    # ------------------------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Everything, as plain JSON/msgpack-able data (Decimals as str)."""
        share = self.fill.max_volume_share
        return {
            "version": 1,
            "market": self.market.value,
            "specs": [exchange_info_symbol(f, self.market) for f in self.specs.values()],
            "fees": {"maker": str(self.fees.maker), "taker": str(self.fees.taker),
                     "bnb_discount": self.fees.bnb_discount},
            "fill": {"fill_on_touch": self.fill.fill_on_touch,
                     "max_volume_share": share,
                     "market_slippage_bps": str(self.fill.market_slippage_bps)},
            "next_order_id": self._next_order_id,
            "next_trade_id": self._next_trade_id,
            "next_tran_id": self._next_tran_id,
            "books": {s: {"last": None if b.last() is None else str(b.last()),
                          "mark": None if b.mark_ext is None else str(b.mark_ext)}
                      for s, b in self._books.items()},
            "accounts": [a.to_state() for a in self._accounts.values()],
            "orders": [o.to_state() for o in self._orders.values()],
            "fills": [f.to_state() for fs in self._fills.values() for f in fs],
            "income": {a: [r.to_state() for r in rs] for a, rs in self._income.items()},
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Engine:
        """Rebuild an engine saved by ``to_state``; it behaves identically."""
        if state.get("version") != 1:
            raise ValueError(f"unsupported engine state version {state.get('version')!r}")
        market = Market(state["market"])
        specs = {s["symbol"]: SymbolFilters.from_exchange_info(s) for s in state["specs"]}
        fe, fi = state["fees"], state["fill"]
        eng = cls(market, specs,
                  FeeSchedule(Decimal(fe["maker"]), Decimal(fe["taker"]), fe["bnb_discount"]),
                  FillConfig(fi["fill_on_touch"], fi["max_volume_share"],
                             Decimal(fi["market_slippage_bps"])))
        eng._next_order_id = state["next_order_id"]
        eng._next_trade_id = state["next_trade_id"]
        eng._next_tran_id = state["next_tran_id"]
        for s, b in state["books"].items():
            book = eng._books[s]
            if b["last"] is not None:
                book.last_d = Decimal(b["last"])
                book.last_f = float(book.last_d)
            book.mark_ext = Decimal(b["mark"]) if b["mark"] is not None else None
        for a in state["accounts"]:
            if a["kind"] == "futures":
                fa = FuturesAccount.from_state(a)
                eng._accounts[fa.name] = fa
                eng._income[fa.name] = []
                syms = {s for s, p in fa.positions.items() if p.qty}
                eng._pos_syms[fa.name] = syms
                for s in syms:
                    eng._books[s].pos_accounts.add(fa.name)
                eng._multi += len(syms) >= 2
            else:
                sa = SpotAccount.from_state(a)
                eng._accounts[sa.name] = sa
        for od in state["orders"]:
            o = Order.from_state(od)
            eng._orders[o.order_id] = o
            eng._acct_orders.setdefault((o.account, o.symbol), []).append(o.order_id)
            eng._coid_any[(o.account, o.client_order_id)] = o.order_id
            if o.is_open:
                eng._open_coid[(o.account, o.client_order_id)] = o.order_id
                eng._rest(eng._books[o.symbol], o)
        for fd in state["fills"]:
            f = Fill.from_state(fd)
            eng._fills.setdefault((f.account, f.symbol), []).append(f)
        for name, rs in state["income"].items():
            eng._income[name] = [IncomeRecord.from_state(r) for r in rs]
        return eng
