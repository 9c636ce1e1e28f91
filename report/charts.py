"""The report's PNG charts, drawn in-process or by a pool of worker processes that import
matplotlib ahead of time.

* ``draw(spec)``: one chart spec (``report.chart_specs.chart_jobs``) -> PNG bytes (matplotlib,
  Agg, fixed margins: no tight_layout).
* ``render_charts(chart)``: every chart of ``report.analysis.analyse``'s chart data, in this
  process.
* ``ChartPool``: worker processes (fresh interpreters: no fork of a threaded caller) started
  early (e.g. before a backtest's replay) so matplotlib is imported on another core while the
  caller works; ``render(chart)`` splits the charts over them, with a deadline and an
  in-process fallback for charts a dead, failing or late worker did not deliver. ``close()``
  always reaps the workers.

matplotlib is imported inside the drawing functions (and at a worker's start): importing this
module does not import it.
"""

from __future__ import annotations

import io
import multiprocessing as mp
import os
import signal
import socket
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import numpy as np

from report.chart_specs import chart_jobs

DPI = 90
# fixed margins in inches (tight_layout measured every text twice: ~40 % of a chart's time);
# the top margin holds the title (left) and the legend (right), outside the data
_MARGINS = {"left": 0.8, "right": 0.15, "top": 0.45, "bottom": 0.55}


def _dates(t: np.ndarray) -> np.ndarray:
    return np.asarray(t, dtype=np.int64).astype("datetime64[ms]")


