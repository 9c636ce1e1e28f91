"""Performance report from the bot's JSON log: ``report.json``, ``report.html``, PNG charts.

``python run.py report LOGFILE --out DIR`` (``report_command``) and the backtest driver
(``build_report``) read the same log events, so paper, live and backtest runs are judged by
the same numbers. Methods are in ``models.metrics`` and docs/REPORT.md.

API::

    build_report(out_dir, log_path=None, *, events=None, benchmark_prices=None, meta=None,
                 charts=True, overwrite_csv=False, pool=None) -> dict

* ``out_dir``: where ``report.json``, ``report.html``, the PNGs and ``trades.csv``/
  ``equity.csv`` are written (created if needed). Existing CSVs (the backtest's own) are kept
  unless ``overwrite_csv``; ``run.py report`` overwrites them except in the log's directory.
* ``log_path``: the run's ``gridbot.jsonl`` (a directory: every ``gridbot*.jsonl`` in it);
  or pass ``events`` instead: parsed records, or a ``ReportCollector`` fed while the run
  logged (no re-read of the file; same report).
* ``pool``: a ``ChartPool`` (``report.charts``) started early draws the charts in
  worker processes; without it they are drawn here.
* ``benchmark_prices``: ``{symbol: [(ts_ms, close), ...]}`` for buy-and-hold; default: the
  ``close`` of the STRATEGY events.
* ``meta``: copied into ``report["meta"]``; read: ``initial_equity`` (default: the first
  EQUITY), ``weights`` ``{symbol: w}`` (capital base of per-symbol returns; default: a
  ``weights`` dict found in the log, else equal weights), ``quote_asset`` (default USDT).
* ``charts``: False skips matplotlib (tables only). Without matplotlib installed the report
  is built without charts and says so in ``warnings``.

Bad input raises ``ReportError`` (missing file, not JSON lines, no EQUITY events); a
truncated last line is skipped with a warning.
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import importlib.util
import json
import math
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from infra.logs import _jsonable
from models import metrics as mx
from models.timeframes import parse_time
from report.charts import ChartPool, render_charts

ZERO = Decimal(0)
EXIT_OK, EXIT_BAD_INPUT = 0, 2
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD")
TRADE_COLUMNS = ("symbol", "side", "qty", "entry_price", "exit_price", "gross_pnl", "fees",
                 "funding", "net_pnl", "opened_ms", "closed_ms", "holding_s")
EQUITY_COLUMNS = ("ts_ms", "time", "equity", "peak_equity", "drawdown", "leverage",
                  "worst_case_leverage", "level", "state")


class ReportError(Exception):
    """Input the report cannot be built from (the message names the problem)."""


# -- reading the log ----------------------------------------------------------------------------
def _log_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(p for p in path.glob("gridbot*.jsonl") if p.name != "gridbot.jsonl")
        if (path / "gridbot.jsonl").exists():
            files.append(path / "gridbot.jsonl")  # the current file is the newest
        if not files:
            raise ReportError(f"no gridbot*.jsonl log file in directory {path}")
        return files
    if not path.exists():
        raise ReportError(f"log file not found: {path}")
    return [path]


class _Strat(msgspec.Struct):
    """The fields of a STRATEGY line the report uses (the most frequent line: decoded into a
    small struct instead of a dict, so a year of minutes fits in memory)."""

    event: str = ""
    ts_ms: int | None = None
    ts: str | None = None
    symbol: str = ""
    close: float | None = None
    L: float | None = None
    S: float | None = None


_STRAT_MARK = b"STRATEGY"
_MAX_LEADING_BAD = 20


def iter_log(path: str | Path, warnings: list[str], *, fast: bool = False
             ) -> Iterator[dict[str, Any] | _Strat]:
    """Stream the records of a log file (or a log directory), appending warnings.

    A last line that does not parse (the writer was killed mid-line) is dropped with a
    warning; a file whose lines are not JSON objects raises ``ReportError``. ``fast``: yield
    STRATEGY lines as small structs."""
    dec = msgspec.json.Decoder()
    sdec = msgspec.json.Decoder(_Strat, strict=False)
    for f in _log_files(Path(path)):
        good = nonempty = 0
        bad: list[int] = []
        pending: tuple[int, int] | None = None  # the latest unreadable line (number, bytes)
        try:
            fh = f.open("rb")
        except OSError as e:
            raise ReportError(f"cannot read log file {f}: {e}") from e
        with fh:
            for no, ln in enumerate(fh, 1):
                if not ln.strip():
                    continue
                nonempty += 1
                if pending is not None:
                    bad.append(pending[0])
                    pending = None
                rec: Any = None
                try:
                    if fast and _STRAT_MARK in ln:
                        try:
                            rec = sdec.decode(ln)
                        except msgspec.ValidationError:
                            rec = None
                        if rec is None or rec.event != "STRATEGY":
                            rec = dec.decode(ln)
                    else:
                        rec = dec.decode(ln)
                except (msgspec.DecodeError, UnicodeDecodeError):
                    rec = None
                if not isinstance(rec, (dict, _Strat)):
                    pending = (no, len(ln.rstrip(b"\r\n")))
                    if good == 0 and len(bad) >= _MAX_LEADING_BAD:
                        break
                    continue
                good += 1
                yield rec
        if pending is not None:
            if good:
                warnings.append(f"{f}: line {pending[0]} is truncated or not JSON "
                                f"({pending[1]} bytes); ignored (writer killed mid-line?)")
            else:
                bad.append(pending[0])
        if bad and (good == 0 or len(bad) > good):
            raise ReportError(f"{f} is not a JSON-lines log: line {bad[0]} is not a JSON "
                              f"object ({len(bad)} unreadable, {good} readable lines)")
        if bad:
            warnings.append(f"{f}: {len(bad)} unreadable line(s) skipped, first at line "
                            f"{bad[0]}")
        if nonempty == 0:
            warnings.append(f"{f}: empty log file")


def read_log(path: str | Path) -> tuple[list[dict[str, Any]], list[str]]:
    """All records of a log file (or a log directory) as dicts, and the warnings."""
    warnings: list[str] = []
    events = [r for r in iter_log(path, warnings) if isinstance(r, dict)]
    return events, warnings


# -- small helpers ------------------------------------------------------------------------------
def _dec(v: Any) -> Decimal:
    if v is None or v == "":
        return ZERO
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return ZERO
    return d if d.is_finite() else ZERO


def _f(v: Any) -> float:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def _ts(ev: Mapping[str, Any]) -> int | None:
    v = ev.get("ts_ms")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v)
    for key in ("ts", "time"):
        s = ev.get(key)
        if isinstance(s, str):
            try:
                t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                continue
            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.timezone.utc)
            return int(t.timestamp() * 1000)
    return None


def _iso(ts_ms: int | None) -> str | None:
    if ts_ms is None:
        return None
    return _dt.datetime.fromtimestamp(ts_ms / 1000, _dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S")


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


def _money(d: Decimal | None) -> str | None:
    if d is None:
        return None
    q = d.quantize(Decimal("0.00000001")).normalize()
    return format(q, "f") if q != ZERO else "0"


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


# -- analysis -----------------------------------------------------------------------------------
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


_KEEP = {
    "ORDER_PLACED": ("client_order_id", "qty"),
    "ORDER_MODIFY_REQUESTED": ("client_order_id", "new_client_order_id", "qty"),
    "ORDER_FILLED": ("client_order_id", "side", "price", "qty", "fee", "fee_asset", "maker"),
    "TRADE_CLOSED": TRADE_COLUMNS[1:],
}
_MAIN = {"EQUITY", "DRAWDOWN_LEVEL", "TRADE_CLOSED", "ORDER_FILLED", "ORDER_PLACED",
         "ORDER_MODIFY_REQUESTED", "FUNDING_PAID"}
_CANCEL = "ORDER_CANCEL_REQUESTED"  # counted per symbol (an order action), fields unused


class ReportCollector:
    """Everything the report needs from a run's log records, collected incrementally (one pass,
    in log order): the events the analysis walks in time order (trimmed), STRATEGY prices and
    conviction as compact per-symbol arrays, STATUS leverage maxima, event counts and span.

    Feed it every record the JSON log file receives, in file order, through any mix of
    ``add`` (a parsed record), ``add_line`` (a JSON line), ``add_event`` (an unrendered
    ``log_event`` call) or the field-level ``add_strategy``/``add_status``/``add_other``; then
    pass it to ``build_report(..., events=collector)``. Fed the same records, every path gives
    the same report as reading the file."""

    def __init__(self) -> None:
        self.main: list[tuple[int, int, Mapping[str, Any]]] = []
        self.strat: dict[str, tuple[array, array, array, array]] = {}
        self.status_lev: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.cancels: dict[str, int] = {}
        self.weights: dict[str, Any] | None = None
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.warnings: list[str] = []
        self.bad_lines = 0
        self._seq = 0
        self._dec = msgspec.json.Decoder()
        self._sdec = msgspec.json.Decoder(_Strat, strict=False)

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (a backtest's log-writer process hands its collector back)."""
        st = dict(self.__dict__)
        del st["_dec"], st["_sdec"]
        return st

    def __setstate__(self, st: dict[str, Any]) -> None:
        self.__dict__.update(st)
        self._dec = msgspec.json.Decoder()
        self._sdec = msgspec.json.Decoder(_Strat, strict=False)

    def _seen(self, kind: str, t: int | None) -> bool:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if t is None:
            return False
        if self.first_ts is None or t < self.first_ts:
            self.first_ts = t
        if self.last_ts is None or t > self.last_ts:
            self.last_ts = t
        return True

    def add_strategy(self, symbol: str, ts_ms: int | None, close: float | None, L: float | None,
                     S: float | None) -> None:
        """A STRATEGY record: the close (price chart, benchmark) and conviction L/S."""
        if not self._seen("STRATEGY", ts_ms) or not symbol:
            return
        a = self.strat.get(symbol)
        if a is None:
            a = self.strat[symbol] = (array("q"), array("d"), array("d"), array("d"))
        a[0].append(ts_ms)  # type: ignore[arg-type]
        a[1].append(_f(close) if close is not None else math.nan)
        a[2].append(_f(L))
        a[3].append(_f(S))

    def add_status(self, symbol: str, ts_ms: int | None, leverage: float | None) -> None:
        """A STATUS record: the symbol's current leverage (per-symbol maximum)."""
        if not self._seen("STATUS", ts_ms) or not symbol or leverage is None:
            return
        lev = _f(leverage)
        self.status_lev[symbol] = max(lev, self.status_lev.get(symbol, lev))

    def add_other(self, event: str, ts_ms: int | None, symbol: str = "") -> None:
        """A record whose fields the report does not read (it still counts, and its time
        extends the run's span; a cancel request also counts as its symbol's order action)."""
        self._seen(event, ts_ms)
        if event == _CANCEL and symbol:
            self.cancels[symbol] = self.cancels.get(symbol, 0) + 1

    def add(self, rec: Mapping[str, Any] | _Strat) -> None:
        """One parsed log record (a dict as ``json.loads`` gives it)."""
        if isinstance(rec, _Strat):
            t = rec.ts_ms if rec.ts_ms is not None else _ts({"ts": rec.ts})
            self.add_strategy(rec.symbol, t, rec.close, rec.L, rec.S)
            return
        if not isinstance(rec, Mapping):
            return
        kind = str(rec.get("event"))
        t = _ts(rec)
        w = rec.get("weights")
        if isinstance(w, dict):
            self.weights = w
        symbol = rec.get("symbol")
        symbol = symbol if isinstance(symbol, str) else ""
        if kind == "STRATEGY":
            self.add_strategy(symbol, t, rec.get("close"), rec.get("L"), rec.get("S"))
        elif kind == "STATUS":
            self.add_status(symbol, t, rec.get("leverage"))
        elif kind not in _MAIN:
            self.add_other(kind, t, symbol)
        elif self._seen(kind, t):
            keep = _KEEP.get(kind)
            ev = rec if keep is None else {"event": kind, "symbol": symbol,
                                           **{k: rec.get(k) for k in keep}}
            self.main.append((t, self._seq, ev))  # type: ignore[arg-type]
            self._seq += 1

    def add_line(self, line: str | bytes) -> None:
        """One JSON log line (a line that is not a JSON object is counted in ``bad_lines``
        and reported as a warning)."""
        raw = line.encode() if isinstance(line, str) else line
        rec: Any = None
        try:
            if _STRAT_MARK in raw:
                try:
                    rec = self._sdec.decode(raw)
                except msgspec.ValidationError:
                    rec = None
                if rec is None or rec.event != "STRATEGY":
                    rec = self._dec.decode(raw)
            else:
                rec = self._dec.decode(raw)
        except (msgspec.DecodeError, UnicodeDecodeError):
            rec = None
        if isinstance(rec, (dict, _Strat)):
            self.add(rec)
        elif raw.strip():
            self.bad_lines += 1
            if self.bad_lines == 1:
                self.warnings.append("a log line fed to the report is not a JSON object; "
                                     "ignored")

    def add_event(self, event: str, symbol: str, ts_ms: int | None,
                  fields: Mapping[str, Any], level: str = "INFO") -> None:
        """One ``log_event(event, symbol=..., **fields)`` call as the JSON log would record it
        (``ts_ms``: the record's event time; ``level``: its log level), without rendering
        or parsing a line. Values may be Decimal, Enum, msgspec structs, ..."""
        if event == "STRATEGY":
            self.add_strategy(symbol, ts_ms, _num(fields.get("close")), _num(fields.get("L")),
                              _num(fields.get("S")))
        elif event == "STATUS":
            self.add_status(symbol, ts_ms, _num(fields.get("leverage")))
        elif event not in _MAIN and "weights" not in fields:
            self.add_other(event, ts_ms, symbol)
        else:
            rec: dict[str, Any] = {"level": level, "event": event, "symbol": symbol,
                                   "ts_ms": ts_ms}
            keep = _KEEP.get(event)
            for k, v in fields.items():
                if keep is None or k in keep or k == "weights":
                    rec[k] = _jsonable(v)  # as the JSON log writes it
            self.add(rec)

    def strategy_series(self, symbol: str) -> tuple[Any, Any, Any, Any]:
        """(ts, close, L, S) numpy arrays of a symbol, in time order."""
        a = self.strat.get(symbol)
        if a is None:
            e = np.zeros(0)
            return np.zeros(0, dtype=np.int64), e, e, e
        t = np.frombuffer(a[0], dtype=np.int64)
        order = np.argsort(t, kind="stable")
        return (t[order], np.frombuffer(a[1])[order], np.frombuffer(a[2])[order],
                np.frombuffer(a[3])[order])


