"""Smoke test of ``bench/latency_bench.py``: a tiny run prints one valid JSON line, every
measured event produced an order request through the real pipeline, no process is left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_latency_bench_prints_one_json_line_and_cleans_up() -> None:
    env = {k: v for k, v in os.environ.items() if k != "GRIDBOT_ACTOR_CLASSES"}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "latency_bench.py"), "--n", "5",
                          "--real-bars", "5", "--spacing-ms", "30", "40"],
                         capture_output=True, text=True, timeout=90, cwd=str(ROOT), env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1
    out = json.loads(lines[0])
    assert out["bench"] == "latency" and out["hops"] == 6 and out["persist"] is True
    pipe = out["pipeline"]
    assert out["n"] == pipe["n"] == pipe["events"] == pipe["answered_events"] == 5
    assert pipe["unmatched"] == 0 and pipe["processes_left"] == 0
    assert 0 < pipe["min_ms"] <= out["p50_ms"] <= out["p99_ms"] <= out["max_ms"]
    assert pipe["by_request"] == {"SendOrder": {"n": 5, "p50_ms": out["p50_ms"],
                                                "max_ms": out["max_ms"]}}
    real = out["real_strategy"]
    assert real["bars"] == 5 and real["processes_left"] == 0 and "error" not in real
