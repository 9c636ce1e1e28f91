"""Issue #7 "done when" checks of the report, against real backtests (2 futures symbols, real
Binance data): the accounting closes to the cent (log, report and the venue's own account),
report.html is self-contained and shows every figure of report.json, and Sharpe / Sortino /
max drawdown match an independent numpy computation on equity.csv.

Two runs: one that ends flat (2025-03-01..03-04) and one that ends with both positions open
(2025-02-26..2025-03-01T07:30), so unrealized PnL is part of the identity."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import backtest.driver as sbt
from backtest.driver import run_backtest
from backtest.options import BacktestOptions, backtest_config
from backtest.venue import ACCOUNT
from exchange_sim import marketdata as md
from infra.config_io import load_config
from models.enums import Market
from models.timeframes import parse_time
from tests.report.png_check import is_png

DATA = md.default_data_dir()
pytestmark = pytest.mark.skipif(DATA is None, reason="no market data directory")
SYMBOLS = ("BTCUSDT", "ETHUSDT")
CENT = Decimal("0.01")
DAY_MS = 86_400_000
WINDOWS = {"flat_end": ("2025-03-01", "2025-03-04"),
           "open_end": ("2025-02-26", "2025-03-01T07:30")}


@dataclass
class Run:
    """One backtest with its outputs and the venue it traded on."""

    name: str
    out: Path
    res: Any
    venue: Any
    report: dict[str, Any]
    events: list[dict[str, Any]]
    end_ms: int


@pytest.fixture(scope="module", params=sorted(WINDOWS))
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Run:
    start, end = (parse_time(x) for x in WINDOWS[request.param])
    out = tmp_path_factory.mktemp(request.param)
    seen: list[Any] = []
    real = sbt.register_venue

    def register(venue: Any) -> str:
        seen.append(venue)
        return real(venue)

    cfg = backtest_config(load_config(None), SYMBOLS, Market.FUTURES)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sbt, "register_venue", register)
        res = run_backtest(BacktestOptions(config=cfg, symbols=SYMBOLS, market=Market.FUTURES,
                                           start_ms=start, end_ms=end, out_dir=out,
                                           report=True, charts=True, persist=False))
    assert res.actor_errors == [] and res.report is not None and len(seen) == 1
    events = [json.loads(x) for x in (out / "gridbot.jsonl").read_text().splitlines()]
    report = json.loads((out / "report.json").read_text())
    return Run(request.param, out, res, seen[0], report, events, end)


def D(v: Any) -> Decimal:
    return Decimal(str(v))


def cents(a: Decimal, b: Decimal) -> bool:
    """Equal to the cent (|a - b| < 0.01)."""
    return abs(a - b) < CENT


# -- 1. accounting --------------------------------------------------------------------------
def _ledger(events: list[dict[str, Any]]) -> dict[str, dict[str, Decimal]]:
    """Per symbol, straight from the log: gross realized, fees, funding, last unrealized."""
    led = {s: {"gross": Decimal(0), "fees": Decimal(0), "funding": Decimal(0),
               "unrealized": Decimal(0)} for s in SYMBOLS}
    funding_ids: set[str] = set()
    for e in events:
        ev, s = e["event"], e.get("symbol")
        if ev == "TRADE_CLOSED":
            led[s]["gross"] += D(e["gross_pnl"])
        elif ev == "ORDER_FILLED":
            assert e["fee_asset"] == "USDT"
            led[s]["fees"] += D(e["fee"])
        elif ev == "FUNDING_PAID" and e["funding_id"] not in funding_ids:
            funding_ids.add(e["funding_id"])
            led[s]["funding"] += D(e["amount"])
        elif ev == "EQUITY":
            for sym, p in e["positions"].items():
                led[sym]["unrealized"] = D(p["unrealized_pnl"])
    return led


def test_accounting_closes_in_the_log_and_the_report(run: Run) -> None:
    """final equity = initial + realized - fees +- funding + unrealized, to the cent: from the
    log's own events, in the report per symbol, and for the portfolio."""
    equity = [e for e in run.events if e["event"] == "EQUITY"]
    initial, final = D(run.res.initial_equity), D(equity[-1]["equity"])
    led = _ledger(run.events)
    assert any(led[s]["gross"] != 0 for s in SYMBOLS) and any(
        led[s]["funding"] != 0 for s in SYMBOLS), "the run must trade and pay funding"
    if run.name == "open_end":
        assert all(led[s]["unrealized"] != 0 for s in SYMBOLS)
    net = {s: x["gross"] - x["fees"] + x["funding"] + x["unrealized"] for s, x in led.items()}
    assert cents(initial + sum(net.values()), final)

    last = equity[-1]["positions"]
    p, syms = run.report["portfolio"], run.report["symbols"]
    assert cents(D(p["initial_equity"]), initial)
    assert cents(D(p["end_equity"]), final)
    assert cents(D(p["pnl"]["net"]), final - initial)
    assert cents(D(p["pnl"]["fees_paid"]), sum(x["fees"] for x in led.values()))
    assert cents(D(p["pnl"]["funding_net"]), sum(x["funding"] for x in led.values()))
    for s in SYMBOLS:
        r, x = syms[s]["pnl"], led[s]
        assert cents(D(r["realized_gross"]), x["gross"]), s
        assert cents(D(r["fees_paid"]), x["fees"]), s
        assert cents(D(r["funding_net"]), x["funding"]), s
        assert cents(D(r["unrealized"]), x["unrealized"]), s
        assert cents(D(r["net"]), D(r["realized_gross"]) - D(r["fees_paid"])
                     + D(r["funding_net"]) + D(r["unrealized"])), s
        assert cents(D(r["net"]), net[s]), s
        # the symbol's curve ends at its capital base + its PnL
        assert cents(D(syms[s]["end_equity"]) - D(syms[s]["capital_base"]), net[s]), s
        # the portfolio's own ledger (EQUITY.positions: realized = gross - fees + funding)
        assert cents(D(last[s]["realized_pnl"]), x["gross"] - x["fees"] + x["funding"]), s
        assert cents(D(last[s]["fees"]), x["fees"]) and cents(D(last[s]["funding"]),
                                                              x["funding"]), s
    assert cents(sum(D(syms[s]["pnl"]["net"]) for s in SYMBOLS), D(p["pnl"]["net"]))


