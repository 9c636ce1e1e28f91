"""Systems, conviction and the per-bar values: formulas checked numerically, pump behaviour on
synthetic and real data, ranges, per-bar exposure."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models.strategy import StrategyParams, SystemWeightParams, make_strategy
from models.strategy.conviction import conviction
from models.strategy.features import FEATURE_NAMES, NF
from models.strategy.systems import SystemSpec, bias_share

BTC_5M = "spot/BTCUSDT/BTCUSDT-5m-20201201-20210717.csv.gz"


def test_long_conviction_formula_numeric():
    sw = SystemWeightParams(w_up=0.6, w_neu_long=0.4, v_down=0.7, v_neu_short=0.3)
    # L = 0.6*0.5*0.8 + 0.4*max(0.25,0)*0.6 = 0.24 + 0.06 = 0.30
    L, S = conviction(0.5, 0.8, 0.2, 0.9, 0.25, 0.6, sw)
    assert L == pytest.approx(0.30, abs=1e-15)
    assert S == 0.0  # b_down > 0 and b_neu > 0: nothing bearish
    # bearish: S = 0.7*0.4*0.5 + 0.3*0.25*0.6 = 0.14 + 0.045 = 0.185; L ignores negatives
    L, S = conviction(-0.3, 0.9, -0.4, 0.5, -0.25, 0.6, sw)
    assert L == 0.0
    assert S == pytest.approx(0.185, abs=1e-15)


def test_conviction_bounded():
    sw = SystemWeightParams()
    rng = np.random.default_rng(7)
    for _ in range(1000):
        b = rng.uniform(-1, 1, 3)
        c = rng.uniform(0, 1, 3)
        L, S = conviction(b[0], c[0], b[1], c[1], b[2], c[2], sw)
        assert 0.0 <= L <= 1.0 and 0.0 <= S <= 1.0


def test_bias_and_confidence_numeric():
    w = [0.0] * NF
    w[0], w[1], w[2] = 0.5, 0.3, -0.2
    spec = SystemSpec(w)
    f = [0.0] * NF
    f[0], f[1], f[2] = 0.4, -0.2, 0.1
    # x = 0.2 - 0.06 - 0.02 = 0.12 ; agreeing: feature 0 (|w|=0.5) of total |w| 1.0
    b, c, x = bias_share(spec, f, 2.0, 2.0)
    assert x == pytest.approx(0.12)
    assert b == pytest.approx(math.tanh(0.24))
    assert c == pytest.approx(0.5 * (1 - math.exp(-0.24)))
    f[1] = 0.0  # a zero feature does not count for or against agreement
    b, c, x = bias_share(spec, f, 2.0, 2.0)
    assert c == pytest.approx(0.5 / 0.7 * (1 - math.exp(-2 * abs(x))))


def _run(rows, interval_ms, params=None):
    s = make_strategy(params or StrategyParams(), "BTCUSDT", interval_ms)
    out = []
    for r in rows:
        from models.strategy.types import Bar
        out.append(s.on_bar(Bar(int(r[0]), int(r[0]) + interval_ms - 1, *map(float, r[1:6]))))
    return out


def test_b_up_rises_during_synthetic_pump(synth_rows):
    n0, pump = 3000, 60
    drift = np.zeros(n0 + pump)
    drift[n0:] = math.log(1.05) / pump
    vals = _run(synth_rows(len(drift), seed=3, vol=0.0004, drift=drift), 60_000)
    before = np.mean([v.b_up for v in vals[n0 - 30:n0]])
    end = vals[-1].b_up
    assert vals[-1].close / vals[n0 - 1].close > 1.04
    assert end > before + 0.3
    assert end > 0.5
    assert vals[-1].L > np.mean([v.L for v in vals[n0 - 30:n0]])


@pytest.mark.parametrize("start", [9286, 19935, 59973])  # 2021-01-02, 2021-02-08, 2021-06-27
def test_b_up_rises_during_real_pumps(load_klines, start):
    a = load_klines(BTC_5M)
    rows = a[start - 1000:start + 37]
    assert rows[-1, 4] / rows[1000, 4] > 1.05  # the +5 % pump (3 hours of 5m bars)
    vals = _run(rows, 300_000)
    pre = np.mean([v.b_up for v in vals[988:1001]])
    during = np.mean([v.b_up for v in vals[1000:]])
    assert during > pre + 0.15
    assert vals[-1].b_up > 0.5


def test_six_values_exposed_every_bar_within_range(load_klines):
    rows = load_klines(BTC_5M)[:2000]
    vals = _run(rows, 300_000)
    warm = [v for v in vals if v is not None]
    assert vals[0] is None  # warming up
    assert len(warm) >= 2000 - 300  # every bar once warm (warm-up = 1 day = 288 bars)
    assert all(vals[i] is not None for i in range(len(vals)) if i >= 300)
    for v in warm:
        d = v.as_dict()
        for k in ("b_up", "b_down", "b_neu"):
            assert -1.0 <= d[k] <= 1.0
        for k in ("c_up", "c_down", "c_neu", "L", "S"):
            assert 0.0 <= d[k] <= 1.0
        assert set(d["features"]) == set(FEATURE_NAMES)
        assert all(-1.0 <= x <= 1.0 for x in v.features)
        assert v.spacing_long > 0 and v.atr > 0
    assert np.std([v.b_up for v in warm]) > 0.1  # the systems do move
    assert len({v.ts_ms for v in warm}) == len(warm)


def test_weights_sum_and_system_weights_validation():
    p = StrategyParams(system_weights=SystemWeightParams(w_up=0.8, w_neu_long=0.5))
    assert any("w_up + w_neu_long" in e for e in p.validate())


def test_per_bar_conviction_matches_formula_on_real_data(load_klines):
    sw = SystemWeightParams(w_up=0.7, w_neu_long=0.3, v_down=0.6, v_neu_short=0.4)
    vals = [v for v in _run(load_klines(BTC_5M)[:1500], 300_000,
                            StrategyParams(system_weights=sw)) if v is not None]
    assert any(v.L > 0 for v in vals) and any(v.S > 0 for v in vals)
    for v in vals:
        L, S = conviction(v.b_up, v.c_up, v.b_down, v.c_down, v.b_neu, v.c_neu, sw)
        assert v.L == pytest.approx(L, rel=1e-12, abs=1e-15)
        assert v.S == pytest.approx(S, rel=1e-12, abs=1e-15)
