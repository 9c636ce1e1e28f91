"""The optimiser's decisions, pure: the search space (parsing and validation against the
config), applying a trial's parameters to a config document, a fold's figures, the trial
score, the deflated Sharpe ratio of the best trial and its neighbours.

The score of a trial is computed from walk-forward *test* folds only (``backtest.optimize``):
``mean(fold returns) − sd(fold returns)`` in percent, minus ``INFEASIBLE_PENALTY`` when any fold's
maximum drawdown is worse than the limit, minus ``FEW_TRADES_PENALTY`` × the share of folds with
fewer trades than asked. A strategy that earns in one fold and loses in the others scores low.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

#: subtracted from the score of a trial whose test fold breaks the drawdown limit
INFEASIBLE_PENALTY = 100.0
#: subtracted × the share of folds with too few trades
FEW_TRADES_PENALTY = 10.0
EULER_GAMMA = 0.5772156649015329


class SearchSpaceError(ValueError):
    """The search space file is invalid; ``errors`` lists every problem."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True)
class Param:
    """One dimension: a number in ``[low, high]`` (``log``/``int``) or one of ``choices``."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON form (as in the file)."""
        if self.choices:
            return {"name": self.name, "choices": list(self.choices)}
        d: dict[str, Any] = {"name": self.name, "low": self.low, "high": self.high}
        if self.log:
            d["log"] = True
        if self.integer:
            d["int"] = True
        return d


