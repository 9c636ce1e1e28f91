"""Hand-worked metric examples: known equity curves and trades -> exact figures."""

from __future__ import annotations

import math
import statistics
from decimal import Decimal

import pytest

from models import metrics as mx

DAY = mx.DAY_MS
HOUR = 3_600_000
T0 = 1_735_689_600_000  # 2025-01-01 00:00 UTC


def _curve() -> tuple[list[int], list[float]]:
    """Start 100; end of day 0: 110; day 1: 99 (-10 % from the peak); day 2: 108.9; day 3
    unchanged; day 4: 121 (recovered, new peak); day 5: 115; days 6-8 no sample; day 9: 122."""
    pts = [(0, 0, 100.0), (0, 23, 110.0), (1, 23, 99.0), (2, 23, 108.9), (3, 23, 108.9),
           (4, 23, 121.0), (5, 23, 115.0), (9, 23, 122.0)]
    return [T0 + d * DAY + h * HOUR for d, h, _ in pts], [v for *_, v in pts]


def _expected_returns() -> list[float]:
    eod = [110, 99, 108.9, 108.9, 121, 115, 115, 115, 115, 122]  # days 6-8 carried forward
    prev = [100.0, *eod[:-1]]
    return [e / p - 1 for e, p in zip(eod, prev, strict=True)]


def test_end_of_day_equity_forward_fills_missing_days() -> None:
    t, v = _curve()
    days, eod = mx.end_of_day_equity(t, v)
    assert days == [T0 + d * DAY for d in range(10)]
    assert eod == [110, 99, 108.9, 108.9, 121, 115, 115, 115, 115, 122]


def test_daily_returns_start_from_first_sample() -> None:
    t, v = _curve()
    r = mx.daily_returns(t, v)
    assert r.tolist() == pytest.approx(_expected_returns(), abs=1e-15)
    assert r[0] == pytest.approx(0.10)
    assert r[1] == pytest.approx(-0.10)


def test_sharpe_and_sortino_hand_worked() -> None:
    # four days: +10 %, -10 %, +10 %, 0 %
    r = [0.1, -0.1, 0.1, 0.0]
    # mean 0.025; sum of squared deviations 0.0275 -> sample std sqrt(0.0275 / 3)
    assert mx.sharpe(r) == pytest.approx(0.025 / math.sqrt(0.0275 / 3) * math.sqrt(365))
    assert mx.sharpe(r) == pytest.approx(4.98862, abs=1e-5)
    # downside deviation sqrt((0 + 0.01 + 0 + 0) / 4) = 0.05
    assert mx.sortino(r) == pytest.approx(0.025 / 0.05 * math.sqrt(365))
    assert mx.sortino(r) == pytest.approx(9.55249, abs=1e-5)


def test_sharpe_of_curve_matches_independent_computation() -> None:
    t, v = _curve()
    r = _expected_returns()
    m = mx.equity_metrics(t, v)
    assert m["daily_returns"] == 10
    assert m["sharpe"] == pytest.approx(statistics.mean(r) / statistics.stdev(r)
                                        * math.sqrt(365))
    down = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / len(r))
    assert m["sortino"] == pytest.approx(statistics.mean(r) / down * math.sqrt(365))


def test_undefined_ratios_are_none() -> None:
    assert mx.sharpe([0.01]) is None
    assert mx.sharpe([0.01, 0.01, 0.01]) is None  # no dispersion
    assert mx.sortino([0.01, 0.02, 0.0]) is None  # no losing day
    assert mx.sortino([]) is None


def test_max_drawdown_and_durations() -> None:
    t, v = _curve()
    dd = mx.drawdown_stats(t, v)
    assert dd.max_drawdown == pytest.approx(99 / 110 - 1)
    assert dd.peak_ms == T0 + 23 * HOUR
    assert dd.trough_ms == T0 + DAY + 23 * HOUR
    assert dd.recovery_ms == T0 + 4 * DAY + 23 * HOUR
    assert dd.duration_ms == 4 * DAY  # peak (day 0) -> back above it (day 4)
    # second, shallower drawdown: peak day 4, recovered only day 9 -> 5 days under water
    assert dd.longest_drawdown_ms == 5 * DAY


