"""Optional inputs (funding, CME gap, weekend) and the Strategy protocol."""

from __future__ import annotations

import math

import pytest

from models.enums import Market
from models.strategy import (
    MarketView,
    PositionView,
    RiskInputs,
    Strategy,
    StrategyParams,
    make_strategy,
)
from models.strategy.features import F_CME, F_FUND, F_FUNDG, F_WEEKEND


def test_both_strategies_implement_the_protocol():
    for kind in ("adaptive", "static_grid"):
        s = make_strategy(StrategyParams(kind=kind), "BTCUSDT", 300_000)
        assert isinstance(s, Strategy)
        assert s.warm is False


def test_plan_before_warm_is_empty(filters):
    s = make_strategy(StrategyParams(), "BTCUSDT", 60_000)
    assert s.plan(MarketView(last_price=100.0), PositionView(), [],
                  RiskInputs(max_long_notional=1000.0), filters, Market.FUTURES) == []


def test_funding_and_cme_inputs_feed_features():
    s = make_strategy(StrategyParams(), "BTCUSDT", 60_000)
    eng = s.eng
    assert eng.feats[F_FUND] == 0.0 and eng.feats[F_FUNDG] == 0.0
    for r in (0.0001, 0.0001, 0.0001, 0.0002, 0.0001, 0.0003):
        s.on_funding(r, 0)
    assert eng.feats[F_FUND] > 0.0  # 0.0003 is high relative to its history
    assert eng.fund_hist == [0.0002, 0.0001, 0.0003]
    assert eng.feats[F_FUNDG] != 0.0
    s.on_cme_gap(4.0)
    assert eng.feats[F_CME] == pytest.approx(math.tanh(1.0))
    s.on_cme_gap(None)
    assert eng.feats[F_CME] == 0.0


def test_weekend_flag_and_confidence_factor(synth_rows, bars_of):
    # 2020-09-12 was a Saturday: the series runs from Saturday 00:00 to Sunday 02:39 UTC
    rows = synth_rows(1600, start_ms=1_599_868_800_000)
    vals = {}
    for factor in (1.0, 0.5):
        s = make_strategy(StrategyParams(weekend_confidence_factor=factor), "X", 60_000)
        vals[factor] = [s.on_bar(b) for b in bars_of(rows, 60_000)]
    last = vals[1.0][-1]
    assert last.features[F_WEEKEND] == 1.0
    assert vals[0.5][-1].c_up == pytest.approx(0.5 * last.c_up)
    assert vals[0.5][-1].b_up == last.b_up


def test_flat_then_moving_market_does_not_break(bars_of, filters):
    import numpy as np
    n = 3000
    t = 1_600_000_000_000 - 1_600_000_000_000 % 60_000 + 60_000 * np.arange(n)
    c = np.full(n, 100.0)
    c[1500:1510] = [100.5, 101, 100, 99, 100, 100.01, 100.0, 100.0, 100.02, 100.0]
    c[2000:] = 100.0 + np.cumsum(np.where(np.arange(n - 2000) % 2, 0.01, -0.009))
    o = np.concatenate([[100.0], c[:-1]])
    rows = np.column_stack([t, o, np.maximum(o, c), np.minimum(o, c), c, np.zeros(n)])
    s = make_strategy(StrategyParams(), "X", 60_000)
    for b in bars_of(rows, 60_000):
        v = s.on_bar(b)
        if v is not None:
            assert all(math.isfinite(x) for x in (v.b_up, v.c_up, v.b_down, v.c_down, v.b_neu,
                                                   v.c_neu, v.L, v.S))
            s.plan(MarketView(last_price=b.close), PositionView(), [],
                   RiskInputs(max_long_notional=1000.0, max_short_notional=1000.0), filters,
                   Market.FUTURES)


def test_exchange_outage_flat_bars_regression(load_klines, bars_of, synth_rows):
    # 2021-02-21 BTCUSDT 5m: volatile market, then repeated identical closes (outage). The
    # running sums of squared returns drifted below zero there (sqrt domain error).
    rows = load_klines("spot/BTCUSDT/BTCUSDT-5m-20201201-20210717.csv.gz")[19500:20800]
    noisy = synth_rows(2200, vol=0.003)
    noisy[2000:, 1:5] = noisy[1999, 4]  # synthetic: the same, flat after a volatile walk
    for data, iv in ((rows, 300_000), (noisy, 60_000)):
        s = make_strategy(StrategyParams(), "X", iv)
        for b in bars_of(data, iv):
            v = s.on_bar(b)
            if v is not None:
                assert math.isfinite(v.L) and math.isfinite(v.S)
