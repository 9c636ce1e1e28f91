"""What a finished backtest writes: trades.csv, equity.csv and the performance report."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Any

from backtest.options import EQUITY_COLUMNS, TRADE_COLUMNS, BacktestOptions, BacktestResult
from backtest.venue import SymbolFeed
from models.timeframes import fmt_ms
from report.build import build_report


def write_trades_csv(path: Path, trades: list[dict[str, Any]]) -> None:
    """trades.csv: one row per TRADE_CLOSED event, in close order."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for tr in trades:
            w.writerow([tr.get(c, "") for c in TRADE_COLUMNS])


def write_equity_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """equity.csv: one row per EQUITY event (``level`` = the drawdown level)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EQUITY_COLUMNS)
        for r in rows:
            ts = r.get("ts_ms")
            w.writerow([ts, fmt_ms(int(ts)) if ts is not None else "", r.get("equity", ""),
                        r.get("peak_equity", ""), r.get("drawdown", ""), r.get("leverage", ""),
                        r.get("worst_case_leverage", ""), r.get("drawdown_level", ""),
                        r.get("state", "")])


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
