"""Command-line values: argparse ``type=`` validators and the checks a command runs on its inputs
before it starts anything.

The validators are pure functions of the option's text: they return the parsed value or raise
``argparse.ArgumentTypeError`` with a message that names the value and says what is expected,
so ``--help`` and the errors come from one place. ``run.py`` prints every error as one line
``gridbot CMD: OPTION: message`` and exits 2. Checks that need the file system (does the file
exist, is ``--out`` a directory) raise ``CliError`` from inside the command; ``run.main`` prints
each of its lines the same way.
"""

from __future__ import annotations

import argparse
import math
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path

from models.config import SYMBOL_RE
from models.timeframes import INTERVAL_MS, parse_time
from models.walkforward import WalkForwardError, parse_spec

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class CliError(Exception):
    """A command cannot run with its input. Each line is one complete message; ``run.main``
    prints it as ``gridbot CMD: line`` and exits with ``code`` (2 bad input, 1 runtime)."""

    def __init__(self, *lines: str, code: int = EXIT_BAD_INPUT) -> None:
        super().__init__("\n".join(lines))
        self.lines = list(lines)
        self.code = code


def _bad(msg: str) -> argparse.ArgumentTypeError:
    return argparse.ArgumentTypeError(msg)


# -- pure parsers (also used outside argparse) -------------------------------------------------
def parse_duration(text: str) -> float:
    """``'90m'`` → 5400.0 seconds (units s, m, h, d; bare numbers are seconds)."""
    m = _DURATION_RE.match(text or "")
    if not m:
        raise ValueError(f"invalid duration {text!r} (examples: 90s, 30m, 6h, 2d)")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_speed(text: str | float) -> float:
    """Replay speed of the bot's embedded exchange: sim seconds per wall second (> 0).

    ``max`` is refused for the bot: the embedded exchange then releases bars without waiting,
    faster than the actors can trade them (it is for the standalone ``sim``; a replay as fast as
    possible through the bot's actors is ``backtest``)."""
    if isinstance(text, str) and text.strip().lower() == "max":
        raise ValueError("'max': the embedded exchange would replay faster than the bot can "
                         "trade; give a number (e.g. 600), or use 'backtest' for a replay as "
                         "fast as possible")
    try:
        v = float(text)
    except (TypeError, ValueError):
        raise ValueError(f"{text!r} is not a number: expected sim seconds per second "
                         "(> 0, e.g. 60)") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{text!r}: must be a finite number > 0")
    return v


# -- argparse type= validators ---------------------------------------------------------------
def speed(text: str) -> float:
    """``--speed`` of ``run``: a number > 0."""
    try:
        return parse_speed(text)
    except ValueError as e:
        raise _bad(str(e)) from None


def duration(text: str) -> str:
    """``--duration``: ``90s``, ``30m``, ``6h``, ``2d`` (> 0); returned as given."""
    try:
        secs = parse_duration(text)
    except ValueError:
        raise _bad(f"{text!r} is not a duration: expected a number > 0 with unit s, m, h or d "
                   "(90s, 30m, 6h, 2d)") from None
    if secs <= 0:
        raise _bad(f"{text!r}: must be > 0")
    return text.strip()


def utc_time(text: str) -> str:
    """A UTC date or ISO date-time (``2025-01-01``, ``2025-01-01T12:00``); returned as given."""

    try:
        parse_time(text)
    except (ValueError, OverflowError):
        raise _bad(f"{text!r} is not a date: expected YYYY-MM-DD or an ISO date-time such "
                   "as 2025-01-01T12:00 (UTC)") from None
    return text.strip()


def symbol_list(text: str) -> tuple[str, ...]:
    """Comma-separated USDT symbols (``BTCUSDT,ETHUSDT``; case does not matter)."""

    out: list[str] = []
    for raw in (p.strip() for p in text.split(",")):
        if not raw:
            continue
        sym = raw.upper()
        if not SYMBOL_RE.match(sym):
            raise _bad(f"{raw!r} is not a USDT symbol like BTCUSDT")
        if sym in out:
            raise _bad(f"{sym} is given twice")
        out.append(sym)
    if not out:
        raise _bad(f"{text!r}: expected symbols such as BTCUSDT,ETHUSDT")
    return tuple(out)


def walk_forward(text: str) -> str:
    """``TRAIN_DAYS:TEST_DAYS`` (whole days >= 1); returned as given."""

    try:
        parse_spec(text)
    except WalkForwardError as e:
        raise _bad(str(e).removeprefix("walk-forward ")) from None
    return text.strip()


def positive_int(text: str) -> int:
    """A whole number >= 1."""

    try:
        v = int(text)
    except ValueError:
        raise _bad(f"{text!r} is not a whole number") from None
    if v < 1:
        raise _bad(f"{text!r}: must be at least 1")
    return v


def positive_decimal(text: str) -> Decimal:
    """An amount > 0 (``--balance 10000``), exact."""
    try:
        v = Decimal(text.strip())
    except InvalidOperation:
        raise _bad(f"{text!r} is not a number") from None
    if not v.is_finite() or v <= 0:
        raise _bad(f"{text!r}: must be > 0")
    return v


def positive_seconds(text: str) -> float:
    """Seconds > 0."""
    try:
        v = float(text)
    except ValueError:
        raise _bad(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(v) or v <= 0:
        raise _bad(f"{text!r}: must be > 0 seconds")
    return v


def kline_interval(text: str) -> str:
    """A Binance kline interval (``1m``, ``5m``, ``1h`` …)."""

    if text.strip() not in INTERVAL_MS:
        raise _bad(f"{text!r} is not a kline interval (one of {', '.join(INTERVAL_MS)})")
    return text.strip()


def path(text: str) -> Path:
    """A file or directory path (not empty: ``Path('')`` would silently mean ``.``)."""
    if not text.strip():
        raise _bad("empty path")
    return Path(text)


# -- checks on the file system (inside a command) ------------------------------------------------
def check_input_file(p: Path, option: str) -> None:
    """``p`` must be a readable regular file."""
    if not p.exists():
        raise CliError(f"{option} {p}: no such file")
    if p.is_dir():
        raise CliError(f"{option} {p}: is a directory, not a file")
    try:
        with p.open("rb"):
            pass
    except OSError as e:
        raise CliError(f"{option} {p}: cannot read: {e.strerror or e}") from None


def check_output_dir(p: Path, option: str) -> None:
    """``p`` must be a directory or not exist yet (it is created)."""
    if p.exists() and not p.is_dir():
        raise CliError(f"{option} {p}: exists and is not a directory")


def make_output_dir(p: Path, option: str) -> Path:
    """Create ``p`` (and parents); one line naming it when that is impossible."""
    check_output_dir(p, option)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CliError(f"{option} {p}: cannot create the directory: {e.strerror or e}") from None
    return p
