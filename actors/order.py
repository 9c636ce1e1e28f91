"""Order actor (OMS): receive → ``models.oms.OmsCore`` → persist → send.

Every state change is written (snapshot + outbox + order rows + fills, one SQLite transaction)
before any resulting message leaves this process. On (re)start the core is restored from its
snapshot and the actor asks the gateway for the exchange's view; no order is sent before that
reconciliation succeeded.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec
from thespian.actors import ActorAddress, WakeupMessage

from actors.base import GridActor
from infra.logs import log_event
from models import messages as m
from models.oms import Effects, OmsCore, OmsState, order_row

_state_decoder = msgspec.msgpack.Decoder(OmsState)
_encoder = msgspec.msgpack.Encoder()
QUERY_TOKEN = "oms-query"


class OrderActor(GridActor):
    """Order management for one symbol."""

    role = "order"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: OmsCore | None = None
        self.stop_to: ActorAddress | None = None
        self.stop_acked = False

    # -- lifecycle ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return _encoder.encode(self.core.to_state()) if self.core else b""

    def restore(self, blob: bytes | None) -> None:
        assert self.config is not None
        state = _state_decoder.decode(blob) if blob else None
        self.core = OmsCore(self.symbol, self.config.portfolio.market_of(self.symbol),
                            self.config.oms.client_id_prefix,
                            adopt_unknown=self.config.oms.unknown_open_orders == "adopt",
                            state=state)
        if self.restart_count == 0:  # a new bot run: a previous run's graceful stop is over
            self.core.stopping = ""
            self.core.flatten_attempts = 0

    def on_wired(self) -> None:
        assert self.core is not None
        self.tell_peer("gateway", m.RequestReconciliation(
            symbol=self.symbol, since_trade_id=self.core.last_trade_id))

    def status(self) -> dict[str, Any]:
        base = super().status()
        if self.core is not None:
            base.update({"open_orders": len(self.core.ledger.open_orders()),
                         "reconciled": self.core.reconciled, "halted": self.core.halted,
                         "last_trade_id": self.core.last_trade_id})
        return base

    # -- effects ----------------------------------------------------------------------------------
    def _apply(self, fx: Effects, src: m.Message, *, report_orders: bool = True,
               stop_progress: bool = True) -> None:
        """Persist, then log and send (persist before you act)."""
        assert self.core is not None and self.store is not None
        if fx.changed or fx.outbox or fx.fills or fx.done_refs:
            self.persist_with(fx)
        for event, level, ctx in fx.logs:
            log_event(event, level=level, symbol=self.symbol, **ctx)
        for role, msg in fx.sends:
            self.tell_peer(role, msg)
        if fx.queries_later:
            delay = self.config.oms.query_unknown_after_s if self.config else 2.0
            self.wakeupAfter(delay, payload=(QUERY_TOKEN, tuple(fx.queries_later)))
        if report_orders and fx.changed:
            self.tell_peer("strategy", self.core.open_orders_report(src))
        if self.core.stopping and stop_progress:
            self._apply(self.core.stop_progress(src), src, stop_progress=False)
            self._maybe_ack_stop()

    def _maybe_ack_stop(self) -> None:
        assert self.core is not None
        if self.stop_to is not None and not self.stop_acked and self.core.stopped():
            self.stop_acked = True
            log_event("TRADING_STOPPED", symbol=self.symbol, mode=self.core.stopping,
                      position_qty=self.core.position_qty)
            self.send(self.stop_to, m.TradingStopped(
                symbol=self.symbol, open_orders=len(self.core.ledger.open_orders()),
                position_qty=self.core.position_qty))

    def persist_with(self, fx: Effects) -> None:
        assert self.store is not None
        store = self.store
        self.write_state(lambda: store.save_snapshot(
            self.actor_name, 1, self.snapshot(), fx.outbox,
            orders=[order_row(r) for r in fx.orders], fills=fx.fills, done_refs=fx.done_refs))
        self.last_snapshot_at = time.time()

    # -- commands -----------------------------------------------------------------------------
    def receiveMsg_SubmitOrder(self, msg: m.SubmitOrder, sender: ActorAddress) -> None:
        assert self.core is not None
        self._apply(self.core.submit(msg), msg)

    def receiveMsg_CancelOrder(self, msg: m.CancelOrder, sender: ActorAddress) -> None:
        assert self.core is not None
        self._apply(self.core.cancel(msg), msg)

    def receiveMsg_CancelAllOrders(self, msg: m.CancelAllOrders, sender: ActorAddress) -> None:
        assert self.core is not None
        self._apply(self.core.cancel_all(msg), msg)

    def receiveMsg_ModifyOrder(self, msg: m.ModifyOrder, sender: ActorAddress) -> None:
        assert self.core is not None
        self._apply(self.core.modify(msg), msg)

    def receiveMsg_StopTrading(self, msg: m.StopTrading, sender: ActorAddress) -> None:
        """Graceful stop: no new orders, cancel all, flatten per mode; ack when done."""
        assert self.core is not None
        self.stop_to = sender
        self._apply(self.core.stop(msg), msg)
        self._maybe_ack_stop()

    def receiveMsg_HaltTrading(self, msg: m.HaltTrading, sender: ActorAddress) -> None:
        assert self.core is not None
        self.core.set_halted(True)
        self.persist()

    def receiveMsg_ResumeTrading(self, msg: m.ResumeTrading, sender: ActorAddress) -> None:
        assert self.core is not None
        self.core.set_halted(False)
        self.persist()

    # -- exchange events ------------------------------------------------------------------------
    def _event(self, msg: m.Message, sender: ActorAddress) -> None:
        assert self.core is not None
        self._apply(self.core.on_event(msg), msg)

    receiveMsg_OrderAccepted = _event
    receiveMsg_OrderRejected = _event
    receiveMsg_OrderFilled = _event
    receiveMsg_OrderCanceled = _event
    receiveMsg_OrderExpired = _event
    receiveMsg_OrderModified = _event
    receiveMsg_OrderModifyRejected = _event
    receiveMsg_OrderCancelRejected = _event
    receiveMsg_OrderOutcomeUnknown = _event
    receiveMsg_OrderStatusReported = _event
    receiveMsg_ExchangeSnapshotReceived = _event
    receiveMsg_Reconnected = _event

    def receiveMsg_SymbolFiltersLoaded(self, msg: m.SymbolFiltersLoaded,
                                       sender: ActorAddress) -> None:
        """Filters are checked by risk; the OMS uses them only to size a flatten order."""
        assert self.core is not None
        self.core.set_filters(msg.filters)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: ActorAddress) -> None:
        payload = msg.payload
        if not (isinstance(payload, tuple) and payload and payload[0] == QUERY_TOKEN):
            return
        assert self.core is not None
        for cid in payload[1]:
            rec = self.core.ledger.get(cid)
            if rec is not None and rec.is_open and rec.outcome_unknown:
                self.tell_peer("gateway", m.QueryOrder(symbol=self.symbol, client_order_id=cid))
