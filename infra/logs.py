"""Logging: loguru, one flat JSON object per line in ``<log_dir>/gridbot.jsonl``.

Every record has ``ts`` (UTC ISO-8601 wall time), ``ts_ms`` (event time: simulated in a
backtest, see ``infra.clock``), ``level``, ``event`` (ORDER_PLACED, TRADE_CLOSED,
STATUS, RISK_BLOCKED, …), ``symbol``, ``msg``, ``pid`` and the caller's context fields.
Human-readable lines on the terminal are rendered from these records by ``supervision.console``
(``python run.py run`` follows the file; other commands' stderr sink renders each record).

Only one process ever writes and rotates ``gridbot.jsonl``. In the multi-process bot, actor
processes call ``configure_actor_logging()``: their loguru records are handed, already rendered
as JSON, to the stdlib logger that thespian forwards to its single logging process, where
``JsonLineHandler`` (installed by ``thespian_log_defs``) writes them with rotation. (Several
processes rotating one file, or a loguru ``enqueue`` sink owned by an exited process, corrupt
or hang — see library-notes.)

Secrets never reach a sink: values of ``BINANCE_API_KEY``/``BINANCE_API_SECRET`` (and anything
passed to ``register_secret``) are replaced by ``***`` in messages and context, and context keys
that look like credentials are masked whatever their value.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import sys
import threading
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger

from infra.clock import now_ms

SECRET_ENV_VARS = ("BINANCE_API_KEY", "BINANCE_API_SECRET")
_SECRET_KEY_RE = re.compile(r"(secret|api_?key|signature|password|passphrase|token)", re.I)
_MASK = "***"
_secrets: set[str] = set()
_lock = threading.Lock()
JSON_FILE = "gridbot.jsonl"
FORWARD_LOGGER = "gridbot.forward"


def register_secret(value: str | None) -> None:
    """Never log ``value`` (ignored when empty or too short to be a credential)."""
    if value and len(value) >= 6:
        with _lock:
            _secrets.add(value)


def _load_env_secrets() -> None:
    for name in SECRET_ENV_VARS:
        register_secret(os.environ.get(name))


def redact(text: str) -> str:
    """Replace every registered secret inside ``text``."""
    for s in _secrets:
        if s in text:
            text = text.replace(s, _MASK)
    return text


_key_masked: dict[str, bool] = {}


def _masked(key: str) -> bool:
    """Does ``key`` look like a credential (cached: the same few keys come back every line)?"""
    hit = _key_masked.get(key)
    if hit is None:
        hit = _key_masked[key] = _SECRET_KEY_RE.search(key) is not None
    return hit


_PLAIN = (str, int, float, bool, type(None))


def _jsonable(value: Any) -> Any:
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
        return {str(k): (_MASK if _masked(str(k)) else _jsonable(v))
                for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__struct_fields__"):
        return _jsonable({f: getattr(value, f) for f in value.__struct_fields__})
    if isinstance(value, float):  # a float subclass (numpy)
        return float(value) if value - value == 0.0 else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    return str(value)


_ENCODER = json.JSONEncoder(default=str, separators=(",", ":"))
_ts_cache: list[Any] = [None, ""]


def _ts_text(ts: _dt.datetime) -> str:
    """``ts`` (UTC) as ``YYYY-MM-DDTHH:MM:SS.mmmZ`` (the seconds part cached)."""
    sec = ts.replace(microsecond=0)
    if sec != _ts_cache[0]:
        _ts_cache[0] = sec
        _ts_cache[1] = ts.strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{_ts_cache[1]}{ts.microsecond // 1000:03d}Z"


_FAST_ENCODER = msgspec.json.Encoder()


def _conv(value: Any, ok: list[bool]) -> Any:
    """``_jsonable`` that also clears ``ok[0]`` when the value cannot take the msgspec path
    (a type only ``json`` renders the usual way)."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is float:
        return value if value - value == 0.0 else None
    if t is dict:
        return {str(k): (_MASK if _masked(str(k)) else _conv(v, ok)) for k, v in value.items()}
    if t is list or t is tuple:
        return [_conv(v, ok) for v in value]
    out = _jsonable(value)
    if type(out) in (dict, list):
        ok[0] = False  # nested containers of other types: the json encoder, as before
    return out


def _line(ts: _dt.datetime, level: str, event: str, symbol: str, message: str, pid: int,
          ts_ms: Any, extra: dict[str, Any], exception: str | None = None,
          fast: bool = False, obj_out: list[dict[str, Any]] | None = None) -> str:
    """One JSON log line (``ts`` is a UTC datetime; ``extra``: the remaining context).

    NaN and infinities are written as null (JSON has no such numbers). ``fast``: encode with
    msgspec when every context value (nested dicts and lists included) is plain (the same
    JSON values; floats may be spelt differently, e.g. ``1e16`` for ``1e+16``, and non-ASCII
    text is not escaped); otherwise, and by default, ``json``. ``obj_out``: receives the
    JSON-ready dict that was encoded."""
    out: dict[str, Any] = {
        "ts": _ts_text(ts),
        "level": level,
        "event": event,
        "symbol": symbol,
        "msg": message,
        "pid": pid,
        # event time: the replayed bar time in a backtest, wall time live (infra.clock)
        "ts_ms": ts_ms or now_ms(),
    }
    if exception is not None:
        out["exception"] = exception
    ok = [fast]
    km = _key_masked
    for k, v in extra.items():  # _conv inlined for plain values (most fields of most lines)
        hit = km.get(k)
        if hit is None:
            hit = _masked(k)
        t = type(v)
        if hit:
            out[k] = _MASK
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
    return redact(text) if _secrets else text


