"""Behaviour of the seeded synthetic kline generator and its named scenarios."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from exchange_sim.marketdata import Bars
from exchange_sim.synthetic import (
    SCENARIOS,
    SyntheticParams,
    generate,
    generate_funding,
    scenario_window,
)
from models.enums import Market
from models.timeframes import parse_time

MON = parse_time("2025-01-06")  # a Monday
DAY_1M = 1440
HOUR = 3_600_000
COLS = ("open_time", "open", "high", "low", "close", "volume")


def same(a: Bars, b: Bars) -> bool:
    return all(getattr(a, k).tobytes() == getattr(b, k).tobytes() for k in COLS)


def test_same_seed_is_byte_identical_and_seeds_differ() -> None:
    for sc in SCENARIOS:
        a = generate("BTCUSDT", sc, start_ms=MON, n_bars=7 * DAY_1M, seed=7)
        b = generate("BTCUSDT", sc, start_ms=MON, n_bars=7 * DAY_1M, seed=7)
        c = generate("BTCUSDT", sc, start_ms=MON, n_bars=7 * DAY_1M, seed=8)
        assert same(a, b), sc
        assert not np.array_equal(a.close, c.close), sc
    eth = generate("ETHUSDT", start_ms=MON, n_bars=500, seed=7, start_price=60_000.0)
    btc = generate("BTCUSDT", start_ms=MON, n_bars=500, seed=7)
    assert not np.array_equal(eth.close, btc.close)  # the symbol is part of the seed


def test_longer_run_extends_a_shorter_one() -> None:
    short = generate("SOLUSDT", start_ms=MON, n_bars=3000, interval="5m", seed=2)
    long = generate("SOLUSDT", start_ms=MON, n_bars=9000, interval="5m", seed=2)
    assert same(short, long.slice_time(None, short.end_ms))


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("interval,n", [("1m", 7 * DAY_1M), ("5m", 7 * 288), ("1h", 24 * 14)])
def test_ohlc_invariants(scenario: str, interval: str, n: int) -> None:
    for seed in (0, 1, 2):
        b = generate("BTCUSDT", scenario, start_ms=MON, n_bars=n, interval=interval, seed=seed)
        assert len(b) == n and b.interval == interval and b.symbol == "BTCUSDT"
        assert (np.diff(b.open_time) == b.interval_ms).all() and b.first_ms == MON
        assert (b.high >= np.maximum(b.open, b.close)).all()
        assert (b.low <= np.minimum(b.open, b.close)).all()
        assert (b.low > 0).all() and (b.volume > 0).all()
        assert np.array_equal(b.open[1:], b.close[:-1])  # continuous trading
        for col in (b.open, b.high, b.low, b.close):  # on the 0.01 tick
            assert np.allclose(col * 100, np.round(col * 100), atol=1e-6, rtol=0)
        assert b.gaps() == []


def test_default_start_prices_and_market() -> None:
    for sym, p0 in (("BTCUSDT", 60_000), ("ETHUSDT", 3_000), ("SOLUSDT", 150)):
        b = generate(sym, start_ms=MON, n_bars=10, seed=0)
        assert b.open[0] == p0
    b = generate("BTCUSDT", start_ms=MON, n_bars=10, start_price=123.45, market="futures")
    assert b.open[0] == 123.45 and b.market is Market.FUTURES


@pytest.mark.parametrize("interval", ["1m", "5m"])
def test_pump5_is_plus_five_percent_in_the_documented_hour(interval: str) -> None:
    per_day = 86_400_000 // {"1m": 60_000, "5m": 300_000}[interval]
    n = 3 * per_day
    i0, i1 = scenario_window("pump5", MON, n, interval)
    assert i0 == per_day and (i1 - i0) * {"1m": 60_000, "5m": 300_000}[interval] == HOUR
    for seed in range(5):
        b = generate("ETHUSDT", "pump5", start_ms=MON, n_bars=n, interval=interval, seed=seed)
        assert b.close[i1 - 1] / b.open[i0] == pytest.approx(1.05, abs=1e-5)
        base = generate("ETHUSDT", "gbm", start_ms=MON, n_bars=n, interval=interval, seed=seed)
        # the warm-up day is the plain model; the event is layered on top of it
        assert np.array_equal(b.close[:i0 - 1], base.close[:i0 - 1])
        assert b.volume[i0:i1].mean() > 2 * base.volume[i0:i1].mean()


def test_crash12_is_minus_twelve_percent_with_high_vol() -> None:
    n = 3 * DAY_1M
    i0, i1 = scenario_window("crash12", MON, n, "1m")
    assert i0 == DAY_1M and i1 - i0 == 4 * 60
    calm_sigma = 0.35 / np.sqrt(365 * DAY_1M)  # BTC calm annual vol per minute
    for seed in range(5):
        b = generate("BTCUSDT", "crash12", start_ms=MON, n_bars=n, seed=seed)
        assert b.close[i1 - 1] / b.open[i0] == pytest.approx(0.88, abs=1e-5)
        r = np.diff(np.log(b.close[i0:i1]))
        assert r.std() > 2 * calm_sigma


def test_chop_stays_in_a_range() -> None:
    n = 60 * 24  # 60 days of 1h bars: a 35 % vol random walk would wander ~14 %
    for seed in range(5):
        b = generate("BTCUSDT", "chop", start_ms=MON, n_bars=n, interval="1h", seed=seed)
        dev = np.abs(np.log(b.close / 60_000.0))
        assert dev.max() < 0.06
        first, second = b.close[: n // 2].mean(), b.close[n // 2:].mean()
        assert abs(np.log(second / first)) < 0.02  # no trend


def test_weekend_has_lower_volume_and_vol() -> None:
    n = 28 * 288
    for seed in range(3):
        b = generate("SOLUSDT", "weekend", start_ms=MON, n_bars=n, interval="5m", seed=seed)
        plain = generate("SOLUSDT", "gbm", start_ms=MON, n_bars=n, interval="5m", seed=seed)
        wk = ((b.open_time // 86_400_000 + 3) % 7) >= 5
        assert wk.sum() == 8 * 288  # four Saturdays and Sundays
        assert np.median(b.volume[wk]) < 0.75 * np.median(b.volume[~wk])
        assert np.median(b.volume[wk]) < np.median(plain.volume[wk])
        r = np.diff(np.log(b.close))
        rp = np.diff(np.log(plain.close))
        assert r[wk[1:]].std() < rp[wk[1:]].std()
        # weekdays keep the same draws (volume differs only via the tick-rounded bar move)
        ratio = b.volume[~wk] / plain.volume[~wk]
        assert np.median(np.abs(ratio - 1)) < 0.01


def test_cme_gap_drifts_between_cme_close_and_reopen() -> None:
    start = parse_time("2025-01-08")  # a Wednesday
    n = 7 * DAY_1M
    i0, i1 = scenario_window("cme_gap", start, n, "1m")
    b = generate("BTCUSDT", "cme_gap", start_ms=start, n_bars=n, seed=4)
    assert int(b.open_time[i0]) == parse_time("2025-01-10T21:00")  # Friday CME close
    assert int(b.open_time[i1]) == parse_time("2025-01-12T23:00")  # Sunday CME reopen
    assert b.open[i1] / b.open[i0] == pytest.approx(1.04, abs=1e-5)
    # Sunday before 23:00 is already quiet weekend trading
    assert np.median(b.volume[i0 + 200:i1]) < np.median(b.volume[:i0])


def test_scenario_errors() -> None:
    with pytest.raises(ValueError, match="needs at least"):
        generate("BTCUSDT", "pump5", start_ms=MON, n_bars=100)
    with pytest.raises(ValueError, match="unknown scenario"):
        generate("BTCUSDT", "moon", start_ms=MON, n_bars=100)
    with pytest.raises(ValueError, match="not aligned"):
        generate("BTCUSDT", start_ms=MON + 1, n_bars=10)
    with pytest.raises(ValueError, match="unknown interval"):
        generate("BTCUSDT", start_ms=MON, n_bars=10, interval="7m")
    assert len(generate("BTCUSDT", start_ms=MON, n_bars=0)) == 0
    assert scenario_window("gbm", MON, 10) is None


def test_params_change_the_output() -> None:
    quiet = SyntheticParams(calm_vol=0.05, jumps_per_day=0.0)
    a = generate("BTCUSDT", start_ms=MON, n_bars=DAY_1M, seed=1, params=quiet)
    b = generate("BTCUSDT", start_ms=MON, n_bars=DAY_1M, seed=1)
    assert np.diff(np.log(a.close)).std() < np.diff(np.log(b.close)).std()


def test_generate_funding() -> None:
    s, e = parse_time("2025-01-01T03:00"), parse_time("2025-01-31")
    f = generate_funding("BTCUSDT", s, e, seed=1)
    assert f == generate_funding("BTCUSDT", s, e, seed=1)
    assert f != generate_funding("BTCUSDT", s, e, seed=2)
    times = [t for t, _ in f]
    assert times[0] == parse_time("2025-01-01T08:00") and times[-1] < e
    assert all(b - a == 8 * HOUR for a, b in zip(times, times[1:], strict=False))
    assert all(isinstance(r, Decimal) and r.as_tuple().exponent == -8 for _, r in f)
    mean = sum(r for _, r in f) / len(f)
    assert Decimal("0.00007") < mean < Decimal("0.00013")
    four = generate_funding("SOLUSDT", s, e, every_h=4, rate=Decimal("-0.0005"))
    assert all(t % (4 * HOUR) == 0 for t, _ in four) and len(four) == 2 * len(f) + 1
    assert sum(r for _, r in four) < 0
