"""An in-process, single-threaded actor runtime for backtests: the live actor classes, driven
through thespian's *public* actor API only, on the simulated clock.

The seam (documented in docs/ARCHITECTURE.md, "Backtest runtime"): every gridbot actor talks
to its system through four public members of ``thespian.actors.Actor`` — ``send``,
``wakeupAfter``, ``myAddress`` and, for delivery, the ``receiveMsg_<Type>`` handlers that
``ActorTypeDispatcher`` dispatches to. ``InProcessSystem.create(cls)`` instantiates a subclass
of the live class that implements those members on this runtime; nothing of thespian's
internals is touched, so a thespian upgrade cannot break the backtest silently.

Delivery has ``simpleSystemBase``'s semantics, which are the ones the backtest was specified
with:

* one FIFO queue: a ``tell`` from outside runs every send it causes, in order, before it
  returns (the quiescence barrier between bars);
* dispatch as ``ActorTypeDispatcher.receiveMessage``: the first class in the message's MRO the
  actor has a ``receiveMsg_`` handler for, else ``receiveUnrecognizedMessage`` (a handler that
  returns ``SUPER`` is not supported and raises);
* a handler that raises is logged on the ``Thespian`` logger as a "Failure of Actor" warning
  and the message is queued again, three attempts in all; then the sender gets a
  ``PoisonMessage``;
* ``wakeupAfter`` is scheduled on the sim clock and delivered by ``deliver_wakeups_until``
  (between bars, in due order; ties in request order) as a ``WakeupMessage``;
* ``ActorExitRequest`` (``shutdown``) reaches every actor once, in creation order.
"""

from __future__ import annotations

import heapq
import logging
import traceback
from collections import deque
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from thespian.actors import ActorExitRequest, ActorTypeDispatcher, PoisonMessage, WakeupMessage

from infra.clock import SimClock

#: attempts of a message whose handler raises before the sender gets a PoisonMessage
MAX_ATTEMPTS = 3
_LOG = logging.getLogger("Thespian")