def test_unrecovered_drawdown_runs_to_the_end() -> None:
    t = [T0, T0 + DAY, T0 + 2 * DAY, T0 + 3 * DAY]
    dd = mx.drawdown_stats(t, [100.0, 120.0, 90.0, 100.0])
    assert dd.max_drawdown == pytest.approx(-0.25)
    assert dd.recovery_ms is None
    assert dd.duration_ms == 2 * DAY
    assert dd.longest_drawdown_ms == 2 * DAY


def test_deeper_later_drawdown_replaces_recovered_one() -> None:
    t = [T0 + i * HOUR for i in range(6)]
    dd = mx.drawdown_stats(t, [100.0, 95.0, 101.0, 80.0, 90.0, 102.0])
    assert dd.max_drawdown == pytest.approx(80 / 101 - 1)
    assert (dd.peak_ms, dd.trough_ms, dd.recovery_ms) == (t[2], t[3], t[5])
    assert dd.duration_ms == 3 * HOUR


def test_no_drawdown() -> None:
    t = [T0, T0 + DAY]
    dd = mx.drawdown_stats(t, [100.0, 101.0])
    assert (dd.max_drawdown, dd.duration_ms, dd.recovery_ms) == (0.0, 0, None)
    assert mx.drawdown_series([100.0, 110.0, 99.0]).tolist() == pytest.approx([0, 0, -0.1])


def test_total_return_and_cagr() -> None:
    t, v = _curve()
    m = mx.equity_metrics(t, v)
    assert m["total_return"] == pytest.approx(0.22)
    span_days = 9 + 23 / 24
    assert m["cagr"] == pytest.approx(1.22 ** (365 / span_days) - 1)
    assert mx.cagr(100, 121, 2 * 365 * DAY) == pytest.approx(0.10)
    assert mx.cagr(100, 200, DAY - 1) is None  # under a day: no extrapolation
    assert mx.cagr(100, 0, 30 * DAY) == -1.0
    assert mx.total_return(0, 10) is None


def test_trade_stats_hand_worked() -> None:
    net = [Decimal("10"), Decimal("-5"), Decimal("0"), Decimal("20"), Decimal("-15")]
    # before fees and funding: the break-even trade made 1 gross, the -5 loser +1 gross
    gross = [Decimal("12"), Decimal("1"), Decimal("1"), Decimal("22"), Decimal("-13")]
    ts = mx.trade_stats(net, [60, 120, 180, 240, 300], gross)
    assert (ts.round_trips, ts.wins, ts.losses) == (5, 2, 2)  # by net PnL
    assert ts.win_rate == pytest.approx(0.4)
    assert ts.gross_profit == Decimal("36") and ts.gross_loss == Decimal("13")
    assert ts.gross_profit_factor == pytest.approx(36 / 13)
    assert ts.net_profit == Decimal("30") and ts.net_loss == Decimal("20")
    assert ts.net_profit_factor == pytest.approx(1.5)
    assert ts.net_pnl == Decimal("10") and ts.avg_net_pnl == Decimal("2")
    assert ts.avg_holding_s == pytest.approx(180)
    # without gross PnL the gross figures are the net ones
    plain = mx.trade_stats(net, [1] * 5)
    assert plain.gross_profit == Decimal("30") and plain.gross_profit_factor == pytest.approx(1.5)
    with pytest.raises(ValueError, match="length"):
        mx.trade_stats(net, [1] * 5, gross[:2])


def test_trade_stats_edge_cases() -> None:
    empty = mx.trade_stats([], [])
    assert empty.round_trips == 0 and empty.win_rate is None
    assert empty.net_profit_factor is None and empty.gross_profit_factor is None
    only_wins = mx.trade_stats([Decimal("1"), Decimal("2")], [1, 1])
    assert only_wins.win_rate == 1.0 and only_wins.net_profit_factor is None
    # a net loser that was a gross winner (the fees ate it): a net loss, no gross loss
    eaten = mx.trade_stats([Decimal("-1"), Decimal("3")], [1, 1], [Decimal("0.5"), Decimal("4")])
    assert eaten.net_profit_factor == pytest.approx(3.0) and eaten.gross_profit_factor is None


