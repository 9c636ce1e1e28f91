"""Writing a process's own JSON log: ``LineWriter`` (the file, the kept events, the report
collector) and ``OffloadedJsonLog``, the same rendered by a child process on the other core.

Rendering a JSON line costs several times what pickling its raw fields does, and a backtest
logs two to three lines per bar. ``OffloadedJsonLog`` (used by ``DirectJsonLog(offload=True)``)
batches each record's raw fields (level, event, symbol, event time, wall time, message,
context) and pipes them, pickled, to a child interpreter running ``main()``, which renders every
line with the same ``infra.jsonlog.render_line`` (same fields, order, masking, redaction) into a
``LineWriter``: it appends the line to the file, keeps the requested events and feeds the
collector; at ``close()`` the child hands back the kept events and the collector.

The collector travels to the child pickled, its class by reference (module and name): the child
imports the class's module when it unpickles it, so this module knows no collector class (the
report's ``ReportCollector`` in a backtest).

Frames on the child's stdin and stdout: 4-byte big-endian length + pickle. The parent sends
``("init", options)``, then ``("batch", [pickled record, ...])`` frames, then ``("close",)``; the
child answers ``("done", kept, collector)`` or ``("error", text)``. A child that dies or answers
an error makes ``close()`` raise ``LogWriterError``: the run's log would be incomplete.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import pickle
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import IO, Any

from infra.jsonlog import SECRETS, register_secret, render_line

#: records per frame (a frame is ~200 KB of STRATEGY lines)
BATCH = 1024
_LEN = struct.Struct(">I")
_dumps = pickle.dumps
_time_ns = time.time_ns


class LogWriterError(Exception):
    """The log-writer child failed: the log file is incomplete."""


class LineWriter:
    """The JSON log file of a process that is its only writer, plus what a run wants back
    from it: rendered lines of level ``level_no`` or above are appended to ``path`` (None: no
    file) and given, parsed, to ``collector.add`` (e.g. a ``report.collector.ReportCollector``,
    so the report never re-reads the file); events named in ``keep`` (at INFO or above) are
    also kept in ``kept`` as parsed dicts. ``close()`` closes the file (idempotent)."""

    def __init__(self, path: Path | None, *, level_no: int = 20,
                 keep: frozenset[str] = frozenset(), collector: Any = None) -> None:
        self.path = path
        self._fh = open(path, "a", encoding="utf-8") if path is not None else None  # noqa: SIM115
        self._level = level_no
        self._keep = keep
        self.kept: list[dict[str, Any]] = []
        self.collector = collector

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

    def close(self) -> None:
        """Flush and close the file (idempotent)."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _pickle(obj: Any) -> bytes:
    return pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)


def _write_frame(fh: IO[bytes], data: bytes) -> None:
    """One frame: ``data`` (a pickle) after its length."""
    fh.write(_LEN.pack(len(data)))
    fh.write(data)


def _read_frame(fh: IO[bytes]) -> Any:
    head = fh.read(_LEN.size)
    if len(head) < _LEN.size:
        raise EOFError("log writer pipe closed")
    (n,) = _LEN.unpack(head)
    data = fh.read(n)
    if len(data) < n:
        raise EOFError("log writer pipe closed mid-frame")
    return pickle.loads(data)  # noqa: S301 - our own child/parent, over a private pipe


