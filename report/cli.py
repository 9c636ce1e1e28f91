"""``python run.py report LOGFILE --out DIR``: the performance report of a JSON log (a file or
a log directory), one summary line on stdout, warnings and errors on stderr."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from infra.cli_args import EXIT_BAD_INPUT, EXIT_OK
from report.build import build_report, have_matplotlib
from report.charts import ChartPool
from report.collector import ReportError
from report.html import fmt_int, fmt_money, fmt_num, fmt_pct


def report_command(args: argparse.Namespace) -> int:
    """``run.py report LOGFILE --out DIR``: 0 on success, 2 on bad input."""
    log, out = Path(args.logfile), Path(args.out)
    # next to a backtest's own log, its trades.csv/equity.csv are the originals: keep them;
    # anywhere else derive fresh ones (never leave a previous run's CSVs beside this report)
    log_dir = log if log.is_dir() else log.parent
    keep = out.exists() and out.resolve() == log_dir.resolve()
    # the workers import matplotlib while this process reads the log
    pool = ChartPool() if have_matplotlib() else None
    try:
        rep = build_report(out, log, overwrite_csv=not keep, pool=pool)
    except ReportError as e:
        print(f"gridbot report: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if pool is not None:
            pool.close()
    for w in rep["warnings"]:
        print(f"gridbot report: warning: {w}", file=sys.stderr)
    p = rep["portfolio"]
    quote = str(rep["meta"].get("quote_asset") or "USDT")
    print(f"report written to {args.out}: net PnL {fmt_money(p['pnl']['net'], True)} {quote} "
          f"({fmt_pct(p['total_return'], signed=True)}), Sharpe {fmt_num(p['sharpe'])}, "
          f"max drawdown {fmt_pct(p['max_drawdown'])}, "
          f"{fmt_int(p['trades']['round_trips'])} round trips")
    return EXIT_OK


__all__ = ["report_command"]
