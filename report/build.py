"""Performance report from the bot's JSON log: ``report.json``, ``report.html``, PNG charts.

``python run.py report LOGFILE --out DIR`` (``report.cli``) and the backtest driver
(``build_report``) read the same log events, so paper, live and backtest runs are judged by
the same numbers. Methods are in ``models.metrics`` and docs/REPORT.md.

API::

    build_report(out_dir, log_path=None, *, events=None, benchmark_prices=None, meta=None,
                 charts=True, overwrite_csv=False, pool=None) -> dict

* ``out_dir``: where ``report.json``, ``report.html``, the PNGs and ``trades.csv``/
  ``equity.csv`` are written (created if needed). Existing CSVs (the backtest's own) are kept
  unless ``overwrite_csv``; ``run.py report`` overwrites them except in the log's directory.
* ``log_path``: the run's ``gridbot.jsonl`` (a directory: every ``gridbot*.jsonl`` in it);
  or pass ``events`` instead: parsed records, or a ``ReportCollector`` fed while the run
  logged (no re-read of the file; same report).
* ``pool``: a ``ChartPool`` (``report.charts``) started early draws the charts in
  worker processes; without it they are drawn here.
* ``benchmark_prices``: ``{symbol: [(ts_ms, close), ...]}`` for buy-and-hold; default: the
  ``close`` of the STRATEGY events.
* ``meta``: copied into ``report["meta"]``; read: ``initial_equity`` (default: the first
  EQUITY), ``weights`` ``{symbol: w}`` (capital base of per-symbol returns; default: a
  ``weights`` dict found in the log, else equal weights), ``quote_asset`` (default USDT).
* ``charts``: False skips matplotlib (tables only). Without matplotlib installed the report
  is built without charts and says so in ``warnings``.

Bad input raises ``ReportError`` (missing file, not JSON lines, no EQUITY events); a
truncated last line is skipped with a warning.

The parts: ``report.collector`` (reading the log, ``ReportCollector``), ``report.analysis``
(the accounting), ``report.chart_specs``/``report.charts`` (the PNGs), ``report.html`` (the
page), ``report.cli`` (``python run.py report``). This module writes the files; it also
exports the names a caller of ``build_report`` needs (``ReportCollector``, ``ReportError``,
``ChartPool``).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from models.timeframes import fmt_ms
from report.analysis import EQUITY_COLUMNS, analyse
from report.charts import ChartPool, render_charts
from report.collector import TRADE_COLUMNS, ReportCollector, ReportError, collect, iter_log
from report.html import render_html
from report.values import to_float


def write_trades_csv(path: Path, trades: Sequence[Mapping[str, Any]]) -> None:
    """trades.csv: one row per TRADE_CLOSED event, in the order given."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for tr in trades:
            w.writerow([tr.get(c, "") for c in TRADE_COLUMNS])


def write_equity_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """equity.csv: one row per EQUITY event (``time`` ISO-8601 UTC, ``level`` = the drawdown
    level)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EQUITY_COLUMNS)
        for r in rows:
            ts = r.get("ts_ms")
            w.writerow([ts, fmt_ms(int(ts)) if ts is not None else "", r.get("equity", ""),
                        r.get("peak_equity", ""), r.get("drawdown", ""), r.get("leverage", ""),
                        r.get("worst_case_leverage", ""), r.get("drawdown_level", ""),
                        r.get("state", "")])


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    return str(o)


def _clean(o: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def build_report(out_dir: str | Path, log_path: str | Path | None = None, *,
                 events: Iterable[Mapping[str, Any]] | ReportCollector | None = None,
                 benchmark_prices: Mapping[str, Sequence[tuple[int, Any]]] | None = None,
                 meta: Mapping[str, Any] | None = None, charts: bool = True,
                 overwrite_csv: bool = False, pool: ChartPool | None = None) -> dict[str, Any]:
    """Write report.json, report.html, PNG charts and trades.csv/equity.csv (derived from the
    log when missing, or always with ``overwrite_csv``) into ``out_dir``; return the report
    dict. ``events``: parsed records or a ``ReportCollector`` fed during the run, instead of
    reading ``log_path``. ``pool``: a started ``ChartPool`` draws the charts (else this
    process does). Raises ``ReportError`` on bad input."""
    warnings: list[str] = []
    if events is None:
        if log_path is None:
            raise ReportError("build_report needs a log_path or events")
        events = collect(iter_log(log_path, warnings, fast=True))
    report, chart = analyse(events, benchmark_prices=benchmark_prices, meta=meta)
    report["warnings"] = warnings + report["warnings"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite_csv or not (out / "trades.csv").exists():
        write_trades_csv(out / "trades.csv", sorted(
            chart["trades"], key=lambda x: (to_float(x.get("closed_ms")), str(x.get("symbol")))))
    if overwrite_csv or not (out / "equity.csv").exists():
        write_equity_csv(out / "equity.csv", chart["equity_rows"])
    images: dict[str, bytes] = {}
    if charts and pool is not None:  # a pool exists only where matplotlib does
        images = pool.render(chart, report["warnings"])
    elif charts:
        try:
            import matplotlib  # noqa: F401 - present?
        except ImportError as e:
            report["warnings"].append(f"charts skipped: {e} (matplotlib is a dependency of "
                                      "gridbot: reinstall it with pip install -e .)")
        else:
            images = render_charts(chart, report["warnings"])
    for name, png in images.items():
        (out / name).write_bytes(png)
    report["files"] = sorted(["report.json", "report.html", "trades.csv", "equity.csv",
                              *images])
    report = _clean(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (out / "report.html").write_text(render_html(report, images))
    return report


def have_matplotlib() -> bool:
    """Is matplotlib installed (without importing it)?"""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ValueError, ImportError):  # e.g. sys.modules["matplotlib"] is None
        return False


__all__ = ["ChartPool", "ReportCollector", "ReportError", "build_report", "have_matplotlib"]