class OffloadedJsonLog:
    """Parent side: queue raw records, ship them in batches, collect the results.

    ``collector``: fed in the child (it must pickle: its class by reference) and handed back
    as ``self.collector`` at ``close()``; None: none. Raises ``OSError`` when no child can be
    started, ``pickle.PicklingError`` (or ``AttributeError``, ``TypeError``) when the
    collector cannot travel; nothing is started then."""

    def __init__(self, path: str | None, *, level_no: int, keep: frozenset[str],
                 collector: Any, pid: int, secrets: list[str]) -> None:
        init = _pickle(("init", {"path": path, "level_no": level_no, "keep": keep,
                                 "collector": collector, "pid": pid, "secrets": secrets}))
        root = str(Path(__file__).resolve().parents[1])
        self._proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); "
             "from infra.log_writer import main; main()", root],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._in = self._proc.stdin
        self._out = self._proc.stdout
        # each record is pickled when it is logged (a context dict changed afterwards cannot
        # change the line)
        self._recs: list[bytes] = []
        self.kept: list[dict[str, Any]] = []
        self.collector: Any = None
        self._closed = False
        self._failed = ""
        self._send(init)

    def _send(self, data: bytes) -> None:
        """Write one frame (``data``: a pickle)."""
        try:
            _write_frame(self._in, data)
        except (BrokenPipeError, OSError) as e:
            why = str(e)
            try:  # the child reports its error before it exits
                ans = _read_frame(self._out)
                if ans[0] == "error":
                    why = ans[1]
            except (EOFError, OSError, pickle.UnpicklingError):
                pass
            # the run goes on (raising inside an actor would only make thespian retry the
            # message); close() reports the failure
            self._failed = f"log writer process died: {why}"
            self._recs = []
            self._proc.kill()
            self._proc.wait()

    def record(self, no: int, level: str, event: str, symbol: str, ts_ms: int, msg: str,
               extra: dict[str, Any]) -> None:
        """One ``log_event`` (``extra``: the context without symbol/ts_ms)."""
        if self._failed:
            return
        r = self._recs
        r.append(_dumps((no, level, event, symbol, ts_ms, _time_ns(), msg, extra), 5))
        if len(r) >= BATCH:
            self.flush()

    def line(self, no: int, event: str, line: str) -> None:
        """A line rendered elsewhere (loguru's path), kept in call order."""
        if self._failed:
            return
        self._recs.append(_dumps((no, None, event, line), 5))
        if len(self._recs) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Ship the queued records."""
        if self._recs and not self._failed:
            recs, self._recs = self._recs, []
            self._send(_pickle(("batch", recs)))

    def close(self) -> None:
        """Finish the file and take back the kept events and the collector (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._failed:
            for fh in (self._in, self._out):
                try:
                    fh.close()
                except OSError:
                    pass
            raise LogWriterError(self._failed)
        try:
            self.flush()
            if self._failed:
                raise LogWriterError(self._failed)
            self._send(_pickle(("close",)))
            self._in.close()
            # tens of thousands of small dicts come back: the cyclic GC would walk the
            # growing heap again and again while they are built (half the time)
            gc_was = gc.isenabled()
            gc.disable()
            try:
                ans = _read_frame(self._out)
            finally:
                if gc_was:
                    gc.enable()
        except (EOFError, LogWriterError, OSError) as e:
            self._proc.kill()
            self._proc.wait()
            raise LogWriterError(f"log writer process failed: {e}") from e
        finally:
            self._out.close()
        self._proc.wait()
        if ans[0] != "done":
            raise LogWriterError(f"log writer process failed: {ans[1]}")
        self.kept, self.collector = ans[1], ans[2]

    def abort(self) -> None:
        """Stop the child without waiting for its results."""
        if not self._closed:
            self._closed = True
            self._proc.kill()
            self._proc.wait()


def _child(inp: IO[bytes], out: IO[bytes]) -> None:
    kind, opts = _read_frame(inp)
    assert kind == "init"
    for s in opts["secrets"]:
        register_secret(s)
    pid = opts["pid"]
    utc = _dt.timezone.utc
    line_fn = render_line
    w = None
    try:
        # the parent's DirectJsonLog, minus the rendering path: the same file, collector, kept
        # events
        w = LineWriter(Path(opts["path"]) if opts["path"] else None, level_no=opts["level_no"],
                       keep=opts["keep"], collector=opts["collector"])
        while True:
            frame = _read_frame(inp)
            if frame[0] == "close":
                break
            for raw in frame[1]:
                rec = pickle.loads(raw)  # noqa: S301 - from our parent
                if rec[1] is None:  # a pre-rendered line
                    no, _, event, line = rec
                    w.emit(no, event, line)
                else:
                    no, level, event, symbol, ts_ms, wall_ns, msg, extra = rec
                    objs: list[dict[str, Any]] = []
                    line = line_fn(_dt.datetime.fromtimestamp(wall_ns / 1e9, utc), level, event,
                                   symbol, msg, pid, ts_ms, extra, fast=True, obj_out=objs)
                    w.emit(no, event, line, objs[0] if objs and not SECRETS else None)
        w.close()
        _write_frame(out, _pickle(("done", w.kept, w.collector)))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the run
        if w is not None:
            w.close()
        _write_frame(out, _pickle(("error",
                                   f"{type(e).__name__}: {e}\n{traceback.format_exc()}")))
    out.flush()


def main() -> None:
    """Child entry point."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:  # the replay in the parent comes first; this child has plenty of slack
        os.nice(3)
    except OSError:
        pass
    _child(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