def test_accounting_matches_the_venue_account(run: Run) -> None:
    """The report's final equity is the exchange account's wallet + unrealized PnL, and per
    symbol its realized PnL, fees and funding are the venue's income records."""
    eng = run.venue.engines[Market.FUTURES]
    acct = eng.futures_account(ACCOUNT)
    venue_equity = acct.wallet_balance + acct.unrealized_pnl
    assert cents(venue_equity, D(run.res.final_equity))
    p, syms = run.report["portfolio"], run.report["symbols"]
    income: dict[str, dict[str, Decimal]] = {s: {} for s in SYMBOLS}
    for r in eng.income(ACCOUNT, limit=10**9):
        income[r.symbol][r.income_type] = income[r.symbol].get(r.income_type,
                                                               Decimal(0)) + r.income
    assert cents(D(p["initial_equity"]) + sum(sum(x.values()) for x in income.values()),
                 acct.wallet_balance)
    for s in SYMBOLS:
        r, inc = syms[s]["pnl"], income[s]
        assert cents(D(r["realized_gross"]), inc.get("REALIZED_PNL", Decimal(0))), s
        assert cents(D(r["fees_paid"]), -inc.get("COMMISSION", Decimal(0))), s
        assert cents(D(r["funding_net"]), inc.get("FUNDING_FEE", Decimal(0))), s
    for pos in eng.positions(ACCOUNT):
        assert cents(D(syms[pos.symbol]["pnl"]["unrealized"]), pos.unrealized_pnl), pos.symbol
    assert cents(D(p["end_equity"]), venue_equity)


