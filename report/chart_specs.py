"""The report's charts as data: ``chart_jobs(chart)`` turns the chart data of
``report.analysis.analyse`` into one small, picklable spec per PNG (long series reduced to a
min/max envelope of at most ~``MAX_POINTS`` points, so spikes stay visible; every fill counted,
markers thinned beyond ``MAX_MARKERS`` per side; conviction as a rolling mean and band).
``report.charts`` draws the specs (matplotlib), in-process or in worker processes.

A spec is ``{"size": (w, h), "panels": [panel, ...]}``, panels stacked on one time axis; a
panel has ``lines``, ``scatter``, ``bands``, ``bars``, ``hlines``, ``title``, ``ylabel``,
``ylim``, ``legend``, ``ratio`` (see ``report.charts.figure``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from models import metrics as mx

MAX_POINTS = 2000
MAX_MARKERS = 400  # fill markers per side on a price chart; more are thinned evenly
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
# bin widths for fill counts and conviction bands: the smallest giving at most ~N bins
_STEPS = (HOUR_MS, 2 * HOUR_MS, 4 * HOUR_MS, 6 * HOUR_MS, 12 * HOUR_MS, DAY_MS, 2 * DAY_MS,
          4 * DAY_MS, 7 * DAY_MS, 14 * DAY_MS, 28 * DAY_MS)
BUY, SELL, LONG, SHORT = "#2ca02c", "#d62728", "#2ca02c", "#d62728"


def envelope(t: Sequence[int] | np.ndarray, v: Sequence[float] | np.ndarray,
             n: int = MAX_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ~n points of a series: per bucket of consecutive samples its first, minimum,
    maximum and last sample (in time order: spikes and the level a step ends on both stay),
    plus the first and last sample; shorter series unchanged."""
    ta = np.asarray(t, dtype=np.int64)
    va = np.asarray(v, dtype=float)
    size = len(ta)
    if size <= n:
        return ta, va
    buckets = max(1, n // 4)
    k = -(-size // buckets)
    pad = buckets * k - size
    vv = np.concatenate([va, np.full(pad, va[-1])]) if pad else va
    grid = vv.reshape(buckets, k)
    with np.errstate(invalid="ignore"):
        lo = np.nanargmin(np.where(np.isnan(grid), np.inf, grid), axis=1)
        hi = np.nanargmax(np.where(np.isnan(grid), -np.inf, grid), axis=1)
    base = np.arange(buckets) * k
    idx = np.concatenate([base, base + lo, base + hi, base + k - 1, [0, size - 1]])
    idx = np.unique(np.minimum(idx, size - 1))
    return ta[idx], va[idx]


def bin_width(span_ms: int, bins: int) -> int:
    """The smallest of 1 h, 2 h, 4 h, 6 h, 12 h, 1 d, 2 d, 4 d, 1 w, 2 w, 4 w that cuts
    ``span_ms`` into at most ``bins`` bins."""
    for step in _STEPS:
        if span_ms / step <= bins:
            return step
    return _STEPS[-1]


def step_label(step_ms: int) -> str:
    """``6 h``, ``1 d``, ``1 w``..."""
    if step_ms % (7 * DAY_MS) == 0:
        return f"{step_ms // (7 * DAY_MS)} w"
    if step_ms % DAY_MS == 0:
        return f"{step_ms // DAY_MS} d"
    return f"{step_ms // HOUR_MS} h"


def rolling_band(t: Any, v: Any, window_ms: int, points: int = 400,
                 q: tuple[float, float] = (0.1, 0.9), max_window: int = 1024
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(times, mean, low quantile, high quantile) of ``v`` over a centred time window of
    ``window_ms``, evaluated at up to ``points`` evenly spaced times (the window is cut
    at the ends of the series); times whose window holds no finite sample are left out.
    The mean uses every sample; the quantiles (numpy's linear method) every sample while a
    window holds at most ``max_window``, else every k-th (a chart's band, not a statistic)."""
    ta = np.asarray(t, dtype=np.int64)
    va = np.asarray(v, dtype=float)
    ok = np.isfinite(va)
    ta, va = ta[ok], va[ok]
    if not ta.size:
        e = np.zeros(0)
        return np.zeros(0, dtype=np.int64), e, e, e
    order = np.argsort(ta, kind="stable")
    ta, va = ta[order], va[order]
    at = np.unique(np.linspace(ta[0], ta[-1], min(points, ta.size)).astype(np.int64))
    half = window_ms // 2
    lo_i = np.searchsorted(ta, at - half, side="left")
    hi_i = np.searchsorted(ta, at + half, side="right")
    keep = hi_i > lo_i
    at, lo_i, hi_i = at[keep], lo_i[keep], hi_i[keep]
    csum = np.r_[0.0, np.cumsum(va)]
    mean = (csum[hi_i] - csum[lo_i]) / (hi_i - lo_i)
    k = max(1, -(-int((hi_i - lo_i).max()) // max_window))
    qt, qv = (ta[::k], va[::k]) if k > 1 else (ta, va)
    lo_q = np.searchsorted(qt, at - half, side="left")
    n = np.maximum(np.searchsorted(qt, at + half, side="right") - lo_q, 1)
    width = int(n.max())
    col = np.arange(width)
    grid = qv[np.minimum(lo_q[:, None] + col, qv.size - 1)]
    grid = np.sort(np.where(col < n[:, None], grid, np.inf), axis=1)  # padding sorts last
    rows = np.arange(at.size)
    bands = []
    for x in q:  # numpy's "linear" quantile of each row's first n values
        pos = x * (n - 1)
        i0 = np.floor(pos).astype(np.int64)
        i1 = np.minimum(i0 + 1, n - 1)
        g0, g1 = grid[rows, i0], grid[rows, i1]
        bands.append(g0 + (pos - i0) * (g1 - g0))
    return at, mean, bands[0], bands[1]


def _line(t: Any, v: Any, **style: Any) -> dict[str, Any]:
    et, ev = envelope(t, v)
    return {"t": et, "v": ev, **style}


def _thin(t: np.ndarray, v: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """At most n evenly spaced samples of (t, v) and the stride used (1: all)."""
    k = -(-len(t) // n) if len(t) > n else 1
    return t[::k], v[::k], k


def _counts(t: np.ndarray, step: int, sign: int, color: str) -> dict[str, Any]:
    """Fills per ``step`` bin (every bin from the first to the last, empty ones 0) as a step
    outline: one polygon, not one bar artist per bin."""
    b = t // step
    first = int(b.min())
    c = np.bincount(b - first).astype(float)
    edges = (first + np.arange(c.size + 1, dtype=np.int64)) * step
    return {"t": edges, "v": sign * np.r_[c, c[-1]], "color": color}


def _price_job(name: str, pt: Any, pv: Any, fills: Sequence[tuple[int, str, float]],
               quote: str = "") -> dict[str, Any]:
    """Price with fill markers (thinned evenly beyond MAX_MARKERS per side) above a bar panel
    of fills per time bin (buys up, sells down), so activity reads at any fill count."""
    lines = [_line(pt, pv, color="#333", lw=0.8, label="close", z=2)] if len(pt) else []
    scatter, bars = [], []
    ft = np.asarray([f[0] for f in fills], dtype=np.int64)
    side = np.asarray([f[1] for f in fills], dtype=object)
    fp = np.asarray([f[2] for f in fills], dtype=float)
    t_all = np.concatenate([np.asarray(pt, dtype=np.int64), ft])
    span = int(t_all.max() - t_all.min()) if t_all.size else 0
    step = bin_width(span, 150)
    total = 0
    for key, mk, col, sign in (("BUY", "^", BUY, 1), ("SELL", "v", SELL, -1)):
        sel = side == key
        n = int(sel.sum())
        total += n
        if not n:
            continue
        st, sv, k = _thin(ft[sel], fp[sel], MAX_MARKERS)
        shown = "" if k == 1 else f", 1 in {k} shown"
        size = 12 if k > 1 else 16 if n > 100 else 30
        scatter.append({"t": st, "v": sv, "marker": mk, "color": col, "size": size,
                        "label": f"{key.lower()}s ({n:,}{shown})"})
        bars.append(_counts(ft[sel], step, sign, col))
    title = f"{name}: price and fills"
    if not total:
        title += " (no fills)"
    panels = [{"lines": lines, "scatter": scatter, "legend": True, "title": title,
               "ylabel": f"price ({quote})" if quote else "price",
               "ratio": 3}]
    if bars:
        panels.append({"bars": bars, "ylabel": f"fills / {step_label(step)}", "ratio": 1,
                       "hlines": [(0.0, "#555", 0.6, "-")], "abs_ticks": True})
    return {"size": (11, 5), "panels": panels}


def _conviction_job(name: str, t: Any, lv: Any, sv: Any) -> dict[str, Any]:
    """L and S as a rolling mean with its 10-90 % band (the raw series is a per-bar signal:
    drawn as is it is a solid block of colour)."""
    ta = np.asarray(t, dtype=np.int64)
    span = int(ta.max() - ta.min()) if ta.size else 0
    window = bin_width(span, 120)
    lines, bands = [], []
    for v, col, label in ((lv, LONG, "L (long)"), (sv, SHORT, "S (short)")):
        bt, mean, lo, hi = rolling_band(ta, v, window)
        lines.append({"t": bt, "v": mean, "color": col, "lw": 1.3, "label": label})
        bands.append({"t": bt, "lo": lo, "hi": hi, "color": col, "alpha": 0.10, "edge": True})
    top = max([float(np.nanmax(b["hi"])) for b in bands if b["hi"].size] or [1.0])
    return {"size": (11, 3), "panels": [{
        "title": f"{name}: conviction (rolling {step_label(window)} mean, band 10-90 %)",
        "lines": lines, "bands": bands, "legend": True,
        "ylim": (0.0, min(1.02, max(0.05, top * 1.1)))}]}


def chart_jobs(chart: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(file name, spec) per chart, the biggest first: equity.png, drawdown.png,
    symbol_pnl.png, price_<SYM>.png (fills marked, fills per bin below), conviction_<SYM>.png
    (L and S: binned mean and 10-90 % band)."""
    quote = str(chart.get("quote") or "quote")
    jobs: list[tuple[str, dict[str, Any]]] = []
    eq_t, eq_v = chart["equity"]
    lines = [_line(eq_t, eq_v, label="equity", color="#1f77b4", lw=1.2, z=3, steps=True)]
    bt, bv = chart["benchmark"]
    if len(bt):
        lines.append(_line(bt, bv, label="buy & hold (weighted basket)", color="#999", lw=1))
    jobs.append(("equity.png", {"size": (11, 4), "panels": [{
        "title": "Portfolio equity", "ylabel": quote, "lines": lines, "legend": True}]}))

    dd = np.asarray(mx.drawdown_series(eq_v), dtype=float) * 100
    lvls = list(chart.get("dd_levels") or [])
    marks = " / ".join(f"{lv * 100:g}" for lv in lvls)
    jobs.append(("drawdown.png", {"size": (11, 3), "panels": [{
        "title": f"Drawdown (%), brake levels at {marks} %" if lvls else "Drawdown (%)",
        "lines": [_line(eq_t, dd, color="#d62728", lw=0.8, steps=True, fill=True)],
        "hlines": [(lv * 100, "#555", 0.6, "--") for lv in lvls], "ylabel": "%"}]}))

    if chart["symbol_curves"]:
        lines = []
        for name, (ct, cv) in chart["symbol_curves"].items():
            base = chart["bases"][name]
            lines.append(_line(ct, np.asarray(cv, dtype=float) - base, label=name, lw=1,
                               steps=True))
        jobs.append(("symbol_pnl.png", {"size": (11, 3.5), "panels": [{
            "title": "PnL by symbol (realized - fees + funding + unrealized)",
            "ylabel": quote, "lines": lines, "hlines": [(0.0, "#555", 0.6, "-")],
            "legend": True}]}))

    for name, (pt, pv) in chart["prices"].items():
        fills = chart["fills"].get(name) or []
        if not len(pt) and not fills:
            continue
        jobs.append((f"price_{name}.png", _price_job(name, pt, pv, fills, quote)))

    for name, (t, lv, sv) in chart["conviction"].items():
        if not len(t):
            continue
        jobs.append((f"conviction_{name}.png", _conviction_job(name, t, lv, sv)))
    jobs.sort(key=lambda j: -_weight(j[1]))
    return jobs


def _weight(spec: Mapping[str, Any]) -> int:
    return sum(sum(len(x["t"]) for x in p.get("lines", ()))
               + 4 * sum(len(x["t"]) for x in p.get("scatter", ()))
               + 2 * sum(len(x["t"]) for x in p.get("bands", ()))
               + sum(len(x["t"]) for x in p.get("bars", ()))
               for p in spec.get("panels", ()))


__all__ = ["MAX_MARKERS", "MAX_POINTS", "bin_width", "chart_jobs", "envelope", "rolling_band",
           "step_label"]
