"""ReportCollector: a report built from records fed during a run equals the one read back
from the run's log file (a real short backtest), whichever feeding path is used."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from backtest.driver import run_backtest
from backtest.options import BacktestOptions, backtest_config
from exchange_sim import marketdata as md
from infra import logs
from infra.config_io import load_config
from infra.jsonlog import LEVEL_NO
from models.enums import Market, Side
from models.timeframes import parse_time
from report.build import build_report
from report.collector import ReportCollector

DATA = md.default_data_dir()
SYMBOLS = ("BTCUSDT", "ETHUSDT")
META = {"initial_equity": "10000", "source": "test", "end": "2025-03-02T00:00:00Z"}


@pytest.fixture(scope="module")
def bt(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[Any, ...]]]:
    """A one-day 2-symbol futures backtest (no report) and every ``render_line`` call it made."""
    if DATA is None:
        pytest.skip("no market data directory")
    out = tmp_path_factory.mktemp("bt")
    calls: list[tuple[Any, ...]] = []
    real = logs.render_line

    def spy(ts: Any, level: str, event: str, symbol: str, message: str, pid: int, ts_ms: Any,
            extra: dict[str, Any], *a: Any, **kw: Any) -> str:
        line = real(ts, level, event, symbol, message, pid, ts_ms, extra, *a, **kw)
        calls.append((level, event, symbol, dict(extra), line))
        return line

    cfg = backtest_config(load_config(None), SYMBOLS, Market.FUTURES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(logs, "render_line", spy)
        res = run_backtest(BacktestOptions(
            config=cfg, symbols=SYMBOLS, market=Market.FUTURES,
            start_ms=parse_time("2025-03-01"), end_ms=parse_time("2025-03-02"),
            out_dir=out, report=False, persist=False,
            offload_log=False))  # the spy sees lines rendered in this process
    assert res.actor_errors == [] and res.fills > 0
    return out, calls


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "report.json").read_text())


def test_collector_fed_during_the_run_equals_reading_the_log(
        bt: tuple[Path, list[tuple[Any, ...]]], tmp_path: Path) -> None:
    out, calls = bt
    log = out / "gridbot.jsonl"
    file_lines = log.read_text().splitlines()
    # the spy saw exactly the file's lines, in order (plus lines below the file's level)
    in_file = [c for c in calls if LEVEL_NO[c[0]] >= 20]
    assert [c[4] for c in in_file] == file_lines

    from_file = build_report(tmp_path / "file", log, meta=META, charts=False)

    by_line = ReportCollector()
    for ln in file_lines:
        by_line.add_line(ln)
    by_dict = ReportCollector()
    for ln in file_lines:
        by_dict.add(json.loads(ln))
    # unrendered: the log_event arguments (Decimals, enums) with the record's resolved time
    by_event = ReportCollector()
    for level, event, symbol, extra, line in in_file:
        by_event.add_event(event, symbol, json.loads(line)["ts_ms"], extra, level=level)

    expected = _report(tmp_path / "file")
    assert from_file["portfolio"]["fills"]["fills"] > 0
    assert from_file["generated_from"]["event_counts"]["STRATEGY"] > 0
    for name, col in (("line", by_line), ("dict", by_dict), ("event", by_event)):
        build_report(tmp_path / name, None, events=col, meta=META, charts=False)
        assert _report(tmp_path / name) == expected, name
        for f in ("trades.csv", "equity.csv"):
            assert (tmp_path / name / f).read_bytes() == (tmp_path / "file" / f).read_bytes()
        assert ((tmp_path / name / "report.html").read_text()
                == (tmp_path / "file" / "report.html").read_text())


def test_add_event_normalises_values_as_the_log_writes_them(tmp_path: Path) -> None:
    t0 = 1_740_787_200_000
    fill = {"client_order_id": "c1", "side": Side.BUY, "price": Decimal("100.5"),
            "qty": Decimal("2"), "fee": Decimal("0.0201"), "fee_asset": "USDT", "maker": True}
    a, b = ReportCollector(), ReportCollector()
    for col, conv in ((a, lambda d: d), (b, lambda d: json.loads(json.dumps(
            {k: (v.value if isinstance(v, Side) else str(v) if isinstance(v, Decimal) else v)
             for k, v in d.items()})))):
        col.add_event("EQUITY", "", t0, conv({"equity": Decimal("1000"), "leverage": 0.0}))
        col.add_event("ORDER_FILLED", "BTCUSDT", t0 + 1, conv(fill))
        col.add_event("STRATEGY", "BTCUSDT", t0 + 2, conv({"close": Decimal("100.7"),
                                                            "L": 0.25, "S": 0.5}))
        col.add_event("STATUS", "BTCUSDT", t0 + 3, conv({"leverage": 1.5}))
        col.add_event("EQUITY", "", t0 + 4, conv({"equity": Decimal("1001.5"),
                                                   "leverage": 0.2}))
    ra = build_report(tmp_path / "a", events=a, charts=False)
    rb = build_report(tmp_path / "b", events=b, charts=False)
    assert ra == rb
    btc = ra["symbols"]["BTCUSDT"]
    assert btc["pnl"]["fees_paid"] == "0.0201" and btc["max_leverage"] == 1.5
    assert btc["fills"]["maker_notional"] == "201"
    assert ra["generated_from"]["event_counts"] == {"EQUITY": 2, "ORDER_FILLED": 1,
                                                    "STATUS": 1, "STRATEGY": 1}


def test_bad_line_fed_is_a_warning_not_an_error(tmp_path: Path) -> None:
    col = ReportCollector()
    col.add_line('{"ts_ms": 1000, "event": "EQUITY", "equity": "5"}')
    col.add_line('{"ts_ms": 2000, "event": "EQU')
    col.add_line("")
    col.add_strategy("BTCUSDT", 1500, 10.0, 0.1, 0.2)
    rep = build_report(tmp_path, events=col, charts=False)
    assert col.bad_lines == 1
    assert any("not a JSON object" in w for w in rep["warnings"])
    assert rep["generated_from"]["event_counts"] == {"EQUITY": 1, "STRATEGY": 1}
