"""PnL and fees, exact in ``Decimal``: per-symbol positions, closed trades, funding, equity.

Conventions (quote currency, USDT):

* ``qty`` is signed (long > 0, short < 0); spot positions are the base inventory (long-only),
  same maths. ``avg_entry`` is the volume-weighted entry price of the open position.
* Fees are costs (positive numbers) converted to quote at the time of the fill: quote-asset
  fees as they are, base-asset fees at the fill price, any other asset (BNB, with its
  discount already in the amount) at ``fee_asset_price_in_quote``. On spot a base-asset fee
  is taken out of the bought quantity, so the inventory shrinks by it.
* Funding is signed (+ received, - paid) and counted once per funding id.
* Realized PnL is gross (price difference x quantity); ``net = gross - fees + funding``.
* A reducing fill closes (part of) the open trade: the ``ClosedTrade`` carries the closed
  share of the entry fees and funding accumulated so far (pro rata by quantity) plus the
  closing fill's own fee. A flip closes the old trade and opens a new one at the fill price,
  the fill's fee split pro rata between the two. Partial closes each produce a ClosedTrade;
  the shares always add up exactly to what was accumulated.
* equity = initial + sum(realized gross) - sum(fees) + sum(funding) + sum(unrealized);
  drawdown = equity / peak equity - 1 (<= 0).
"""

from __future__ import annotations

from decimal import Decimal

import msgspec

from models.enums import Market, Side

ZERO = Decimal(0)
#: Funding ids remembered for deduplication; older ones are covered by ``funding_floor_ms``.
MAX_FUNDING_IDS = 1000


class ClosedTrade(msgspec.Struct, frozen=True, kw_only=True):
    """A (partial) round trip, logged as TRADE_CLOSED. ``side`` = the closed position's side
    (BUY = a long was closed)."""

    symbol: str
    side: Side
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    net_pnl: Decimal
    opened_ms: int
    closed_ms: int
    holding_ms: int


class SymbolPnl(msgspec.Struct, frozen=True, kw_only=True):
    """One symbol's PnL figures at a mark price (what the portfolio aggregates)."""

    realized_gross: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    unrealized: Decimal = ZERO
    qty: Decimal = ZERO
    avg_entry: Decimal = ZERO
    mark: Decimal = ZERO

    @property
    def net(self) -> Decimal:
        """Realized gross - fees + funding + unrealized."""
        return self.realized_gross - self.fees + self.funding + self.unrealized


def _sign(x: Decimal) -> int:
    return (x > ZERO) - (x < ZERO)


