"""Report from a JSON log: figures from hand-worked logs, files produced, bad input."""

from __future__ import annotations

import importlib.util
import json
import math
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

import run
from infra import logs
from infra.clock import SimClock, set_clock
from report.build import ReportError, build_report
from report.collector import read_log

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


def _write(path: Path, events: list[dict[str, Any]], tail: str = "") -> Path:
    path.write_text("".join(json.dumps(e) + "\n" for e in events) + tail)
    return path


def _equity(t: int, equity: float, positions: dict[str, Any] | None = None, level: int = 0,
            leverage: float = 1.0) -> dict[str, Any]:
    return {"ts_ms": t, "event": "EQUITY", "symbol": "", "level": "INFO",
            "equity": str(equity), "peak_equity": str(equity), "drawdown": 0.0,
            "leverage": leverage, "worst_case_leverage": leverage, "leverage_cap": 6.0,
            "state": "TRADING", "positions": positions or {}} | {"level": level}


def _hand_log() -> list[dict[str, Any]]:
    """Two symbols, 1000 USDT split 60/40. BTC: a fill (fee 1 USDT), a closed trade (+10
    gross), funding -2 (logged twice with the same id), unrealized +5. ETH (spot-like): fee
    0.01 ETH at 2000 (= 20 USDT) and 0.5 BNB (not convertible)."""
    return [
        {"ts_ms": T0, "event": "BOT_READY", "weights": {"BTCUSDT": 0.6, "ETHUSDT": 0.4}},
        _equity(T0, 1000.0),
        {"ts_ms": T0 + HOUR, "event": "ORDER_PLACED", "symbol": "BTCUSDT",
         "client_order_id": "b1", "side": "BUY", "qty": "0.010", "price": "50000"},
        {"ts_ms": T0 + HOUR, "event": "ORDER_PLACED", "symbol": "BTCUSDT",
         "client_order_id": "b2", "side": "SELL", "qty": "0.010", "price": "51000"},
        {"ts_ms": T0 + HOUR, "event": "ORDER_PLACED", "symbol": "ETHUSDT",
         "client_order_id": "e1", "side": "BUY", "qty": "1", "price": "2000"},
        {"ts_ms": T0 + 2 * HOUR, "event": "ORDER_FILLED", "symbol": "BTCUSDT",
         "client_order_id": "b1", "side": "BUY", "price": "50000", "qty": "0.010", "fee": "1",
         "fee_asset": "USDT", "maker": True},
        {"ts_ms": T0 + 2 * HOUR, "event": "ORDER_FILLED", "symbol": "ETHUSDT",
         "client_order_id": "e1", "side": "BUY", "price": "2000", "qty": "0.5",
         "fee": "0.01", "fee_asset": "ETH", "maker": False},
        {"ts_ms": T0 + 2 * HOUR, "event": "ORDER_FILLED", "symbol": "ETHUSDT",
         "client_order_id": "e1", "side": "BUY", "price": "2000", "qty": "0.5",
         "fee": "0.5", "fee_asset": "BNB", "maker": True},
        {"ts_ms": T0 + 3 * HOUR, "event": "TRADE_CLOSED", "symbol": "BTCUSDT", "side": "BUY",
         "qty": "0.010", "entry_price": "50000", "exit_price": "51000", "gross_pnl": "10",
         "fees": "2", "funding": "0", "net_pnl": "8", "opened_ms": T0 + 2 * HOUR,
         "closed_ms": T0 + 3 * HOUR, "holding_s": 3600},
        {"ts_ms": T0 + 4 * HOUR, "event": "FUNDING_PAID", "symbol": "BTCUSDT",
         "funding_id": "BTCUSDT-1", "amount": "-2"},
        {"ts_ms": T0 + 4 * HOUR, "event": "FUNDING_PAID", "symbol": "BTCUSDT",
         "funding_id": "BTCUSDT-1", "amount": "-2"},  # re-logged after a restart
        {"ts_ms": T0 + 5 * HOUR, "event": "DRAWDOWN_LEVEL", "level": 1, "previous_level": 0},
        _equity(T0 + 5 * HOUR, 992.0, {"BTCUSDT": {"qty": "-0.02", "mark_price": "49600",
                                                   "unrealized_pnl": "5"},
                                       "ETHUSDT": {"qty": "1", "unrealized_pnl": "0"}},
                level=1, leverage=2.5),
        {"ts_ms": T0 + 9 * HOUR, "event": "DRAWDOWN_LEVEL", "level": 0, "previous_level": 1},
        _equity(T0 + 10 * HOUR, 1010.0),
    ]


