"""The backtest's offloaded JSON log (a child process renders the lines): the same file, kept
events and report as rendering in-process; a dead writer fails the run loudly, never hangs."""

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
from infra.log_writer import LogWriterError, OffloadedJsonLog
from models.enums import Market, Side
from models.timeframes import parse_time

DATA = md.default_data_dir()
SYMBOLS = ("BTCUSDT", "ETHUSDT")


def _run(out: Path, offload: bool, **kw: Any) -> Any:
    cfg = backtest_config(load_config(None), SYMBOLS, Market.FUTURES)
    return run_backtest(BacktestOptions(
        config=cfg, symbols=SYMBOLS, market=Market.FUTURES,
        start_ms=parse_time("2025-03-01"), end_ms=parse_time("2025-03-03"),
        out_dir=out, offload_log=offload, charts=False), **kw)


def _lines(out: Path) -> list[dict[str, Any]]:
    rows = [json.loads(ln) for ln in (out / "gridbot.jsonl").read_text().splitlines()]
    for r in rows:
        del r["ts"]  # wall-clock time of the call
        r.pop("wall_s", None)
    return rows


@pytest.mark.skipif(DATA is None, reason="no market data directory")
def test_offloaded_log_equals_in_process(tmp_path: Path) -> None:
    a, b = _run(tmp_path / "inproc", False), _run(tmp_path / "child", True)
    assert a.actor_errors == [] and b.actor_errors == []
    la, lb = _lines(tmp_path / "inproc"), _lines(tmp_path / "child")
    assert len(la) > 1000 and la == lb
    assert {r["event"] for r in lb} >= {"STRATEGY", "STATUS", "ORDER_PLACED", "EQUITY"}
    strip = [{k: v for k, v in e.items() if k != "ts"} for e in a.trades + a.equity]
    assert strip == [{k: v for k, v in e.items() if k != "ts"} for e in b.trades + b.equity]
    assert len(b.fills_log) == len(a.fills_log) > 0
    ra = json.loads((tmp_path / "inproc" / "report.json").read_text())
    rb = json.loads((tmp_path / "child" / "report.json").read_text())
    ra.pop("generated_from"), rb.pop("generated_from")
    assert ra == rb


@pytest.mark.skipif(DATA is None, reason="no market data directory")
def test_dead_writer_fails_the_run(tmp_path: Path) -> None:
    killed: list[int] = []

    def kill_writer(_t: int) -> None:
        w = logs._direct
        if not killed and w is not None and w._off is not None:
            w._off._proc.kill()
            killed.append(w._off._proc.pid)

    res = _run(tmp_path / "dead", True, on_step=kill_writer)
    assert killed
    assert any("log writer" in e and "incomplete" in e for e in res.actor_errors)


def test_records_are_taken_when_logged(tmp_path: Path) -> None:
    """A context changed after the call does not change the line; Decimals, enums and
    nested dicts render as in-process; the kept events come back."""
    path = tmp_path / "w.jsonl"
    w = OffloadedJsonLog(str(path), level_no=20, keep=frozenset({"ORDER_PLACED"}),
                         collector=None, pid=4242, secrets=[])
    ctx = {"price": Decimal("100.10"), "side": Side.SELL, "strategy_context": {"L": 0.5}}
    w.record(20, "INFO", "ORDER_PLACED", "BTCUSDT", 1_700_000_000_000, "ORDER_PLACED", ctx)
    ctx["strategy_context"]["L"] = 0.9
    w.record(10, "DEBUG", "ORDER_PLACED", "BTCUSDT", 1_700_000_000_001, "ORDER_PLACED", ctx)
    w.line(30, "X", '{"event":"X"}')
    w.close()
    rows = [json.loads(ln) for ln in path.read_text().splitlines()]
    assert [r["event"] for r in rows] == ["ORDER_PLACED", "X"]  # DEBUG below the file level
    assert rows[0]["strategy_context"] == {"L": 0.5} and rows[0]["price"] == "100.10"
    assert rows[0]["side"] == "SELL" and rows[0]["pid"] == 4242
    assert rows[0]["ts_ms"] == 1_700_000_000_000
    assert w.kept == [rows[0]]


def test_writer_error_is_reported(tmp_path: Path) -> None:
    w = OffloadedJsonLog(str(tmp_path / "no-such-dir" / "w.jsonl"), level_no=20,
                         keep=frozenset(), collector=None, pid=1, secrets=[])
    with pytest.raises(LogWriterError):
        for i in range(3000):
            w.record(20, "INFO", "E", "", i + 1, "E", {})
        w.close()
