"""The fixed, clock-aligned window counter both rate limiters count with (the bot's
``models.ratelimit.Limit`` and the embedded exchange's ``exchange_sim.ratelimit``)."""

import pytest

from exchange_sim.ratelimit import RateLimiter as SimLimiter
from models.ratelimit import FixedWindowCounter, Limit


def test_windows_are_aligned_to_the_clock_not_to_the_first_use() -> None:
    w = FixedWindowCounter(60)
    assert w.add(5, 59.5) == 5  # the window [0, 60) is almost over
    assert (w.start(59.5), w.end(59.5)) == (0, 60)
    assert w.used(59.999) == 5
    assert w.used(60.0) == 0  # a new window at the minute, not 60 s after the first use
    assert w.add(2, 61.0) == 2 and w.end(61.0) == 120


def test_raise_to_only_raises_and_counts_in_the_current_window() -> None:
    w = FixedWindowCounter(10)
    w.add(3, 1.0)
    w.raise_to(2, 2.0)
    assert w.used(2.0) == 3
    w.raise_to(7, 2.0)
    assert w.used(9.9) == 7
    w.raise_to(1, 10.0)  # next window: the reported usage is all there is
    assert w.used(10.0) == 1


def test_window_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FixedWindowCounter(0)


def test_bot_and_sim_count_the_same_windows() -> None:
    now = [1_000.0]
    sim = SimLimiter(market="futures", weight_per_min=10**6, order_windows=[],
                     clock=lambda: now[0])
    lim = Limit("REQUEST_WEIGHT", 60, 10**6, safety=1.0)
    for t, n in ((1_000.0, 3), (1_019.9, 4), (1_020.0, 5), (1_079.0, 1), (1_080.5, 2)):
        now[0] = t
        lim.take(n, t)
        assert int(sim.admit("ip", n)["X-MBX-USED-WEIGHT-1M"]) == lim.count