def test_hand_worked_log_figures(tmp_path: Path) -> None:
    rep = build_report(tmp_path, _write(tmp_path / "g.jsonl", _hand_log()), charts=False)
    p, btc, eth = rep["portfolio"], rep["symbols"]["BTCUSDT"], rep["symbols"]["ETHUSDT"]
    assert rep["generated_from"]["weights_source"] == "log"
    assert btc["capital_base"] == pytest.approx(600) and eth["capital_base"] == pytest.approx(400)
    # BTC equity at the second EQUITY: 600 + 10 gross - 1 fee - 2 funding (once) + 5 unrealized
    assert btc["pnl"] == {"net": "12", "realized_gross": "10", "fees_paid": "1",
                          "fees_other_assets": {}, "funding_paid": "2",
                          "funding_received": "0", "funding_net": "-2", "unrealized": "5"}
    assert btc["end_equity"] == pytest.approx(612)
    # ETH: the ETH fee at the fill price (0.01 x 2000), BNB kept apart with a warning
    assert eth["pnl"]["fees_paid"] == "20"
    assert eth["pnl"]["fees_other_assets"] == {"BNB": "0.5"}
    assert any("BNB" in w for w in rep["warnings"])
    assert p["pnl"]["fees_paid"] == "21" and p["pnl"]["funding_net"] == "-2"
    assert p["total_return"] == pytest.approx(0.01)
    assert p["max_drawdown"] == pytest.approx(-0.008)
    assert p["max_leverage"] == pytest.approx(2.5)
    assert btc["max_leverage"] == pytest.approx(0.02 * 49600 / 992)  # |qty| x mark / equity
    assert eth["max_leverage"] is None  # no mark price logged
    assert btc["trades"]["round_trips"] == 1 and btc["trades"]["win_rate"] == 1.0
    assert btc["trades"]["avg_holding_s"] == 3600
    assert p["orders_placed"] == 3 and p["orders_filled"] == 2  # b1 and e1 (0.5 + 0.5)
    assert p["order_fill_rate"] == pytest.approx(2 / 3)
    assert btc["order_fill_rate"] == pytest.approx(0.5)
    assert p["fills"]["maker_fills"] == 2 and p["fills"]["taker_fills"] == 1
    # levels: 0 for 5 h, 1 from the DRAWDOWN_LEVEL at 5 h until back to 0 at 9 h, then 0
    assert p["time_in_drawdown_level_s"] == {"0": 6 * 3600, "1": 4 * 3600}
    assert p["benchmark"] is None and any("benchmark" in w for w in rep["warnings"])
    assert rep["summary"]["total_return"] == p["total_return"]
    assert rep["summary"]["round_trips"] == 1 and rep["summary"]["fees_paid"] == "21"
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["portfolio"]["pnl"] == p["pnl"]


def test_meta_weights_and_initial_equity_override(tmp_path: Path) -> None:
    rep = build_report(tmp_path, _write(tmp_path / "g.jsonl", _hand_log()), charts=False,
                       meta={"weights": {"BTCUSDT": 1, "ETHUSDT": 3}, "initial_equity": 1000,
                             "strategy": "adaptive"})
    assert rep["generated_from"]["weights_source"] == "meta"
    assert rep["symbols"]["BTCUSDT"]["capital_base"] == pytest.approx(250)
    assert rep["meta"]["strategy"] == "adaptive"


