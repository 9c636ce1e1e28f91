"""Child management shared by both supervisors (``supervision.symbol_supervisor`` and
``supervision.root_supervisor``): the ``Child`` record and the ``Supervisor`` base actor.

Both run under ``multiprocTCPBase``: every actor has its own OS process, forked by its parent
actor, so a crash or hang in one symbol's processes never reaches another symbol's.

Failure detection:

* ``ChildActorExited`` (crash, ``os._exit``, kill -9) not requested by the supervisor;
* ``PoisonMessage`` for the start message, or no ``ActorReady`` within ``start_timeout_s``;
* no ``HeartbeatAck`` within ``heartbeat_timeout_s`` (hung): ``ActorExitRequest``, then SIGKILL of
  the child's pid (checked to be our child first) if it is still there after a short grace.

The decisions (states, intensity, backoff, rest_for_one) are the pure functions of
``supervision.policy``; the supervisors only turn messages into calls and calls into sends.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from loguru import logger
from thespian.actors import (
    ActorAddress,
    ActorExitRequest,
    ActorTypeDispatcher,
    ChildActorExited,
    PoisonMessage,
    WakeupMessage,
)

from actors.base import pack_address
from infra.logs import configure_actor_logging, log_event
from models.messages import (
    ActorFailing,
    ActorReady,
    Heartbeat,
    HeartbeatAck,
    StartActor,
    StatusReported,
    StatusRequested,
)
from supervision import netsec, thespian_compat
from supervision.policy import ChildState, HeartbeatMonitor, child_transition
from supervision.tree import ChildSpec, StartSymbolTree, SupervisorSettings

#: Grace between ActorExitRequest and SIGKILL for a child being removed after a failure.
KILL_GRACE_S = 1.0
STATUS_TIMEOUT_S = 1.5


def now_s() -> float:
    """The supervisors' clock (monotonic seconds)."""
    return time.monotonic()


def pack(addr: ActorAddress) -> bytes:
    """An actor address as ``Wire`` carries it."""
    return pack_address(addr)


def log(event: str, msg: str, level: str = "INFO", **ctx: Any) -> None:
    """``log_event`` that never raises (logging must never break supervision)."""
    try:
        log_event(event, msg, level=level, **ctx)
    except Exception:  # noqa: BLE001 - logging must never break supervision
        pass


def kill_pid(pid: int, *, parent: int | None = None) -> bool:
    """SIGKILL ``pid`` if it is alive, in our session and (when given) a child of ``parent``.

    Never init (pid 1: in a container it shares our session) nor this process."""
    st = netsec.proc_stat(pid) if pid > 1 and pid != os.getpid() else None
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


class Supervisor(ActorTypeDispatcher):
    """Child bookkeeping shared by the root and symbol supervisors: create, stop, kill and
    SIGKILL children, heartbeats, readiness and exits, status fan-out. Subclasses fill in the
    hooks below."""

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
        child.deadline = now_s() + self.settings.start_timeout_s
        self.send(child.addr, self.start_message(child))

    def _stop(self, child: Child) -> None:
        """Orderly stop (normal exit)."""
        if child.state not in (ChildState.STARTING, ChildState.RUNNING):
            return
        child.move(ChildState.STOPPING)
        child.deadline = now_s() + child.spec.shutdown_timeout_s
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
        child.deadline = now_s() + min(KILL_GRACE_S, child.spec.shutdown_timeout_s)
        self.hb.forget(child.name)
        log("ACTOR_KILLING", f"removing {child.name}: {reason}", level="WARNING",
            symbol=self.symbol, actor=child.name, reason=reason, actor_pid=child.pid)
        if child.addr is not None:
            self.send(child.addr, ActorExitRequest())

    def _sigkill(self, child: Child) -> None:
        if child.killed:
            return
        pid = child.pid
        if not pid and child.addr is not None:
            port = thespian_compat.address_port(child.addr)
            if port:
                pid = netsec.pid_listening_on(port, netsec.children_of(os.getpid())) or 0
        if pid and kill_pid(pid, parent=os.getpid()):
            child.killed = True
            log("ACTOR_SIGKILLED", f"SIGKILL {child.name} (pid {pid})", level="WARNING",
                symbol=self.symbol, actor=child.name, actor_pid=pid)

    def _ensure_ticking(self) -> None:
        if not self.ticking:
            self.ticking = True
            self.wakeupAfter(self.settings.heartbeat_interval_s, payload=("tick",))

    def _tick(self) -> None:
        now = now_s()
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
        self.hb.track(child.name, now_s())
        self.on_child_ready(child, msg)

    def receiveMsg_ActorFailing(self, msg: ActorFailing, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None or child.state not in (ChildState.STARTING, ChildState.RUNNING):
            return
        child.pid = msg.pid or child.pid
        starting = child.state == ChildState.STARTING
        event, what = (("ACTOR_START_FAILED", "could not start") if starting else
                       ("STORE_WRITE_FAILED", "cannot write its state"))
        log(event, f"{child.name} {what}: {msg.reason}",
            level="ERROR" if starting else "CRITICAL", symbol=self.symbol, actor=child.name,
            reason=msg.reason, actor_pid=msg.pid)
        self._kill(child, f"{what}: {msg.reason}")

    def receiveMsg_HeartbeatAck(self, msg: HeartbeatAck, sender: ActorAddress) -> None:
        child = self._find(sender)
        if child is None:
            return
        self.hb.answered(child.name, now_s())
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
