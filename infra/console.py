"""The terminal's lines: one short line per JSON-log record a person watching needs.

Everything the terminal shows is rendered from records of the JSON log (``infra.logs``), so
it never says anything the log does not back, and the log keeps the full precision:

* ``render(rec, view)``: the pure rendering of one parsed JSON-log record into one line, or
  None when the record is not shown at that verbosity (what each event says and when:
  ``infra.console_events``). Money is rounded for people (two decimals, thousands
  separators, ``infra.termfmt``); prices and quantities are shown as the exchange gave them.
* ``Console``: the sink around it: verbosity, one portfolio STATUS line per minute, the latest
  per-symbol STATUS (open orders), the sim time of each record, colour (TTY only, NO_COLOR).
* ``StreamSink``: a loguru sink rendering every record it gets (the stderr of commands other
  than ``run``: backtest, acceptance). ``python run.py run`` follows the log file instead
  (``supervision.terminal``).
* ``verbosity_from``: ``-v``/``-q`` and the config's logging level -> ``QUIET`` ... ``ALL``.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import IO, Any

import msgspec

from infra.console_events import (
    ALL,
    BRAKE_NAMES,
    EVENTS,
    NORMAL,
    QUIET,
    VERBOSE,
    View,
    generic,
    has_equity,
    shown_at,
)
from infra.jsonlog import LEVEL_NO
from infra.termfmt import (
    BLUE,
    BOLD,
    CYAN,
    DIM,
    GREEN,
    RED,
    YELLOW,
    as_text,
    paint,
    sim_text,
    use_color,
    wall_epoch,
)

#: a portfolio STATUS line at most this often (wall seconds; the first one is always shown)
STATUS_EVERY_S = 60.0


def render(rec: Mapping[str, Any], view: View) -> str | None:
    """One JSON-log record as a terminal line, or None when ``view.verbosity`` hides it.

    Layout: wall time (local), the sim time when the venue is the embedded exchange, the
    symbol, a short tag and the text: ``13:29:16  sim 2025-01-02 10:05  BTCUSDT  FILL    BUY
    0.012 @ 94,210.5  maker  fee 0.23  entry L1``."""
    if shown_at(rec) > view.verbosity:
        return None
    event = as_text(rec.get("event"))
    hit = EVENTS.get(event)
    try:
        tag, text, style = (hit[1] if hit is not None else generic)(rec, view)
    except Exception:  # noqa: BLE001 - an odd record still gets a line, never a traceback
        tag, text, style = generic(rec, view)
    level = as_text(rec.get("level")).upper()
    if level in ("ERROR", "CRITICAL"):
        style = BOLD + ";" + RED
        if hit is not None and event not in text:
            text = f"{event}  {text}"
    elif level == "WARNING":
        style = YELLOW if style in ("", BLUE, CYAN, GREEN) else style
    return _layout(rec, view, tag, text, style)


def _layout(rec: Mapping[str, Any], v: View, tag: str, text: str, style: str) -> str:
    t = wall_epoch(rec)
    wall = (_dt.datetime.fromtimestamp(t, v.tz if v.tz is not None else None)
            .strftime("%H:%M:%S") if t is not None else "--:--:--")
    parts = [paint(wall, DIM, v.color)]
    if v.sim_column:
        parts.append(paint(f"sim {sim_text(v.sim_ms) if v.sim_ms is not None else '-' * 16}",
                        DIM, v.color))
    parts.append(f"{as_text(rec.get('symbol')):<8}")
    parts.append(paint(f"{tag:<7}", style, v.color))
    parts.append(text)
    line = "  ".join(parts).rstrip()
    return line.replace("\n", " ").replace("\r", " ")


# -- the sink -------------------------------------------------------------------------------
class Console:
    """Renders records onto ``stream`` (see module doc). ``sim_clock(epoch_s) -> sim ms``: the
    embedded exchange's clock (None: the sim time of the latest bar in the log, when
    ``sim_venue``)."""

    def __init__(self, stream: IO[str], *, verbosity: int = NORMAL, color: bool | None = None,
                 quote: str = "USDT", sim_venue: bool = False,
                 sim_clock: Callable[[float], int] | None = None,
                 status_every_s: float = STATUS_EVERY_S, tz: _dt.tzinfo | None = None) -> None:
        self.stream = stream
        self.verbosity = verbosity
        self.color = use_color(stream) if color is None else color
        self.quote = quote
        self.sim_venue = sim_venue
        self.sim_clock = sim_clock
        self.status_every_s = status_every_s
        self.tz = tz
        self.symbols: dict[str, Mapping[str, Any]] = {}
        self.last_bar_ms: int | None = None
        self.first_sim_ms: int | None = None
        self.last_sim_ms: int | None = None
        self._last_status: float | None = None
        self._view = View(verbosity=verbosity, color=self.color, sim_column=sim_venue,
                          quote=quote, tz=tz)
        self.broken = False
        self.lines = 0

    def sim_ms(self, rec: Mapping[str, Any]) -> int | None:
        """The sim time at which ``rec`` was logged (None: not a sim venue / unknown)."""
        if not self.sim_venue:
            return None
        if self.sim_clock is not None:
            t = wall_epoch(rec)
            if t is not None:
                try:
                    return int(self.sim_clock(t))
                except Exception:  # noqa: BLE001 - a clock that fails: fall back to the bars
                    pass
        return self.last_bar_ms

    def feed(self, rec: Mapping[str, Any]) -> None:
        """One parsed JSON-log record."""
        event = rec.get("event")
        symbol = rec.get("symbol")
        if event == "STRATEGY":
            t = rec.get("ts_ms")
            if isinstance(t, int) and (self.last_bar_ms is None or t > self.last_bar_ms):
                self.last_bar_ms = t
        elif event == "STATUS" and isinstance(symbol, str) and symbol:
            self.symbols[symbol] = rec
        sim = self.sim_ms(rec)
        if sim is not None:
            if self.first_sim_ms is None:
                self.first_sim_ms = sim
            self.last_sim_ms = sim
        if shown_at(rec) > self.verbosity:
            return
        if event == "PORTFOLIO_STATUS" and self.verbosity < ALL:
            t = wall_epoch(rec)
            if t is not None:
                if (self._last_status is not None
                        and t - self._last_status < 0.9 * self.status_every_s):
                    return
                self._last_status = t
        line = render(rec, replace(self._view, sim_ms=sim, symbols=dict(self.symbols)))
        if line is not None:
            self.write(line)

    def write(self, line: str) -> None:
        """One line to the stream (a closed terminal or pipe stops the output, never the
        bot)."""
        if self.broken:
            return
        try:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.lines += 1
        except (OSError, ValueError):
            self.broken = True


class StreamSink:
    """A loguru sink rendering each record it gets (already filtered by the sink's level) as
    one terminal line: the stderr of commands other than ``run`` (backtest, acceptance)."""

    def __init__(self, stream: IO[str]) -> None:
        self.console = Console(stream, verbosity=ALL)
        self._dec = msgspec.json.Decoder()

    def write(self, message: Any) -> None:
        """loguru sink entry point."""
        try:
            rec = self._dec.decode(message.record["extra"]["_json"])
        except (KeyError, msgspec.DecodeError):
            rec = {"level": message.record["level"].name, "msg": str(message).rstrip()}
        line = render(rec, replace(self.console._view, verbosity=ALL))
        if line is not None:
            self.console.write(line)


def verbosity_from(verbose: int, quiet: bool, log_level: str = "INFO") -> int:
    """``-v``/``-q`` -> verbosity; without either, the config's logging level decides (DEBUG:
    verbose, WARNING or ERROR: quiet)."""
    if quiet:
        return QUIET
    if verbose:
        return min(ALL, NORMAL + verbose)
    lv = LEVEL_NO.get(log_level.upper(), 20)
    return VERBOSE if lv < 20 else QUIET if lv >= 30 else NORMAL


__all__ = ["ALL", "BRAKE_NAMES", "NORMAL", "QUIET", "STATUS_EVERY_S", "VERBOSE", "Console",
           "StreamSink", "View", "has_equity", "render", "shown_at", "use_color",
           "verbosity_from"]
