"""infra.clock: the actors' clock and the message-id source the shell installs in models."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra import clock
from models import messages as m

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def installed() -> Iterator[None]:
    saved = m._new_id, m._now_ns
    clock.install_message_sources()
    yield
    m._new_id, m._now_ns = saved


def test_msg_ids_differ_across_forked_processes(installed: None) -> None:
    new_msg_id = m.new_msg_id
    new_msg_id()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: same counter state as the parent
        os.write(w, new_msg_id().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(r, 200).decode()
    parent = new_msg_id()
    assert child.split("-")[0] != parent.split("-")[0]
    assert child.split("-")[1] == "1"


def test_ids_carry_pid_and_start_time(installed: None) -> None:
    pid_hex, start_ms = m.new_msg_id().split("-")[0].split(".")
    assert int(pid_hex, 16) == os.getpid()
    assert abs(int(start_ms, 16) - clock.now_ms()) < 7 * 24 * 3_600_000
    assert len({m.Heartbeat(seq=i).msg_id for i in range(1000)}) == 1000


def test_ts_init_follows_the_installed_clock(installed: None) -> None:
    clock.set_clock(clock.SimClock(1_735_689_600_000_000_000))
    try:
        assert m.Heartbeat(seq=1).ts_init_ns == 1_735_689_600_000_000_000
    finally:
        clock.set_clock(None)
    assert m.Heartbeat(seq=2).ts_init_ns > 1_735_689_600_000_000_000  # wall clock again


def test_importing_the_actor_base_installs_the_sources() -> None:
    # a fresh process, as a thespian actor process that imports its actor class
    code = ("import os, actors.base\nfrom models import messages as m\n"
            "print(m.new_msg_id(), os.getpid(), m.now_ns() > 0)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    assert out[0].split(".")[0] == f"{int(out[1]):x}" and out[2] == "True"


def test_sim_clock_never_moves_backwards() -> None:
    c = clock.SimClock(10)
    c.advance_to(5)
    assert c() == 10
    c.advance_to(20)
    assert c() == 20 and clock.now_ms() > 0