def _num(v: Any) -> Any:
    """A context number as the JSON log gives it back (Decimal -> its string's float)."""
    return float(v) if isinstance(v, Decimal) else v


def _weights(symbols: Sequence[str], meta: Mapping[str, Any],
             logged: Mapping[str, Any] | None) -> tuple[dict[str, float], str]:
    cand: Any = meta.get("weights")
    source = "meta"
    if not isinstance(cand, dict):
        cand, source = logged, "log"
        if cand is None:
            return {s: 1.0 / len(symbols) for s in symbols} if symbols else {}, "equal"
    w = {s: _f(cand.get(s)) for s in symbols}
    if any(v <= 0 for v in w.values()):
        return {s: 1.0 / len(symbols) for s in symbols}, "equal (weights incomplete)"
    total = sum(w.values())
    return {s: v / total for s, v in w.items()}, source


def collect(records: Iterable[Mapping[str, Any] | _Strat]) -> ReportCollector:
    """One pass over log records (dicts, or STRATEGY structs from ``iter_log(fast=True)``)."""
    c = ReportCollector()
    for r in records:
        c.add(r)
    return c


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
            e = _f(ev.get("equity"))
            eq_t.append(t)
            eq_v.append(e)
            row = {c: ev.get(c, "") for c in EQUITY_COLUMNS}
            row["ts_ms"], row["time"] = t, _iso(t)
            eq_rows.append(row)
            max_lev = max(max_lev, _f(ev.get("leverage")))
            max_wc = max(max_wc, _f(ev.get("worst_case_leverage")))
            if (lv := _dd_level(ev)) is not None:
                lv_t.append(t)
                lv_v.append(lv)
            ledger: dict[str, Decimal] = {}
            for name, p in _positions(ev.get("positions")).items():
                s = sym(name)
                if s is not None:
                    s.unrealized = _dec(p.get("unrealized_pnl"))
                    if p.get("realized_pnl") is not None:
                        ledger[name] = _dec(p.get("realized_pnl")) + s.unrealized
                    mark = _f(p.get("mark_price"))
                    if mark > 0 and e > 0:
                        lev = abs(_f(p.get("qty"))) * mark / e
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
            s.gross += _dec(ev.get("gross_pnl"))
            s.trades.append(dict(ev))
        elif kind == "ORDER_FILLED":
            price, qty = _dec(ev.get("price")), _dec(ev.get("qty"))
            fee, asset = _dec(ev.get("fee")), str(ev.get("fee_asset") or "")
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
            s.placed[str(ev.get("client_order_id", ""))] = _dec(ev.get("qty"))
            s.placements += 1
        elif kind == "ORDER_MODIFY_REQUESTED":
            s.modifies += 1
            coid, qty = str(ev.get("client_order_id", "")), _dec(ev.get("qty"))
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
            a = _dec(ev.get("amount"))
            if a >= ZERO:
                s.funding_received += a
            else:
                s.funding_paid -= a

    initial = _f(meta["initial_equity"]) if meta.get("initial_equity") is not None else eq_v[0]
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
            pts = sorted((int(t), _f(p)) for t, p in src)
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
                "net": _money(s.pnl), "realized_gross": _money(s.gross),
                "fees_paid": _money(s.fees),
                "fees_other_assets": {k: _money(v) for k, v in s.fees_other.items()},
                "funding_paid": _money(s.funding_paid),
                "funding_received": _money(s.funding_received),
                "funding_net": _money(s.funding_received - s.funding_paid),
                "unrealized": _money(s.unrealized),
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
        "pnl": {"net": _money(Decimal(repr(eq_v[-1])) - Decimal(repr(initial))),
                "realized_gross": _money(sum((syms[n].gross for n in names), ZERO)),
                "fees_paid": _money(fees_total), "funding_paid": _money(fpaid),
                "funding_received": _money(frec), "funding_net": _money(frec - fpaid),
                "unrealized": _money(sum((syms[n].unrealized for n in names), ZERO))},
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
                           "start_ms": start_ms, "end_ms": end_ms, "start": _iso(start_ms),
                           "end": _iso(end_ms), "weights_source": wsource},
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
    return mx.trade_stats([_dec(tr.get("net_pnl")) for tr in trades],
                          [_f(tr.get("holding_s")) for tr in trades],
                          [_dec(tr.get("gross_pnl")) for tr in trades])


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
            "gross_profit": _money(ts.gross_profit), "gross_loss": _money(ts.gross_loss),
            "gross_profit_factor": ts.gross_profit_factor,
            "net_profit": _money(ts.net_profit), "net_loss": _money(ts.net_loss),
            "net_profit_factor": ts.net_profit_factor,
            "net_pnl": _money(ts.net_pnl), "avg_net_pnl": _money(ts.avg_net_pnl),
            "avg_holding_s": ts.avg_holding_s}