class PositionLedger(msgspec.Struct, kw_only=True):
    """Position and PnL of one symbol (mutable; msgpack-serialisable as it is)."""

    symbol: str
    market: Market = Market.FUTURES
    base_asset: str = ""
    quote_asset: str = "USDT"
    qty: Decimal = ZERO
    avg_entry: Decimal = ZERO
    realized_gross: Decimal = ZERO
    fees: Decimal = ZERO
    funding: Decimal = ZERO
    trade_fees: Decimal = ZERO
    trade_funding: Decimal = ZERO
    opened_ms: int = 0
    funding_seen: list[tuple[str, int]] = msgspec.field(default_factory=list)
    funding_floor_ms: int = -1
    closed_trades: int = 0

    # -- fees ---------------------------------------------------------------------------------
    def fee_in_quote(self, fee: Decimal, fee_asset: str, price: Decimal,
                     fee_asset_price_in_quote: Decimal | None = None) -> Decimal:
        """Convert a fee to quote; raises ``ValueError`` when no conversion price is known."""
        if not fee:
            return ZERO
        if fee_asset in ("", self.quote_asset):
            return fee
        if self.base_asset and fee_asset == self.base_asset:
            return fee * price
        if fee_asset_price_in_quote is None or fee_asset_price_in_quote <= ZERO:
            raise ValueError(f"{self.symbol}: fee in {fee_asset} needs its price in "
                             f"{self.quote_asset}")
        return fee * fee_asset_price_in_quote

    # -- fills --------------------------------------------------------------------------------
    def apply_fill(self, side: Side, price: Decimal, qty: Decimal, fee: Decimal = ZERO,
                   fee_asset: str = "", fee_asset_price_in_quote: Decimal | None = None,
                   ts_ms: int = 0) -> list[ClosedTrade]:
        """Book one fill; returns the trades it closed (none, one, or one on a flip)."""
        if qty <= ZERO or price <= ZERO:
            raise ValueError(f"{self.symbol}: fill price and qty must be > 0")
        fee_q = self.fee_in_quote(fee, fee_asset, price, fee_asset_price_in_quote)
        self.fees += fee_q
        closed: list[ClosedTrade] = []
        d = qty if side is Side.BUY else -qty
        if self.qty == ZERO or _sign(d) == _sign(self.qty):
            self._increase(d, price, fee_q, ts_ms)
        else:
            close_qty = min(qty, abs(self.qty))
            closing_fee = fee_q if close_qty == qty else fee_q * close_qty / qty
            closed.append(self._close(close_qty, price, closing_fee, ts_ms))
            rest = qty - close_qty
            if rest > ZERO:  # flip: the remainder opens a new trade
                self._increase(rest if side is Side.BUY else -rest, price, fee_q - closing_fee,
                               ts_ms)
        if (self.market is Market.SPOT and fee and self.base_asset
                and fee_asset == self.base_asset):
            self.qty -= fee  # the exchange kept part of the bought base asset
            if self.qty == ZERO:
                self._reset_trade()
        return closed

    def _increase(self, d: Decimal, price: Decimal, fee_q: Decimal, ts_ms: int) -> None:
        if self.qty == ZERO:
            self.opened_ms = ts_ms
            self.avg_entry = price
            self.trade_fees = fee_q
            self.trade_funding = ZERO
            self.qty = d
            return
        old, new = abs(self.qty), abs(self.qty) + abs(d)
        self.avg_entry = (self.avg_entry * old + price * abs(d)) / new
        self.qty += d
        self.trade_fees += fee_q

    def _close(self, close_qty: Decimal, price: Decimal, closing_fee: Decimal,
               ts_ms: int) -> ClosedTrade:
        pos = abs(self.qty)
        long = self.qty > ZERO
        gross = (price - self.avg_entry) * close_qty * (1 if long else -1)
        if close_qty == pos:
            fee_share, funding_share = self.trade_fees, self.trade_funding
        else:
            fee_share = self.trade_fees * close_qty / pos
            funding_share = self.trade_funding * close_qty / pos
        fees = fee_share + closing_fee
        trade = ClosedTrade(
            symbol=self.symbol, side=Side.BUY if long else Side.SELL, qty=close_qty,
            entry_price=self.avg_entry, exit_price=price, gross_pnl=gross, fees=fees,
            funding=funding_share, net_pnl=gross - fees + funding_share,
            opened_ms=self.opened_ms, closed_ms=ts_ms, holding_ms=max(0, ts_ms - self.opened_ms))
        self.realized_gross += gross
        self.closed_trades += 1
        self.trade_fees -= fee_share
        self.trade_funding -= funding_share
        self.qty = self.qty - close_qty if long else self.qty + close_qty
        if self.qty == ZERO:
            self._reset_trade()
        return trade

    def _reset_trade(self) -> None:
        self.avg_entry = ZERO
        self.trade_fees = ZERO
        self.trade_funding = ZERO
        self.opened_ms = 0

    # -- funding ------------------------------------------------------------------------------
    def apply_funding(self, funding_id: str, amount: Decimal, ts_ms: int) -> bool:
        """Book a funding payment once (dedupe by id, e.g. ``"BTCUSDT:1700000000000"``);
        returns False if it was already applied (also after a restore)."""
        fid = funding_id or str(ts_ms)
        if ts_ms <= self.funding_floor_ms or any(f == fid for f, _ in self.funding_seen):
            return False
        self.funding_seen.append((fid, ts_ms))
        if len(self.funding_seen) > MAX_FUNDING_IDS:
            self.funding_seen.sort(key=lambda x: x[1])
            drop = self.funding_seen[:-MAX_FUNDING_IDS]
            self.funding_floor_ms = max(self.funding_floor_ms, max(t for _, t in drop))
            del self.funding_seen[:-MAX_FUNDING_IDS]
        self.funding += amount
        if self.qty != ZERO:
            self.trade_funding += amount
        return True

    # -- views --------------------------------------------------------------------------------
    def unrealized(self, mark: Decimal) -> Decimal:
        """Unrealized PnL at ``mark``."""
        return (mark - self.avg_entry) * self.qty if self.qty else ZERO

    @property
    def realized_net(self) -> Decimal:
        """Realized gross - all fees + all funding."""
        return self.realized_gross - self.fees + self.funding

    def snapshot(self, mark: Decimal) -> SymbolPnl:
        """Figures at ``mark`` for the portfolio."""
        return SymbolPnl(realized_gross=self.realized_gross, fees=self.fees,
                         funding=self.funding, unrealized=self.unrealized(mark), qty=self.qty,
                         avg_entry=self.avg_entry, mark=mark)

    def to_state(self) -> bytes:
        """msgpack snapshot."""
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_state(cls, data: bytes) -> PositionLedger:
        """Restore a msgpack snapshot."""
        return msgspec.msgpack.decode(data, type=cls)


class EquitySnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """Portfolio equity, peak and drawdown at one moment."""

    equity: Decimal
    peak_equity: Decimal
    drawdown: float
    realized_gross: Decimal
    fees: Decimal
    funding: Decimal
    unrealized: Decimal


class EquityTracker(msgspec.Struct, kw_only=True):
    """Portfolio equity from per-symbol PnL reports; keeps the peak for drawdowns."""

    initial_equity: Decimal
    peak_equity: Decimal = ZERO
    symbols: dict[str, SymbolPnl] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.peak_equity <= ZERO:
            self.peak_equity = self.initial_equity

    def equity(self) -> Decimal:
        """initial + realized gross - fees + funding + unrealized, over all symbols."""
        return self.initial_equity + sum((s.net for s in self.symbols.values()), ZERO)

    def report(self, symbol: str, pnl: SymbolPnl) -> EquitySnapshot:
        """Replace one symbol's figures, update the peak and return the new snapshot."""
        self.symbols[symbol] = pnl
        return self.update()

    def revalue(self) -> tuple[Decimal, float]:
        """Equity and drawdown, the peak raised if needed (``update()`` without the sums)."""
        eq = self.equity()
        if eq > self.peak_equity:
            self.peak_equity = eq
        return eq, self.drawdown(eq)

    def update(self) -> EquitySnapshot:
        """Recompute equity, raise the peak if needed, return the snapshot."""
        eq, dd = self.revalue()
        vals = list(self.symbols.values())
        return EquitySnapshot(
            equity=eq, peak_equity=self.peak_equity, drawdown=dd,
            realized_gross=sum((s.realized_gross for s in vals), ZERO),
            fees=sum((s.fees for s in vals), ZERO),
            funding=sum((s.funding for s in vals), ZERO),
            unrealized=sum((s.unrealized for s in vals), ZERO))

    def drawdown(self, equity: Decimal | None = None) -> float:
        """equity / peak - 1 (0 at or above the peak)."""
        eq = self.equity() if equity is None else equity
        if self.peak_equity <= ZERO:
            return 0.0
        return float(min(ZERO, eq / self.peak_equity - 1))

    def reset_peak(self) -> None:
        """Operator re-base: the current equity becomes the peak."""
        self.peak_equity = self.equity()

    def to_state(self) -> bytes:
        """msgpack snapshot."""
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_state(cls, data: bytes) -> EquityTracker:
        """Restore a msgpack snapshot."""
        return msgspec.msgpack.decode(data, type=cls)
