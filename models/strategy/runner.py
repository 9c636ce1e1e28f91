"""The strategy service core: actor events in, order commands out (pure, no I/O, no clock).

``StrategyRunner`` wraps a ``Strategy`` (adaptive or static grid) with what the strategy actor
must track between messages: the symbol's filters, the position from our own fills, the open
orders the OMS reports, the orders sent to risk but not yet placed or denied, the risk inputs
(drawdown-brake factors, equity, budget) and whether the OMS finished reconciling. The actor
feeds it messages and sends what it returns; the backtest uses the same class through the same
actor.

Planning happens after every closed base bar and after every own fill (so a take-profit follows
an entry fill at once), and only when the symbol is ready: filters known, OMS reconciled,
strategy warm, equity known, not stopping.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce, TradingState
from models.filters import SymbolFilters
from models.strategy import Strategy, make_strategy, restore_strategy
from models.strategy.params import StrategyParams
from models.strategy.types import (
    KIND_ENTRY,
    KIND_SL,
    KIND_TP,
    Bar,
    MarketView,
    OpenOrderView,
    PositionView,
    RiskInputs,
    StrategyValues,
)

ZERO = Decimal(0)
#: An order sent to risk with no OrderPlaced/OrderDenied after this many bars is forgotten.
INFLIGHT_BARS = 3
#: Fills arrive twice (from the gateway, first, and from the OMS): applied once by trade id.
MAX_TRADE_IDS = 512


class RunnerState(msgspec.Struct, kw_only=True):
    """Everything but the strategy itself (which snapshots on its own)."""

    strategy: bytes = b""
    last_open_ms: int = -1
    bars: int = 0
    position_qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    opened_ms: int = 0
    open_orders: list[m.OpenOrderRow] = []
    inflight: dict[str, int] = {}
    kinds: dict[str, str] = {}
    cid_meta: dict[str, tuple[str, str]] = {}
    reconciled: bool = False
    stopping: bool = False
    equity: float = 0.0
    leverage_cap: float = 0.0
    size_factor: float = 1.0
    tp_factor: float = 1.0
    entries_allowed: bool = True
    trading_active: bool = True
    min_entry_conviction: float = 0.0
    denials: int = 0
    trade_ids: list[int] = []
    #: the funding time being quoted and its latest quoted rate (see ``on_funding``)
    funding_next: int = 0
    funding_rate: float = 0.0


class StrategyRunner:
    """One symbol's strategy plus its bookkeeping (see module doc)."""

    def __init__(self, params: StrategyParams, symbol: str, market: Market, weight: float,
                 utilization: float, leverage_cap: float, base_interval_ms: int = 60_000,
                 state: RunnerState | None = None) -> None:
        self.params = params
        self.symbol = symbol
        self.market = market
        self.weight = weight
        self.utilization = utilization
        self.base_ms = base_interval_ms
        st = state or RunnerState(leverage_cap=leverage_cap)
        self.st = st
        self.strategy: Strategy = (restore_strategy(params, st.strategy) if st.strategy
                                   else make_strategy(params, symbol, base_interval_ms))
        self.filters: SymbolFilters | None = None
        self.book: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)
        self.funding: float | None = None
        self.last_values: StrategyValues | None = None
        self.last_close = 0.0
        # views of st.open_orders, rebuilt when that list is replaced (on_open_orders, restore)
        self._views_of: list[m.OpenOrderRow] | None = None
        self._views_cache: list[OpenOrderView] = []
        self._pos_view: PositionView | None = None

    # -- persistence --------------------------------------------------------------------------
    def to_state(self) -> RunnerState:
        """Snapshot (the strategy's own msgpack blob inside)."""
        self.st.strategy = self.strategy.snapshot()
        return self.st

    # -- readiness ------------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True when planning may send orders."""
        st = self.st
        return (self.filters is not None and st.reconciled and self.strategy.warm
                and st.equity > 0 and not st.stopping)

    def status(self) -> dict[str, Any]:
        """Fields for ``run.py status``."""
        st = self.st
        v = self.last_values
        return {"warm": self.strategy.warm, "ready": self.ready, "bars": st.bars,
                "position_qty": str(st.position_qty), "open_orders": len(st.open_orders),
                "inflight": len(st.inflight), "L": v.L if v else None, "S": v.S if v else None,
                "size_factor": st.size_factor, "entries_allowed": st.entries_allowed}

    # -- market data ----------------------------------------------------------------------------
    def history(self, rows: list[m.KlineRow]) -> int:
        """Warm up on closed bars (no orders); returns how many were new."""
        n = 0
        for r in rows:
            if r.open_time_ms > self.st.last_open_ms:
                self._bar(Bar(r.open_time_ms, r.close_time_ms, r.open, r.high, r.low, r.close,
                              r.volume))
                n += 1
        return n

    def _bar(self, bar: Bar) -> StrategyValues | None:
        st = self.st
        st.last_open_ms = bar.open_time_ms
        bars = st.bars = st.bars + 1
        self.last_close = bar.close
        v = self.strategy.on_bar(bar)
        if v is not None:
            self.last_values = v
        inflight = st.inflight
        if inflight:
            for k in [k for k, b in inflight.items() if bars - b > INFLIGHT_BARS]:
                del inflight[k]
        return v

    def on_kline(self, k: m.KlineClosed) -> tuple[StrategyValues | None, list[m.Message]]:
        """A closed bar: update the strategy, then plan. Old or repeated bars are ignored."""
        if k.open_time_ms <= self.st.last_open_ms:
            return None, []
        v = self._bar(Bar(k.open_time_ms, k.close_time_ms, k.open, k.high, k.low, k.close,
                          k.volume))
        return v, self.plan(k.close_time_ms, k.ts_event_ns, k.msg_id)

    def on_book(self, b: m.BookUpdated) -> None:
        """Top of book, for the imbalance feature of the planner."""
        self.book = (b.bid, b.bid_qty, b.ask, b.ask_qty)

    def on_funding(self, f: m.FundingRateUpdated) -> None:
        """Futures funding. The quoted rate is a planner input at once; the strategy's funding
        features see one value per settlement: the last rate quoted for a funding time, once
        the next funding time has moved past it. (Binance re-quotes the predicted rate every
        few seconds; the embedded exchange and the backtest quote each settlement's rate once:
        both feed the features the same way.)"""
        rate = float(f.funding_rate)
        self.funding = rate
        st = self.st
        nxt = f.next_funding_time_ms
        if nxt != st.funding_next:
            if 0 < st.funding_next < nxt:
                on_funding = getattr(self.strategy, "on_funding", None)
                if on_funding is not None:
                    on_funding(st.funding_rate, st.funding_next)
            st.funding_next = nxt
        st.funding_rate = rate

    # -- account / risk inputs ------------------------------------------------------------------
    def on_filters(self, f: SymbolFilters) -> None:
        self.filters = f

    def on_reconciled(self) -> None:
        self.st.reconciled = True

    def on_equity(self, e: m.EquityUpdated) -> None:
        self.st.equity = float(e.equity)
        if e.leverage_cap > 0:
            self.st.leverage_cap = e.leverage_cap

    def on_drawdown(self, d: m.DrawdownLevelChanged) -> None:
        st = self.st
        st.size_factor = d.size_factor
        st.tp_factor = d.tp_factor
        if d.leverage_cap > 0:
            st.leverage_cap = d.leverage_cap
        st.entries_allowed = not d.halted
        st.min_entry_conviction = d.min_entry_conviction if d.safe_mode else 0.0

    def on_trading_state(self, t: m.TradingStateChanged) -> None:
        """Portfolio trading state: entries only while ACTIVE (REDUCING/HALTED: exits only)."""
        self.st.trading_active = t.state is TradingState.ACTIVE

    def on_stop(self) -> None:
        self.st.stopping = True

    # -- order events ---------------------------------------------------------------------------
    def on_open_orders(self, r: m.OpenOrdersReported) -> None:
        self.st.open_orders = list(r.orders)
        # fills of an order reach us before the report that drops it, so this stays complete
        self.st.cid_meta = {row.client_order_id: (row.key, row.kind) for row in r.orders}
        for row in r.orders:
            self.st.inflight.pop(row.key, None)

    def on_placed(self, p: m.OrderPlaced) -> None:
        self.st.inflight.pop(p.key, None)
        self.st.cid_meta[p.client_order_id] = (p.key, self.st.kinds.get(p.key, KIND_ENTRY))

    def on_denied(self, d: m.OrderDenied) -> None:
        self.st.inflight.pop(d.key, None)
        self.st.denials += 1

    def on_fill(self, f: m.OrderFilled) -> list[m.Message]:
        """Own fill: position, strategy bookkeeping, then re-plan. Each trade id is applied
        once: the gateway sends fills straight here (in one order with the bar's kline, so live
        and backtest decide alike) and the OMS forwards them again (and the ones it finds at
        reconciliation)."""
        st = self.st
        if f.trade_id in st.trade_ids:
            return []
        st.trade_ids.append(f.trade_id)
        if len(st.trade_ids) > MAX_TRADE_IDS:
            del st.trade_ids[: len(st.trade_ids) - MAX_TRADE_IDS]
        signed = f.qty if f.side is Side.BUY else -f.qty
        old = st.position_qty
        new = old + signed
        ts_ms = f.ts_event_ns // 1_000_000
        if old == ZERO or (old > ZERO) != (new > ZERO) and new != ZERO:
            st.entry_price = f.price  # opened, or flipped through zero
            st.opened_ms = ts_ms
        elif abs(new) > abs(old):
            st.entry_price = (st.entry_price * abs(old) + f.price * f.qty) / abs(new)
        st.position_qty = new
        if new == ZERO:
            st.entry_price = ZERO
        key, kind = st.cid_meta.get(f.client_order_id, ("", KIND_ENTRY))
        self.strategy.on_fill(f.side, f.price, f.qty, kind, ts_ms, key or None)
        return self.plan(ts_ms, f.ts_event_ns, f.msg_id)

    # -- planning -------------------------------------------------------------------------------
    def risk_inputs(self) -> RiskInputs:
        """Budgets per side: equity x weight x leverage (1 on spot) x utilization."""
        st = self.st
        lev = 1.0 if self.market is Market.SPOT else st.leverage_cap
        budget = st.equity * self.weight * lev * self.utilization
        return RiskInputs(size_factor=st.size_factor, tp_factor=st.tp_factor,
                          entries_allowed=st.entries_allowed and st.trading_active,
                          min_entry_conviction=st.min_entry_conviction,
                          max_long_notional=budget,
                          max_short_notional=0.0 if self.market is Market.SPOT else budget,
                          equity=st.equity)

    def _views(self) -> list[OpenOrderView]:
        """OpenOrderViews of ``st.open_orders`` (frozen, so reused until the list is replaced;
        a fresh list per plan, as the strategy may keep it)."""
        rows = self.st.open_orders
        if self._views_of is not rows:
            self._views_cache = self._make_views(rows)
            self._views_of = rows
        return list(self._views_cache)

    @staticmethod
    def _make_views(rows: list[m.OpenOrderRow]) -> list[OpenOrderView]:
        out = []
        for r in rows:
            out.append(OpenOrderView(
                key=r.key, client_order_id=r.client_order_id, side=r.side,
                price=r.price if r.price is not None else ZERO, qty=r.qty - r.filled_qty,
                kind=r.kind, reduce_only=r.reduce_only,
                order_type=OrderType.LIMIT if r.price is not None else OrderType.MARKET))
        return out

    def plan(self, ts_ms: int, ts_event_ns: int, cause: str = "") -> list[m.Message]:
        """Desired orders → PlaceOrder / ModifyOrder / CancelOrder for risk; ``cause`` (the
        triggering kline's or fill's msg_id) becomes their correlation id."""
        if not self.ready or self.last_close <= 0:
            return []
        assert self.filters is not None
        st = self.st
        _bid, bid_qty, _ask, ask_qty = self.book
        # The reference price is the closed bar's close, the book adds only its imbalance:
        # live, the bookTicker and the kline of a bar close come on separate streams in either
        # order, and a plan must not depend on which won (backtest == live).
        mv = MarketView(last_price=self.last_close, bid_qty=bid_qty, ask_qty=ask_qty,
                        funding_rate=self.funding, ts_ms=ts_ms)
        pos = self._pos_view
        if pos is None or pos.qty is not st.position_qty or \
                pos.entry_price is not st.entry_price or pos.opened_ms != st.opened_ms:
            pos = self._pos_view = PositionView(qty=st.position_qty, entry_price=st.entry_price,
                                                opened_ms=st.opened_ms)
        acts = self.strategy.plan_actions(mv, pos, self._views(), self.risk_inputs(),
                                          self.filters, self.market)
        if not (acts.cancel or acts.modify or acts.place):
            return []
        v = self.last_values
        base_ctx = {} if v is None else {
            "b_up": v.b_up, "c_up": v.c_up, "b_down": v.b_down, "c_down": v.c_down,
            "b_neu": v.b_neu, "c_neu": v.c_neu, "L": v.L, "S": v.S, "atr": v.atr,
            "spacing_long": v.spacing_long, "spacing_short": v.spacing_short,
            "features": v.feature_dict()}
        hdr = {"symbol": self.symbol, "ts_event_ns": ts_event_ns, "correlation_id": cause}
        out: list[m.Message] = []
        for o, reason in acts.cancel:
            out.append(m.CancelOrder(**hdr, client_order_id=o.client_order_id, reason=reason))
        for o, d in acts.modify:
            if d.price is None:
                continue
            out.append(m.ModifyOrder(**hdr, client_order_id=o.client_order_id, side=d.side,
                                     price=d.price, qty=d.qty, reason=d.reason,
                                     strategy_context={**base_ctx, **d.context,
                                                       "reason": d.reason}))
        for d in acts.place:
            if d.key in st.inflight:
                continue  # already on its way through risk
            if d.kind in (KIND_TP, KIND_SL) and st.position_qty == ZERO:
                continue  # an exit with nothing to exit (e.g. after risk flattened on a halt)
            conv = 0.0 if v is None else (v.L if d.side is Side.BUY else v.S)
            st.inflight[d.key] = st.bars
            st.kinds[d.key] = d.kind
            out.append(m.PlaceOrder(
                **hdr, key=d.key, side=d.side, order_type=d.order_type, price=d.price,
                qty=d.qty, tif=TimeInForce.GTC if d.order_type is OrderType.LIMIT else None,
                reduce_only=d.reduce_only, kind=d.kind, conviction=conv, reason=d.reason,
                strategy_context={**base_ctx, **d.context, "reason": d.reason,
                                  "size": str(d.qty), "kind": d.kind}))
        return out


def restore_runner(params: StrategyParams, symbol: str, market: Market, weight: float,
                   utilization: float, leverage_cap: float, blob: bytes | None,
                   base_interval_ms: int = 60_000) -> StrategyRunner:
    """A runner from its snapshot bytes (None: a fresh one)."""
    state = msgspec.msgpack.decode(blob, type=RunnerState) if blob else None
    return StrategyRunner(params, symbol, market, weight, utilization, leverage_cap,
                          base_interval_ms, state)