def _fill_json(fs: mx.FillStats) -> dict[str, Any]:
    return {"fills": fs.fills, "maker_fills": fs.maker_fills, "taker_fills": fs.taker_fills,
            "maker_share": fs.maker_share, "maker_taker_ratio": fs.maker_taker_ratio,
            "maker_notional": _money(fs.maker_notional),
            "taker_notional": _money(fs.taker_notional),
            "maker_notional_share": fs.maker_notional_share}


def _bench(series: tuple[list[int], list[float]] | None) -> dict[str, Any] | None:
    if series is None or len(series[0]) == 0:
        return None
    m = mx.equity_metrics(*series)
    return {"start_price": series[1][0], "end_price": series[1][-1],
            **{k: m[k] for k in ("total_return", "cagr", "sharpe", "sortino", "max_drawdown",
                                 "max_drawdown_duration_s")}}


# -- outputs ------------------------------------------------------------------------------------
def _write_trades_csv(path: Path, trades: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for tr in sorted(trades, key=lambda x: (_f(x.get("closed_ms")), str(x.get("symbol")))):
            w.writerow([tr.get(c, "") for c in TRADE_COLUMNS])


def _write_equity_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EQUITY_COLUMNS)
        for r in rows:
            w.writerow([r.get(c, "") for c in EQUITY_COLUMNS])


