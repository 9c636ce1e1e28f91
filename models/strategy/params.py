"""Strategy parameters: frozen msgspec structs, every field with a documented default.

The main config embeds ``StrategyParams`` under ``$.strategy``; ``docs/STRATEGY.md`` has the
table of every field (meaning, default, range). ``validate`` returns semantic errors as
``"JSONPATH: message"`` strings (decoding already checks types and unknown fields).
"""

from __future__ import annotations

from typing import Literal

import msgspec


class ConvictionFilterParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Entry filter: a side opens entries only while its conviction is at or above the given
    percentile of its own rolling history."""

    percentile_threshold: float = 80.0
    window_bars: int = 1440
    min_history_bars: int = 60
    min_conviction: float = 0.02


class SystemWeightParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Ensemble weights of the systems in L and S (Appendix A's w1, w2, v1, v2)."""

    w_up: float = 0.5
    w_neu_long: float = 0.5
    v_down: float = 0.5
    v_neu_short: float = 0.5


class StaticGridParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Baseline: fixed spacing and size around the start price, TP one grid step away."""

    spacing_pct: float = 0.005
    levels: int = 5
    order_quote: float = 0.0
    order_fraction: float = 0.0


class StrategyParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """All strategy parameters (see docs/STRATEGY.md, "Parameters")."""

    kind: Literal["adaptive", "static_grid"] = "adaptive"
    # indicators / features
    atr_period: int = 14
    trend_interval_minutes: int = 15
    ema_fast: int = 20
    ema_slow: int = 100
    adx_period: int = 14
    rsi_period: int = 14
    bb_window: int = 60
    momentum_spans_minutes: list[int] = msgspec.field(default_factory=lambda: [15, 60, 240])
    rv_short_minutes: int = 60
    rv_long_minutes: int = 1440
    volume_window_minutes: int = 1440
    normalisation_window_minutes: int = 1440
    normalisation_clip: float = 3.0
    warmup_minutes: int = 1440
    # systems
    bias_gain: float = 2.0
    strength_gain: float = 2.0
    adx_low: float = 15.0
    adx_high: float = 40.0
    trend_confidence_floor: float = 0.3
    volume_confidence_mult: float = 0.3
    volatility_confidence_mult: float = 0.3
    weekend_confidence_factor: float = 1.0
    system_weights: SystemWeightParams = msgspec.field(default_factory=SystemWeightParams)
    softmax_temperature: float = 0.25
    # initial weights (correlation-based)
    weight_training_days: int = 30
    weight_horizon_minutes: int = 60
    weight_sign_constrained: bool = True
    # conviction filter
    conviction_filter: ConvictionFilterParams = msgspec.field(
        default_factory=ConvictionFilterParams)
    # order planning
    grid_levels: int = 5
    baseline_spacing_multiplier: float = 0.75
    size_mult: float = 0.5
    imb_mult: float = 0.2
    vol_mult: float = 0.5
    spacing_conviction_mult: float = 0.5
    spacing_imbalance_mult: float = 0.4
    spacing_clamp_min: float = 0.25
    spacing_clamp_max: float = 3.0
    tp_conviction_mult: float = 1.0
    tp_cap_multiplier: float = 2.0
    spot_short_tp_tighten: float = 0.5
    sl_decay_fraction: float = 0.3
    sl_decay_bars: int = 5
    sl_hard_atr: float = 6.0
    sl_cooldown_bars: int = 12
    recenter_atr: float = 4.0
    respace_tolerance: float = 0.5
    proximity_atr: float = 1.0
    tp_trail_fraction: float = 0.8
    exit_retry_bars: int = 3
    qty_tolerance: float = 0.2
    price_tolerance_ticks: int = 0
    max_modifies: int = 5
    # baseline
    static_grid: StaticGridParams = msgspec.field(default_factory=StaticGridParams)

    def history_bars(self, base_interval_ms: int) -> int:
        """Closed base bars the strategy needs before it may trade: the longest feature window
        (warm-up, normalisation, realised vol, volume, ADX on trend bars) plus the entry
        filter's minimum history. The strategy actor asks for this much (+ a margin); the
        embedded exchange and the backtest provide at least that."""
        need_min = max(self.warmup_minutes, self.normalisation_window_minutes,
                       self.rv_long_minutes, self.volume_window_minutes,
                       self.trend_interval_minutes * 3 * self.adx_period)
        return need_min * 60_000 // base_interval_ms + self.conviction_filter.min_history_bars

    def validate(self, path: str = "$.strategy") -> list[str]:
        """Semantic errors, each ``"JSONPATH: message"``; empty when valid."""
        errs: list[str] = []

        def need(cond: bool, field: str, msg: str) -> None:
            if not cond:
                errs.append(f"{path}.{field}: {msg}")

        for name in ("atr_period", "ema_fast", "ema_slow", "adx_period", "rsi_period",
                     "grid_levels", "sl_decay_bars", "trend_interval_minutes"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(self.bb_window >= 2, "bb_window", "must be >= 2")
        need(self.ema_fast < self.ema_slow, "ema_fast", "must be < ema_slow")
        need(len(self.momentum_spans_minutes) == 3
             and all(s >= 1 for s in self.momentum_spans_minutes),
             "momentum_spans_minutes", "must be three spans >= 1 minute")
        for name in ("rv_short_minutes", "rv_long_minutes", "volume_window_minutes",
                     "normalisation_window_minutes", "weight_horizon_minutes"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(self.rv_short_minutes < self.rv_long_minutes, "rv_short_minutes",
             "must be < rv_long_minutes")
        need(self.warmup_minutes >= 0, "warmup_minutes", "must be >= 0")
        need(self.weight_training_days >= 1, "weight_training_days", "must be >= 1")
        need(self.normalisation_clip > 0, "normalisation_clip", "must be > 0")
        for name in ("bias_gain", "strength_gain", "softmax_temperature"):
            need(getattr(self, name) > 0, name, "must be > 0")
        need(0 <= self.adx_low < self.adx_high <= 100, "adx_low",
             "must satisfy 0 <= adx_low < adx_high <= 100")
        for name in ("trend_confidence_floor", "volume_confidence_mult",
                     "volatility_confidence_mult", "weekend_confidence_factor",
                     "sl_decay_fraction", "spot_short_tp_tighten", "qty_tolerance",
                     "respace_tolerance", "tp_trail_fraction"):
            need(0 <= getattr(self, name) <= 1, name, "must be in [0, 1]")
        sw = self.system_weights
        for name in ("w_up", "w_neu_long", "v_down", "v_neu_short"):
            need(getattr(sw, name) >= 0, f"system_weights.{name}", "must be >= 0")
        need(sw.w_up + sw.w_neu_long <= 1 + 1e-12, "system_weights.w_up",
             "w_up + w_neu_long must be <= 1 (keeps L in [0, 1])")
        need(sw.v_down + sw.v_neu_short <= 1 + 1e-12, "system_weights.v_down",
             "v_down + v_neu_short must be <= 1 (keeps S in [0, 1])")
        cf = self.conviction_filter
        need(0 <= cf.percentile_threshold <= 100, "conviction_filter.percentile_threshold",
             "must be in [0, 100]")
        need(cf.window_bars >= 1, "conviction_filter.window_bars", "must be >= 1")
        need(0 <= cf.min_history_bars <= cf.window_bars, "conviction_filter.min_history_bars",
             "must be in [0, window_bars]")
        need(0 <= cf.min_conviction <= 1, "conviction_filter.min_conviction", "must be in [0, 1]")
        for name in ("baseline_spacing_multiplier", "spacing_clamp_min", "tp_cap_multiplier",
                     "sl_hard_atr", "recenter_atr"):
            need(getattr(self, name) > 0, name, "must be > 0")
        need(self.spacing_clamp_min <= self.spacing_clamp_max, "spacing_clamp_max",
             "must be >= spacing_clamp_min")
        need(self.tp_cap_multiplier >= 1, "tp_cap_multiplier", "must be >= 1")
        for name in ("size_mult", "vol_mult", "spacing_conviction_mult", "tp_conviction_mult",
                     "proximity_atr"):
            need(getattr(self, name) >= 0, name, "must be >= 0")
        need(0 <= self.imb_mult < 1, "imb_mult", "must be in [0, 1) (keeps sizes positive)")
        need(0 <= self.spacing_imbalance_mult < 1, "spacing_imbalance_mult",
             "must be in [0, 1) (keeps spacing positive)")
        need(self.exit_retry_bars >= 1, "exit_retry_bars", "must be >= 1")
        need(self.sl_cooldown_bars >= 0, "sl_cooldown_bars", "must be >= 0")
        need(self.price_tolerance_ticks >= 0, "price_tolerance_ticks", "must be >= 0")
        need(self.max_modifies >= 0, "max_modifies", "must be >= 0")
        sg = self.static_grid
        need(0 < sg.spacing_pct < 0.5, "static_grid.spacing_pct", "must be in (0, 0.5)")
        need(sg.levels >= 1, "static_grid.levels", "must be >= 1")
        need(sg.order_quote >= 0, "static_grid.order_quote", "must be >= 0")
        need(0 <= sg.order_fraction <= 1, "static_grid.order_fraction", "must be in [0, 1]")
        return errs
