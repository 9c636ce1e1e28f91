"""Pure restart-policy logic (no actors)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from supervision.policy import (
    CHILD_TRANSITIONS,
    ChildState,
    HeartbeatMonitor,
    IllegalTransition,
    RestartIntensity,
    TreeState,
    backoff_delay,
    child_transition,
    rest_for_one,
    should_restart,
    tree_transition,
)

ORDER = ["gateway", "order", "risk", "strategy"]


def test_rest_for_one_gateway_restarts_everything_after_it() -> None:
    stop, restart = rest_for_one(ORDER, "gateway")
    assert stop == ["strategy", "risk", "order"]
    assert restart == ORDER


def test_rest_for_one_middle_child_leaves_earlier_children_alone() -> None:
    stop, restart = rest_for_one(ORDER, "risk")
    assert stop == ["strategy"]
    assert restart == ["risk", "strategy"]
    assert rest_for_one(ORDER, "strategy") == ([], ["strategy"])


def test_rest_for_one_unknown_child_raises() -> None:
    with pytest.raises(KeyError):
        rest_for_one(ORDER, "portfolio")


def test_intensity_allows_max_restarts_then_gives_up() -> None:
    r = RestartIntensity(max_restarts=3, window_s=10.0)
    assert [r.register_failure(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert r.register_failure(3.0) is False
    assert r.recent(3.0) == 3


def test_intensity_window_slides() -> None:
    r = RestartIntensity(max_restarts=2, window_s=10.0)
    assert r.register_failure(0.0) and r.register_failure(5.0)
    assert r.register_failure(10.0)  # the failure at t=0 left the window
    assert not r.register_failure(12.0)
    assert r.total == 3


def test_zero_restarts_means_first_failure_stops() -> None:
    assert RestartIntensity(0, 60.0).register_failure(0.0) is False


@given(st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=40),
       st.integers(min_value=0, max_value=6), st.floats(min_value=0.5, max_value=100))
def test_intensity_never_exceeds_max_in_any_window(times: list[float], max_r: int,
                                                   window: float) -> None:
    r = RestartIntensity(max_r, window)
    allowed = [t for t in sorted(times) if r.register_failure(t)]
    for t in allowed:
        assert sum(1 for u in allowed if t <= u < t + window) <= max_r


def test_backoff_first_restart_immediate_then_doubles_and_caps() -> None:
    assert backoff_delay(1, 0.5) == 0.0
    assert [backoff_delay(n, 0.5) for n in (2, 3, 4)] == [0.5, 1.0, 2.0]
    assert backoff_delay(20, 0.5, cap_s=30.0) == 30.0
    assert backoff_delay(5, 0.0) == 0.0


def test_should_restart_by_type() -> None:
    assert should_restart("permanent", abnormal=False)
    assert should_restart("transient", abnormal=True)
    assert not should_restart("transient", abnormal=False)
    assert not should_restart("temporary", abnormal=True)
    with pytest.raises(ValueError):
        should_restart("sometimes", abnormal=True)


def test_child_transitions_follow_the_table() -> None:
    s = ChildState.STOPPED
    for nxt in (ChildState.STARTING, ChildState.RUNNING, ChildState.KILLING, ChildState.STOPPED):
        s = child_transition(s, nxt)
    assert s is ChildState.STOPPED
    with pytest.raises(IllegalTransition):
        child_transition(ChildState.STOPPED, ChildState.RUNNING)
    with pytest.raises(IllegalTransition):
        child_transition(ChildState.KILLING, ChildState.RUNNING)
    # every state can reach STOPPED eventually, and STOPPED only leads to STARTING
    assert CHILD_TRANSITIONS[ChildState.STOPPED] == {ChildState.STARTING}


def test_tree_transitions() -> None:
    t = tree_transition(TreeState.STARTING, TreeState.RUNNING)
    t = tree_transition(t, TreeState.RESTARTING)
    t = tree_transition(t, TreeState.GIVING_UP)
    t = tree_transition(t, TreeState.STOPPED)
    with pytest.raises(IllegalTransition):
        tree_transition(t, TreeState.RUNNING)


def test_heartbeat_monitor_flags_silent_children_only() -> None:
    hb = HeartbeatMonitor(timeout_s=1.0)
    hb.track("a", 0.0)
    hb.track("b", 0.0)
    hb.answered("a", 1.5)
    assert hb.overdue(1.6) == ["b"]
    assert hb.overdue(1.6, ["a"]) == []
    hb.answered("ghost", 1.0)  # untracked: ignored
    assert hb.age("ghost", 2.0) is None
    hb.forget("b")
    assert hb.overdue(5.0) == ["a"]