def _render(record: dict[str, Any]) -> str:
    extra = dict(record["extra"])
    extra.pop("_json", None)
    exc = None
    if record["exception"] is not None:
        exc = "".join(__import__("traceback").format_exception(*record["exception"]))
    return _line(record["time"].astimezone(_dt.timezone.utc), record["level"].name,
                 extra.pop("event", "LOG"), extra.pop("symbol", ""), record["message"],
                 record["process"].id, extra.pop("ts_ms", None), extra, exc)


def _patch(record: dict[str, Any]) -> None:
    record["message"] = redact(record["message"])
    record["extra"]["_json"] = _render(record)


def _json_format(record: dict[str, Any]) -> str:
    return "{extra[_json]}\n"


def configure_logging(
    log_dir: str | Path | None,
    *,
    level: str = "INFO",
    stderr: bool = True,
    stderr_level: str = "INFO",
    rotation: str | int = "100 MB",
    retention: int = 10,
    json_file: str = JSON_FILE,
) -> Path | None:
    """Configure loguru for this process (removes previous sinks). Returns the JSON log path."""
    _load_env_secrets()
    logger.remove()
    logger.configure(patcher=_patch)
    if stderr:  # human lines: supervision.console renders the record's JSON
        from supervision.console import StreamSink

        logger.add(StreamSink(sys.stderr), level=stderr_level, format="{message}")
    path = None
    if log_dir is not None:
        path = Path(log_dir) / json_file
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.add(path, level=level, format=_json_format, rotation=rotation,
                   retention=retention, encoding="utf-8", enqueue=False)
    return path


class _AppendSink:
    """Appends each record to ``path``, opening it per record: for a process that logs rarely
    (the launcher) next to the single writer that owns and rotates the file (a held file
    descriptor would keep writing into a rotated-away file)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def write(self, message: Any) -> None:
        line = message.record["extra"]["_json"] + "\n"
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line)


def add_append_sink(path: str | Path, level: str = "INFO") -> int:
    """Also write this process's records to ``path`` (see ``_AppendSink``)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    return logger.add(_AppendSink(p), level=level, format="{message}")


def log_event(event: str, msg: str = "", *, level: str = "INFO", **context: Any) -> None:
    """Log one structured event (``event`` plus full context fields)."""
    w = _direct
    if w is not None and w.log(event, msg or event, level, context):
        return
    logger.bind(event=event, **context).log(level, msg or event)


#: level name -> number (loguru's standard levels)
_LEVEL_NO = {"TRACE": 5, "DEBUG": 10, "INFO": 20, "SUCCESS": 25, "WARNING": 30, "ERROR": 40,
             "CRITICAL": 50}


