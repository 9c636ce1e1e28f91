"""The terminal of ``python run.py run`` (``supervision.terminal``): following the JSON log
across rotations, and the session summary (the report's accounting)."""

from __future__ import annotations

import io
import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from report.analysis import analyse
from supervision import terminal as con
from tests.infra.test_console import SIM, _ts, rec


# -- following the log ------------------------------------------------------------------------
def _append(path: Path, *recs: dict[str, Any], partial: str = "") -> None:
    with open(path, "a", encoding="utf-8") as fh:
        for r in recs:
            fh.write(json.dumps(r) + "\n")
        fh.write(partial)


def test_follower_starts_at_the_end_and_follows_rotation(tmp_path: Path) -> None:
    path = tmp_path / "gridbot.jsonl"
    _append(path, rec("OLD_SESSION"))
    seen: list[str] = []
    f = con.LogFollower(path, lambda r: seen.append(r["event"]))
    _append(path, rec("A"), partial='{"event": "B", "ts"')
    f.poll()
    assert seen == ["A"]  # the earlier session is skipped, the half-written line waits
    with open(path, "a") as fh:
        fh.write(': "x"}\nnot json\n')
    f.poll()
    assert seen == ["A", "B"] and f.bad_lines == 1
    _append(path, rec("C"))
    os.rename(path, tmp_path / "gridbot.2026-01-05_13-00-00.jsonl")  # loguru's rotation
    f.poll()
    assert seen[-1] == "C"
    _append(path, rec("D"))
    f.poll()
    _append(path, rec("E"))
    f.stop()
    assert seen == ["A", "B", "C", "D", "E"]


def test_follower_of_a_file_not_there_yet(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "gridbot.jsonl"
    seen: list[str] = []
    f = con.LogFollower(path, lambda r: seen.append(r["event"]), interval_s=0.01)
    f.start()
    path.parent.mkdir()
    _append(path, rec("FIRST"))
    f.stop()
    assert seen == ["FIRST"]


# -- the session summary -----------------------------------------------------------------------
def _session() -> list[dict[str, Any]]:
    eq = {"peak_equity": "10000", "drawdown": 0.0, "leverage": 0.0, "worst_case_leverage": 0.0,
          "leverage_cap": 6.0, "drawdown_level": 0, "state": "ACTIVE",
          "positions": {"ETHUSDT": {"qty": "0", "unrealized_pnl": "0"}}}
    return [
        rec("BOT_READY", ts=_ts(0)),
        rec("PORTFOLIO_STATUS", ts=_ts(0), ts_ms=500,
            portfolio={"equity": "0", "initial_equity": None}),  # starting: not a sample
        rec("EQUITY", ts=_ts(1), ts_ms=1_000, equity="10000", **eq),
        rec("ORDER_FILLED", symbol="ETHUSDT", ts=_ts(2), ts_ms=2_000, side="SELL",
            price="3353.35", qty="0.281", fee="0.18845827", fee_asset="USDT", maker=True,
            client_order_id="a"),
        rec("PORTFOLIO_STATUS", ts=_ts(3), ts_ms=3_000,
            portfolio={"equity": "9950", "drawdown": -0.005, "leverage": 0.1}),
        rec("FUNDING_PAID", symbol="ETHUSDT", ts=_ts(4), ts_ms=4_000, funding_id="f",
            amount="0.33"),
        rec("ORDER_FILLED", symbol="ETHUSDT", ts=_ts(5), ts_ms=5_000, side="BUY",
            price="3344.85", qty="0.281", fee="0.18798057", fee_asset="USDT", maker=False,
            client_order_id="b"),
        rec("TRADE_CLOSED", symbol="ETHUSDT", ts=_ts(5), ts_ms=5_001, side="SELL",
            qty="0.281", entry_price="3353.35", exit_price="3344.85", gross_pnl="2.3885",
            fees="0.37643884", funding="0.33", net_pnl="2.34206116", holding_s=3.0),
        rec("EQUITY", ts=_ts(65), ts_ms=65_000, equity="10002.34206116", **eq),
    ]


def test_session_summary_uses_the_reports_accounting() -> None:
    totals = con.SessionTotals()
    for r in _session():
        totals.feed(r)
    s = con.session_summary(totals, sim_span=(SIM, SIM + 3_900_000))
    assert (s.trades, s.wins, s.fills) == (1, 1, 2) and s.maker_share == 0.5
    assert Decimal(s.net_pnl) == Decimal("2.34206116")
    assert Decimal(s.fees) == Decimal("0.37643884") and Decimal(s.funding) == Decimal("0.33")
    assert s.start_equity == 10000 and s.end_equity == pytest.approx(10002.34206116)
    assert s.max_drawdown == pytest.approx(-0.005)  # the STATUS sample between two EQUITY
    assert s.wall_s == 65
    # the same figures as the report built from the same records
    report, _ = analyse([r if r["event"] != "PORTFOLIO_STATUS" else
                         {"event": "EQUITY", "ts_ms": 3_000, "equity": "9950"}
                         for r in _session()])
    assert report["portfolio"]["pnl"]["fees_paid"] == s.fees
    assert report["portfolio"]["max_drawdown"] == pytest.approx(s.max_drawdown)
    lines = con.render_summary(s, log_path="/x/logs/gridbot.jsonl")
    text = "\n".join(lines)
    assert lines[0].startswith("-- session summary (1m05s; sim 2025-01-02 10:05 -> 11:10, 1h05m)")
    assert "net PnL  +2.34 USDT (+0.02%)   fees 0.38   funding +0.33" in text
    assert "trades   1 closed, 1 won, net +2.34   fills 2, 50% maker" in text
    assert "equity   10,000.00 -> 10,002.34 USDT   max drawdown -0.50%" in text
    assert "python run.py report /x/logs --out DIR" in text


def test_session_summary_without_equity_says_so() -> None:
    totals = con.SessionTotals()
    totals.feed(rec("BOT_READY"))
    s = con.session_summary(totals)
    assert "no equity" in s.note
    assert "no equity" in "\n".join(con.render_summary(s))


def test_session_console_follows_and_summarises(tmp_path: Path) -> None:
    path = tmp_path / "gridbot.jsonl"
    _append(path, rec("EQUITY", equity="1"))  # an earlier session: not in this summary
    out = io.StringIO()
    sc = con.SessionConsole(path, stream=out)
    sc.start()
    _append(path, *_session())
    sc.stop()
    sc.print_summary()
    text = out.getvalue()
    assert "FILL" in text and "TRADE" in text and "STATUS" in text and "FUND" in text
    assert "session summary" in text and "net PnL  +2.34 USDT" in text
