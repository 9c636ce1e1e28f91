"""Fault state: counts, durations, validation."""

import pytest

from exchange_sim.auth import ApiError
from exchange_sim.faults import FaultState


def test_order_5xx_and_forced_statuses_are_consumed_in_order() -> None:
    fs = FaultState(clock=lambda: 0.0)
    fs.apply({"type": "order_5xx", "count": 2, "when": "before"})
    fs.apply({"type": "order_5xx", "count": 1, "when": "after", "status": 500})
    assert [fs.take_order_5xx() for _ in range(4)] == [
        ("before", 503), ("before", 503), ("after", 500), None]
    fs.apply({"type": "force_429", "count": 1})
    fs.apply({"type": "force_418", "count": 1})
    assert [fs.take_forced() for _ in range(3)] == [429, 418, None]


def test_latency_by_count_and_by_duration() -> None:
    t = [0.0]
    fs = FaultState(clock=lambda: t[0])
    fs.apply({"type": "latency", "ms": 200, "count": 2})
    assert [fs.take_latency() for _ in range(3)] == [0.2, 0.2, 0.0]
    fs.apply({"type": "latency", "ms": 50, "seconds": 1})
    assert fs.take_latency() == 0.05
    t[0] = 1.5
    assert fs.take_latency() == 0.0


def test_stall_window() -> None:
    t = [0.0]
    fs = FaultState(clock=lambda: t[0])
    fs.apply({"type": "stall_ws", "seconds": 2})
    assert fs.stalled()
    t[0] = 2.5
    assert not fs.stalled()


@pytest.mark.parametrize("spec", [
    {"type": "nope"}, {"type": "order_5xx", "when": "during"}, {"type": "latency", "ms": 5},
    {"type": "clock_jump"}, {"type": "order_5xx", "status": 404},
])
def test_invalid_specs_rejected(spec: dict) -> None:
    with pytest.raises(ApiError):
        FaultState().apply(spec)


def test_clear() -> None:
    fs = FaultState()
    fs.apply({"type": "force_429", "count": 3})
    fs.apply({"type": "clear"})
    assert fs.take_forced() is None
