"""What the report takes from a run's JSON log: reading the log files (``iter_log``,
``read_log``) and ``ReportCollector``, the records the analysis needs, collected in one pass
while the run logs or while the file is read (``collect``).

Bad input raises ``ReportError`` (missing file, not JSON lines); a truncated last line is
skipped with a warning.
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from infra.jsonlog import jsonable
from report.values import record_ms, to_float

TRADE_COLUMNS = ("symbol", "side", "qty", "entry_price", "exit_price", "gross_pnl", "fees",
                 "funding", "net_pnl", "opened_ms", "closed_ms", "holding_s")


class ReportError(Exception):
    """Input the report cannot be built from (the message names the problem)."""


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
        a[1].append(to_float(close) if close is not None else math.nan)
        a[2].append(to_float(L))
        a[3].append(to_float(S))

    def add_status(self, symbol: str, ts_ms: int | None, leverage: float | None) -> None:
        """A STATUS record: the symbol's current leverage (per-symbol maximum)."""
        if not self._seen("STATUS", ts_ms) or not symbol or leverage is None:
            return
        lev = to_float(leverage)
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
            t = rec.ts_ms if rec.ts_ms is not None else record_ms({"ts": rec.ts})
            self.add_strategy(rec.symbol, t, rec.close, rec.L, rec.S)
            return
        if not isinstance(rec, Mapping):
            return
        kind = str(rec.get("event"))
        t = record_ms(rec)
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
                    rec[k] = jsonable(v)  # as the JSON log writes it
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


def collect(records: Iterable[Mapping[str, Any] | _Strat]) -> ReportCollector:
    """One pass over log records (dicts, or STRATEGY structs from ``iter_log(fast=True)``)."""
    c = ReportCollector()
    for r in records:
        c.add(r)
    return c


__all__ = ["TRADE_COLUMNS", "ReportCollector", "ReportError", "collect", "iter_log", "read_log"]
