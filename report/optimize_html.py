"""``optimize.html``: a study's history, parameter importances, Pareto front (multi-objective),
the best trial's fold figures, neighbours and walk-forward equity — one self-contained page
(matplotlib PNGs inline, no script, no external resource). Takes plain data only."""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def charts(trials: Sequence[Mapping[str, Any]], importances: Mapping[str, float],
           best_daily: Sequence[float], pareto: Sequence[Sequence[float]] | None
           ) -> dict[str, str]:
    """The page's charts as data URIs: history, importances, equity, pareto."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, str] = {}
    xs = [t["number"] for t in trials if t.get("score") is not None]
    ys = [float(t["score"]) for t in trials if t.get("score") is not None]
    if xs:
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.scatter(xs, ys, s=12, color="#4e79a7", label="trial score")
        best, run = [], float("-inf")
        for y in ys:
            run = max(run, y)
            best.append(run)
        ax.plot(xs, best, color="#e15759", label="best so far")
        ax.set_xlabel("trial")
        ax.set_ylabel("score (mean − sd of fold return, %)")
        ax.legend(loc="lower right", fontsize=8)
        ax.grid(alpha=0.3)
        out["history"] = _png(fig)
    if importances:
        items = sorted(importances.items(), key=lambda kv: kv[1])
        fig, ax = plt.subplots(figsize=(8, 0.4 * len(items) + 1))
        ax.barh([k for k, _ in items], [v for _, v in items], color="#59a14f")
        ax.set_xlabel("importance (PED-ANOVA)")
        out["importances"] = _png(fig)
    if best_daily:
        eq, v = [], 1.0
        for r in best_daily:
            v *= 1.0 + r
            eq.append(100.0 * (v - 1.0))
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(range(1, len(eq) + 1), eq, color="#4e79a7")
        ax.axhline(0, color="#888", lw=0.8)
        ax.set_xlabel("test day (folds chained)")
        ax.set_ylabel("return %")
        ax.grid(alpha=0.3)
        out["equity"] = _png(fig)
    if pareto:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.scatter([p[1] for p in pareto], [p[0] for p in pareto], color="#e15759")
        ax.set_xlabel("worst fold max drawdown %")
        ax.set_ylabel("mean fold return %")
        ax.grid(alpha=0.3)
        out["pareto"] = _png(fig)
    return out


def write_html(out: Path, summary: Mapping[str, Any], trials: Sequence[Mapping[str, Any]],
               importances: Mapping[str, float]) -> Path:
    """Render ``optimize.html`` into ``out``."""
    import jinja2

    best = summary.get("best") or {}
    front = summary.get("pareto_front")
    pics = charts(trials, importances, best.get("daily_returns") or [],
                  [f["values"] for f in front] if front else None)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=True, trim_blocks=True, lstrip_blocks=True)
    html = env.get_template("optimize.html.j2").render(s=summary, best=best, charts=pics,
                                                       importances=importances)
    path = out / "optimize.html"
    path.write_text(html)
    return path
