"""Pure restart-policy logic of the supervisors (no thespian, no clock reads: times are passed in).

* ``ChildState`` and its transition table (illegal transitions raise ``IllegalTransition``).
* ``TreeState`` (a symbol tree's lifecycle) with its own table.
* ``RestartIntensity``: at most ``max_restarts`` restarts within ``window_s`` seconds (Erlang's
  MaxR/MaxT); one more failure inside the window means the tree gives up.
* ``backoff_delay``: the first restart inside a window is immediate (fast recovery from an
  isolated crash); with ``k`` earlier restarts in the window the next waits ``base × 2^(k-1)``,
  capped at ``cap``.
* ``rest_for_one``: which children to stop (reverse start order) and restart (start order).
* ``should_restart``: permanent / transient / temporary children.
* ``HeartbeatMonitor``: which running children missed their heartbeat deadline.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from enum import Enum
from typing import Literal

RestartType = Literal["permanent", "transient", "temporary"]
RESTART_TYPES: tuple[str, ...] = ("permanent", "transient", "temporary")


class IllegalTransition(RuntimeError):
    """A state machine was asked for a transition its table does not allow."""


class ChildState(str, Enum):
    """Lifecycle of one supervised child."""

    STOPPED = "stopped"     # not running (never started, exited, or removed)
    STARTING = "starting"   # created, StartActor sent, waiting for ActorReady
    RUNNING = "running"     # ready and answering heartbeats
    STOPPING = "stopping"   # orderly stop requested by the supervisor (normal exit)
    KILLING = "killing"     # being removed after a failure (crash, hang, start failure)


CHILD_TRANSITIONS: dict[ChildState, frozenset[ChildState]] = {
    ChildState.STOPPED: frozenset({ChildState.STARTING}),
    ChildState.STARTING: frozenset({ChildState.RUNNING, ChildState.STOPPING,
                                    ChildState.KILLING, ChildState.STOPPED}),
    ChildState.RUNNING: frozenset({ChildState.STOPPING, ChildState.KILLING,
                                   ChildState.STOPPED}),
    ChildState.STOPPING: frozenset({ChildState.STOPPED, ChildState.KILLING}),
    ChildState.KILLING: frozenset({ChildState.STOPPED}),
}


class TreeState(str, Enum):
    """Lifecycle of a symbol's supervision tree."""

    STARTING = "starting"       # first start of the children, in order
    RUNNING = "running"         # every child ready and wired
    RESTARTING = "restarting"   # rest_for_one restart in progress (stop, backoff, start)
    GIVING_UP = "giving_up"     # intensity exceeded: stopping children, cancelling orders
    STOPPED = "stopped"         # the symbol no longer trades; other symbols are unaffected


TREE_TRANSITIONS: dict[TreeState, frozenset[TreeState]] = {
    TreeState.STARTING: frozenset({TreeState.RUNNING, TreeState.RESTARTING,
                                   TreeState.GIVING_UP}),
    TreeState.RUNNING: frozenset({TreeState.RESTARTING, TreeState.GIVING_UP}),
    TreeState.RESTARTING: frozenset({TreeState.RUNNING, TreeState.GIVING_UP}),
    TreeState.GIVING_UP: frozenset({TreeState.STOPPED}),
    TreeState.STOPPED: frozenset(),
}


def child_transition(current: ChildState, new: ChildState) -> ChildState:
    """Return ``new`` if the child table allows ``current → new``, else raise."""
    if new not in CHILD_TRANSITIONS[current]:
        raise IllegalTransition(f"child: {current.value} -> {new.value} is not allowed")
    return new


def tree_transition(current: TreeState, new: TreeState) -> TreeState:
    """Return ``new`` if the tree table allows ``current → new``, else raise."""
    if new not in TREE_TRANSITIONS[current]:
        raise IllegalTransition(f"tree: {current.value} -> {new.value} is not allowed")
    return new


class RestartIntensity:
    """Sliding-window restart counter: more than ``max_restarts`` in ``window_s`` → give up."""

    def __init__(self, max_restarts: int, window_s: float) -> None:
        if max_restarts < 0 or window_s <= 0:
            raise ValueError("max_restarts must be >= 0 and window_s > 0")
        self.max_restarts = max_restarts
        self.window_s = window_s
        self._times: deque[float] = deque()
        self.total = 0

    def _prune(self, now: float) -> None:
        while self._times and now - self._times[0] >= self.window_s:
            self._times.popleft()

    def recent(self, now: float) -> int:
        """Restarts inside the window ending at ``now``."""
        self._prune(now)
        return len(self._times)

    def register_failure(self, now: float) -> bool:
        """A child failed at ``now``: True if a restart is allowed (and counts it), False if
        the intensity is exceeded (the tree must stop)."""
        self._prune(now)
        if len(self._times) >= self.max_restarts:
            return False
        self._times.append(now)
        self.total += 1
        return True


def backoff_delay(recent_restarts: int, base_s: float, cap_s: float = 30.0) -> float:
    """Delay before a restart when ``recent_restarts`` (including this one) happened in the
    window: 0 for the first, then ``base``, ``2·base``, ``4·base``… capped at ``cap_s``."""
    if recent_restarts <= 1 or base_s <= 0:
        return 0.0
    return min(cap_s, base_s * (2.0 ** (recent_restarts - 2)))


def rest_for_one(order: Sequence[str], failed: str) -> tuple[list[str], list[str]]:
    """Children to stop (those started after ``failed``, in reverse start order) and children
    to restart (``failed`` and those after it, in start order)."""
    if failed not in order:
        raise KeyError(f"unknown child {failed!r}")
    k = list(order).index(failed)
    after = list(order[k + 1:])
    return list(reversed(after)), list(order[k:])


def should_restart(restart: str, abnormal: bool) -> bool:
    """permanent: always; transient: only after an abnormal exit; temporary: never."""
    if restart not in RESTART_TYPES:
        raise ValueError(f"unknown restart type {restart!r}")
    if restart == "permanent":
        return True
    if restart == "transient":
        return abnormal
    return False


class HeartbeatMonitor:
    """Last answer time per child; a child silent for longer than ``timeout_s`` is hung."""

    def __init__(self, timeout_s: float) -> None:
        if timeout_s <= 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        self._last: dict[str, float] = {}

    def track(self, name: str, now: float) -> None:
        """Start (or restart) watching ``name`` as if it had just answered."""
        self._last[name] = now

    def forget(self, name: str) -> None:
        """Stop watching ``name``."""
        self._last.pop(name, None)

    def answered(self, name: str, now: float) -> None:
        """``name`` acknowledged a heartbeat at ``now`` (ignored if not tracked)."""
        if name in self._last:
            self._last[name] = max(self._last[name], now)

    def age(self, name: str, now: float) -> float | None:
        """Seconds since ``name`` last answered (None if not tracked)."""
        t = self._last.get(name)
        return None if t is None else now - t

    def overdue(self, now: float, names: Iterable[str] | None = None) -> list[str]:
        """Tracked children (optionally only ``names``) silent for more than ``timeout_s``."""
        pool = self._last if names is None else {n: self._last[n] for n in names
                                                 if n in self._last}
        return [n for n, t in pool.items() if now - t > self.timeout_s]
