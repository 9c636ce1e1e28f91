"""``RootSupervisor``: the top of the bot (thespian global name ``gridbot-root``).

It starts the portfolio actor, then one ``SymbolSupervisor`` per symbol (one_for_one; each
child has its own restart intensity), wires the portfolio to every tree's actors, and answers
the operator: ``TreePing`` (liveness), ``StopTrading`` / ``ResumeTrading`` (fanned out) and
``StatusRequested`` (the whole tree; also logged every ``status_interval_s`` as STATUS and
PORTFOLIO_STATUS records, ``symbol_status_lines``). When the launcher's pid disappears it stops
the children and then takes the whole actor system down, so nothing trades unattended.
Child management and failure detection are ``supervision.children``.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from loguru import logger
from thespian.actors import ActorAddress

from models.messages import (
    ActorReady,
    ActorRestarted,
    ResumeTrading,
    StartActor,
    StatusReported,
    StopTrading,
    SymbolStopped,
    TradingStateChanged,
    TradingStopped,
    Wire,
)
from supervision import netsec
from supervision.children import (
    STATUS_TIMEOUT_S,
    Child,
    Supervisor,
    kill_pid,
    log,
    now_s,
    pack,
)
from supervision.policy import ChildState, HeartbeatMonitor, RestartIntensity, backoff_delay
from supervision.tree import (
    ChildSpec,
    StartRootTree,
    StartSymbolTree,
    TreePing,
    TreePong,
    TreeWired,
    UpdatePeers,
)


def symbol_status_lines(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One STATUS record per symbol from the root's status tree: position, entry, PnL, open
    orders, leverage and drawdown level (from the risk, order and portfolio actors)."""
    pf = (data.get("portfolio") or {}).get("status") or {}
    out = []
    for sym, row in (data.get("symbols") or {}).items():
        actors = {a.get("name"): a.get("status") or {}
                  for a in ((row.get("tree") or {}).get("actors") or [])}
        risk, order = actors.get("risk", {}), actors.get("order", {})
        strat = actors.get("strategy", {})
        out.append({
            "symbol": sym, "state": row.get("state"),
            "position": risk.get("position"), "entry_price": risk.get("entry_price"),
            "mark_price": risk.get("mark_price"),
            "unrealized_pnl": risk.get("unrealized_pnl"),
            "realized_pnl": risk.get("realized_pnl"), "fees": risk.get("fees"),
            "funding": risk.get("funding"), "open_orders": order.get("open_orders"),
            "leverage": risk.get("leverage"),
            "portfolio_leverage": pf.get("leverage"), "leverage_cap": pf.get("leverage_cap"),
            "drawdown_level": pf.get("drawdown_level", risk.get("drawdown_level")),
            "drawdown": pf.get("drawdown"), "equity": pf.get("equity"),
            "trading_state": pf.get("trading_state"),
            "L": strat.get("L"), "S": strat.get("S"), "warm": strat.get("warm"),
        })
    return out


