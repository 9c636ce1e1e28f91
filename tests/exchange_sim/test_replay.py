"""Replay clock and feeds: no look-ahead in klines, time-ordered bars and funding."""

from decimal import Decimal

import numpy as np
import pytest

from exchange_sim.replay import (
    Feed,
    FundingEvent,
    Replay,
    SimClock,
    group_open,
    interval_problem,
)
from exchange_sim.specs import default_specs
from models.enums import Market

M = 60_000


def feed(n: int = 10, t0: int = 0) -> Feed:
    f = default_specs(Market.SPOT)["BTCUSDT"]
    ot = np.arange(n, dtype=np.int64) * M + t0
    o = 100.0 + np.arange(n)
    return Feed("spot", "BTCUSDT", f, M, ot, o, o + 0.5, o - 0.5, o + 0.25, np.full(n, 2.0))


def test_klines_never_show_the_future() -> None:
    f = feed()
    now = 3 * M  # bars 0..2 closed, bar 3 just opened
    rows = f.klines(M, now, None, None, 500)
    assert [r[0] for r in rows] == [0, M, 2 * M, 3 * M]
    closed, cur = rows[2], rows[3]
    assert closed[2] == "102.50" and closed[4] == "102.25" and closed[5] == "2"
    # the bar that just opened shows its open only
    assert cur[1] == cur[2] == cur[3] == cur[4] == "103.00" and cur[5] == "0"
    assert cur[8] == 0 and rows[:3] == f.klines(M, now + 30_000, None, None, 500)[:3]


def test_the_bar_in_progress_shows_its_path_so_far() -> None:
    f = feed()  # bar 3: O 103, H 103.5, L 102.5, C 103.25: O -> L -> H -> C, length 1.75
    ot, dur = 3 * M, M - 1
    rows = {ms: f.klines(M, ot + ms, None, None, 500)[-1] for ms in (0, dur * 2 // 7,
                                                                        dur * 6 // 7, M - 1)}
    olhcv = {ms: (r[1], r[2], r[3], r[4], r[5]) for ms, r in rows.items()}
    assert olhcv[0] == ("103.00", "103.00", "103.00", "103.00", "0")
    assert olhcv[dur * 2 // 7] == ("103.00", "103.00", "102.51", "102.51", "0.5714")
    assert olhcv[dur * 6 // 7][:4] == ("103.00", "103.49", "102.50", "103.49")
    assert olhcv[M - 1] == ("103.00", "103.50", "102.50", "103.25", "2")  # the whole bar
    assert all(r[6] == ot + M - 1 for r in rows.values())
    # closed: the same row for good
    assert f.klines(M, ot + M, None, None, 500)[3][1:6] == ["103.00", "103.50", "102.50",
                                                            "103.25", "2"]
    assert f.progress(3, ot + M - 1).share == 1


def test_aggregated_candles_align_like_binance() -> None:
    f = feed(60, t0=0)
    fives = f.klines(5 * M, 59 * M, None, None, 100)  # 15m groups of 5m from 1m bars
    assert [r[0] for r in fives][:3] == [0, 5 * M, 10 * M]
    (q,) = f.klines(15 * M, 15 * M, 0, None, 1)
    assert (q[0], q[6]) == (0, 15 * M - 1)
    assert (q[1], q[2], q[3], q[4], q[5]) == ("100.00", "114.50", "99.50", "114.25", "30")
    # weeks open on Mondays: 2025-01-06 00:00 UTC holds Tuesday the 7th to Sunday the 12th
    monday, week = 1_736_121_600_000, 604_800_000
    assert group_open(monday, week) == group_open(monday + week - 1, week) == monday
    assert group_open(monday - 1, week) == monday - week
    # Binance's own klines example: a weekly candle 1499040000000 .. 1499644799999
    assert group_open(1_499_644_799_999, week) == 1_499_040_000_000
    assert group_open(1_736_208_000_000 + 1, 14_400_000) == 1_736_208_000_000


def test_which_intervals_are_served() -> None:
    five = 5 * M
    assert all(interval_problem(iv, five) is None
               for iv in ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d",
                          "1w"))
    assert interval_problem("1m", five) == "1m klines are finer than the replayed 5m bars"
    assert "finer" in (interval_problem("3m", five) or "")
    assert "whole multiple" in (interval_problem("5m", 3 * M) or "")
    assert "not a kline interval" in (interval_problem("1M", five) or "")


def test_klines_start_end_limit() -> None:
    f = feed()
    now = 9 * M
    assert [r[0] for r in f.klines(M, now, 2 * M, None, 3)] == [2 * M, 3 * M, 4 * M]
    assert [r[0] for r in f.klines(M, now, None, 5 * M, 2)] == [4 * M, 5 * M]
    assert [r[0] for r in f.klines(M, now, None, None, 2)] == [8 * M, 9 * M]


def test_aggregated_interval_is_built_so_far() -> None:
    f = feed()
    now = 4 * M  # bars 0..3 closed; 5m group [0, 5M) still open (bar 4 open)
    (row,) = f.klines(5 * M, now, None, None, 10)
    assert row[0] == 0 and row[6] == 5 * M - 1
    assert row[1] == "100.00" and row[2] == "104.00"  # high: bar 4's open so far
    assert row[4] == "104.00" and row[5] == "8"


def test_replay_orders_bars_before_funding_at_same_time() -> None:
    f = feed(5)
    r = Replay([f], [FundingEvent(2 * M, "BTCUSDT", Decimal("0.0001"))])
    out = r.due(2 * M)
    assert [(k, i if k == "bar" else a.ts_ms) for k, a, i in out] == [
        ("bar", 0), ("bar", 1), ("funding", 2 * M)]
    assert r.due(2 * M) == []
    assert r.next_time() == 3 * M


def test_seek_marks_history_without_events() -> None:
    f = feed(5)
    r = Replay([f], [FundingEvent(M, "BTCUSDT", Decimal("0.0002"))])
    r.seek(3 * M)
    assert f.idx == 3 and f.last_close == Decimal("102.25")
    assert r.last_funding["BTCUSDT"].rate == Decimal("0.0002")
    assert [i for _, _, i in r.due(4 * M)] == [3]


def test_clock_speed_pause_and_jump() -> None:
    wall = [100.0]
    c = SimClock(1_000, 0.0, wall=lambda: wall[0])
    wall[0] += 5
    assert c.now_ms() == 1_000  # paused
    c.set_speed(60)
    wall[0] += 1
    assert c.now_ms() == 61_000
    c.jump(-500)
    assert c.now_ms() == 60_500
    c.set_speed(0)
    wall[0] += 10
    assert c.now_ms() == 60_500
    c.set_base(100_000)
    assert c.now_ms() == 99_500
    with pytest.raises(ValueError):
        c.set_speed(-1)
