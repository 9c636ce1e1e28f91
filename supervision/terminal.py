"""The terminal of ``python run.py run``: the launcher follows the JSON log and shows it, and
prints a session summary at the stop.

* ``LogFollower``: follows ``gridbot.jsonl`` from the session's start, across rotations.
* ``SessionTotals``/``session_summary``/``render_summary``: the report's accounting
  (``report.analysis``) over this session's records, as the lines printed at the stop.
* ``SessionConsole``: a follower thread in the launcher that feeds an ``infra.console.Console``
  (the lines themselves) and ``SessionTotals``, and ``print_summary()`` after the graceful stop.

Why the launcher follows the file instead of thespian's logging process printing: the launcher
owns the terminal and lives exactly as long as the session; the embedded exchange, the only
thing that knows the replay's sim time, runs in it; and the summary needs the session's records
there. The actors and the logging process do no extra work.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np

from infra.console import NORMAL, STATUS_EVERY_S, Console, has_equity
from infra.termfmt import (
    BOLD,
    GREEN,
    RED,
    as_decimal,
    duration,
    money,
    paint,
    pct,
    sim_text,
    wall_epoch,
)
from report.analysis import ReportError, analyse
from report.collector import ReportCollector


# -- following the JSON log ---------------------------------------------------------------------
class LogFollower:
    """Follows a JSON-lines file from where it ended when the follower was made (the session's
    start), across loguru's rotations (the file is renamed and a new one begun at the path),
    handing each complete line's parsed record to ``on_record``."""

    def __init__(self, path: str | Path, on_record: Callable[[dict[str, Any]], None], *,
                 from_start: bool = False, interval_s: float = 0.1) -> None:
        self.path = Path(path)
        self.on_record = on_record
        self.interval_s = interval_s
        self._fh: IO[bytes] | None = None
        self._ino: int | None = None
        self._pending = b""
        self._dec = msgspec.json.Decoder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.bad_lines = 0
        self._open(at_end=not from_start)

    def _open(self, *, at_end: bool) -> bool:
        try:
            fh = open(self.path, "rb")  # noqa: SIM115 - held open across polls
        except OSError:
            return False
        if at_end:
            fh.seek(0, os.SEEK_END)
        self._fh = fh
        self._ino = os.fstat(fh.fileno()).st_ino
        self._pending = b""
        return True

    def _drain(self) -> None:
        assert self._fh is not None
        while True:
            chunk = self._fh.read(1 << 16)
            if not chunk:
                return
            data = self._pending + chunk
            lines = data.split(b"\n")
            self._pending = lines.pop()
            for ln in lines:
                if not ln.strip():
                    continue
                try:
                    rec = self._dec.decode(ln)
                except msgspec.DecodeError:
                    self.bad_lines += 1
                    continue
                if isinstance(rec, dict):
                    self.on_record(rec)

    def poll(self) -> None:
        """Hand over every complete line written since the last poll."""
        if self._fh is None and not self._open(at_end=False):
            return
        self._drain()
        try:
            st = os.stat(self.path)
        except OSError:
            return  # rotated away and the new file not created yet
        assert self._fh is not None
        if st.st_ino != self._ino:  # rotated: the old file is read to its end above
            self._fh.close()
            self._fh = None
            if self._open(at_end=False):
                self._drain()
        elif st.st_size < self._fh.tell():  # truncated in place
            self._fh.seek(0)
            self._pending = b""
            self._drain()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception as e:  # noqa: BLE001 - the terminal must never stop the bot
                print(f"gridbot: terminal output stopped: {type(e).__name__}: {e}",
                      file=sys.stderr)
                return

    def start(self) -> None:
        """Poll in a daemon thread every ``interval_s``."""
        self._thread = threading.Thread(target=self._run, name="gridbot-console", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread and hand over what is left (idempotent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        try:
            self.poll()
        finally:
            if self._fh is not None:
                self._fh.close()
                self._fh = None


# -- the session summary ---------------------------------------------------------------------
_SUMMARY_EVENTS = frozenset({"EQUITY", "TRADE_CLOSED", "ORDER_FILLED", "FUNDING_PAID",
                             "DRAWDOWN_LEVEL"})
_EQUITY_FIELDS = ("event", "level", "symbol", "ts_ms", "ts", "equity", "peak_equity",
                  "drawdown", "leverage", "worst_case_leverage", "drawdown_level", "state")


class SessionTotals:
    """The records of this session the report's accounting needs (``report.analysis``),
    trimmed (EQUITY without its positions), for the summary at the stop. The equity curve
    also takes the portfolio's equity from each PORTFOLIO_STATUS (EQUITY is logged at most
    every 15 minutes and after fills; the status comes every ``status_interval_s``), so the
    session's drawdown is not missed between two EQUITY lines."""

    def __init__(self) -> None:
        self.collector = ReportCollector()
        self.first_wall: float | None = None
        self.last_wall: float | None = None

    def feed(self, rec: Mapping[str, Any]) -> None:
        """One parsed record."""
        t = wall_epoch(rec)
        if t is not None:
            if self.first_wall is None:
                self.first_wall = t
            self.last_wall = t
        event = rec.get("event")
        if event == "PORTFOLIO_STATUS":
            self._status_equity(rec)
        if event not in _SUMMARY_EVENTS:
            return
        if event == "EQUITY":
            rec = {k: rec.get(k) for k in _EQUITY_FIELDS if k in rec}
        self.collector.add(rec)

    def _status_equity(self, rec: Mapping[str, Any]) -> None:
        pf = rec.get("portfolio")
        if not isinstance(pf, Mapping) or not has_equity(rec):
            return
        self.collector.add({"event": "EQUITY", "level": "INFO", "symbol": "",
                            "ts_ms": rec.get("ts_ms"), "ts": rec.get("ts"),
                            **{k: pf.get(k) for k in _EQUITY_FIELDS[5:] if k in pf}})


@dataclass(frozen=True)
class SessionSummary:
    """The figures printed at the stop (money as exact decimal strings, as the report gives
    them; None: not in this session's log)."""

    trades: int = 0
    wins: int = 0
    trades_net: str | None = None
    net_pnl: str | None = None
    fees: str | None = None
    funding: str | None = None
    start_equity: float | None = None
    end_equity: float | None = None
    total_return: float | None = None
    max_drawdown: float | None = None
    fills: int = 0
    maker_share: float | None = None
    wall_s: float | None = None
    sim_start_ms: int | None = None
    sim_end_ms: int | None = None
    quote: str = "USDT"
    note: str = ""


def session_summary(totals: SessionTotals, *, quote: str = "USDT",
                    sim_span: tuple[int | None, int | None] = (None, None)) -> SessionSummary:
    """The report's portfolio figures over this session's records."""
    wall = (totals.last_wall - totals.first_wall
            if totals.first_wall is not None and totals.last_wall is not None else None)
    common = {"wall_s": wall, "sim_start_ms": sim_span[0], "sim_end_ms": sim_span[1],
              "quote": quote}
    try:
        with np.errstate(all="ignore"):  # a zero equity sample must not print a warning
            report, _ = analyse(totals.collector, meta={"quote_asset": quote})
    except ReportError:
        return SessionSummary(note="no equity in this session's log (is logging.level above "
                                   "INFO?)", **common)
    p = report["portfolio"]
    tr, fl = p["trades"], p["fills"]
    return SessionSummary(
        trades=int(tr["round_trips"]), wins=int(tr["wins"]), trades_net=tr["net_pnl"],
        net_pnl=p["pnl"]["net"], fees=p["pnl"]["fees_paid"], funding=p["pnl"]["funding_net"],
        start_equity=p.get("start_equity"), end_equity=p.get("end_equity"),
        total_return=p.get("total_return"), max_drawdown=p.get("max_drawdown"),
        fills=int(fl["fills"]), maker_share=fl["maker_share"], **common)


def render_summary(s: SessionSummary, *, color: bool = False,
                   log_path: str | None = None) -> list[str]:
    """The summary as terminal lines."""
    span = []
    if s.wall_s is not None:
        span.append(duration(s.wall_s))
    if s.sim_start_ms is not None and s.sim_end_ms is not None:
        a, b = sim_text(s.sim_start_ms), sim_text(s.sim_end_ms)
        if a[:10] == b[:10]:
            b = b[11:]
        span.append(f"sim {a} -> {b}, {duration((s.sim_end_ms - s.sim_start_ms) / 1000)}")
    head = "session summary" + (f" ({'; '.join(span)})" if span else "")
    lines = [paint(f"-- {head} " + "-" * max(4, 72 - len(head)), BOLD, color)]
    if s.note:
        lines.append("  " + s.note)
    else:
        net = as_decimal(s.net_pnl)
        net_t = paint(f"{money(net, signed=True)} {s.quote}",
                   GREEN if (net or 0) >= 0 else RED, color)
        ret = f" ({pct(s.total_return)})" if s.total_return is not None else ""
        lines.append(f"  net PnL  {net_t}{ret}   fees {money(s.fees)}   funding "
                     f"{money(s.funding, signed=True)}")
        trades = f"  trades   {s.trades} closed"
        if s.trades:
            trades += f", {s.wins} won, net {money(s.trades_net, signed=True)}"
        trades += f"   fills {s.fills}"
        if s.maker_share is not None:
            trades += f", {s.maker_share * 100:.0f}% maker"
        lines.append(trades)
        lines.append(f"  equity   {money(s.start_equity)} -> {money(s.end_equity)} {s.quote}"
                     f"   max drawdown {pct(s.max_drawdown or 0.0, signed=False)}")
    if log_path:
        lines.append(f"  log      {log_path}   (report: python run.py report "
                     f"{Path(log_path).parent} --out DIR)")
    return lines


class SessionConsole:
    """The terminal of ``python run.py run``: follows the JSON log in a thread from the moment
    it is made, renders it on ``stream`` and keeps the session's totals for the summary."""

    def __init__(self, log_path: str | Path, *, verbosity: int = NORMAL, quote: str = "USDT",
                 sim_venue: bool = False, stream: IO[str] | None = None,
                 status_every_s: float = STATUS_EVERY_S) -> None:
        self.log_path = Path(log_path)
        self.console = Console(stream if stream is not None else sys.stderr,
                               verbosity=verbosity, quote=quote, sim_venue=sim_venue,
                               status_every_s=status_every_s)
        self.totals = SessionTotals()
        self.quote = quote
        self.follower = LogFollower(self.log_path, self._on_record)

    def _on_record(self, rec: dict[str, Any]) -> None:
        try:
            self.totals.feed(rec)
        except Exception:  # noqa: BLE001 - a record the accounting cannot read: no summary row
            pass
        self.console.feed(rec)

    def start(self, sim_clock: Callable[[float], int] | None = None) -> None:
        """Begin following (``sim_clock``: the embedded exchange's, see ``Console``)."""
        self.console.sim_clock = sim_clock
        self.follower.start()

    def stop(self) -> None:
        """Show what is left of the log (call once the actor system is down)."""
        self.follower.stop()

    def summary(self) -> SessionSummary:
        """This session's figures."""
        return session_summary(self.totals, quote=self.quote,
                               sim_span=(self.console.first_sim_ms, self.console.last_sim_ms))

    def print_summary(self) -> None:
        """Print the summary (always, also with ``-q``)."""
        try:
            lines = render_summary(self.summary(), color=self.console.color,
                                   log_path=str(self.log_path))
        except Exception as e:  # noqa: BLE001 - the stop must finish cleanly
            lines = [f"gridbot: no session summary: {type(e).__name__}: {e}"]
        for ln in lines:
            self.console.write(ln)


__all__ = ["LogFollower", "SessionConsole", "SessionSummary", "SessionTotals", "render_summary",
           "session_summary"]
