"""The shell's notion of "now" and the message-id source.

Clock: wall clock when trading, the replayed bar time in a backtest. Pure code never reads a
clock; actors call ``now_ns()``/``now_ms()`` and pass the value down. A backtest (one process,
``backtest.runtime``) installs a simulated clock with ``set_clock`` so every actor sees the
replay's time and a run is deterministic.

Message ids: ``install_message_sources()`` gives ``models.messages`` this module's id source
(pid + process start time + counter: unique across processes and restarts) and ``now_ns`` as
the creation clock of the ``ts_init_ns`` default. ``actors.base`` calls it on import, so every
process running actors (forked thespian actor processes, supervisors, the backtest) has them; a
forked child gets an id prefix of its own (``os.register_at_fork``).
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable
from typing import Any

from models import messages

_clock: Callable[[], int] | None = None


def set_clock(fn: Callable[[], int] | None) -> None:
    """Install a nanosecond clock for this process (None restores the wall clock)."""
    global _clock
    _clock = fn


def now_ns() -> int:
    """Current time in nanoseconds (simulated if a clock is installed)."""
    return _clock() if _clock is not None else time.time_ns()


def now_ms() -> int:
    """Current time in milliseconds."""
    return now_ns() // 1_000_000


class SimClock:
    """A settable clock for backtests: ``advance_to(ns)`` never moves backwards."""

    def __init__(self, start_ns: int = 0) -> None:
        self.ns = start_ns

    def __call__(self) -> int:
        return self.ns

    def advance_to(self, ns: int) -> None:
        """Move the clock forward to ``ns`` (earlier values are ignored)."""
        if ns > self.ns:
            self.ns = ns


# -- message ids ---------------------------------------------------------------------------------
def _id_prefix() -> str:
    return f"{os.getpid():x}.{time.time_ns() // 1_000_000:x}"


_id_state: list[Any] = [_id_prefix(), itertools.count(1)]  # prefix, counter


def _reset_ids() -> None:
    _id_state[:] = [_id_prefix(), itertools.count(1)]


# a forked actor process starts with its parent's counter state: give it ids of its own
os.register_at_fork(after_in_child=_reset_ids)


def new_msg_id() -> str:
    """A unique message id: pid + process start time (ms) + counter. Cheap, ordered, no
    randomness; a forked actor process and a later process with a reused pid both get a
    prefix of their own."""
    return f"{_id_state[0]}-{next(_id_state[1]):x}"


def install_message_sources() -> None:
    """Make ``models.messages`` use ``new_msg_id`` and ``now_ns`` for the header defaults of
    every message this process creates (idempotent)."""
    messages.set_sources(new_msg_id, now_ns)