def _synthetic(days: int = 35, seed: int = 3) -> list[dict[str, Any]]:
    """Hourly STRATEGY closes for two symbols, fills and round trips every 6 h, EQUITY every
    6 h, funding every 8 h."""
    rng = random.Random(seed)
    px = {"BTCUSDT": 90_000.0, "ETHUSDT": 3_300.0}
    eq = peak = 10_000.0
    out: list[dict[str, Any]] = []
    n = 0
    for h in range(days * 24):
        t = T0 + h * HOUR
        for s in px:
            px[s] *= math.exp(rng.gauss(0, 0.004))
            out.append({"ts_ms": t, "event": "STRATEGY", "symbol": s, "close": px[s],
                        "L": rng.random(), "S": rng.random()})
        if h % 8 == 0:
            out.append({"ts_ms": t, "event": "FUNDING_PAID", "symbol": "BTCUSDT",
                        "funding_id": f"f{h}", "amount": "-0.5"})
        if h % 6:
            continue
        for s in px:
            n += 1
            side = "BUY" if n % 2 else "SELL"
            out.append({"ts_ms": t, "event": "ORDER_PLACED", "symbol": s,
                        "client_order_id": f"c{n}", "side": side, "qty": "0.01",
                        "price": f"{px[s]:.2f}"})
            out.append({"ts_ms": t + 1000, "event": "ORDER_FILLED", "symbol": s,
                        "client_order_id": f"c{n}", "side": side, "qty": "0.01",
                        "price": f"{px[s]:.2f}", "fee": "0.1", "fee_asset": "USDT",
                        "maker": n % 4 != 0})
            pnl = round(rng.gauss(1.5, 8), 2)
            out.append({"ts_ms": t + 2000, "event": "TRADE_CLOSED", "symbol": s, "side": side,
                        "qty": "0.01", "gross_pnl": f"{pnl + 0.2:.2f}", "fees": "0.2",
                        "funding": "0", "net_pnl": f"{pnl:.2f}", "holding_s": 3600,
                        "opened_ms": t - HOUR, "closed_ms": t + 2000})
            eq += pnl
        peak = max(peak, eq)
        out.append(_equity(t + 3000, round(eq, 2), {s: {"unrealized_pnl": "0"} for s in px}))
    return out


HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
PNGS = {"equity.png", "drawdown.png", "price_BTCUSDT.png", "price_ETHUSDT.png",
        "conviction_BTCUSDT.png", "conviction_ETHUSDT.png", "symbol_pnl.png"}


def _no_external_resources(page: str) -> None:
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "http" not in page and "<link" not in page and "<script" not in page


