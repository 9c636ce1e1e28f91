"""StrategyParams: defaults valid, semantic validation with JSON paths, strict decoding."""

from __future__ import annotations

import msgspec
import pytest

from models.strategy import StrategyParams, make_strategy
from models.strategy.params import ConvictionFilterParams, StaticGridParams


def test_defaults_are_valid_and_match_plan():
    p = StrategyParams()
    assert p.validate() == []
    assert p.kind == "adaptive"
    assert p.atr_period == 14
    assert p.baseline_spacing_multiplier == 0.75
    assert p.softmax_temperature == 0.25
    assert p.conviction_filter.percentile_threshold == 80
    assert p.recenter_atr == 4.0
    assert p.weight_training_days == 30


def test_validate_reports_json_paths():
    p = StrategyParams(conviction_filter=ConvictionFilterParams(percentile_threshold=120),
                       grid_levels=0, spacing_clamp_min=2.0, spacing_clamp_max=1.0,
                       static_grid=StaticGridParams(spacing_pct=0.0))
    errs = p.validate()
    assert "$.strategy.conviction_filter.percentile_threshold: must be in [0, 100]" in errs
    assert "$.strategy.grid_levels: must be >= 1" in errs
    assert "$.strategy.spacing_clamp_max: must be >= spacing_clamp_min" in errs
    assert "$.strategy.static_grid.spacing_pct: must be in (0, 0.5)" in errs
    assert StrategyParams(grid_levels=0).validate("$.symbols[0].strategy") == [
        "$.symbols[0].strategy.grid_levels: must be >= 1"]


def test_decode_is_strict_and_round_trips():
    raw = b'{"kind": "static_grid", "conviction_filter": {"percentile_threshold": 90}}'
    p = msgspec.json.decode(raw, type=StrategyParams)
    assert p.kind == "static_grid" and p.conviction_filter.percentile_threshold == 90
    assert msgspec.json.decode(msgspec.json.encode(p), type=StrategyParams) == p
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"grid_levelz": 3}', type=StrategyParams)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"kind": "martingale"}', type=StrategyParams)


def test_make_strategy_rejects_invalid_params():
    with pytest.raises(ValueError, match="grid_levels"):
        make_strategy(StrategyParams(grid_levels=0), "BTCUSDT", 60_000)