def _json_default(o: Any) -> Any:
    if isinstance(o, Decimal):
        return str(o)
    return str(o)


def _clean(o: Any) -> Any:
    """NaN/inf are not JSON: write them as null."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    return o


def build_report(out_dir: str | Path, log_path: str | Path | None = None, *,
                 events: Iterable[Mapping[str, Any]] | ReportCollector | None = None,
                 benchmark_prices: Mapping[str, Sequence[tuple[int, Any]]] | None = None,
                 meta: Mapping[str, Any] | None = None, charts: bool = True,
                 overwrite_csv: bool = False, pool: ChartPool | None = None) -> dict[str, Any]:
    """Write report.json, report.html, PNG charts and trades.csv/equity.csv (derived from the
    log when missing, or always with ``overwrite_csv``) into ``out_dir``; return the report
    dict. ``events``: parsed records or a ``ReportCollector`` fed during the run, instead of
    reading ``log_path``. ``pool``: a started ``ChartPool`` draws the charts (else this
    process does). Raises ``ReportError`` on bad input."""
    warnings: list[str] = []
    if events is None:
        if log_path is None:
            raise ReportError("build_report needs a log_path or events")
        events = collect(iter_log(log_path, warnings, fast=True))
    report, chart = analyse(events, benchmark_prices=benchmark_prices, meta=meta)
    report["warnings"] = warnings + report["warnings"]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if overwrite_csv or not (out / "trades.csv").exists():
        _write_trades_csv(out / "trades.csv", chart["trades"])
    if overwrite_csv or not (out / "equity.csv").exists():
        _write_equity_csv(out / "equity.csv", chart["equity_rows"])
    images: dict[str, bytes] = {}
    if charts and pool is not None:  # a pool exists only where matplotlib does
        images = pool.render(chart, report["warnings"])
    elif charts:
        try:
            import matplotlib  # noqa: F401 - present?
        except ImportError as e:
            report["warnings"].append(f"charts skipped: {e} (matplotlib is a dependency of "
                                      "gridbot: reinstall it with pip install -e .)")
        else:
            images = render_charts(chart, report["warnings"])
    for name, png in images.items():
        (out / name).write_bytes(png)
    report["files"] = sorted(["report.json", "report.html", "trades.csv", "equity.csv",
                              *images])
    report = _clean(report)
    (out / "report.json").write_text(json.dumps(report, indent=2, default=_json_default))
    (out / "report.html").write_text(render_html(report, images))
    return report


# -- html ---------------------------------------------------------------------------------------
def render_html(report: Mapping[str, Any], images: Mapping[str, bytes]) -> str:
    """report.html (``report.html``): self-contained, charts inline."""
    from report.html import render_html as _render

    return _render(report, images)


def have_matplotlib() -> bool:
    """Is matplotlib installed (without importing it)?"""
    try:
        return importlib.util.find_spec("matplotlib") is not None
    except (ValueError, ImportError):  # e.g. sys.modules["matplotlib"] is None
        return False


# -- CLI ----------------------------------------------------------------------------------------
def report_command(args: argparse.Namespace) -> int:
    """``run.py report LOGFILE --out DIR``: 0 on success, 2 on bad input."""
    log, out = Path(args.logfile), Path(args.out)
    # next to a backtest's own log, its trades.csv/equity.csv are the originals: keep them;
    # anywhere else derive fresh ones (never leave a previous run's CSVs beside this report)
    log_dir = log if log.is_dir() else log.parent
    keep = out.exists() and out.resolve() == log_dir.resolve()
    # the workers import matplotlib while this process reads the log
    pool = ChartPool() if have_matplotlib() else None
    try:
        rep = build_report(out, log, overwrite_csv=not keep, pool=pool)
    except ReportError as e:
        print(f"gridbot report: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if pool is not None:
            pool.close()
    for w in rep["warnings"]:
        print(f"gridbot report: warning: {w}", file=sys.stderr)
    p = rep["portfolio"]
    from report.html import fmt_int, fmt_money, fmt_num, fmt_pct

    quote = str(rep["meta"].get("quote_asset") or "USDT")
    print(f"report written to {args.out}: net PnL {fmt_money(p['pnl']['net'], True)} {quote} "
          f"({fmt_pct(p['total_return'], signed=True)}), Sharpe {fmt_num(p['sharpe'])}, "
          f"max drawdown {fmt_pct(p['max_drawdown'])}, "
          f"{fmt_int(p['trades']['round_trips'])} round trips")
    return EXIT_OK


__all__ = ["ChartPool", "ReportCollector", "ReportError", "analyse", "build_report", "collect",
           "iter_log", "read_log", "render_charts",
           "render_html", "report_command"]