class RootSupervisor(Supervisor):
    """Top of the bot: the portfolio actor and one ``SymbolSupervisor`` per symbol
    (one_for_one; each child has its own restart intensity)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.start_msg: StartRootTree | None = None
        self.launcher: ActorAddress | None = None
        self.intensities: dict[str, RestartIntensity] = {}
        self.symbols: list[str] = []
        self.symbol_state: dict[str, str] = {}
        self.stop_reasons: dict[str, str] = {}
        self.tree_pids: dict[str, dict[str, int]] = {}
        self.tree_peers: dict[str, dict[str, bytes]] = {}
        self.restart_events: list[dict[str, Any]] = []
        self.ready_sent = False
        self.started_at = time.time()
        self.stop_to: ActorAddress | None = None
        self.stop_waiting: set[str] = set()
        self.stop_results: dict[str, TradingStopped] = {}
        self.stop_pending = False
        self.resume_to: ActorAddress | None = None
        self.last_status: dict[str, Any] = {}
        self.launcher_lost = False

    def receiveMsg_StartRootTree(self, msg: StartRootTree, sender: ActorAddress) -> None:
        if self.start_msg is not None:
            if self.ready_sent:
                self.send(sender, ActorReady(actor_name="root", pid=os.getpid()))
            return
        self.start_msg = msg
        self.launcher = sender
        self.settings = msg.settings
        self._setup_logging()
        self.hb = HeartbeatMonitor(msg.settings.heartbeat_timeout_s)
        if msg.portfolio is not None:
            self.children["portfolio"] = Child(spec=msg.portfolio)
            self.order.append("portfolio")
        for sym in msg.trees:
            spec = ChildSpec(role=sym, actor_class_path=msg.symbol_supervisor_class,
                             shutdown_timeout_s=msg.settings.shutdown_timeout_s + 5.0)
            self.children[sym] = Child(spec=spec)
            self.order.append(sym)
            self.symbols.append(sym)
            self.symbol_state[sym] = "starting"
        for name in self.order:
            self.intensities[name] = RestartIntensity(msg.settings.max_restarts,
                                                      msg.settings.restart_window_s)
        self._ensure_ticking()
        self.wakeupAfter(msg.settings.status_interval_s, payload=("status-log",))
        if "portfolio" in self.children:
            self._create(self.children["portfolio"])
        else:
            self._start_symbols()

    def _start_symbols(self) -> None:
        for sym in self.symbols:
            c = self.children[sym]
            if c.state == ChildState.STOPPED and self.symbol_state[sym] != "stopped":
                self._create(c)

    def start_message(self, child: Child) -> Any:
        assert self.start_msg is not None
        m = self.start_msg
        if child.name == "portfolio":
            return StartActor(symbol="", actor_name="portfolio", config_json=m.config_json,
                              state_dir=m.state_dir, restart_count=child.restarts)
        peers = {"root": pack(self.myAddress)}
        pf = self.children.get("portfolio")
        if pf is not None and pf.addr is not None:
            peers["portfolio"] = pack(pf.addr)
        return StartSymbolTree(symbol=child.name, specs=m.trees[child.name],
                               config_json=m.config_json, state_dir=m.state_dir,
                               settings=m.settings, peers=peers)

    def _check_all_ready(self) -> None:
        if self.ready_sent or self.launcher is None:
            return
        if all(self.symbol_state[s] in ("running", "stopped") for s in self.symbols):
            self.ready_sent = True
            log("BOT_STARTED", f"supervision tree ready: {', '.join(self.symbols)}",
                symbols=self.symbols, states=self.symbol_state, pid=os.getpid())
            self.send(self.launcher, ActorReady(actor_name="root", pid=os.getpid()))

    def on_child_ready(self, child: Child, msg: ActorReady) -> None:
        if child.name == "portfolio":
            if child.restarts > 0:
                log("ACTOR_RESTARTED", f"portfolio restarted: {child.restart_reason}",
                    level="WARNING", actor="portfolio", reason=child.restart_reason,
                    restart_count=child.restarts, restore_ms=round(msg.restore_ms, 3),
                    actor_pid=msg.pid)
                assert child.addr is not None
                upd = UpdatePeers(peers={"portfolio": pack(child.addr)})
                for s in self.symbols:
                    c = self.children[s]
                    if c.state == ChildState.RUNNING and c.addr is not None:
                        self.send(c.addr, upd)
                self._wire_portfolio()
            else:
                self._start_symbols()
            return
        self.symbol_state[child.name] = "running"
        if child.restarts > 0:
            log("ACTOR_RESTARTED", f"{child.name} supervisor restarted: {child.restart_reason}",
                level="WARNING", symbol=child.name, actor="supervisor",
                reason=child.restart_reason, restart_count=child.restarts,
                restore_ms=round(msg.restore_ms, 3), actor_pid=msg.pid)
        self._check_all_ready()

    def _wire_portfolio(self) -> None:
        pf = self.children.get("portfolio")
        if pf is None or pf.state != ChildState.RUNNING or pf.addr is None:
            return
        peers = {"root": pack(self.myAddress)}
        for sym, sp in self.tree_peers.items():
            if self.symbol_state.get(sym) == "stopped":
                continue
            for role, b in sp.items():
                peers[f"{sym}.{role}"] = b
        self.send(pf.addr, Wire(peers=peers))

    def receiveMsg_TreeWired(self, msg: TreeWired, sender: ActorAddress) -> None:
        self.tree_pids[msg.symbol] = dict(msg.pids)
        self.tree_peers[msg.symbol] = dict(msg.peers)
        self._wire_portfolio()

    def receiveMsg_ActorRestarted(self, msg: ActorRestarted, sender: ActorAddress) -> None:
        self.restart_events.append({"symbol": msg.symbol, "actor": msg.actor_name,
                                    "reason": msg.reason, "restart_count": msg.restart_count,
                                    "restore_ms": msg.restore_ms})
        del self.restart_events[:-50]

    def receiveMsg_SymbolStopped(self, msg: SymbolStopped, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is not None and child.state == ChildState.STARTING:
            # gave up during its first start: the supervisor lives on (status), never "ready"
            child.move(ChildState.RUNNING)
            child.addr = sender
            self.hb.track(child.name, now_s())
        self.symbol_state[msg.symbol] = "stopped"
        self.stop_reasons[msg.symbol] = msg.reason
        pf = self.children.get("portfolio")
        if pf is not None and pf.addr is not None and pf.state == ChildState.RUNNING:
            self.send(pf.addr, msg)
        self._check_all_ready()

    def on_child_failed(self, child: Child, reason: str) -> None:
        name = child.name
        if name in self.symbols:
            # Orphans: a dead supervisor's children keep running (thespian does not reap them).
            for pid in self.tree_pids.pop(name, {}).values():
                kill_pid(pid)
            if self.symbol_state.get(name) == "stopped":
                return
            self.symbol_state[name] = "restarting"
        log("ACTOR_FAILED", f"{name} failed: {reason}", level="WARNING",
            symbol=name if name in self.symbols else "", actor=name, reason=reason)
        now = now_s()
        if not self.intensities[name].register_failure(now):
            if name == "portfolio":
                log("PORTFOLIO_LOST", "portfolio actor keeps failing: stopping all trading "
                    "(cancel-only)", level="CRITICAL", reason=reason)
                for s in self.symbols:
                    c = self.children[s]
                    if c.state == ChildState.RUNNING and c.addr is not None:
                        self.send(c.addr, StopTrading(symbol=s, mode="cancel-only"))
            else:
                self.symbol_state[name] = "stopped"
                self.stop_reasons[name] = f"supervisor failed too often (last: {reason}); " \
                                          "check open orders of this symbol manually"
                log("SYMBOL_STOPPED", f"{name}: {self.stop_reasons[name]}", level="ERROR",
                    symbol=name, reason=self.stop_reasons[name])
                self._check_all_ready()
            return
        child.restart_reason = reason
        delay = backoff_delay(self.intensities[name].recent(now),
                              self.settings.restart_backoff_s, self.settings.max_backoff_s)
        if delay > 0:
            self.wakeupAfter(delay, payload=("restart", name))
        else:
            self._create(child)

    def after_tick(self, now: float) -> None:
        pid = self.start_msg.launcher_pid if self.start_msg is not None else 0
        if pid and not self.launcher_lost and netsec.proc_stat(pid) is None:
            self.launcher_lost = True
            log("LAUNCHER_LOST", f"launcher pid {pid} is gone: persisting and stopping the "
                "actor system (restart the bot to recover and reconcile)", level="CRITICAL")
            for c in self.children.values():
                if c.addr is not None and c.state in (ChildState.STARTING, ChildState.RUNNING):
                    self._stop(c)
            self.wakeupAfter(max(2.0, self.settings.shutdown_timeout_s / 3),
                             payload=("self-destruct",))

    def _self_destruct(self) -> None:
        try:
            logger.complete()
        finally:
            # The admin called setsid(): every process of this actor system, and nothing else,
            # is in our process group.
            if os.getpgid(0) == os.getsid(0):
                os.killpg(os.getpgid(0), signal.SIGKILL)
            for pid in netsec.session_pids(os.getsid(0)):
                if pid != os.getpid():
                    kill_pid(pid)
            os._exit(1)

    def on_wakeup(self, payload: tuple[Any, ...]) -> None:
        if payload[0] == "self-destruct":
            self._self_destruct()
        elif payload[0] == "restart":
            c = self.children.get(payload[1])
            if c is not None and c.state == ChildState.STOPPED:
                self._create(c)
        elif payload[0] == "stop-timeout" and payload[1] == self.stop_token:
            self._reply_stopped(timed_out=True)
        elif payload[0] == "status-log":
            self.wakeupAfter(self.settings.status_interval_s, payload=("status-log",))
            self._begin_status(None)
        elif payload[0] == "resume-timeout" and self.resume_to is not None:
            self.send(self.resume_to, StatusReported(actor_name="root", data={
                "resume": "sent to the portfolio; no confirmation received"}))
            self.resume_to = None

    # -- operator commands ------------------------------------------------------------------------
    def receiveMsg_TreePing(self, msg: TreePing, sender: ActorAddress) -> None:
        self.send(sender, TreePong(seq=msg.seq, pid=os.getpid(), symbols=dict(self.symbol_state)))

    def receiveMsg_StopTrading(self, msg: StopTrading, sender: ActorAddress) -> None:
        log("STOP_TRADING", f"stop trading requested (mode {msg.mode})", mode=msg.mode)
        self.stop_to = sender
        self.stop_pending = True
        self.stop_waiting = set()
        for s in self.symbols:
            c = self.children[s]
            if self.symbol_state[s] != "stopped" and c.addr is not None \
                    and c.state in (ChildState.RUNNING, ChildState.STARTING):
                self.send(c.addr, StopTrading(symbol=s, mode=msg.mode))
                self.stop_waiting.add(s)
        pf = self.children.get("portfolio")
        if pf is not None and pf.addr is not None and pf.state == ChildState.RUNNING:
            self.send(pf.addr, StopTrading(mode=msg.mode))
        if not self.stop_waiting:
            self._reply_stopped(timed_out=False)
            return
        self.wakeupAfter(self.settings.shutdown_timeout_s + 1.0,
                         payload=("stop-timeout", self._next_stop_token()))

    def receiveMsg_TradingStopped(self, msg: TradingStopped, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None or child.name not in self.symbols:
            return
        self.stop_results[child.name] = msg
        self.stop_waiting.discard(child.name)
        if self.stop_pending and not self.stop_waiting:
            self._reply_stopped(timed_out=False)

    def _reply_stopped(self, timed_out: bool) -> None:
        if not self.stop_pending:
            return
        self.stop_pending = False
        open_orders = sum(r.open_orders for r in self.stop_results.values())
        log("TRADING_STOPPED", "all symbols stopped trading" if not timed_out else
            f"stop timed out waiting for {sorted(self.stop_waiting)}",
            level="INFO" if not timed_out else "WARNING", open_orders=open_orders,
            missing=sorted(self.stop_waiting))
        if self.stop_to is not None:
            self.send(self.stop_to, TradingStopped(open_orders=open_orders))

    def receiveMsg_ResumeTrading(self, msg: ResumeTrading, sender: ActorAddress) -> None:
        pf = self.children.get("portfolio")
        if pf is None or pf.addr is None or pf.state != ChildState.RUNNING:
            self.send(sender, StatusReported(actor_name="root",
                                             data={"resume": "no running portfolio actor"}))
            return
        self.resume_to = sender
        self.send(pf.addr, msg)
        self.wakeupAfter(3.0, payload=("resume-timeout",))

    def receiveMsg_TradingStateChanged(self, msg: TradingStateChanged,
                                       sender: ActorAddress) -> None:
        if self.resume_to is not None:
            self.send(self.resume_to, msg)
            self.resume_to = None

    # -- status -----------------------------------------------------------------------------------
    def status_name(self) -> str:
        return "root"

    def status_timeout_s(self) -> float:
        return 2 * STATUS_TIMEOUT_S + 0.5

    def status_data(self) -> dict[str, Any]:
        now = now_s()
        symbols: dict[str, Any] = {}
        for s in self.symbols:
            c = self.children[s]
            row = self.child_row(c, now)
            symbols[s] = {"state": self.symbol_state[s],
                          "stop_reason": self.stop_reasons.get(s, ""),
                          "supervisor": {k: row[k] for k in ("pid", "state", "restarts",
                                                             "heartbeat_age_s")},
                          "tree": c.status}
        pf = self.children.get("portfolio")
        return {
            "root": {"pid": os.getpid(), "uptime_s": round(time.time() - self.started_at, 1)},
            "symbols": symbols,
            "portfolio": self.child_row(pf, now) if pf is not None else None,
            "recent_restarts": self.restart_events[-10:],
        }

    def deliver_status(self, to: ActorAddress | None, data: dict[str, Any]) -> None:
        self.last_status = data
        if to is None:
            pf = (data.get("portfolio") or {}).get("status", {})
            for line in symbol_status_lines(data):
                log("STATUS", "status", **line)
            log("PORTFOLIO_STATUS", "portfolio status",
                symbols={s: v["state"] for s, v in data["symbols"].items()},
                portfolio=pf, restarts=len(self.restart_events))
            return
        super().deliver_status(to, data)
