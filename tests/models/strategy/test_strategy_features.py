"""Feature engine end to end vs a numpy batch reference (raw features) + EW normaliser."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from models.strategy import StrategyParams
from models.strategy.features import (
    F_ATRPCT,
    F_MOM_L,
    F_MOM_M,
    F_MOM_S,
    F_STRETCH,
    F_VOLRATIO,
    F_VOLUME,
    F_WEEKEND,
    FeatureEngine,
)

BTC_1M = "spot/BTCUSDT/BTCUSDT-1m-20210917-20211017.csv.gz"
N = 5000


def ewz_ref(raw: np.ndarray, span: float, clip: float = 3.0) -> np.ndarray:
    """Normalise a raw series (nan = no update, previous output held)."""
    a = 2.0 / (span + 1.0)
    m = v = 0.0
    n = 0
    out = np.zeros_like(raw)
    last = 0.0
    for k, x in enumerate(raw):
        if not math.isnan(x):
            if n == 0:
                m, last = x, 0.0
            else:
                last = math.tanh(0.5 * max(-clip, min(clip, (x - m) / math.sqrt(v)))) \
                    if v > 0 else 0.0
                d = x - m
                m += a * d
                v = (1 - a) * (v + a * d * d)
            n += 1
        out[k] = last
    return out


def pad(n: int, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.full(n, np.nan), x])


def test_features_match_batch_reference(load_klines):
    a = load_klines(BTC_1M)[:N]
    t, h, lo, c, vol = a[:, 0].astype(np.int64), a[:, 2], a[:, 3], a[:, 4], a[:, 5]
    p = StrategyParams()
    eng = FeatureEngine(p, 60_000)
    got = []
    for r in a:
        eng.update(int(r[0]), *map(float, r[1:6]))
        got.append(list(eng.feats))
    got = np.array(got)
    r = np.concatenate([[0.0], np.diff(np.log(c))])
    r2 = r * r
    span = 1440
    for fi, n in ((F_MOM_S, 15), (F_MOM_M, 60), (F_MOM_L, 240)):
        rv = pad(n - 1, sliding_window_view(r2, n).sum(axis=1))
        mom = pad(n, np.log(c[n:] / c[:-n]))
        raw = np.where(rv > 0, mom / np.sqrt(np.where(rv > 0, rv, 1)), np.nan)
        np.testing.assert_allclose(got[:, fi], ewz_ref(raw, span), rtol=0, atol=1e-9)
    w = sliding_window_view(c, 60)
    stretch = pad(59, (c[59:] - w.mean(axis=1)) / w.std(axis=1))
    np.testing.assert_allclose(got[:, F_STRETCH], ewz_ref(stretch, span), rtol=0, atol=1e-9)
    # volume z over a growing-then-rolling 1-day window
    zs = np.full(N, np.nan)
    for k in range(1, N):
        win = vol[max(0, k - 1439):k + 1]
        if win.std() > 0:
            zs[k] = (vol[k] - win.mean()) / win.std()
    np.testing.assert_allclose(got[:, F_VOLUME], ewz_ref(zs, span), rtol=0, atol=1e-9)
    rs = pad(59, sliding_window_view(r2, 60).mean(axis=1))
    rl = np.array([r2[max(0, k - 1439):k + 1].mean() for k in range(N)])
    ratio = np.where((np.arange(N) >= 60) & (rl > 0), np.sqrt(rs / np.where(rl > 0, rl, 1)),
                     np.nan)
    np.testing.assert_allclose(got[:, F_VOLRATIO], ewz_ref(ratio, span), rtol=0, atol=1e-9)
    pc = np.concatenate([[np.nan], c[:-1]])
    tr = np.nanmax(np.column_stack([h - lo, np.abs(h - pc), np.abs(lo - pc)]), axis=1)
    atr = np.full(N, np.nan)
    atr[13] = tr[:14].mean()
    for k in range(14, N):
        atr[k] = atr[k - 1] + (tr[k] - atr[k - 1]) / 14
    np.testing.assert_allclose(got[:, F_ATRPCT], ewz_ref(atr / c, span), rtol=0, atol=1e-9)
    weekday = ((t // 86_400_000) + 3) % 7
    assert np.array_equal(got[:, F_WEEKEND], (weekday >= 5).astype(float))