class DirectJsonLog:
    """The JSON log of a process that is its only writer (a backtest), without loguru on the
    hot path.

    ``log_event`` calls below ``direct_below`` (the stderr sink's level) are rendered here into
    exactly the line loguru's sink would write (same fields, order, masking, redaction) and
    appended to ``path``; everything else (records at the stderr level, direct ``logger`` calls)
    still goes through loguru, whose JSON sink is this object (``write``), so the file keeps
    one writer and the order of calls. Records at ``level`` or above go to the file; events
    named in ``keep`` (at INFO or above) are also kept in ``kept`` as parsed dicts; every
    record that reaches the file is also given, parsed, to ``collector.add`` (e.g. a
    ``report.build.ReportCollector``, so the report never re-reads the file).
    Install with ``set_direct_log(obj)``; ``close()`` flushes the file."""

    def __init__(self, path: Path | None, *, level: str = "INFO", direct_below: str = "WARNING",
                 keep: frozenset[str] = frozenset(), collector: Any = None,
                 offload: bool = False) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115
        self._level = _LEVEL_NO.get(level.upper(), 20)
        self._below = _LEVEL_NO.get(direct_below.upper(), 30)
        self._min = min(self._level, 20 if keep else self._level)
        self._keep = keep
        self._pid = os.getpid()
        self.kept: list[dict[str, Any]] = []
        self.collector = collector
        #: ``offload``: lines rendered by a child process (``infra.log_writer``); the
        #: kept events and the collector come back from it at ``close()``
        self._off: Any = None
        if offload:
            from infra.log_writer import OffloadedJsonLog

            try:
                self._off = OffloadedJsonLog(
                    str(path) if path is not None else None, level_no=self._level,
                    keep=keep, collector=collector is not None, pid=self._pid,
                    secrets=sorted(_secrets))
            except OSError:
                self._off = None  # no child process here: render in this one
            else:
                if self._fh is not None:
                    self._fh.close()
                    self._fh = None

    @property
    def sink_level(self) -> int:
        """Lowest level this object wants from loguru."""
        return self._min

    def emit(self, no: int, event: str, line: str, obj: dict[str, Any] | None = None) -> None:
        """One rendered line of level ``no`` (``obj``: its parsed form, if at hand): to the file,
        the collector and the kept events, as configured."""
        if no >= self._level:
            if self._fh is not None:
                self._fh.write(line + "\n")
            if self.collector is not None:
                if obj is None:
                    obj = json.loads(line)
                self.collector.add(obj)
        if no >= 20 and event in self._keep:
            self.kept.append(obj if obj is not None else json.loads(line))

    def write(self, message: Any) -> None:
        """loguru sink: records that did not take the direct path."""
        rec = message.record
        if self._off is not None:
            self._off.line(rec["level"].no, rec["extra"].get("event", "LOG"),
                           rec["extra"]["_json"])
            return
        self.emit(rec["level"].no, rec["extra"].get("event", "LOG"), rec["extra"]["_json"])

    def log(self, event: str, msg: str, level: str, context: dict[str, Any]) -> bool:
        """Render and write one ``log_event``; False: not for the direct path (use loguru)."""
        no = _LEVEL_NO.get(level)
        if no is None or no >= self._below:
            return False
        if no < self._min:
            return True
        off = self._off
        if off is not None:  # ``context`` is log_event's own kwargs dict: no copy needed
            symbol = context.pop("symbol", "")
            ts_ms = context.pop("ts_ms", None) or now_ms()
            off.record(no, level, event, symbol, ts_ms, redact(msg) if _secrets else msg,
                       context)
            return True
        extra = dict(context)
        symbol = extra.pop("symbol", "")
        ts_ms = extra.pop("ts_ms", None)
        objs: list[dict[str, Any]] = []
        line = _line(_dt.datetime.now(_dt.timezone.utc), level, event, symbol, redact(msg),
                     self._pid, ts_ms, extra, fast=True, obj_out=objs)
        # the rendered dict is what parsing the line gives back (no secret can be in it when
        # none is registered; otherwise re-read the redacted line)
        self.emit(no, event, line, objs[0] if objs and not _secrets else None)
        return True

    def close(self) -> None:
        """Flush and close the file (idempotent); with ``offload``, wait for the child's lines
        and take back its kept events and collector (``LogWriterError`` if it failed)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        off, self._off = self._off, None
        if off is not None:
            off.close()
            self.kept = off.kept
            if self.collector is not None:
                self.collector = off.collector

    def abort(self) -> None:
        """Close without waiting for an offloaded writer (an error path)."""
        off, self._off = self._off, None
        if off is not None:
            off.abort()
        self.close()


_direct: DirectJsonLog | None = None


def set_direct_log(writer: DirectJsonLog | None) -> None:
    """Route ``log_event`` of this process through ``writer`` (None: loguru only)."""
    global _direct
    _direct = writer


# -- multi-process: actor processes forward rendered lines to thespian's logging process ------
class _ForwardSink:
    """Loguru sink in an actor process: hands the rendered JSON line to stdlib logging."""

    def __init__(self) -> None:
        self._log = logging.getLogger(FORWARD_LOGGER)

    def write(self, message: Any) -> None:
        rec = message.record
        self._log.log(max(logging.INFO, rec["level"].no), rec["extra"]["_json"])


def configure_actor_logging(level: str = "INFO") -> None:
    """In an actor process: loguru records go to thespian's logging process (one writer)."""
    _load_env_secrets()
    logger.remove()
    logger.configure(patcher=_patch)
    logger.add(_ForwardSink(), level=level, format="{message}")


class JsonLineHandler(logging.Handler):
    """stdlib handler of thespian's logging process: writes forwarded JSON lines (rotation by
    loguru in this single process). Records not from gridbot are wrapped as JSON too."""

    def __init__(self, log_dir: str, rotation: str = "100 MB", retention: int = 10) -> None:
        super().__init__()
        path = Path(log_dir) / JSON_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        logger.remove()
        self._sink_id = logger.add(path, format="{message}", rotation=rotation,
                                   retention=retention, encoding="utf-8", enqueue=False)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = record.getMessage()
            if record.name != FORWARD_LOGGER or not line.startswith("{"):
                line = json.dumps({
                    "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc)
                    .strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
                    "level": record.levelname, "event": "LOG", "symbol": "",
                    "msg": redact(line), "pid": record.process, "logger": record.name})
            logger.opt(raw=True).info(redact(line) + "\n")
        except Exception:  # pragma: no cover - logging must never raise into the actor system
            self.handleError(record)


def thespian_log_defs(log_dir: str | Path, rotation: str = "100 MB",
                      retention: int = 10) -> dict[str, Any]:
    """``logDefs`` for ``ActorSystem``: forwarded records at INFO+ go to ``JsonLineHandler``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "handlers": {
            "jsonl": {"()": JsonLineHandler, "log_dir": str(log_dir), "level": "INFO",
                      "rotation": rotation, "retention": retention},
        },
        "root": {"handlers": ["jsonl"], "level": "INFO"},
    }
