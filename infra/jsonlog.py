"""One JSON log line, rendered: the fields, their order, masking and redaction.

Pure rendering shared by every writer of ``gridbot.jsonl`` (``infra.logs`` in-process,
``infra.log_writer``'s child process) and by readers that must see values exactly as the log
writes them (``report.collector``): ``render_line`` builds one line, ``jsonable`` converts one
context value.

Secrets never reach a line: values of ``BINANCE_API_KEY``/``BINANCE_API_SECRET`` (and anything
passed to ``register_secret``) are replaced by ``***`` in messages and context, and context
keys that look like credentials are masked whatever their value.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import threading
from decimal import Decimal
from enum import Enum
from typing import Any

import msgspec

from infra.clock import now_ms

SECRET_ENV_VARS = ("BINANCE_API_KEY", "BINANCE_API_SECRET")
MASK = "***"
#: level name -> number (loguru's standard levels)
LEVEL_NO = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40,
            "CRITICAL": 50}
#: the registered secrets (read it; add with ``register_secret``)
SECRETS: set[str] = set()
_SECRET_KEY_RE = re.compile(r"(secret|api_?key|signature|password|passphrase|token)", re.I)
_lock = threading.Lock()


def register_secret(value: str | None) -> None:
    """Never log ``value`` (ignored when empty or too short to be a credential)."""
    if value and len(value) >= 6:
        with _lock:
            SECRETS.add(value)


def load_env_secrets() -> None:
    """Register the credentials found in the environment (``SECRET_ENV_VARS``)."""
    for name in SECRET_ENV_VARS:
        register_secret(os.environ.get(name))


def redact(text: str) -> str:
    """Replace every registered secret inside ``text``."""
    for s in SECRETS:
        if s in text:
            text = text.replace(s, MASK)
    return text


_key_masked: dict[str, bool] = {}


def masked(key: str) -> bool:
    """Does ``key`` look like a credential (cached: the same few keys come back every line)?"""
    hit = _key_masked.get(key)
    if hit is None:
        hit = _key_masked[key] = _SECRET_KEY_RE.search(key) is not None
    return hit


_PLAIN = (str, int, float, bool, type(None))


def jsonable(value: Any) -> Any:
    """``value`` as the JSON log writes it (NaN and infinities become null: JSON has none)."""
    if type(value) in _PLAIN:  # the common case first: most context values are plain
        return value if type(value) is not float or value - value == 0.0 else None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): (MASK if masked(str(k)) else jsonable(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if hasattr(value, "__struct_fields__"):
        return jsonable({f: getattr(value, f) for f in value.__struct_fields__})
    if isinstance(value, float):  # a float subclass (numpy)
        return float(value) if value - value == 0.0 else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_ts_cache: list[Any] = [None, ""]


def ts_text(ts: _dt.datetime) -> str:
    """``ts`` (UTC) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (the seconds part cached)."""
    sec = ts.replace(microsecond=0)
    if sec != _ts_cache[0]:
        _ts_cache[0] = sec
        _ts_cache[1] = ts.strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{_ts_cache[1]}{ts.microsecond // 1000:03d}Z"


_FAST_ENCODER = msgspec.json.Encoder()


def _conv(value: Any, ok: list[bool]) -> Any:
    """``jsonable`` that also clears ``ok[0]`` when the value cannot take the msgspec path
    (a type only ``json`` renders the usual way)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if value - value == 0.0 else None
    if t is dict:
        return {str(k): (MASK if masked(str(k)) else _conv(v, ok)) for k, v in value.items()}
    if t is list or t is tuple:
        return [_conv(v, ok) for v in value]
    out = jsonable(value)
    if type(out) in (dict, list):
        ok[0] = False  # nested containers of other types: the json encoder, as before
    return out


def render_line(ts: _dt.datetime, level: str, event: str, symbol: str, message: str, pid: int,
                ts_ms: Any, extra: dict[str, Any], exception: str | None = None,
                fast: bool = False, obj_out: list[dict[str, Any]] | None = None) -> str:
    """One JSON log line (``ts`` is a UTC datetime; ``extra``: the remaining context).

    Fields in order: ``ts``, ``level``, ``event``, ``symbol``, ``msg``, ``pid``, ``ts_ms``
    (event time: the replayed bar time in a backtest, ``infra.clock`` otherwise),
    ``exception`` (if any), then the context. NaN and infinities are written as null (JSON has
    no such numbers). ``fast``: encode with msgspec when every context value (nested dicts and
    lists included) is plain (the same JSON values; floats may be spelt differently, e.g.
    ``1e16`` for ``1e+16``, and non-ASCII text is not escaped); otherwise, and by default,
    ``json``. ``obj_out``: receives the JSON-ready dict that was encoded."""
    out: dict[str, Any] = {
        "ts": ts_text(ts),
        "level": level,
        "event": event,
        "symbol": symbol,
        "msg": message,
        "pid": pid,
        "ts_ms": ts_ms or now_ms(),
    }
    if exception is not None:
        out["exception"] = exception
    ok = [fast]
    km = _key_masked
    for k, v in extra.items():  # _conv inlined for plain values (most fields of most lines)
        hit = km.get(k)
        if hit is None:
            hit = masked(k)
        t = type(v)
        if hit:
            out[k] = MASK
        elif t is float:
            out[k] = v if v - v == 0.0 else None
        elif t is str or t is int or t is bool or v is None:
            out[k] = v
        else:
            out[k] = _conv(v, ok)
    text = ""
    if ok[0]:
        try:
            text = _FAST_ENCODER.encode(out).decode()
        except (TypeError, ValueError, OverflowError):  # e.g. an int beyond 64 bits
            text = ""
    if not text:
        text = _ENCODER.encode(out)
    if obj_out is not None:
        obj_out.append(out)
    return redact(text) if SECRETS else text


__all__ = ["LEVEL_NO", "MASK", "SECRETS", "SECRET_ENV_VARS", "jsonable", "load_env_secrets",
           "masked", "redact", "register_secret", "render_line", "ts_text"]
