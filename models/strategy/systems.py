"""The three systems (UP, DOWN, NEUTRAL): bias b in [-1, 1] and heuristic confidence c in [0, 1].

b_s = tanh(bias_gain * x_s) with x_s = sum_i w_s,i f_i. Heuristic confidence (phase 1):
c_s = share_s * (1 - exp(-strength_gain |x_s|)) * regime_s, where share_s is the |w|-weighted
share of the (non-zero) features whose contribution agrees in sign with x_s, and regime_s
multiplies a trend-strength factor (ADX for UP/DOWN, its complement for NEU), a volume factor
(UP/DOWN) or a volatility-expansion penalty (NEU), and the weekend factor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


class SystemSpec:
    """Sparse weight vector of one system (indices and weights of its non-zero features)."""

    __slots__ = ("idx", "w", "absw", "pairs")

    def __init__(self, weights: Sequence[float]) -> None:
        self.idx = tuple(i for i, w in enumerate(weights) if w != 0.0)
        self.w = tuple(float(weights[i]) for i in self.idx)
        self.absw = tuple(abs(w) for w in self.w)
        self.pairs = tuple(zip(self.idx, self.w, strict=True))


def bias_share(spec: SystemSpec, f: Sequence[float], bias_gain: float,
               strength_gain: float) -> tuple[float, float, float]:
    """Return (b, share * strength, x) for feature vector ``f``."""
    conts = [w * f[i] for i, w in spec.pairs]
    x = 0.0
    for cv in conts:
        x += cv
    if x == 0.0:
        return 0.0, 0.0, x
    agree = tot = 0.0
    if x > 0.0:
        for cv, aw in zip(conts, spec.absw, strict=True):
            if cv != 0.0:
                tot += aw
                if cv > 0.0:
                    agree += aw
        ax = x
    else:
        for cv, aw in zip(conts, spec.absw, strict=True):
            if cv != 0.0:
                tot += aw
                if cv < 0.0:
                    agree += aw
        ax = -x
    return math.tanh(bias_gain * x), (agree / tot) * (1.0 - math.exp(-strength_gain * ax)), x


def adx_factor(adx: float, lo: float, hi: float) -> float:
    """ADX mapped linearly to [0, 1] between ``lo`` and ``hi`` (0 while ADX is unknown)."""
    if adx != adx:
        return 0.0
    a = (adx - lo) / (hi - lo)
    return 0.0 if a < 0.0 else (1.0 if a > 1.0 else a)


def trend_regime(adx_f: float, floor: float) -> tuple[float, float]:
    """(factor for UP/DOWN, factor for NEU) from the ADX factor."""
    return floor + (1.0 - floor) * adx_f, floor + (1.0 - floor) * (1.0 - adx_f)


def volume_factor(f_volume: float, mult: float) -> float:
    """UP/DOWN confidence factor in (0, 1]: high relative volume confirms continuation."""
    return (1.0 + mult * f_volume) / (1.0 + mult)


def volatility_penalty(f_vol_ratio: float, mult: float) -> float:
    """NEU confidence factor in (0, 1]: expanding volatility weakens mean reversion."""
    return 1.0 - mult * (f_vol_ratio if f_vol_ratio > 0.0 else 0.0)