# -- 2. the html ------------------------------------------------------------------------------
class _Page(HTMLParser):
    """Text, attributes, <img> sources and the tables (by id) of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.attrs: list[tuple[str, str, str]] = []
        self.imgs: list[str] = []
        self.styles: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.exact: dict[str, list[list[str | None]]] = {}  # each cell's data-v, by table
        self._table: str | None = None
        self._cell: list[str] | None = None
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for k, v in attrs:
            self.attrs.append((tag, k, v or ""))
            if k == "style":
                self.styles.append(v or "")
        a = dict(attrs)
        if tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
            self.exact[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
            self.exact[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []
            self.exact[self._table][-1].append(a.get("data-v"))
        elif tag == "style":
            self._in_style = True

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._table and self._cell is not None:
            self.tables[self._table][-1].append("".join(self._cell).strip())
            self._cell = None
        elif tag == "table":
            self._table = None
        elif tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.styles.append(data)
        else:
            self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)


def _figures(node: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every numeric leaf (numbers and decimal strings) under ``node`` as (dotted path, value)."""
    if isinstance(node, dict):
        return [f for k, v in node.items() for f in _figures(v, f"{path}.{k}" if path else k)]
    if isinstance(node, bool) or node is None:
        return []
    if isinstance(node, (int, float)):
        return [(path, node)]
    if isinstance(node, str):
        try:
            return [(path, node)] if Decimal(node).is_finite() else []
        except ArithmeticError:
            return []
    return []


def _shown(v: Any) -> str:
    """A figure exactly as report.json writes it (the full table's data-v)."""
    return v if isinstance(v, str) else json.dumps(v)


def _reads_as(path: str, v: Any, text: str) -> bool:
    """The full table's rounded text says the same as the exact figure: a date for *_ms, a
    duration for *_s, money to the cent (the unit from 100,000), else 4 significant digits."""
    if path.endswith("_ms"):
        day = datetime.fromtimestamp(v / 1000, timezone.utc)
        return text in (day.strftime("%Y-%m-%d"), day.strftime("%Y-%m-%d %H:%M"))
    if any(p.endswith("_s") for p in path.split(".")):
        num, unit = text.split()
        scale = {"d": 86_400, "h": 3_600, "min": 60, "s": 1}[unit]
        return abs(float(num) * scale - v) <= (0.05 if "." in num else 0.5) * scale
    x = float(text.replace(",", ""))
    if isinstance(v, str):  # money
        return abs(Decimal(text.replace(",", "")) - Decimal(v)) <= (
            Decimal("0.5") if abs(Decimal(v)) >= 100_000 else Decimal("0.005"))
    return math.isclose(x, v, rel_tol=5e-4) or (abs(v) >= 1000 and abs(x - v) <= 0.5)


