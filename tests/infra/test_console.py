"""The terminal's lines: one readable line per event (``infra.console.render``), colour,
verbosity, and the sink's throttling and sim time."""

from __future__ import annotations

import datetime as _dt
import io
import re
from typing import Any

from infra import console as con
from infra.console import ALL, NORMAL, QUIET, VERBOSE, View, render

UTC = _dt.timezone.utc
ANSI = re.compile(r"\x1b\[[0-9;]*m")
T0 = "2026-01-05T13:29:16.250Z"
SIM = 1_735_812_300_000  # 2025-01-02 10:05 UTC


def rec(event: str, level: str = "INFO", symbol: str = "", ts: str = T0, **fields: Any
        ) -> dict[str, Any]:
    """A record as the JSON log holds it."""
    return {"ts": ts, "level": level, "event": event, "symbol": symbol, "msg": event,
            "pid": 1, "ts_ms": 1_767_619_756_250, **fields}


def line(r: dict[str, Any], verbosity: int = NORMAL, **view: Any) -> str | None:
    return render(r, View(verbosity=verbosity, tz=UTC, **view))


def fields_of(text: str) -> list[str]:
    """The line split on its column gaps (two or more spaces)."""
    return re.split(r"\s{2,}", text.strip())


FILL = rec("ORDER_FILLED", symbol="BTCUSDT", client_order_id="gb-BTC-L1-0", key="L1",
           kind="ENTRY", trade_id=7, side="BUY", price="94210.50", qty="0.012",
           fee="0.2261052", fee_asset="USDT", maker=True, cum_qty="0.012", realized_pnl="0")


def test_fill_line() -> None:
    text = line(FILL, sim_column=True, sim_ms=SIM)
    assert fields_of(text) == ["13:29:16", "sim 2025-01-02 10:05", "BTCUSDT", "FILL",
                               "BUY 0.012 @ 94,210.5", "maker", "fee 0.23", "entry L1"]
    bnb = dict(FILL, fee="0.00001234", fee_asset="BNB", maker=False, kind="FLATTEN",
               key="flatten")
    assert fields_of(line(bnb))[-3:] == ["taker", "fee 0.00001234 BNB", "flatten"]


def test_no_sim_column_off_the_embedded_exchange() -> None:
    assert "sim" not in line(FILL)
    assert "sim ----" in line(FILL, sim_column=True)  # sim venue, time not known yet


def test_trade_closed_line_with_net_pnl() -> None:
    r = rec("TRADE_CLOSED", symbol="ETHUSDT", side="SELL", qty="0.281", entry_price="3353.35",
            exit_price="3344.85", gross_pnl="2.38850", fees="0.37643884", funding="-0.12",
            net_pnl="1.89206116", holding_s=300.125)
    assert fields_of(line(r))[3:] == ["short 0.281 closed", "3,353.35 -> 3,344.85",
                                      "net +1.89 USDT", "fees 0.38", "funding -0.12",
                                      "held 5m"]
    loss = dict(r, side="BUY", net_pnl="-0.209204", funding="0")
    text = line(loss, color=True)
    assert "long 0.281 closed" in text and "funding" not in text
    assert "\x1b[31mnet -0.21 USDT" in text  # a loss in red
    assert "\x1b[32mnet +1.89 USDT" in line(r, color=True)
    avg = dict(r, entry_price="94770.95833333333333", exit_price="94911")
    assert "94,770.96 -> 94,911.00" in line(avg)  # an average entry at the exit's precision


PF = {"restarts": 0, "equity": "10012.34", "peak_equity": "10040", "initial_equity": "10000",
      "drawdown": -0.00276, "drawdown_level": 0, "leverage": 1.2, "worst_case_leverage": 2.5,
      "leverage_cap": 6.0, "trading_state": "ACTIVE", "halted": False, "safe_mode": False,
      "positions": {"BTCUSDT": {"qty": "0.012", "unrealized_pnl": "1.5"},
                    "ETHUSDT": {"qty": "-0.3", "unrealized_pnl": "-0.4"},
                    "SOLUSDT": {"qty": "0", "unrealized_pnl": "0"}}}


