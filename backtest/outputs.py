"""A finished backtest's performance report (trades.csv and equity.csv are written by
``report.build``'s writers, called by the driver)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from backtest.options import BacktestOptions, BacktestResult
from backtest.venue import SymbolFeed
from models.timeframes import fmt_ms
from report.build import build_report


def benchmark_prices(feeds: dict[str, SymbolFeed], start: int, end: int
                     ) -> dict[str, list[tuple[int, float]]]:
    """Hourly closes of every replayed symbol (the report's buy-and-hold)."""
    out: dict[str, list[tuple[int, float]]] = {}
    for sym, f in feeds.items():
        b = f.base.slice_time(start, end)
        step = max(1, 3_600_000 // b.interval_ms)
        out[sym] = [(int(b.open_time[i]) + b.interval_ms, float(b.close[i]))
                    for i in range(0, len(b), step)]
    return out


def write_report(out: Path, opts: BacktestOptions, res: BacktestResult,
                 feeds: dict[str, SymbolFeed], collector: Any = None,
                 pool: Any = None) -> dict[str, Any] | None:
    """report.json/html/png of a run (None, with a note, when it fails: the run's CSVs and log
    are still valid)."""
    meta = {"initial_equity": res.initial_equity, "market": opts.market.value,
            "strategy": opts.config.strategy.kind,
            "weights": dict(opts.config.portfolio.weights),
            "start": fmt_ms(opts.start_ms), "end": fmt_ms(opts.end_ms),
            "source": "backtest"}
    if res.data_issues:
        meta["data_issues"] = list(res.data_issues)
    log = out / "gridbot.jsonl"
    events: Any = collector
    if events is None:
        events = None if log.exists() else []
    try:
        return build_report(out, log if log.exists() else None, events=events,
                            benchmark_prices=benchmark_prices(feeds, opts.start_ms,
                                                              opts.end_ms),
                            meta=meta, charts=opts.charts, pool=pool)
    except Exception as e:  # noqa: BLE001 - the run's CSVs and log are still valid
        res.notes.append(f"report failed: {type(e).__name__}: {e}")
        print(f"gridbot backtest: report failed: {e}", file=sys.stderr)
        return None
