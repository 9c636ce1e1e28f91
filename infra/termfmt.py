"""Text for people on the terminal: colour, money rounded to the cent, prices and
quantities as the exchange gave them, percentages, leverage, durations, asset names and times.

Pure functions of their arguments (``use_color`` reads the stream and the environment); used by
the terminal renderer (``infra.console``) and the session summary (``supervision.terminal``).
Unreadable values give ``?``, never an exception.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

QUOTES = ("USDT", "USDC", "FDUSD", "BUSD")

# -- colour ---------------------------------------------------------------------------------
_RESET = "\x1b[0m"
DIM, BOLD, RED, GREEN, YELLOW, BLUE, MAGENTA, CYAN = (
    "2", "1", "31", "32", "33", "34", "35", "36")


def use_color(stream: Any, env: Mapping[str, str] | None = None) -> bool:
    """Colour only on a terminal, never with ``NO_COLOR`` set (https://no-color.org) or
    ``TERM=dumb``."""
    env = os.environ if env is None else env
    if env.get("NO_COLOR") or env.get("TERM") == "dumb":
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def paint(text: str, style: str, on: bool) -> str:
    """``text`` in the SGR ``style`` (e.g. ``BOLD + ";" + RED``) when ``on``."""
    return f"\x1b[{style}m{text}{_RESET}" if on and style and text else text


def as_text(v: Any) -> str:
    """``v`` as text (None: empty)."""
    return "" if v is None else str(v)


# -- numbers for people -----------------------------------------------------------------------
def as_decimal(v: Any) -> Decimal | None:
    """``v`` as a finite Decimal (None: absent, a bool, unreadable, NaN or infinite)."""
    if v is None or isinstance(v, bool) or v == "":
        return None
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def as_float(v: Any) -> float | None:
    """``v`` as a finite float (None: absent, a bool, unreadable, NaN or infinite)."""
    if v is None or isinstance(v, bool):
        return None
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if x - x == 0.0 else None


def money(v: Any, *, signed: bool = False) -> str:
    """An amount of quote asset for people: ``10,012.34``; below a cent two significant digits
    (``0.0023``); ``signed``: always a sign (``+2.01``); ``?`` when unreadable."""
    d = as_decimal(v)
    if d is None:
        return "?"
    sign = "+" if signed and d > 0 else ""
    if d != 0 and abs(d) < Decimal("0.005"):
        return f"{sign}{float(d):.2g}"
    text = f"{d:,.2f}"
    if text in ("-0.00", "0.00"):
        return "0.00"
    return sign + text


def number(v: Any, *, signed: bool = False, like: Any = None) -> str:
    """A price or quantity as the exchange gave it, with thousands separators (``94,210.5``).
    ``like``: round to as many decimals as that number has, at least two (an average entry
    price shown at the precision of the exit price)."""
    d = as_decimal(v)
    if d is None:
        return "?"
    ref = as_decimal(like)
    if ref is not None:
        places = max(2, -ref.normalize().as_tuple().exponent)  # type: ignore[operator]
        d = d.quantize(Decimal(1).scaleb(-places))
    else:
        d = d.normalize()
    text = f"{d:,f}"
    return ("+" + text) if signed and d > 0 else text


_LONG_DECIMAL = re.compile(r"(?<![\w.])(-?\d+\.\d{7,})(?![\w.])")


def tidy(text: str) -> str:
    """Free text for people: numbers with seven or more decimals rounded to two (or to four
    significant digits below 1)."""
    def fix(m: re.Match[str]) -> str:
        x = float(m.group(1))
        if abs(x) >= 1:
            return f"{x:,.2f}"
        places = 3 - math.floor(math.log10(abs(x))) if x else 2
        return f"{x:.{places}f}"
    return _LONG_DECIMAL.sub(fix, text)


def pct(v: Any, *, signed: bool = True, digits: int = 2) -> str:
    """A fraction as a percentage (``0.0012`` -> ``+0.12%``)."""
    x = as_float(v)
    if x is None:
        return "?"
    x *= 100.0
    if round(x, digits) == 0:
        return f"{0.0:.{digits}f}%"
    return f"{x:+.{digits}f}%" if signed else f"{x:.{digits}f}%"


def times(v: Any) -> str:
    """A leverage/multiple: ``1.25x``, ``6x``."""
    x = as_float(v)
    if x is None:
        return "?"
    return f"{x:.0f}x" if x == int(x) and x >= 1 else f"{x:.2f}x"


def duration(seconds: Any) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    s = as_float(seconds)
    if s is None:
        return "?"
    s = int(round(max(0.0, s)))
    if s < 60:
        return f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s" if m < 10 and s else f"{m}m"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h}h{m:02d}m"
    d, h = divmod(h, 24)
    return f"{d}d{h:02d}h"


def base_asset(symbol: str, quote: str = "USDT") -> str:
    """``BTCUSDT`` -> ``BTC`` (the symbol itself when no known quote ends it)."""
    for q in (quote, *QUOTES):
        if symbol.endswith(q) and len(symbol) > len(q):
            return symbol[: -len(q)]
    return symbol


def quote_of(symbol: str, default: str = "USDT") -> str:
    """The quote asset a symbol ends with."""
    for q in (default, *QUOTES):
        if symbol.endswith(q) and len(symbol) > len(q):
            return q
    return default


def wall_epoch(rec: Mapping[str, Any]) -> float | None:
    """The record's wall time (``ts``, UTC ISO-8601) as epoch seconds."""
    ts = rec.get("ts")
    if not isinstance(ts, str):
        return None
    try:
        t = _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def sim_text(ms: int | None) -> str:
    """Sim time as ``2025-01-02 10:05`` (UTC)."""
    if ms is None:
        return "?"
    return _dt.datetime.fromtimestamp(ms / 1000, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


__all__ = ["BLUE", "BOLD", "CYAN", "DIM", "GREEN", "MAGENTA", "QUOTES", "RED", "YELLOW",
           "as_decimal", "as_float", "as_text", "base_asset", "duration", "money", "number",
           "paint", "pct", "quote_of", "sim_text", "tidy", "times", "use_color", "wall_epoch"]
