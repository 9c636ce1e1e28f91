"""Backtest: the live actors on the in-process runtime against the in-process venue (a few days of
real data; skipped when the market data directory is absent)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from backtest.driver import run_backtest
from backtest.options import BacktestError, BacktestOptions, backtest_config
from exchange_sim import marketdata as md
from infra.config_io import load_config
from models.enums import Market
from models.timeframes import fmt_ms, parse_time

ROOT = Path(__file__).resolve().parents[2]
DATA = md.default_data_dir()
needs_data = pytest.mark.skipif(DATA is None, reason="no market data directory")
START = parse_time("2025-01-03")
END = parse_time("2025-01-04T12:00")


def _opts(tmp: Path | None, symbols: tuple[str, ...] = ("BTCUSDT",),
          market: Market = Market.FUTURES, **kw: Any) -> BacktestOptions:
    cfg = backtest_config(load_config(None), symbols, market)
    base = dict(config=cfg, symbols=symbols, market=market, start_ms=START, end_ms=END,
                out_dir=tmp, report=False, persist=False)
    base.update(kw)
    return BacktestOptions(**base)  # type: ignore[arg-type]


def _strip(ev: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k not in ("ts", "pid")}


@pytest.fixture(scope="module")
def run1(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if DATA is None:
        pytest.skip("no market data directory")
    out = tmp_path_factory.mktemp("bt1")
    return run_backtest(_opts(out, persist=True)), out


@needs_data
def test_run_trades_and_writes_outputs(run1: Any) -> None:
    res, out = run1
    assert res.actor_errors == []
    assert res.fills > 0 and res.fills_log and res.trades, "the strategy should trade"
    for name in ("trades.csv", "equity.csv", "gridbot.jsonl", "summary.json"):
        assert (out / name).is_file(), name
    lines = [json.loads(x) for x in (out / "gridbot.jsonl").read_text().splitlines()]
    events = {e["event"] for e in lines}
    for ev in ("ORDER_PLACED", "ORDER_FILLED", "TRADE_CLOSED", "EQUITY", "STRATEGY", "STATUS"):
        assert ev in events, ev
    # every record is stamped with sim time inside the replayed range
    ts = [e["ts_ms"] for e in lines if e["event"] in ("ORDER_FILLED", "STRATEGY", "EQUITY")]
    assert min(ts) >= START and max(ts) <= END
    trades_csv = (out / "trades.csv").read_text().splitlines()
    assert trades_csv[0].startswith("symbol,side,qty,entry_price,exit_price")
    assert len(trades_csv) == 1 + len(res.trades)


@needs_data
def test_the_cyclic_gc_is_back_on_after_a_run_and_after_a_failed_one(
        run1: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    import backtest.driver as sbt

    assert gc.isenabled()  # run1 finished: the wrap-up pause is over

    def broken(*_a: Any) -> None:
        assert not gc.isenabled()  # the wrap-up runs with the GC paused
        raise OSError("disk full")

    monkeypatch.setattr(sbt, "write_trades_csv", broken)
    with pytest.raises(OSError, match="disk full"):
        run_backtest(_opts(tmp_path, end_ms=START + 3_600_000))
    assert gc.isenabled()


@needs_data
def test_two_runs_give_identical_trades_and_fills(run1: Any, tmp_path: Path) -> None:
    res1, out1 = run1
    res2 = run_backtest(_opts(tmp_path))  # persist=False: persistence must not change trading
    assert (tmp_path / "trades.csv").read_bytes() == (out1 / "trades.csv").read_bytes()
    assert [_strip(e) for e in res2.fills_log] == [_strip(e) for e in res1.fills_log]
    assert res2.final_equity == res1.final_equity


@needs_data
def test_resting_orders_fill_only_on_a_later_bar_that_trades_through(run1: Any) -> None:
    res, out = run1
    lines = [json.loads(x) for x in (out / "gridbot.jsonl").read_text().splitlines()]
    last_set: dict[str, int] = {}  # client order id -> time its price was last set
    price_of: dict[str, Decimal] = {}
    bars = md.load_klines("BTCUSDT", "futures", "5m", START - 86_400_000, END)
    opens = {int(t): i for i, t in enumerate(bars.open_time)}
    checked = 0
    for e in lines:
        ev = e["event"]
        if ev == "ORDER_PLACED":
            last_set[e["client_order_id"]] = e["ts_ms"]
        elif ev == "ORDER_MODIFY_REQUESTED" and e.get("client_order_id"):
            last_set[e["client_order_id"]] = e["ts_ms"]
        elif ev == "ORDER_FILLED" and e.get("maker"):
            cid = e["client_order_id"]
            placed = last_set[cid]
            bar_open = e["ts_ms"] - 300_000  # fills are logged at the close of their bar
            assert placed <= bar_open, f"{cid} filled on the bar it was placed after"
            i = opens[bar_open]
            px = float(e["price"])
            if e["side"] == "BUY":
                assert bars.low[i] < px, (cid, px, bars.low[i])
            else:
                assert bars.high[i] > px, (cid, px, bars.high[i])
            checked += 1
            price_of[cid] = Decimal(e["price"])
    assert checked > 0


@needs_data
def test_fitted_initial_weights_reach_the_strategy(tmp_path: Path) -> None:
    from models.strategy.weights import Weights

    end = START + 2 * 3_600_000
    plain = run_backtest(_opts(tmp_path / "a", end_ms=end))
    odd = Weights(up=[1.0] + [0.0] * (len(Weights().up) - 1), source="test")
    seeded = run_backtest(_opts(tmp_path / "b", end_ms=end,
                                initial_weights={"BTCUSDT": odd}))

    def first_strategy(out: Path) -> dict[str, Any]:
        for x in (out / "gridbot.jsonl").read_text().splitlines():
            e = json.loads(x)
            if e["event"] == "STRATEGY":
                return e
        raise AssertionError("no STRATEGY line")

    a, b = first_strategy(tmp_path / "a"), first_strategy(tmp_path / "b")
    assert a["close"] == b["close"] and a["b_up"] != b["b_up"]
    assert plain.bars == seeded.bars


def _write_csv(path: Path, bars: md.Bars, keep: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["open_time,open,high,low,close,volume"]
    for k in np.nonzero(keep)[0].tolist():
        rows.append(",".join([str(int(bars.open_time[k]))] + [
            repr(float(c[k])) for c in (bars.open, bars.high, bars.low, bars.close,
                                        bars.volume)]))
    path.write_text("\n".join(rows) + "\n")


@needs_data
def test_gaps_are_reported_not_filled(tmp_path: Path) -> None:
    real = md.load_klines("BTCUSDT", "futures", "5m", START - 2 * 86_400_000, END)
    keep = np.ones(len(real), dtype=bool)
    hole = (real.open_time >= START + 3_600_000) & (real.open_time < START + 3 * 3_600_000)
    keep[hole] = False
    _write_csv(tmp_path / "data/klines/futures/BTCUSDT/BTCUSDT-5m-x.csv", real, keep)
    opts = _opts(tmp_path / "out", data_dir=tmp_path / "data", end_ms=START + 6 * 3_600_000)
    res = run_backtest(opts)
    assert len(res.gaps) == 1
    assert "BTCUSDT" in res.gaps[0] and "24 bar(s) missing" in res.gaps[0]
    assert "2025-01-03T01:00" in res.gaps[0]
    assert res.bars == 6 * 12 - 24  # nothing was replayed for the missing bars
    log = (tmp_path / "out/gridbot.jsonl").read_text()
    assert '"event":"DATA_GAP"' in log
    # a range the data does not cover is an error naming the symbol
    with pytest.raises(BacktestError, match="BTCUSDT"):
        run_backtest(_opts(None, data_dir=tmp_path / "data",
                           start_ms=parse_time("2025-03-01"),
                           end_ms=parse_time("2025-03-02")))


@needs_data
def test_cli_backtest_spot_writes_report(tmp_path: Path) -> None:
    out = tmp_path / "o"
    p = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "backtest", "--symbols", "BTCUSDT",
         "--market", "spot", "--from", "2025-01-03", "--to", "2025-01-03T12:00",
         "--out", str(out), "--no-persist"],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["bars"] == 144
    assert "bars/s" in p.stderr and "ETA" in p.stderr  # progress line
    for name in ("trades.csv", "equity.csv", "gridbot.jsonl", "report.json", "report.html"):
        assert (out / name).is_file(), name
    bad = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "backtest", "--symbols", "BTCUSDT",
         "--from", "2025-01-05", "--to", "2025-01-04", "--out", str(tmp_path / "b")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "empty range" in bad.stderr


def test_rerun_into_the_same_out_dir_replaces_the_log(tmp_path) -> None:
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    args = [sys.executable, str(repo / "run.py"), "backtest", "--symbols", "BTCUSDT",
            "--market", "futures", "--from", "2025-03-01", "--to", "2025-03-02", "--out",
            str(tmp_path / "bt")]
    for _ in range(2):
        r = subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=str(repo))
        assert r.returncode == 0, r.stderr[-2000:]
    lines = (tmp_path / "bt" / "gridbot.jsonl").read_text().splitlines()
    assert sum('"event":"BACKTEST_STARTED"' in x for x in lines) == 1


# -- CLI defaults: same span on both markets, outputs outside the checkout ---------------------
def _args(**kw: Any) -> Any:
    import argparse

    base = dict(config=None, symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), market="futures",
                start=None, end=None, data=None, strategy=None, walk_forward=None, out=None,
                balance=None, fill_interval=None, persist=False, no_persist=False)
    base.update(kw)
    return argparse.Namespace(**base)


def test_default_span_is_2025_on_both_markets(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from backtest.cli import options_from_args

    monkeypatch.setenv("HOME", str(tmp_path))
    spans = {}
    for market in ("spot", "futures"):
        o = options_from_args(_args(market=market))
        spans[market] = (fmt_ms(o.start_ms), fmt_ms(o.end_ms))
        # not created yet, under ~/gridbot-backtests, named after market and span
        assert o.out_dir is not None and not o.out_dir.exists()
        assert o.out_dir.parent == tmp_path / "gridbot-backtests"
        assert o.out_dir.name.endswith(f"-{market}-20250101-20260101")
    assert spans["spot"] == spans["futures"] == ("2025-01-01T00:00:00Z", "2026-01-01T00:00:00Z")
    o = options_from_args(_args(start="2025-06-01"))
    assert fmt_ms(o.end_ms) == "2026-01-01T00:00:00Z"
    assert options_from_args(_args(symbols="btcusdt, ethusdt")).symbols == ("BTCUSDT", "ETHUSDT")


def test_default_out_dir_is_new_each_time(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from backtest.cli import default_out_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    a = default_out_dir(Market.SPOT, START, END, now=0)
    assert a == tmp_path / "gridbot-backtests" / "19700101T000000Z-spot-20250103-20250104"
    a.mkdir(parents=True)
    assert default_out_dir(Market.SPOT, START, END, now=0).name == a.name + "-2"


@needs_data
def test_cli_without_out_says_what_and_where(tmp_path: Path) -> None:
    import os

    p = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "backtest", "--symbols", "btcusdt",
         "--market", "spot", "--from", "2025-01-03", "--to", "2025-01-03T06:00"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-2000:]
    (out,) = (tmp_path / "gridbot-backtests").iterdir()
    summary = json.loads(p.stdout.strip().splitlines()[-1])
    assert summary["out_dir"] == str(out)
    assert (summary["start"], summary["end"]) == ("2025-01-03T00:00:00Z", "2025-01-03T06:00:00Z")
    first = p.stderr.splitlines()[0]
    assert first == (f"gridbot backtest: spot BTCUSDT from 2025-01-03T00:00:00Z to "
                     f"2025-01-03T06:00:00Z (exclusive), adaptive strategy; outputs in {out}")
    assert p.stderr.splitlines()[-1] == (f"gridbot backtest: outputs in {out} "
                                         f"(open {out / 'report.html'})")
    assert (out / "report.html").is_file() and (out / "summary.json").is_file()
    assert not any(ROOT.glob("backtest-out*"))


@needs_data
def test_cli_span_without_data_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "o"
    p = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "backtest", "--symbols", "BTCUSDT", "--market",
         "futures", "--from", "2023-01-01", "--to", "2023-02-01", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    (line,) = p.stderr.splitlines()
    assert line.startswith("gridbot backtest: futures BTCUSDT 5m: requested range "
                           "2023-01-01T00:00:00Z .. 2023-02-01T00:00:00Z is not covered")
    assert "available: 5m: 2024-12-31" in line
    assert not out.exists()
