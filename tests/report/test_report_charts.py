"""Report charts: the min/max envelope, and the worker pool (same charts as in-process, valid
PNGs, a dead or late worker costs no chart, no process left behind)."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from report import charts as rc
from report.build import analyse, build_report
from report.charts import ChartPool, envelope, render_charts
from tests.report.png_check import is_png

HAVE_MPL = importlib.util.find_spec("matplotlib") is not None
needs_mpl = pytest.mark.skipif(not HAVE_MPL, reason="matplotlib not installed")
T0 = 1_735_689_600_000
MIN = 60_000
NAMES = {"equity.png", "drawdown.png", "symbol_pnl.png", "price_BTCUSDT.png",
         "price_ETHUSDT.png", "conviction_BTCUSDT.png", "conviction_ETHUSDT.png"}


# -- envelope --------------------------------------------------------------------------------
def test_envelope_keeps_spikes_ends_and_order() -> None:
    rng = np.random.default_rng(7)
    n = 100_003
    t = T0 + np.arange(n, dtype=np.int64) * MIN
    v = np.cumsum(rng.normal(0, 1, n))
    v[31_337] = v.max() + 500  # one-sample spikes, both ways
    v[77_777] = v.min() - 500
    et, ev = envelope(t, v, 2000)
    assert len(et) <= 2002
    assert np.all(np.diff(et) > 0)
    assert et[0] == t[0] and et[-1] == t[-1] and ev[-1] == v[-1]
    assert ev.max() == v.max() and ev.min() == v.min()
    assert t[31_337] in et and t[77_777] in et
    # every kept point is a real sample
    idx = (et - T0) // MIN
    assert np.array_equal(v[idx], ev)
    # every bucket's extremes survive: the envelope's range covers each stretch of the series
    for lo in range(0, n - 1000, 9_973):
        seg = slice(lo, lo + 1000)
        inside = (et >= t[seg][0]) & (et <= t[seg][-1])
        assert ev[inside].max() >= np.sort(v[seg])[-100]


def test_envelope_short_series_unchanged_and_nan_safe() -> None:
    t, v = [1, 2, 3], [3.0, 1.0, 2.0]
    et, ev = envelope(t, v, 2000)
    assert list(et) == t and list(ev) == v
    vv = np.full(10_000, np.nan)
    vv[5000] = 4.0
    et, ev = envelope(np.arange(10_000), vv, 100)
    assert 5000 in et and len(et) <= 102


def test_envelope_keeps_the_level_a_step_ends_on() -> None:
    """A step curve (equity logged on change) keeps each bucket's last value: a drop to a new
    level followed by a quiet stretch (a halted account) is not drawn as a ramp from the
    bucket's extreme to the next sample, weeks later."""
    v = np.r_[np.linspace(0, -9, 870), -100.0, np.full(129, -50.0)]
    t = np.r_[np.arange(900), 10**6 + np.arange(100)]  # quiet after sample 899
    et, ev = envelope(t, v, 40)
    before = et < 900
    assert ev[before][-1] == -50.0 and et[before][-1] == 899
    assert -100.0 in ev


def test_rolling_band_matches_a_brute_force_window() -> None:
    rng = np.random.default_rng(3)
    t = np.sort(rng.choice(np.arange(0, 50 * 3_600_000, 60_000), 2000, replace=False))
    v = rng.random(2000)
    v[::97] = np.nan  # gaps in the signal are skipped
    at, mean, lo, hi = rc.rolling_band(t, v, 6 * 3_600_000, points=50)
    tf = t[np.isfinite(v)]
    assert len(at) == 50 and at[0] == tf[0] and at[-1] == tf[-1]
    for j in (0, 17, 49):
        w = (t >= at[j] - 3 * 3_600_000) & (t <= at[j] + 3 * 3_600_000) & np.isfinite(v)
        assert mean[j] == pytest.approx(v[w].mean())
        assert (lo[j], hi[j]) == pytest.approx(tuple(np.quantile(v[w], [0.1, 0.9])))
    assert rc.rolling_band([], [], 1000)[0].size == 0
    # windows longer than max_window: quantiles from every k-th sample, the mean from all
    at2, mean2, lo2, hi2 = rc.rolling_band(t, v, 6 * 3_600_000, points=50, max_window=16)
    assert np.array_equal(at2, at) and mean2 == pytest.approx(mean)
    assert np.all(lo2 <= hi2) and np.all((lo2 >= 0) & (hi2 <= 1))


def test_bin_width_and_labels() -> None:
    h, d = 3_600_000, 86_400_000
    assert rc.bin_width(3 * d, 150) == h and rc.bin_width(90 * d, 150) == d
    assert rc.bin_width(365 * d, 150) == 4 * d and rc.bin_width(10**13, 10) == 28 * d
    assert (rc.step_label(6 * h), rc.step_label(d), rc.step_label(14 * d)) == ("6 h", "1 d",
                                                                               "2 w")


def test_price_chart_thins_markers_and_counts_every_fill() -> None:
    n = 3000
    t = T0 + np.arange(n, dtype=np.int64) * 5 * MIN
    fills = [(int(t[i]), "BUY" if i % 10 else "SELL", 100.0 + i % 7) for i in range(n)]
    spec = rc._price_job("BTCUSDT", t, np.full(n, 100.0), fills, "USDT")
    price, counts = spec["panels"]
    buys, sells = price["scatter"]
    assert len(buys["t"]) <= rc.MAX_MARKERS and len(sells["t"]) <= rc.MAX_MARKERS
    assert buys["label"] == "buys (2,700, 1 in 7 shown)" and sells["label"] == "sells (300)"
    up, down = counts["bars"]
    # every fill in the bins (the last value repeats to close the step outline)
    assert up["v"][:-1].sum() == 2700 and down["v"][:-1].sum() == -300
    assert len(up["t"]) == len(up["v"]) and np.all(np.diff(up["t"]) > 0)


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