def test_html_is_self_contained_and_shows_every_figure(run: Run) -> None:
    page_src = (run.out / "report.html").read_text()
    page = _Page()
    page.feed(page_src)
    rep = run.report

    # charts: every PNG the report wrote is embedded, each decodes to a valid PNG
    pngs = sorted(f for f in rep["files"] if f.endswith(".png"))
    expected = {"equity.png", "drawdown.png", "symbol_pnl.png"} | {
        f"{k}_{s}.png" for s in SYMBOLS for k in ("price", "conviction")}
    assert set(pngs) == expected
    assert len(page.imgs) == len(pngs)
    embedded = []
    for src in page.imgs:
        assert src.startswith("data:image/png;base64,"), src[:60]
        raw = base64.b64decode(src.split(",", 1)[1], validate=True)
        assert is_png(raw)
        embedded.append(raw)
    for f in pngs:
        assert (run.out / f).read_bytes() in embedded, f

    # nothing external: src/href/url() only to data: or in-page anchors, no scripts
    for tag, k, v in page.attrs:
        if k in ("src", "href", "action", "srcset", "data", "poster"):
            assert v.startswith(("data:", "#")), (tag, k, v[:80])
    for css in page.styles:
        for target in re.findall(r"url\(\s*['\"]?([^'\")]*)", css):
            assert target.startswith("data:"), target
    assert "<script" not in page_src.lower() and "<link" not in page_src.lower()
    without_data = re.sub(r"data:[^\"')\s]+", "", page_src)
    assert not re.search(r"(https?:)?//[\w.-]+", without_data), "external URL in the page"

    # every figure of report.json, portfolio and per symbol, in its own row and column of the
    # full table: exact in the cell's data-v (and tooltip), rounded in its text
    columns = {"Portfolio": rep["portfolio"], **{s: rep["symbols"][s] for s in SYMBOLS}}
    figures = {name: dict(_figures(node)) for name, node in columns.items()}
    assert sum(len(f) for f in figures.values()) > 150
    rows, exact = page.tables["all-figures"], page.exact["all-figures"]
    head = rows[0]
    assert head == ["Figure", *columns]
    cells = {(r[0], col): (r[i + 1], x[i + 1]) for r, x in zip(rows[1:], exact[1:], strict=True)
             for i, col in enumerate(columns)}
    for name, figs in figures.items():
        for path, v in figs.items():
            shown, data_v = cells[(path, name)]
            assert data_v == _shown(v), (name, path)
            assert f'data-v="{_shown(v)}"' in page_src
            assert _reads_as(path, v, shown), (name, path, v, shown)
    # the summary table shows the headline figures rounded for people
    summary = {r[0]: r[1:] for r in page.tables["summary"][1:] if len(r) > 1}
    p = rep["portfolio"]
    assert summary["Sharpe (daily, ann.)"][0] == f"{p['sharpe']:.2f}"
    assert summary["Max drawdown"][0] == f"{p['max_drawdown'] * 100:.2f} %"
    assert summary["Net PnL"][1:] == [
        f"{Decimal(rep['symbols'][s]['pnl']['net']).quantize(CENT):+,.2f}" for s in SYMBOLS]
    assert summary["Round trips"][0] == f"{p['trades']['round_trips']:,}"
    # the headline: net PnL in the quote asset, to the cent
    net = Decimal(p["pnl"]["net"]).quantize(CENT)
    assert f"{net:+,.2f} USDT" in " ".join(page.text)
    assert summary["Profit factor, net"][0] == f"{p['trades']['net_profit_factor']:.2f}"
    assert summary["Order actions per fill"][0] == f"{p['actions_per_fill']:.1f}"
    # one duration row where the longest drawdown is the max drawdown's own
    if all(c["longest_drawdown_s"] == c["max_drawdown_duration_s"] for c in columns.values()):
        assert "Longest drawdown" not in summary
    else:
        assert "Longest drawdown" in summary
    assert "[report]" not in page_src and "weights: meta" not in page_src


# -- 3. Sharpe, Sortino, max drawdown --------------------------------------------------------
def _independent(ts: np.ndarray, eq: np.ndarray) -> tuple[float, float | None, float]:
    """Sharpe, Sortino (ann. sqrt(365), risk-free / target 0) and max drawdown, batch numpy:
    end-of-day equity per UTC calendar day (last sample of the day, carried over days without
    one), the first day against the first sample."""
    day = ts // DAY_MS
    days = np.arange(day[0], day[-1] + 1)
    last_idx = np.searchsorted(day, days, side="right") - 1  # last sample at or before the day
    eod = eq[last_idx]
    r = np.diff(np.concatenate([eq[:1], eod])) / np.concatenate([eq[:1], eod])[:-1]
    sharpe = r.mean() / r.std(ddof=1) * math.sqrt(365)
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    sortino = float(r.mean() / downside * math.sqrt(365)) if downside > 0 else None
    mdd = float(np.min(eq / np.maximum.accumulate(eq) - 1.0))
    return float(sharpe), sortino, mdd