def draw(spec: Mapping[str, Any]) -> bytes:
    """One chart spec (from ``chart_jobs``) as PNG bytes. Needs matplotlib; selects Agg."""
    buf = io.BytesIO()
    figure(spec).savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def figure(spec: Mapping[str, Any]) -> Any:
    """One chart spec as a matplotlib ``Figure`` (Agg; ``draw`` saves it as PNG).

    A spec is ``{"size": (w, h), "panels": [panel, ...]}``, panels stacked on one time axis;
    a panel has ``lines``, ``scatter``, ``bands``, ``bars``, ``hlines``, ``title``,
    ``ylabel``, ``ylim``, ``legend`` (drawn above the panel, right of its title), ``ratio``
    (its share of the height)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    w, h = spec["size"]
    panels = spec.get("panels") or [spec]
    fig = Figure(figsize=(w, h), dpi=DPI)  # no pyplot: no global figure registry
    fig.subplots_adjust(left=min(0.3, _MARGINS["left"] / w),
                        right=max(0.7, 1 - _MARGINS["right"] / w),
                        top=max(0.6, 1 - _MARGINS["top"] / h),
                        bottom=min(0.3, _MARGINS["bottom"] / h), hspace=0.08)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [p.get("ratio", 1) for p in panels]})
    for ax, panel in zip(axes[:, 0], panels, strict=True):
        _panel(ax, panel, FuncFormatter)
    loc = mdates.AutoDateLocator()
    last = axes[-1, 0]
    last.xaxis.set_major_locator(loc)
    last.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    return fig


def _panel(ax: Any, p: Mapping[str, Any], formatter: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    for b in p.get("bands", ()):
        if len(b["t"]):
            x = _dates(b["t"])
            ax.fill_between(x, b["lo"], b["hi"], color=b["color"], alpha=b.get("alpha", 0.2),
                            lw=0)
            if b.get("edge"):  # overlapping bands stay apart by their outlines
                for y in (b["lo"], b["hi"]):
                    ax.plot(x, y, color=b["color"], lw=0.5, alpha=0.6)
    for ln in p.get("lines", ()):
        x, y = _dates(ln["t"]), ln["v"]
        if ln.get("fill"):
            ax.fill_between(x, y, 0, color=ln.get("color"), alpha=0.4, step="post", lw=0)
        ax.plot(x, y, color=ln.get("color"), lw=ln.get("lw", 1), label=ln.get("label"),
                drawstyle="steps-post" if ln.get("steps") else "default",
                zorder=ln.get("z", 2))
    for sc in p.get("scatter", ()):
        ax.scatter(_dates(sc["t"]), sc["v"], marker=sc["marker"], s=sc.get("size", 14),
                   color=sc["color"], label=sc["label"], zorder=3, linewidths=0, alpha=0.75)
    for bar in p.get("bars", ()):  # counts per bin: edges t, value v[i] from t[i] to t[i+1]
        ax.fill_between(_dates(bar["t"]), bar["v"], 0, step="post", color=bar["color"],
                        alpha=0.8, lw=0)
    for y, col, lw, ls in p.get("hlines", ()):
        ax.axhline(y, color=col, lw=lw, ls=ls)
    if p.get("ylim"):
        ax.set_ylim(*p["ylim"])
    if p.get("abs_ticks"):  # sells are drawn below zero but are counts
        ax.yaxis.set_major_locator(MaxNLocator(nbins=4, integer=True, symmetric=True))
        ax.yaxis.set_major_formatter(formatter(lambda y, _pos: f"{abs(y):g}"))
    else:
        ax.ticklabel_format(axis="y", style="plain", useOffset=False)
    if p.get("title"):
        ax.set_title(p["title"], loc="left", fontsize=11)
    if p.get("ylabel"):
        ax.set_ylabel(p["ylabel"])
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if p.get("legend") and handles:
        ax.legend(handles, labels, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncol=len(
            handles), fontsize=9, frameon=False, borderaxespad=0.1, handlelength=1.5,
            markerscale=1.3)


def render_charts(chart: Mapping[str, Any],
                  warnings: list[str] | None = None) -> dict[str, bytes]:
    """Every chart of ``chart`` as PNG bytes by file name, drawn in this process. A chart that
    fails is left out with a warning (in ``warnings`` when given, else raised)."""
    return _draw_all(chart_jobs(chart), warnings)


def _draw_all(jobs: Sequence[tuple[str, Mapping[str, Any]]],
              warnings: list[str] | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for name, spec in jobs:
        try:
            out[name] = draw(spec)
        except Exception as e:  # noqa: BLE001 - one bad chart must not lose the report
            if warnings is None:
                raise
            warnings.append(f"chart {name} failed: {type(e).__name__}: {e}")
    return out


# -- worker pool ------------------------------------------------------------------------------
def _worker_main(conn: Connection) -> None:
    """A chart worker: import matplotlib, say ready, then draw (name, spec) jobs until None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when workers stop
    try:  # started early (a backtest's replay is running): yield the CPU to the caller
        os.nice(5)
    except OSError:
        pass
    try:
        import matplotlib

        matplotlib.use("Agg")
        draw({"size": (2, 1), "panels": [{"lines": [  # warm fonts, text layout, PNG writer
            {"t": np.array([0, 86_400_000]), "v": np.array([0.0, 1.0])}]}]})
        conn.send(("ready", None, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which falls back
        conn.send(("failed", None, f"{type(e).__name__}: {e}"))
        return
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        name, spec = job
        if spec.get("_die"):  # fault injection for tests: a worker dying mid-render
            os._exit(3)
        try:
            conn.send((name, draw(spec), None))
        except Exception as e:  # noqa: BLE001
            conn.send((name, None, f"{type(e).__name__}: {e}"))


def _worker_exec(fd: int) -> None:
    """Entry point of an ``exec`` worker: its end of the socket pair is ``fd``."""
    _worker_main(Connection(fd))


class _Worker:
    """One worker process and the parent's end of its duplex channel.

    ``exec`` (the default): a fresh ``python -c`` that imports only this module (a
    ``multiprocessing`` spawn/forkserver child also re-imports the caller's ``__main__``
    script, which runs an unguarded script again); ``spawn``/``forkserver``: a
    ``multiprocessing`` process of that start method."""

    def __init__(self, method: str) -> None:
        self.ready = False
        self.job: str | None = None
        self.alive = True
        self.proc: Any
        if method == "exec":
            ours, theirs = socket.socketpair()
            root = str(Path(__file__).resolve().parent.parent)
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(
                x for x in (root, env.get("PYTHONPATH", "")) if x)
            code = (f"from report.charts import _worker_exec; "
                    f"_worker_exec({theirs.fileno()})")
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-c", code], pass_fds=(theirs.fileno(),), env=env,
                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
            finally:
                theirs.close()
            self.conn = Connection(ours.detach())
        else:
            ctx = mp.get_context(method)
            self.conn, child = ctx.Pipe()
            self.proc = ctx.Process(target=_worker_main, args=(child,), daemon=True,
                                    name="gridbot-chart-worker")
            self.proc.start()
            child.close()

    @property
    def pid(self) -> int | None:
        return self.proc.pid

    @property
    def exitcode(self) -> int | None:
        """None while the process runs (reaps it once it has exited)."""
        if isinstance(self.proc, subprocess.Popen):
            return self.proc.poll()
        return self.proc.exitcode

    def join(self, timeout: float | None) -> None:
        if isinstance(self.proc, subprocess.Popen):
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        else:
            self.proc.join(timeout)

    def terminate(self) -> None:
        if self.exitcode is None:
            self.proc.terminate()

    def kill(self) -> None:
        if self.exitcode is None:
            self.proc.kill()


def _reap(workers: list[_Worker]) -> None:
    """Stop every worker: ask, then terminate, then kill; always wait for it (no zombies)."""
    for w in workers:
        if w.alive:
            try:
                w.conn.send(None)
            except (OSError, ValueError):
                pass
    deadline = time.monotonic() + 1.0
    for w in workers:
        w.join(max(0.0, deadline - time.monotonic()))
        if w.exitcode is None:
            w.terminate()
            w.join(1.0)
        if w.exitcode is None:
            w.kill()
            w.join(None)
        w.alive = False
        w.conn.close()


class ChartPool:
    """Worker processes that draw the report's charts (see the module docstring).

    ``ChartPool(workers=2, method="spawn", timeout=60.0)`` starts the workers at once and
    returns (they import matplotlib in the background). Use as a context manager or call
    ``close()``; a pool that could not start renders in-process."""

    def __init__(self, workers: int | None = None, *, method: str = "exec",
                 timeout: float = 60.0) -> None:
        n = workers if workers is not None else min(2, os.cpu_count() or 1)
        self.timeout = timeout
        self.method = method
        self.start_error: str | None = None
        self._workers: list[_Worker] = []
        try:
            for _ in range(max(1, n)):
                self._workers.append(_Worker(method))
        except Exception as e:  # noqa: BLE001 - no processes here (sandbox, limits): in-process
            self.start_error = f"{type(e).__name__}: {e}"
        self._finalizer = weakref.finalize(self, _reap, self._workers)

    @property
    def pids(self) -> list[int]:
        """The worker processes' ids (for tests and diagnostics)."""
        return [w.pid for w in self._workers if w.pid is not None]

    def __enter__(self) -> ChartPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop and reap every worker (idempotent)."""
        self._finalizer()

    def render(self, chart: Mapping[str, Any],
               warnings: list[str] | None = None) -> dict[str, bytes]:
        """Every chart of ``chart`` (the chart data of ``report.analysis.analyse``) as PNG bytes by
        file name, in ``chart_jobs`` order. Charts the workers do not deliver within
        ``timeout`` seconds (dead, failing or late worker, pool closed) are drawn in this
        process; problems are appended to ``warnings`` (raised when None and the in-process
        fallback fails too)."""
        jobs = chart_jobs(chart)
        got = self._render_jobs(jobs, warnings)
        missing = [(n, s) for n, s in jobs if n not in got]
        if missing:
            got.update(_draw_all(missing, warnings))
        return {n: got[n] for n, _ in jobs if n in got}

    def _render_jobs(self, jobs: list[tuple[str, dict[str, Any]]],
                     warnings: list[str] | None) -> dict[str, bytes]:
        notes = warnings if warnings is not None else []
        if self.start_error:
            notes.append(f"chart workers unavailable ({self.start_error}); charts drawn "
                         "in-process")
            self.start_error = None
        live = [w for w in self._workers if w.alive]
        if not live:
            return {}
        specs = dict(jobs)
        queue = [n for n, _ in jobs]
        got: dict[str, bytes] = {}
        deadline = time.monotonic() + self.timeout

        def assign(w: _Worker) -> None:
            while queue and w.alive and w.ready and w.job is None:
                name = queue.pop(0)
                try:
                    w.conn.send((name, specs[name]))
                    w.job = name
                except (OSError, ValueError):
                    queue.insert(0, name)
                    self._lost(w, notes, "could not be sent a job")

        for w in live:
            assign(w)
        while any(w.alive for w in live) and (queue or any(w.job for w in live)):
            left = deadline - time.monotonic()
            if left <= 0:
                pending = [w.job for w in live if w.job] + queue
                notes.append(f"chart workers timed out after {self.timeout:g} s; "
                             f"{len(pending)} chart(s) drawn in-process")
                self.close()
                return got
            conns = [w.conn for w in live if w.alive]
            for c in wait(conns, min(left, 0.5)):
                w = next((x for x in live if c is x.conn), None)
                if w is None or not w.alive:
                    continue
                try:
                    kind, png, err = w.conn.recv()
                except (EOFError, OSError):  # its end of the channel closed: it died
                    kind = None
                if kind is None:
                    w.join(1.0)
                    self._lost(w, notes, f"exited (code {w.exitcode})")
                    if w.job:
                        queue.insert(0, w.job)  # redraw elsewhere (or in-process)
                        w.job = None
                    for x in live:
                        assign(x)
                    continue
                if kind == "ready":
                    w.ready = True
                elif kind == "failed":
                    self._lost(w, notes, f"could not start: {err}")
                else:
                    w.job = None
                    if png is not None:
                        got[kind] = png
                    else:
                        notes.append(f"chart {kind} failed in a worker ({err}); retried "
                                     "in-process")
                for x in live:
                    assign(x)
        return got

    def _lost(self, w: _Worker, notes: list[str], why: str) -> None:
        w.alive = False
        notes.append(f"chart worker {w.pid} {why}; its charts are drawn elsewhere")
        w.kill()
        w.join(1.0)


__all__ = ["DPI", "ChartPool", "draw", "figure", "render_charts"]