def test_synthetic_log_produces_json_html_csv(tmp_path: Path) -> None:
    log = _write(tmp_path / "gridbot.jsonl", _synthetic())
    out = tmp_path / "out"
    rep = build_report(out, log, charts=False)
    assert set(rep["files"]) == {"report.json", "report.html", "trades.csv", "equity.csv"}
    assert not list(out.glob("*.png"))
    page = (out / "report.html").read_text()
    _no_external_resources(page)
    assert "2025-01" in page and "2025-02" in page  # monthly returns table
    p = rep["portfolio"]
    for key in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                "max_drawdown_duration_s", "order_fill_rate", "max_leverage"):
        assert p[key] is not None, key
    assert p["trades"]["round_trips"] == 2 * 35 * 4
    assert set(p["monthly_returns"]) == {"2025-01", "2025-02"}
    assert p["benchmark"]["total_return"] is not None
    assert p["excess_return_vs_benchmark"] == pytest.approx(
        p["total_return"] - p["benchmark"]["total_return"])
    assert rep["symbols"]["BTCUSDT"]["pnl"]["funding_paid"] == "52.5"
    trades = (out / "trades.csv").read_text().splitlines()
    assert trades[0].startswith("symbol,side,qty") and len(trades) == 1 + 2 * 35 * 4
    assert len((out / "equity.csv").read_text().splitlines()) == 1 + 35 * 4


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed (a dependency: pip install -e .)")
def test_synthetic_log_charts_png_embedded(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rep = build_report(out, _write(tmp_path / "gridbot.jsonl", _synthetic(days=3)))
    assert PNGS <= {p.name for p in out.iterdir()}
    assert PNGS <= set(rep["files"])
    for name in PNGS:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text()
    assert page.count('src="data:image/png;base64,') == len(PNGS)
    _no_external_resources(page)


def test_benchmark_from_passed_prices_and_existing_csvs_kept(tmp_path: Path) -> None:
    (tmp_path / "trades.csv").write_text("from the backtest\n")
    log = _write(tmp_path / "g.jsonl", _hand_log())
    prices = {"BTCUSDT": [(T0 - HOUR, 100), (T0 + 5 * HOUR, 110), (T0 + 20 * HOUR, 500)],
              "ETHUSDT": [(T0, 10), (T0 + 10 * HOUR, 9)]}
    rep = build_report(tmp_path, log, benchmark_prices=prices, charts=False)
    assert (tmp_path / "trades.csv").read_text() == "from the backtest\n"
    assert (tmp_path / "equity.csv").read_text().startswith("ts_ms,time,equity")
    # clipped to the equity span [T0, T0 + 10 h]: BTC 100 -> 110, ETH 10 -> 9
    assert rep["symbols"]["BTCUSDT"]["benchmark"]["total_return"] == pytest.approx(0.10)
    assert rep["symbols"]["ETHUSDT"]["benchmark"]["total_return"] == pytest.approx(-0.10)
    # 60/40 basket: 0.6 x 1.10 + 0.4 x 0.90 = 1.02
    assert rep["portfolio"]["benchmark"]["total_return"] == pytest.approx(0.02)


def test_no_matplotlib_degrades_to_tables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    rep = build_report(tmp_path, _write(tmp_path / "g.jsonl", _hand_log()))
    assert not list(tmp_path.glob("*.png"))
    assert any("charts skipped" in w for w in rep["warnings"])
    assert "<img" not in (tmp_path / "report.html").read_text()


def test_truncated_last_line_is_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                          ) -> None:
    log = _write(tmp_path / "g.jsonl", _hand_log(), tail='{"ts_ms": 1, "event": "EQU')
    events, warnings = read_log(log)
    assert len(events) == len(_hand_log())
    assert len(warnings) == 1 and "truncated" in warnings[0]
    out = tmp_path / "out"
    assert run.main(["report", str(log), "--out", str(out)]) == 0
    assert "truncated" in capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["portfolio"]["total_return"] == \
        pytest.approx(0.01)


def test_log_directory_reads_rotated_files(tmp_path: Path) -> None:
    ev = _hand_log()
    _write(tmp_path / "gridbot.2025-01-01_00-00-00_000000.jsonl", ev[:6])
    _write(tmp_path / "gridbot.jsonl", ev[6:])
    events, warnings = read_log(tmp_path)
    assert events == ev and warnings == []


def test_build_report_raises_report_error(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="no EQUITY"):
        build_report(tmp_path, events=[{"ts_ms": 1, "event": "STATUS"}])
    with pytest.raises(ReportError, match="log_path or events"):
        build_report(tmp_path)


def test_drawdown_level_is_not_confused_with_the_log_level(tmp_path: Path) -> None:
    """``level`` is also the log level of a record: only an integer (or an explicit
    ``drawdown_level``) is a brake level; informational ALERTs do not change it."""
    ev = [_equity(T0, 1000.0) | {"level": "INFO"},
          _equity(T0 + HOUR, 940.0) | {"level": "WARNING", "drawdown_level": 1},
          {"ts_ms": T0 + 2 * HOUR, "event": "DRAWDOWN_LEVEL", "kind": "ALERT", "level": 1},
          {"ts_ms": T0 + 3 * HOUR, "event": "DRAWDOWN_LEVEL", "kind": "LEVEL", "level": 2},
          _equity(T0 + 4 * HOUR, 1000.0) | {"level": "INFO", "drawdown_level": "0"}]
    rep = build_report(tmp_path, events=ev, charts=False)
    # level 0 before the first known level (the brake starts there)
    assert rep["portfolio"]["time_in_drawdown_level_s"] == {"0": 3600.0, "1": 2 * 3600.0,
                                                            "2": 3600.0}
    assert rep["portfolio"]["time_in_drawdown_level_share"]["1"] == pytest.approx(0.5)


