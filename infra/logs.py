"""Logging: loguru, one flat JSON object per line in ``<log_dir>/gridbot.jsonl``.

Every record has ``ts`` (UTC ISO-8601 wall time), ``ts_ms`` (event time: simulated in a
backtest, see ``infra.clock``), ``level``, ``event`` (ORDER_PLACED, TRADE_CLOSED,
STATUS, RISK_BLOCKED, …), ``symbol``, ``msg``, ``pid`` and the caller's context fields; the
line itself is rendered by ``infra.jsonlog``. Human-readable lines on the terminal are rendered
from these records by ``infra.console`` (``python run.py run`` follows the file, see
``supervision.terminal``; other commands' stderr sink renders each record).

Only one process ever writes and rotates ``gridbot.jsonl``. In the multi-process bot, actor
processes call ``configure_actor_logging()``: their loguru records are handed, already rendered
as JSON, to the stdlib logger that thespian forwards to its single logging process, where
``JsonLineHandler`` (installed by ``thespian_log_defs``) writes them with rotation. (Several
processes rotating one file, or a loguru ``enqueue`` sink owned by an exited process, corrupt
or hang — see library-notes.) A backtest is its own only writer: ``DirectJsonLog``.

Secrets never reach a sink: values of ``BINANCE_API_KEY``/``BINANCE_API_SECRET`` (and anything
passed to ``register_secret``) are replaced by ``***`` in messages and context, and context keys
that look like credentials are masked whatever their value.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import pickle
import sys
import traceback
from pathlib import Path
from typing import Any

from loguru import logger

from infra.clock import now_ms
from infra.console import StreamSink
from infra.jsonlog import (
    LEVEL_NO,
    SECRETS,
    load_env_secrets,
    redact,
    register_secret,
    render_line,
)
from infra.log_writer import LineWriter, OffloadedJsonLog

JSON_FILE = "gridbot.jsonl"
FORWARD_LOGGER = "gridbot.forward"


def _render(record: dict[str, Any]) -> str:
    extra = dict(record["extra"])
    extra.pop("_json", None)
    exc = None
    if record["exception"] is not None:
        exc = "".join(traceback.format_exception(*record["exception"]))
    return render_line(record["time"].astimezone(_dt.timezone.utc), record["level"].name,
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
    load_env_secrets()
    logger.remove()
    logger.configure(patcher=_patch)
    if stderr:  # human lines: infra.console renders the record's JSON
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


def log_wanted(event: str, level: str = "INFO") -> bool:
    """Whether a ``log_event(event, level=level)`` would reach any sink: False only under a
    ``DirectJsonLog`` that writes no file, feeds no collector and does not keep ``event`` (a
    research backtest), so a caller can skip building the event's context."""
    w = _direct
    return True if w is None else w.wanted(event, level)


def log_event(event: str, msg: str = "", *, level: str = "INFO", **context: Any) -> None:
    """Log one structured event (``event`` plus full context fields)."""
    w = _direct
    if w is not None and w.log(event, msg or event, level, context):
        return
    logger.bind(event=event, **context).log(level, msg or event)


class DirectJsonLog(LineWriter):
    """The JSON log of a process that is its only writer (a backtest), without loguru on the
    hot path.

    ``log_event`` calls below ``direct_below`` (the stderr sink's level) are rendered here into
    exactly the line loguru's sink would write (same fields, order, masking, redaction) and
    appended to ``path``; everything else (records at the stderr level, direct ``logger`` calls)
    still goes through loguru, whose JSON sink is this object (``write``), so the file keeps
    one writer and the order of calls. Records at ``level`` or above go to the file; events
    named in ``keep`` (at INFO or above) are also kept in ``kept`` as parsed dicts; every
    record that reaches the file is also given, parsed, to ``collector.add`` (e.g. a
    ``report.collector.ReportCollector``, so the report never re-reads the file): see
    ``infra.log_writer.LineWriter``. Install with ``set_direct_log(obj)``; ``close()`` flushes
    the file."""

    def __init__(self, path: Path | None, *, level: str = "INFO", direct_below: str = "WARNING",
                 keep: frozenset[str] = frozenset(), collector: Any = None,
                 offload: bool = False) -> None:
        super().__init__(path, level_no=LEVEL_NO.get(level.upper(), 20), keep=keep,
                         collector=collector)
        self._below = LEVEL_NO.get(direct_below.upper(), 30)
        self._min = min(self._level, 20 if keep else self._level)
        self._pid = os.getpid()
        #: ``offload``: lines rendered by a child process (``infra.log_writer``); the
        #: kept events and the collector come back from it at ``close()``
        self._off: Any = None
        if offload:
            try:
                self._off = OffloadedJsonLog(
                    str(path) if path is not None else None, level_no=self._level,
                    keep=keep, collector=collector, pid=self._pid, secrets=sorted(SECRETS))
            except (OSError, pickle.PicklingError, AttributeError, TypeError):
                self._off = None  # no child process here (or a collector that cannot travel)
            else:
                if self._fh is not None:
                    self._fh.close()
                    self._fh = None

    @property
    def sink_level(self) -> int:
        """Lowest level this object wants from loguru."""
        return self._min

    def write(self, message: Any) -> None:
        """loguru sink: records that did not take the direct path."""
        rec = message.record
        if self._off is not None:
            self._off.line(rec["level"].no, rec["extra"].get("event", "LOG"),
                           rec["extra"]["_json"])
            return
        self.emit(rec["level"].no, rec["extra"].get("event", "LOG"), rec["extra"]["_json"])

    def wanted(self, event: str, level: str) -> bool:
        """See ``log_wanted``."""
        no = LEVEL_NO.get(level)
        if no is None or no >= self._below:
            return True
        if no < self._min:
            return False
        return (self._off is not None or self._fh is not None or self.collector is not None
                or event in self._keep)

    def log(self, event: str, msg: str, level: str, context: dict[str, Any]) -> bool:
        """Render and write one ``log_event``; False: not for the direct path (use loguru)."""
        no = LEVEL_NO.get(level)
        if no is None or no >= self._below:
            return False
        if no < self._min:
            return True
        off = self._off
        if off is not None:  # ``context`` is log_event's own kwargs dict: no copy needed
            symbol = context.pop("symbol", "")
            ts_ms = context.pop("ts_ms", None) or now_ms()
            off.record(no, level, event, symbol, ts_ms, redact(msg) if SECRETS else msg,
                       context)
            return True
        if self._fh is None and self.collector is None and event not in self._keep:
            return True  # no file, no collector: only the kept events are wanted (log_wanted)
        extra = dict(context)
        symbol = extra.pop("symbol", "")
        ts_ms = extra.pop("ts_ms", None)
        objs: list[dict[str, Any]] = []
        line = render_line(_dt.datetime.now(_dt.timezone.utc), level, event, symbol,
                           redact(msg), self._pid, ts_ms, extra, fast=True, obj_out=objs)
        # the rendered dict is what parsing the line gives back (no secret can be in it when
        # none is registered; otherwise re-read the redacted line)
        self.emit(no, event, line, objs[0] if objs and not SECRETS else None)
        return True

    def close(self) -> None:
        """Flush and close the file (idempotent); with ``offload``, wait for the child's lines
        and take back its kept events and collector (``LogWriterError`` if it failed)."""
        super().close()
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
    load_env_secrets()
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


__all__ = ["FORWARD_LOGGER", "JSON_FILE", "DirectJsonLog", "JsonLineHandler", "add_append_sink",
           "configure_actor_logging", "configure_logging", "log_event", "redact",
           "register_secret", "set_direct_log", "thespian_log_defs"]
