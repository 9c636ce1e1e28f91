"""Weight and order-count limits: headers, 429 with Retry-After, 418 ban, window reset."""

import pytest

from exchange_sim.auth import ApiError
from exchange_sim.ratelimit import RateLimiter


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def make(clock: FakeClock, **kw) -> RateLimiter:
    args = dict(market="futures", weight_per_min=10,
                order_windows=[(10, 3, "X-MBX-ORDER-COUNT-10S", "10 SECOND"),
                               (60, 5, "X-MBX-ORDER-COUNT-1M", "1 MINUTE")],
                ban_after_429=2, ban_seconds=30, clock=clock)
    args.update(kw)
    return RateLimiter(**args)


def test_weight_headers_and_429_then_reset() -> None:
    clk = FakeClock()
    rl = make(clk)
    h = rl.admit("ip", 4)
    assert h["X-MBX-USED-WEIGHT-1M"] == "4"
    rl.admit("ip", 6)
    with pytest.raises(ApiError) as e:
        rl.admit("ip", 1)
    assert e.value.http_status == 429 and e.value.code == -1003
    assert 1 <= int(e.value.headers["Retry-After"]) <= 60
    clk.t += 60  # next window
    assert rl.admit("ip", 1)["X-MBX-USED-WEIGHT-1M"] == "1"


def test_spot_header_spelling() -> None:
    rl = make(FakeClock(), market="spot")
    h = rl.admit("ip", 1)
    assert h["X-MBX-USED-WEIGHT-1m"] == "1" and h["X-MBX-USED-WEIGHT"] == "1"


def test_ban_after_repeated_429() -> None:
    clk = FakeClock()
    rl = make(clk)
    rl.admit("ip", 10)
    statuses = []
    for _ in range(4):
        try:
            rl.admit("ip", 1)
        except ApiError as e:
            statuses.append(e.http_status)
    assert statuses == [429, 429, 418, 418]
    clk.t += 61  # window over, but the ban (30 s from the 3rd strike) ... is over too
    assert rl.admit("ip", 1)


def test_ban_lasts_its_duration() -> None:
    clk = FakeClock()
    rl = make(clk, ban_seconds=300)
    rl.ban("ip")
    clk.t += 299
    with pytest.raises(ApiError) as e:
        rl.admit("ip", 1)
    assert e.value.http_status == 418 and "banned until" in e.value.msg
    clk.t += 2
    rl.admit("ip", 1)


def test_order_counts_per_account() -> None:
    clk = FakeClock()
    rl = make(clk, weight_per_min=1000)
    for n in (1, 2, 3):
        h = rl.admit("ip", 1, "acct", is_order=True)
        assert h["X-MBX-ORDER-COUNT-10S"] == str(n)
    with pytest.raises(ApiError) as e:
        rl.admit("ip", 1, "acct", is_order=True)
    assert e.value.code == -1015 and e.value.http_status == 429
    # another account is not affected; a non-order request reports the count
    assert rl.admit("ip", 1, "other", is_order=True)["X-MBX-ORDER-COUNT-10S"] == "1"
    assert rl.admit("ip", 1, "acct")["X-MBX-ORDER-COUNT-10S"] == "4"
    clk.t += 10  # new 10 s window, same minute: the 1-minute limit (5) now binds
    assert rl.admit("ip", 1, "acct", is_order=True)["X-MBX-ORDER-COUNT-1M"] == "5"
    with pytest.raises(ApiError) as e:
        rl.admit("ip", 1, "acct", is_order=True)
    assert "1 MINUTE" in e.value.msg
