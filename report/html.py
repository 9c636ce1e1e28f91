"""report.html: the report dict of ``report.build`` rendered for a person.

Numbers are formatted here (money to the cent, or to the unit from 100,000; percentages with
two decimals; dates as dates; the "All figures" table with 4 significant digits and the exact
report.json value in each cell's ``data-v`` and tooltip); the page itself is the Jinja2
template ``templates/report.html.j2`` (autoescaped). Self-contained: inline CSS, charts as
base64 PNG, no script, no external resource.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

DASH = "–"
LEVEL_NAMES = {0: "0 normal", 1: "1 reduced", 2: "2 deleveraged", 3: "3 halted"}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
BIG_MONEY = Decimal(100_000)  # from here money is shown to the unit
STRATEGIES = {"adaptive": "adaptive grid", "static_grid": "static grid"}
SOURCES = {"backtest": "Backtest", "walk-forward": "Walk-forward (test windows)",
           "live": "Live run", "paper": "Paper run"}
WEIGHT_SOURCES = {"meta": "from the run's configuration", "log": "from the log",
                  "equal": "equal (none given)"}


# -- formatting ---------------------------------------------------------------------------------
def _num(v: Any) -> float | None:
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def fmt_pct(v: Any, decimals: int = 2, signed: bool = False) -> str:
    """A fraction as a percentage: 0.01540 -> ``1.54 %``."""
    x = _num(v)
    if x is None:
        return DASH
    return f"{x * 100:{'+' if signed else ''}.{decimals}f} %"


def fmt_num(v: Any, decimals: int = 2) -> str:
    """A plain ratio with fixed decimals (thousands separated)."""
    x = _num(v)
    return DASH if x is None else f"{x:,.{decimals}f}"


def fmt_int(v: Any) -> str:
    """A count with thousands separators."""
    x = _num(v)
    return DASH if x is None else f"{int(x):,}"


def fmt_money(v: Any, signed: bool = False) -> str:
    """Money for people: cents, or units from 100,000 (``1,020.46``, ``3,161,475``)."""
    if v is None:
        return DASH
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return DASH
    if not d.is_finite():
        return DASH
    sign = "+" if signed else ""
    if abs(d) >= BIG_MONEY:
        return f"{d.quantize(Decimal(1), ROUND_HALF_UP):{sign},f}"
    q = d.quantize(Decimal("0.01"), ROUND_HALF_UP)
    if q == 0:
        return "0.00"  # neither "-0.00" nor "+0.00"
    return f"{q:{sign},.2f}"


def fmt_lev(v: Any) -> str:
    """Leverage as a multiple: ``1.65x``."""
    x = _num(v)
    return DASH if x is None else f"{x:.2f}x"


def fmt_dur(v: Any) -> str:
    """Seconds as the largest sensible unit: ``77.8 d``, ``5.2 h``, ``53 min``, ``42 s``."""
    s = _num(v)
    if s is None:
        return DASH
    if abs(s) >= 86_400:
        return f"{s / 86_400:.1f} d"
    if abs(s) >= 3_600:
        return f"{s / 3_600:.1f} h"
    if abs(s) >= 60:
        return f"{s / 60:.0f} min"
    return f"{s:.0f} s"


def fmt_date(v: Any) -> str:
    """Epoch ms as a UTC date (``2025-04-01``) or date and minute (``2025-01-13 04:15``)."""
    x = _num(v)
    if x is None:
        return DASH
    t = _dt.datetime.fromtimestamp(x / 1000, _dt.timezone.utc)
    if t.hour == t.minute == t.second == 0:
        return t.strftime("%Y-%m-%d")
    return t.strftime("%Y-%m-%d %H:%M")


def fmt_sig(v: Any, digits: int = 4) -> str:
    """4 significant digits, never in exponent form, never rounding away integer digits:
    0.863607 -> ``0.8636``, 10.7647 -> ``10.76``, 10154.0469 -> ``10,154``."""
    x = _num(v)
    if x is None:
        return DASH
    if x == 0:
        return "0"
    if abs(x) >= 10 ** (digits - 1):
        return f"{x:,.0f}"
    return np.format_float_positional(x, precision=digits, unique=False, fractional=False,
                                      trim="-")


def _cls(v: Any) -> str:
    x = _num(v)
    return "neg" if x is not None and x < 0 else ""


class Cell(dict):  # a dict: Jinja2 reads cell.text / cell.cls / cell.exact
    """One table cell: shown ``text``, css ``cls``, the exact value (``exact``) if any."""

    def __init__(self, text: str, cls: str = "", exact: str | None = None) -> None:
        super().__init__(text=text, cls=cls, exact=exact)


def _get(d: Mapping[str, Any] | None, path: str) -> Any:
    cur: Any = d
    for part in path.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


# -- the summary table --------------------------------------------------------------------------
def _excess(c: Mapping[str, Any]) -> float | None:
    r, b = _num(c.get("total_return")), _num(_get(c, "benchmark.total_return"))
    return None if r is None or b is None else r - b


def _dd_duration(c: Mapping[str, Any]) -> Cell:
    text = fmt_dur(c.get("max_drawdown_duration_s"))
    if (_num(c.get("max_drawdown")) or 0) < 0 and c.get("max_drawdown_recovery_ms") is None:
        text += ", not recovered"
    return Cell(text)


# groups of (label, the cell of one column)
SUMMARY: tuple[tuple[str, tuple[tuple[str, Callable[[Mapping[str, Any]], Cell]], ...]], ...] = (
    ("Returns", (
        ("Net PnL", lambda c: Cell(fmt_money(_get(c, "pnl.net"), True),
                                   _cls(_get(c, "pnl.net")))),
        ("Total return", lambda c: Cell(fmt_pct(c.get("total_return")),
                                        _cls(c.get("total_return")))),
        ("CAGR", lambda c: Cell(fmt_pct(c.get("cagr")), _cls(c.get("cagr")))),
        ("Buy & hold return", lambda c: Cell(fmt_pct(_get(c, "benchmark.total_return")),
                                             _cls(_get(c, "benchmark.total_return")))),
        ("Return vs buy & hold", lambda c: Cell(fmt_pct(_excess(c), signed=True),
                                                _cls(_excess(c)))),
    )),
    ("Risk", (
        ("Sharpe (daily, ann.)", lambda c: Cell(fmt_num(c.get("sharpe")),
                                                _cls(c.get("sharpe")))),
        ("Sortino (daily, ann.)", lambda c: Cell(fmt_num(c.get("sortino")),
                                                 _cls(c.get("sortino")))),
        ("Max drawdown", lambda c: Cell(fmt_pct(c.get("max_drawdown")),
                                        _cls(c.get("max_drawdown")))),
        ("Max drawdown duration", _dd_duration),
        ("Longest drawdown", lambda c: Cell(fmt_dur(c.get("longest_drawdown_s")))),
        ("Buy & hold max drawdown", lambda c: Cell(fmt_pct(_get(c, "benchmark.max_drawdown")),
                                                   _cls(_get(c, "benchmark.max_drawdown")))),
        ("Max leverage", lambda c: Cell(fmt_lev(c.get("max_leverage")))),
    )),
    ("Trades", (
        ("Round trips", lambda c: Cell(fmt_int(_get(c, "trades.round_trips")))),
        ("Win rate", lambda c: Cell(fmt_pct(_get(c, "trades.win_rate"), 1))),
        ("Profit factor, gross", lambda c: Cell(fmt_num(_get(c, "trades.gross_profit_factor")))),
        ("Profit factor, net", lambda c: Cell(fmt_num(_get(c, "trades.net_profit_factor")))),
        ("Avg net PnL per trade", lambda c: Cell(fmt_money(_get(c, "trades.avg_net_pnl"), True),
                                                 _cls(_get(c, "trades.avg_net_pnl")))),
        ("Avg holding time", lambda c: Cell(fmt_dur(_get(c, "trades.avg_holding_s")))),
    )),
    ("PnL breakdown", (
        ("Realized gross PnL", lambda c: Cell(fmt_money(_get(c, "pnl.realized_gross"), True),
                                              _cls(_get(c, "pnl.realized_gross")))),
        ("Fees paid", lambda c: Cell(fmt_money(_get(c, "pnl.fees_paid")))),
        ("Funding (net, + received)", lambda c: Cell(fmt_money(_get(c, "pnl.funding_net"), True),
                                                     _cls(_get(c, "pnl.funding_net")))),
        ("Unrealized at the end", lambda c: Cell(fmt_money(_get(c, "pnl.unrealized"), True),
                                                 _cls(_get(c, "pnl.unrealized")))),
    )),
    ("Execution", (
        ("Fills", lambda c: Cell(fmt_int(_get(c, "fills.fills")))),
        ("Maker share of fills", lambda c: Cell(fmt_pct(_get(c, "fills.maker_share"), 1))),
        ("Order fill rate", lambda c: Cell(fmt_pct(c.get("order_fill_rate"), 1))),
        ("Order actions per fill", lambda c: Cell(fmt_num(c.get("actions_per_fill"), 1))),
    )),
)


def summary_table(columns: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """Groups of rows: ``[{"group": name, "rows": [(label, [Cell per column]), ...]}]``. The
    longest drawdown is left out where it is the max drawdown's own duration everywhere."""
    same = all(c.get("longest_drawdown_s") == c.get("max_drawdown_duration_s")
               for _, c in columns)
    out = []
    for group, rows in SUMMARY:
        body = [(label, [get(c) for _, c in columns]) for label, get in rows
                if not (same and label == "Longest drawdown")]
        out.append({"group": group, "rows": body})
    return out


