"""Risk actor (one per symbol): receive → ``models.risk_service.SymbolRiskCore`` → persist →
log → send.

Every decision lives in the pure core; this shell only supplies the time (``infra.clock``),
whether a portfolio peer is known (fail closed otherwise), the fail-closed timers
(``wakeupAfter``; thespian timers cannot be cancelled, so a fired timer for an already answered
reservation does nothing) and persistence (snapshot before any message leaves).
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorAddress, WakeupMessage

from actors.base import GridActor
from infra.clock import now_ns
from infra.logs import log_event
from infra.store import Mirror
from models import messages as m
from models.risk_service import SymbolRiskCore
from models.risk_state import MISMATCH_GRACE_NS, RiskEffects, decode_risk_state, encode_risk_state

TIMEOUT_TOKEN = "risk-reservation-timeout"
CHECK_TOKEN = "risk-check"


class RiskActor(GridActor):
    """Pre-trade risk, reservations and PnL of one symbol."""

    role = "risk"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: SymbolRiskCore | None = None
        self._restored_pending = False
        self._check_armed = False

    # -- lifecycle ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return encode_risk_state(self.core.to_state()) if self.core else b""

    def restore(self, blob: bytes | None) -> None:
        assert self.config is not None
        cfg = self.config
        state = decode_risk_state(blob) if blob else None
        self.core = SymbolRiskCore(
            self.symbol, cfg.portfolio.market_of(self.symbol),
            cfg.portfolio.weights.get(self.symbol, 0.0), cfg.portfolio.leverage_cap, cfg.risk,
            cfg.oms.client_id_prefix, state=state)
        self._restored_pending = bool(self.core.s.pending)

    def on_wired(self) -> None:
        assert self.core is not None
        now = now_ns()
        if self._restored_pending:  # answers to the previous incarnation can never arrive
            self._restored_pending = False
            self._apply(self.core.abort_pending(now))
        # (re)sync the portfolio: it may have restarted too
        if self.core.ledger.qty or self.core.ledger.closed_trades or self.core.ledger.funding:
            self.tell_peer("portfolio", self.core.position_report(now))

    def status(self) -> dict[str, Any]:
        base = super().status()
        if self.core is not None:
            base.update(self.core.status())
        return base

    def mirror(self) -> Mirror | None:
        """The symbol's row of the readable ``positions`` table (exact decimals)."""
        if self.core is None:
            return None
        lg, mark = self.core.ledger, self.core.s.mark
        return Mirror(position=(self.symbol, str(lg.qty), str(lg.avg_entry),
                                str(lg.unrealized(mark)) if mark else None))

    # -- effects --------------------------------------------------------------------------------
    def _apply(self, fx: RiskEffects, sender: ActorAddress | None = None) -> None:
        """Persist, then log, then send (persist before you act)."""
        if fx.changed:
            self.persist()
        if fx.logs:
            for event, level, ctx in fx.logs:
                log_event(event, level=level, symbol=self.symbol, **ctx)
        for role, msg in fx.sends:
            self.tell_peer(role, msg)
        for delay, rid in fx.timers:
            self.wakeupAfter(delay, payload=(TIMEOUT_TOKEN, rid))

    def _handle(self, msg: m.Message, sender: ActorAddress) -> None:
        assert self.core is not None
        fx = self.core.handle(msg, now_ns(), portfolio_up="portfolio" in self.peers)
        self._apply(fx, sender)
        if self.core.mismatch_pending() and not self._check_armed:
            self._check_armed = True
            self.wakeupAfter(MISMATCH_GRACE_NS / 1e9 + 0.1, payload=(CHECK_TOKEN,))

    # strategy commands
    receiveMsg_PlaceOrder = _handle
    receiveMsg_ModifyOrder = _handle
    receiveMsg_CancelOrder = _handle
    receiveMsg_CancelAllOrders = _handle
    receiveMsg_FlattenPosition = _handle
    # portfolio
    receiveMsg_ExposureReserved = _handle
    receiveMsg_ExposureDenied = _handle
    receiveMsg_EquityUpdated = _handle
    receiveMsg_DrawdownLevelChanged = _handle
    receiveMsg_TradingStateChanged = _handle
    receiveMsg_HaltTrading = _handle
    # OMS
    receiveMsg_OrderFilled = _handle
    receiveMsg_OrderEnded = _handle
    receiveMsg_ReconciliationCompleted = _handle
    # gateway
    receiveMsg_MarkPriceUpdated = _handle
    receiveMsg_KlineClosed = _handle
    receiveMsg_BookUpdated = _handle
    receiveMsg_FundingPaid = _handle
    receiveMsg_PositionUpdated = _handle
    receiveMsg_SymbolFiltersLoaded = _handle
    # supervisor (the order actor acknowledges the stop; risk only stops approving entries)
    receiveMsg_StopTrading = _handle

    def receiveMsg_ResumeTrading(self, msg: m.ResumeTrading, sender: ActorAddress) -> None:
        """Resuming is the portfolio's decision; its broadcasts update the core."""

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: ActorAddress) -> None:
        assert self.core is not None
        payload = msg.payload
        if not isinstance(payload, tuple) or not payload:
            return
        if payload[0] == TIMEOUT_TOKEN:
            self._apply(self.core.expire(now_ns(), only=payload[1], force=True))
        elif payload[0] == CHECK_TOKEN:
            self._check_armed = False
            self._apply(self.core.check(now_ns()))
