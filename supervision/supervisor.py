"""Supervisor actors: ``RootSupervisor`` (portfolio + one ``SymbolSupervisor`` per symbol) and
``SymbolSupervisor`` (gateway → order → risk → strategy, rest_for_one).

Both run under ``multiprocTCPBase``: every actor has its own OS process, forked by its parent
actor, so a crash or hang in one symbol's processes never reaches another symbol's.

Failure detection:

* ``ChildActorExited`` (crash, ``os._exit``, kill -9) not requested by the supervisor;
* ``PoisonMessage`` for the start message, or no ``ActorReady`` within ``start_timeout_s``;
* no ``HeartbeatAck`` within ``heartbeat_timeout_s`` (hung): ``ActorExitRequest``, then SIGKILL of
  the child's pid (checked to be our child first) if it is still there after a short grace.

The decisions (states, intensity, backoff, rest_for_one) are the pure functions of
``supervision.policy``; this module only turns messages into calls and calls into sends.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from thespian.actors import (
    ActorAddress,
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)

from models.messages import (
    ActorReady,
    ActorRestarted,
    CancelAllOrders,
    Heartbeat,
    HeartbeatAck,
    ResumeTrading,
    StartActor,
    StatusReported,
    StatusRequested,
    StopTrading,
    SymbolStopped,
    TradingStateChanged,
    TradingStopped,
    Wire,
)
from supervision import netsec
from supervision.policy import (
    ChildState,
    HeartbeatMonitor,
    RestartIntensity,
    TreeState,
    backoff_delay,
    child_transition,
    rest_for_one,
    should_restart,
    tree_transition,
)
from supervision.tree import (
    ChildSpec,
    StartRootTree,
    StartSymbolTree,
    SupervisorSettings,
    TreePing,
    TreePong,
    TreeWired,
    UpdatePeers,
)

#: Grace between ActorExitRequest and SIGKILL for a child being removed after a failure.
KILL_GRACE_S = 1.0
STATUS_TIMEOUT_S = 1.5


def _now() -> float:
    return time.monotonic()


def _pack(addr: ActorAddress) -> bytes:
    from actors.base import pack_address

    return pack_address(addr)


def _log(event: str, msg: str, level: str = "INFO", **ctx: Any) -> None:
    try:
        from infra.logs import log_event

        log_event(event, msg, level=level, **ctx)
    except Exception:  # noqa: BLE001 - logging must never break supervision
        pass


def kill_pid(pid: int, *, parent: int | None = None) -> bool:
    """SIGKILL ``pid`` if it is alive, in our session and (when given) a child of ``parent``."""
    st = netsec.proc_stat(pid) if pid > 0 else None
    if st is None or st["sid"] != os.getsid(0):
        return False
    if parent is not None and st["ppid"] != parent:
        return False
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        return False
    return True


@dataclass
class Child:
    """Run-time record of one supervised child."""

    spec: ChildSpec
    state: ChildState = ChildState.STOPPED
    addr: ActorAddress | None = None
    pid: int = 0
    starts: int = 0
    deadline: float = 0.0
    reason: str = ""
    restart_reason: str = ""
    restore_ms: float = 0.0
    snapshot_age_s: float = -1.0
    killed: bool = False
    status: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.role

    @property
    def restarts(self) -> int:
        return max(0, self.starts - 1)

    def move(self, new: ChildState) -> None:
        self.state = child_transition(self.state, new)


class _Supervisor(ActorTypeDispatcher):
    """Child bookkeeping shared by the root and symbol supervisors."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = SupervisorSettings()
        self.children: dict[str, Child] = {}
        self.order: list[str] = []
        self.hb = HeartbeatMonitor(10.0)
        self.hb_seq = 0
        self.parent: ActorAddress | None = None
        self.exiting = False
        self.ticking = False
        self.token = 0
        self.stop_token = 0
        self.status_reqs: dict[int, dict[str, Any]] = {}
        self.symbol = ""

    # -- hooks ----------------------------------------------------------------------------------
    def start_message(self, child: Child) -> Any:
        raise NotImplementedError

    def on_child_ready(self, child: Child, msg: ActorReady) -> None:
        """A child answered its start message."""

    def on_child_failed(self, child: Child, reason: str) -> None:
        """A child died or was removed without being asked to."""

    def on_child_stopped(self, child: Child) -> None:
        """A child exited after the supervisor asked it to."""

    def status_data(self) -> dict[str, Any]:
        raise NotImplementedError

    def extra_children(self) -> list[Child]:
        """Children tracked outside ``self.children`` (the clean-up gateway)."""
        return []

    # -- helpers ------------------------------------------------------------------------------
    def _next_token(self) -> int:
        self.token += 1
        return self.token

    def _next_stop_token(self) -> int:
        self.stop_token += 1
        return self.stop_token

    def _setup_logging(self) -> None:
        if self.settings.multiprocess:
            from infra.logs import configure_actor_logging

            configure_actor_logging(self.settings.log_level)

    def _find(self, addr: ActorAddress | None) -> Child | None:
        if addr is None:
            return None
        # ``==``, never ``str``: a created child's address is a local alias until it starts.
        for c in list(self.children.values()) + self.extra_children():
            if c.addr is not None and c.addr == addr:
                return c
        return None

    def _create(self, child: Child) -> None:
        child.addr = self.createActor(child.spec.actor_class_path)
        child.pid = 0
        child.killed = False
        child.reason = ""
        child.starts += 1
        child.status = {}
        child.snapshot_age_s = -1.0
        child.move(ChildState.STARTING)
        child.deadline = _now() + self.settings.start_timeout_s
        self.send(child.addr, self.start_message(child))

    def _stop(self, child: Child) -> None:
        """Orderly stop (normal exit)."""
        if child.state not in (ChildState.STARTING, ChildState.RUNNING):
            return
        child.move(ChildState.STOPPING)
        child.deadline = _now() + child.spec.shutdown_timeout_s
        self.hb.forget(child.name)
        if child.addr is not None:
            self.send(child.addr, ActorExitRequest())

    def _kill(self, child: Child, reason: str) -> None:
        """Remove a failed/hung child; its exit then counts as a failure with ``reason``."""
        if child.state == ChildState.STOPPING:
            child.move(ChildState.KILLING)
        elif child.state in (ChildState.STARTING, ChildState.RUNNING):
            child.move(ChildState.KILLING)
        else:
            return
        child.reason = reason
        child.deadline = _now() + min(KILL_GRACE_S, child.spec.shutdown_timeout_s)
        self.hb.forget(child.name)
        _log("ACTOR_KILLING", f"removing {child.name}: {reason}", level="WARNING",
             symbol=self.symbol, actor=child.name, reason=reason, actor_pid=child.pid)
        if child.addr is not None:
            self.send(child.addr, ActorExitRequest())

    def _sigkill(self, child: Child) -> None:
        if child.killed:
            return
        pid = child.pid
        if not pid and child.addr is not None:
            port = getattr(child.addr.addressDetails, "sockname", (None, None))[1]
            if port:
                pid = netsec.pid_listening_on(port, netsec.children_of(os.getpid())) or 0
        if pid and kill_pid(pid, parent=os.getpid()):
            child.killed = True
            _log("ACTOR_SIGKILLED", f"SIGKILL {child.name} (pid {pid})", level="WARNING",
                 symbol=self.symbol, actor=child.name, actor_pid=pid)

    def _ensure_ticking(self) -> None:
        if not self.ticking:
            self.ticking = True
            self.wakeupAfter(self.settings.heartbeat_interval_s, payload=("tick",))

    def _tick(self) -> None:
        now = _now()
        for c in list(self.children.values()) + self.extra_children():
            if c.state == ChildState.STARTING and now > c.deadline:
                self._kill(c, f"no ActorReady within {self.settings.start_timeout_s:g}s")
            elif c.state == ChildState.RUNNING and c.name in self.hb.overdue(now, [c.name]):
                age = self.hb.age(c.name, now) or 0.0
                self._kill(c, f"hung: no HeartbeatAck for {age:.1f}s")
            elif c.state in (ChildState.STOPPING, ChildState.KILLING) and now > c.deadline:
                self._sigkill(c)
        self.hb_seq += 1
        for c in self.children.values():
            if c.state == ChildState.RUNNING and c.addr is not None:
                self.send(c.addr, Heartbeat(symbol=self.symbol, seq=self.hb_seq))
        self.after_tick(now)

    def after_tick(self, now: float) -> None:
        """Subclass hook run on every heartbeat tick."""

    def child_row(self, c: Child, now: float) -> dict[str, Any]:
        """One actor's line in the status tree."""
        hb_age = self.hb.age(c.name, now)
        return {"name": c.name, "pid": c.pid, "state": c.state.value, "restarts": c.restarts,
                "snapshot_age_s": None if c.snapshot_age_s < 0 else round(c.snapshot_age_s, 3),
                "heartbeat_age_s": None if hb_age is None else round(hb_age, 3),
                "status": c.status}

    # -- thespian messages --------------------------------------------------------------------
    def receiveMsg_ActorReady(self, msg: ActorReady, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None or child.state != ChildState.STARTING:
            return
        child.move(ChildState.RUNNING)
        child.addr = sender  # the real (picklable) address
        child.pid = msg.pid
        child.restore_ms = msg.restore_ms
        self.hb.track(child.name, _now())
        self.on_child_ready(child, msg)

    def receiveMsg_HeartbeatAck(self, msg: HeartbeatAck, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None:
            return
        self.hb.answered(child.name, _now())
        if msg.pid:
            child.pid = msg.pid
        child.snapshot_age_s = msg.snapshot_age_s

    def receiveMsg_Heartbeat(self, msg: Heartbeat, sender: ActorAddress) -> None:
        self.send(sender, HeartbeatAck(symbol=self.symbol, seq=msg.seq, actor_name="supervisor",
                                       pid=os.getpid()))

    def receiveMsg_ChildActorExited(self, msg: ChildActorExited, sender: ActorAddress) -> None:
        child = self._find(msg.childAddress)
        if child is None:
            return
        prev = child.state
        if prev == ChildState.STOPPED:
            return
        child.move(ChildState.STOPPED)
        child.addr = None
        self.hb.forget(child.name)
        if self.exiting:
            return
        if prev == ChildState.STOPPING:
            self.on_child_stopped(child)
        else:
            reason = child.reason or ("process exited" if prev == ChildState.RUNNING
                                      else "process exited during start")
            self.on_child_failed(child, reason)

    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is not None and isinstance(msg.poisonMessage, (StartActor, StartSymbolTree)):
            detail = (msg.details or "").strip().splitlines()
            self._kill(child, "start failed: " + (detail[-1] if detail else "exception"))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: ActorAddress) -> None:
        payload = msg.payload
        if not isinstance(payload, tuple) or self.exiting:
            return
        if payload[0] == "tick":
            self.wakeupAfter(self.settings.heartbeat_interval_s, payload=("tick",))
            self._tick()
        elif payload[0] == "status":
            self._finish_status(payload[1], timed_out=True)
        else:
            self.on_wakeup(payload)

    def on_wakeup(self, payload: tuple[Any, ...]) -> None:
        """Subclass wakeups."""

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: ActorAddress) -> None:
        self.exiting = True
        try:
            from loguru import logger

            logger.complete()
        except Exception:  # noqa: BLE001
            pass

    # -- status fan-out ---------------------------------------------------------------------------
    def receiveMsg_StatusRequested(self, msg: StatusRequested, sender: ActorAddress) -> None:
        self._begin_status(sender)

    def _begin_status(self, requester: ActorAddress | None) -> None:
        token = self._next_token()
        waiting = set()
        for c in self.children.values():
            if c.state == ChildState.RUNNING and c.addr is not None:
                waiting.add(c.name)
                self.send(c.addr, StatusRequested(symbol=self.symbol))
        self.status_reqs[token] = {"to": requester, "waiting": waiting}
        if not waiting:
            self._finish_status(token, timed_out=False)
        else:
            self.wakeupAfter(self.status_timeout_s(), payload=("status", token))

    def receiveMsg_StatusReported(self, msg: StatusReported, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None:
            return
        child.status = dict(msg.data)
        for token, req in list(self.status_reqs.items()):
            req["waiting"].discard(child.name)
            if not req["waiting"]:
                self._finish_status(token, timed_out=False)

    def _finish_status(self, token: int, timed_out: bool) -> None:
        req = self.status_reqs.pop(token, None)
        if req is None:
            return
        data = self.status_data()
        if timed_out and req["waiting"]:
            data["no_status_from"] = sorted(req["waiting"])
        self.deliver_status(req["to"], data)

    def deliver_status(self, to: ActorAddress | None, data: dict[str, Any]) -> None:
        if to is not None:
            self.send(to, StatusReported(symbol=self.symbol, actor_name=self.status_name(),
                                         data=data))

    def status_name(self) -> str:
        return "supervisor"

    def status_timeout_s(self) -> float:
        """How long to wait for the children's StatusReported."""
        return STATUS_TIMEOUT_S


class SymbolSupervisor(_Supervisor):
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
                          restart_count=child.restarts)

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
        peers["supervisor"] = _pack(self.myAddress)
        for c in self.children.values():
            if c.state == ChildState.RUNNING and c.addr is not None:
                peers[c.name] = _pack(c.addr)
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
            _log("ACTOR_RESTARTED", f"{child.name} restarted: {child.restart_reason}",
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
            self._finish_stop("could not run a gateway to cancel the open orders "
                              f"({reason}): cancel them manually")
            return
        if self.tree_state in (TreeState.GIVING_UP, TreeState.STOPPED):
            self._maybe_finish_giving_up()
            return
        _log("ACTOR_FAILED", f"{child.name} failed: {reason}", level="WARNING",
             symbol=self.symbol, actor=child.name, reason=reason, actor_pid=child.pid)
        if not should_restart(child.spec.restart, abnormal=True):
            return
        now = _now()
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
            self._finish_stop(self.stop_detail or "cancel of open orders requested")
        elif self.tree_state == TreeState.RESTARTING:
            self._maybe_restart()
        elif self.tree_state == TreeState.GIVING_UP:
            self._maybe_finish_giving_up()

    def on_wakeup(self, payload: tuple[Any, ...]) -> None:
        if payload[0] == "restart":
            self._maybe_restart()
        elif payload[0] == "stop-timeout" and payload[1] == self.stop_token:
            self._reply_stopped(timed_out=True)

    def after_tick(self, now: float) -> None:
        if self.tree_state == TreeState.RESTARTING:
            self._maybe_restart()

    def _maybe_restart(self) -> None:
        if self.tree_state != TreeState.RESTARTING or self.restart_from is None:
            return
        if _now() < self.restart_at - 1e-3:
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
        _log("SYMBOL_STOPPING", f"{self.symbol}: restart intensity exceeded: {reason}",
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

    def _cleanup_ready(self, child: Child) -> None:
        assert child.addr is not None
        self.send(child.addr, Wire(symbol=self.symbol, peers={
            **self.extra_peers, "supervisor": _pack(self.myAddress)}))
        self.send(child.addr, CancelAllOrders(symbol=self.symbol,
                                              reason=f"symbol stopped: {self.give_up_reason}"))
        self.stop_detail = "CancelAllOrders sent through a fresh gateway"
        self._stop(child)

    def _finish_stop(self, detail: str) -> None:
        if self.tree_state == TreeState.STOPPED:
            return
        self.tree_state = tree_transition(self.tree_state, TreeState.STOPPED)
        reason = f"{self.give_up_reason}; {detail}"
        _log("SYMBOL_STOPPED", f"{self.symbol} stopped trading: {reason}", level="ERROR",
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
            _log("STOP_TIMEOUT", f"{self.symbol}: no TradingStopped from "
                 f"{sorted(self.stop_waiting)} within {self.settings.shutdown_timeout_s:g}s",
                 level="WARNING", symbol=self.symbol)
        if self.stop_to is not None:
            self.send(self.stop_to, TradingStopped(symbol=self.symbol, open_orders=open_orders,
                                                   position_qty=pos))

    # -- status ---------------------------------------------------------------------------------
    def status_data(self) -> dict[str, Any]:
        now = _now()
        return {
            "symbol": self.symbol, "state": self.tree_state.value, "pid": os.getpid(),
            "restarts_in_window": self.intensity.recent(now),
            "restarts_total": self.intensity.total,
            "stop_reason": self.give_up_reason,
            "actors": [self.child_row(self.children[r], now) for r in self.order],
        }


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


class RootSupervisor(_Supervisor):
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
        peers = {"root": _pack(self.myAddress)}
        pf = self.children.get("portfolio")
        if pf is not None and pf.addr is not None:
            peers["portfolio"] = _pack(pf.addr)
        return StartSymbolTree(symbol=child.name, specs=m.trees[child.name],
                               config_json=m.config_json, state_dir=m.state_dir,
                               settings=m.settings, peers=peers)

    def _check_all_ready(self) -> None:
        if self.ready_sent or self.launcher is None:
            return
        if all(self.symbol_state[s] in ("running", "stopped") for s in self.symbols):
            self.ready_sent = True
            _log("BOT_STARTED", f"supervision tree ready: {', '.join(self.symbols)}",
                 symbols=self.symbols, states=self.symbol_state, pid=os.getpid())
            self.send(self.launcher, ActorReady(actor_name="root", pid=os.getpid()))

    def on_child_ready(self, child: Child, msg: ActorReady) -> None:
        if child.name == "portfolio":
            if child.restarts > 0:
                _log("ACTOR_RESTARTED", f"portfolio restarted: {child.restart_reason}",
                     level="WARNING", actor="portfolio", reason=child.restart_reason,
                     restart_count=child.restarts, restore_ms=round(msg.restore_ms, 3),
                     actor_pid=msg.pid)
                assert child.addr is not None
                upd = UpdatePeers(peers={"portfolio": _pack(child.addr)})
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
            _log("ACTOR_RESTARTED", f"{child.name} supervisor restarted: {child.restart_reason}",
                 level="WARNING", symbol=child.name, actor="supervisor",
                 reason=child.restart_reason, restart_count=child.restarts,
                 restore_ms=round(msg.restore_ms, 3), actor_pid=msg.pid)
        self._check_all_ready()

    def _wire_portfolio(self) -> None:
        pf = self.children.get("portfolio")
        if pf is None or pf.state != ChildState.RUNNING or pf.addr is None:
            return
        peers = {"root": _pack(self.myAddress)}
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
            self.hb.track(child.name, _now())
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
        _log("ACTOR_FAILED", f"{name} failed: {reason}", level="WARNING",
             symbol=name if name in self.symbols else "", actor=name, reason=reason)
        now = _now()
        if not self.intensities[name].register_failure(now):
            if name == "portfolio":
                _log("PORTFOLIO_LOST", "portfolio actor keeps failing: stopping all trading "
                     "(cancel-only)", level="CRITICAL", reason=reason)
                for s in self.symbols:
                    c = self.children[s]
                    if c.state == ChildState.RUNNING and c.addr is not None:
                        self.send(c.addr, StopTrading(symbol=s, mode="cancel-only"))
            else:
                self.symbol_state[name] = "stopped"
                self.stop_reasons[name] = f"supervisor failed too often (last: {reason}); " \
                                          "check open orders of this symbol manually"
                _log("SYMBOL_STOPPED", f"{name}: {self.stop_reasons[name]}", level="ERROR",
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
            _log("LAUNCHER_LOST", f"launcher pid {pid} is gone: persisting and stopping the "
                 "actor system (restart the bot to recover and reconcile)", level="CRITICAL")
            for c in self.children.values():
                if c.addr is not None and c.state in (ChildState.STARTING, ChildState.RUNNING):
                    self._stop(c)
            self.wakeupAfter(max(2.0, self.settings.shutdown_timeout_s / 3),
                             payload=("self-destruct",))

    def _self_destruct(self) -> None:
        try:
            from loguru import logger

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
        _log("STOP_TRADING", f"stop trading requested (mode {msg.mode})", mode=msg.mode)
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
        _log("TRADING_STOPPED", "all symbols stopped trading" if not timed_out else
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
        now = _now()
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
                _log("STATUS", "status", **line)
            _log("PORTFOLIO_STATUS", "portfolio status",
                 symbols={s: v["state"] for s, v in data["symbols"].items()},
                 portfolio=pf, restarts=len(self.restart_events))
            return
        super().deliver_status(to, data)
