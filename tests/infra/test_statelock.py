"""One bot per state dir: the flock is exclusive across processes, decided atomically when two
take it at the same instant, released by the kernel when the holder is killed, and not held
by children the holder forks."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import stat
import time
from pathlib import Path

import pytest

from infra import statelock
from infra.statelock import LOCK_FILE, StateDirLocked, acquire, holder

CTX = mp.get_context("fork")


def _take(state: str, barrier: mp.synchronize.Barrier, results: mp.Queue, hold: mp.Event
          ) -> None:
    barrier.wait()
    try:
        lock = acquire(Path(state))
    except StateDirLocked as e:
        results.put(("locked", os.getpid(), e.pid))
        return
    results.put(("held", os.getpid(), 0))
    hold.wait(10)
    lock.release()


def test_two_processes_at_the_same_instant_exactly_one_wins_20_times(tmp_path: Path) -> None:
    for rnd in range(20):
        state = tmp_path / f"s{rnd}"
        barrier, results, hold = CTX.Barrier(2), CTX.Queue(), CTX.Event()
        procs = [CTX.Process(target=_take, args=(str(state), barrier, results, hold))
                 for _ in range(2)]
        for p in procs:
            p.start()
        got = sorted(results.get(timeout=10) for _ in procs)
        hold.set()
        for p in procs:
            p.join(10)
        (h_kind, h_pid, _), (l_kind, _l_pid, named) = got
        assert (h_kind, l_kind) == ("held", "locked"), got
        assert named == h_pid  # the loser is told who holds it


def test_the_holder_is_named_and_the_lock_dies_with_it(tmp_path: Path) -> None:
    ready, hold = CTX.Event(), CTX.Event()

    def child() -> None:
        acquire(tmp_path)
        ready.set()
        hold.wait(30)

    p = CTX.Process(target=child)
    p.start()
    assert ready.wait(10)
    with pytest.raises(StateDirLocked, match=f"pid {p.pid}") as ei:
        acquire(tmp_path)
    assert ei.value.pid == p.pid and holder(tmp_path) == p.pid
    os.kill(p.pid, signal.SIGKILL)  # no cleanup runs: the kernel releases the lock
    p.join(10)
    assert holder(tmp_path) is None
    with acquire(tmp_path) as lock:
        assert lock.held and holder(tmp_path) is not None
    assert holder(tmp_path) is None


def test_children_forked_by_the_holder_do_not_keep_the_lock(tmp_path: Path) -> None:
    lock = acquire(tmp_path)
    pid = os.fork()
    if pid == 0:  # an actor process of the bot, say
        time.sleep(3)
        os._exit(0)
    try:
        lock.release()
        with acquire(tmp_path):  # the child is still alive and must not hold it
            pass
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not statelock._held


def test_files_are_private_and_release_is_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "new" / "state"
    lock = acquire(state)
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / LOCK_FILE).stat().st_mode) == 0o600
    assert (state / LOCK_FILE).read_text().strip() == str(os.getpid())
    lock.release()
    lock.release()
    assert not lock.held and holder(state) is None
    assert holder(tmp_path / "missing") is None
