"""Run every benchmark in sequence and print their JSON lines (one per bench).

Each bench runs in its own Python process (``python -m bench.<name> <args>``) so that one's
imports, actor systems and caches cannot skew the next. Every output line is one JSON object
``{"bench": name, "wall_s": ..., "rc": ..., **figures}`` (the bench's own JSON line), or
``{"bench": name, "error": ...}`` when it failed or printed no JSON.

Run: ``python -m bench`` (or ``python bench/run_all.py``) ``[--quick] [--only a,b] [--skip c]
[--timeout S]``. ``--quick`` passes small sizes (about a minute for everything on 2 cores);
the default sizes are the ones docs/PERFORMANCE.md reports.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: name -> (full-size args, quick args); run in this order
BENCHES: dict[str, tuple[list[str], list[str]]] = {
    "strategy_bench": ([], ["--bars", "5000"]),
    "engine_bench": ([], ["--bars", "20000", "--grid-bars", "5000", "--orders", "2000"]),
    "marketdata_bench": ([], []),
    "backtest_bench": ([], ["--days", "1"]),
    "sim_bench": ([], ["--orders", "60", "--clients", "2", "--bars", "2000",
                       "--fanout-bars", "200"]),
    "latency_bench": ([], ["--n", "60", "--real-bars", "30"]),
    "restart_bench": ([], ["--kills", "2", "--symbols", "1"]),
}


def _last_json(text: str) -> dict | None:
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                val = json.loads(line)
            except ValueError:
                continue
            return val if isinstance(val, dict) else {"value": val}
    return None


def run_one(name: str, args: list[str], timeout: float) -> dict:
    """Run ``bench.<name>`` with ``args``; its JSON figures plus ``bench``, ``rc``, ``wall_s``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-m", f"bench.{name}", *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"bench": name, "error": f"timeout after {timeout:.0f} s"}
    wall = round(time.perf_counter() - t0, 2)
    figures = _last_json(p.stdout)
    if figures is None:
        tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
        return {"bench": name, "rc": p.returncode, "wall_s": wall,
                "error": " | ".join(tail) or "no JSON output"}
    out = {"bench": name, "rc": p.returncode, "wall_s": wall}
    out.update({k: v for k, v in figures.items() if k != "bench"})
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the selected benches; 0 when every one printed its figures, else 1."""
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    ap.add_argument("--only", default="", help="comma-separated bench names")
    ap.add_argument("--skip", default="", help="comma-separated bench names")
    ap.add_argument("--timeout", type=float, default=1800.0, help="per bench, seconds")
    ap.add_argument("--list", action="store_true", help="print the bench names and exit")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(BENCHES))
        return 0
    only = {s.strip() for s in a.only.split(",") if s.strip()}
    skip = {s.strip() for s in a.skip.split(",") if s.strip()}
    unknown = (only | skip) - set(BENCHES)
    if unknown:
        print(f"unknown bench: {', '.join(sorted(unknown))} (known: {', '.join(BENCHES)})",
              file=sys.stderr)
        return 2
    ok = True
    for name, (full, quick) in BENCHES.items():
        if (only and name not in only) or name in skip:
            continue
        res = run_one(name, quick if a.quick else full, a.timeout)
        ok = ok and "error" not in res and res.get("rc") == 0
        print(json.dumps(res, default=str), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
