"""Incremental indicators vs straightforward numpy/scipy batch references on real Binance data
(1e-9 relative)."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import lfilter

from models.strategy.indicators import (
    ADX,
    ATR,
    EMA,
    EWZ,
    RSI,
    BarAggregator,
    Lag,
    RollingMeanStd,
    RollingPercentile,
    RollingSum,
    Wilder,
    ewz_update,
    roll_window_sums,
)

REL = 1e-9
BTC_1M = "spot/BTCUSDT/BTCUSDT-1m-20210917-20211017.csv.gz"
SOL_5M = "spot/SOLUSDT/SOLUSDT-5m-20201201-20210717.csv.gz"
N = 6000


def ref_ema(x: np.ndarray, n: int) -> np.ndarray:
    a = 2.0 / (n + 1.0)
    y = np.empty_like(x)
    y[0] = x[0]
    y[1:], _ = lfilter([a], [1.0, -(1.0 - a)], x[1:], zi=[(1.0 - a) * x[0]])
    return y


def ref_rma(x: np.ndarray, n: int) -> np.ndarray:
    y = np.full_like(x, np.nan)
    seed = x[:n].mean()
    y[n - 1] = seed
    y[n:], _ = lfilter([1.0 / n], [1.0, -(1.0 - 1.0 / n)], x[n:], zi=[(1.0 - 1.0 / n) * seed])
    return y


def ref_tr(h: np.ndarray, lo: np.ndarray, c: np.ndarray) -> np.ndarray:
    pc = np.concatenate([[np.nan], c[:-1]])
    tr = np.nanmax(np.column_stack([h - lo, np.abs(h - pc), np.abs(lo - pc)]), axis=1)
    tr[0] = h[0] - lo[0]
    return tr


def close_enough(got: np.ndarray, ref: np.ndarray) -> None:
    assert np.array_equal(np.isnan(got), np.isnan(ref))
    m = ~np.isnan(ref)
    np.testing.assert_allclose(got[m], ref[m], rtol=REL, atol=1e-12)


@pytest.fixture(params=[BTC_1M, SOL_5M])
def ohlcv(request, load_klines):
    return load_klines(request.param)[:N]


def test_ema(ohlcv):
    c = ohlcv[:, 4]
    for n in (20, 100):
        e = EMA(n)
        close_enough(np.array([e.update(x) for x in c]), ref_ema(c, n))


def test_wilder_and_atr(ohlcv):
    h, lo, c = ohlcv[:, 2], ohlcv[:, 3], ohlcv[:, 4]
    w = Wilder(14)
    close_enough(np.array([w.update(x) for x in c]), ref_rma(c, 14))
    a = ATR(14)
    got = np.array([a.update(*r) for r in zip(h, lo, c, strict=True)])
    close_enough(got, ref_rma(ref_tr(h, lo, c), 14))


def test_rsi(ohlcv):
    c = ohlcv[:, 4]
    n = 14
    d = np.diff(c)
    g = ref_rma(np.where(d > 0, d, 0.0), n)
    lo = ref_rma(np.where(d < 0, -d, 0.0), n)
    with np.errstate(divide="ignore", invalid="ignore"):
        ref = np.where(lo == 0, 100.0, 100.0 - 100.0 / (1.0 + g / lo))
    ref = np.concatenate([[np.nan], np.where(np.isnan(g), np.nan, ref)])
    r = RSI(n)
    got = np.array([r.update(x) for x in c])
    close_enough(got, ref)
    assert np.nanmin(got) >= 0 and np.nanmax(got) <= 100


def test_adx(ohlcv):
    h, lo, c = ohlcv[:, 2], ohlcv[:, 3], ohlcv[:, 4]
    n = 14
    up = h[1:] - h[:-1]
    dn = lo[:-1] - lo[1:]
    pdm = np.where((up > dn) & (up > 0), up, 0.0)
    mdm = np.where((dn > up) & (dn > 0), dn, 0.0)
    tr = ref_tr(h, lo, c)[1:]
    atr, sp, sm = ref_rma(tr, n), ref_rma(pdm, n), ref_rma(mdm, n)
    pdi, mdi = 100 * sp / atr, 100 * sm / atr
    dx = 100 * np.abs(pdi - mdi) / (pdi + mdi)
    valid = ~np.isnan(dx)
    adx = np.full_like(dx, np.nan)
    adx[valid] = ref_rma(dx[valid], n)
    ref = np.concatenate([[np.nan], adx])
    a = ADX(n)
    got = np.array([a.update(*r) for r in zip(h, lo, c, strict=True)])
    close_enough(got, ref)
    assert np.isnan(got[2 * n - 2]) and not np.isnan(got[2 * n - 1])


def test_rolling_mean_std_and_sum(ohlcv):
    c = ohlcv[:, 4]
    v = ohlcv[:, 5]
    for x, n in ((c, 60), (v, 288)):
        r = RollingMeanStd(n)
        s = RollingSum(n)
        means, stds, sums = [], [], []
        for val in x:
            r.update(val)
            s.update(val)
            means.append(r.mean if r.full else np.nan)
            stds.append(r.std if r.full else np.nan)
            sums.append(s.total if s.count == n else np.nan)
        win = sliding_window_view(x, n)
        pad = np.full(n - 1, np.nan)
        close_enough(np.array(means), np.concatenate([pad, win.mean(axis=1)]))
        close_enough(np.array(stds), np.concatenate([pad, win.std(axis=1)]))
        close_enough(np.array(sums), np.concatenate([pad, win.sum(axis=1)]))


def test_window_sums_over_one_ring_match_sliding_sums(ohlcv):
    # the feature engine's use: several windows (shorter than the ring too) of squared returns
    r2 = np.diff(np.log(ohlcv[:, 4])) ** 2
    wins = (15, 60, 240, 60, 1440)
    ring, sums, pos, since = [0.0] * max(wins), [0.0] * len(wins), 0, 0
    got = np.full((len(r2), len(wins)), np.nan)
    for t, x in enumerate(r2):
        pos, since = roll_window_sums(ring, pos, since, sums, wins, min(t + 1, len(ring)),
                                      float(x))
        got[t] = sums
    for k, n in enumerate(wins):
        # before the window fills: the sum of everything so far
        ref = np.concatenate([np.cumsum(r2[: n - 1]), sliding_window_view(r2, n).sum(axis=1)])
        np.testing.assert_allclose(got[:, k], ref, rtol=REL, atol=1e-15)
    assert (got >= 0.0).all()


def test_z_of_the_newest_value(ohlcv):
    c = ohlcv[:, 4]
    r = RollingMeanStd(60)
    got = []
    for x in c:
        r.update(x)
        got.append(r.z(x) if r.full else np.nan)
    win = sliding_window_view(c, 60)
    ref = np.concatenate([np.full(59, np.nan), (c[59:] - win.mean(axis=1)) / win.std(axis=1)])
    np.testing.assert_allclose(np.array(got)[59:], ref[59:], rtol=1e-6)
    flat = RollingMeanStd(3)
    for _ in range(3):
        flat.update(5.0)
    assert np.isnan(flat.z(5.0)) and np.isnan(RollingMeanStd(3).z(1.0))


def test_ewz_update_is_ewz_for_each_slot(ohlcv):
    # several normalisers in one call (the feature engine's hot path) == one EWZ per slot
    cols = ohlcv[:, 1:6]
    spans = (1440, 288, 60, 20, 5)
    alphas = tuple(2.0 / (n + 1.0) for n in spans)
    mean, var, count, out = [0.0] * 7, [0.0] * 7, [0] * 7, [0.0] * 7
    idx = (0, 2, 3, 5, 6)
    ref = [EWZ(n, 3.0) for n in spans]
    for t, row in enumerate(cols):
        xs = tuple(float("nan") if (t + k) % 11 == 0 else float(v) for k, v in enumerate(row))
        ewz_update(idx, xs, alphas, 3.0, mean, var, count, out)
        for k, i in enumerate(idx):
            assert out[i] == ref[k].update(xs[k])  # bit for bit
    assert out[1] == out[4] == 0.0 and count[1] == 0


def test_lag(ohlcv):
    c = ohlcv[:, 4]
    lag = Lag(15)
    got = np.array([lag.update(x) for x in c])
    assert np.isnan(got[:15]).all()
    assert np.array_equal(got[15:], c[:-15])


def test_ewz_normaliser(ohlcv):
    x = ohlcv[:, 4]
    span, clip = 1440, 3.0
    a = 2.0 / (span + 1.0)
    m = ref_ema(x, span)  # same recursion as the EW mean
    d = np.empty_like(x)
    d[0] = 0.0
    d[1:] = x[1:] - m[:-1]
    var = np.empty_like(x)
    var[0] = 0.0
    var[1:], _ = lfilter([(1.0 - a) * a], [1.0, -(1.0 - a)], d[1:] ** 2, zi=[0.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(var[:-1] > 0, d[1:] / np.sqrt(var[:-1]), 0.0)
    ref = np.concatenate([[0.0], np.tanh(np.clip(z, -clip, clip) / 2.0)])
    e = EWZ(span, clip)
    got = np.array([e.update(val) for val in x])
    np.testing.assert_allclose(got, ref, rtol=REL, atol=1e-12)
    assert np.all(np.abs(got) < 1.0)


def test_aggregator_matches_batch_resample(load_klines):
    a = load_klines(BTC_1M)[:5000]
    t = a[:, 0].astype(np.int64)
    agg = BarAggregator(15 * 60_000, 60_000)
    got = []
    for r in a:
        got.extend(agg.update(int(r[0]), *map(float, r[1:6])))
    # batch: group complete 15-minute buckets
    b = t // 900_000
    ref = []
    for k in np.unique(b):
        rows = a[b == k]
        ref.append((rows[0, 1], rows[:, 2].max(), rows[:, 3].min(), rows[-1, 4], rows[:, 5].sum()))
    last_complete = (t[-1] + 60_000) % 900_000 == 0
    if not last_complete:
        ref = ref[:-1]
    assert len(got) == len(ref)
    np.testing.assert_allclose(np.array(got), np.array(ref), rtol=REL)


def test_aggregator_emits_partial_bucket_after_gap():
    agg = BarAggregator(900_000, 60_000)
    assert agg.update(0, 1, 2, 0.5, 1.5, 10) == []
    out = agg.update(1_800_000, 3, 4, 2, 3.5, 5)  # next bucket but one: gap
    assert out == [(1, 2, 0.5, 1.5, 10)]


def test_rolling_percentile_nearest_rank():
    rp = RollingPercentile(5)
    for x in [5.0, 1.0, 4.0, 2.0, 3.0, 10.0]:  # the 5.0 drops out
        rp.push(x)
    assert len(rp) == 5
    assert rp.threshold(0) == 1.0
    assert rp.threshold(80) == 4.0  # sorted [1,2,3,4,10], index floor(0.8*4) = 3
    assert rp.threshold(100) == 10.0