def test_portfolio_status_line() -> None:
    r = rec("PORTFOLIO_STATUS", symbols={"BTCUSDT": "running", "ETHUSDT": "running"},
            portfolio=PF, restarts=0)
    syms = {"BTCUSDT": rec("STATUS", open_orders=9), "ETHUSDT": rec("STATUS", open_orders=5)}
    assert fields_of(line(r, symbols=syms))[1:] == [
        "STATUS", "equity 10,012.34 USDT (+0.12%)", "upnl +1.10", "dd -0.3%",
        "lev 1.20x (worst 2.50x of 6x)", "pos BTC +0.012 ETH -0.3", "orders 14"]
    bad = dict(PF, drawdown=-0.112, drawdown_level=2, trading_state="REDUCING",
               positions={})
    text = line(dict(r, portfolio=bad, symbols={"BTCUSDT": "stopped", "ETHUSDT": "running"},
                     restarts=2))
    assert "dd -11.2% level 2 deleveraged" in text and "REDUCING" in text
    assert "BTCUSDT stopped" in text and "restarts 2" in text and "pos flat" in text
    assert "orders" not in text  # no per-symbol STATUS seen yet
    starting = dict(r, portfolio=dict(PF, equity="0", initial_equity=None, positions={}))
    assert line(starting) is None  # the portfolio has not read the account yet
    assert "equity not known yet" in line(starting, VERBOSE)


def test_per_symbol_status_only_when_verbose() -> None:
    r = rec("STATUS", symbol="SOLUSDT", state="running", position="-2", entry_price="192.31",
            mark_price="192.26", unrealized_pnl="0.1", realized_pnl="-0.076924",
            fees="0.076924", open_orders=11, L=0.027, S=0.26)
    assert line(r) is None
    assert fields_of(line(r, VERBOSE))[2:] == [
        "status", "pos -2 @ 192.31", "mark 192.26", "upnl +0.10", "realized -0.08",
        "fees 0.08", "orders 11", "L 0.03 S 0.26"]


def test_orders_placed_and_canceled_only_when_verbose() -> None:
    placed = rec("ORDER_PLACED", symbol="SOLUSDT", client_order_id="gb-SOL-L-1-0", key="L-1",
                 side="BUY", type="LIMIT", price="189.31", qty="2", reduce_only=False,
                 kind="ENTRY", strategy_context={"L": 0.1})
    canceled = rec("ORDER_CANCELED", symbol="SOLUSDT", client_order_id="gb-SOL-L-1-0",
                   key="L-1", filled_qty="0.5", reason="CANCELED")
    amend = rec("ORDER_MODIFY_REQUESTED", symbol="SOLUSDT", client_order_id="gb-SOL-TP-S-0",
                price="191.39", qty="2", reason="take_profit;reprice")
    for r in (placed, canceled, amend):
        assert line(r) is None
    assert fields_of(line(placed, VERBOSE))[2:] == ["order", "BUY 2 @ 189.31", "limit",
                                                     "entry L-1"]
    assert fields_of(line(canceled, VERBOSE))[2:] == ["cancel", "L-1 (filled 0.5)"]
    assert "gb-SOL-TP-S-0 -> 2 @ 191.39" in line(amend, VERBOSE)


def test_funding_drawdown_halt_and_state_lines() -> None:
    paid = rec("FUNDING_PAID", symbol="BTCUSDT", funding_id="f1", amount="-1.234")
    assert fields_of(line(paid))[2:] == ["FUND", "funding paid 1.23 USDT"]
    assert "funding received 0.33 USDT" in line(dict(paid, amount="0.33"))
    level = rec("DRAWDOWN_LEVEL", "WARNING", kind="LEVEL", drawdown_level=1, previous_level=0,
                drawdown=-0.0512, size_factor=0.5, tp_factor=1.0, leverage_cap=3.0,
                halted=False, safe_mode=False, reason="", actions=[])
    assert fields_of(line(level, QUIET))[1:] == [
        "DD", "brake level 0 -> 1 reduced", "drawdown -5.1%", "size x0.50", "cap 3x"]
    alert = dict(level, kind="ALERT", drawdown=-0.031, reason="drawdown alert -3%")
    assert "drawdown alert: -3.1%" in line(alert)
    halt = dict(level, kind="HALT", drawdown_level=3, drawdown=-0.152, halted=True,
                reason="hard stop", actions=["CANCEL_ALL", "FLATTEN"])
    text = line(halt, QUIET)
    assert fields_of(text)[1] == "HALT" and "trading halted at drawdown -15.2%: hard stop" \
        in text and "CANCEL_ALL, FLATTEN" in text and "python run.py resume" in text
    resume = rec("DRAWDOWN_LEVEL", kind="RESUME", drawdown_level=0, previous_level=3,
                 drawdown=-0.02, leverage_cap=6.0, reason="manual resume")
    assert "resumed level 3 -> 0 normal" in line(resume)
    state = rec("TRADING_STATE", "WARNING", state="REDUCING", previous="ACTIVE",
                reason="leverage above cap")
    assert fields_of(line(state, QUIET))[1:] == ["STATE",
                                                 "trading ACTIVE -> REDUCING: leverage above cap"]
    halted = rec("HALTED", "WARNING", symbol="ETHUSDT", reason="drawdown", flatten=True,
                 position_qty="-0.3")
    assert "halted: drawdown  flattening  position -0.3" in line(halted, QUIET)


