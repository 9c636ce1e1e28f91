"""The research fast path decides exactly as the full backtest: on a short real span around
the 2025-10-10 crash (3 symbols, futures 5m), a run with snapshots, JSON log and report and a
run through ``research_options`` give the same fills, trades, equity and counts. The long
spans (calm, trending, crash) are in ``bench/parity_bench.py``."""

from __future__ import annotations

from pathlib import Path

import pytest

from backtest.driver import run_backtest
from backtest.options import BacktestOptions, backtest_config, research_options
from backtest.parity import differences, fingerprint
from exchange_sim import marketdata as md
from infra.config_io import load_config
from models.enums import Market
from models.timeframes import parse_time

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
needs_data = pytest.mark.skipif(md.default_data_dir() is None, reason="no market data")


def _full(out: Path, start: str, end: str, market: Market = Market.FUTURES) -> BacktestOptions:
    cfg = backtest_config(load_config(None), SYMS, market)
    return BacktestOptions(config=cfg, symbols=SYMS, market=market, start_ms=parse_time(start),
                           end_ms=parse_time(end), out_dir=out, persist=True, charts=False)


@needs_data
@pytest.mark.parametrize("market,start,end", [
    (Market.FUTURES, "2025-10-09", "2025-10-12"),  # the 2025-10-10 crash
    (Market.SPOT, "2025-10-09", "2025-10-11"),
])
def test_research_path_decides_as_the_full_run(tmp_path: Path, market: Market, start: str,
                                               end: str) -> None:
    full_opts = _full(tmp_path / "full", start, end, market)
    full = run_backtest(full_opts)
    fast = run_backtest(research_options(full_opts))
    assert (tmp_path / "full" / "gridbot.jsonl").stat().st_size > 0  # the full run wrote
    a, b = fingerprint(full), fingerprint(fast)
    assert a["fill_count"] > 10, "the span must trade to prove anything"
    assert a["trades"] or market is Market.SPOT  # spot 2025 rarely closes a trade (issue 21)
    assert differences(a, b) == []


def test_differences_name_the_first_diverging_row() -> None:
    a = {"fills": [{"p": "1"}, {"p": "2"}], "final_equity": "10"}
    b = {"fills": [{"p": "1"}, {"p": "3"}], "final_equity": "11"}
    d = differences(a, b)
    assert d == ["fills[1]: {'p': '2'} != {'p': '3'}", "final_equity: '10' != '11'"]
    assert differences(a, dict(a)) == []


def test_research_options_write_nothing(tmp_path: Path) -> None:
    cfg = backtest_config(load_config(None), SYMS, Market.FUTURES)
    o = research_options(BacktestOptions(config=cfg, symbols=SYMS, market=Market.FUTURES,
                                         start_ms=0, end_ms=1, out_dir=tmp_path, persist=True))
    assert (o.out_dir, o.report, o.log_file, o.persist, o.offload_log) == (
        None, False, False, False, False)
