"""The backtest's in-process actor runtime: thespian's public actor API, simpleSystemBase's
delivery semantics (FIFO, dispatch by message MRO, three attempts then PoisonMessage, wakeups
on the sim clock in due order)."""

from __future__ import annotations

import logging
import pickle
from datetime import timedelta
from typing import Any

import pytest
from thespian.actors import ActorExitRequest, ActorTypeDispatcher, PoisonMessage, WakeupMessage

from backtest.runtime import InProcessSystem, LocalAddress
from infra.clock import SimClock


class Base:
    pass


class Derived(Base):
    pass


class Ping:
    def __init__(self, n: int, to: Any = None) -> None:
        self.n = n
        self.to = to


log: list[tuple[str, Any]] = []


class Echo(ActorTypeDispatcher):
    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:  # noqa: N802
        log.append((self.myAddress.name, msg.n))
        if msg.to is not None and msg.n < 3:
            self.send(msg.to, Ping(msg.n + 1, self.myAddress))  # bounce between two actors
        if msg.n == 0:
            self.send(sender, "pong")

    def receiveMsg_Base(self, msg: Base, sender: Any) -> None:  # noqa: N802
        log.append(("base", type(msg).__name__))

    def receiveMsg_str(self, msg: str, sender: Any) -> None:  # noqa: N802
        if msg == "arm":
            self.wakeupAfter(timedelta(seconds=5), payload="late")
            self.wakeupAfter(1.0, payload="early")
            self.wakeupAfter(1.0, payload="early-2")

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: Any) -> None:  # noqa: N802
        log.append(("wake", msg.payload))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: Any) -> None:  # noqa: N802
        log.append(("exit", self.myAddress.name))

    def receiveUnrecognizedMessage(self, msg: Any, sender: Any) -> None:  # noqa: N802
        log.append(("unrecognized", type(msg).__name__))


class Flaky(ActorTypeDispatcher):
    attempts = 0

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:  # noqa: N802
        Flaky.attempts += 1
        raise ValueError("boom")


class Catcher(ActorTypeDispatcher):
    def receiveMsg_PoisonMessage(self, msg: PoisonMessage, sender: Any) -> None:  # noqa: N802
        log.append(("poison", type(msg.poisonMessage).__name__))

    def receiveMsg_Ping(self, msg: Ping, sender: Any) -> None:  # noqa: N802
        self.send(msg.to, Ping(9))


@pytest.fixture(autouse=True)
def _clear() -> None:
    log.clear()
    Flaky.attempts = 0


def test_fifo_delivery_and_ask_returns_the_first_answer() -> None:
    rt = InProcessSystem(SimClock(0))
    a, b = rt.create(Echo, "a"), rt.create(Echo, "b")
    assert rt.ask(a, Ping(0, b)) == "pong"
    # a gets 0, sends 1 to b; b sends 2 back to a, a sends 3 to b; the pong comes last
    assert log == [("a", 0), ("b", 1), ("a", 2), ("b", 3)]


def test_dispatch_follows_the_message_mro_then_unrecognized() -> None:
    rt = InProcessSystem(SimClock(0))
    a = rt.create(Echo, "a")
    rt.tell(a, Derived())
    rt.tell(a, 3.5)
    assert log == [("base", "Derived"), ("unrecognized", "float")]


def test_a_failing_handler_gets_three_attempts_then_the_sender_a_poison_message(
        caplog: pytest.LogCaptureFixture) -> None:
    rt = InProcessSystem(SimClock(0))
    flaky, catcher = rt.create(Flaky, "flaky"), rt.create(Catcher, "catcher")
    with caplog.at_level(logging.WARNING, logger="Thespian"):
        rt.tell(catcher, Ping(0, flaky))
    assert Flaky.attempts == 3
    assert log == [("poison", "Ping")]
    assert sum("Failure of Actor" in r.getMessage() for r in caplog.records) == 3


def test_wakeups_fire_on_the_sim_clock_in_due_order() -> None:
    clk = SimClock(1_000_000_000)
    rt = InProcessSystem(clk)
    a = rt.create(Echo, "a")
    rt.tell(a, "arm")
    assert rt.next_wakeup_ns() == 2_000_000_000
    assert rt.deliver_wakeups_until(1_999_999_999) == 0 and log == []
    assert rt.deliver_wakeups_until(10_000_000_000) == 3
    assert log == [("wake", "early"), ("wake", "early-2"), ("wake", "late")]
    assert clk.ns == 6_000_000_000  # advanced to each wakeup's due time


def test_shutdown_sends_exit_once_in_creation_order_and_forgets_the_actors() -> None:
    rt = InProcessSystem(SimClock(0))
    a, b = rt.create(Echo, "a"), rt.create(Echo, "b")
    rt.shutdown()
    assert log == [("exit", "a"), ("exit", "b")]
    rt.tell(a, Ping(1))  # a dead letter: dropped
    assert log == [("exit", "a"), ("exit", "b")]
    with pytest.raises(KeyError):
        rt.instance(b)


def test_addresses_pickle_and_compare_by_name() -> None:
    a = LocalAddress("x")
    assert pickle.loads(pickle.dumps(a)) == a != LocalAddress("y")
    rt = InProcessSystem(SimClock(0))
    rt.create(Echo, "x")
    with pytest.raises(ValueError, match="taken"):
        rt.create(Echo, "x")


def test_super_from_a_handler_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    class Passes(ActorTypeDispatcher):
        def receiveMsg_Ping(self, msg: Ping, sender: Any) -> Any:  # noqa: N802
            return self.SUPER

    rt = InProcessSystem(SimClock(0))
    a = rt.create(Passes, "p")
    with caplog.at_level(logging.WARNING, logger="Thespian"):
        rt.tell(a, Ping(1))
    errors = [r.exc_info[1] for r in caplog.records if r.exc_info]
    assert len(errors) == 3 and all("SUPER" in str(e) for e in errors)
