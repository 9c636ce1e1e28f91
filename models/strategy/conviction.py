"""Ensemble conviction (plan Appendix A, sign-consistent reading of strategy.md) and the
percentile entry filter.

L = w1 * max(b_up, 0) * c_up + w2 * max(b_neu, 0) * c_neu
S = v1 * max(-b_down, 0) * c_down + v2 * max(-b_neu, 0) * c_neu
"""

from __future__ import annotations

from models.strategy.indicators import RollingPercentile
from models.strategy.params import ConvictionFilterParams, SystemWeightParams
from models.strategy.snapshot import Stateful


def conviction(b_up: float, c_up: float, b_down: float, c_down: float, b_neu: float,
               c_neu: float, sw: SystemWeightParams) -> tuple[float, float]:
    """Long and short conviction (L, S), both in [0, 1] when the weights sum to <= 1."""
    L = sw.w_up * (b_up if b_up > 0.0 else 0.0) * c_up \
        + sw.w_neu_long * (b_neu if b_neu > 0.0 else 0.0) * c_neu
    S = sw.v_down * (-b_down if b_down < 0.0 else 0.0) * c_down \
        + sw.v_neu_short * (-b_neu if b_neu < 0.0 else 0.0) * c_neu
    return L, S


class ConvictionFilter(Stateful):
    """Per side: is the current conviction at or above the configured percentile of the side's
    own rolling history (history *before* the current bar) and at least ``min_conviction``?"""

    __slots__ = ("pct", "min_hist", "min_conv", "hist_l", "hist_s")

    def __init__(self, p: ConvictionFilterParams) -> None:
        self.pct = p.percentile_threshold
        self.min_hist = p.min_history_bars
        self.min_conv = p.min_conviction
        self.hist_l = RollingPercentile(p.window_bars)
        self.hist_s = RollingPercentile(p.window_bars)

    def update(self, L: float, S: float) -> tuple[bool, bool]:
        """Test L and S against their histories, then add them; return (long_ok, short_ok)."""
        hl, hs = self.hist_l, self.hist_s
        long_ok, short_ok = self._ok(hl, L), self._ok(hs, S)
        hl.push(L)
        hs.push(S)
        return long_ok, short_ok

    def _ok(self, h: RollingPercentile, x: float) -> bool:
        if len(h) < self.min_hist or len(h) == 0 or x < self.min_conv:
            return False
        return x >= h.threshold(self.pct)

    def thresholds(self) -> tuple[float, float]:
        """Current percentile thresholds of (L, S)."""
        return self.hist_l.threshold(self.pct), self.hist_s.threshold(self.pct)
