"""Correlation-based initial weights (Spearman) on real data; persistence; softmax."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from models.strategy import StrategyParams, Weights, fit_initial_weights, make_strategy
from models.strategy.features import F_MOM_M, F_RSI, F_STRETCH, FEATURE_NAMES
from models.strategy.weights import (
    PRIOR_SIGN,
    feature_matrix,
    softmax_system_weights,
    training_window,
)

BTC_5M = "spot/BTCUSDT/BTCUSDT-5m-20201201-20210717.csv.gz"
DAY = 86_400_000


@pytest.fixture
def train_rows(load_klines):
    a = load_klines(BTC_5M)
    t0 = a[0, 0]
    lo, hi = training_window(int(t0) + 31 * DAY, StrategyParams())
    rows = a[(a[:, 0] >= lo) & (a[:, 0] < hi)]
    assert len(rows) > 8000
    return rows


def test_fit_weights_are_normalised_sign_consistent_and_persist(train_rows):
    p = StrategyParams()
    w = fit_initial_weights(train_rows, p, 300_000)
    assert w.source == "spearman" and w.n_samples > 7000
    for name in ("up", "down", "neu"):
        vec = getattr(w, name)
        assert sum(abs(x) for x in vec) == pytest.approx(1.0)
        for i, x in enumerate(vec):
            prior = PRIOR_SIGN[name].get(i)
            if prior is None:
                assert x == 0.0  # feature not used by this system
            elif prior:
                assert x * prior >= 0.0  # sign constraint
    # weights are proportional to the Spearman correlations of the kept features
    _t, c, x = feature_matrix(train_rows, p, 300_000)
    h = 12
    fwd = np.log(c[h:] / c[:-h])
    rho = spearmanr(x[:-h, F_STRETCH], fwd).statistic
    assert w.correlations["neu"][F_STRETCH] == pytest.approx(rho, rel=1e-9)
    kept = [i for i in (F_STRETCH, F_RSI) if w.neu[i] != 0.0]
    if len(kept) == 2:
        assert w.neu[F_STRETCH] / w.neu[F_RSI] == pytest.approx(
            w.correlations["neu"][F_STRETCH] / w.correlations["neu"][F_RSI])
    w2 = Weights.from_bytes(w.to_bytes())
    assert w2 == w
    s = make_strategy(p, "BTCUSDT", 300_000, initial_weights=w2)
    assert s.weights is w2


def test_unconstrained_fit_keeps_raw_correlation_signs(train_rows):
    p = StrategyParams(weight_sign_constrained=False)
    w = fit_initial_weights(train_rows, p, 300_000)
    for name in ("up", "down", "neu"):
        corr = w.correlations[name]
        tot = sum(abs(c) for c in corr)
        for i in PRIOR_SIGN[name]:
            assert getattr(w, name)[i] == pytest.approx(corr[i] / tot)
    assert w.up[F_MOM_M] != 0.0


def test_fit_needs_enough_data(train_rows):
    with pytest.raises(ValueError, match="not enough"):
        fit_initial_weights(train_rows[:300], StrategyParams(), 300_000)


def test_weights_for_other_feature_set_rejected():
    w = Weights(feature_names=list(FEATURE_NAMES[:-1]))
    with pytest.raises(ValueError):
        Weights.from_bytes(w.to_bytes())


def test_softmax_system_weights():
    assert softmax_system_weights([0.0, 0.0], 0.25) == [0.5, 0.5]
    w = softmax_system_weights([0.1, 0.0], 0.25)
    assert w[0] == pytest.approx(1 / (1 + np.exp(-0.4)))
    assert sum(w) == pytest.approx(1.0)
