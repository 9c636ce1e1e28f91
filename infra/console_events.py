"""What the terminal says for each event of the JSON log, and at which verbosity.

``EVENTS`` maps an event name to the lowest verbosity that shows it at INFO and its renderer
(record, ``View``) -> (tag, text, style); ``shown_at(rec)`` applies the rules (warnings and
errors always, below INFO only with ``ALL``, a few events whose verbosity depends on their
fields), ``generic`` renders any other record. ``infra.console.render`` lays the result out as
one line.

Verbosity: ``QUIET`` (``-q``) warnings, errors and the summary; ``NORMAL`` fills, closed
trades, one portfolio STATUS line per minute, funding, drawdown levels, halts, restarts,
reconnects, start and stop, every warning and error; ``VERBOSE`` (``-v``) also orders placed,
amended and canceled, per-symbol STATUS, reconciliation, warm-up and other INFO records;
``ALL`` (``-vv``) every record (STRATEGY, EQUITY, ...).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from infra.jsonlog import LEVEL_NO
from infra.termfmt import (
    BLUE,
    BOLD,
    CYAN,
    GREEN,
    MAGENTA,
    RED,
    YELLOW,
    as_decimal,
    as_float,
    as_text,
    base_asset,
    duration,
    money,
    number,
    paint,
    pct,
    quote_of,
    tidy,
    times,
)

QUIET, NORMAL, VERBOSE, ALL = 0, 1, 2, 3
BRAKE_NAMES = {0: "normal", 1: "reduced", 2: "deleveraged", 3: "halted"}


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


def _exc_last_line(rec: Mapping[str, Any]) -> str:
    exc = rec.get("exception")
    if not isinstance(exc, str) or not exc.strip():
        return ""
    return exc.strip().splitlines()[-1]


def _fill(rec: Mapping[str, Any], v: View) -> Shown:
    sym = as_text(rec.get("symbol"))
    fee_asset = as_text(rec.get("fee_asset"))
    fee = f"fee {money(rec.get('fee'))}"
    if fee_asset and fee_asset != quote_of(sym, v.quote):
        fee = f"fee {number(rec.get('fee'))} {fee_asset}"
    liq = "maker" if rec.get("maker") is True else "taker" if rec.get("maker") is False else ""
    kind = as_text(rec.get("kind")).lower()
    key = as_text(rec.get("key"))
    what = kind if not key or key.lower() == kind else f"{kind} {key}".strip()
    side = as_text(rec.get("side")).upper()
    text = f"{side} {number(rec.get('qty'))} @ {number(rec.get('price'))}"
    return "FILL", "  ".join(x for x in (text, liq, fee, what) if x), CYAN


def _trade(rec: Mapping[str, Any], v: View) -> Shown:
    side = as_text(rec.get("side")).upper()
    direction = "long" if side == "BUY" else "short" if side == "SELL" else side.lower()
    net = as_decimal(rec.get("net_pnl"))
    q = quote_of(as_text(rec.get("symbol")), v.quote)
    parts = [f"{direction} {number(rec.get('qty'))} closed",
             f"{number(rec.get('entry_price'), like=rec.get('exit_price'))} -> "
             f"{number(rec.get('exit_price'), like=rec.get('exit_price'))}",
             paint(f"net {money(net, signed=True)} {q}", GREEN if (net or 0) >= 0 else RED,
                v.color),
             f"fees {money(rec.get('fees'))}"]
    funding = as_decimal(rec.get("funding"))
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
        q = as_decimal(p.get("qty"))
        if q:
            out.append(f"{base_asset(str(sym), quote)} {number(q, signed=True)}")
    return " ".join(out) if out else "flat"


def has_equity(rec: Mapping[str, Any]) -> bool:
    """Does a PORTFOLIO_STATUS carry the account's equity (not yet while the portfolio has
    not read the account: equity 0, no initial equity)?"""
    pf = rec.get("portfolio")
    if not isinstance(pf, Mapping):
        return False
    return as_decimal(pf.get("initial_equity")) is not None or bool(as_decimal(pf.get("equity")))


def _portfolio_status(rec: Mapping[str, Any], v: View) -> Shown:
    pf = rec.get("portfolio") if isinstance(rec.get("portfolio"), Mapping) else {}
    assert isinstance(pf, Mapping)
    if not has_equity(rec):
        return "STATUS", "portfolio starting: equity not known yet", BLUE
    eq, init = as_decimal(pf.get("equity")), as_decimal(pf.get("initial_equity"))
    change = f" ({pct(eq / init - 1)})" if eq is not None and init else ""
    parts = [paint(f"equity {money(eq)} {v.quote}{change}", BOLD, v.color)]
    positions = pf.get("positions")
    upnl = None
    if isinstance(positions, Mapping):
        vals = [as_decimal(p.get("unrealized_pnl")) for p in positions.values()
                if isinstance(p, Mapping)]
        upnl = sum((x for x in vals if x is not None), Decimal(0))
    if upnl:
        parts.append(f"upnl {money(upnl, signed=True)}")
    lvl = pf.get("drawdown_level")
    dd_text = f"dd {pct(pf.get('drawdown'), signed=False, digits=1)}"
    if isinstance(lvl, int) and not isinstance(lvl, bool) and lvl > 0:
        dd_text += paint(f" level {lvl} {BRAKE_NAMES.get(lvl, '')}".rstrip(), YELLOW, v.color)
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
    state = as_text(pf.get("trading_state"))
    if state and state != "ACTIVE":
        parts.append(paint(state, YELLOW if state == "REDUCING" else RED, v.color))
    if pf.get("safe_mode"):
        parts.append(paint("safe mode", YELLOW, v.color))
    symbols = rec.get("symbols")
    if isinstance(symbols, Mapping):
        down = [f"{s} {st}" for s, st in sorted(symbols.items()) if st != "running"]
        if down:
            parts.append(paint("; ".join(down), YELLOW, v.color))
    restarts = rec.get("restarts")
    if isinstance(restarts, int) and restarts > 0:
        parts.append(f"restarts {restarts}")
    return "STATUS", "  ".join(parts), BLUE


def _symbol_status(rec: Mapping[str, Any], v: View) -> Shown:
    pos = as_decimal(rec.get("position"))
    parts = []
    if pos:
        parts.append(f"pos {number(pos, signed=True)} @ {number(rec.get('entry_price'))}")
        parts.append(f"mark {number(rec.get('mark_price'))}")
        parts.append(f"upnl {money(rec.get('unrealized_pnl'), signed=True)}")
    else:
        parts.append("flat")
        if as_decimal(rec.get("mark_price")):
            parts.append(f"mark {number(rec.get('mark_price'))}")
    parts.append(f"realized {money(rec.get('realized_pnl'), signed=True)}")
    parts.append(f"fees {money(rec.get('fees'))}")
    if rec.get("open_orders") is not None:
        parts.append(f"orders {rec.get('open_orders')}")
    if rec.get("L") is not None or rec.get("S") is not None:
        lv, sv = as_float(rec.get("L")), as_float(rec.get("S"))
        parts.append(f"L {lv:.2f} S {sv:.2f}" if lv is not None and sv is not None else "")
    state = as_text(rec.get("state"))
    if state and state != "running":
        parts.append(paint(state, YELLOW, v.color))
    return "status", "  ".join(p for p in parts if p), BLUE


def _placed(rec: Mapping[str, Any], v: View) -> Shown:
    side = as_text(rec.get("side")).upper()
    typ = as_text(rec.get("type")).upper()
    price = f" @ {number(rec.get('price'))}" if as_decimal(rec.get("price")) else ""
    ro = "  reduce-only" if rec.get("reduce_only") else ""
    kind = as_text(rec.get("kind")).lower()
    return ("order", f"{side} {number(rec.get('qty'))}{price}  {typ.lower()}{ro}  "
            f"{kind} {as_text(rec.get('key'))}".rstrip(), "")


def _canceled(rec: Mapping[str, Any], v: View) -> Shown:
    filled = as_decimal(rec.get("filled_qty"))
    extra = f" (filled {number(filled)})" if filled else ""
    why = as_text(rec.get("reason"))
    why = f"  {why.lower()}" if why and why != "CANCELED" else ""
    key = as_text(rec.get("key")) or as_text(rec.get("client_order_id"))
    return "cancel", f"{key}{extra}{why}", ""


def _amend(rec: Mapping[str, Any], v: View) -> Shown:
    return ("amend", f"{as_text(rec.get('client_order_id'))} -> {number(rec.get('qty'))} @ "
            f"{number(rec.get('price'))}  {as_text(rec.get('reason'))}".rstrip(), "")


def _funding(rec: Mapping[str, Any], v: View) -> Shown:
    a = as_decimal(rec.get("amount"))
    q = quote_of(as_text(rec.get("symbol")), v.quote)
    if a is None:
        return "FUND", f"funding {money(rec.get('amount'))}", ""
    word = "received" if a >= 0 else "paid"
    return "FUND", f"funding {word} {money(abs(a))} {q}", GREEN if a >= 0 else YELLOW


def _drawdown(rec: Mapping[str, Any], v: View) -> Shown:
    kind = as_text(rec.get("kind")).upper()
    lvl = rec.get("drawdown_level")
    prev = rec.get("previous_level")
    dd = pct(rec.get("drawdown"), digits=1)
    reason = as_text(rec.get("reason"))
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
        x = as_float(rec.get(key))
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
    state = as_text(rec.get("state"))
    reason = as_text(rec.get("reason"))
    style = GREEN if state == "ACTIVE" else YELLOW if state == "REDUCING" else RED
    return ("STATE", f"trading {as_text(rec.get('previous'))} -> {state}"
            + (f": {reason}" if reason else ""), style)


def _halted(rec: Mapping[str, Any], v: View) -> Shown:
    reason = as_text(rec.get("reason"))
    flat = "  flattening" if rec.get("flatten") else ""
    return "HALT", f"halted: {reason}{flat}  position {number(rec.get('position_qty'))}", RED


def _restarted(rec: Mapping[str, Any], v: View) -> Shown:
    actor = as_text(rec.get("actor")) or "actor"
    reason = as_text(rec.get("reason"))
    n = rec.get("restart_count")
    restore = as_float(rec.get("restore_ms"))
    parts = [f"{actor} restarted" + (f" ({reason})" if reason else "")]
    if isinstance(n, int):
        parts.append(f"restart #{n}")
    if restore is not None:
        parts.append(f"state restored in {restore:.0f} ms")
    return "RESTART", "  ".join(parts), MAGENTA


def _reconnected(rec: Mapping[str, Any], v: View) -> Shown:
    gap = as_float(rec.get("gap_ms"))
    parts = ["streams reconnected" + (f" after {duration(gap / 1000)}" if gap else "")]
    k, t = rec.get("klines_repaired"), rec.get("trades_repaired")
    if k or t:
        parts.append(f"repaired {k or 0} bars, {t or 0} trades")
    if rec.get("detail"):
        parts.append(as_text(rec.get("detail")))
    return "RECONN", "  ".join(parts), MAGENTA


def _risk_blocked(rec: Mapping[str, Any], v: View) -> Shown:
    what = " ".join(x for x in (as_text(rec.get("side")).upper(), as_text(rec.get("key"))) if x)
    if not what and as_decimal(rec.get("notional")) is not None:
        what = f"{money(rec.get('notional'))} {v.quote}"
    reason = as_text(rec.get("reason"))
    detail = tidy(as_text(rec.get("detail")))
    stage = as_text(rec.get("stage"))
    text = f"order blocked{' ' + what if what else ''}: {reason}"
    if detail:
        text += f" ({detail})"
    if stage:
        text += f"  [{stage}]"
    return "BLOCK", text, YELLOW


def _rejected(rec: Mapping[str, Any], v: View) -> Shown:
    return ("REJECT", f"order {as_text(rec.get('client_order_id'))} rejected: "
            f"{as_text(rec.get('reason'))}" + (f" (code {rec.get('code')})"
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
        f = as_float(w.get(s))
        items.append(f"{s} {f * 100:.0f}%" if f is not None else str(s))
    text = (f"trading {', '.join(items)}" + (f" ({'/'.join(kinds)})" if kinds else "")
            + f" on {as_text(rec.get('venue')) or '?'}")
    if rec.get("strategy"):
        text += f", {rec.get('strategy')} strategy"
    if rec.get("leverage_cap") is not None:
        text += f", leverage cap {times(rec.get('leverage_cap'))}"
    return "START", text, GREEN


def _msg(tag: str, style: str = "") -> Callable[[Mapping[str, Any], View], Shown]:
    def fn(rec: Mapping[str, Any], v: View) -> Shown:
        return tag, as_text(rec.get("msg")) or as_text(rec.get("event")), style
    return fn


def _equity_init(rec: Mapping[str, Any], v: View) -> Shown:
    return "EQUITY", f"initial equity {money(rec.get('initial_equity'))} {v.quote}", ""


def _sim_started(rec: Mapping[str, Any], v: View) -> Shown:
    msg = as_text(rec.get("msg"))
    if rec.get("state_file"):
        msg += f"; state {rec.get('state_file')}"
    return "SIM", msg, ""


def _trading_stopped(rec: Mapping[str, Any], v: View) -> Shown:
    if rec.get("symbol"):
        mode = as_text(rec.get("mode"))
        return ("STOP", f"stopped trading ({mode})  position {number(rec.get('position_qty'))}"
                .replace("()", ""), "")
    missing = rec.get("missing")
    text = as_text(rec.get("msg"))
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
    return NORMAL if as_decimal(rec.get("position_qty")) else VERBOSE


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


def generic(rec: Mapping[str, Any], v: View) -> Shown:
    """The line of a record without a renderer of its own: event, message, the fields the
    message does not already say (always for warnings and errors), an exception's last line."""
    level = as_text(rec.get("level")).upper()
    no = LEVEL_NO.get(level, 20)
    event = as_text(rec.get("event")) or "LOG"
    msg = as_text(rec.get("msg"))
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
    "STRATEGY": (ALL, generic),
    "EQUITY": (ALL, generic),
    "ORDER_DONE": (ALL, generic),
    "ORDER_CANCEL_REQUESTED": (ALL, generic),
}


def shown_at(rec: Mapping[str, Any]) -> int:
    """The lowest verbosity at which ``rec`` is shown."""
    level = LEVEL_NO.get(as_text(rec.get("level")).upper(), 20)
    if level >= 30:
        return QUIET
    if level < 20:
        return ALL
    event = as_text(rec.get("event"))
    if event == "RECONCILED":
        return _reconciled_level(rec)
    if event == "TRADING_STOPPED":
        return _stopped_level(rec)
    if event == "PORTFOLIO_STATUS" and not has_equity(rec):
        return VERBOSE
    hit = EVENTS.get(event)
    return hit[0] if hit is not None else VERBOSE


__all__ = ["ALL", "BRAKE_NAMES", "EVENTS", "NORMAL", "QUIET", "VERBOSE", "Renderer", "Shown",
           "View", "generic", "has_equity", "shown_at"]