# -- "All figures" ------------------------------------------------------------------------------
def _leaves(node: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """Every numeric leaf under ``node``: (dotted path, value), numbers and decimal strings."""
    if isinstance(node, Mapping):
        for k, v in node.items():
            yield from _leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(node, (int, float)) and not isinstance(node, bool):
        yield path, node
    elif isinstance(node, str):
        try:
            if Decimal(node).is_finite():
                yield path, node
        except ArithmeticError:
            pass


def figures(node: Any) -> Iterator[tuple[str, str]]:
    """Every numeric leaf (number or decimal string) under ``node``: (dotted path, the value
    exactly as report.json writes it)."""
    for path, v in _leaves(node):
        yield path, v if isinstance(v, str) else json.dumps(v)


def fmt_figure(path: str, value: Any) -> str:
    """One report.json figure for people, by what its path and type say it is: ``*_ms`` a
    date, ``*_s`` (or under a ``*_s`` key) a duration, a decimal string money, an int a
    count, any other number 4 significant digits (ratios stay fractions, as in report.json)."""
    parts = path.split(".")
    if parts[-1].endswith("_ms"):
        return fmt_date(value)
    if any(p.endswith("_s") for p in parts):
        return fmt_dur(value)
    if isinstance(value, str):
        return fmt_money(value)
    if isinstance(value, int):
        return fmt_int(value)
    return fmt_sig(value)


def all_figures(columns: Sequence[tuple[str, Mapping[str, Any]]]
                ) -> tuple[list[str], list[tuple[str, list[Cell]]]]:
    """(column names, rows): every figure of report.json, one row per dotted path; each cell
    shows it formatted and carries the exact value."""
    values = [dict(_leaves(c)) for _, c in columns]
    paths = list(dict.fromkeys(p for v in values for p in v))
    rows = []
    for p in paths:
        cells = []
        for v in values:
            if p not in v:
                cells.append(Cell(""))
                continue
            raw = v[p]
            exact = raw if isinstance(raw, str) else json.dumps(raw)
            cells.append(Cell(fmt_figure(p, raw), _cls(raw), exact))
        rows.append((p, cells))
    return [n for n, _ in columns], rows


# -- monthly returns ----------------------------------------------------------------------------
def monthly_table(series: Sequence[tuple[str, Mapping[str, float]]]
                  ) -> tuple[list[str], list[dict[str, Any]]]:
    """One table for the portfolio and every symbol: (month column names, rows). Columns are
    the calendar months the run touched (all twelve once it spans a year); a row per name and
    year, the last cell compounding the year's months."""
    keys = sorted({k for _, m in series for k in m})
    if not keys:
        return [], []
    years = sorted({k[:4] for k in keys})
    months = sorted({int(k[5:7]) for k in keys})
    if len(keys) >= 12 or len(years) > 1:
        months = list(range(1, 13)) if len(years) > 1 else months
    rows = []
    for y in years:
        for name, m in series:
            cells, total, any_month = [], 1.0, False
            for mth in months:
                v = m.get(f"{y}-{mth:02d}")
                x = _num(v)
                if x is not None:
                    total *= 1 + x
                    any_month = True
                cells.append(Cell(fmt_pct(x) if v is not None else "", _cls(x)))
            if any_month:
                rows.append({"name": name, "year": y, "cells": cells,
                             "total": Cell(fmt_pct(total - 1), _cls(total - 1))})
    return [MONTHS[mth - 1] for mth in months], rows


# -- page ---------------------------------------------------------------------------------------
def _title(report: Mapping[str, Any]) -> tuple[str, str]:
    meta = report.get("meta") or {}
    g = report.get("generated_from") or {}
    source = SOURCES.get(str(meta.get("source", "")), "")
    strategy = STRATEGIES.get(str(meta.get("strategy", "")), str(meta.get("strategy") or ""))
    market = str(meta.get("market") or "")
    head = source or "Performance report"
    what = ", ".join(x for x in (strategy, market) if x)
    title = f"{head}: {what}" if what else head
    span = ""
    if g.get("start_ms") is not None and g.get("end_ms") is not None:
        days = (g["end_ms"] - g["start_ms"]) / 86_400_000
        span = (f"{fmt_date(g['start_ms'])} → {fmt_date(g['end_ms'])} UTC "
                f"({days:,.1f} days)".replace(".0 days", " days"))
    symbols = " · ".join(report.get("symbols") or {})
    return title, " · ".join(x for x in (symbols, span) if x)


def _kpis(report: Mapping[str, Any], quote: str) -> list[dict[str, str]]:
    p = report["portfolio"]
    dd = _dd_duration(p)["text"]
    net = _get(p, "pnl.net")
    out = [
        {"label": "Net PnL", "value": f"{fmt_money(net, True)} {quote}",
         "note": fmt_pct(p.get("total_return"), signed=True), "cls": _cls(net)},
        {"label": "Buy & hold", "value": fmt_pct(_get(p, "benchmark.total_return"), signed=True),
         "note": f"strategy {fmt_pct(_excess(p), signed=True)} vs it" if _excess(p) is not None
         else "no prices", "cls": _cls(_get(p, "benchmark.total_return"))},
        {"label": "Max drawdown", "value": fmt_pct(p.get("max_drawdown")),
         "note": dd, "cls": _cls(p.get("max_drawdown"))},
        {"label": "Sharpe", "value": fmt_num(p.get("sharpe")),
         "note": f"Sortino {fmt_num(p.get('sortino'))}", "cls": _cls(p.get("sharpe"))},
        {"label": "Round trips", "value": fmt_int(_get(p, "trades.round_trips")),
         "note": f"win rate {fmt_pct(_get(p, 'trades.win_rate'), 1)}, net profit factor "
                 f"{fmt_num(_get(p, 'trades.net_profit_factor'))}", "cls": ""},
        {"label": "Fees paid", "value": f"{fmt_money(_get(p, 'pnl.fees_paid'))} {quote}",
         "note": f"funding {fmt_money(_get(p, 'pnl.funding_net'), True)} (+ received)",
         "cls": ""},
        {"label": "Order actions per fill", "value": fmt_num(p.get("actions_per_fill"), 1),
         "note": f"order fill rate {fmt_pct(p.get('order_fill_rate'), 1)}", "cls": ""},
        {"label": "Max leverage", "value": fmt_lev(p.get("max_leverage")),
         "note": f"worst case {fmt_lev(p.get('max_worst_case_leverage'))}", "cls": ""},
    ]
    return out


def _run_details(report: Mapping[str, Any], quote: str) -> list[tuple[str, str]]:
    meta = report.get("meta") or {}
    g = report.get("generated_from") or {}
    p = report["portfolio"]
    rows: list[tuple[str, str]] = []
    if meta.get("source"):
        rows.append(("Source", str(meta["source"])))
    if meta.get("strategy"):
        rows.append(("Strategy", str(meta["strategy"])))
    if meta.get("market"):
        rows.append(("Market", str(meta["market"])))
    rows.append(("Initial equity", f"{fmt_money(p.get('initial_equity'))} {quote}"))
    rows.append(("Final equity", f"{fmt_money(p.get('end_equity'))} {quote}"))
    weights = " · ".join(f"{s} {fmt_pct(c.get('weight'), 0)}"
                         for s, c in (report.get("symbols") or {}).items())
    if weights:
        src = str(g.get("weights_source", ""))
        rows.append(("Capital weights", f"{weights} ({WEIGHT_SOURCES.get(src, src)})"))
    rows.append(("Period", f"{fmt_date(g.get('start_ms'))} → {fmt_date(g.get('end_ms'))} UTC"))
    rows.append(("Log events read", fmt_int(g.get("events"))))
    shown = {"source", "strategy", "market", "initial_equity", "weights", "start", "end",
             "data_issues"}
    for k, v in meta.items():
        if k not in shown:
            rows.append((k.replace("_", " ").capitalize(),
                         v if isinstance(v, str) else json.dumps(v, default=str)))
    return rows


def _levels(p: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    secs = p.get("time_in_drawdown_level_s") or {}
    share = p.get("time_in_drawdown_level_share") or {}
    out = []
    for k, v in secs.items():
        name = LEVEL_NAMES.get(int(k), k) if str(k).lstrip("-").isdigit() else str(k)
        out.append((name, fmt_dur(v), fmt_pct(share.get(k), 1)))
    return out


def _symbol_line(name: str, c: Mapping[str, Any], quote: str) -> str:
    return (f"weight {fmt_pct(c.get('weight'), 0)} of the capital "
            f"({fmt_money(c.get('capital_base'))} {quote}) · net PnL "
            f"{fmt_money(_get(c, 'pnl.net'), True)} {quote} "
            f"({fmt_pct(c.get('total_return'), signed=True)}) · "
            f"{fmt_int(_get(c, 'fills.fills'))} fills · "
            f"{fmt_int(_get(c, 'trades.round_trips'))} round trips")


METHOD_LABELS = {"year": "Year", "daily_returns": "Daily returns", "sharpe": "Sharpe",
                 "sortino": "Sortino", "max_drawdown": "Max drawdown",
                 "symbol_equity": "Per-symbol equity", "trades": "Trades",
                 "order_fill_rate": "Order fill rate", "order_actions": "Order actions",
                 "max_leverage": "Max leverage", "benchmark": "Buy & hold",
                 "monthly_returns": "Monthly returns", "money": "Money"}


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


@lru_cache(maxsize=1)
def _template() -> Any:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(Path(__file__).with_name("templates"))),
        autoescape=True, trim_blocks=True, lstrip_blocks=True,
        undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2")


def render_html(report: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """A self-contained page: inline CSS, charts as base64 PNG, no external resources."""
    quote = str((report.get("meta") or {}).get("quote_asset") or "USDT")
    symbols = report.get("symbols") or {}
    columns = [("Portfolio", report["portfolio"]), *symbols.items()]
    title, subtitle = _title(report)
    month_head, month_rows = monthly_table(
        [("Portfolio", report["portfolio"].get("monthly_returns") or {})]
        + [(n, c.get("monthly_returns") or {}) for n, c in symbols.items()])
    fig_head, fig_rows = all_figures(columns)
    charts = {name: _data_uri(png) for name, png in images.items()}
    return _template().render(
        title=title, subtitle=subtitle, kpis=_kpis(report, quote),
        warnings=list(report.get("warnings") or []),
        columns=[n for n, _ in columns], summary=summary_table(columns), charts=charts,
        levels=_levels(report["portfolio"]), month_head=month_head, month_rows=month_rows,
        symbols=[{"name": n, "line": _symbol_line(n, c, quote),
                  "price": charts.get(f"price_{n}.png"),
                  "conviction": charts.get(f"conviction_{n}.png")} for n, c in symbols.items()],
        details=_run_details(report, quote), fig_head=fig_head, fig_rows=fig_rows,
        methods=[(METHOD_LABELS.get(k, k), v) for k, v in (report.get("methods") or {}).items()],
        quote=quote)


__all__ = ["fmt_date", "fmt_dur", "fmt_figure", "fmt_money", "fmt_pct", "fmt_sig",
           "figures", "monthly_table", "render_html", "summary_table"]
