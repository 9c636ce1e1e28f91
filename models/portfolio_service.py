"""The portfolio service core: equity, drawdown brake, global leverage cap, trading state.

Pure (no thespian, no I/O, no clock): the portfolio actor passes every message with ``now_ms``
(``infra.clock``), persists when ``changed`` is set, then logs and sends. One instance per
bot; it handles messages one at a time, so requests from several symbols can never together
exceed the cap (``models.portfolio.ReservationBook`` decides every reservation).

Send roles: ``"<SYMBOL>.risk"``, ``"<SYMBOL>.strategy"`` (peers wired by the root supervisor)
and ``"reply"`` (the sender of the message being handled).

* Equity: the initial equity is the sum of the first ``AccountReported.wallet_balance`` of each
  configured *market* (several symbols on one market share one account, so it is counted
  once); afterwards equity = initial + realized gross - fees + funding + unrealized, from the
  risk actors' ``PositionReported`` (``models.pnl.EquityTracker``). Until every market reported,
  equity is 0 and no new exposure is granted.
* On every equity change: ``DrawdownBrake.update(drawdown)``; brake events are logged as
  ``DRAWDOWN_LEVEL``; level/halt/resume changes are broadcast as ``DrawdownLevelChanged`` to
  every risk and strategy actor and the book's cap follows the brake's. A hard-stop HALT also
  sends ``HaltTrading(flatten=True)`` to every risk actor.
* ``EquityUpdated`` is broadcast on change, at most once per ``equity_broadcast_ms`` (1 s);
  the ``EQUITY`` log line on change at most once per ``equity_log_ms`` (15 min) and after
  every ``TradeClosed``. Throttled work is flushed by ``tick(now_ms)``; ``wake_after_s`` in the
  effects says when.
* ``VenueBanned``: halt without flatten (REST is banned: neither cancels nor orders can be
  sent); lifted by the operator's ``ResumeTrading``.
* ``StopTrading``: no new exposure from now on (not persisted: a restarted bot trades again).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.enums import Market, Side, TradingState
from models.pnl import EquityTracker, SymbolPnl
from models.portfolio import BookState, Denial, ReservationBook, StateChange, TradingCommand
from models.risk import BrakeEvent, BrakeSnapshot, DrawdownBrake, RiskParams
from models.risk_state import fmt_money

ZERO = Decimal(0)
REPLY = "reply"
#: Closed reservations' answers kept in a snapshot (the book itself remembers 20 000).
SNAPSHOT_ANSWERS = 256


@dataclass
class PortfolioEffects:
    """What the actor must do after one message."""

    sends: list[tuple[str, m.Message]] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    changed: bool = False
    #: call ``tick`` again after this many seconds (throttled broadcast/log pending)
    wake_after_s: float | None = None

    def send(self, role: str, msg: m.Message) -> None:
        self.sends.append((role, msg))

    def log(self, event: str, level: str = "INFO", **ctx: Any) -> None:
        self.logs.append((event, level, ctx))


class PortfolioState(msgspec.Struct, kw_only=True):
    """Persistent state of a ``PortfolioCore`` (msgpack snapshot)."""

    book: BookState
    brake: BrakeSnapshot
    pnl: dict[str, SymbolPnl] = msgspec.field(default_factory=dict)
    accounts: dict[str, Decimal] = msgspec.field(default_factory=dict)
    initial_equity: Decimal | None = None
    peak_equity: Decimal = ZERO
    trades: dict[str, int] = msgspec.field(default_factory=dict)
    last_log_ms: int = -1
    last_logged: str = ""


class PortfolioCore:
    """Portfolio of one bot (see the module docstring)."""

    def __init__(self, symbols: tuple[str, ...] | list[str], weights: dict[str, float],
                 markets: dict[str, Market], leverage_cap: float, utilization: float,
                 params: RiskParams, *, equity_broadcast_ms: int = 1000,
                 equity_log_ms: int = 15 * 60 * 1000,
                 state: PortfolioState | None = None) -> None:
        self.symbols = list(symbols)
        self.markets = {s: markets[s] for s in self.symbols}
        self.params = params
        self.base_cap = leverage_cap
        self.broadcast_ms = equity_broadcast_ms
        self.log_ms = equity_log_ms
        if state is None:
            self.book = ReservationBook(leverage_cap, {s: weights[s] for s in self.symbols},
                                        utilization)
            self.brake = DrawdownBrake(params, leverage_cap)
            self.s = PortfolioState(book=self.book.to_state(), brake=self.brake.to_state())
            self.tracker: EquityTracker | None = None
        else:
            self.s = state
            self.book = ReservationBook.from_state(state.book)
            self.brake = DrawdownBrake.from_state(params, leverage_cap, state.brake)
            self.tracker = None
            if state.initial_equity is not None:
                self.tracker = EquityTracker(initial_equity=state.initial_equity,
                                             peak_equity=state.peak_equity,
                                             symbols=dict(state.pnl))
        self.stopping = False
        self._bc_last_ms: int | None = None
        self._bc_sig: tuple[str, ...] = ()
        self._bc_pending = False
        self._log_pending = False

    # -- state --------------------------------------------------------------------------------
    def to_state(self) -> PortfolioState:
        """Snapshot. Of the book's remembered answers only those of open reservations and the
        last ``SNAPSHOT_ANSWERS`` others are kept: a repeated request (thespian retry, risk
        restart) follows its original within seconds, and risk never reuses an id."""
        book = self.book.to_state()
        open_ids = {r.reservation_id for r in book.open}
        closed = [a for a in book.answers if a.reservation_id not in open_ids]
        if len(closed) > SNAPSHOT_ANSWERS:
            keep = {a.reservation_id for a in closed[-SNAPSHOT_ANSWERS:]} | open_ids
            book.answers = [a for a in book.answers if a.reservation_id in keep]
        self.s.book = book
        self.s.brake = self.brake.to_state()
        if self.tracker is not None:
            self.s.peak_equity = self.tracker.peak_equity
            self.s.pnl = dict(self.tracker.symbols)
        return self.s

    def equity(self) -> Decimal:
        return self.tracker.equity() if self.tracker is not None else ZERO

    def peak(self) -> Decimal:
        return self.tracker.peak_equity if self.tracker is not None else ZERO

    def drawdown(self) -> float:
        return self.tracker.drawdown() if self.tracker is not None else 0.0

    def _pnl(self) -> dict[str, SymbolPnl]:
        return self.tracker.symbols if self.tracker is not None else self.s.pnl

    # -- dispatch -----------------------------------------------------------------------------
    def handle(self, msg: m.Message, now_ms: int) -> PortfolioEffects:
        """Apply one message."""
        fx = PortfolioEffects()
        handler = getattr(self, "_on_" + type(msg).__name__, None)
        if handler is not None:
            handler(fx, msg, now_ms)
        self._flush(fx, now_ms)
        return fx

    def tick(self, now_ms: int) -> PortfolioEffects:
        """Flush throttled broadcasts/logs that are due."""
        fx = PortfolioEffects()
        self._flush(fx, now_ms)
        return fx

    def _hdr(self, now_ms: int, symbol: str = "") -> dict[str, Any]:
        return {"symbol": symbol, "ts_event_ns": now_ms * 1_000_000}

    def _broadcast(self, fx: PortfolioEffects, roles: tuple[str, ...], make: Any) -> None:
        for s in self.symbols:
            for role in roles:
                fx.send(f"{s}.{role}", make(s))

    # -- reservations ---------------------------------------------------------------------------
    def _on_ReserveExposure(self, fx: PortfolioEffects, msg: m.ReserveExposure,
                            now_ms: int) -> None:
        if self.stopping and not msg.reduce_only and \
                self.book.reservation(msg.reservation_id) is None:
            ans: Any = Denial(reservation_id=msg.reservation_id, symbol=msg.symbol,
                              reason="STOPPING", detail="graceful stop in progress")
        else:
            ans = self.book.reserve(msg.reservation_id, msg.symbol, msg.side, msg.notional,
                                    msg.reduce_only)
            fx.changed = True
        hdr = {"symbol": msg.symbol, "ts_event_ns": now_ms * 1_000_000,
               "correlation_id": msg.correlation_id or msg.msg_id}
        if isinstance(ans, Denial):
            fx.send(REPLY, m.ExposureDenied(**hdr, reservation_id=ans.reservation_id,
                                            reason=ans.reason))
            fx.log("RISK_BLOCKED", "WARNING", symbol=msg.symbol, stage="portfolio",
                   reservation_id=msg.reservation_id, side=msg.side, notional=msg.notional,
                   reason=ans.reason, detail=ans.detail)
        else:
            fx.send(REPLY, m.ExposureReserved(**hdr, reservation_id=ans.reservation_id,
                                              notional=ans.notional))
        self._state_change(fx, now_ms)

    def _on_ReleaseExposure(self, fx: PortfolioEffects, msg: m.ReleaseExposure,
                            now_ms: int) -> None:
        if self.book.release(msg.reservation_id):
            fx.changed = True
            self._state_change(fx, now_ms)

    # -- equity ---------------------------------------------------------------------------------
    def _on_AccountReported(self, fx: PortfolioEffects, msg: m.AccountReported,
                            now_ms: int) -> None:
        key = msg.market.value
        if key in self.s.accounts:
            return  # one account per market: the first report of each market counts
        self.s.accounts[key] = msg.wallet_balance
        fx.changed = True
        needed = {mk.value for mk in self.markets.values()}
        if self.tracker is None and needed <= set(self.s.accounts):
            initial = sum((self.s.accounts[k] for k in sorted(needed)), ZERO)
            self.s.initial_equity = initial
            self.tracker = EquityTracker(initial_equity=initial, symbols=dict(self.s.pnl))
            fx.log("EQUITY_INITIALIZED", "INFO", initial_equity=initial,
                   accounts=dict(self.s.accounts))
            self._revalue(fx, now_ms, force_log=True)

    def _on_PositionReported(self, fx: PortfolioEffects, msg: m.PositionReported,
                             now_ms: int) -> None:
        if msg.symbol not in self.markets:
            fx.log("UNKNOWN_SYMBOL", "WARNING", symbol=msg.symbol, detail="PositionReported")
            return
        pnl = SymbolPnl(realized_gross=msg.realized_pnl, fees=msg.fees, funding=msg.funding,
                        unrealized=msg.unrealized_pnl, qty=msg.qty, avg_entry=msg.entry_price,
                        mark=msg.mark_price)
        old = self._pnl().get(msg.symbol)
        peak = self.peak()
        self._pnl()[msg.symbol] = pnl
        self.book.update_positions(msg.symbol, msg.qty * msg.mark_price)
        self._revalue(fx, now_ms)
        # a mark-only change is not worth a snapshot write (risk re-reports after a restart);
        # a new position, realized PnL, fees, funding or a new peak are
        if old is None or (old.qty, old.realized_gross, old.fees, old.funding) != (
                pnl.qty, pnl.realized_gross, pnl.fees, pnl.funding) or self.peak() != peak:
            fx.changed = True

    def _on_TradeClosed(self, fx: PortfolioEffects, msg: m.TradeClosed, now_ms: int) -> None:
        self.s.trades[msg.symbol] = self.s.trades.get(msg.symbol, 0) + 1
        fx.changed = True
        self._log_pending = True
        self._log_equity(fx, now_ms)

    def _revalue(self, fx: PortfolioEffects, now_ms: int, force_log: bool = False) -> None:
        if self.tracker is None:
            return
        equity, drawdown = self.tracker.revalue()
        self.book.set_equity(equity)
        for ev in self.brake.update(drawdown):
            self._brake_event(fx, ev, now_ms)
        self.book.set_cap(self.brake.leverage_cap())
        self._state_change(fx, now_ms)
        self._bc_pending = True
        if force_log:
            self._log_equity(fx, now_ms)
        elif self._equity_sig() != self.s.last_logged:
            self._log_pending = True

    # -- brake, trading state -------------------------------------------------------------------
    def _level_msg(self, ev: BrakeEvent, symbol: str, now_ms: int) -> m.DrawdownLevelChanged:
        st = self.brake.state()
        return m.DrawdownLevelChanged(
            **self._hdr(now_ms, symbol), kind=ev.kind, level=ev.level,
            previous_level=ev.previous_level, drawdown=ev.drawdown,
            size_factor=ev.size_factor, tp_factor=ev.tp_factor, leverage_cap=ev.leverage_cap,
            halted=ev.halted, safe_mode=ev.safe_mode,
            min_entry_conviction=st.min_entry_conviction, actions=list(ev.actions),
            reason=ev.reason)

    def _brake_event(self, fx: PortfolioEffects, ev: BrakeEvent, now_ms: int) -> None:
        fx.changed = True
        fx.log("DRAWDOWN_LEVEL", "WARNING" if ev.level > 0 or ev.kind == "ALERT" else "INFO",
               # "level" is the log line's own field (INFO/WARNING): the brake level is
               # logged as drawdown_level, as in STATUS
               kind=ev.kind, drawdown_level=ev.level, previous_level=ev.previous_level,
               drawdown=round(ev.drawdown, 6), size_factor=ev.size_factor,
               tp_factor=ev.tp_factor, leverage_cap=ev.leverage_cap, halted=ev.halted,
               safe_mode=ev.safe_mode, reason=ev.reason, actions=list(ev.actions),
               equity=self.equity(), peak_equity=self.peak())
        if ev.kind == "ALERT":
            return  # informational only
        self.book.set_cap(self.brake.state().leverage_cap)
        ch = None
        if ev.kind == "HALT":
            ch = self.book.command(TradingCommand.HALT, ev.reason)
        elif ev.kind == "RESUME":
            ch = self.book.command(TradingCommand.RESUME, ev.reason)
        self._emit_change(fx, ch, now_ms)
        self._broadcast(fx, ("risk", "strategy"), lambda s: self._level_msg(ev, s, now_ms))
        if ev.kind == "HALT":
            flatten = "FLATTEN" in ev.actions
            self._broadcast(fx, ("risk",), lambda s: m.HaltTrading(
                **self._hdr(now_ms, s), reason=ev.reason, flatten=flatten))

    def _state_change(self, fx: PortfolioEffects, now_ms: int) -> None:
        self._emit_change(fx, self.book.poll_state_change(), now_ms)

    def _emit_change(self, fx: PortfolioEffects, ch: StateChange | None, now_ms: int) -> None:
        if ch is None:
            return
        fx.changed = True
        fx.log("TRADING_STATE", "WARNING" if ch.state is not TradingState.ACTIVE else "INFO",
               state=ch.state, previous=ch.previous, reason=ch.reason)
        self._broadcast(fx, ("risk", "strategy"), lambda s: m.TradingStateChanged(
            **self._hdr(now_ms, s), state=ch.state, reason=ch.reason))

    def _on_VenueBanned(self, fx: PortfolioEffects, msg: m.VenueBanned, now_ms: int) -> None:
        reason = f"venue banned ({msg.host}) until {msg.until_ms}"
        for ev in self.brake.halt(reason):
            # REST is banned: neither cancels nor a flatten order could be sent
            self._brake_event(fx, msgspec.structs.replace(ev, actions=()), now_ms)
        self._state_change(fx, now_ms)

    def _on_HaltTrading(self, fx: PortfolioEffects, msg: m.HaltTrading, now_ms: int) -> None:
        """Operator halt (optionally flattening every symbol)."""
        for ev in self.brake.halt(msg.reason or "operator"):
            acts = ev.actions if msg.flatten else ()
            self._brake_event(fx, msgspec.structs.replace(ev, actions=acts), now_ms)
        self._state_change(fx, now_ms)

    def _on_ResumeTrading(self, fx: PortfolioEffects, msg: m.ResumeTrading,
                          now_ms: int) -> None:
        events = self.brake.resume(safe_mode=True if msg.safe_mode else None,
                                   reason=msg.reason or "operator")
        for ev in events:
            self._brake_event(fx, ev, now_ms)
        if not events and self.book.trading_state is TradingState.HALTED:
            self._emit_change(fx, self.book.command(TradingCommand.RESUME,
                                                    msg.reason or "operator"), now_ms)
        self.book.set_cap(self.brake.state().leverage_cap)
        self._state_change(fx, now_ms)
        fx.changed = True
        st = self.book.trading_state
        detail = "resumed" if events else "was not halted"
        fx.send(REPLY, m.TradingStateChanged(**self._hdr(now_ms), state=st,
                                             reason=f"{msg.reason or 'operator'}: {detail}"))

    def _on_StopTrading(self, fx: PortfolioEffects, msg: m.StopTrading, now_ms: int) -> None:
        self.stopping = True
        fx.log("PORTFOLIO_STOPPING", "INFO", mode=msg.mode)

    def _on_SymbolStopped(self, fx: PortfolioEffects, msg: m.SymbolStopped,
                          now_ms: int) -> None:
        fx.log("SYMBOL_STOPPED_SEEN", "WARNING", symbol=msg.symbol, reason=msg.reason)

    def final_equity(self, now_ms: int) -> PortfolioEffects:
        """At shutdown: the last EQUITY line, whatever the log throttle (so a report built from
        the log ends at the true final equity)."""
        fx = PortfolioEffects()
        self._log_equity(fx, now_ms)
        return fx

    def announce(self, now_ms: int) -> PortfolioEffects:
        """After (re)wiring: tell every risk/strategy actor the current limits and state."""
        fx = PortfolioEffects()
        st = self.brake.state()
        ev = BrakeEvent(kind="STATE", level=st.level, previous_level=st.level,
                        drawdown=st.drawdown, size_factor=st.size_factor,
                        tp_factor=st.tp_factor, leverage_cap=st.leverage_cap,
                        halted=st.halted, safe_mode=st.safe_mode, reason="current state")
        self._broadcast(fx, ("risk", "strategy"), lambda s: self._level_msg(ev, s, now_ms))
        state = self.book.trading_state
        self._broadcast(fx, ("risk", "strategy"), lambda s: m.TradingStateChanged(
            **self._hdr(now_ms, s), state=state, reason="current state"))
        if self.tracker is not None:
            self._bc_sig = ()
            self._bc_last_ms = None
            self._bc_pending = True
            self._flush(fx, now_ms)
        return fx

    # -- throttled output ---------------------------------------------------------------------------
    def _equity_fields(self) -> dict[str, Any]:
        return {"equity": self.equity(), "peak_equity": self.peak(),
                "drawdown": self.drawdown(), "leverage": self.book.leverage(),
                "leverage_cap": float(self.book.leverage_cap)}

    def _equity_msg(self, symbol: str, now_ms: int) -> m.EquityUpdated:
        return m.EquityUpdated(**self._hdr(now_ms, symbol), **self._equity_fields())

    def _equity_sig(self) -> str:
        return f"{self.equity()}|{self.book.leverage():.6f}|{self.book.leverage_cap}"

    def _flush(self, fx: PortfolioEffects, now_ms: int) -> None:
        waits: list[float] = []
        if self._bc_pending and self.tracker is not None:
            sig = (self._equity_sig(),)
            if sig == self._bc_sig:
                self._bc_pending = False
            elif self._bc_last_ms is None or now_ms - self._bc_last_ms >= self.broadcast_ms:
                self._bc_sig, self._bc_last_ms, self._bc_pending = sig, now_ms, False
                vals = self._equity_fields()
                self._broadcast(fx, ("risk", "strategy"), lambda s: m.EquityUpdated(
                    **self._hdr(now_ms, s), **vals))
            else:
                waits.append((self.broadcast_ms - (now_ms - self._bc_last_ms)) / 1000.0)
        if self._log_pending and self.tracker is not None:
            last = self.s.last_log_ms
            if last < 0 or now_ms - last >= self.log_ms:
                self._log_equity(fx, now_ms)
            else:
                waits.append((self.log_ms - (now_ms - last)) / 1000.0)
        if waits:
            fx.wake_after_s = max(0.001, min(waits))

    def _log_equity(self, fx: PortfolioEffects, now_ms: int) -> None:
        if self.tracker is None:
            return
        self._log_pending = False
        self.s.last_log_ms = now_ms
        self.s.last_logged = self._equity_sig()
        fx.changed = True
        st = self.brake.state()
        fx.log("EQUITY", "INFO", equity=self.equity(), peak_equity=self.peak(),
               drawdown=round(self.drawdown(), 6), leverage=round(self.book.leverage(), 6),
               worst_case_leverage=round(self.book.worst_case_leverage(), 6),
               leverage_cap=float(self.book.leverage_cap), drawdown_level=st.level,
               state=self.book.trading_state, positions=self.positions())

    # -- views ------------------------------------------------------------------------------------
    def positions(self) -> dict[str, dict[str, str]]:
        """Per-symbol position and PnL (``realized_pnl`` = gross - fees + funding)."""
        out: dict[str, dict[str, str]] = {}
        for s in self.symbols:
            p = self._pnl().get(s)
            if p is None:
                continue
            out[s] = {"qty": fmt_money(p.qty), "entry_price": fmt_money(p.avg_entry),
                      "mark_price": fmt_money(p.mark), "unrealized_pnl": fmt_money(p.unrealized),
                      "realized_pnl": fmt_money(p.realized_gross - p.fees + p.funding),
                      "fees": fmt_money(p.fees), "funding": fmt_money(p.funding),
                      "trades": str(self.s.trades.get(s, 0))}
        return out

    def open_reservations(self) -> int:
        """Number of open reservations."""
        return len(self.book.to_state().open)

    def headroom(self, symbol: str, side: Side) -> Decimal:
        """Largest notional a new ``side`` order of ``symbol`` could reserve now."""
        return self.book.headroom(symbol, side)

    def status(self) -> dict[str, Any]:
        """Fields for ``run.py status``."""
        st = self.brake.state()
        return {
            "equity": fmt_money(self.equity()), "peak_equity": fmt_money(self.peak()),
            "initial_equity": None if self.s.initial_equity is None
            else fmt_money(self.s.initial_equity),
            "drawdown": round(self.drawdown(), 6), "drawdown_level": st.level,
            "leverage": round(self.book.leverage(), 4),
            "worst_case_leverage": round(self.book.worst_case_leverage(), 4),
            "leverage_cap": float(self.book.leverage_cap),
            "trading_state": self.book.trading_state.value, "halted": st.halted,
            "safe_mode": st.safe_mode, "size_factor": st.size_factor,
            "tp_factor": st.tp_factor, "stopping": self.stopping,
            "open_reservations": self.open_reservations(),
            "positions": self.positions(),
        }


_state_decoder = msgspec.msgpack.Decoder(PortfolioState)
_encoder = msgspec.msgpack.Encoder()


def encode_portfolio_state(state: PortfolioState) -> bytes:
    """msgpack bytes of a portfolio snapshot."""
    return _encoder.encode(state)


def decode_portfolio_state(blob: bytes) -> PortfolioState:
    """Inverse of ``encode_portfolio_state``."""
    return _state_decoder.decode(blob)