def test_fill_stats() -> None:
    fs = mx.fill_stats([(True, Decimal("100")), (True, Decimal("50")), (False, Decimal("50"))])
    assert (fs.fills, fs.maker_fills, fs.taker_fills) == (3, 2, 1)
    assert fs.maker_share == pytest.approx(2 / 3)
    assert fs.maker_taker_ratio == pytest.approx(2.0)
    assert fs.maker_notional_share == pytest.approx(0.75)
    assert mx.fill_stats([(True, Decimal("1"))]).maker_taker_ratio is None


def test_order_fill_rate() -> None:
    placed = {"a": Decimal("1"), "b": Decimal("2"), "c": Decimal("1"), "d": Decimal("1")}
    filled = {"a": Decimal("1"), "b": Decimal("1"), "c": Decimal("1.5")}
    r = mx.order_fill_rate(placed, filled)
    assert r == {"orders_placed": 4, "orders_filled": 2, "orders_partially_filled": 1,
                 "order_fill_rate": 0.5}
    assert mx.order_fill_rate({}, {})["order_fill_rate"] is None


def test_time_in_levels() -> None:
    assert mx.time_in_levels([0, 10, 30, 35], [0, 1, 0, 2], 50) == {0: 15, 1: 20, 2: 15}


def test_monthly_returns() -> None:
    jan1, jan31, feb15, mar2 = T0, T0 + 30 * DAY, T0 + 45 * DAY, T0 + 60 * DAY
    m = mx.monthly_returns([jan1, jan31, feb15, mar2], [100.0, 110.0, 99.0, 99.0])
    assert list(m) == ["2025-01", "2025-02", "2025-03"]
    assert m["2025-01"] == pytest.approx(0.1)
    assert m["2025-02"] == pytest.approx(-0.1)
    assert m["2025-03"] == pytest.approx(0.0)


def test_monthly_returns_midnight_end_and_quiet_months() -> None:
    """A run ending at 00:00 on the 1st has no extra month; months without a sample (a halted
    account logs no equity) carry the previous month-end: 0 %."""
    feb1, apr1, may1 = T0 + 31 * DAY, T0 + 90 * DAY, T0 + 120 * DAY
    m = mx.monthly_returns([T0, T0, T0 + 10 * DAY, feb1, apr1], [100.0, 100.0, 90.0, 99.0, 110.0])
    assert list(m) == ["2025-01", "2025-02", "2025-03"]  # Feb 1 00:00 closes January
    assert m["2025-01"] == pytest.approx(-0.01)
    assert m["2025-02"] == 0.0  # no sample in February (nor in March before the end)
    assert m["2025-03"] == pytest.approx(110 / 99 - 1)  # Apr 1 00:00 closes March
    m = mx.monthly_returns([T0, T0 + DAY, may1 + HOUR], [100.0, 50.0, 50.0])
    assert list(m) == ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"]
    assert m["2025-01"] == pytest.approx(-0.5) and set(list(m.values())[1:]) == {0.0}


def test_clip_series_covers_the_span() -> None:
    t, v = mx.clip_series([0, 10, 20, 30], [1, 2, 3, 4], 15, 25)
    assert (t.tolist(), v.tolist()) == ([15, 20], [2.0, 3.0])
    t, v = mx.clip_series([10, 20], [1, 2], 0, 15)
    assert (t.tolist(), v.tolist()) == ([10], [1.0])
    t, v = mx.clip_series([10, 20], [1, 2], 30, 40)
    assert (t.tolist(), v.tolist()) == ([30], [2.0])


def test_weighted_index_buy_and_hold() -> None:
    series = {"A": ([0, 10, 20], [10.0, 20.0, 20.0]), "B": ([5, 15], [100.0, 50.0])}
    t, v = mx.weighted_index(series, {"A": 1.0, "B": 1.0}, start_value=1000)
    assert t.tolist() == [5, 10, 15, 20]
    assert v.tolist() == pytest.approx([1000, 1500, 1250, 1250])
    t, v = mx.weighted_index(series, {"A": 3.0, "B": 1.0})
    assert v[1] == pytest.approx(0.75 * 2 + 0.25 * 1)
