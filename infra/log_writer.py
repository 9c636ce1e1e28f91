"""A backtest's JSON log rendered by a child process (the other core).

Rendering a JSON line costs several times what pickling its raw fields does, and a backtest
logs two to three lines per bar. ``OffloadedJsonLog`` (used by ``DirectJsonLog(offload=True)``)
batches each record's raw fields (level, event, symbol, event time, wall time, message,
context) and pipes them, pickled, to a child interpreter running ``main()``, which renders every
line with the same ``infra.logs._line`` (same fields, order, masking, redaction), appends
it to the file, keeps the requested events and feeds the report collector; at ``close()`` the
child hands back the kept events and the collector.

Frames on the child's stdin and stdout: 4-byte big-endian length + pickle. The parent sends
``("init", options)``, then ``("batch", [pickled record, ...])`` frames, then ``("close",)``; the child
answers ``("done", kept, collector)`` or ``("error", text)``. A child that dies or answers an
error makes ``close()`` raise ``LogWriterError``: the run's log would be incomplete.
"""

from __future__ import annotations

import datetime as _dt
import gc
import os
import pickle
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

#: records per frame (a frame is ~200 KB of STRATEGY lines)
BATCH = 1024
_LEN = struct.Struct(">I")
_dumps = pickle.dumps
_time_ns = time.time_ns


class LogWriterError(Exception):
    """The log-writer child failed: the log file is incomplete."""


def _write_frame(fh: IO[bytes], obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
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
    """Parent side: queue raw records, ship them in batches, collect the results."""

    def __init__(self, path: str | None, *, level_no: int, keep: frozenset[str],
                 collector: bool, pid: int, secrets: list[str]) -> None:
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
        self._send(("init", {"path": path, "level_no": level_no, "keep": keep,
                             "collector": collector, "pid": pid, "secrets": secrets}))

    def _send(self, obj: Any) -> None:
        try:
            _write_frame(self._in, obj)
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
            self._send(("batch", recs))

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
            self._send(("close",))
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
    from infra import logs

    kind, opts = _read_frame(inp)
    assert kind == "init"
    for s in opts["secrets"]:
        logs.register_secret(s)
    level_no, pid = opts["level_no"], opts["pid"]
    collector = None
    if opts["collector"]:
        from report.build import ReportCollector

        collector = ReportCollector()
    level = next((k for k, v in logs._LEVEL_NO.items() if v == level_no), "INFO")
    utc = _dt.timezone.utc
    line_fn = logs._line
    w = None
    try:
        # the parent's DirectJsonLog, minus the offload: the same file, collector, kept events
        w = logs.DirectJsonLog(Path(opts["path"]) if opts["path"] else None, level=level,
                               keep=opts["keep"], collector=collector)
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
                    w.emit(no, event, line, objs[0] if objs and not logs._secrets else None)
        w.close()
        _write_frame(out, ("done", w.kept, w.collector))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which fails the run
        import traceback

        if w is not None:
            w.close()
        _write_frame(out, ("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))
    out.flush()


def main() -> None:
    """Child entry point."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    try:  # the replay in the parent comes first; this child has plenty of slack
        os.nice(3)
    except OSError:
        pass
    _child(sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