def test_restart_and_reconnect_lines() -> None:
    r = rec("ACTOR_RESTARTED", "WARNING", symbol="BTCUSDT", msg="order restarted: exited",
            actor="order", reason="exited", restart_count=1, restore_ms=9.4, actor_pid=5)
    assert fields_of(line(r, QUIET))[2:] == ["RESTART", "order restarted (exited)",
                                              "restart #1", "state restored in 9 ms"]
    rc = rec("RECONNECTED", symbol="ETHUSDT", gap_ms=3200, klines_repaired=1,
             trades_repaired=0, detail="")
    assert fields_of(line(rc))[2:] == ["RECONN", "streams reconnected after 3s",
                                       "repaired 1 bars, 0 trades"]


def test_start_and_stop_lines() -> None:
    ready = rec("BOT_READY", msg="gridbot running (admin port 1, state s)", venue="sim",
                symbols=["BTCUSDT", "ETHUSDT"], weights={"BTCUSDT": 0.55, "ETHUSDT": 0.45},
                markets={"BTCUSDT": "futures", "ETHUSDT": "futures"}, leverage_cap=6.0,
                strategy="adaptive")
    assert fields_of(line(ready))[1:] == [
        "START", "trading BTCUSDT 55%, ETHUSDT 45% (futures) on sim, adaptive strategy, "
                 "leverage cap 6x"]
    assert "initial equity 10,000.00 USDT" in line(rec("EQUITY_INITIALIZED",
                                                       initial_equity="10000"))
    assert "graceful shutdown (mode flatten)" in line(
        rec("SHUTDOWN", msg="graceful shutdown (mode flatten)", mode="flatten"))
    flat = rec("TRADING_STOPPED", symbol="BTCUSDT", mode="flatten", position_qty="0")
    left = dict(flat, mode="leave", position_qty="0.012")
    assert line(flat) is None and "stopped trading (flatten)" in line(flat, VERBOSE)
    assert "stopped trading (leave)  position 0.012" in line(left)
    every = rec("TRADING_STOPPED", msg="all symbols stopped trading", open_orders=0,
                missing=[])
    assert fields_of(line(every))[1:] == ["STOP", "all symbols stopped trading"]


def test_reconciliation_shown_when_it_repaired_something() -> None:
    nothing = rec("RECONCILED", symbol="BTCUSDT", fills_applied=0, adopted=0, canceled=0,
                  unmatched_trades=0, open_orders=0)
    assert line(nothing) is None and "nothing to repair" in line(nothing, VERBOSE)
    repaired = dict(nothing, fills_applied=2, canceled=1, open_orders=4)
    assert "fills applied 2, canceled 1; 4 open orders" in line(repaired)


def test_every_warning_and_error_is_shown_even_quiet() -> None:
    blocked = rec("RISK_BLOCKED", "WARNING", symbol="BTCUSDT", key="L-5", side="BUY",
                  reason="UTILIZATION", detail="8303.2464 > 8048.836713455100000000000000",
                  stage="portfolio")
    assert fields_of(line(blocked, QUIET))[2:] == [
        "BLOCK", "order blocked BUY L-5: UTILIZATION (8303.2464 > 8,048.84)", "[portfolio]"]
    unknown = rec("STREAMDISCONNECTED", "WARNING", symbol="BTCUSDT", reason="closed",
                  stream="kline", ts_event_ns=5)
    text = line(unknown, QUIET)
    assert fields_of(text)[2] == "WARN" and "STREAMDISCONNECTED" in text \
        and "reason=closed" in text
    err = rec("GATEWAY_ERROR", "ERROR", symbol="ETHUSDT", msg="ValueError: boom",
              exception="Traceback (most recent call last):\n  File x\nValueError: boom\n")
    text = line(err, QUIET, color=True)
    assert "ERROR" in text and "GATEWAY_ERROR" in text and "ValueError: boom" in text
    assert "\x1b[1;31m" in text and "Traceback" not in text
    crit = rec("ROOT_LOST", "CRITICAL", msg="root supervisor stopped answering")
    assert fields_of(line(crit, QUIET))[1:] == ["CRIT", "ROOT_LOST",
                                                "root supervisor stopped answering"]
    failed = rec("ACTOR_FAILED", "WARNING", symbol="ETHUSDT", msg="order failed: process exited",
                 actor="order", reason="process exited", actor_pid=29359)
    assert fields_of(line(failed, QUIET))[2:] == [
        "WARN", "ACTOR_FAILED", "order failed: process exited", "actor_pid=29359"]
    plain = rec("LOG", "WARNING", msg="sim: something odd", logger="Thespian")
    assert "sim: something odd" in line(plain, QUIET)


