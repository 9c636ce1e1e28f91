"""Performance metrics on equity curves and closed trades (pure: no I/O, no clock).

Methods (also in docs/REPORT.md):

* Time is UTC milliseconds. A crypto year has 365 days (markets trade every day).
* Daily returns come from end-of-day equity: the last sample of each UTC day, days without a
  sample carrying the previous day's value forward. The first day's return is measured
  against the first sample (the starting equity), so a curve spanning N calendar days gives
  N daily returns.
* Sharpe = mean(r) / std(r, ddof=1) * sqrt(365), risk-free rate 0. ``None`` with fewer than
  two returns or zero dispersion.
* Sortino = mean(r) / DD * sqrt(365) with the downside deviation
  DD = sqrt(mean(min(r, 0)^2)) over all daily returns (target 0). ``None`` when no day lost.
* Drawdown = equity / running peak - 1 (<= 0), on every sample (not only daily). The max
  drawdown's duration runs from the peak before it to the first sample back at or above that
  peak (or to the end of the curve when it never recovered); ``longest_drawdown_ms`` is the
  longest such underwater stretch of any depth.
* CAGR = (end / start) ^ (365 days / span) - 1; ``None`` for spans under one day, where the
  extrapolation means nothing.
* Trades: a round trip is one TRADE_CLOSED (partial closes count separately). Win = net PnL
  > 0, loss = net PnL < 0 (break-even is neither); win rate = wins / round trips.
  Gross profit / gross loss = sum of the positive / |sum of the negative| round-trip gross
  PnL (price move times quantity, before fees and funding); gross profit factor = gross
  profit / gross loss. Net profit / net loss: the same on net PnL (after the trade's fees and
  funding); net profit factor = net profit / net loss. A factor is ``None`` without a loss.
* Monthly returns: month-end equity / previous month-end - 1. A sample at exactly 00:00 UTC
  on the 1st closes the month before (a run ending at midnight has no extra month); months
  without a sample carry the previous value (return 0).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal

import msgspec
import numpy as np

DAY_MS = 86_400_000
YEAR_DAYS = 365
YEAR_MS = YEAR_DAYS * DAY_MS
ZERO = Decimal(0)


class DrawdownStats(msgspec.Struct, frozen=True, kw_only=True):
    """The worst drawdown of a curve and how long the curve stayed under water."""

    max_drawdown: float
    peak_ms: int
    trough_ms: int
    recovery_ms: int | None
    duration_ms: int
    longest_drawdown_ms: int


class TradeStats(msgspec.Struct, frozen=True, kw_only=True):
    """Statistics of closed round trips (money in exact ``Decimal``)."""

    round_trips: int
    wins: int
    losses: int
    win_rate: float | None
    gross_profit: Decimal
    gross_loss: Decimal
    gross_profit_factor: float | None
    net_profit: Decimal
    net_loss: Decimal
    net_profit_factor: float | None
    net_pnl: Decimal
    avg_net_pnl: Decimal | None
    avg_holding_s: float | None


class FillStats(msgspec.Struct, frozen=True, kw_only=True):
    """Maker/taker split of fills, by count and by quote notional."""

    fills: int
    maker_fills: int
    taker_fills: int
    maker_share: float | None
    maker_taker_ratio: float | None
    maker_notional: Decimal
    taker_notional: Decimal
    maker_notional_share: float | None


def day_start_ms(ts_ms: int) -> int:
    """Start (00:00 UTC) of the day containing ``ts_ms``."""
    return ts_ms - ts_ms % DAY_MS


def end_of_day_equity(ts_ms: Sequence[int], equity: Sequence[float]
                      ) -> tuple[list[int], list[float]]:
    """(day starts, end-of-day equity) for every UTC day from the first to the last sample;
    samples must be in time order; days without a sample repeat the previous value."""
    if len(ts_ms) != len(equity):
        raise ValueError("ts_ms and equity differ in length")
    if len(ts_ms) == 0:
        return [], []
    last: dict[int, float] = {}
    for t, e in zip(ts_ms, equity, strict=True):
        last[day_start_ms(int(t))] = float(e)
    first, end = day_start_ms(int(ts_ms[0])), day_start_ms(int(ts_ms[-1]))
    days, values = [], []
    value = float(equity[0])
    for d in range(first, end + DAY_MS, DAY_MS):
        value = last.get(d, value)
        days.append(d)
        values.append(value)
    return days, values


def daily_returns(ts_ms: Sequence[int], equity: Sequence[float]) -> np.ndarray:
    """Simple daily returns from end-of-day equity (first day against the first sample)."""
    _, eod = end_of_day_equity(ts_ms, equity)
    if not eod:
        return np.zeros(0)
    e = np.asarray([float(equity[0]), *eod], dtype=float)
    return e[1:] / e[:-1] - 1.0


def sharpe(returns: Sequence[float] | np.ndarray, periods_per_year: int = YEAR_DAYS
           ) -> float | None:
    """Annualised Sharpe ratio of periodic returns, risk-free 0 (``None`` if undefined)."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    sd = float(np.std(r, ddof=1))
    if sd == 0.0 or not math.isfinite(sd):
        return None
    return float(np.mean(r)) / sd * math.sqrt(periods_per_year)


