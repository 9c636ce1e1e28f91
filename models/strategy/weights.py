"""Feature weights of the three systems: defaults, correlation-based fit, softmax system weights.

``fit_initial_weights`` runs the same incremental feature engine over a training window (30 days
before the start by default), then for every system sets w_i proportional to the Spearman
correlation of normalised feature i with the system's target over the forward horizon, with
sum |w| = 1. Targets: UP = max(forward return, 0), DOWN = min(forward return, 0), NEU = forward
return. With ``weight_sign_constrained`` a weight whose sign contradicts the system's design
(e.g. negative momentum weight in UP) is set to 0, so b_up > 0 keeps meaning "bullish
continuation"; a system left with no weight falls back to its defaults.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np

from models.strategy.features import (
    F_CME,
    F_FUND,
    F_FUNDG,
    F_MOM_L,
    F_MOM_M,
    F_MOM_S,
    F_RSI,
    F_STRETCH,
    F_TGAP,
    F_TSLOPE,
    FEATURE_NAMES,
    NF,
    FeatureEngine,
    bars_for,
)
from models.strategy.params import StrategyParams

SYSTEMS = ("up", "down", "neu")
# design sign of each feature per system: +1 / -1 constrained, 0 free, None = not used
_CONT = {F_MOM_S: 1, F_MOM_M: 1, F_MOM_L: 1, F_TGAP: 1, F_TSLOPE: 1, F_FUND: -1, F_FUNDG: -1,
         F_CME: 0}
PRIOR_SIGN: dict[str, dict[int, int]] = {
    "up": dict(_CONT),
    "down": dict(_CONT),
    "neu": {F_STRETCH: -1, F_RSI: -1},
}


def _vec(d: dict[int, float]) -> list[float]:
    v = [0.0] * NF
    for i, w in d.items():
        v[i] = w
    return v


DEFAULT_UP = _vec({F_MOM_S: 0.10, F_MOM_M: 0.20, F_MOM_L: 0.20, F_TGAP: 0.25, F_TSLOPE: 0.15,
                   F_FUND: -0.05, F_FUNDG: -0.05})
DEFAULT_DOWN = _vec({F_MOM_S: 0.25, F_MOM_M: 0.20, F_MOM_L: 0.10, F_TGAP: 0.15, F_TSLOPE: 0.20,
                     F_FUND: -0.05, F_FUNDG: -0.05})
DEFAULT_NEU = _vec({F_STRETCH: -0.6, F_RSI: -0.4})


class Weights(msgspec.Struct, frozen=True, kw_only=True):
    """Per-system feature weights over ``feature_names`` (persist with ``to_bytes``)."""

    feature_names: list[str] = msgspec.field(default_factory=lambda: list(FEATURE_NAMES))
    up: list[float] = msgspec.field(default_factory=lambda: list(DEFAULT_UP))
    down: list[float] = msgspec.field(default_factory=lambda: list(DEFAULT_DOWN))
    neu: list[float] = msgspec.field(default_factory=lambda: list(DEFAULT_NEU))
    source: str = "default"
    trained_from_ms: int = 0
    trained_to_ms: int = 0
    n_samples: int = 0
    correlations: dict[str, list[float]] = {}

    def to_bytes(self) -> bytes:
        """msgpack encoding."""
        return msgspec.msgpack.encode(self)

    @classmethod
    def from_bytes(cls, blob: bytes) -> Weights:
        """Decode ``to_bytes`` output; rejects weights for another feature set."""
        w = msgspec.msgpack.decode(blob, type=cls)
        if tuple(w.feature_names) != FEATURE_NAMES:
            raise ValueError("weights were fitted for a different feature set")
        return w


def default_weights() -> Weights:
    """The hand-set weights used before any fit."""
    return Weights()


def softmax_system_weights(scores: Sequence[float], temperature: float) -> list[float]:
    """Softmax of per-system performance scores (for the weekly system-weight adaptation);
    equal scores give equal weights."""
    m = max(scores)
    ex = [math.exp((s - m) / temperature) for s in scores]
    t = sum(ex)
    return [e / t for e in ex]


def training_window(start_ms: int, params: StrategyParams) -> tuple[int, int]:
    """[from, to) of the weight-training window ending at ``start_ms``."""
    return start_ms - params.weight_training_days * 86_400_000, start_ms


def _columns(bars: Any) -> tuple[np.ndarray, ...]:
    """Accept a sequence of ``Bar``, an (N, 6) array, or an object with column attributes."""
    if hasattr(bars, "close") and hasattr(bars, "open_time"):
        return tuple(np.asarray(getattr(bars, k)) for k in
                     ("open_time", "open", "high", "low", "close", "volume"))
    if isinstance(bars, np.ndarray):
        return tuple(bars[:, i] for i in range(6))
    rows = list(bars)
    return (np.array([b.open_time_ms for b in rows], dtype=np.int64),
            *(np.array([getattr(b, k) for b in rows], dtype=float)
              for k in ("open", "high", "low", "close", "volume")))


def feature_matrix(bars: Any, params: StrategyParams,
                   base_interval_ms: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the feature engine over ``bars``; return (open_time, close, features[N, NF]) for
    the warm bars only."""
    t, o, h, lo, c, v = _columns(bars)
    eng = FeatureEngine(params, base_interval_ms)
    out_t: list[int] = []
    out_c: list[float] = []
    out_f: list[list[float]] = []
    for k in range(len(t)):
        warm = eng.update(int(t[k]), float(o[k]), float(h[k]), float(lo[k]), float(c[k]),
                          float(v[k]))
        if warm:
            out_t.append(int(t[k]))
            out_c.append(float(c[k]))
            out_f.append(list(eng.feats))
    return (np.array(out_t, dtype=np.int64), np.array(out_c),
            np.array(out_f).reshape(len(out_f), NF))


