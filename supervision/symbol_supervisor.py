"""``SymbolSupervisor``: one symbol's tree (gateway → order → risk → strategy, rest_for_one).

It starts the children one at a time in spec order, waiting for each ``ActorReady``, then wires
them (``Wire`` with every peer's address) and tells the root (``TreeWired``). A failed child is
restarted with everything started after it (rest_for_one) after the policy's backoff; past the
restart intensity the tree gives up: it stops every child and winds the symbol down through a
fresh, store-less gateway (``WindDownSymbol``: cancel every open order and, with
``give_up_mode`` flatten, close the futures position reduce-only), logs SYMBOL_STOPPED at
CRITICAL with what it left at the exchange, then reports ``SymbolStopped``. ``StopTrading``
reaches every child (the order actor answers ``TradingStopped``, which goes back up).
Child management and failure detection are ``supervision.children``.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from typing import Any

from thespian.actors import ActorAddress

from models.messages import (
    ActorReady,
    ActorRestarted,
    StartActor,
    StopTrading,
    SymbolStopped,
    SymbolWoundDown,
    TradingStopped,
    WindDownSymbol,
    Wire,
)
from supervision.children import Child, Supervisor, log, now_s, pack
from supervision.policy import (
    ChildState,
    HeartbeatMonitor,
    RestartIntensity,
    TreeState,
    backoff_delay,
    rest_for_one,
    should_restart,
    tree_transition,
)
from supervision.tree import StartSymbolTree, TreeWired, UpdatePeers


def wind_down_summary(msg: SymbolWoundDown, mode: str) -> str:
    """One line for SYMBOL_STOPPED: what the wind-down left at the exchange."""
    orders = ("open orders cancelled" if msg.orders_cancelled else
              f"{msg.open_orders_left} open order(s) left" if msg.open_orders_left >= 0 else
              "open orders unknown")
    if msg.position_after == 0 and msg.position_before != 0:
        pos = f"position {msg.position_before} closed"
    elif msg.position_after == 0:
        pos = "no position"
    else:
        pos = f"position {msg.position_after} LEFT OPEN"
    detail = f" ({msg.detail})" if msg.detail else ""
    return f"wind-down ({mode}): {orders}, {pos}{detail}"


class SymbolSupervisor(Supervisor):
    """One symbol's tree: starts children in order, rest_for_one restarts, gives up past the
    restart intensity (cancelling the symbol's orders through a fresh gateway)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tree_state = TreeState.STARTING
        self.config_json = b""
        self.state_dir = ""
        self.extra_peers: dict[str, bytes] = {}
        self.intensity = RestartIntensity(5, 60.0)
        self.start_queue: list[str] = []
        self.restart_from: int | None = None
        self.restart_at = 0.0
        self.announced_ready = False
        self.give_up_reason = ""
        self.stop_detail = ""
        self.cleanup: Child | None = None
        self.stop_mode: str | None = None
        self.stop_to: ActorAddress | None = None
        self.stop_waiting: set[str] = set()
        self.stop_results: dict[str, TradingStopped] = {}
        self.stop_pending = False

    # -- start ----------------------------------------------------------------------------------
    def receiveMsg_StartSymbolTree(self, msg: StartSymbolTree, sender: ActorAddress) -> None:
        if self.parent is not None:  # duplicate/redelivery
            return
        self.parent = sender
        self.symbol = msg.symbol
        self.settings = msg.settings
        self._setup_logging()
        self.config_json = msg.config_json
        self.state_dir = msg.state_dir
        self.extra_peers = dict(msg.peers)
        self.intensity = RestartIntensity(msg.settings.max_restarts, msg.settings.restart_window_s)
        self.hb = HeartbeatMonitor(msg.settings.heartbeat_timeout_s)
        for spec in msg.specs:
            self.children[spec.role] = Child(spec=spec)
            self.order.append(spec.role)
        self.start_queue = list(self.order)
        self._ensure_ticking()
        self._start_next()

    def start_message(self, child: Child) -> Any:
        return StartActor(symbol=self.symbol, actor_name=child.name,
                          config_json=self.config_json, state_dir=self.state_dir,
                          restart_count=child.restarts, wind_down_only=child is self.cleanup)

    def _start_next(self) -> None:
        while self.start_queue:
            c = self.children[self.start_queue[0]]
            if c.state == ChildState.STOPPED:
                self._create(c)
                return
            if c.state == ChildState.STARTING:
                return
            self.start_queue.pop(0)
        self._all_started()

    def _all_started(self) -> None:
        self.tree_state = tree_transition(self.tree_state, TreeState.RUNNING)
        self._wire()
        if not self.announced_ready and self.parent is not None:
            self.announced_ready = True
            self.send(self.parent, ActorReady(symbol=self.symbol, actor_name="supervisor",
                                              pid=os.getpid()))
        if self.stop_mode is not None:
            for r in reversed(self.order):
                c = self.children[r]
                if c.state == ChildState.RUNNING and c.addr is not None:
                    self.send(c.addr, StopTrading(symbol=self.symbol, mode=self.stop_mode))

    def _peers(self) -> dict[str, bytes]:
        peers = dict(self.extra_peers)
        peers["supervisor"] = pack(self.myAddress)
        for c in self.children.values():
            if c.state == ChildState.RUNNING and c.addr is not None:
                peers[c.name] = pack(c.addr)
        return peers

    def _wire(self) -> None:
        peers = self._peers()
        for c in self.children.values():
            if c.state == ChildState.RUNNING and c.addr is not None:
                self.send(c.addr, Wire(symbol=self.symbol, peers=peers))
        if self.parent is not None:
            pids = {c.name: c.pid for c in self.children.values() if c.pid}
            self.send(self.parent, TreeWired(symbol=self.symbol, peers=peers, pids=pids))

    def receiveMsg_UpdatePeers(self, msg: UpdatePeers, sender: ActorAddress) -> None:
        self.extra_peers.update(msg.peers)
        if self.tree_state == TreeState.RUNNING:
            self._wire()

    def on_child_ready(self, child: Child, msg: ActorReady) -> None:
        if child is self.cleanup:
            self._cleanup_ready(child)
            return
        if child.restarts > 0:
            log("ACTOR_RESTARTED", f"{child.name} restarted: {child.restart_reason}",
                level="WARNING", symbol=self.symbol, actor=child.name,
                reason=child.restart_reason, restart_count=child.restarts,
                restore_ms=round(msg.restore_ms, 3), actor_pid=msg.pid)
            if self.parent is not None:
                self.send(self.parent, ActorRestarted(
                    symbol=self.symbol, actor_name=child.name, reason=child.restart_reason,
                    restart_count=child.restarts, restore_ms=msg.restore_ms))
        if self.start_queue and self.start_queue[0] == child.name:
            self.start_queue.pop(0)
            self._start_next()

    # -- failures -------------------------------------------------------------------------------
    def on_child_failed(self, child: Child, reason: str) -> None:
        if child is self.cleanup:
            self._finish_stop("could not run a gateway to wind the symbol down "
                              f"({reason}): cancel its orders and close its position manually")
            return
        if self.tree_state in (TreeState.GIVING_UP, TreeState.STOPPED):
            self._maybe_finish_giving_up()
            return
        log("ACTOR_FAILED", f"{child.name} failed: {reason}", level="WARNING",
            symbol=self.symbol, actor=child.name, reason=reason, actor_pid=child.pid)
        if not should_restart(child.spec.restart, abnormal=True):
            return
        now = now_s()
        if not self.intensity.register_failure(now):
            self._give_up(f"{child.name} failed more than {self.intensity.max_restarts} times "
                          f"in {self.intensity.window_s:g}s (last: {reason})")
            return
        to_stop, to_restart = rest_for_one(self.order, child.name)
        for r in to_stop:
            self._stop(self.children[r])
        for r in to_restart:
            c = self.children[r]
            c.restart_reason = reason if r == child.name else f"rest_for_one after {child.name}"
        if self.tree_state != TreeState.RESTARTING:
            self.tree_state = tree_transition(self.tree_state, TreeState.RESTARTING)
        k = self.order.index(child.name)
        self.restart_from = k if self.restart_from is None else min(self.restart_from, k)
        self.start_queue = []
        delay = backoff_delay(self.intensity.recent(now), self.settings.restart_backoff_s,
                              self.settings.max_backoff_s)
        self.restart_at = max(self.restart_at, now + delay)
        if delay > 0:
            self.wakeupAfter(delay, payload=("restart",))
        self._maybe_restart()

    def on_child_stopped(self, child: Child) -> None:
        if child is self.cleanup:
            self._finish_stop(self.stop_detail or "the wind-down gateway stopped before it "
                              "answered: check open orders and the position manually")
        elif self.tree_state == TreeState.RESTARTING:
            self._maybe_restart()
        elif self.tree_state == TreeState.GIVING_UP:
            self._maybe_finish_giving_up()

    def on_wakeup(self, payload: tuple[Any, ...]) -> None:
        if payload[0] == "restart":
            self._maybe_restart()
        elif payload[0] == "stop-timeout" and payload[1] == self.stop_token:
            self._reply_stopped(timed_out=True)
        elif payload[0] == "wind-down-timeout" and self.cleanup is not None \
                and self.tree_state == TreeState.GIVING_UP and not self.stop_detail:
            self.stop_detail = (f"no answer from the wind-down gateway within "
                                f"{self.wind_down_timeout_s():g}s: check open orders and the "
                                "position manually")
            self._stop(self.cleanup)

    def after_tick(self, now: float) -> None:
        if self.tree_state == TreeState.RESTARTING:
            self._maybe_restart()

    def _maybe_restart(self) -> None:
        if self.tree_state != TreeState.RESTARTING or self.restart_from is None:
            return
        if now_s() < self.restart_at - 1e-3:
            return
        roles = self.order[self.restart_from:]
        if any(self.children[r].state != ChildState.STOPPED for r in roles):
            return  # still waiting for exits
        self.restart_from = None
        self.start_queue = [r for r in roles if self.children[r].spec.restart != "temporary"]
        self._start_next()

    # -- giving up ----------------------------------------------------------------------------
    def _give_up(self, reason: str) -> None:
        self.tree_state = tree_transition(self.tree_state, TreeState.GIVING_UP)
        self.give_up_reason = reason
        self.start_queue = []
        self.restart_from = None
        log("SYMBOL_STOPPING", f"{self.symbol}: restart intensity exceeded: {reason}",
            level="ERROR", symbol=self.symbol, reason=reason)
        for r in reversed(self.order):
            self._stop(self.children[r])
        self._maybe_finish_giving_up()

    def extra_children(self) -> list[Child]:
        return [self.cleanup] if self.cleanup is not None else []

    def _maybe_finish_giving_up(self) -> None:
        if self.tree_state != TreeState.GIVING_UP or self.cleanup is not None:
            return
        if any(c.state != ChildState.STOPPED for c in self.children.values()):
            return
        gw = self.children.get("gateway")
        if gw is None:
            self._finish_stop("no gateway role: open orders were not cancelled")
            return
        self.cleanup = Child(spec=gw.spec, starts=gw.starts)
        self._create(self.cleanup)

    def wind_down_timeout_s(self) -> float:
        """How long the wind-down gateway may take (time sync, cancels, flatten, read-back)."""
        return max(60.0, 2 * self.settings.shutdown_timeout_s)

    def _cleanup_ready(self, child: Child) -> None:
        assert child.addr is not None
        self.send(child.addr, Wire(symbol=self.symbol, peers={
            **self.extra_peers, "supervisor": pack(self.myAddress)}))
        self.send(child.addr, WindDownSymbol(
            symbol=self.symbol, mode=self.settings.give_up_mode,
            generation=int(time.time()), reason=f"symbol stopped: {self.give_up_reason}"))
        self.wakeupAfter(self.wind_down_timeout_s(), payload=("wind-down-timeout",))

    def receiveMsg_SymbolWoundDown(self, msg: SymbolWoundDown, sender: ActorAddress) -> None:
        if self.cleanup is None or self.stop_detail:
            return
        self.stop_detail = wind_down_summary(msg, self.settings.give_up_mode)
        self._stop(self.cleanup)

    def _finish_stop(self, detail: str) -> None:
        if self.tree_state == TreeState.STOPPED:
            return
        self.tree_state = tree_transition(self.tree_state, TreeState.STOPPED)
        reason = f"{self.give_up_reason}; {detail}"
        log("SYMBOL_STOPPED", f"{self.symbol} stopped trading: {reason}", level="CRITICAL",
            symbol=self.symbol, reason=reason)
        if self.parent is not None:
            self.send(self.parent, SymbolStopped(symbol=self.symbol, reason=reason))
        if self.stop_pending:
            self._reply_stopped(timed_out=False)

    # -- graceful stop --------------------------------------------------------------------------
    def receiveMsg_StopTrading(self, msg: StopTrading, sender: ActorAddress) -> None:
        self.stop_mode = msg.mode
        self.stop_to = sender
        self.stop_pending = True
        self.stop_waiting = set()
        for r in reversed(self.order):
            c = self.children[r]
            if c.state in (ChildState.RUNNING, ChildState.STARTING) and c.addr is not None:
                self.send(c.addr, StopTrading(symbol=self.symbol, mode=msg.mode))
                if c.spec.acks_stop:
                    self.stop_waiting.add(c.name)
        if self.tree_state == TreeState.STOPPED or not self.stop_waiting:
            self._reply_stopped(timed_out=False)
            return
        self.wakeupAfter(self.settings.shutdown_timeout_s,
                         payload=("stop-timeout", self._next_stop_token()))

    def receiveMsg_TradingStopped(self, msg: TradingStopped, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None:
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
        pos = sum((r.position_qty for r in self.stop_results.values()), Decimal(0))
        if timed_out:
            log("STOP_TIMEOUT", f"{self.symbol}: no TradingStopped from "
                f"{sorted(self.stop_waiting)} within {self.settings.shutdown_timeout_s:g}s",
                level="WARNING", symbol=self.symbol)
        if self.stop_to is not None:
            self.send(self.stop_to, TradingStopped(symbol=self.symbol, open_orders=open_orders,
                                                   position_qty=pos))

    # -- status ---------------------------------------------------------------------------------
    def status_data(self) -> dict[str, Any]:
        now = now_s()
        return {
            "symbol": self.symbol, "state": self.tree_state.value, "pid": os.getpid(),
            "restarts_in_window": self.intensity.recent(now),
            "restarts_total": self.intensity.total,
            "stop_reason": self.give_up_reason,
            "actors": [self.child_row(self.children[r], now) for r in self.order],
        }