def test_quiet_hides_info_and_all_shows_every_record() -> None:
    strat = rec("STRATEGY", symbol="BTCUSDT", close=94015.4, L=float("nan"), S=0.0)
    debug = rec("ORDER_ADJUSTED", "DEBUG", symbol="BTCUSDT", key="L1", price="1")
    other = rec("WARMUP", symbol="BTCUSDT", bars=368, warm=True, complete=True)
    log = rec("LOG", msg="sim listening on http://127.0.0.1:1")
    for r in (FILL, strat, debug, other, log):
        assert line(r, QUIET) is None
    assert line(strat, VERBOSE) is None and line(debug, VERBOSE) is None
    assert line(other, VERBOSE) is not None and line(log, VERBOSE) is not None
    for r in (strat, debug, other, log, FILL):
        assert line(r, ALL) is not None
    assert con.shown_at(rec("SOMETHING_NEW")) == VERBOSE


def test_odd_records_never_raise() -> None:
    for r in (rec("ORDER_FILLED", price=None, qty={"x": 1}, maker="?"),
              rec("PORTFOLIO_STATUS", portfolio="not a dict", symbols=[1]),
              rec("TRADE_CLOSED", net_pnl=[], holding_s="long"),
              rec("DRAWDOWN_LEVEL", drawdown_level="high"),
              {"event": "ORDER_FILLED"}, {}, {"ts": 5, "level": None}):
        text = render(r, View(verbosity=ALL))
        assert text is None or isinstance(text, str)
    assert render({"level": "ERROR"}, View(verbosity=QUIET)).split()[0] == "--:--:--"


def test_colour_only_on_a_terminal_and_not_with_no_color() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert con.use_color(Tty(), {}) is True
    assert con.use_color(Tty(), {"NO_COLOR": "1"}) is False
    assert con.use_color(Tty(), {"TERM": "dumb"}) is False
    assert con.use_color(io.StringIO(), {}) is False
    assert ANSI.search(line(FILL)) is None
    assert ANSI.sub("", line(FILL, color=True)) == line(FILL)


def test_verbosity_from_flags_and_config_level() -> None:
    assert con.verbosity_from(0, False, "INFO") == NORMAL
    assert con.verbosity_from(0, True, "DEBUG") == QUIET
    assert con.verbosity_from(1, False) == VERBOSE and con.verbosity_from(5, False) == ALL
    assert con.verbosity_from(0, False, "DEBUG") == VERBOSE
    assert con.verbosity_from(0, False, "WARNING") == QUIET


# -- the sink -------------------------------------------------------------------------------
def _ts(sec: float) -> str:
    return _dt.datetime.fromtimestamp(1_767_619_756 + sec, UTC).isoformat().replace(
        "+00:00", "Z")


def test_console_one_status_line_per_minute_with_open_orders_and_sim_time() -> None:
    out = io.StringIO()
    c = con.Console(out, sim_venue=True, tz=UTC, color=False,
                    sim_clock=lambda t: int((t - 1_767_619_756) * 60_000) + SIM)
    c.feed(rec("PORTFOLIO_STATUS", ts=_ts(-1), portfolio={"equity": "0"}))  # not counted
    for sec in (0, 3, 50, 62, 130):
        c.feed(rec("STATUS", symbol="BTCUSDT", ts=_ts(sec), open_orders=int(sec)))
        c.feed(rec("PORTFOLIO_STATUS", ts=_ts(sec), portfolio=PF, symbols={}))
    lines = out.getvalue().splitlines()
    assert [fields_of(x)[1] for x in lines] == ["sim 2025-01-02 10:05", "sim 2025-01-02 11:07",
                                                "sim 2025-01-02 12:15"]
    assert [fields_of(x)[-1] for x in lines] == ["orders 0", "orders 62", "orders 130"]
    assert c.first_sim_ms == SIM - 60_000 and c.last_sim_ms == SIM + 130 * 60_000


def test_console_sim_time_falls_back_to_the_latest_bar() -> None:
    out = io.StringIO()
    c = con.Console(out, sim_venue=True, tz=UTC, color=False)
    c.feed(FILL)
    c.feed(rec("STRATEGY", symbol="BTCUSDT", ts_ms=SIM, close=1.0))
    c.feed(FILL)
    first, second = out.getvalue().splitlines()
    assert "sim ------" in first and "sim 2025-01-02 10:05" in second


def test_console_survives_a_closed_terminal() -> None:
    class Gone(io.StringIO):
        def write(self, s: str) -> int:
            raise OSError(5, "Input/output error")

    c = con.Console(Gone(), color=False)
    c.feed(FILL)
    c.feed(FILL)
    assert c.broken and c.lines == 0
