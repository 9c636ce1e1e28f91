"""Child management shared by both supervisors, without an actor system: the ``Child`` record
and ``kill_pid``'s refusal to touch processes that are not ours."""

from __future__ import annotations

import os
import subprocess

import pytest

from supervision.children import Child, kill_pid
from supervision.policy import ChildState, IllegalTransition
from supervision.tree import ChildSpec


def test_child_record_counts_restarts_and_follows_the_state_table() -> None:
    c = Child(spec=ChildSpec(role="order", actor_class_path="actors.order.OrderActor"))
    assert c.name == "order" and c.restarts == 0 and c.state == ChildState.STOPPED
    c.starts = 3
    assert c.restarts == 2
    c.move(ChildState.STARTING)
    c.move(ChildState.RUNNING)
    with pytest.raises(IllegalTransition):
        c.move(ChildState.STARTING)


def test_kill_pid_kills_only_a_live_process_of_our_session_and_parent() -> None:
    child = subprocess.Popen(["sleep", "30"])
    other = subprocess.Popen(["sleep", "30"], start_new_session=True)
    try:
        assert not kill_pid(0) and not kill_pid(-1)
        assert not kill_pid(1)  # init, even where it shares our session (containers)
        assert not kill_pid(os.getpid())
        assert not kill_pid(other.pid)  # alive, our child, but in its own session
        assert not kill_pid(child.pid, parent=os.getpid() + 1)  # not that parent's child
        assert child.poll() is None and other.poll() is None
        assert kill_pid(child.pid, parent=os.getpid())
        assert child.wait(5) == -9
        assert not kill_pid(child.pid)  # gone
    finally:
        for p in (child, other):
            if p.poll() is None:
                p.kill()
            p.wait()