def sortino(returns: Sequence[float] | np.ndarray, periods_per_year: int = YEAR_DAYS
            ) -> float | None:
    """Annualised Sortino ratio, target 0, downside deviation over all periods."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return None
    dd = math.sqrt(float(np.mean(np.minimum(r, 0.0) ** 2)))
    if dd == 0.0:
        return None
    return float(np.mean(r)) / dd * math.sqrt(periods_per_year)


def drawdown_series(equity: Sequence[float] | np.ndarray) -> np.ndarray:
    """Equity / running peak - 1 at each sample."""
    e = np.asarray(equity, dtype=float)
    if e.size == 0:
        return e
    peak = np.maximum.accumulate(e)
    with np.errstate(divide="ignore", invalid="ignore"):
        dd = np.where(peak > 0, e / peak - 1.0, 0.0)
    return dd


def drawdown_stats(ts_ms: Sequence[int], equity: Sequence[float]) -> DrawdownStats:
    """Max drawdown, its peak/trough/recovery times, its duration and the longest drawdown."""
    if len(ts_ms) == 0:
        return DrawdownStats(max_drawdown=0.0, peak_ms=0, trough_ms=0, recovery_ms=None,
                             duration_ms=0, longest_drawdown_ms=0)
    peak_v = float(equity[0])
    peak_t = int(ts_ms[0])
    best = (0.0, peak_t, peak_t)  # (dd, peak time, trough time)
    max_rec: int | None = None
    longest = 0
    underwater = False
    for t, v in zip(ts_ms, equity, strict=True):
        t, v = int(t), float(v)
        if v >= peak_v:
            if underwater:
                longest = max(longest, t - peak_t)
                if max_rec is None and best[1] == peak_t and best[0] < 0:
                    max_rec = t
                underwater = False
            peak_v, peak_t = v, t
            continue
        underwater = True
        dd = v / peak_v - 1.0 if peak_v > 0 else 0.0
        if dd < best[0]:
            best = (dd, peak_t, t)
            max_rec = None
    end = int(ts_ms[-1])
    if underwater:
        longest = max(longest, end - peak_t)
    duration = ((max_rec if max_rec is not None else end) - best[1]) if best[0] < 0 else 0
    return DrawdownStats(max_drawdown=best[0], peak_ms=best[1], trough_ms=best[2],
                         recovery_ms=max_rec if best[0] < 0 else None, duration_ms=duration,
                         longest_drawdown_ms=longest)


def total_return(start: float, end: float) -> float | None:
    """end / start - 1 (``None`` for a non-positive start)."""
    return float(end) / float(start) - 1.0 if float(start) > 0 else None


def cagr(start: float, end: float, span_ms: int) -> float | None:
    """Compound annual growth rate over ``span_ms`` (``None`` under one day or if undefined)."""
    if span_ms < DAY_MS or float(start) <= 0 or float(end) < 0:
        return None
    if float(end) == 0:
        return -1.0
    try:
        return (float(end) / float(start)) ** (YEAR_MS / span_ms) - 1.0
    except OverflowError:
        return None


def equity_metrics(ts_ms: Sequence[int], equity: Sequence[float]) -> dict[str, float | int | None]:
    """Return, CAGR, Sharpe, Sortino and drawdown figures of one curve (JSON-ready)."""
    if len(ts_ms) == 0:
        return {"samples": 0}
    start, end = float(equity[0]), float(equity[-1])
    span = int(ts_ms[-1]) - int(ts_ms[0])
    r = daily_returns(ts_ms, equity)
    dd = drawdown_stats(ts_ms, equity)
    return {
        "samples": len(ts_ms),
        "start_ms": int(ts_ms[0]),
        "end_ms": int(ts_ms[-1]),
        "days": span / DAY_MS,
        "start_equity": start,
        "end_equity": end,
        "total_return": total_return(start, end),
        "cagr": cagr(start, end, span),
        "daily_returns": int(r.size),
        "sharpe": sharpe(r),
        "sortino": sortino(r),
        "max_drawdown": dd.max_drawdown,
        "max_drawdown_peak_ms": dd.peak_ms,
        "max_drawdown_trough_ms": dd.trough_ms,
        "max_drawdown_recovery_ms": dd.recovery_ms,
        "max_drawdown_duration_s": dd.duration_ms / 1000,
        "longest_drawdown_s": dd.longest_drawdown_ms / 1000,
    }


def _factor(profit: Decimal, loss: Decimal) -> float | None:
    return float(profit / loss) if loss > ZERO else None


def trade_stats(net_pnl: Sequence[Decimal], holding_s: Sequence[float],
                gross_pnl: Sequence[Decimal] | None = None) -> TradeStats:
    """Win rate, gross and net profit factors and holding time of closed round trips
    (``gross_pnl``: each trade's PnL before fees and funding; default: the net PnL)."""
    pnl = [Decimal(p) for p in net_pnl]
    gross = pnl if gross_pnl is None else [Decimal(p) for p in gross_pnl]
    if len(gross) != len(pnl):
        raise ValueError("net_pnl and gross_pnl differ in length")
    wins = [p for p in pnl if p > ZERO]
    losses = [p for p in pnl if p < ZERO]
    np_, nl = sum(wins, ZERO), -sum(losses, ZERO)
    gp = sum((g for g in gross if g > ZERO), ZERO)
    gl = -sum((g for g in gross if g < ZERO), ZERO)
    n = len(pnl)
    net = sum(pnl, ZERO)
    return TradeStats(
        round_trips=n, wins=len(wins), losses=len(losses),
        win_rate=len(wins) / n if n else None,
        gross_profit=gp, gross_loss=gl, gross_profit_factor=_factor(gp, gl),
        net_profit=np_, net_loss=nl, net_profit_factor=_factor(np_, nl), net_pnl=net,
        avg_net_pnl=net / n if n else None,
        avg_holding_s=float(np.mean(np.asarray(holding_s, dtype=float))) if len(holding_s)
        else None)


def fill_stats(fills: Sequence[tuple[bool, Decimal]]) -> FillStats:
    """Maker/taker split of ``(maker, quote notional)`` fills."""
    mk = [n for m, n in fills if m]
    tk = [n for m, n in fills if not m]
    mn, tn = sum(mk, ZERO), sum(tk, ZERO)
    total = len(fills)
    return FillStats(
        fills=total, maker_fills=len(mk), taker_fills=len(tk),
        maker_share=len(mk) / total if total else None,
        maker_taker_ratio=len(mk) / len(tk) if tk else None,
        maker_notional=mn, taker_notional=tn,
        maker_notional_share=float(mn / (mn + tn)) if mn + tn > ZERO else None)


def order_fill_rate(placed_qty: Mapping[str, Decimal], filled_qty: Mapping[str, Decimal]
                    ) -> dict[str, float | int | None]:
    """Filled orders / placed orders: an order counts as filled once its fills reach its
    placed quantity; partially filled orders are counted separately."""
    full = partial = 0
    for coid, qty in placed_qty.items():
        f = filled_qty.get(coid, ZERO)
        if f > ZERO and f >= qty:
            full += 1
        elif f > ZERO:
            partial += 1
    n = len(placed_qty)
    return {"orders_placed": n, "orders_filled": full, "orders_partially_filled": partial,
            "order_fill_rate": full / n if n else None}


def time_in_levels(ts_ms: Sequence[int], levels: Sequence[int], end_ms: int) -> dict[int, int]:
    """Milliseconds spent at each level: a level holds from its sample until the next one
    (the last until ``end_ms``). Samples must be in time order."""
    out: dict[int, int] = {}
    for i, (t, lv) in enumerate(zip(ts_ms, levels, strict=True)):
        nxt = int(ts_ms[i + 1]) if i + 1 < len(ts_ms) else int(end_ms)
        out[int(lv)] = out.get(int(lv), 0) + max(0, nxt - int(t))
    return out


def monthly_returns(ts_ms: Sequence[int], equity: Sequence[float]) -> dict[str, float]:
    """Return of each calendar month (UTC) from month-end equity; the first month is measured
    against the first sample, a partial last month up to the last sample. A later sample at
    exactly 00:00 on the 1st is the month-end value of the month before (it does not open a
    month of its own); months without a sample between the first and the last carry the
    previous month-end (return 0). Samples must be in time order."""
    out: dict[str, float] = {}
    if len(ts_ms) == 0:
        return out
    t = np.asarray(ts_ms, dtype=np.int64)
    e = np.asarray(equity, dtype=float)
    month = (t - 1).astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)
    month[0] = t[:1].astype("datetime64[ms]").astype("datetime64[M]").astype(np.int64)[0]
    month = np.maximum(month, month[0])
    uniq, last_rev = np.unique(month[::-1], return_index=True)
    month_end = dict(zip(uniq.tolist(), e[::-1][last_rev].tolist(), strict=True))
    prev = v = float(e[0])
    for m in range(int(uniq[0]), int(uniq[-1]) + 1):  # months since 1970-01
        v = month_end.get(m, v)
        out[f"{1970 + m // 12:04d}-{m % 12 + 1:02d}"] = v / prev - 1.0 if prev > 0 else math.nan
        prev = v
    return out


