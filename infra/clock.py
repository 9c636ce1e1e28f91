"""The actors' notion of "now": wall clock when trading, the replayed bar time in a backtest.

Pure code never reads a clock; actors call ``now_ns()``/``now_ms()`` and pass the value down.
A backtest (one process, ``backtest.runtime``) installs a simulated clock with ``set_clock`` so
every actor sees the replay's time and a run is deterministic.
"""

from __future__ import annotations

import time
from collections.abc import Callable

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
