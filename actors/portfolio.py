"""Portfolio actor (one per bot): receive → ``models.portfolio_service.PortfolioCore`` →
persist → log → send.

Peers are wired by the root supervisor as ``"<SYMBOL>.<role>"`` (plus ``"root"``); answers to
``ReserveExposure`` and ``ResumeTrading`` go back to the sender. Throttled output
(``EquityUpdated`` at most 1/s, the ``EQUITY`` line at most every 15 min) is flushed by a
``wakeupAfter`` timer armed only while something is pending.
"""

from __future__ import annotations

from typing import Any

from thespian.actors import ActorAddress, WakeupMessage

from actors.base import GridActor
from infra.clock import now_ms, now_ns
from infra.logs import log_event
from infra.store import Mirror
from infra.version import VERSION as GRIDBOT_VERSION
from models import messages as m
from models.portfolio_service import (
    REPLY,
    PortfolioCore,
    PortfolioEffects,
    decode_portfolio_state,
    encode_portfolio_state,
)
from models.timeframes import fmt_ms

TICK_TOKEN = "portfolio-tick"


class PortfolioActor(GridActor):
    """Equity, drawdown brake and the global leverage cap."""

    role = "portfolio"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.core: PortfolioCore | None = None
        self._tick_due: float | None = None  # clock time (s) of the armed timer
        self.started_at = ""

    # -- lifecycle ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return encode_portfolio_state(self.core.to_state()) if self.core else b""

    def restore(self, blob: bytes | None) -> None:
        assert self.config is not None
        p = self.config.portfolio
        self.core = PortfolioCore(
            p.symbols, dict(p.weights), dict(p.markets), p.leverage_cap, p.utilization,
            self.config.risk, state=decode_portfolio_state(blob) if blob else None)

    def on_start(self) -> None:
        self.started_at = fmt_ms(now_ms())

    def on_wired(self) -> None:
        assert self.core is not None
        self._apply(self.core.announce(now_ms()))

    def on_stop(self) -> None:
        assert self.core is not None
        self._apply(self.core.final_equity(now_ms()))

    def status(self) -> dict[str, Any]:
        base = super().status()
        if self.core is not None:
            base.update(self.core.status())
        return base

    def mirror(self) -> Mirror | None:
        """The readable ``app_state`` rows: version, start time, trading state, equity."""
        if self.core is None:
            return None
        st = self.core.status()
        return Mirror(app={"gridbot_version": GRIDBOT_VERSION, "started_at": self.started_at,
                           "trading_state": st["trading_state"], "halted": st["halted"],
                           "drawdown_level": st["drawdown_level"], "equity": st["equity"],
                           "peak_equity": st["peak_equity"]})

    # -- effects --------------------------------------------------------------------------------
    def _apply(self, fx: PortfolioEffects, sender: ActorAddress | None = None) -> None:
        """Persist, then log, then send (persist before you act)."""
        if fx.changed:
            self.persist()
        if fx.logs:
            for event, level, ctx in fx.logs:
                ctx = dict(ctx)
                symbol = ctx.pop("symbol", "")
                log_event(event, level=level, symbol=symbol, **ctx)
        for role, msg in fx.sends:
            if role == REPLY:
                if sender is not None:
                    self.send(sender, msg)
            else:
                self.tell_peer(role, msg)
        if fx.wake_after_s is not None:
            due = now_ns() / 1e9 + fx.wake_after_s
            if self._tick_due is None or due < self._tick_due:
                self._tick_due = due
                self.wakeupAfter(fx.wake_after_s, payload=(TICK_TOKEN,))

    def _handle(self, msg: m.Message, sender: ActorAddress) -> None:
        assert self.core is not None
        self._apply(self.core.handle(msg, now_ms()), sender)

    receiveMsg_ReserveExposure = _handle
    receiveMsg_ReleaseExposure = _handle
    receiveMsg_PositionReported = _handle
    receiveMsg_TradeClosed = _handle
    receiveMsg_AccountReported = _handle
    receiveMsg_VenueBanned = _handle
    receiveMsg_HaltTrading = _handle
    receiveMsg_ResumeTrading = _handle
    receiveMsg_StopTrading = _handle
    receiveMsg_SymbolStopped = _handle

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: ActorAddress) -> None:
        payload = msg.payload
        if not (isinstance(payload, tuple) and payload and payload[0] == TICK_TOKEN):
            return
        assert self.core is not None
        if self._tick_due is not None and now_ns() / 1e9 >= self._tick_due - 0.01:
            self._tick_due = None
        self._apply(self.core.tick(now_ms()))
