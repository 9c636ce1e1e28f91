"""The terminal while the bot runs: one short line per event a person watching needs, and a
session summary at the stop.

Everything the terminal shows is rendered from records of the JSON log (``infra.logs``),
so it never says anything the log does not back, and the log keeps the full precision:

* ``render(rec, view)``: the pure rendering of one parsed JSON-log record into one line, or
  None when the record is not shown at that verbosity. Money is rounded for people (two
  decimals, thousands separators); prices and quantities are shown as the exchange gave them.
* ``Console``: the sink around it: verbosity, one portfolio STATUS line per minute, the latest
  per-symbol STATUS (open orders), the sim time of each record, colour (TTY only, NO_COLOR).
* ``LogFollower``: follows ``gridbot.jsonl`` from the session's start, across rotations.
* ``SessionConsole``: what ``python run.py run`` uses: a follower thread in the launcher that
  feeds a ``Console`` and ``SessionTotals`` (the report's accounting, ``report.build``,
  over this session's records), and ``print_summary()`` after the graceful stop.

Why the launcher follows the file instead of thespian's logging process printing: the launcher
owns the terminal and lives exactly as long as the session; the embedded exchange, the only
thing that knows the replay's sim time, runs in it; and the summary needs the session's records
there. The actors and the logging process do no extra work.

Verbosity: ``QUIET`` (``-q``) warnings, errors and the summary; ``NORMAL`` fills, closed
trades, one portfolio STATUS line per minute, funding, drawdown levels, halts, restarts,
reconnects, start and stop, every warning and error; ``VERBOSE`` (``-v``) also orders placed,
amended and canceled, per-symbol STATUS, reconciliation, warm-up and other INFO records;
``ALL`` (``-vv``) every record (STRATEGY, EQUITY, ...).
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np

QUIET, NORMAL, VERBOSE, ALL = 0, 1, 2, 3
LEVEL_NO = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40,
            "CRITICAL": 50}
QUOTES = ("USDT", "USDC", "FDUSD", "BUSD")
BRAKE_NAMES = {0: "normal", 1: "reduced", 2: "deleveraged", 3: "halted"}
#: a portfolio STATUS line at most this often (wall seconds; the first one is always shown)
STATUS_EVERY_S = 60.0

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


def _c(text: str, style: str, on: bool) -> str:
    return f"\x1b[{style}m{text}{_RESET}" if on and style and text else text


# -- numbers for people -----------------------------------------------------------------------
def _dec(v: Any) -> Decimal | None:
    if v is None or isinstance(v, bool) or v == "":
        return None
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _float(v: Any) -> float | None:
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
    d = _dec(v)
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
    d = _dec(v)
    if d is None:
        return "?"
    ref = _dec(like)
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
    x = _float(v)
    if x is None:
        return "?"
    x *= 100.0
    if round(x, digits) == 0:
        return f"{0.0:.{digits}f}%"
    return f"{x:+.{digits}f}%" if signed else f"{x:.{digits}f}%"


def times(v: Any) -> str:
    """A leverage/multiple: ``1.25x``, ``6x``."""
    x = _float(v)
    if x is None:
        return "?"
    return f"{x:.0f}x" if x == int(x) and x >= 1 else f"{x:.2f}x"


def duration(seconds: Any) -> str:
    """``45s``, ``12m``, ``3h05m``, ``2d04h``."""
    s = _float(seconds)
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


# -- rendering ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class View:
    """How to render one record: verbosity, colour, its sim time (``sim_column``: the venue is
    the embedded exchange, so a sim column is shown), the quote asset, the wall clock's zone
    (None: local) and the latest per-symbol STATUS records (for the portfolio line)."""

    verbosity: int = NORMAL
    color: bool = False
    sim_column: bool = False
    sim_ms: int | None = None
    quote: str = "USDT"
    tz: _dt.tzinfo | None = None
    symbols: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


#: (tag, text, style of the tag) of a shown record
Shown = tuple[str, str, str]


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _exc_last_line(rec: Mapping[str, Any]) -> str:
    exc = rec.get("exception")
    if not isinstance(exc, str) or not exc.strip():
        return ""
    return exc.strip().splitlines()[-1]


def _fill(rec: Mapping[str, Any], v: View) -> Shown:
    sym = _s(rec.get("symbol"))
    fee_asset = _s(rec.get("fee_asset"))
    fee = f"fee {money(rec.get('fee'))}"
    if fee_asset and fee_asset != quote_of(sym, v.quote):
        fee = f"fee {number(rec.get('fee'))} {fee_asset}"
    liq = "maker" if rec.get("maker") is True else "taker" if rec.get("maker") is False else ""
    kind = _s(rec.get("kind")).lower()
    key = _s(rec.get("key"))
    what = kind if not key or key.lower() == kind else f"{kind} {key}".strip()
    side = _s(rec.get("side")).upper()
    text = f"{side} {number(rec.get('qty'))} @ {number(rec.get('price'))}"
    return "FILL", "  ".join(x for x in (text, liq, fee, what) if x), CYAN


def _trade(rec: Mapping[str, Any], v: View) -> Shown:
    side = _s(rec.get("side")).upper()
    direction = "long" if side == "BUY" else "short" if side == "SELL" else side.lower()
    net = _dec(rec.get("net_pnl"))
    q = quote_of(_s(rec.get("symbol")), v.quote)
    parts = [f"{direction} {number(rec.get('qty'))} closed",
             f"{number(rec.get('entry_price'), like=rec.get('exit_price'))} -> "
             f"{number(rec.get('exit_price'), like=rec.get('exit_price'))}",
             _c(f"net {money(net, signed=True)} {q}", GREEN if (net or 0) >= 0 else RED,
                v.color),
             f"fees {money(rec.get('fees'))}"]
    funding = _dec(rec.get("funding"))
    if funding:
        parts.append(f"funding {money(funding, signed=True)}")
    if rec.get("holding_s") is not None:
        parts.append(f"held {duration(rec.get('holding_s'))}")
    return "TRADE", "  ".join(parts), GREEN if (net or 0) >= 0 else RED


def _positions_text(positions: Any, quote: str) -> str:
    if not isinstance(positions, Mapping):
        return ""
    out = []
    for sym in sorted(positions):
        p = positions[sym]
        if not isinstance(p, Mapping):
            continue
        q = _dec(p.get("qty"))
        if q:
            out.append(f"{base_asset(str(sym), quote)} {number(q, signed=True)}")
    return " ".join(out) if out else "flat"


def has_equity(rec: Mapping[str, Any]) -> bool:
    """Does a PORTFOLIO_STATUS carry the account's equity (not yet while the portfolio has
    not read the account: equity 0, no initial equity)?"""
    pf = rec.get("portfolio")
    if not isinstance(pf, Mapping):
        return False
    return _dec(pf.get("initial_equity")) is not None or bool(_dec(pf.get("equity")))


def _portfolio_status(rec: Mapping[str, Any], v: View) -> Shown:
    pf = rec.get("portfolio") if isinstance(rec.get("portfolio"), Mapping) else {}
    assert isinstance(pf, Mapping)
    if not has_equity(rec):
        return "STATUS", "portfolio starting: equity not known yet", BLUE
    eq, init = _dec(pf.get("equity")), _dec(pf.get("initial_equity"))
    change = f" ({pct(eq / init - 1)})" if eq is not None and init else ""
    parts = [_c(f"equity {money(eq)} {v.quote}{change}", BOLD, v.color)]
    positions = pf.get("positions")
    upnl = None
    if isinstance(positions, Mapping):
        vals = [_dec(p.get("unrealized_pnl")) for p in positions.values()
                if isinstance(p, Mapping)]
        upnl = sum((x for x in vals if x is not None), Decimal(0))
    if upnl:
        parts.append(f"upnl {money(upnl, signed=True)}")
    lvl = pf.get("drawdown_level")
    dd_text = f"dd {pct(pf.get('drawdown'), signed=False, digits=1)}"
    if isinstance(lvl, int) and not isinstance(lvl, bool) and lvl > 0:
        dd_text += _c(f" level {lvl} {BRAKE_NAMES.get(lvl, '')}".rstrip(), YELLOW, v.color)
    parts.append(dd_text)
    lev = f"lev {times(pf.get('leverage'))}"
    if pf.get("worst_case_leverage") is not None:
        lev += f" (worst {times(pf.get('worst_case_leverage'))}"
        lev += f" of {times(pf.get('leverage_cap'))})" if pf.get("leverage_cap") else ")"
    parts.append(lev)
    parts.append(f"pos {_positions_text(positions, v.quote)}")
    orders = [s.get("open_orders") for s in v.symbols.values()
              if isinstance(s.get("open_orders"), int)]
    if orders:
        parts.append(f"orders {sum(orders)}")
    state = _s(pf.get("trading_state"))
    if state and state != "ACTIVE":
        parts.append(_c(state, YELLOW if state == "REDUCING" else RED, v.color))
    if pf.get("safe_mode"):
        parts.append(_c("safe mode", YELLOW, v.color))
    symbols = rec.get("symbols")
    if isinstance(symbols, Mapping):
        down = [f"{s} {st}" for s, st in sorted(symbols.items()) if st != "running"]
        if down:
            parts.append(_c("; ".join(down), YELLOW, v.color))
    restarts = rec.get("restarts")
    if isinstance(restarts, int) and restarts > 0:
        parts.append(f"restarts {restarts}")
    return "STATUS", "  ".join(parts), BLUE


def _symbol_status(rec: Mapping[str, Any], v: View) -> Shown:
    pos = _dec(rec.get("position"))
    parts = []
    if pos:
        parts.append(f"pos {number(pos, signed=True)} @ {number(rec.get('entry_price'))}")
        parts.append(f"mark {number(rec.get('mark_price'))}")
        parts.append(f"upnl {money(rec.get('unrealized_pnl'), signed=True)}")
    else:
        parts.append("flat")
        if _dec(rec.get("mark_price")):
            parts.append(f"mark {number(rec.get('mark_price'))}")
    parts.append(f"realized {money(rec.get('realized_pnl'), signed=True)}")
    parts.append(f"fees {money(rec.get('fees'))}")
    if rec.get("open_orders") is not None:
        parts.append(f"orders {rec.get('open_orders')}")
    if rec.get("L") is not None or rec.get("S") is not None:
        lv, sv = _float(rec.get("L")), _float(rec.get("S"))
        parts.append(f"L {lv:.2f} S {sv:.2f}" if lv is not None and sv is not None else "")
    state = _s(rec.get("state"))
    if state and state != "running":
        parts.append(_c(state, YELLOW, v.color))
    return "status", "  ".join(p for p in parts if p), BLUE


def _placed(rec: Mapping[str, Any], v: View) -> Shown:
    side = _s(rec.get("side")).upper()
    typ = _s(rec.get("type")).upper()
    price = f" @ {number(rec.get('price'))}" if _dec(rec.get("price")) else ""
    ro = "  reduce-only" if rec.get("reduce_only") else ""
    kind = _s(rec.get("kind")).lower()
    return ("order", f"{side} {number(rec.get('qty'))}{price}  {typ.lower()}{ro}  "
            f"{kind} {_s(rec.get('key'))}".rstrip(), "")


def _canceled(rec: Mapping[str, Any], v: View) -> Shown:
    filled = _dec(rec.get("filled_qty"))
    extra = f" (filled {number(filled)})" if filled else ""
    why = _s(rec.get("reason"))
    why = f"  {why.lower()}" if why and why != "CANCELED" else ""
    return "cancel", f"{_s(rec.get('key')) or _s(rec.get('client_order_id'))}{extra}{why}", ""


def _amend(rec: Mapping[str, Any], v: View) -> Shown:
    return ("amend", f"{_s(rec.get('client_order_id'))} -> {number(rec.get('qty'))} @ "
            f"{number(rec.get('price'))}  {_s(rec.get('reason'))}".rstrip(), "")


def _funding(rec: Mapping[str, Any], v: View) -> Shown:
    a = _dec(rec.get("amount"))
    q = quote_of(_s(rec.get("symbol")), v.quote)
    if a is None:
        return "FUND", f"funding {money(rec.get('amount'))}", ""
    word = "received" if a >= 0 else "paid"
    return "FUND", f"funding {word} {money(abs(a))} {q}", GREEN if a >= 0 else YELLOW


def _drawdown(rec: Mapping[str, Any], v: View) -> Shown:
    kind = _s(rec.get("kind")).upper()
    lvl = rec.get("drawdown_level")
    prev = rec.get("previous_level")
    dd = pct(rec.get("drawdown"), digits=1)
    reason = _s(rec.get("reason"))
    if kind == "ALERT":
        return "DD", f"drawdown alert: {dd}" + (f"  {reason}" if reason else ""), YELLOW
    if kind == "HALT":
        acts = rec.get("actions")
        acts_t = f"  actions {', '.join(map(str, acts))}" if isinstance(acts, list) and acts \
            else ""
        return ("HALT", f"trading halted at drawdown {dd}" + (f": {reason}" if reason else "")
                + acts_t + "  (resume: python run.py resume)", RED)
    name = BRAKE_NAMES.get(lvl, "") if isinstance(lvl, int) else ""
    head = "resumed" if kind == "RESUME" else "brake"
    parts = [f"{head} level {prev} -> {lvl} {name}".rstrip(), f"drawdown {dd}"]
    for key, label in (("size_factor", "size"), ("tp_factor", "tp")):
        x = _float(rec.get(key))
        if x is not None and x != 1.0:
            parts.append(f"{label} x{x:.2f}")
    if rec.get("leverage_cap") is not None:
        parts.append(f"cap {times(rec.get('leverage_cap'))}")
    if rec.get("safe_mode"):
        parts.append("safe mode")
    if reason:
        parts.append(reason)
    worse = isinstance(lvl, int) and isinstance(prev, int) and lvl > prev
    return "DD", "  ".join(parts), YELLOW if worse or (isinstance(lvl, int) and lvl) else GREEN


def _trading_state(rec: Mapping[str, Any], v: View) -> Shown:
    state = _s(rec.get("state"))
    reason = _s(rec.get("reason"))
    style = GREEN if state == "ACTIVE" else YELLOW if state == "REDUCING" else RED
    return ("STATE", f"trading {_s(rec.get('previous'))} -> {state}"
            + (f": {reason}" if reason else ""), style)


def _halted(rec: Mapping[str, Any], v: View) -> Shown:
    reason = _s(rec.get("reason"))
    flat = "  flattening" if rec.get("flatten") else ""
    return "HALT", f"halted: {reason}{flat}  position {number(rec.get('position_qty'))}", RED


def _restarted(rec: Mapping[str, Any], v: View) -> Shown:
    actor = _s(rec.get("actor")) or "actor"
    reason = _s(rec.get("reason"))
    n = rec.get("restart_count")
    restore = _float(rec.get("restore_ms"))
    parts = [f"{actor} restarted" + (f" ({reason})" if reason else "")]
    if isinstance(n, int):
        parts.append(f"restart #{n}")
    if restore is not None:
        parts.append(f"state restored in {restore:.0f} ms")
    return "RESTART", "  ".join(parts), MAGENTA


def _reconnected(rec: Mapping[str, Any], v: View) -> Shown:
    gap = _float(rec.get("gap_ms"))
    parts = ["streams reconnected" + (f" after {duration(gap / 1000)}" if gap else "")]
    k, t = rec.get("klines_repaired"), rec.get("trades_repaired")
    if k or t:
        parts.append(f"repaired {k or 0} bars, {t or 0} trades")
    if rec.get("detail"):
        parts.append(_s(rec.get("detail")))
    return "RECONN", "  ".join(parts), MAGENTA


def _risk_blocked(rec: Mapping[str, Any], v: View) -> Shown:
    what = " ".join(x for x in (_s(rec.get("side")).upper(), _s(rec.get("key"))) if x)
    if not what and _dec(rec.get("notional")) is not None:
        what = f"{money(rec.get('notional'))} {v.quote}"
    reason = _s(rec.get("reason"))
    detail = tidy(_s(rec.get("detail")))
    stage = _s(rec.get("stage"))
    text = f"order blocked{' ' + what if what else ''}: {reason}"
    if detail:
        text += f" ({detail})"
    if stage:
        text += f"  [{stage}]"
    return "BLOCK", text, YELLOW


def _rejected(rec: Mapping[str, Any], v: View) -> Shown:
    return ("REJECT", f"order {_s(rec.get('client_order_id'))} rejected: "
            f"{_s(rec.get('reason'))}" + (f" (code {rec.get('code')})"
                                          if rec.get("code") is not None else ""), YELLOW)


def _bot_ready(rec: Mapping[str, Any], v: View) -> Shown:
    w = rec.get("weights") if isinstance(rec.get("weights"), Mapping) else {}
    assert isinstance(w, Mapping)
    syms = rec.get("symbols") if isinstance(rec.get("symbols"), list) else list(w)
    assert isinstance(syms, list)
    mk = rec.get("markets") if isinstance(rec.get("markets"), Mapping) else {}
    assert isinstance(mk, Mapping)
    kinds = sorted({str(x) for x in mk.values()})
    items = []
    for s in syms:
        f = _float(w.get(s))
        items.append(f"{s} {f * 100:.0f}%" if f is not None else str(s))
    text = (f"trading {', '.join(items)}" + (f" ({'/'.join(kinds)})" if kinds else "")
            + f" on {_s(rec.get('venue')) or '?'}")
    if rec.get("strategy"):
        text += f", {rec.get('strategy')} strategy"
    if rec.get("leverage_cap") is not None:
        text += f", leverage cap {times(rec.get('leverage_cap'))}"
    return "START", text, GREEN


def _msg(tag: str, style: str = "") -> Callable[[Mapping[str, Any], View], Shown]:
    def fn(rec: Mapping[str, Any], v: View) -> Shown:
        return tag, _s(rec.get("msg")) or _s(rec.get("event")), style
    return fn


def _equity_init(rec: Mapping[str, Any], v: View) -> Shown:
    return "EQUITY", f"initial equity {money(rec.get('initial_equity'))} {v.quote}", ""


def _sim_started(rec: Mapping[str, Any], v: View) -> Shown:
    msg = _s(rec.get("msg"))
    if rec.get("state_file"):
        msg += f"; state {rec.get('state_file')}"
    return "SIM", msg, ""


def _trading_stopped(rec: Mapping[str, Any], v: View) -> Shown:
    if rec.get("symbol"):
        mode = _s(rec.get("mode"))
        return ("STOP", f"stopped trading ({mode})  position {number(rec.get('position_qty'))}"
                .replace("()", ""), "")
    missing = rec.get("missing")
    text = _s(rec.get("msg"))
    if rec.get("open_orders"):
        text += f"; {rec.get('open_orders')} orders left open"
    if isinstance(missing, list) and missing:
        text += f"; no answer from {', '.join(map(str, missing))}"
    return "STOP", text, ""


def _reconciled(rec: Mapping[str, Any], v: View) -> Shown:
    keys = ("fills_applied", "adopted", "canceled", "unmatched_trades")
    bits = [f"{k.replace('_', ' ')} {rec.get(k)}" for k in keys if rec.get(k)]
    return ("SYNC", "reconciled with the exchange: " + (", ".join(bits) if bits else
            "nothing to repair") + f"; {rec.get('open_orders', 0)} open orders", "")


def _reconciled_level(rec: Mapping[str, Any]) -> int:
    keys = ("fills_applied", "adopted", "canceled", "unmatched_trades")
    return NORMAL if any(rec.get(k) for k in keys) else VERBOSE


def _stopped_level(rec: Mapping[str, Any]) -> int:
    """A symbol that stopped flat is detail (the aggregate line follows); one left with a
    position (mode leave, or a flatten that failed) is not."""
    if not rec.get("symbol"):
        return NORMAL
    return NORMAL if _dec(rec.get("position_qty")) else VERBOSE


def _warmup(rec: Mapping[str, Any], v: View) -> Shown:
    state = "warm" if rec.get("warm") else "warming up"
    return "WARMUP", f"{rec.get('bars')} bars of history loaded; strategy {state}", ""


_NEVER_SHOWN_KEYS = frozenset({"ts", "level", "event", "symbol", "msg", "pid", "ts_ms",
                               "exception", "strategy_context"})


def _brief_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.6g}"
    if isinstance(v, (dict, list)):
        text = msgspec.json.encode(v).decode()
        return text if len(text) <= 60 else text[:57] + "..."
    return str(v)


def _generic(rec: Mapping[str, Any], v: View) -> Shown:
    level = _s(rec.get("level")).upper()
    no = LEVEL_NO.get(level, 20)
    event = _s(rec.get("event")) or "LOG"
    msg = _s(rec.get("msg"))
    parts = [] if event == "LOG" else [event]
    if msg and msg != event:
        parts.append(msg)
    ctx = [f"{k}={_brief_value(val)}" for k, val in rec.items()
           if k not in _NEVER_SHOWN_KEYS and val not in (None, "", [], {})
           and not (msg and str(val) in msg)]  # what the message already says
    if ctx and (not msg or msg == event or no >= 30):
        parts.append(" ".join(ctx))
    exc = _exc_last_line(rec)
    if exc:
        parts.append(f"[{exc}]")
    text = "  ".join(parts)
    if len(text) > 240:
        text = text[:237] + "..."
    tag = {"WARNING": "WARN", "ERROR": "ERROR", "CRITICAL": "CRIT"}.get(level)
    if tag is None:
        tag = "debug" if no < 20 else "info"
    return tag, text, ""


Renderer = Callable[[Mapping[str, Any], View], Shown]
#: event -> (lowest verbosity that shows it at INFO, renderer); records at WARNING and above
#: are shown at every verbosity (with the renderer, else the generic line)
EVENTS: dict[str, tuple[int, Renderer]] = {
    "ORDER_FILLED": (NORMAL, _fill),
    "TRADE_CLOSED": (NORMAL, _trade),
    "PORTFOLIO_STATUS": (NORMAL, _portfolio_status),
    "FUNDING_PAID": (NORMAL, _funding),
    "DRAWDOWN_LEVEL": (NORMAL, _drawdown),
    "TRADING_STATE": (NORMAL, _trading_state),
    "HALTED": (NORMAL, _halted),
    "ACTOR_RESTARTED": (NORMAL, _restarted),
    "RECONNECTED": (NORMAL, _reconnected),
    "BOT_READY": (NORMAL, _bot_ready),
    "SIM_STARTED": (NORMAL, _sim_started),
    "SIM_STOPPED": (NORMAL, _msg("SIM")),
    "EQUITY_INITIALIZED": (NORMAL, _equity_init),
    "DURATION_REACHED": (NORMAL, _msg("STOP")),
    "SHUTDOWN": (NORMAL, _msg("STOP")),
    "TRADING_STOPPED": (NORMAL, _trading_stopped),
    "RECONCILED": (VERBOSE, _reconciled),
    "ORDER_PLACED": (VERBOSE, _placed),
    "ORDER_CANCELED": (VERBOSE, _canceled),
    "ORDER_MODIFY_REQUESTED": (VERBOSE, _amend),
    "STATUS": (VERBOSE, _symbol_status),
    "WARMUP": (VERBOSE, _warmup),
    "BOT_STARTED": (VERBOSE, _msg("START")),
    "STOP_TRADING": (VERBOSE, _msg("STOP")),
    "RISK_BLOCKED": (VERBOSE, _risk_blocked),
    "ORDER_REJECTED": (VERBOSE, _rejected),
    # every record, at -vv only
    "STRATEGY": (ALL, _generic),
    "EQUITY": (ALL, _generic),
    "ORDER_DONE": (ALL, _generic),
    "ORDER_CANCEL_REQUESTED": (ALL, _generic),
}


def shown_at(rec: Mapping[str, Any]) -> int:
    """The lowest verbosity at which ``rec`` is shown."""
    level = LEVEL_NO.get(_s(rec.get("level")).upper(), 20)
    if level >= 30:
        return QUIET
    if level < 20:
        return ALL
    event = _s(rec.get("event"))
    if event == "RECONCILED":
        return _reconciled_level(rec)
    if event == "TRADING_STOPPED":
        return _stopped_level(rec)
    if event == "PORTFOLIO_STATUS" and not has_equity(rec):
        return VERBOSE
    hit = EVENTS.get(event)
    return hit[0] if hit is not None else VERBOSE


def render(rec: Mapping[str, Any], view: View) -> str | None:
    """One JSON-log record as a terminal line, or None when ``view.verbosity`` hides it.

    Layout: wall time (local), the sim time when the venue is the embedded exchange, the
    symbol, a short tag and the text: ``13:29:16  sim 2025-01-02 10:05  BTCUSDT  FILL    BUY
    0.012 @ 94,210.5  maker  fee 0.23  entry L1``."""
    if shown_at(rec) > view.verbosity:
        return None
    event = _s(rec.get("event"))
    hit = EVENTS.get(event)
    try:
        tag, text, style = (hit[1] if hit is not None else _generic)(rec, view)
    except Exception:  # noqa: BLE001 - an odd record still gets a line, never a traceback
        tag, text, style = _generic(rec, view)
    level = _s(rec.get("level")).upper()
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
    parts = [_c(wall, DIM, v.color)]
    if v.sim_column:
        parts.append(_c(f"sim {sim_text(v.sim_ms) if v.sim_ms is not None else '-' * 16}",
                        DIM, v.color))
    parts.append(f"{_s(rec.get('symbol')):<8}")
    parts.append(_c(f"{tag:<7}", style, v.color))
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
    """The records of this session the report's accounting needs (``report.build``),
    trimmed (EQUITY without its positions), for the summary at the stop. The equity curve
    also takes the portfolio's equity from each PORTFOLIO_STATUS (EQUITY is logged at most
    every 15 minutes and after fills; the status comes every ``status_interval_s``), so the
    session's drawdown is not missed between two EQUITY lines."""

    def __init__(self) -> None:
        from report.build import ReportCollector

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
    from report.build import ReportError, analyse

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
    lines = [_c(f"-- {head} " + "-" * max(4, 72 - len(head)), BOLD, color)]
    if s.note:
        lines.append("  " + s.note)
    else:
        net = _dec(s.net_pnl)
        net_t = _c(f"{money(net, signed=True)} {s.quote}",
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


__all__: Sequence[str] = (
    "ALL", "NORMAL", "QUIET", "VERBOSE", "Console", "LogFollower", "SessionConsole",
    "SessionSummary", "SessionTotals", "View", "render", "render_summary", "session_summary",
    "use_color", "verbosity_from",
)