def test_sharpe_sortino_drawdown_match_a_batch_computation(run: Run) -> None:
    with (run.out / "equity.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    ts = np.array([int(r["ts_ms"]) for r in rows], dtype=np.int64)
    eq = np.array([float(r["equity"]) for r in rows])
    assert len(rows) > 100 and np.all(np.diff(ts) >= 0)
    # the report's curve: equity.csv carried to the end of the run (documented in REPORT.md)
    if ts[-1] < run.end_ms:
        ts, eq = np.append(ts, run.end_ms), np.append(eq, eq[-1])
    sharpe, sortino, mdd = _independent(ts, eq)
    p = run.report["portfolio"]
    assert p["daily_returns"] == (run.end_ms // DAY_MS) - (int(ts[0]) // DAY_MS) + 1
    assert p["sharpe"] == pytest.approx(sharpe, rel=1e-9)
    if sortino is None:  # no losing day: undefined, reported as null (docs/REPORT.md)
        assert run.name == "open_end" and p["sortino"] is None
    else:
        assert p["sortino"] == pytest.approx(sortino, rel=1e-9)
    assert p["max_drawdown"] == pytest.approx(mdd, rel=1e-9)
    assert mdd < 0 and sharpe != 0
    # the drawdown chart's series is the same curve
    assert run.report["summary"]["max_drawdown"] == p["max_drawdown"]


# -- 4. trade and order-traffic figures from the log (issue #21) ------------------------------
def test_profit_factors_and_order_actions_from_the_log(run: Run) -> None:
    """Gross profit / loss are the round trips' gross PnL (before fees and funding), the net
    ones their net PnL; order actions are the requests sent, per fill."""
    trades = [e for e in run.events if e["event"] == "TRADE_CLOSED"]
    assert trades
    for scope, rep in [("portfolio", run.report["portfolio"]),
                       *[(s, run.report["symbols"][s]) for s in SYMBOLS]]:
        mine = [t for t in trades if scope == "portfolio" or t["symbol"] == scope]
        gross = [D(t["gross_pnl"]) for t in mine]
        net = [D(t["net_pnl"]) for t in mine]
        tr = rep["trades"]
        assert cents(D(tr["gross_profit"]), sum((g for g in gross if g > 0), Decimal(0))), scope
        assert cents(D(tr["gross_loss"]), -sum((g for g in gross if g < 0), Decimal(0))), scope
        assert cents(D(tr["net_profit"]), sum((x for x in net if x > 0), Decimal(0))), scope
        assert cents(D(tr["net_loss"]), -sum((x for x in net if x < 0), Decimal(0))), scope
        if D(tr["net_loss"]) > 0:
            assert tr["net_profit_factor"] == pytest.approx(
                float(D(tr["net_profit"]) / D(tr["net_loss"])), rel=1e-9)
        # fees come out of gross: the gross figures are the larger profit factor
        if tr["gross_profit_factor"] is not None and tr["net_profit_factor"] is not None:
            assert tr["gross_profit_factor"] >= tr["net_profit_factor"]

        def count(kind: str, scope: str = scope) -> int:
            return sum(1 for e in run.events if e["event"] == kind
                       and (scope == "portfolio" or e.get("symbol") == scope))

        actions = (count("ORDER_PLACED") + count("ORDER_MODIFY_REQUESTED")
                   + count("ORDER_CANCEL_REQUESTED"))
        assert actions > 0
        assert rep["order_actions"] == actions, scope
        assert rep["modify_requests"] == count("ORDER_MODIFY_REQUESTED"), scope
        assert rep["cancel_requests"] == count("ORDER_CANCEL_REQUESTED"), scope
        assert rep["actions_per_fill"] == pytest.approx(actions / count("ORDER_FILLED")), scope
