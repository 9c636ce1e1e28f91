"""The charts as data (``report.chart_specs``): the min/max envelope of long series, the
rolling conviction band, bin widths, fill markers thinned but every fill counted."""

from __future__ import annotations

import numpy as np
import pytest

from report import chart_specs as rc
from report.chart_specs import envelope

T0 = 1_735_689_600_000
MIN = 60_000


def test_envelope_keeps_spikes_ends_and_order() -> None:
    rng = np.random.default_rng(7)
    n = 100_003
    t = T0 + np.arange(n, dtype=np.int64) * MIN
    v = np.cumsum(rng.normal(0, 1, n))
    v[31_337] = v.max() + 500  # one-sample spikes, both ways
    v[77_777] = v.min() - 500
    et, ev = envelope(t, v, 2000)
    assert len(et) <= 2002
    assert np.all(np.diff(et) > 0)
    assert et[0] == t[0] and et[-1] == t[-1] and ev[-1] == v[-1]
    assert ev.max() == v.max() and ev.min() == v.min()
    assert t[31_337] in et and t[77_777] in et
    # every kept point is a real sample
    idx = (et - T0) // MIN
    assert np.array_equal(v[idx], ev)
    # every bucket's extremes survive: the envelope's range covers each stretch of the series
    for lo in range(0, n - 1000, 9_973):
        seg = slice(lo, lo + 1000)
        inside = (et >= t[seg][0]) & (et <= t[seg][-1])
        assert ev[inside].max() >= np.sort(v[seg])[-100]


def test_envelope_short_series_unchanged_and_nan_safe() -> None:
    t, v = [1, 2, 3], [3.0, 1.0, 2.0]
    et, ev = envelope(t, v, 2000)
    assert list(et) == t and list(ev) == v
    vv = np.full(10_000, np.nan)
    vv[5000] = 4.0
    et, ev = envelope(np.arange(10_000), vv, 100)
    assert 5000 in et and len(et) <= 102


def test_envelope_keeps_the_level_a_step_ends_on() -> None:
    """A step curve (equity logged on change) keeps each bucket's last value: a drop to a new
    level followed by a quiet stretch (a halted account) is not drawn as a ramp from the
    bucket's extreme to the next sample, weeks later."""
    v = np.r_[np.linspace(0, -9, 870), -100.0, np.full(129, -50.0)]
    t = np.r_[np.arange(900), 10**6 + np.arange(100)]  # quiet after sample 899
    et, ev = envelope(t, v, 40)
    before = et < 900
    assert ev[before][-1] == -50.0 and et[before][-1] == 899
    assert -100.0 in ev


def test_rolling_band_matches_a_brute_force_window() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.choice(np.arange(0, 50 * 3_600_000, 60_000), 2000, replace=False))
    v = rng.random(2000)
    v[::97] = np.nan  # gaps in the signal are skipped
    at, mean, lo, hi = rc.rolling_band(t, v, 6 * 3_600_000, points=50)
    tf = t[np.isfinite(v)]
    assert len(at) == 50 and at[0] == tf[0] and at[-1] == tf[-1]
    for j in (0, 17, 49):
        w = (t >= at[j] - 3 * 3_600_000) & (t <= at[j] + 3 * 3_600_000) & np.isfinite(v)
        assert mean[j] == pytest.approx(v[w].mean())
        assert (lo[j], hi[j]) == pytest.approx(tuple(np.quantile(v[w], [0.1, 0.9])))
    assert rc.rolling_band([], [], 1000)[0].size == 0
    # windows longer than max_window: quantiles from every k-th sample, the mean from all
    at2, mean2, lo2, hi2 = rc.rolling_band(t, v, 6 * 3_600_000, points=50, max_window=16)
    assert np.array_equal(at2, at) and mean2 == pytest.approx(mean)
    assert np.all(lo2 <= hi2) and np.all((lo2 >= 0) & (hi2 <= 1))


def test_bin_width_and_labels() -> None:
    h, d = 3_600_000, 86_400_000
    assert rc.bin_width(3 * d, 150) == h and rc.bin_width(90 * d, 150) == d
    assert rc.bin_width(365 * d, 150) == 4 * d and rc.bin_width(10**13, 10) == 28 * d
    assert (rc.step_label(6 * h), rc.step_label(d), rc.step_label(14 * d)) == ("6 h", "1 d",
                                                                               "2 w")


def test_price_chart_thins_markers_and_counts_every_fill() -> None:
    n = 3000
    t = T0 + np.arange(n, dtype=np.int64) * 5 * MIN
    fills = [(int(t[i]), "BUY" if i % 10 else "SELL", 100.0 + i % 7) for i in range(n)]
    spec = rc._price_job("BTCUSDT", t, np.full(n, 100.0), fills, "USDT")
    price, counts = spec["panels"]
    buys, sells = price["scatter"]
    assert len(buys["t"]) <= rc.MAX_MARKERS and len(sells["t"]) <= rc.MAX_MARKERS
    assert buys["label"] == "buys (2,700, 1 in 7 shown)" and sells["label"] == "sells (300)"
    up, down = counts["bars"]
    # every fill in the bins (the last value repeats to close the step outline)
    assert up["v"][:-1].sum() == 2700 and down["v"][:-1].sum() == -300
    assert len(up["t"]) == len(up["v"]) and np.all(np.diff(up["t"]) > 0)