def test_report_reads_what_log_event_writes(tmp_path: Path) -> None:
    """The real writer (infra.logs): Decimals as strings, ts_ms from the actor clock."""
    clock = SimClock(T0 * 1_000_000)
    path = logs.configure_logging(tmp_path, stderr=False)
    set_clock(clock)
    try:
        pos = {"BTCUSDT": {"qty": Decimal("0.01"), "unrealized_pnl": Decimal("3.5")}}
        logs.log_event("EQUITY", equity=Decimal("1000"), peak_equity=Decimal("1000"),
                       leverage=0.0, positions={})
        for minute in range(1, 4):
            clock.ns = (T0 + minute * 60_000) * 1_000_000
            logs.log_event("STRATEGY", symbol="BTCUSDT", close=100.0 + minute, L=0.5, S=0.1)
        logs.log_event("ORDER_FILLED", symbol="BTCUSDT", client_order_id="gb1", side="BUY",
                       price=Decimal("101.5"), qty=Decimal("0.01"), fee=Decimal("0.0101"),
                       fee_asset="USDT", maker=True)
        clock.ns = (T0 + DAY) * 1_000_000
        logs.log_event("EQUITY", equity=Decimal("1003.4899"), peak_equity=Decimal("1003.4899"),
                       leverage=0.001, positions=pos)
        logger.complete()
    finally:
        set_clock(None)
        logger.remove()
    rep = build_report(tmp_path / "out", path, charts=False)
    p, btc = rep["portfolio"], rep["symbols"]["BTCUSDT"]
    assert rep["generated_from"]["start_ms"] == T0 and rep["generated_from"]["end_ms"] == T0 + DAY
    assert p["pnl"]["net"] == "3.4899" and p["pnl"]["fees_paid"] == "0.0101"
    assert btc["pnl"]["unrealized"] == "3.5" and btc["pnl"]["net"] == "3.4899"
    assert btc["benchmark"]["start_price"] == 101.0  # first close after the start
    assert btc["benchmark"]["end_price"] == 103.0


def test_symbol_curve_uses_the_records_own_ledger(tmp_path: Path) -> None:
    """A flatten logs the close and an EQUITY that still shows the position open in the same
    millisecond: the symbol's curve takes that record's ledger (realized + unrealized of one
    instant), not the events' realized PnL plus the stale unrealized (counted twice)."""
    t1 = T0 + HOUR

    def eq(t: int, equity: float, unreal: str, realized: str, qty: str) -> dict[str, Any]:
        return _equity(t, equity, {"BTCUSDT": {"qty": qty, "mark_price": "100",
                                               "unrealized_pnl": unreal,
                                               "realized_pnl": realized}})

    ev = [eq(T0, 1000.0, "0", "0", "1"),
          eq(T0 + 1, 950.0, "-50", "0", "1"),
          {"ts_ms": t1, "event": "ORDER_FILLED", "symbol": "BTCUSDT", "client_order_id": "x",
           "side": "SELL", "price": "50", "qty": "1", "fee": "1", "fee_asset": "USDT",
           "maker": False},
          {"ts_ms": t1, "event": "TRADE_CLOSED", "symbol": "BTCUSDT", "side": "BUY",
           "qty": "1", "gross_pnl": "-50", "net_pnl": "-51", "holding_s": 3600},
          eq(t1, 950.0, "-50", "0", "1"),  # logged before the portfolio saw the close
          eq(t1, 949.0, "0", "-51", "0"),
          eq(t1 + HOUR, 949.0, "0", "-51", "0")]
    rep = build_report(tmp_path, events=ev, charts=False, meta={"initial_equity": 1000})
    btc = rep["symbols"]["BTCUSDT"]
    assert btc["pnl"]["net"] == "-51" and btc["end_equity"] == pytest.approx(949.0)
    assert btc["max_drawdown"] == pytest.approx(-0.051)  # not -0.101
    assert rep["portfolio"]["max_drawdown"] == pytest.approx(-0.051)