def _leaf(doc: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = doc
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def parse_space(raw: Any, config_doc: Mapping[str, Any]) -> list[Param]:
    """The parameters of a search-space document ``{"parameters": [...]}``, each checked
    against ``config_doc`` (the config as JSON-able data): the field must exist and be a
    number (or, for ``choices``, of a choice's type). Raises ``SearchSpaceError`` with every
    problem at once."""
    errors: list[str] = []
    items = raw.get("parameters") if isinstance(raw, Mapping) else None
    if not isinstance(items, list) or not items:
        raise SearchSpaceError(['needs a non-empty "parameters" list'])
    out: list[Param] = []
    seen: set[str] = set()
    for i, it in enumerate(items):
        where = f"parameters[{i}]"
        if not isinstance(it, Mapping) or not isinstance(it.get("name"), str):
            errors.append(f"{where}: needs a \"name\" (a dotted config path)")
            continue
        name = it["name"]
        where = f"{where} ({name})"
        unknown = set(it) - {"name", "low", "high", "log", "int", "choices"}
        if unknown:
            errors.append(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
        if name in seen:
            errors.append(f"{where}: listed twice")
        seen.add(name)
        found, current = _leaf(config_doc, name)
        if not found:
            errors.append(f"{where}: no such config field")
            continue
        if "choices" in it:
            ch = it["choices"]
            if not isinstance(ch, list) or len(ch) < 2:
                errors.append(f"{where}: choices must be a list of at least 2 values")
                continue
            if any(type(c) is not type(current) and not (_is_num(c) and _is_num(current))
                   for c in ch):
                errors.append(f"{where}: choices must be of the field's type "
                              f"({type(current).__name__})")
                continue
            out.append(Param(name, choices=tuple(ch)))
            continue
        low, high = it.get("low"), it.get("high")
        if not _is_num(current):
            errors.append(f"{where}: the field is a {type(current).__name__}, not a number "
                          "(use choices)")
            continue
        if not (_is_num(low) and _is_num(high)):
            errors.append(f"{where}: needs numeric low and high")
            continue
        integer = bool(it.get("int", False))
        log = bool(it.get("log", False))
        if not low < high:
            errors.append(f"{where}: low {low} must be below high {high}")
        if log and low <= 0:
            errors.append(f"{where}: a log range needs low > 0")
        if isinstance(current, int) and not integer:
            errors.append(f"{where}: the field is an integer: add \"int\": true")
        if integer and not (float(low).is_integer() and float(high).is_integer()):
            errors.append(f"{where}: an int range needs whole low and high")
        out.append(Param(name, float(low), float(high), log, integer))
    if errors:
        raise SearchSpaceError(errors)
    return out


def _is_num(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def apply_params(doc: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the config document with each dotted ``params`` field set."""
    out = copy.deepcopy(dict(doc))
    for name, value in params.items():
        node = out
        parts = name.split(".")
        for part in parts[:-1]:
            node = node[part]
        node[parts[-1]] = value
    return out


@dataclass(frozen=True)
class FoldFigures:
    """One test fold of one trial, net of fees and funding."""

    ret_pct: float
    max_dd_pct: float
    trades: int
    fees: float


def fold_figures(equity: Sequence[float], trades: int, fees: float) -> FoldFigures:
    """Return and maximum drawdown (both %) of an equity curve (first point: the start)."""
    if not equity:
        return FoldFigures(0.0, 0.0, trades, fees)
    peak, dd = equity[0], 0.0
    for v in equity:
        peak = max(peak, v)
        if peak > 0:
            dd = min(dd, v / peak - 1.0)
    ret = equity[-1] / equity[0] - 1.0 if equity[0] else 0.0
    return FoldFigures(100.0 * ret, 100.0 * dd, trades, fees)


def trial_score(folds: Sequence[FoldFigures], max_dd_pct: float = -15.0,
                min_trades: int = 10) -> tuple[float, bool]:
    """(score, feasible): mean − sd of fold returns (%), with the penalties (module doc)."""
    if not folds:
        return -INFEASIBLE_PENALTY, False
    rets = [f.ret_pct for f in folds]
    mean = sum(rets) / len(rets)
    sd = math.sqrt(sum((r - mean) ** 2 for r in rets) / len(rets))
    score = mean - sd
    feasible = all(f.max_dd_pct >= max_dd_pct for f in folds)
    if not feasible:
        score -= INFEASIBLE_PENALTY
    few = sum(f.trades < min_trades for f in folds) / len(folds)
    return score - FEW_TRADES_PENALTY * few, feasible


def sharpe(returns: Sequence[float]) -> float:
    """Per-period Sharpe ratio (mean / sd, sd with ddof 1); 0 for < 2 returns or sd 0."""
    n = len(returns)
    if n < 2:
        return 0.0
    m = sum(returns) / n
    var = sum((r - m) ** 2 for r in returns) / (n - 1)
    return m / math.sqrt(var) if var > 0 else 0.0


def deflated_sharpe(returns: Sequence[float], trial_sharpes: Sequence[float]) -> float:
    """Bailey & López de Prado's deflated Sharpe ratio: the probability that the best trial's
    per-period Sharpe (of ``returns``) beats the maximum expected from ``len(trial_sharpes)``
    unskilled trials with the observed dispersion of their Sharpe ratios, allowing for the
    returns' skew and kurtosis. NaN when there are too few returns or trials."""
    t, n = len(returns), len(trial_sharpes)
    if t < 3 or n < 2:
        return float("nan")
    sr = sharpe(returns)
    mean_sr = sum(trial_sharpes) / n
    var_sr = sum((s - mean_sr) ** 2 for s in trial_sharpes) / (n - 1)
    sr0 = math.sqrt(max(var_sr, 0.0)) * (
        (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n)
        + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e)))
    skew = float(stats.skew(returns))
    kurt = float(stats.kurtosis(returns, fisher=False))
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:
        return float("nan")
    return float(stats.norm.cdf((sr - sr0) * math.sqrt(t - 1) / math.sqrt(denom)))


def neighbours(best: Mapping[str, Any], others: Sequence[tuple[Mapping[str, Any], float]],
               space: Sequence[Param], k: int = 5) -> list[tuple[float, float]]:
    """The ``k`` completed trials nearest to ``best`` in the normalised search space:
    ``(distance, score)`` pairs, nearest first (categoricals: 0 if equal, else 1). A best point
    surrounded by much lower scores is a lucky spike, not a plateau."""
    def dist(p: Mapping[str, Any]) -> float:
        d = 0.0
        for prm in space:
            a, b = best.get(prm.name), p.get(prm.name)
            if prm.choices:
                d += 0.0 if a == b else 1.0
                continue
            if a is None or b is None:
                d += 1.0
                continue
            lo, hi = float(prm.low or 0.0), float(prm.high or 1.0)
            if prm.log:
                a, b, lo, hi = math.log(a), math.log(b), math.log(lo), math.log(hi)
            d += ((float(a) - float(b)) / (hi - lo)) ** 2
        return math.sqrt(d)
    ranked = sorted(((dist(p), s) for p, s in others if p != best), key=lambda x: x[0])
    return ranked[:k]
