"""The OMS service core: turns commands and exchange events into ledger changes and effects.

Pure (no I/O, no clock): the order actor feeds it messages, persists the returned state and
effects in one transaction (snapshot + outbox + order rows + fills), and only then sends the
effects' messages. Timestamps come from the messages (sim time in replays).

Rules it enforces:

* an intent becomes a PENDING_NEW record with a deterministic client order id *before*
  ``SendOrder`` leaves (outbox entry ``SEND_ORDER``);
* a re-delivered or repeated intent never creates a second order (``OrderLedger.create`` is
  idempotent by intent id and by live key); an order whose outcome is unknown is *queried*,
  never resent;
* fills are applied once (trade id), and every terminal order produces ``OrderEnded`` so risk
  releases its reservation;
* no new order is sent before reconciliation with the exchange succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.enums import Market, OrderType, Side
from models.filters import SymbolFilters
from models.order_ledger import LedgerState, OrderLedger, reconcile
from models.order_states import IllegalTransition, OrderState, Trigger
from models.orders import OrderRecord, OrderView, OverFill, new_order

ZERO = Decimal(0)
NS = 1_000_000
#: order key of the reduce-only order that closes the position on a graceful stop
FLATTEN_KEY = "flatten"
MAX_FLATTEN_ATTEMPTS = 3
_IN_FLIGHT = frozenset({OrderState.PENDING_NEW, OrderState.PENDING_CANCEL,
                        OrderState.PENDING_MODIFY})
#: terminal records stay in the in-memory ledger this long (event time) after their last
#: update: late or repeated events of an ended order still find it; older ones only live in
#: the store's ``orders`` table (without pruning, every ledger scan and snapshot grows with
#: the bot's whole history)
TERMINAL_KEEP_MS = 24 * 3_600_000
#: prune once the ledger has grown by this many records since the last prune
PRUNE_EVERY = 256


@dataclass
class Effects:
    """What the actor must persist and send after one message."""

    sends: list[tuple[str, m.Message]] = field(default_factory=list)
    outbox: list[tuple[str, str, bytes]] = field(default_factory=list)
    orders: list[OrderRecord] = field(default_factory=list)
    fills: list[dict[str, Any]] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    queries_later: list[str] = field(default_factory=list)
    done_refs: list[str] = field(default_factory=list)
    changed: bool = False

    def send(self, role: str, msg: m.Message) -> None:
        self.sends.append((role, msg))

    def log(self, event: str, level: str = "INFO", **ctx: Any) -> None:
        self.logs.append((event, level, ctx))


class OmsState(msgspec.Struct, kw_only=True):
    """Persistent state of the OMS (msgpack snapshot)."""

    ledger: LedgerState
    reconciled: bool = False
    last_trade_id: int = 0
    halted: bool = False
    position_qty: Decimal = ZERO
    stopping: str = ""
    flatten_attempts: int = 0


def order_row(rec: OrderRecord) -> dict[str, Any]:
    """The ``orders`` table row of a record (exact decimals as text)."""
    return {
        "client_order_id": rec.client_order_id,
        "exchange_order_id": rec.exchange_order_id,
        "symbol": rec.symbol, "side": rec.side.value, "type": rec.type.value,
        "status": rec.state.value, "price": None if rec.price is None else str(rec.price),
        "orig_qty": str(rec.qty), "executed_qty": str(rec.filled_qty),
        "cummulative_quote_qty": str(rec.quote_filled), "key": rec.key,
        "generation": rec.generation, "reduce_only": int(rec.reduce_only),
        "created_at": rec.created_ms / 1000.0,
    }


class OmsCore:
    """Order management for one symbol."""

    def __init__(self, symbol: str, market: Market, prefix: str, *,
                 adopt_unknown: bool = False, state: OmsState | None = None) -> None:
        self.symbol = symbol
        self.market = market
        self.adopt_unknown = adopt_unknown
        if state is None:
            state = OmsState(ledger=OrderLedger(prefix, symbol).to_state())
        self.ledger = OrderLedger.from_state(state.ledger)
        self.reconciled = False  # always reconcile again after a (re)start
        self.last_trade_id = state.last_trade_id
        self.halted = state.halted
        #: net position from our fills (futures: reset to the exchange's at reconciliation)
        self.position_qty = state.position_qty
        #: "" while trading; the StopTrading mode once a graceful stop began
        self.stopping = state.stopping
        self.flatten_attempts = state.flatten_attempts
        self.filters: SymbolFilters | None = None
        self._prune_at = PRUNE_EVERY

    def to_state(self) -> OmsState:
        """Snapshot."""
        return OmsState(ledger=self.ledger.to_state(), reconciled=self.reconciled,
                        last_trade_id=self.last_trade_id, halted=self.halted,
                        position_qty=self.position_qty, stopping=self.stopping,
                        flatten_attempts=self.flatten_attempts)

    # -- helpers ------------------------------------------------------------------------------
    def _hdr(self, src: m.Message) -> dict[str, Any]:
        return {"symbol": self.symbol, "ts_event_ns": src.ts_event_ns,
                "correlation_id": src.correlation_id or src.msg_id}

    def _ended(self, fx: Effects, rec: OrderRecord, src: m.Message) -> None:
        fx.send("risk", m.OrderEnded(**self._hdr(src), client_order_id=rec.client_order_id,
                                     key=rec.key, status=rec.state.value,
                                     filled_qty=rec.filled_qty,
                                     reservation_id=rec.reservation_id))
        fx.log(f"ORDER_{rec.state.value}" if rec.state.value != "FILLED" else "ORDER_DONE",
               "INFO", client_order_id=rec.client_order_id, key=rec.key,
               filled_qty=rec.filled_qty, reason=rec.reason)

    def _store(self, fx: Effects, before: OrderRecord | None, after: OrderRecord,
               src: m.Message) -> None:
        if before is after:
            return
        fx.orders.append(after)
        fx.changed = True
        if before is not None and before.state in _IN_FLIGHT and after.state != before.state:
            fx.done_refs.append(after.client_order_id)
        if after.is_open is False and (before is None or before.is_open):
            self._ended(fx, after, src)

    def open_orders_report(self, src: m.Message) -> m.OpenOrdersReported:
        """The live orders, for the strategy's planner."""
        rows = [m.OpenOrderRow(client_order_id=r.client_order_id, key=r.key, side=r.side,
                               price=r.pending_price if r.pending_price is not None else r.price,
                               qty=r.pending_qty if r.pending_qty is not None else r.qty,
                               filled_qty=r.filled_qty, kind=r.kind,
                               reduce_only=r.reduce_only, status=r.state.value,
                               exchange_order_id=r.exchange_order_id or 0)
                for r in self.ledger.open_orders()]
        return m.OpenOrdersReported(**self._hdr(src), orders=rows)

    def _deny(self, fx: Effects, msg: m.SubmitOrder, reason: str) -> None:
        fx.send("risk", m.OrderEnded(**self._hdr(msg), client_order_id="", key=msg.key,
                                     status="DENIED", reservation_id=msg.reservation_id))
        fx.send("strategy", m.OrderDenied(**self._hdr(msg), key=msg.key, side=msg.side,
                                          reason=reason))
        fx.log("RISK_BLOCKED", "WARNING", key=msg.key, side=msg.side, reason=reason,
               stage="oms")

    # -- commands -------------------------------------------------------------------------------
    def submit(self, msg: m.SubmitOrder) -> Effects:
        """A risk-approved order: persist the intent, then send it."""
        fx = Effects()
        if not self.reconciled:
            self._deny(fx, msg, "NOT_RECONCILED")
            return fx
        if self.halted and not msg.reduce_only:
            self._deny(fx, msg, "HALTED")
            return fx
        if self.stopping and msg.key != FLATTEN_KEY:
            self._deny(fx, msg, "STOPPING")
            return fx
        ts_ms = msg.ts_event_ns // NS
        rec, created = self.ledger.create(
            key=msg.key, side=msg.side, qty=msg.qty, ts_ms=ts_ms, intent_id=msg.msg_id,
            price=msg.price, order_type=msg.order_type, tif=msg.tif,
            reduce_only=msg.reduce_only, kind=msg.kind, reservation_id=msg.reservation_id)
        if not created:
            if rec.intent_id != msg.msg_id:
                self._deny(fx, msg, "KEY_HAS_LIVE_ORDER")
            return fx  # re-delivery of an intent we already hold: nothing to resend
        send = m.SendOrder(**self._hdr(msg), client_order_id=rec.client_order_id,
                           side=rec.side, order_type=rec.type, price=rec.price, qty=rec.qty,
                           tif=rec.tif, reduce_only=rec.reduce_only)
        fx.outbox.append(("SEND_ORDER", rec.client_order_id, m.encode_msgpack(send)))
        fx.orders.append(rec)
        fx.changed = True
        fx.send("gateway", send)
        fx.send("strategy", m.OrderPlaced(**self._hdr(msg), client_order_id=rec.client_order_id,
                                          key=rec.key, side=rec.side, order_type=rec.type,
                                          price=rec.price, qty=rec.qty,
                                          reduce_only=rec.reduce_only,
                                          strategy_context=msg.strategy_context))
        fx.log("ORDER_PLACED", "INFO", client_order_id=rec.client_order_id, key=rec.key,
               side=rec.side, type=rec.type, price=rec.price, qty=rec.qty,
               reduce_only=rec.reduce_only, kind=rec.kind,
               strategy_context=msg.strategy_context)
        return fx

    def cancel(self, msg: m.CancelOrder) -> Effects:
        """Cancel one order (idempotent: a second request for a pending cancel is a no-op)."""
        fx = Effects()
        rec = self.ledger.get(msg.client_order_id)
        if rec is None or not rec.is_open:
            return fx
        if rec.state.value == "PENDING_CANCEL":
            return fx
        after = self.ledger.trigger(rec.client_order_id, Trigger.CANCEL_REQUEST,
                                    ts_ms=msg.ts_event_ns // NS)
        self._store(fx, rec, after, msg)
        send = m.SendCancel(**self._hdr(msg), client_order_id=rec.client_order_id)
        fx.outbox.append(("SEND_CANCEL", rec.client_order_id, m.encode_msgpack(send)))
        fx.send("gateway", send)
        fx.log("ORDER_CANCEL_REQUESTED", "INFO", client_order_id=rec.client_order_id,
               reason=msg.reason)
        return fx

    def cancel_all(self, msg: m.CancelAllOrders) -> Effects:
        """Cancel every open order of the symbol."""
        fx = Effects()
        for rec in self.ledger.open_orders():
            sub = self.cancel(m.CancelOrder(**self._hdr(msg), client_order_id=rec.client_order_id,
                                            reason=msg.reason))
            _merge(fx, sub)
        return fx

    def modify(self, msg: m.ModifyOrder) -> Effects:
        """Futures: in-place modify. Spot: cancel-replace to the key's next generation."""
        fx = Effects()
        rec = self.ledger.get(msg.client_order_id)
        if rec is None or rec.state.value not in ("NEW", "PARTIALLY_FILLED"):
            return fx
        if msg.qty <= rec.filled_qty:
            return self.cancel(m.CancelOrder(**self._hdr(msg),
                                             client_order_id=rec.client_order_id,
                                             reason="modify below filled qty"))
        ts_ms = msg.ts_event_ns // NS
        if self.market is Market.FUTURES:
            after = self.ledger.trigger(rec.client_order_id, Trigger.MODIFY_REQUEST, ts_ms=ts_ms,
                                        price=msg.price, qty=msg.qty)
            self._store(fx, rec, after, msg)
            send = m.SendModify(**self._hdr(msg), client_order_id=rec.client_order_id,
                                side=rec.side, price=msg.price, qty=msg.qty)
        else:
            new = new_order(prefix=self.ledger.prefix, symbol=self.symbol, key=rec.key,
                            generation=self.ledger.next_generation(rec.key), side=rec.side,
                            qty=msg.qty - rec.filled_qty, price=msg.price,
                            order_type=rec.type, tif=rec.tif, reduce_only=rec.reduce_only,
                            kind=rec.kind, reservation_id=rec.reservation_id,
                            intent_id=msg.msg_id, ts_ms=ts_ms)
            after = self.ledger.trigger(rec.client_order_id, Trigger.CANCEL_REQUEST, ts_ms=ts_ms)
            after = msgspec.structs.replace(after, reservation_id="")  # passed to the new one
            self.ledger.put(after)
            self.ledger.put(new)
            self._store(fx, rec, after, msg)
            fx.orders.append(new)
            send = m.SendModify(**self._hdr(msg), client_order_id=rec.client_order_id,
                                new_client_order_id=new.client_order_id, side=rec.side,
                                price=msg.price, qty=new.qty)
        fx.outbox.append(("SEND_MODIFY", rec.client_order_id, m.encode_msgpack(send)))
        fx.send("gateway", send)
        fx.log("ORDER_MODIFY_REQUESTED", "INFO", client_order_id=rec.client_order_id,
               new_client_order_id=send.new_client_order_id, price=msg.price, qty=msg.qty,
               reason=msg.reason, strategy_context=msg.strategy_context)
        return fx

    def set_filters(self, filters: SymbolFilters) -> None:
        """Exchange filters (used to size the flatten order)."""
        self.filters = filters

    def set_halted(self, halted: bool) -> None:
        """While halted only reduce-only orders are sent."""
        self.halted = halted

    # -- exchange events --------------------------------------------------------------------------
    def on_event(self, ev: m.Message) -> Effects:
        """Apply one gateway event."""
        handler = getattr(self, "_on_" + type(ev).__name__, None)
        if handler is None:
            return Effects()
        fx = handler(ev)
        if len(self.ledger) >= self._prune_at:
            self.prune(ev.ts_event_ns // NS - TERMINAL_KEEP_MS)
        return fx

    def prune(self, before_ms: int) -> int:
        """Forget terminal orders last updated before ``before_ms`` (called from ``on_event``
        every ``PRUNE_EVERY`` new records with ``TERMINAL_KEEP_MS``); returns how many."""
        n = self.ledger.prune(before_ms)
        self._prune_at = len(self.ledger) + PRUNE_EVERY
        return n

    def _trigger(self, ev: m.Message, cid: str, trigger: Trigger, **kw: Any) -> Effects:
        fx = Effects()
        rec = self.ledger.get(cid)
        if rec is None:
            fx.log("UNKNOWN_ORDER_EVENT", "WARNING", client_order_id=cid,
                   event_type=type(ev).__name__)
            return fx
        try:
            after = self.ledger.trigger(cid, trigger, ts_ms=ev.ts_event_ns // NS, **kw)
        except IllegalTransition as e:
            fx.log("ORDER_CONFLICT", "ERROR", client_order_id=cid, detail=str(e))
            fx.send("gateway", m.QueryOrder(**self._hdr(ev), client_order_id=cid))
            return fx
        self._store(fx, rec, after, ev)
        return fx

    def _on_OrderAccepted(self, ev: m.OrderAccepted) -> Effects:
        return self._trigger(ev, ev.client_order_id, Trigger.ACK,
                             exchange_order_id=ev.exchange_order_id)

    def _on_OrderRejected(self, ev: m.OrderRejected) -> Effects:
        fx = self._trigger(ev, ev.client_order_id, Trigger.REJECT, code=ev.code,
                           reason=ev.reason)
        fx.log("ORDER_REJECTED", "WARNING", client_order_id=ev.client_order_id, code=ev.code,
               reason=ev.reason)
        return fx

    def _on_OrderCanceled(self, ev: m.OrderCanceled) -> Effects:
        return self._trigger(ev, ev.client_order_id, Trigger.CANCEL_ACK, reason=ev.reason)

    def _on_OrderExpired(self, ev: m.OrderExpired) -> Effects:
        return self._trigger(ev, ev.client_order_id, Trigger.EXPIRE, reason=ev.reason)

    def _on_OrderCancelRejected(self, ev: m.OrderCancelRejected) -> Effects:
        fx = self._trigger(ev, ev.client_order_id, Trigger.CANCEL_REJECT, code=ev.code,
                           reason=ev.reason)
        fx.send("gateway", m.QueryOrder(**self._hdr(ev), client_order_id=ev.client_order_id))
        return fx

    def _on_OrderModified(self, ev: m.OrderModified) -> Effects:
        if ev.new_client_order_id:  # spot cancel-replace: old canceled, new acknowledged
            fx = self._trigger(ev, ev.client_order_id, Trigger.CANCEL_ACK,
                               reason="cancel-replace")
            _merge(fx, self._trigger(ev, ev.new_client_order_id, Trigger.ACK))
            return fx
        return self._trigger(ev, ev.client_order_id, Trigger.MODIFY_ACK, price=ev.price,
                             qty=ev.qty)

    def _on_OrderModifyRejected(self, ev: m.OrderModifyRejected) -> Effects:
        rec = self.ledger.get(ev.client_order_id)
        if rec is not None and rec.state.value == "PENDING_CANCEL":  # spot cancel-replace
            fx = self._trigger(ev, ev.client_order_id, Trigger.CANCEL_REJECT, code=ev.code,
                               reason=ev.reason)
            for r in self.ledger.open_orders():
                if r.key == rec.key and r.client_order_id != rec.client_order_id \
                        and r.state.value == "PENDING_NEW":
                    after = self.ledger.trigger(r.client_order_id, Trigger.REJECT,
                                                ts_ms=ev.ts_event_ns // NS, code=ev.code,
                                                reason="cancel-replace refused")
                    self._store(fx, r, after, ev)
        else:
            fx = self._trigger(ev, ev.client_order_id, Trigger.MODIFY_REJECT, code=ev.code,
                               reason=ev.reason)
        # fall back to cancel + new: cancel now; the strategy re-places on its next plan
        _merge(fx, self.cancel(m.CancelOrder(**self._hdr(ev), client_order_id=ev.client_order_id,
                                             reason=f"modify refused: {ev.reason}")))
        return fx

    def _on_OrderOutcomeUnknown(self, ev: m.OrderOutcomeUnknown) -> Effects:
        fx = self._trigger(ev, ev.client_order_id, Trigger.UNKNOWN_OUTCOME)
        fx.queries_later.append(ev.client_order_id)
        fx.log("ORDER_OUTCOME_UNKNOWN", "WARNING", client_order_id=ev.client_order_id,
               detail=ev.detail)
        return fx

    def _on_OrderStatusReported(self, ev: m.OrderStatusReported) -> Effects:
        fx = Effects()
        rec = self.ledger.get(ev.client_order_id)
        if rec is None:
            return fx
        view = OrderView(client_order_id=ev.client_order_id,
                         exchange_order_id=ev.exchange_order_id, side=rec.side, price=ev.price,
                         qty=ev.qty or rec.qty, filled_qty=ev.executed_qty,
                         status=ev.status or "NEW", found=ev.found)
        try:
            after = self.ledger.status(ev.client_order_id, view, ev.ts_event_ns // NS)
        except IllegalTransition as e:
            fx.log("ORDER_CONFLICT", "ERROR", client_order_id=ev.client_order_id, detail=str(e))
            return fx
        self._store(fx, rec, after, ev)
        if after.missing_fill_qty > ZERO:
            fx.send("gateway", m.RequestReconciliation(**self._hdr(ev),
                                                       since_trade_id=self.last_trade_id))
        return fx

    def _on_OrderFilled(self, ev: m.OrderFilled) -> Effects:
        fx = Effects()
        rec = self.ledger.get(ev.client_order_id)
        if rec is None and ev.exchange_order_id:
            rec = self.ledger.by_exchange_id(ev.exchange_order_id)
        if rec is None:
            fx.log("UNMATCHED_FILL", "WARNING", trade_id=ev.trade_id,
                   client_order_id=ev.client_order_id, qty=ev.qty, price=ev.price)
            return fx
        try:
            after, applied = self.ledger.fill(rec.client_order_id, ev.trade_id, ev.price, ev.qty,
                                              ev.fee, ev.fee_asset, ev.ts_event_ns // NS)
        except (OverFill, IllegalTransition) as e:
            fx.log("ORDER_CONFLICT", "ERROR", client_order_id=rec.client_order_id, detail=str(e))
            fx.send("gateway", m.RequestReconciliation(**self._hdr(ev),
                                                       since_trade_id=self.last_trade_id))
            return fx
        if not applied:
            return fx
        self.last_trade_id = max(self.last_trade_id, ev.trade_id)
        self.position_qty += ev.qty if ev.side is Side.BUY else -ev.qty
        fx.fills.append({"symbol": self.symbol, "trade_id": ev.trade_id,
                         "client_order_id": rec.client_order_id, "side": ev.side.value,
                         "price": ev.price, "qty": ev.qty, "fee": ev.fee,
                         "fee_asset": ev.fee_asset, "ts_ms": ev.ts_event_ns // NS})
        fill = msgspec.structs.replace(ev, client_order_id=rec.client_order_id,
                                       cum_qty=after.filled_qty, order_status=after.state.value)
        fx.send("risk", fill)
        fx.send("strategy", fill)
        fx.log("ORDER_FILLED", "INFO", client_order_id=rec.client_order_id, key=rec.key,
               kind=rec.kind, trade_id=ev.trade_id, side=ev.side, price=ev.price, qty=ev.qty,
               fee=ev.fee, fee_asset=ev.fee_asset, maker=ev.maker, cum_qty=after.filled_qty,
               realized_pnl=ev.realized_pnl)
        self._store(fx, rec, after, ev)
        return fx

    def _on_ExchangeSnapshotReceived(self, ev: m.ExchangeSnapshotReceived) -> Effects:
        fx = Effects()
        plan = reconcile(self.ledger, ev.open_orders, ev.trades, adopt_unknown=self.adopt_unknown)
        for f in plan.fills:
            sub = self._on_OrderFilled(m.OrderFilled(
                **self._hdr(ev), client_order_id=f.client_order_id, trade_id=f.trade_id,
                side=self.ledger.get(f.client_order_id).side, price=f.price, qty=f.qty,
                fee=f.fee, fee_asset=f.fee_asset))
            _merge(fx, sub)
        for st in plan.statuses:
            rec = self.ledger.get(st.client_order_id)
            try:
                after = self.ledger.status(st.client_order_id, st.view, ev.ts_event_ns // NS)
            except IllegalTransition as e:
                fx.log("ORDER_CONFLICT", "ERROR", client_order_id=st.client_order_id,
                       detail=str(e))
                continue
            self._store(fx, rec, after, ev)
        for cid in plan.to_query:
            fx.send("gateway", m.QueryOrder(**self._hdr(ev), client_order_id=cid))
        for v in plan.to_adopt:
            rec = self.ledger.adopt(v, ev.ts_event_ns // NS)
            self._store(fx, None, rec, ev)
        for v in plan.to_cancel:
            fx.send("gateway", m.SendCancel(**self._hdr(ev), client_order_id=v.client_order_id))
        for t in plan.unmatched_trades:
            fx.log("UNMATCHED_FILL", "WARNING", trade_id=t.trade_id,
                   client_order_id=t.client_order_id, qty=t.qty, price=t.price)
        if ev.trades:
            self.last_trade_id = max(self.last_trade_id, max(t.trade_id for t in ev.trades))
        if self.market is Market.FUTURES:
            self.position_qty = ev.position_qty  # the exchange's one-way position is the truth
        self.reconciled = True
        fx.changed = True
        done = m.ReconciliationCompleted(
            **self._hdr(ev), fills_applied=len(plan.fills), orders_closed=len(plan.statuses),
            orders_adopted=len(plan.to_adopt), orders_canceled=len(plan.to_cancel),
            ok=True, detail=f"{len(plan.to_query)} orders queried")
        fx.send("risk", done)
        fx.send("strategy", done)
        fx.log("RECONCILED", "INFO", fills_applied=len(plan.fills), queried=len(plan.to_query),
               adopted=len(plan.to_adopt), canceled=len(plan.to_cancel),
               unmatched_trades=len(plan.unmatched_trades),
               open_orders=len(self.ledger.open_orders()))
        return fx

    def _on_Reconnected(self, ev: m.Reconnected) -> Effects:
        fx = Effects()
        fx.send("gateway", m.RequestReconciliation(**self._hdr(ev),
                                                   since_trade_id=self.last_trade_id))
        return fx

    # -- graceful stop ------------------------------------------------------------------------------
    def stop(self, msg: m.StopTrading) -> Effects:
        """No new orders from now on; ``cancel-only`` cancels every open order, ``flatten``
        also closes the position with a reduce-only market order, ``leave`` keeps both at the
        exchange. Idempotent (a re-delivered stop does nothing new)."""
        first = not self.stopping
        self.stopping = msg.mode or "flatten"
        if self.stopping == "leave":  # orders and position stay at the exchange
            fx = Effects()
        else:
            fx = self.cancel_all(m.CancelAllOrders(**self._hdr(msg),
                                                   reason=f"stop ({self.stopping})"))
        fx.changed = True
        if first:
            fx.log("STOPPING", "INFO", mode=self.stopping, position_qty=self.position_qty,
                   open_orders=len(self.ledger.open_orders()))
        if self.stopping == "flatten":
            _merge(fx, self._flatten(msg))
        return fx

    def flatten_qty(self) -> Decimal:
        """The quantity a reduce-only market order can close now (0 if below the filters)."""
        q = abs(self.position_qty)
        if self.filters is not None:
            q = self.filters.round_qty(q, market=True)
            if q < self.filters.market_min_qty or q <= ZERO:
                return ZERO
        return q

    def _flatten(self, src: m.Message) -> Effects:
        fx = Effects()
        q = self.flatten_qty()
        live = [r for r in self.ledger.open_orders() if r.key == FLATTEN_KEY]
        if q <= ZERO or live or not self.reconciled:
            return fx
        if self.flatten_attempts >= MAX_FLATTEN_ATTEMPTS:
            if self.flatten_attempts == MAX_FLATTEN_ATTEMPTS:
                self.flatten_attempts += 1
                fx.changed = True
                fx.log("FLATTEN_FAILED", "ERROR", position_qty=self.position_qty,
                       detail=f"{MAX_FLATTEN_ATTEMPTS} flatten orders did not close the position")
            return fx
        self.flatten_attempts += 1
        side = Side.SELL if self.position_qty > ZERO else Side.BUY
        sub = m.SubmitOrder(**self._hdr(src), key=FLATTEN_KEY, side=side,
                            order_type=OrderType.MARKET, qty=q,
                            reduce_only=self.market is Market.FUTURES, kind="FLATTEN",
                            msg_id=f"{FLATTEN_KEY}-{self.ledger.next_generation(FLATTEN_KEY)}")
        return self.submit(sub)

    def stop_progress(self, src: m.Message) -> Effects:
        """While stopping: flatten once the cancels are through (a fill may have changed the
        position). The actor calls this after every event."""
        if self.stopping != "flatten":
            return Effects()
        return self._flatten(src)

    def stopped(self) -> bool:
        """True once a graceful stop has nothing left to do."""
        if not self.stopping:
            return False
        if self.stopping == "leave":
            return not any(r.state in _IN_FLIGHT for r in self.ledger.open_orders())
        if self.ledger.open_orders():
            return False
        return (self.stopping != "flatten" or self.flatten_qty() == ZERO
                or self.flatten_attempts > MAX_FLATTEN_ATTEMPTS)

    def pending_resolution(self) -> list[str]:
        """Open orders whose outcome is unknown or that were never acknowledged."""
        return [r.client_order_id for r in self.ledger.open_orders()
                if r.outcome_unknown or r.state.value == "PENDING_NEW"]


def _merge(into: Effects, other: Effects) -> None:
    into.sends += other.sends
    into.outbox += other.outbox
    into.orders += other.orders
    into.fills += other.fills
    into.logs += other.logs
    into.queries_later += other.queries_later
    into.done_refs += other.done_refs
    into.changed = into.changed or other.changed