def fit_initial_weights(bars: Any, params: StrategyParams,
                        base_interval_ms: int | None = None) -> Weights:
    """Correlation-based weights from a training window of closed bars (see module doc)."""
    # lazy: importing scipy.stats takes seconds, and only this offline fit needs it (not
    # every strategy actor process, nor a restart)
    from scipy.stats import spearmanr

    t, _o, _h, _l, c, _v = _columns(bars)
    if base_interval_ms is None:
        base_interval_ms = int(np.median(np.diff(t))) if len(t) > 1 else 60_000
    ft, fc, fx = feature_matrix(bars, params, base_interval_ms)
    h = bars_for(params.weight_horizon_minutes, base_interval_ms)
    n = len(fc) - h
    if n < 30:
        raise ValueError(f"not enough warm bars to fit weights ({len(fc)} warm, horizon {h})")
    fwd = np.log(fc[h:] / fc[:-h])
    x = fx[:n]
    targets = {"up": np.maximum(fwd, 0.0), "down": np.minimum(fwd, 0.0), "neu": fwd}
    out: dict[str, list[float]] = {}
    corrs: dict[str, list[float]] = {}
    defaults = {"up": DEFAULT_UP, "down": DEFAULT_DOWN, "neu": DEFAULT_NEU}
    for s in SYSTEMS:
        w = [0.0] * NF
        cs = [0.0] * NF
        for i, prior in PRIOR_SIGN[s].items():
            col = x[:, i]
            if np.all(col == col[0]):
                continue
            rho = float(spearmanr(col, targets[s]).statistic)
            if not math.isfinite(rho):
                continue
            cs[i] = rho
            if params.weight_sign_constrained and prior and rho * prior < 0:
                continue
            w[i] = rho
        tot = sum(abs(a) for a in w)
        out[s] = [a / tot for a in w] if tot > 0 else list(defaults[s])
        corrs[s] = cs
    return Weights(up=out["up"], down=out["down"], neu=out["neu"], source="spearman",
                   trained_from_ms=int(ft[0]), trained_to_ms=int(ft[-1]), n_samples=int(n),
                   correlations=corrs)