def test_fill_rate_follows_modifies_and_actions_per_fill(tmp_path: Path) -> None:
    """Futures modify: the order's qty is the new one; spot cancel-replace: the new order is
    placed for what is left. Actions = new orders + modify + cancel requests."""
    def ev(t: int, kind: str, **kw: Any) -> dict[str, Any]:
        return {"ts_ms": T0 + t, "event": kind, **kw}

    fill = {"fee": "0", "fee_asset": "USDT", "maker": True, "side": "BUY", "price": "10"}
    log = [_equity(T0, 1000.0),
           ev(1, "ORDER_PLACED", symbol="BTCUSDT", client_order_id="f1", qty="0.02"),
           ev(2, "ORDER_MODIFY_REQUESTED", symbol="BTCUSDT", client_order_id="f1",
              new_client_order_id="", qty="0.01", price="9"),
           ev(3, "ORDER_FILLED", symbol="BTCUSDT", client_order_id="f1", qty="0.01", **fill),
           ev(4, "ORDER_PLACED", symbol="BTCUSDT", client_order_id="f2", qty="1"),
           ev(5, "ORDER_CANCEL_REQUESTED", symbol="BTCUSDT", client_order_id="f2"),
           ev(1, "ORDER_PLACED", symbol="ETHUSDT", client_order_id="s1", qty="1"),
           ev(2, "ORDER_FILLED", symbol="ETHUSDT", client_order_id="s1", qty="0.4", **fill),
           ev(3, "ORDER_MODIFY_REQUESTED", symbol="ETHUSDT", client_order_id="s1",
              new_client_order_id="s1.2", qty="1", price="9"),
           ev(4, "ORDER_FILLED", symbol="ETHUSDT", client_order_id="s1.2", qty="0.6", **fill),
           _equity(T0 + HOUR, 1000.0)]
    rep = build_report(tmp_path, events=log, charts=False)
    btc, eth, p = rep["symbols"]["BTCUSDT"], rep["symbols"]["ETHUSDT"], rep["portfolio"]
    assert (btc["orders_placed"], btc["orders_filled"], btc["orders_partially_filled"]) == (2, 1, 0)
    assert (btc["order_actions"], btc["modify_requests"], btc["cancel_requests"]) == (4, 1, 1)
    assert btc["actions_per_fill"] == 4.0
    assert (eth["orders_placed"], eth["orders_filled"], eth["orders_partially_filled"]) == (2, 1, 1)
    assert eth["order_actions"] == 2 and eth["actions_per_fill"] == 1.0
    assert p["order_actions"] == 6 and p["actions_per_fill"] == pytest.approx(6 / 3)
    assert p["order_fill_rate"] == pytest.approx(2 / 4)
    assert rep["summary"]["actions_per_fill"] == p["actions_per_fill"]


def test_equity_csv_has_the_drawdown_level_and_iso_time_not_the_log_level(tmp_path: Path) -> None:
    from report.build import write_equity_csv

    ev = {"event": "EQUITY", "level": "INFO", "ts_ms": 1_735_689_600_000, "equity": "9500",
          "peak_equity": "10000", "drawdown": -0.05, "leverage": 1.5,
          "worst_case_leverage": 2.0, "drawdown_level": 1, "state": "ACTIVE"}
    write_equity_csv(tmp_path / "e.csv", [ev])
    assert (tmp_path / "e.csv").read_text().splitlines() == [
        "ts_ms,time,equity,peak_equity,drawdown,leverage,worst_case_leverage,level,state",
        "1735689600000,2025-01-01T00:00:00Z,9500,10000,-0.05,1.5,2.0,1,ACTIVE"]
