"""Parity of the research fast path with the full backtest on long real spans, and the speed of
both: each span (futures 5m, 3 symbols) is replayed once as ``run.py backtest`` does with
snapshots persisted (JSON log, report) and once through ``research_options``; the fills,
closed trades, equity points and counts must be identical.

Run: ``python -m bench.parity_bench [--spans calm,trend,crash]``. Prints one line per span and
a JSON summary; exit 1 on any difference."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from backtest.driver import run_backtest
from backtest.options import BacktestOptions, backtest_config, research_options
from backtest.parity import differences, fingerprint
from exchange_sim import marketdata as md
from infra.config_io import load_config
from models.enums import Market
from models.timeframes import parse_time

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
#: pre-2026 spans of 2025 5m futures: a quiet range, a trend, the 2025-10-10 liquidation crash
SPANS = {
    "calm": ("2025-08-01", "2025-08-22"),
    "trend": ("2025-04-08", "2025-04-29"),
    "crash": ("2025-10-01", "2025-10-22"),
}


def run_span(name: str, start: str, end: str) -> dict[str, object]:
    """Both paths on one span: their speed and whether they agree."""
    cfg = backtest_config(load_config(None), SYMS, Market.FUTURES)
    with tempfile.TemporaryDirectory(prefix="gridbot-parity-") as tmp:
        full_opts = BacktestOptions(config=cfg, symbols=SYMS, market=Market.FUTURES,
                                    start_ms=parse_time(start), end_ms=parse_time(end),
                                    out_dir=Path(tmp), persist=True, charts=False)
        t0 = time.perf_counter()
        full = run_backtest(full_opts)
        t_full = time.perf_counter() - t0
        t0 = time.perf_counter()
        fast = run_backtest(research_options(full_opts))
        t_fast = time.perf_counter() - t0
    diff = differences(fingerprint(full), fingerprint(fast))
    return {"span": name, "start": start, "end": end, "bars": full.bars, "orders": full.orders,
            "fills": full.fills, "trades": len(full.trades), "final_equity": full.final_equity,
            "full_wall_s": round(t_full, 2), "full_bars_per_s": round(full.bars / t_full),
            "fast_wall_s": round(t_fast, 2), "fast_bars_per_s": round(fast.bars / t_fast),
            "identical": not diff, "differences": diff}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spans", default=",".join(SPANS),
                    help=f"comma-separated names among {', '.join(SPANS)}")
    a = ap.parse_args(argv)
    names = [s.strip() for s in a.spans.split(",") if s.strip()]
    bad = [s for s in names if s not in SPANS]
    if bad:
        ap.error(f"unknown span {', '.join(bad)} (known: {', '.join(SPANS)})")
    if md.default_data_dir() is None:
        print("parity_bench: no market data directory")
        return 1
    rows = []
    for n in names:
        r = run_span(n, *SPANS[n])
        rows.append(r)
        print(f"{n:6} {r['start']}..{r['end']} bars={r['bars']} orders={r['orders']} "
              f"fills={r['fills']} full={r['full_bars_per_s']} bars/s "
              f"fast={r['fast_bars_per_s']} bars/s "
              f"{'IDENTICAL' if r['identical'] else 'DIFFERENT ' + str(r['differences'])}",
              flush=True)
    print(json.dumps({"spans": rows}))
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
