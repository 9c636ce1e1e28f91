"""The report's accounting over the collected log records: ``analyse(collector)`` -> (report
dict, chart data). Per symbol and for the portfolio: PnL (realized, fees, funding, unrealized,
exact decimals), the equity curve and its metrics (``models.metrics``), trades, fills, order
actions, leverage, time in each drawdown brake level, monthly returns and a buy-and-hold
benchmark. Methods: ``METHODS`` (copied into report.json) and docs/REPORT.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import numpy as np

from infra.termfmt import QUOTES
from models import metrics as mx
from models.timeframes import parse_time
from report.collector import ReportCollector, ReportError, collect
from report.values import ZERO, iso_utc, money_text, to_decimal, to_float

EQUITY_COLUMNS = ("ts_ms", "time", "equity", "peak_equity", "drawdown", "leverage",
                  "worst_case_leverage", "level", "state")


def _dd_level(ev: Mapping[str, Any]) -> int | None:
    """The drawdown brake level of an EQUITY/DRAWDOWN_LEVEL record. ``level`` also names the
    log level ("INFO") in a record, so only an integer counts; explicit names win."""
    for key in ("drawdown_level", "dd_level", "brake_level", "level"):
        v = ev.get(key)
        if isinstance(v, bool):
            continue
        if isinstance(v, int):
            return v
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v)
    return None


def _positions(v: Any) -> dict[str, Mapping[str, Any]]:
    if isinstance(v, dict):
        return {str(k): p for k, p in v.items() if isinstance(p, dict)}
    if isinstance(v, list):
        return {str(p["symbol"]): p for p in v if isinstance(p, dict) and "symbol" in p}
    return {}


def _base_asset(symbol: str, quote: str) -> str:
    for q in (quote, *QUOTES):
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)]
    return ""


class _Sym:
    """Per-symbol accumulators while walking the events in time order."""

    def __init__(self) -> None:
        self.gross = ZERO
        self.fees = ZERO
        self.fees_other: dict[str, Decimal] = {}
        self.funding_paid = ZERO
        self.funding_received = ZERO
        self.unrealized = ZERO
        self.curve_t: list[int] = []
        self.curve_pnl: list[Decimal] = []
        self.trades: list[dict[str, Any]] = []
        self.fills: list[tuple[bool, Decimal]] = []
        self.fill_marks: list[tuple[int, str, float]] = []
        self.placed: dict[str, Decimal] = {}
        self.filled: dict[str, Decimal] = {}
        self.funding_ids: set[str] = set()
        self.max_leverage: float | None = None
        self.placements = 0
        self.modifies = 0

    @property
    def pnl(self) -> Decimal:
        return (self.gross - self.fees + self.funding_received - self.funding_paid
                + self.unrealized)


def _weights(symbols: Sequence[str], meta: Mapping[str, Any],
             logged: Mapping[str, Any] | None) -> tuple[dict[str, float], str]:
    cand: Any = meta.get("weights")
    source = "meta"
    if not isinstance(cand, dict):
        cand, source = logged, "log"
        if cand is None:
            return {s: 1.0 / len(symbols) for s in symbols} if symbols else {}, "equal"
    w = {s: to_float(cand.get(s)) for s in symbols}
    if any(v <= 0 for v in w.values()):
        return {s: 1.0 / len(symbols) for s in symbols}, "equal (weights incomplete)"
    total = sum(w.values())
    return {s: v / total for s, v in w.items()}, source


def _parse_end(value: Any) -> int | None:
    """A run's end (epoch ms or ISO-8601) as epoch ms; None when absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return int(value)

    try:
        return parse_time(str(value))
    except ValueError:
        return None


