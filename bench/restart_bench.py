"""Restart latency and memory of a supervision tree on multiprocTCPBase.

Prints one JSON line: for each victim role, the time from SIGKILL of that actor's process to its
replacement being wired again (restored from its snapshot, peers known: the point where a domain
actor resumes trading, before its own exchange reconciliation), and the memory of one symbol tree
(supervisor + 4 actors; RSS counts pages shared with the parent after fork, PSS splits them).

The actors are light GridActors (no exchange), so this measures the supervision machinery.

    python bench/restart_bench.py [--kills 8] [--symbols 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actors.base import GridActor  # noqa: E402
from models.config import Config, PortfolioConfig  # noqa: E402
from models.enums import Market  # noqa: E402
from models.messages import StatusReported, StatusRequested  # noqa: E402
from supervision import launcher, netsec  # noqa: E402


class _BenchActor(GridActor):
    """Counts its starts in the snapshot; stamps the wall time of every wiring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.starts = 0

    def snapshot(self) -> bytes:
        return json.dumps({"starts": self.starts}).encode()

    def restore(self, blob: bytes | None) -> None:
        if blob:
            self.starts = json.loads(blob)["starts"]

    def on_start(self) -> None:
        self.starts += 1
        self.persist()

    def on_wired(self) -> None:
        assert self.store is not None
        stamp = self.store.path.parent / f"{self.symbol}.{self.actor_name}.wired"
        stamp.write_text(f"{time.time():.6f} {os.getpid()} {self.starts}")


class BenchGateway(_BenchActor):
    role = "gateway"


class BenchOrder(_BenchActor):
    role = "order"


class BenchRisk(_BenchActor):
    role = "risk"


class BenchStrategy(_BenchActor):
    role = "strategy"


class BenchPortfolio(_BenchActor):
    role = "portfolio"


CLASSES = {r: f"bench.restart_bench.Bench{r.capitalize()}"
           for r in ("gateway", "order", "risk", "strategy", "portfolio")}


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(argv: list[str] | None = None) -> int:

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=8, help="kills per victim role")
    ap.add_argument("--symbols", type=int, default=2, choices=(1, 2, 3))
    args = ap.parse_args(argv)

    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")[: args.symbols]
    weights = {s: round(1.0 / len(symbols), 6) for s in symbols}
    weights[symbols[0]] += 1.0 - sum(weights.values())
    cfg = Config(portfolio=PortfolioConfig(symbols=symbols, weights=weights,
                                           markets={s: Market.FUTURES for s in symbols}))
    tmp = Path(tempfile.mkdtemp(prefix="restart_bench_"))
    state = tmp / "state"
    state.mkdir()
    start = launcher.build_start_message(
        cfg, state, classes=CLASSES, max_restarts=10_000, restart_backoff_s=0.0,
        heartbeat_interval_s=1.0, heartbeat_timeout_s=5.0)
    t0 = time.perf_counter()
    asys = launcher.start_actor_system(netsec.free_port(), tmp / "logs")
    sid = None
    out: dict[str, Any] = {"bench": "restart", "symbols": len(symbols), "kills_per_role": args.kills}
    try:
        root, root_pid = launcher.start_tree(asys, start, 60.0)
        sid = launcher.session_of(root_pid)
        out["tree_start_s"] = round(time.perf_counter() - t0, 3)

        def tree(sym: str) -> dict[str, Any]:
            rep = asys.ask(root, StatusRequested(), 10)
            assert isinstance(rep, StatusReported)
            return rep.data["symbols"][sym]["tree"]

        sym = symbols[0]
        t = tree(sym)
        procs = [t["pid"]] + [a["pid"] for a in t["actors"]]
        out["tree_processes"] = len(procs)
        out["tree_rss_mb"] = round(sum((netsec.proc_stat(p) or {"rss_kb": 0})["rss_kb"]
                                       for p in procs) / 1024, 1)
        out["tree_pss_mb"] = round(sum(_pss_kb(p) for p in procs) / 1024, 1)
        out["bot_processes"] = len(netsec.session_pids(sid or 0))

        for role in ("strategy", "order", "gateway"):
            lat: list[float] = []
            for _ in range(args.kills):
                pid = {a["name"]: a["pid"] for a in tree(sym)["actors"]}[role]
                stamp = state / f"{sym}.{role}.wired"
                stamp.unlink(missing_ok=True)
                t_kill = time.time()
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    try:
                        wall, new_pid, _ = stamp.read_text().split()
                        if int(new_pid) != pid:
                            lat.append((float(wall) - t_kill) * 1000.0)
                            break
                    except (OSError, ValueError):
                        pass
                    time.sleep(0.002)
                time.sleep(0.3)  # let the rest of a rest_for_one restart settle
            lat.sort()
            out[f"kill_{role}_to_wired_ms"] = {
                "median": round(statistics.median(lat), 1) if lat else None,
                "max": round(lat[-1], 1) if lat else None, "n": len(lat)}
        out["restarts_rest_for_one"] = {"strategy": ["strategy"], "order":
                                        ["order", "risk", "strategy"], "gateway": "all four"}
    finally:
        launcher.shutdown_actor_system(asys, sid)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