class LocalAddress:
    """Address of an actor in an ``InProcessSystem`` (picklable, compared by name)."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalAddress) and other.name == self.name

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # like thespian's addresses: not a dict key

    def __repr__(self) -> str:
        return f"LocalAddress({self.name!r})"

    def __str__(self) -> str:
        return f"ActorAddr-{self.name}"

    def __reduce__(self) -> tuple[Any, ...]:
        return (LocalAddress, (self.name,))


class _Envelope:
    __slots__ = ("to", "sender", "msg", "attempts", "details")

    def __init__(self, to: LocalAddress, sender: LocalAddress | None, msg: Any) -> None:
        self.to = to
        self.sender = sender
        self.msg = msg
        self.attempts = 0
        self.details = ""


class InProcessSystem:
    """See module doc. ``clock`` is the backtest's sim clock (wakeups are due on it)."""

    def __init__(self, clock: SimClock) -> None:
        self.clock = clock
        self.outside = LocalAddress("outside")
        self._actors: dict[str, Any] = {}
        self._order: list[str] = []
        self._queue: deque[_Envelope] = deque()
        self._wakeups: list[tuple[int, int, str, Any, float]] = []
        self._seq = 0
        self._handlers: dict[tuple[type, type], Callable[..., Any] | None] = {}
        self._replies: list[Any] = []
        self._asking = False
        #: messages delivered (every attempt of every envelope)
        self.count = 0

    # -- actors -----------------------------------------------------------------------------
    def create(self, cls: type, name: str | None = None) -> LocalAddress:
        """A new actor of (a runtime subclass of) ``cls``; returns its address."""
        addr = LocalAddress(name or f"{cls.__name__}-{len(self._order) + 1}")
        if addr.name in self._actors or addr.name == self.outside.name:
            raise ValueError(f"actor name {addr.name!r} is taken")
        inst = _bind(cls)(self, addr)
        self._actors[addr.name] = inst
        self._order.append(addr.name)
        return addr

    def instance(self, addr: LocalAddress) -> Any:
        """The actor object behind ``addr`` (for reads between bars, e.g. STATUS lines)."""
        return self._actors[addr.name]

    # -- messages ---------------------------------------------------------------------------
    def post(self, sender: LocalAddress | None, to: Any, msg: Any) -> None:
        """Queue ``msg`` for ``to`` (what an actor's ``send`` does; nothing runs yet)."""
        self._queue.append(_Envelope(to, sender, msg))

    def tell(self, to: LocalAddress, msg: Any) -> None:
        """Send from outside and run until nothing is pending."""
        self._queue.append(_Envelope(to, self.outside, msg))
        self.run()

    def ask(self, to: LocalAddress, msg: Any) -> Any:
        """``tell``, then the first message an actor sent back to the outside (None if none)."""
        self._replies.clear()
        self._asking = True
        try:
            self.tell(to, msg)
        finally:
            self._asking = False
        return self._replies[0] if self._replies else None

    def run(self) -> None:
        """Deliver queued messages, FIFO, until the queue is empty."""
        q = self._queue
        actors = self._actors
        handlers = self._handlers
        while q:
            env = q.popleft()
            self.count += 1
            to = env.to
            if to.name == "outside":  # an answer to the driver (kept only while it asks)
                if self._asking:
                    self._replies.append(env.msg)
                continue
            inst = actors.get(to.name)
            if inst is None:
                continue  # a dead letter: an actor that was never created or has exited
            msg = env.msg
            key = (type(inst), type(msg))
            fn = handlers.get(key, False)
            if fn is False:
                fn = handlers[key] = _resolve(type(inst), type(msg))
            try:
                if fn is None:
                    inst.receiveMessage(msg, env.sender)
                elif fn(inst, msg, env.sender) == ActorTypeDispatcher.SUPER:
                    raise RuntimeError(f"{type(inst).__name__}: SUPER from a handler of "
                                       f"{type(msg).__name__} is not supported in a backtest")
            except Exception:  # noqa: BLE001 - thespian's redelivery semantics
                _LOG.warning("Failure of Actor %s during message processing (attempt %s)",
                             to, env.attempts, exc_info=True)
                env.attempts += 1
                env.details = traceback.format_exc()
                if env.attempts < MAX_ATTEMPTS:
                    q.append(env)
                elif not isinstance(msg, PoisonMessage) and env.sender is not None:
                    q.append(_Envelope(env.sender, to, PoisonMessage(msg, env.details)))
            if isinstance(msg, ActorExitRequest):
                del actors[to.name]

    # -- timers -----------------------------------------------------------------------------
    def schedule(self, addr: LocalAddress, period: Any, payload: Any) -> None:
        """``wakeupAfter`` on the sim clock."""
        secs = period.total_seconds() if hasattr(period, "total_seconds") else float(period)
        self._seq += 1
        heapq.heappush(self._wakeups, (self.clock.ns + int(secs * 1e9), self._seq, addr.name,
                                       payload, secs))

    def next_wakeup_ns(self) -> int | None:
        """Sim ns of the next wakeup (None if none is scheduled)."""
        return self._wakeups[0][0] if self._wakeups else None

    def deliver_wakeups_until(self, ns: int) -> int:
        """Deliver every wakeup due at or before ``ns`` (advancing the clock to each, running
        what each causes); returns how many."""
        n = 0
        heap = self._wakeups
        while heap and heap[0][0] <= ns:
            due, _seq, name, payload, secs = heapq.heappop(heap)
            self.clock.advance_to(due)
            addr = LocalAddress(name)
            self._queue.append(_Envelope(addr, addr, WakeupMessage(timedelta(seconds=secs),
                                                                   payload)))
            self.run()
            n += 1
        return n

    # -- end --------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """``ActorExitRequest`` to every live actor (they persist and close their stores)."""
        for name in list(self._order):
            if name in self._actors:
                self.tell(LocalAddress(name), ActorExitRequest())
        self._wakeups.clear()


def _resolve(acls: type, mcls: type) -> Callable[..., Any] | None:
    """The handler ``ActorTypeDispatcher.receiveMessage`` would call first for a ``mcls``
    message (None: not a dispatcher; call its ``receiveMessage``)."""
    if not issubclass(acls, ActorTypeDispatcher) or \
            acls.receiveMessage is not ActorTypeDispatcher.receiveMessage:
        return None
    for each in mcls.__mro__:
        h = getattr(acls, "receiveMsg_" + each.__name__, None)
        if h is not None:
            return h
    return getattr(acls, "receiveUnrecognizedMessage", None) or (lambda *a: None)


_bound: dict[type, type] = {}


def _bind(cls: type) -> Callable[[InProcessSystem, LocalAddress], Any]:
    """A subclass of ``cls`` whose system-facing public members run on an InProcessSystem."""
    sub = _bound.get(cls)
    if sub is None:
        def __init__(self: Any, system: InProcessSystem, addr: LocalAddress) -> None:
            cls.__init__(self)
            self._rt_system = system
            self._rt_addr = addr

        def send(self: Any, target: Any, msg: Any) -> None:
            self._rt_system._queue.append(_Envelope(target, self._rt_addr, msg))

        def wakeupAfter(self: Any, timePeriod: Any, payload: Any = None) -> None:  # noqa: N802
            self._rt_system.schedule(self._rt_addr, timePeriod, payload)

        def createActor(self: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N802
            raise RuntimeError("actors cannot create actors in a backtest")

        sub = _bound[cls] = type(cls.__name__, (cls,), {
            "__init__": __init__, "send": send, "wakeupAfter": wakeupAfter,
            "createActor": createActor, "myAddress": property(lambda self: self._rt_addr),
            "__module__": cls.__module__, "__qualname__": cls.__qualname__})
    return sub