def analyse(events: Iterable[Mapping[str, Any]] | ReportCollector, *,
            benchmark_prices: Mapping[str, Sequence[tuple[int, Any]]] | None = None,
            meta: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report dict, chart data) from log records. Raises ``ReportError`` without EQUITY."""
    meta = dict(meta or {})
    quote = str(meta.get("quote_asset", "USDT"))
    col = events if isinstance(events, ReportCollector) else collect(events)
    col.main.sort(key=lambda x: (x[0], x[1]))
    evs = [(t, ev) for t, _, ev in col.main]
    if not any(ev.get("event") == "EQUITY" for _, ev in evs):
        raise ReportError("no EQUITY events in the log (is this the bot's gridbot.jsonl, and "
                          "did the portfolio run long enough to log equity?)")
    syms: dict[str, _Sym] = {}

    def sym(name: Any) -> _Sym | None:
        if not isinstance(name, str) or not name:
            return None
        s = syms.get(name)
        if s is None:
            s = syms[name] = _Sym()
        return s

    for name in col.strat:
        sym(name)
    eq_t: list[int] = []
    eq_v: list[float] = []
    eq_rows: list[dict[str, Any]] = []
    lv_t: list[int] = []
    lv_v: list[int] = []
    max_lev = max_wc = 0.0
    for t, ev in evs:
        kind = ev.get("event")
        if kind == "EQUITY":
            e = to_float(ev.get("equity"))
            eq_t.append(t)
            eq_v.append(e)
            eq_rows.append({**ev, "ts_ms": t})  # equity.csv's row (report.build)
            max_lev = max(max_lev, to_float(ev.get("leverage")))
            max_wc = max(max_wc, to_float(ev.get("worst_case_leverage")))
            if (lv := _dd_level(ev)) is not None:
                lv_t.append(t)
                lv_v.append(lv)
            ledger: dict[str, Decimal] = {}
            for name, p in _positions(ev.get("positions")).items():
                s = sym(name)
                if s is not None:
                    s.unrealized = to_decimal(p.get("unrealized_pnl"))
                    if p.get("realized_pnl") is not None:
                        ledger[name] = to_decimal(p.get("realized_pnl")) + s.unrealized
                    mark = to_float(p.get("mark_price"))
                    if mark > 0 and e > 0:
                        lev = abs(to_float(p.get("qty"))) * mark / e
                        s.max_leverage = max(lev, s.max_leverage or 0.0)
            for name, s in syms.items():
                s.curve_t.append(t)
                # the portfolio's own ledger in this record (realized - fees + funding and
                # unrealized of one instant) where logged: the log's events may already hold
                # a close whose position this record still shows open (a flatten logs both
                # in the same millisecond), which would count that PnL twice for one sample
                s.curve_pnl.append(ledger.get(name, s.pnl))
        elif kind == "DRAWDOWN_LEVEL" and (lv := _dd_level(ev)) is not None:
            if ev.get("kind") == "ALERT":
                continue  # informational alert: the brake level did not change
            lv_t.append(t)
            lv_v.append(lv)
        elif (s := sym(ev.get("symbol"))) is None:
            continue
        elif kind == "TRADE_CLOSED":
            s.gross += to_decimal(ev.get("gross_pnl"))
            s.trades.append(dict(ev))
        elif kind == "ORDER_FILLED":
            price, qty = to_decimal(ev.get("price")), to_decimal(ev.get("qty"))
            fee, asset = to_decimal(ev.get("fee")), str(ev.get("fee_asset") or "")
            if asset in ("", quote):
                s.fees += fee
            elif asset == _base_asset(str(ev.get("symbol")), quote):
                s.fees += fee * price
            elif fee:
                s.fees_other[asset] = s.fees_other.get(asset, ZERO) + fee
            s.fills.append((bool(ev.get("maker")), price * qty))
            side = str(ev.get("side", "")).upper()
            s.fill_marks.append((t, side, float(price)))
            coid = str(ev.get("client_order_id", ""))
            s.filled[coid] = s.filled.get(coid, ZERO) + qty
        elif kind == "ORDER_PLACED":
            s.placed[str(ev.get("client_order_id", ""))] = to_decimal(ev.get("qty"))
            s.placements += 1
        elif kind == "ORDER_MODIFY_REQUESTED":
            s.modifies += 1
            coid, qty = str(ev.get("client_order_id", "")), to_decimal(ev.get("qty"))
            new = ev.get("new_client_order_id")
            if new:  # spot cancel-replace: a new order for what is left of the new qty
                s.placed[str(new)] = qty - s.filled.get(coid, ZERO)
            elif coid in s.placed:  # futures in-place modify: the order's new total qty
                s.placed[coid] = qty
        elif kind == "FUNDING_PAID":
            fid = str(ev.get("funding_id", ""))
            if fid and fid in s.funding_ids:
                continue  # logged again after a restart: count once (as the ledger does)
            if fid:
                s.funding_ids.add(fid)
            a = to_decimal(ev.get("amount"))
            if a >= ZERO:
                s.funding_received += a
            else:
                s.funding_paid -= a

    initial = (to_float(meta["initial_equity"]) if meta.get("initial_equity") is not None
               else eq_v[0])
    if meta.get("initial_equity") is not None and initial != eq_v[0]:
        first = col.first_ts
        if first is not None and first < eq_t[0]:
            eq_t.insert(0, first)
            eq_v.insert(0, initial)
    # equity is logged on change only: a flat account (e.g. halted after the hard stop) logs
    # nothing more, so the curve is carried to the end of the run (meta end / last record)
    run_end = _parse_end(meta.get("end"))
    last_seen = max(run_end or 0, col.last_ts or 0)
    if last_seen > eq_t[-1]:
        eq_t.append(last_seen)
        eq_v.append(eq_v[-1])
    start_ms, end_ms = eq_t[0], eq_t[-1]
    names = sorted(syms)
    weights, wsource = _weights(names, meta, col.weights)
    warnings: list[str] = list(col.warnings)
    warnings += [f"data: {d}" for d in meta.get("data_issues") or ()]

    # per symbol
    per_sym: dict[str, Any] = {}
    curves: dict[str, tuple[list[int], list[float]]] = {}
    bench_src = benchmark_prices or {}
    prices: dict[str, tuple[list[int], list[float]]] = {}
    strat = {n: col.strategy_series(n) for n in names}
    logged_px: dict[str, tuple[Any, Any]] = {}
    for name in names:
        st_t, st_c = strat[name][0], strat[name][1]
        ok = np.isfinite(st_c) & (st_c > 0)
        logged_px[name] = (st_t[ok], st_c[ok])
        src = bench_src.get(name) if bench_src else None
        if src:
            pts = sorted((int(t), to_float(p)) for t, p in src)
            bt, bv = [p[0] for p in pts], [p[1] for p in pts]
        else:
            bt, bv = logged_px[name]
        if len(bt):
            ct_, cv_ = mx.clip_series(bt, bv, start_ms, end_ms)
            if len(ct_):
                prices[name] = (ct_, cv_)
    for name in names:
        s = syms[name]
        base = Decimal(repr(initial * weights[name]))
        ct = s.curve_t
        cv = [float(base + p) for p in s.curve_pnl]
        if ct and ct[0] > start_ms:  # the symbol appeared after the first EQUITY: flat before
            ct, cv = [start_ms, *ct], [float(base), *cv]
        curves[name] = (ct, cv)
        ts = _trade_stats(s.trades)
        fs = mx.fill_stats(s.fills)
        entry: dict[str, Any] = {
            "weight": weights[name],
            "capital_base": float(base),
            **mx.equity_metrics(ct, cv),
            "pnl": {
                "net": money_text(s.pnl), "realized_gross": money_text(s.gross),
                "fees_paid": money_text(s.fees),
                "fees_other_assets": {k: money_text(v) for k, v in s.fees_other.items()},
                "funding_paid": money_text(s.funding_paid),
                "funding_received": money_text(s.funding_received),
                "funding_net": money_text(s.funding_received - s.funding_paid),
                "unrealized": money_text(s.unrealized),
            },
            "trades": _trade_json(ts),
            "fills": _fill_json(fs),
            **mx.order_fill_rate(s.placed, s.filled),
            **_actions(s.placements, s.modifies, col.cancels.get(name, 0), fs.fills),
            "max_leverage": max((x for x in (s.max_leverage, col.status_lev.get(name))
                                 if x is not None), default=None),
            "monthly_returns": mx.monthly_returns(ct, cv),
            "benchmark": _bench(prices.get(name)),
        }
        if s.fees_other:
            warnings.append(f"{name}: fees in {', '.join(sorted(s.fees_other))} are not "
                            "converted to the quote asset (no price in the log)")
        per_sym[name] = entry

    # portfolio
    all_trades = [tr for n in names for tr in syms[n].trades]
    ts = _trade_stats(all_trades)
    fs = mx.fill_stats([f for n in names for f in syms[n].fills])
    placed = {f"{n}/{k}": v for n in names for k, v in syms[n].placed.items()}
    filled = {f"{n}/{k}": v for n in names for k, v in syms[n].filled.items()}
    end_all = max(col.last_ts or end_ms, end_ms)
    if not lv_t or lv_t[0] > start_ms:  # the brake starts at level 0; changes are logged
        lv_t.insert(0, start_ms)
        lv_v.insert(0, 0)
    levels = mx.time_in_levels(lv_t, lv_v, end_all)
    span = max(1, end_all - lv_t[0])
    bench_port = mx.weighted_index(prices, weights, start_value=initial) if prices else ([], [])
    fees_total = sum((syms[n].fees for n in names), ZERO)
    fpaid = sum((syms[n].funding_paid for n in names), ZERO)
    frec = sum((syms[n].funding_received for n in names), ZERO)
    portfolio: dict[str, Any] = {
        "initial_equity": initial,
        **mx.equity_metrics(eq_t, eq_v),
        "pnl": {"net": money_text(Decimal(repr(eq_v[-1])) - Decimal(repr(initial))),
                "realized_gross": money_text(sum((syms[n].gross for n in names), ZERO)),
                "fees_paid": money_text(fees_total), "funding_paid": money_text(fpaid),
                "funding_received": money_text(frec), "funding_net": money_text(frec - fpaid),
                "unrealized": money_text(sum((syms[n].unrealized for n in names), ZERO))},
        "trades": _trade_json(ts),
        "fills": _fill_json(fs),
        **mx.order_fill_rate(placed, filled),
        **_actions(sum(syms[n].placements for n in names), sum(syms[n].modifies for n in names),
                   sum(col.cancels.get(n, 0) for n in names), fs.fills),
        "max_leverage": max_lev,
        "max_worst_case_leverage": max_wc,
        "time_in_drawdown_level_s": {str(k): v / 1000 for k, v in sorted(levels.items())},
        "time_in_drawdown_level_share": {str(k): v / span for k, v in sorted(levels.items())},
        "monthly_returns": mx.monthly_returns(eq_t, eq_v),
        "benchmark": _bench(bench_port if len(bench_port[0]) else None),
    }
    if portfolio["benchmark"] and portfolio["total_return"] is not None:
        portfolio["excess_return_vs_benchmark"] = (portfolio["total_return"]
                                                   - portfolio["benchmark"]["total_return"])
    if not prices:
        warnings.append("no prices for a buy-and-hold benchmark (no STRATEGY closes in the "
                        "log and none passed in)")
    report = {
        "summary": _summary(portfolio),
        "generated_from": {"events": sum(col.counts.values()),
                           "event_counts": dict(sorted(col.counts.items())),
                           "start_ms": start_ms, "end_ms": end_ms, "start": iso_utc(start_ms),
                           "end": iso_utc(end_ms), "weights_source": wsource},
        "meta": meta,
        "methods": METHODS,
        "portfolio": portfolio,
        "symbols": per_sym,
        "warnings": warnings,
    }
    chart = {"equity": (eq_t, eq_v), "benchmark": bench_port, "symbol_curves": curves,
             "prices": {n: (logged_px[n] if len(logged_px[n][0]) else prices.get(n, ([], [])))
                        for n in names},
             "fills": {n: syms[n].fill_marks for n in names},
             "conviction": {n: (strat[n][0], strat[n][2], strat[n][3]) for n in names},
             "levels": (lv_t, lv_v), "trades": all_trades, "equity_rows": eq_rows,
             "bases": {n: per_sym[n]["capital_base"] for n in names},
             "dd_levels": _dd_thresholds(meta), "quote": quote}
    return report, chart


METHODS = {
    "year": "365 days (crypto trades every day)",
    "daily_returns": "from end-of-day (UTC) equity, forward-filled; first day vs the first "
                     "sample",
    "sharpe": "mean/std(ddof=1) of daily returns x sqrt(365), risk-free 0",
    "sortino": "mean of daily returns / sqrt(mean(min(r,0)^2)) x sqrt(365), target 0",
    "max_drawdown": "equity / running peak - 1 on every EQUITY sample; duration from the peak "
                    "to recovery (or the end)",
    "symbol_equity": "capital_base (initial equity x weight) + the symbol's PnL at each EQUITY "
                     "event: its positions ledger (realized_pnl + unrealized_pnl) where "
                     "logged, else realized gross PnL (TRADE_CLOSED) - fees (ORDER_FILLED, in "
                     "quote) + funding (FUNDING_PAID) + unrealized PnL (EQUITY.positions); the "
                     "final pnl figures are the event sums",
    "trades": "round trip = one TRADE_CLOSED; win: net PnL > 0; gross profit / loss = sum of "
              "the positive / negative round-trip gross PnL (before fees and funding), net "
              "profit / loss the same after them; profit factor = profit / loss",
    "order_fill_rate": "orders whose fills reach their qty / orders placed (ORDER_PLACED, the "
                       "qty of a futures modify, a spot cancel-replace's new order)",
    "order_actions": "new orders + modify requests + cancel requests sent; per fill: / "
                     "ORDER_FILLED count",
    "max_leverage": "portfolio: max EQUITY.leverage; symbol: max |qty| x mark_price / equity "
                    "over EQUITY.positions, or STATUS.leverage",
    "benchmark": "buy-and-hold of the symbol's close over the equity span; portfolio: the "
                 "weighted basket",
    "monthly_returns": "month-end equity / previous month-end - 1; a sample at 00:00 on the "
                       "1st closes the month before; months without a sample carry it",
    "money": "PnL, fees and funding are exact decimal strings in the quote asset",
}


def _summary(p: Mapping[str, Any]) -> dict[str, Any]:
    """The headline figures of the portfolio (for logs, walk-forward tables, CI)."""
    return {"total_return": p.get("total_return"), "cagr": p.get("cagr"),
            "sharpe": p.get("sharpe"), "sortino": p.get("sortino"),
            "max_drawdown": p.get("max_drawdown"),
            "max_drawdown_duration_s": p.get("max_drawdown_duration_s"),
            "round_trips": p["trades"]["round_trips"], "win_rate": p["trades"]["win_rate"],
            "net_profit_factor": p["trades"]["net_profit_factor"],
            "gross_profit_factor": p["trades"]["gross_profit_factor"],
            "fees_paid": p["pnl"]["fees_paid"],
            "funding_net": p["pnl"]["funding_net"], "maker_share": p["fills"]["maker_share"],
            "order_fill_rate": p.get("order_fill_rate"),
            "actions_per_fill": p.get("actions_per_fill"), "max_leverage": p.get("max_leverage"),
            "benchmark_total_return": (p.get("benchmark") or {}).get("total_return")}


def _dd_thresholds(meta: Mapping[str, Any]) -> list[float]:
    """Brake thresholds (fractions) to mark on the drawdown chart: meta["drawdown_levels"]
    or the RiskParams defaults."""
    lv = meta.get("drawdown_levels")
    if isinstance(lv, (list, tuple)) and all(isinstance(x, (int, float)) for x in lv):
        return [float(x) for x in lv]
    return [-0.05, -0.10, -0.15]


def _trade_stats(trades: Sequence[Mapping[str, Any]]) -> mx.TradeStats:
    return mx.trade_stats([to_decimal(tr.get("net_pnl")) for tr in trades],
                          [to_float(tr.get("holding_s")) for tr in trades],
                          [to_decimal(tr.get("gross_pnl")) for tr in trades])


def _actions(placed: int, modified: int, cancelled: int, fills: int) -> dict[str, Any]:
    """Order actions sent to the venue (new orders, modify and cancel requests) and how many
    it took per fill: the exchange's view of the bot's order traffic."""
    total = placed + modified + cancelled
    return {"order_actions": total, "modify_requests": modified,
            "cancel_requests": cancelled,
            "actions_per_fill": total / fills if fills else None}


def _trade_json(ts: mx.TradeStats) -> dict[str, Any]:
    return {"round_trips": ts.round_trips, "wins": ts.wins, "losses": ts.losses,
            "win_rate": ts.win_rate,
            "gross_profit": money_text(ts.gross_profit), "gross_loss": money_text(ts.gross_loss),
            "gross_profit_factor": ts.gross_profit_factor,
            "net_profit": money_text(ts.net_profit), "net_loss": money_text(ts.net_loss),
            "net_profit_factor": ts.net_profit_factor,
            "net_pnl": money_text(ts.net_pnl), "avg_net_pnl": money_text(ts.avg_net_pnl),
            "avg_holding_s": ts.avg_holding_s}


def _fill_json(fs: mx.FillStats) -> dict[str, Any]:
    return {"fills": fs.fills, "maker_fills": fs.maker_fills, "taker_fills": fs.taker_fills,
            "maker_share": fs.maker_share, "maker_taker_ratio": fs.maker_taker_ratio,
            "maker_notional": money_text(fs.maker_notional),
            "taker_notional": money_text(fs.taker_notional),
            "maker_notional_share": fs.maker_notional_share}


def _bench(series: tuple[list[int], list[float]] | None) -> dict[str, Any] | None:
    if series is None or len(series[0]) == 0:
        return None
    m = mx.equity_metrics(*series)
    return {"start_price": series[1][0], "end_price": series[1][-1],
            **{k: m[k] for k in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                                 "max_drawdown_duration_s")}}


__all__ = ["EQUITY_COLUMNS", "METHODS", "analyse"]
