"""Report charts (``report.charts``): legends outside the data, and the worker pool (same charts
as in-process, valid PNGs, a dead or late worker costs no chart, no process left behind)."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from report import charts as rc
from report.analysis import analyse
from report.build import build_report
from report.charts import ChartPool, render_charts
from tests.report.png_check import is_png

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
T0 = 1_735_689_600_000
MIN = 60_000
NAMES = {"equity.png", "drawdown.png", "symbol_pnl.png", "price_BTCUSDT.png",
         "price_ETHUSDT.png", "conviction_BTCUSDT.png", "conviction_ETHUSDT.png"}


@needs_mpl
def test_legends_sit_above_the_data() -> None:
    """Legends are drawn outside the plot area (a legend inside hides fills and lines)."""
    jobs = dict(rc.chart_jobs(analyse(_events(days=2))[1]))
    for name in ("equity.png", "price_BTCUSDT.png", "conviction_BTCUSDT.png",
                 "symbol_pnl.png"):
        fig = rc.figure(jobs[name])
        fig.canvas.draw()
        ax = fig.axes[0]
        legend = ax.get_legend()
        assert legend is not None, name
        assert legend.get_window_extent().y0 >= ax.get_window_extent().y1 - 1, name


# -- pool -------------------------------------------------------------------------------------
def _events(days: int = 6, seed: int = 5) -> list[dict[str, Any]]:
    """Minute STRATEGY closes for two symbols, fills every 30 min, EQUITY every 10 min."""
    rng = random.Random(seed)
    px = {"BTCUSDT": 90_000.0, "ETHUSDT": 3_300.0}
    eq, n, out = 10_000.0, 0, []
    for m in range(days * 1440):
        t = T0 + m * MIN
        for s in px:
            px[s] *= math.exp(rng.gauss(0, 0.001))
            out.append({"ts_ms": t, "event": "STRATEGY", "symbol": s, "close": px[s],
                        "L": rng.random(), "S": rng.random()})
            if m % 30 == 0:
                n += 1
                out.append({"ts_ms": t, "event": "ORDER_FILLED", "symbol": s,
                            "client_order_id": f"c{n}", "side": "BUY" if n % 2 else "SELL",
                            "qty": "0.01", "price": f"{px[s]:.2f}", "fee": "0.1",
                            "fee_asset": "USDT", "maker": True})
        if m % 10 == 0:
            eq += rng.gauss(0, 5)
            out.append({"ts_ms": t, "event": "EQUITY", "equity": f"{eq:.2f}", "leverage": 1.0,
                        "positions": {s: {"unrealized_pnl": "0"} for s in px}})
    return out


@pytest.fixture(scope="module")
def chart() -> dict[str, Any]:
    return analyse(_events())[1]


def _gone(pid: int) -> bool:
    """The process has exited and was reaped (not a zombie, not running)."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child any more: reaped
    else:
        return False
    return not Path(f"/proc/{pid}").exists()


@needs_mpl
def test_pool_renders_the_same_charts_as_in_process(chart: dict[str, Any]) -> None:
    local = render_charts(chart)
    assert set(local) == NAMES
    with ChartPool(workers=2) as pool:
        pids = pool.pids
        warnings: list[str] = []
        remote = pool.render(chart, warnings)
        again = pool.render(chart, warnings)  # a pool serves several reports
    assert warnings == []
    assert set(remote) == set(again) == NAMES
    for name in NAMES:
        assert is_png(remote[name]), name
        assert remote[name] == local[name] == again[name], name  # same code, same pixels
    assert len(pids) == 2 and all(_gone(p) for p in pids)


@needs_mpl
def test_worker_dying_mid_render_loses_no_chart(chart: dict[str, Any],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = rc.chart_jobs

    def with_fault(c: Any) -> list[tuple[str, dict[str, Any]]]:
        jobs = real(c)
        jobs[0][1]["_die"] = True  # the worker that receives the first chart exits at once
        return jobs

    monkeypatch.setattr(rc, "chart_jobs", with_fault)
    with ChartPool(workers=2) as pool:
        pids = pool.pids
        warnings: list[str] = []
        images = pool.render(chart, warnings)
    assert set(images) == NAMES and all(is_png(b) for b in images.values())
    assert any("exited (code 3)" in w for w in warnings), warnings
    assert all(_gone(p) for p in pids)


@needs_mpl
def test_killed_workers_and_timeouts_fall_back_in_process(chart: dict[str, Any]) -> None:
    pool = ChartPool(workers=2)
    for pid in pool.pids:
        os.kill(pid, signal.SIGKILL)
    warnings: list[str] = []
    images = pool.render(chart, warnings)
    assert set(images) == NAMES
    assert sum("exited" in w for w in warnings) == 2
    pool.close()
    pool.close()  # idempotent
    assert all(_gone(p) for p in pool.pids)

    slow = ChartPool(workers=1, timeout=0.01)  # far too short for a worker to even start
    warnings = []
    t = time.monotonic()
    images = slow.render(chart, warnings)
    assert set(images) == NAMES
    assert any("timed out" in w for w in warnings), warnings
    assert time.monotonic() - t < 60
    assert all(_gone(p) for p in slow.pids)  # the timeout reaped the workers
    slow.close()


@needs_mpl
def test_pool_that_cannot_start_draws_in_process(chart: dict[str, Any]) -> None:
    with ChartPool(method="no-such-method") as pool:
        warnings: list[str] = []
        images = pool.render(chart, warnings)
    assert set(images) == NAMES
    assert any("unavailable" in w for w in warnings)


@needs_mpl
def test_build_report_with_a_pool_writes_every_chart(tmp_path: Path) -> None:
    with ChartPool(workers=1) as pool:
        rep = build_report(tmp_path / "a", events=_events(days=2), pool=pool)
    plain = build_report(tmp_path / "b", events=_events(days=2))
    assert rep == plain
    assert NAMES <= set(rep["files"])
    for name in NAMES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "report.html").read_text() == (
        tmp_path / "b" / "report.html").read_text()
