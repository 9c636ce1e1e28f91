"""Backtest throughput: real futures 5m bars through the full actor pipeline (strategy, risk,
portfolio, OMS, backtest gateway on the matching engine), 1 and 3 symbols.

Prints one JSON line: bars/s (base bars of all symbols together) and msgs/s (actor messages
delivered) for each case, with and without actor snapshot persistence, plus the projection for
a year of 3 symbols. Run: ``python -m bench.backtest_bench [--days N]``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from backtest.driver import run_backtest
from backtest.options import BacktestOptions, backtest_config
from exchange_sim import marketdata as md
from infra.config_io import load_config
from models.enums import Market
from models.timeframes import parse_time

START = "2025-01-03"
SYMS3 = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


def _case(symbols: tuple[str, ...], days: float, persist: bool) -> dict[str, float]:
    cfg = backtest_config(load_config(None), symbols, Market.FUTURES)
    start = parse_time(START)
    opts = BacktestOptions(config=cfg, symbols=symbols, market=Market.FUTURES, start_ms=start,
                           end_ms=start + int(days * 86_400_000), out_dir=None, report=False,
                           log_file=False, persist=persist)
    res = run_backtest(opts)
    return {"bars": res.bars, "messages": res.messages, "fills": res.fills,
            "wall_s": round(res.wall_s, 3),
            "bars_per_s": round(res.bars / res.wall_s, 1),
            "msgs_per_s": round(res.messages / res.wall_s, 1)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--days", type=float, default=3.0)
    a = ap.parse_args(argv)
    if md.default_data_dir() is None:
        print(json.dumps({"error": "no market data directory"}))
        return 1
    out: dict[str, object] = {"days": a.days, "interval": "5m", "market": "futures"}
    for persist in (True, False):
        tag = "" if persist else "_nopersist"
        out[f"sym1{tag}"] = _case(("BTCUSDT",), a.days, persist)
        out[f"sym3{tag}"] = _case(SYMS3, a.days, persist)
    year_bars = 3 * 365 * 288
    for tag in ("", "_nopersist"):
        bps = out[f"sym3{tag}"]["bars_per_s"]  # type: ignore[index]
        out[f"year_3sym{tag}_min"] = round(year_bars / bps / 60, 1) if bps else None
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main())
