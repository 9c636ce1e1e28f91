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

    __slots__ = ("idx", "w", "absw", "pairs", "triples")

    def __init__(self, weights: Sequence[float]) -> None:
        self.idx = tuple(i for i, w in enumerate(weights) if w != 0.0)
        self.w = tuple(float(weights[i]) for i in self.idx)
        self.absw = tuple(abs(w) for w in self.w)
        self.pairs = tuple(zip(self.idx, self.w, strict=True))
        self.triples = tuple(zip(self.idx, self.w, self.absw, strict=True))


def bias_share(spec: SystemSpec, f: Sequence[float], bias_gain: float,
               strength_gain: float) -> tuple[float, float, float]:
    """Return (b, share * strength, x) for feature vector ``f``.

    One pass: x sums the contributions in index order; the |w| of the non-zero contributions
    (``tot``) and of the positive and negative ones accumulate in the same order, so ``tot``
    and the agreeing share are the same sums as a second pass over the agreeing ones."""
    x = tot = pos = neg = 0.0
    for i, w, aw in spec.triples:
        cv = w * f[i]
        x += cv
        if cv > 0.0:
            tot += aw
            pos += aw
        elif cv < 0.0:
            tot += aw
            neg += aw
        elif cv != 0.0:  # nan: counted in the total, agrees with neither sign
            tot += aw
    if x == 0.0:
        return 0.0, 0.0, x
    if x > 0.0:
        return math.tanh(bias_gain * x), (pos / tot) * (1.0 - math.exp(-strength_gain * x)), x
    return math.tanh(bias_gain * x), (neg / tot) * (1.0 - math.exp(-strength_gain * -x)), x


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
