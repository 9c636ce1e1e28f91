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
