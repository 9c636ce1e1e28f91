"""The optimiser's pure rules: search space validation, parameter application, fold
figures, the score, the deflated Sharpe ratio and neighbours."""

from __future__ import annotations

import json
import math
from pathlib import Path

import msgspec
import pytest

from models import optimize as mo
from models.config import Config

DOC = msgspec.to_builtins(Config())


def test_the_shipped_space_is_valid() -> None:
    raw = json.loads((Path(__file__).resolve().parents[2] / "conf" / "search_space.json")
                     .read_text())
    space = mo.parse_space(raw, DOC)
    assert len(space) >= 6 and all(p.name.startswith("strategy.") for p in space)


def test_every_error_is_reported_at_once() -> None:
    raw = {"parameters": [
        {"name": "strategy.nope", "low": 1, "high": 2},
        {"name": "strategy.grid_levels", "low": 2, "high": 8},           # int field, no int
        {"name": "strategy.size_mult", "low": 1.0, "high": 0.5},          # low >= high
        {"name": "strategy.kind", "low": 0, "high": 1},                    # not a number
        {"name": "strategy.bias_gain", "low": 0, "high": 3, "log": True},  # log needs low>0
        {"name": "strategy.ema_fast", "choices": [10, "x"]},              # mixed types
        {"low": 1},
        {"name": "strategy.atr_period", "low": 5, "high": 30, "int": True, "step": 2},
    ]}
    with pytest.raises(mo.SearchSpaceError) as e:
        mo.parse_space(raw, DOC)
    errs = e.value.errors
    assert len(errs) == 8, errs
    for frag in ("no such config field", "add \"int\": true", "must be below",
                 "not a number", "low > 0", "field's type", "needs a \"name\"", "unknown key"):
        assert any(frag in x for x in errs), frag
    with pytest.raises(mo.SearchSpaceError):
        mo.parse_space({"parameters": []}, DOC)


def test_apply_params_sets_nested_fields_on_a_copy() -> None:
    out = mo.apply_params(DOC, {"strategy.conviction_filter.percentile_threshold": 70.0,
                                "strategy.grid_levels": 3})
    assert out["strategy"]["conviction_filter"]["percentile_threshold"] == 70.0
    assert out["strategy"]["grid_levels"] == 3
    assert DOC["strategy"]["grid_levels"] != 3 or DOC is not out


def test_fold_figures_and_score() -> None:
    f = mo.fold_figures([100.0, 110.0, 99.0, 105.0], trades=20, fees=1.5)
    assert math.isclose(f.ret_pct, 5.0) and math.isclose(f.max_dd_pct, -10.0)
    a = mo.FoldFigures(4.0, -5.0, 20, 0.0)
    b = mo.FoldFigures(-2.0, -5.0, 20, 0.0)
    score, ok = mo.trial_score([a, b])
    assert ok and math.isclose(score, 1.0 - 3.0)  # mean 1, sd 3
    score2, ok2 = mo.trial_score([a, mo.FoldFigures(-2.0, -16.0, 20, 0.0)])
    assert not ok2 and math.isclose(score2, -2.0 - mo.INFEASIBLE_PENALTY)
    score3, _ = mo.trial_score([a, mo.FoldFigures(-2.0, -5.0, 3, 0.0)])
    assert math.isclose(score3, -2.0 - mo.FEW_TRADES_PENALTY * 0.5)


def test_deflated_sharpe_against_a_hand_computed_value() -> None:
    # returns alternating +3 % / -1 %: mean 1 %, zero skew; 3 trials with SRs 0, 0.25, 0.5
    # (variance 0.0625, sd 0.25); the formula of Bailey & Lopez de Prado (2014), written out
    r = [0.03, -0.01, 0.03, -0.01, 0.03, -0.01, 0.03, -0.01]
    sr = mo.sharpe(r)
    assert math.isclose(sr, 0.01 / math.sqrt(0.0004 * 8 / 7), rel_tol=1e-12)
    from scipy import stats

    n, g = 3, mo.EULER_GAMMA
    sr0 = 0.25 * ((1 - g) * stats.norm.ppf(1 - 1 / n) + g * stats.norm.ppf(1 - 1 / (n * math.e)))
    kurt = float(stats.kurtosis(r, fisher=False))
    expect = stats.norm.cdf((sr - sr0) * math.sqrt(len(r) - 1)
                            / math.sqrt(1 + (kurt - 1) / 4 * sr * sr))
    assert math.isclose(mo.deflated_sharpe(r, [0.0, 0.25, 0.5]), expect, rel_tol=1e-9)
    assert 0.0 < expect < 1.0
    # more trials with the same dispersion demand more: the probability falls
    assert mo.deflated_sharpe(r, [0.0, 0.25, 0.5] * 30) < expect
    assert math.isnan(mo.deflated_sharpe(r[:2], [0.0, 1.0]))


def test_neighbours_rank_by_normalised_distance() -> None:
    space = [mo.Param("a", 0.0, 10.0), mo.Param("b", 1.0, 100.0, log=True),
             mo.Param("c", choices=("x", "y"))]
    best = {"a": 5.0, "b": 10.0, "c": "x"}
    others = [({"a": 6.0, "b": 10.0, "c": "x"}, 1.0), ({"a": 5.0, "b": 10.0, "c": "y"}, 2.0),
              (best, 9.0)]
    near = mo.neighbours(best, others, space)
    assert [s for _, s in near] == [1.0, 2.0] and math.isclose(near[0][0], 0.1)
