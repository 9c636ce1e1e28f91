"""RateLimiter / TokenBucket: pacing under Binance limits, usage headers, 429 and 418 pauses."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from models.ratelimit import DEFAULT_LIMITS, Limit, RateLimiter, TokenBucket


def run_paced(lim: RateLimiter, n: int, weight: int, is_order: bool, t0: float = 1000.0
              ) -> list[float]:
    """Admit ``n`` requests, sleeping (on a fake clock) as long as the limiter says."""
    now, times = t0, []
    for _ in range(n):
        for _ in range(10_000):
            w = lim.acquire(weight, is_order, now)
            if w == 0.0:
                break
            assert w > 0
            now += w
        else:  # pragma: no cover - a limiter that never admits fails here
            raise AssertionError("never admitted")
        times.append(now)
    return times


def test_token_bucket_refills_and_never_exceeds_capacity() -> None:
    b = TokenBucket(10, 2.0, now=0.0)
    assert b.try_take(10, 0.0) == 0.0
    assert b.try_take(1, 0.0) == pytest.approx(0.5)
    assert b.try_take(1, 0.5) == 0.0
    assert b.wait_for(100, 1000.0) == 0.0  # a huge request waits for a full bucket only
    b.take(100, 1000.0)
    assert b.tokens == -90  # debt is repaid before anything else is admitted
    assert b.wait_for(1, 1000.0) == pytest.approx(45.5)
    b.cap_available(3, 2000.0)
    assert b.tokens == 3


def test_futures_grid_rebuild_is_paced_not_rejected_and_stays_under_every_window() -> None:
    lim = RateLimiter.default("futures", safety=0.8)
    times = run_paced(lim, 1000, weight=1, is_order=True)
    assert len(times) == 1000  # every order admitted eventually
    for window, limit in ((10, 300), (60, 1200)):
        per = Counter(math.floor(t / window) for t in times)
        assert max(per.values()) <= int(limit * 0.8), (window, per.most_common(1))
    # the 10 s budget (240) dominates: 1000 orders span at least 4 window boundaries
    assert times[-1] - times[0] >= 30.0
    # ...but are not stalled needlessly (960/min budget: well within 2 minutes)
    assert times[-1] - times[0] < 120.0
    # paced: no single instant admits more than one window's budget
    assert max(Counter(times).values()) <= 240


def test_spot_weight_limit_paces_heavy_requests() -> None:
    lim = RateLimiter.from_exchange_info(
        [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
          "limit": 100}], safety=0.5)
    times = run_paced(lim, 40, weight=5, is_order=False, t0=0.0)
    per = Counter(math.floor(t / 60) for t in times)
    assert max(per.values()) * 5 <= 50
    assert len(per) >= 4


def test_order_limits_do_not_apply_to_non_orders() -> None:
    lim = RateLimiter.from_exchange_info(
        [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 2},
         {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
          "limit": 1000}], safety=1.0)
    assert lim.acquire(1, True, 0.0) == 0.0
    assert lim.acquire(1, True, 0.0) == 0.0
    assert lim.acquire(1, True, 0.0) > 0.0  # third order inside 10 s waits
    assert lim.acquire(1, False, 0.0) == 0.0  # a query does not


def test_raw_requests_count_requests_not_weight() -> None:
    lim = RateLimiter.from_exchange_info(
        [{"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
          "limit": 3}], safety=1.0)
    assert lim.limits[0].window_s == 300
    for _ in range(3):
        assert lim.acquire(50, False, 1.0) == 0.0
    assert lim.acquire(1, False, 1.0) > 0.0


def test_usage_headers_tighten_the_local_count() -> None:
    lim = RateLimiter.from_exchange_info(DEFAULT_LIMITS["futures"], safety=0.8)
    now = 120.0  # start of a minute window
    assert lim.acquire(1, False, now) == 0.0
    # another process on the same IP used most of the minute's weight
    lim.observe_headers({"x-mbx-used-weight-1m": "1900", "X-MBX-ORDER-COUNT-10S": "7",
                         "Content-Type": "application/json"}, now)
    assert lim.used_weight == 1900 and lim.order_counts == {10: 7}
    w = lim.acquire(50, False, now + 1)
    assert w == pytest.approx(59.0)  # must wait for the next minute window
    assert lim.acquire(50, False, now + 60) == 0.0
    # garbage headers are ignored
    lim.observe_headers({"X-MBX-USED-WEIGHT-XX": "5", "X-MBX-USED-WEIGHT-1M": "n/a"}, now + 60)


def test_429_pauses_everything_until_retry_after() -> None:
    lim = RateLimiter.default("spot")
    until = lim.on_429(3.0, 100.0)
    assert until == 103.0
    assert lim.acquire(1, False, 101.0) == pytest.approx(2.0)
    assert lim.acquire(1, True, 102.5) == pytest.approx(0.5)
    assert not lim.banned(101.0)
    assert lim.acquire(1, False, 103.0) == 0.0
    # without Retry-After: until the end of the current minute
    assert lim.on_429(None, 130.0) == 180.0


def test_418_bans_until_retry_after_or_two_minutes() -> None:
    lim = RateLimiter.default("futures")
    assert lim.on_418(30.0, 10.0) == 40.0
    assert lim.banned(39.9) and not lim.banned(40.0)
    assert lim.acquire(1, False, 20.0) == pytest.approx(20.0)
    assert lim.paused_until(20.0) == 40.0
    lim2 = RateLimiter.default("futures")
    assert lim2.on_418(None, 0.0) == 120.0


def test_from_exchange_info_skips_unknown_and_adopt_keeps_usage() -> None:
    lim = RateLimiter.from_exchange_info(
        [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
          "limit": 100},
         {"rateLimitType": "CONNECTIONS", "interval": "MINUTE", "intervalNum": 1, "limit": 5},
         {"rateLimitType": "ORDERS", "interval": "WEEK", "intervalNum": 1, "limit": 5}],
        safety=1.0)
    assert [lim_.key() for lim_ in lim.limits] == [("REQUEST_WEIGHT", 60)]
    for _ in range(3):
        lim.acquire(30, False, 0.0)
    new = RateLimiter.from_exchange_info(
        [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
          "limit": 100}], safety=1.0)
    lim.adopt(new)
    assert lim.limits[0].count == 90
    assert lim.acquire(30, False, 1.0) > 0.0


def test_invalid_safety_and_limit_budget() -> None:
    with pytest.raises(ValueError):
        RateLimiter([], safety=0.0)
    assert Limit("ORDERS", 10, 1, safety=0.5).budget == 1  # never 0
