"""The risk service core of one symbol: pre-trade checks, reservations, PnL, halt/flatten.

Pure (no thespian, no I/O, no clock): the risk actor passes every message in with ``now_ns``
(from ``infra.clock``), persists the returned state when ``changed`` is set, then logs and
sends the effects (persist before you act). See docs/RISK.md for the behaviour in prose.

Order flow for one ``PlaceOrder``:

1. filters known, key not already live, ``models.risk.pre_trade_check`` (round to tick/step or
   deny; halt and safe-mode gates; max order notional; symbol worst-case exposure);
2. reduce-only orders go straight to the OMS (``SubmitOrder`` without reservation), also when
   halted or when the portfolio is unavailable;
3. any other order is held while the portfolio is asked (``ReserveExposure`` with the
   deterministic id ``"<SYMBOL>-<key>-<counter>"``, counter persisted), then submitted on
   ``ExposureReserved`` or denied on ``ExposureDenied``;
4. **fail closed**: no portfolio peer, or no answer within ``reservation_timeout_s`` → denied
   ``"portfolio unavailable"`` (an order that can only shrink the position still goes, as in
   ``models.risk.fail_closed``); a late grant is released again.

``ModifyOrder``: forwarded when the new notional (price x total qty) fits the notional already
reserved for the order; otherwise the difference is reserved first (same hold/timeout path).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.client_ids import client_order_id, generation_of
from models.enums import Market, OrderType, Side, TradingState
from models.filters import SymbolFilters
from models.pnl import ClosedTrade, PositionLedger
from models.risk import BrakeState, OrderIntent, RiskParams, limits_for, pre_trade_check

ZERO = Decimal(0)
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
#: Order key of the reduce-only market order that closes the position on a halt/flatten.
FLATTEN_KEY = "flatten"
MAX_FLATTEN_ATTEMPTS = 3
#: PlaceOrder/ModifyOrder message ids remembered (thespian re-delivers after an exception).
MAX_SEEN_MSGS = 128
#: Trade ids remembered for fill deduplication (older ones are covered by ``trade_floor``).
MAX_TRADE_IDS = 1000
#: A ledger/exchange position disagreement must persist this long before POSITION_MISMATCH.
MISMATCH_GRACE_NS = 5 * NS_PER_S
PORTFOLIO_UNAVAILABLE = "portfolio unavailable"


@dataclass
class RiskEffects:
    """What the actor must do after one message: persist (``changed``), log, send, arm
    fail-closed timers ``(delay_s, reservation_id)``."""

    sends: list[tuple[str, m.Message]] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    timers: list[tuple[float, str]] = field(default_factory=list)
    changed: bool = False

    def send(self, role: str, msg: m.Message) -> None:
        self.sends.append((role, msg))

    def log(self, event: str, level: str = "INFO", **ctx: Any) -> None:
        self.logs.append((event, level, ctx))


class OrderEntry(msgspec.Struct, kw_only=True):
    """An order risk handed to the OMS, live until its ``OrderEnded``."""

    key: str
    side: Side
    order_type: OrderType
    price: Decimal | None
    qty: Decimal
    reduce_only: bool = False
    kind: str = "ENTRY"
    reservation_ids: list[str] = msgspec.field(default_factory=list)
    reserved: Decimal = ZERO
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    #: spot cancel-replace: OrderEnded of generations below this belong to replaced orders
    min_generation: int = 0

    def remaining_notional(self) -> Decimal:
        """Reserved notional not yet filled (what still rests on the book)."""
        return max(ZERO, self.reserved - self.filled_notional)


class PendingRequest(msgspec.Struct, kw_only=True):
    """An order (or modify) held until the portfolio answers."""

    reservation_id: str
    key: str
    side: Side
    notional: Decimal
    deadline_ns: int
    reduces: bool = False
    submit: m.SubmitOrder | None = None
    modify: m.ModifyOrder | None = None
    conviction: float = 0.0



_Q8 = Decimal("1e-8")


def fmt_money(d: Decimal) -> str:
    """A Decimal for status output: at most 8 decimals, no trailing zeros, never exponents."""
    q = f"{d.quantize(_Q8):f}"
    return q.rstrip("0").rstrip(".") if "." in q else q


class RiskState(msgspec.Struct, kw_only=True):
    """Persistent state of a ``SymbolRiskCore`` (msgpack snapshot)."""

    ledger: PositionLedger
    counter: int = 0
    orders: dict[str, OrderEntry] = msgspec.field(default_factory=dict)
    pending: dict[str, PendingRequest] = msgspec.field(default_factory=dict)
    filters: SymbolFilters | None = None
    equity: Decimal = ZERO
    brake: BrakeState | None = None
    trading_state: TradingState = TradingState.ACTIVE
    mark: Decimal = ZERO
    mark_source: str = ""
    trade_ids: list[int] = msgspec.field(default_factory=list)
    trade_floor: int = -1
    flatten_wanted: bool = False
    flatten_attempts: int = 0
    flatten_counter: int = 0
    seen_msgs: list[tuple[str, str]] = msgspec.field(default_factory=list)
    last_reported: tuple[str, str, str] = ("", "", "")


class SymbolRiskCore:
    """Risk for one symbol (see the module docstring)."""

    def __init__(self, symbol: str, market: Market, weight: float, leverage_cap: float,
                 params: RiskParams, prefix: str = "gb", *,
                 reservation_timeout_s: float | None = None,
                 state: RiskState | None = None) -> None:
        self.symbol = symbol
        self.market = market
        self.weight = weight
        self.params = params
        self.prefix = prefix
        self.leverage_cap = leverage_cap
        #: RiskParams has ``reservation_timeout_s``; the argument overrides it (tests)
        self.timeout_s = (params.reservation_timeout_s if reservation_timeout_s is None
                          else reservation_timeout_s)
        if state is None:
            quote = "USDT"
            base = symbol[:-len(quote)] if symbol.endswith(quote) else ""
            state = RiskState(ledger=PositionLedger(symbol=symbol, market=market,
                                                    base_asset=base, quote_asset=quote))
        self.s = state
        self.s.ledger.market = market
        self.stopping = False  # graceful stop in progress (not persisted: a restart trades)
        self._seen: OrderedDict[str, str] = OrderedDict(state.seen_msgs)
        self._trade_ids = set(state.trade_ids)
        self._cid_keys: dict[str, str] = {}
        self._mismatch: tuple[Decimal, int] | None = None  # (exchange qty, since ns)
        self._mismatch_logged: Decimal | None = None

    # -- state --------------------------------------------------------------------------------
    def to_state(self) -> RiskState:
        """Snapshot (shares the ledger object; encode it right away)."""
        self.s.seen_msgs = list(self._seen.items())
        return self.s

    @property
    def ledger(self) -> PositionLedger:
        return self.s.ledger

    def brake(self) -> BrakeState:
        """The brake limits in force (the portfolio's last ``DrawdownLevelChanged``)."""
        b = self.s.brake or BrakeState(leverage_cap=self.leverage_cap)
        if self.s.trading_state is TradingState.HALTED and not b.halted:
            b = msgspec.structs.replace(b, halted=True, entries_allowed=False, reduce_only=True)
        return b

    def halted(self) -> bool:
        return self.brake().halted

    def resting(self, side: Side, exclude: str = "") -> Decimal:
        """Reserved, unfilled notional of live non-reduce-only orders on one side."""
        return sum((e.remaining_notional() for k, e in self.s.orders.items()
                    if e.side is side and not e.reduce_only and k != exclude), ZERO) + \
            sum((p.notional for p in self.s.pending.values()
                 if p.side is side and p.submit is not None and p.key != exclude), ZERO)

    def position_notional(self) -> Decimal:
        return self.ledger.qty * self.s.mark

    # -- helpers ------------------------------------------------------------------------------
    def _hdr(self, src: m.Message | None, now_ns: int) -> dict[str, Any]:
        corr = (src.correlation_id or src.msg_id) if src is not None else ""
        return {"symbol": self.symbol, "ts_event_ns": now_ns, "correlation_id": corr}

    def _deny(self, fx: RiskEffects, src: m.Message, now_ns: int, key: str, side: Side,
              reason: str, detail: str = "", stage: str = "risk") -> None:
        fx.send("strategy", m.OrderDenied(**self._hdr(src, now_ns), key=key, side=side,
                                          reason=reason, detail=detail))
        fx.log("RISK_BLOCKED", "WARNING", key=key, side=side, reason=reason, detail=detail,
               stage=stage)

    def _remember(self, msg_id: str, outcome: str) -> None:
        self._seen[msg_id] = outcome
        while len(self._seen) > MAX_SEEN_MSGS:
            self._seen.popitem(last=False)

    def _next_rid(self, key: str) -> str:
        self.s.counter += 1
        return f"{self.symbol}-{key}-{self.s.counter}"

    def key_of(self, cid: str) -> str | None:
        """The key of a live order from one of its client order ids (any generation)."""
        if cid in self._cid_keys:
            return self._cid_keys[cid]
        gen = generation_of(cid)
        if gen is None:
            return None
        for key in self.s.orders:
            try:
                if client_order_id(self.prefix, self.symbol, key, gen) == cid:
                    self._cid_keys[cid] = key
                    return key
            except ValueError:
                continue
        return None

    def _entry_by_rid(self, rid: str) -> tuple[str, OrderEntry] | None:
        for k, e in self.s.orders.items():
            if rid in e.reservation_ids:
                return k, e
        return None

    # -- dispatch -----------------------------------------------------------------------------
    def handle(self, msg: m.Message, now_ns: int, portfolio_up: bool = True) -> RiskEffects:
        """Apply one message; ``portfolio_up`` = the actor knows a portfolio peer."""
        fx = RiskEffects()
        handler = getattr(self, "_on_" + type(msg).__name__, None)
        if handler is not None:
            handler(fx, msg, now_ns, portfolio_up)
        self._check_mismatch(fx, now_ns)
        return fx

    # -- strategy commands --------------------------------------------------------------------
    def _on_PlaceOrder(self, fx: RiskEffects, msg: m.PlaceOrder, now_ns: int,
                       portfolio_up: bool) -> None:
        if msg.msg_id in self._seen:
            return  # re-delivery: already decided
        self._remember(msg.msg_id, "seen")
        fx.changed = True
        if self.s.filters is None:
            self._deny(fx, msg, now_ns, msg.key, msg.side, "NO_FILTERS",
                       "symbol filters not loaded yet")
            return
        if msg.key in self.s.orders or any(p.key == msg.key for p in self.s.pending.values()):
            self._deny(fx, msg, now_ns, msg.key, msg.side, "KEY_HAS_LIVE_ORDER")
            return
        brake = self.brake()
        limits = limits_for(self.params, self.s.equity, self.weight, brake,
                            self.resting(Side.BUY), self.resting(Side.SELL))
        intent = OrderIntent(symbol=self.symbol, side=msg.side, price=msg.price, qty=msg.qty,
                             reduce_only=msg.reduce_only, conviction=msg.conviction,
                             order_type=msg.order_type, key=msg.key)
        res = pre_trade_check(intent, self.s.filters, brake, self.ledger.qty, limits,
                              market=self.market, ref_price=self.s.mark or None)
        if res.approved and self.stopping and not res.reduces:
            res = msgspec.structs.replace(res, approved=False, reason="STOPPING",
                                          detail="graceful stop in progress")
        if not res.approved:
            reason = res.reason
            if reason in ("MAX_ORDER_NOTIONAL", "SYMBOL_EXPOSURE") and self.s.equity <= ZERO:
                reason = "NO_EQUITY"
            self._deny(fx, msg, now_ns, msg.key, msg.side, reason, res.detail)
            return
        sub = m.SubmitOrder(**self._hdr(msg, now_ns), key=msg.key, side=msg.side,
                            order_type=msg.order_type, price=res.price, qty=res.qty,
                            tif=msg.tif, reduce_only=msg.reduce_only, kind=msg.kind,
                            strategy_context=msg.strategy_context)
        if res.adjusted:
            fx.log("ORDER_ADJUSTED", "DEBUG", key=msg.key, side=msg.side, price=msg.price,
                   qty=msg.qty, new_price=res.price, new_qty=res.qty)
        if msg.reduce_only or (res.reduces and self.halted()):
            # reduce-only (and, while halted, any order that can only shrink the position,
            # e.g. a spot take-profit sell) needs no reservation
            self._submit(fx, sub, "", ZERO, f"risk-{self.symbol}-{msg.key}-{msg.msg_id}")
            return
        if not portfolio_up:
            self._fail_closed(fx, msg, now_ns, sub, res.reduces)
            return
        rid = self._next_rid(msg.key)
        self.s.pending[rid] = PendingRequest(
            reservation_id=rid, key=msg.key, side=msg.side, notional=res.notional,
            deadline_ns=now_ns + int(self.timeout_s * NS_PER_S), reduces=res.reduces,
            submit=sub, conviction=msg.conviction)
        fx.send("portfolio", m.ReserveExposure(**self._hdr(msg, now_ns), reservation_id=rid,
                                               side=msg.side, notional=res.notional))
        fx.timers.append((self.timeout_s, rid))

    def _fail_closed(self, fx: RiskEffects, src: m.Message, now_ns: int,
                     sub: m.SubmitOrder, reduces: bool) -> None:
        if reduces:  # can only shrink the position: allowed without a reservation
            self._submit(fx, sub, "", ZERO, f"risk-{self.symbol}-{sub.key}-{src.msg_id}")
            return
        self._deny(fx, src, now_ns, sub.key, sub.side, PORTFOLIO_UNAVAILABLE,
                   "no reservation answer: failing closed")

    def _submit(self, fx: RiskEffects, sub: m.SubmitOrder, rid: str, notional: Decimal,
                msg_id: str) -> None:
        sub = msgspec.structs.replace(sub, reservation_id=rid, msg_id=msg_id)
        self.s.orders[sub.key] = OrderEntry(
            key=sub.key, side=sub.side, order_type=sub.order_type, price=sub.price, qty=sub.qty,
            reduce_only=sub.reduce_only, kind=sub.kind,
            reservation_ids=[rid] if rid else [], reserved=notional)
        fx.changed = True
        fx.send("order", sub)

    def _on_ModifyOrder(self, fx: RiskEffects, msg: m.ModifyOrder, now_ns: int,
                        portfolio_up: bool) -> None:
        if msg.msg_id in self._seen:
            return
        self._remember(msg.msg_id, "seen")
        fx.changed = True
        key = self.key_of(msg.client_order_id)
        entry = self.s.orders.get(key) if key else None
        if entry is None:
            self._deny(fx, msg, now_ns, key or msg.client_order_id, msg.side, "UNKNOWN_ORDER",
                       "modify of an order risk does not hold")
            return
        if self.s.filters is None:
            self._deny(fx, msg, now_ns, entry.key, entry.side, "NO_FILTERS")
            return
        if any(p.key == entry.key for p in self.s.pending.values()):
            self._deny(fx, msg, now_ns, entry.key, entry.side, "KEY_PENDING",
                       "a reservation for this order is still pending")
            return
        brake = self.brake()
        limits = limits_for(self.params, self.s.equity, self.weight, brake,
                            self.resting(Side.BUY, exclude=entry.key),
                            self.resting(Side.SELL, exclude=entry.key))
        # no conviction on a modify: the safe-mode gate applies to new entries only
        intent = OrderIntent(symbol=self.symbol, side=entry.side, price=msg.price, qty=msg.qty,
                             reduce_only=entry.reduce_only, conviction=1.0,
                             order_type=OrderType.LIMIT, key=entry.key)
        res = pre_trade_check(intent, self.s.filters, brake, self.ledger.qty, limits,
                              market=self.market, ref_price=self.s.mark or None)
        if not res.approved:
            self._deny(fx, msg, now_ns, entry.key, entry.side, res.reason, res.detail)
            return
        assert res.price is not None
        fwd = msgspec.structs.replace(msg, price=res.price, qty=res.qty, side=entry.side,
                                      symbol=self.symbol)
        new_notional = res.price * res.qty
        if entry.reduce_only or not entry.reservation_ids or new_notional <= entry.reserved:
            self._forward_modify(fx, entry, fwd)
            return
        delta = new_notional - entry.reserved
        if not portfolio_up:
            self._deny(fx, msg, now_ns, entry.key, entry.side, PORTFOLIO_UNAVAILABLE,
                       "modify needs more exposure: failing closed")
            return
        rid = self._next_rid(entry.key)
        self.s.pending[rid] = PendingRequest(
            reservation_id=rid, key=entry.key, side=entry.side, notional=delta,
            deadline_ns=now_ns + int(self.timeout_s * NS_PER_S), modify=fwd)
        fx.send("portfolio", m.ReserveExposure(**self._hdr(msg, now_ns), reservation_id=rid,
                                               side=entry.side, notional=delta))
        fx.timers.append((self.timeout_s, rid))

    def _forward_modify(self, fx: RiskEffects, entry: OrderEntry, fwd: m.ModifyOrder) -> None:
        entry.price, entry.qty = fwd.price, fwd.qty
        if self.market is Market.SPOT:  # cancel-replace: the next generation carries the order
            gen = generation_of(fwd.client_order_id)
            if gen is not None:
                entry.min_generation = max(entry.min_generation, gen + 1)
        fx.changed = True
        fx.send("order", fwd)

    def _on_CancelOrder(self, fx: RiskEffects, msg: m.CancelOrder, now_ns: int,
                        portfolio_up: bool) -> None:
        fx.send("order", msg)

    def _on_CancelAllOrders(self, fx: RiskEffects, msg: m.CancelAllOrders, now_ns: int,
                            portfolio_up: bool) -> None:
        fx.send("order", msg)

    def _on_FlattenPosition(self, fx: RiskEffects, msg: m.FlattenPosition, now_ns: int,
                            portfolio_up: bool) -> None:
        fx.send("order", m.CancelAllOrders(**self._hdr(msg, now_ns),
                                           reason=msg.reason or "flatten"))
        self.s.flatten_attempts = 0
        self._flatten(fx, msg, now_ns, msg.reason or "flatten requested")

    def _flatten(self, fx: RiskEffects, src: m.Message, now_ns: int, reason: str) -> None:
        """Close the position with one reduce-only MARKET order (key ``flatten``)."""
        qty = abs(self.ledger.qty)
        f = self.s.filters
        if f is not None:
            qty = f.round_qty(qty, market=True)
            if qty < f.market_min_qty:
                qty = ZERO
        if qty <= ZERO or FLATTEN_KEY in self.s.orders:
            return
        if self.s.flatten_attempts >= MAX_FLATTEN_ATTEMPTS:
            fx.log("FLATTEN_FAILED", "ERROR", position_qty=self.ledger.qty,
                   detail=f"{MAX_FLATTEN_ATTEMPTS} flatten orders did not close the position")
            return
        self.s.flatten_attempts += 1
        self.s.flatten_counter += 1
        side = Side.SELL if self.ledger.qty > ZERO else Side.BUY
        sub = m.SubmitOrder(**self._hdr(src, now_ns), key=FLATTEN_KEY, side=side,
                            order_type=OrderType.MARKET, qty=qty,
                            # spot has no reduceOnly flag; a sell of the inventory only reduces
                            reduce_only=self.market is Market.FUTURES, kind="FLATTEN",
                            strategy_context={"reason": reason})
        fx.log("FLATTEN", "WARNING", side=side, qty=qty, reason=reason,
               attempt=self.s.flatten_attempts)
        self._submit(fx, sub, "", ZERO, f"risk-{self.symbol}-flatten-{self.s.flatten_counter}")

    # -- portfolio answers ----------------------------------------------------------------------
    def _on_ExposureReserved(self, fx: RiskEffects, msg: m.ExposureReserved, now_ns: int,
                             portfolio_up: bool) -> None:
        p = self.s.pending.pop(msg.reservation_id, None)
        if p is None:
            if self._entry_by_rid(msg.reservation_id) is None:  # late answer after a timeout
                fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                       reservation_id=msg.reservation_id))
            return
        fx.changed = True
        if p.submit is not None:
            if (self.halted() or self.stopping) and not p.reduces:
                fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                       reservation_id=p.reservation_id))
                self._deny(fx, p.submit, now_ns, p.key, p.side,
                           "HALTED" if self.halted() else "STOPPING", "after reservation")
                return
            self._submit(fx, p.submit, p.reservation_id, p.notional,
                         f"risk-{p.reservation_id}")
            return
        entry = self.s.orders.get(p.key)
        if p.modify is None or entry is None:  # the order ended meanwhile
            fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                   reservation_id=p.reservation_id))
            return
        entry.reservation_ids.append(p.reservation_id)
        entry.reserved += p.notional
        self._forward_modify(fx, entry, p.modify)

    def _on_ExposureDenied(self, fx: RiskEffects, msg: m.ExposureDenied, now_ns: int,
                           portfolio_up: bool) -> None:
        p = self.s.pending.pop(msg.reservation_id, None)
        if p is None:
            return
        fx.changed = True
        self._deny(fx, msg, now_ns, p.key, p.side, msg.reason, "portfolio", stage="portfolio")

    def expire(self, now_ns: int, only: str | None = None, force: bool = False) -> RiskEffects:
        """Fail closed on every held request whose deadline passed (``only``: that id;
        ``force``: its timer fired, whatever the clock says)."""
        fx = RiskEffects()
        for rid in [r for r, p in self.s.pending.items()
                    if (force or p.deadline_ns <= now_ns) and (only is None or r == only)]:
            p = self.s.pending.pop(rid)
            fx.changed = True
            fx.send("portfolio", m.ReleaseExposure(symbol=self.symbol, ts_event_ns=now_ns,
                                                   reservation_id=rid))
            if p.submit is not None:
                self._fail_closed(fx, p.submit, now_ns, p.submit, p.reduces)
            else:
                self._deny(fx, p.modify or p.submit, now_ns, p.key, p.side,
                           PORTFOLIO_UNAVAILABLE, "modify: no reservation answer")
        return fx

    def abort_pending(self, now_ns: int, reason: str = "risk restarted") -> RiskEffects:
        """After a restart: held requests can get no answer any more (the portfolio replies to
        the old address): deny them and release whatever the portfolio may have granted."""
        fx = RiskEffects()
        for rid, p in list(self.s.pending.items()):
            del self.s.pending[rid]
            fx.changed = True
            fx.send("portfolio", m.ReleaseExposure(symbol=self.symbol, ts_event_ns=now_ns,
                                                   reservation_id=rid))
            fx.send("strategy", m.OrderDenied(symbol=self.symbol, ts_event_ns=now_ns,
                                              key=p.key, side=p.side,
                                              reason=PORTFOLIO_UNAVAILABLE, detail=reason))
            fx.log("RISK_BLOCKED", "WARNING", key=p.key, side=p.side,
                   reason=PORTFOLIO_UNAVAILABLE, detail=reason, stage="restart")
        return fx

    # -- OMS events -----------------------------------------------------------------------------
    def _ts_ms(self, msg: m.Message, now_ns: int) -> int:
        return (msg.ts_event_ns or now_ns) // NS_PER_MS

    def _seen_trade(self, trade_id: int) -> bool:
        if trade_id <= self.s.trade_floor or trade_id in self._trade_ids:
            return True
        self._trade_ids.add(trade_id)
        self.s.trade_ids.append(trade_id)
        if len(self.s.trade_ids) > MAX_TRADE_IDS:
            self.s.trade_ids.sort()
            drop = self.s.trade_ids[:-MAX_TRADE_IDS]
            self.s.trade_floor = max(self.s.trade_floor, drop[-1])
            del self.s.trade_ids[:-MAX_TRADE_IDS]
            self._trade_ids = set(self.s.trade_ids)
        return False

    def _on_OrderFilled(self, fx: RiskEffects, msg: m.OrderFilled, now_ns: int,
                        portfolio_up: bool) -> None:
        if self._seen_trade(msg.trade_id):
            return
        fx.changed = True
        ts_ms = self._ts_ms(msg, now_ns)
        try:
            closed = self.ledger.apply_fill(msg.side, msg.price, msg.qty, msg.fee,
                                            msg.fee_asset, ts_ms=ts_ms)
        except ValueError as e:  # fee in an asset we cannot price: book it without the fee
            fx.log("FEE_UNCONVERTED", "ERROR", trade_id=msg.trade_id, fee=msg.fee,
                   fee_asset=msg.fee_asset, detail=str(e))
            closed = self.ledger.apply_fill(msg.side, msg.price, msg.qty, ts_ms=ts_ms)
        key = self.key_of(msg.client_order_id)
        if key is not None:
            e = self.s.orders[key]
            e.filled_qty += msg.qty
            e.filled_notional += msg.price * msg.qty
        if self.s.mark_source in ("", "fill"):
            self.s.mark, self.s.mark_source = msg.price, "fill"
        self._report_position(fx, msg, now_ns, force=True)
        for t in closed:
            self._trade_closed(fx, t, msg, now_ns)
        if self._mismatch is not None and self._mismatch[0] == self.ledger.qty:
            self._mismatch = None
        if self.ledger.qty == ZERO:
            self.s.flatten_wanted = False

    def _trade_closed(self, fx: RiskEffects, t: ClosedTrade, src: m.Message,
                      now_ns: int) -> None:
        fx.log("TRADE_CLOSED", "INFO", side=t.side, qty=t.qty, entry_price=t.entry_price,
               exit_price=t.exit_price, gross_pnl=t.gross_pnl, fees=t.fees, funding=t.funding,
               net_pnl=t.net_pnl, opened_ms=t.opened_ms, closed_ms=t.closed_ms,
               holding_s=t.holding_ms / 1000.0)
        fx.send("portfolio", m.TradeClosed(
            **self._hdr(src, now_ns), side=t.side, qty=t.qty, entry_price=t.entry_price,
            exit_price=t.exit_price, gross_pnl=t.gross_pnl, fees=t.fees, funding=t.funding,
            net_pnl=t.net_pnl, opened_ms=t.opened_ms, closed_ms=t.closed_ms))

    def position_report(self, now_ns: int, src: m.Message | None = None) -> m.PositionReported:
        """The symbol's position and PnL (``realized_pnl`` = gross; fees and funding apart)."""
        lg = self.ledger
        return m.PositionReported(**self._hdr(src, now_ns), qty=lg.qty, entry_price=lg.avg_entry,
                                  mark_price=self.s.mark, realized_pnl=lg.realized_gross,
                                  unrealized_pnl=lg.unrealized(self.s.mark), fees=lg.fees,
                                  funding=lg.funding)

    def _report_position(self, fx: RiskEffects, src: m.Message | None, now_ns: int,
                         force: bool = False) -> None:
        rep = self.position_report(now_ns, src)
        sig = (str(rep.qty), str(rep.unrealized_pnl), str(rep.realized_pnl - rep.fees
                                                         + rep.funding))
        if not force and sig == self.s.last_reported:
            return
        self.s.last_reported = sig  # dedupe only: not worth a snapshot write on its own
        fx.send("portfolio", rep)

    def _on_OrderEnded(self, fx: RiskEffects, msg: m.OrderEnded, now_ns: int,
                       portfolio_up: bool) -> None:
        found = self._entry_by_rid(msg.reservation_id) if msg.reservation_id else None
        if found is None and not msg.reservation_id:
            e = self.s.orders.get(msg.key)
            gen = generation_of(msg.client_order_id) if msg.client_order_id else None
            if e is not None and not e.reservation_ids and \
                    (gen is None or gen >= e.min_generation):
                found = (msg.key, e)
        if msg.reservation_id:  # release whatever is left (idempotent at the portfolio)
            rids = found[1].reservation_ids if found else [msg.reservation_id]
            filled = found[1].filled_notional if found else ZERO
            for i, rid in enumerate(rids):
                fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                       reservation_id=rid,
                                                       filled_notional=filled if i == 0
                                                       else ZERO))
        if found is None:
            return
        key, entry = found
        del self.s.orders[key]
        self._cid_keys = {c: k for c, k in self._cid_keys.items() if k != key}
        fx.changed = True
        if key == FLATTEN_KEY and self.s.flatten_wanted and self.ledger.qty != ZERO:
            self._flatten(fx, msg, now_ns, "position still open after flatten order")

    def _on_ReconciliationCompleted(self, fx: RiskEffects, msg: m.ReconciliationCompleted,
                                    now_ns: int, portfolio_up: bool) -> None:
        self._report_position(fx, msg, now_ns, force=True)

    # -- market data and account ----------------------------------------------------------------
    def _set_mark(self, fx: RiskEffects, src: m.Message, now_ns: int, price: Decimal,
                  source: str) -> None:
        if price <= ZERO:
            return
        # a mark alone is not persisted: after a restart the next update replaces it
        self.s.mark = price
        self.s.mark_source = source
        if self.ledger.qty != ZERO:
            self._report_position(fx, src, now_ns)

    def _on_MarkPriceUpdated(self, fx: RiskEffects, msg: m.MarkPriceUpdated, now_ns: int,
                             portfolio_up: bool) -> None:
        self._set_mark(fx, msg, now_ns, msg.mark_price, "mark")

    def _on_KlineClosed(self, fx: RiskEffects, msg: m.KlineClosed, now_ns: int,
                        portfolio_up: bool) -> None:
        if self.s.mark_source != "mark":
            self._set_mark(fx, msg, now_ns, Decimal(repr(msg.close)), "kline")

    def _on_BookUpdated(self, fx: RiskEffects, msg: m.BookUpdated, now_ns: int,
                        portfolio_up: bool) -> None:
        if self.s.mark_source != "mark" and msg.bid > 0 and msg.ask > 0:
            self._set_mark(fx, msg, now_ns,
                           (Decimal(repr(msg.bid)) + Decimal(repr(msg.ask))) / 2, "book")

    def _on_FundingPaid(self, fx: RiskEffects, msg: m.FundingPaid, now_ns: int,
                        portfolio_up: bool) -> None:
        if not self.ledger.apply_funding(msg.funding_id, msg.amount, self._ts_ms(msg, now_ns)):
            return
        fx.changed = True
        fx.log("FUNDING_PAID", "INFO", funding_id=msg.funding_id, amount=msg.amount)
        self._report_position(fx, msg, now_ns, force=True)

    def _on_PositionUpdated(self, fx: RiskEffects, msg: m.PositionUpdated, now_ns: int,
                            portfolio_up: bool) -> None:
        if msg.market is not self.market:
            return
        if msg.qty == self.ledger.qty:
            self._mismatch = None
            self._mismatch_logged = None
        elif self._mismatch is None or self._mismatch[0] != msg.qty:
            self._mismatch = (msg.qty, now_ns)  # fills may still be on their way: wait

    def _check_mismatch(self, fx: RiskEffects, now_ns: int) -> None:
        mm = self._mismatch
        if mm is None or now_ns - mm[1] < MISMATCH_GRACE_NS or self._mismatch_logged == mm[0]:
            return
        self._mismatch_logged = mm[0]
        fx.log("POSITION_MISMATCH", "WARNING", exchange_qty=mm[0], ledger_qty=self.ledger.qty,
               detail="exchange position disagrees with the fills risk has seen")

    def mismatch_pending(self) -> bool:
        """A position disagreement is waiting for its grace period."""
        return self._mismatch is not None and self._mismatch_logged != self._mismatch[0]

    def check(self, now_ns: int) -> RiskEffects:
        """Periodic check (timers): expiries and the position-mismatch grace."""
        fx = self.expire(now_ns)
        self._check_mismatch(fx, now_ns)
        return fx

    def _on_SymbolFiltersLoaded(self, fx: RiskEffects, msg: m.SymbolFiltersLoaded,
                                now_ns: int, portfolio_up: bool) -> None:
        if self.s.filters != msg.filters:
            self.s.filters = msg.filters
            fx.changed = True

    # -- portfolio broadcasts -------------------------------------------------------------------
    def _on_EquityUpdated(self, fx: RiskEffects, msg: m.EquityUpdated, now_ns: int,
                          portfolio_up: bool) -> None:
        if msg.equity != self.s.equity:
            self.s.equity = msg.equity
            fx.changed = True

    def _on_DrawdownLevelChanged(self, fx: RiskEffects, msg: m.DrawdownLevelChanged,
                                 now_ns: int, portfolio_up: bool) -> None:
        self.s.brake = BrakeState(
            level=msg.level, halted=msg.halted, size_factor=msg.size_factor,
            tp_factor=msg.tp_factor, leverage_cap=msg.leverage_cap,
            entries_allowed=not msg.halted, reduce_only=msg.halted,
            min_entry_conviction=msg.min_entry_conviction, safe_mode=msg.safe_mode,
            drawdown=msg.drawdown)
        if msg.halted:
            self.s.trading_state = TradingState.HALTED
        elif self.s.trading_state is TradingState.HALTED:
            self.s.trading_state = TradingState.ACTIVE
            self.s.flatten_wanted = False
        fx.changed = True

    def _on_TradingStateChanged(self, fx: RiskEffects, msg: m.TradingStateChanged,
                                now_ns: int, portfolio_up: bool) -> None:
        self.s.trading_state = msg.state
        if msg.state is not TradingState.HALTED:
            self.s.flatten_wanted = False
            if self.s.brake is not None and self.s.brake.halted:
                self.s.brake = msgspec.structs.replace(self.s.brake, halted=False,
                                                       entries_allowed=True, reduce_only=False)
        fx.changed = True

    def _on_HaltTrading(self, fx: RiskEffects, msg: m.HaltTrading, now_ns: int,
                        portfolio_up: bool) -> None:
        first = self.s.trading_state is not TradingState.HALTED or not self.s.flatten_wanted
        self.s.trading_state = TradingState.HALTED
        fx.changed = True
        fx.log("HALTED", "WARNING", reason=msg.reason, flatten=msg.flatten,
               position_qty=self.ledger.qty)
        if not msg.flatten:
            return
        fx.send("order", m.CancelAllOrders(**self._hdr(msg, now_ns),
                                           reason=f"halt: {msg.reason}"))
        if first:
            self.s.flatten_attempts = 0
        self.s.flatten_wanted = True
        self._flatten(fx, msg, now_ns, f"halt: {msg.reason}")

    def _on_StopTrading(self, fx: RiskEffects, msg: m.StopTrading, now_ns: int,
                        portfolio_up: bool) -> None:
        self.stopping = True

    # -- status -----------------------------------------------------------------------------------
    def _leverage(self) -> float:
        eq = self.s.equity
        return round(float(abs(self.ledger.qty * self.s.mark) / eq), 4) if eq > ZERO else 0.0

    def status_line(self) -> dict[str, Any]:
        """The backtest's periodic STATUS fields (the same values as ``status``)."""
        lg = self.ledger
        b = self.s.brake
        level = b.level if b is not None else 0
        return {"position": fmt_money(lg.qty), "entry_price": fmt_money(lg.avg_entry),
                "unrealized_pnl": fmt_money(lg.unrealized(self.s.mark)),
                "realized_pnl": fmt_money(lg.realized_net), "open_orders": len(self.s.orders),
                "leverage": self._leverage(), "drawdown_level": level}

    def status(self) -> dict[str, Any]:
        """Fields for ``run.py status`` and the supervisor's STATUS line."""
        lg, mark = self.ledger, self.s.mark
        eq = self.s.equity
        b = self.brake()
        return {
            "position": fmt_money(lg.qty), "entry_price": fmt_money(lg.avg_entry),
            "mark_price": fmt_money(mark), "unrealized_pnl": fmt_money(lg.unrealized(mark)),
            "realized_pnl": fmt_money(lg.realized_net), "fees": fmt_money(lg.fees),
            "funding": fmt_money(lg.funding), "equity": fmt_money(eq),
            "leverage": self._leverage(),
            "leverage_cap": b.leverage_cap, "drawdown_level": b.level,
            "drawdown": round(b.drawdown, 6), "trading_state": self.s.trading_state.value,
            "live_orders": len(self.s.orders), "pending_reservations": len(self.s.pending),
            "closed_trades": lg.closed_trades, "halted": b.halted,
        }


_state_decoder = msgspec.msgpack.Decoder(RiskState)
_encoder = msgspec.msgpack.Encoder()


def encode_risk_state(state: RiskState) -> bytes:
    """msgpack bytes of a risk snapshot."""
    return _encoder.encode(state)


def decode_risk_state(blob: bytes) -> RiskState:
    """Inverse of ``encode_risk_state``."""
    return _state_decoder.decode(blob)


__all__ = ["FLATTEN_KEY", "OrderEntry", "PendingRequest", "RiskEffects", "RiskState",
           "SymbolRiskCore", "decode_risk_state", "encode_risk_state"]
