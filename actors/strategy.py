"""Strategy actor: receive → ``models.strategy.runner.StrategyRunner`` → persist → send to risk.

Start-up: restore the runner from its snapshot, then ask the gateway for closed history
(``RequestHistory``) to warm up: the last ``warmup`` bars on a first start, or the bars missed
since the snapshot's last bar after a restart. Orders flow only once the strategy is warm, the
OMS has reconciled (``ReconciliationCompleted``), filters and equity are known.

Logs ``STRATEGY`` once per minute of bar time with the six system values, L and S (the
``ORDER_PLACED`` line with the ``strategy_context`` is written by the OMS).
"""

from __future__ import annotations

from typing import Any

import msgspec
from thespian.actors import ActorAddress

from actors.base import GridActor
from infra.clock import now_ms
from infra.logs import log_event, log_wanted
from infra.store import Mirror
from models import messages as m
from models.config import base_interval
from models.strategy.runner import StrategyRunner, restore_runner

_encoder = msgspec.msgpack.Encoder()


class StrategyActor(GridActor):
    """Turns closed bars and fills into order commands for the symbol's risk actor."""

    role = "strategy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runner: StrategyRunner | None = None
        self.history_requested = False
        self.last_log_minute = -1
        self.interval = "5m"
        self.base_ms = 300_000

    # -- lifecycle ------------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        return _encoder.encode(self.runner.to_state()) if self.runner else b""

    def restore(self, blob: bytes | None) -> None:
        assert self.config is not None
        cfg = self.config
        pf = cfg.portfolio
        self.interval, self.base_ms = base_interval(cfg)
        try:
            self.runner = restore_runner(cfg.strategy, self.symbol, pf.market_of(self.symbol),
                                         pf.weights[self.symbol], pf.utilization,
                                         pf.leverage_cap, blob or None, self.base_ms)
        except (msgspec.DecodeError, ValueError, KeyError) as e:
            # an incompatible snapshot (e.g. after a parameter change): start the strategy
            # afresh rather than trade on a misread state; orders are reconciled by the OMS
            log_event("SNAPSHOT_DISCARDED", f"strategy snapshot unreadable: {e}",
                      level="WARNING", symbol=self.symbol, actor=self.actor_name)
            self.runner = restore_runner(cfg.strategy, self.symbol, pf.market_of(self.symbol),
                                         pf.weights[self.symbol], pf.utilization,
                                         pf.leverage_cap, None, self.base_ms)

    def on_start(self) -> None:
        assert self.runner is not None
        if self.restart_count == 0:  # a new bot run: nothing in flight, reconcile afresh
            st = self.runner.st
            st.stopping = False
            st.reconciled = False
            st.inflight = {}
            st.open_orders = []

    def on_wired(self) -> None:
        assert self.runner is not None and self.config is not None
        if self.history_requested:
            return
        self.history_requested = True
        last = self.runner.st.last_open_ms
        p = self.config.strategy
        need = p.history_bars(self.base_ms) + 20
        start, limit = 0, need  # the latest `need` closed bars
        if last >= 0:
            missed = (now_ms() - last) // self.base_ms
            if missed <= need:  # a short restart: just the bars missed since the snapshot
                start, limit = last + self.base_ms, max(1, missed + 1)
        self.tell_peer("gateway", m.RequestHistory(symbol=self.symbol, interval=self.interval,
                                                   start_ms=start, limit=int(limit)))

    def status(self) -> dict[str, Any]:
        base = super().status()
        if self.runner is not None:
            base.update(self.runner.status())
        return base

    def mirror(self) -> Mirror | None:
        """The readable ``strategy_state`` row: readiness, position, orders, the last bar's
        six system values, L and S (the exact state is the snapshot)."""
        if self.runner is None:
            return None
        v = self.runner.last_values
        values = None if v is None else {
            "ts_ms": v.ts_ms, "b_up": v.b_up, "c_up": v.c_up,
            "b_down": v.b_down, "c_down": v.c_down, "b_neu": v.b_neu, "c_neu": v.c_neu,
            "L": v.L, "S": v.S, "atr": v.atr, "long_ok": v.long_ok, "short_ok": v.short_ok}
        return Mirror(strategy=(self.symbol, {**self.runner.status(), "values": values,
                                              "kind": self.runner.params.kind}))

    # -- helpers ----------------------------------------------------------------------------------
    def _send(self, cmds: list[m.Message]) -> None:
        """Persist (inflight keys are part of the state), then send to risk."""
        if cmds:
            self.persist()
            for c in cmds:
                self.tell_peer("risk", c)

    # -- market data ------------------------------------------------------------------------------
    def receiveMsg_HistoryLoaded(self, msg: m.HistoryLoaded, sender: ActorAddress) -> None:
        assert self.runner is not None
        if msg.interval != self.interval:
            return
        n = self.runner.history(list(msg.klines))
        log_event("WARMUP", symbol=self.symbol, bars=n, warm=self.runner.strategy.warm,
                  complete=msg.complete)
        self.persist()

    def receiveMsg_KlineClosed(self, msg: m.KlineClosed, sender: ActorAddress) -> None:
        assert self.runner is not None
        if msg.interval != self.interval:
            return
        v, cmds = self.runner.on_kline(msg)
        minute = msg.close_time_ms // 60_000
        if v is not None and minute != self.last_log_minute and log_wanted("STRATEGY"):
            self.last_log_minute = minute
            log_event("STRATEGY", symbol=self.symbol, ts_ms=msg.close_time_ms, close=v.close,
                      b_up=v.b_up, c_up=v.c_up, b_down=v.b_down, c_down=v.c_down,
                      b_neu=v.b_neu, c_neu=v.c_neu, L=v.L, S=v.S, atr=v.atr, adx=v.adx,
                      spacing=v.spacing_long, spacing_short=v.spacing_short,
                      long_ok=v.long_ok, short_ok=v.short_ok)
        if cmds:
            self._send(cmds)
        elif self.runner.st.bars % 60 == 0:
            self.persist()  # at least hourly, so a restart re-reads little history

    def receiveMsg_BookUpdated(self, msg: m.BookUpdated, sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_book(msg)

    def receiveMsg_FundingRateUpdated(self, msg: m.FundingRateUpdated,
                                      sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_funding(msg)

    def receiveMsg_SymbolFiltersLoaded(self, msg: m.SymbolFiltersLoaded,
                                       sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_filters(msg.filters)

    # -- OMS / risk / portfolio events ----------------------------------------------------------
    def receiveMsg_ReconciliationCompleted(self, msg: m.ReconciliationCompleted,
                                           sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_reconciled()
        self.persist()

    def receiveMsg_OpenOrdersReported(self, msg: m.OpenOrdersReported,
                                      sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_open_orders(msg)

    def receiveMsg_OrderPlaced(self, msg: m.OrderPlaced, sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_placed(msg)

    def receiveMsg_OrderDenied(self, msg: m.OrderDenied, sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_denied(msg)

    def receiveMsg_OrderFilled(self, msg: m.OrderFilled, sender: ActorAddress) -> None:
        assert self.runner is not None
        cmds = self.runner.on_fill(msg)
        self.persist()
        for c in cmds:
            self.tell_peer("risk", c)

    def receiveMsg_OrderEnded(self, msg: m.OrderEnded, sender: ActorAddress) -> None:
        """Nothing to do: the next OpenOrdersReported carries the change."""

    def receiveMsg_EquityUpdated(self, msg: m.EquityUpdated, sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_equity(msg)

    def receiveMsg_DrawdownLevelChanged(self, msg: m.DrawdownLevelChanged,
                                        sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_drawdown(msg)
        self.persist()

    def receiveMsg_TradingStateChanged(self, msg: m.TradingStateChanged,
                                       sender: ActorAddress) -> None:
        assert self.runner is not None
        self.runner.on_trading_state(msg)
        self.persist()

    def receiveMsg_StopTrading(self, msg: m.StopTrading, sender: ActorAddress) -> None:
        """No new orders from this instant (the OMS cancels and flattens)."""
        assert self.runner is not None
        self.runner.on_stop()
        self.persist()