def clip_series(ts_ms: Sequence[int], values: Sequence[float], start_ms: int, end_ms: int
                ) -> tuple[np.ndarray, np.ndarray]:
    """Samples within [start_ms, end_ms] (int64 and float arrays), starting with the last
    sample at or before ``start_ms`` (moved to ``start_ms``) when there is one, so the span
    is covered. ``ts_ms`` must be sorted."""
    t = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=float)
    i0 = int(np.searchsorted(t, start_ms, side="right")) - 1
    i1 = int(np.searchsorted(t, end_ms, side="right"))
    lo = max(i0, 0)
    out_t, out_v = t[lo:i1].copy(), v[lo:i1].copy()
    if i0 >= 0 and out_t.size:
        out_t[0] = start_ms
    return out_t, out_v


def weighted_index(series: Mapping[str, tuple[Sequence[int], Sequence[float]]],
                   weights: Mapping[str, float], start_value: float = 1.0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Buy-and-hold of a weighted basket: value = start_value * sum_s w_s * p_s(t) / p_s(t0)
    on the union of timestamps (forward-filled), from the latest first sample of any symbol.
    Weights are normalised to sum to 1 over the symbols present."""
    syms = [s for s in series if len(series[s][0]) and weights.get(s, 0) > 0]
    if not syms:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    wsum = sum(weights[s] for s in syms)
    t0 = max(int(series[s][0][0]) for s in syms)
    grid = np.unique(np.concatenate([np.asarray(series[s][0], dtype=np.int64) for s in syms]))
    grid = grid[grid >= t0]
    total = np.zeros(grid.size)
    for s in syms:
        ts = np.asarray(series[s][0], dtype=np.int64)
        px = np.asarray(series[s][1], dtype=float)
        idx = np.searchsorted(ts, grid, side="right") - 1
        p = px[idx]
        total += weights[s] / wsum * p / p[0]
    return grid, total * start_value
