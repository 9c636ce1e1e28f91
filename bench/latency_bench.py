"""Latency from a market event arriving at the gateway to the resulting order request leaving
it, through the real actor pipeline on ``multiprocTCPBase``.

The supervision tree is the real one (root, portfolio, symbol supervisor) with the real order
(``actors.order.OrderActor``), risk (``actors.risk.RiskActor``) and portfolio
(``actors.portfolio.PortfolioActor``) actors, every one in its own process and persisting to
SQLite as in production. Only the exchange side is replaced: ``bench.latency_actors.
LatencyGateway`` emits closed 5m klines of real BTCUSDT futures data one every 50-100 ms and
times each order request that reaches it (see that module).

Two runs, one actor system each:

* ``pipeline`` (the headline): ``LatencyStrategy`` turns every kline into one ``PlaceOrder``, so
  each event crosses gateway → strategy → risk → portfolio → risk → order → gateway (6 hops,
  5 snapshot writes: strategy, risk, portfolio, risk, OMS with its order row and outbox).
* ``real_strategy``: the real ``StrategyActor`` (warmed up on history); it only orders when its
  entry filter passes, so its figure covers the bars that caused an order request (new orders,
  modifies and cancels; the first request of each bar is the latency, later ones are listed).

The total is timed with ``perf_counter_ns`` inside the gateway process (emission and arrival are
both there); the per-segment split uses wall-clock stamps from other processes on the same host:
``to_risk`` (gateway → strategy → risk, incl. the strategy's persist), ``risk_to_oms`` (risk's
persist, the portfolio reservation round trip, risk → order) and ``oms_to_gateway`` (the OMS's
persist and ``ORDER_PLACED`` log, order → gateway).

Prints one JSON line.

    python bench/latency_bench.py [--n 300] [--real-bars 150] [--mode both|pipeline|real]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.latency_actors import PARAMS_FILE, RESULT_FILE, default_params  # noqa: E402
from models.config import Config, PortfolioConfig  # noqa: E402
from models.enums import Market  # noqa: E402
from supervision import launcher, netsec  # noqa: E402

SYMBOL = "BTCUSDT"
GATEWAY = "bench.latency_actors.LatencyGateway"
BENCH_STRATEGY = "bench.latency_actors.LatencyStrategy"
TRACING_STRATEGY = "bench.latency_actors.TracingStrategy"
#: Every role named explicitly, so ``$GRIDBOT_ACTOR_CLASSES`` cannot swap a real actor out.
REAL = {"order": "actors.order.OrderActor", "risk": "actors.risk.RiskActor",
        "portfolio": "actors.portfolio.PortfolioActor",
        "strategy": "actors.strategy.StrategyActor"}


def percentile(sorted_vals: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending, non-empty list (q in (0, 100])."""
    k = min(len(sorted_vals), max(1, math.ceil(q / 100.0 * len(sorted_vals))))
    return sorted_vals[k - 1]


def _ms(ns: float) -> float:
    return round(ns / 1e6, 3)


def summarize(samples: list[list[Any]]) -> dict[str, Any]:
    """p50/p99/max of the first request per event, and the per-segment medians."""
    first = [s for s in samples if not str(s[1]).endswith("+")]
    tot = sorted(float(s[2]) for s in first)
    if not tot:
        return {"n": 0}
    out: dict[str, Any] = {
        "n": len(tot), "p50_ms": _ms(percentile(tot, 50)), "p90_ms": _ms(percentile(tot, 90)),
        "p99_ms": _ms(percentile(tot, 99)), "max_ms": _ms(tot[-1]),
        "mean_ms": _ms(statistics.fmean(tot)), "min_ms": _ms(tot[0]),
    }
    # segments only for new orders: risk stamps those (cancels keep the strategy's stamp)
    new = [s for s in first if s[1] == "SendOrder"]
    if new:
        out["segments_p50_ms"] = {
            name: _ms(statistics.median(float(s[i]) for s in new))
            for name, i in (("to_risk", 3), ("risk_to_oms", 4), ("oms_to_gateway", 5))}
    by_kind: dict[str, list[float]] = {}
    for s in samples:
        by_kind.setdefault(str(s[1]), []).append(float(s[2]))
    # "X+" = a further request caused by the same event (queued behind the first)
    out["by_request"] = {
        k: {"n": len(v), "p50_ms": _ms(percentile(sorted(v), 50)), "max_ms": _ms(max(v))}
        for k, v in sorted(by_kind.items())}
    return out


def run_once(mode: str, params: dict[str, Any], timeout_s: float,
             keep: bool = False) -> dict[str, Any]:
    """One actor system, one symbol tree; returns the gateway's result plus start-up figures."""

    cfg = Config(portfolio=PortfolioConfig(symbols=(SYMBOL,), weights={SYMBOL: 1.0},
                                           markets={SYMBOL: Market.FUTURES}))
    tmp = Path(tempfile.mkdtemp(prefix=f"latency_bench_{mode}_"))
    state = tmp / "state"
    state.mkdir()
    (state / PARAMS_FILE).write_text(json.dumps({**params, "mode": mode}))
    classes = {**REAL, "gateway": GATEWAY}
    classes["strategy"] = BENCH_STRATEGY if mode == "bench" else TRACING_STRATEGY
    start = launcher.build_start_message(cfg, state, classes=classes)
    t0 = time.perf_counter()
    asys = launcher.start_actor_system(netsec.free_port(), tmp / "logs")
    sid = None
    result: dict[str, Any] = {}
    try:
        root, root_pid = launcher.start_tree(asys, start, 30.0)
        sid = launcher.session_of(root_pid)
        result["tree_start_s"] = round(time.perf_counter() - t0, 2)
        path = state / RESULT_FILE
        deadline = time.monotonic() + timeout_s
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if path.exists():
            result.update(json.loads(path.read_text()))
        else:
            result["error"] = f"no result within {timeout_s:g}s"
    except TimeoutError as e:
        result["error"] = str(e)
    finally:
        leftovers = launcher.shutdown_actor_system(asys, sid)
        result["killed_leftovers"] = len(leftovers)
        if sid is not None:
            result["processes_left"] = len(netsec.session_pids(sid))
    if keep:
        result["state_dir"] = str(state)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="measured events of the pipeline run")
    ap.add_argument("--real-bars", type=int, default=150,
                    help="bars fed to the real strategy (0: skip)")
    ap.add_argument("--mode", choices=("both", "pipeline", "real"), default="both")
    ap.add_argument("--spacing-ms", type=float, nargs=2, default=(50.0, 100.0),
                    metavar=("LO", "HI"), help="gap between events (uniform, seeded)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--samples", action="store_true", help="include raw latencies (ms)")
    ap.add_argument("--keep", action="store_true", help="keep state and logs (path printed)")
    args = ap.parse_args(argv)

    base = {**default_params(), "spacing_ms": list(args.spacing_ms), "seed": args.seed}
    hi_s = max(args.spacing_ms) / 1000.0
    out: dict[str, Any] = {"bench": "latency", "system_base": "multiprocTCPBase",
                           "symbol": SYMBOL, "hops": 6, "persist": True, "persist_writes": 5,
                           "spacing_ms": list(args.spacing_ms)}
    t0 = time.perf_counter()
    if args.mode in ("both", "pipeline"):
        params = {**base, "n": args.n}
        budget = 20.0 + (args.n + params["warmup"] + params["max_pre_events"]) * hi_s
        res = run_once("bench", params, budget, args.keep)
        summ = summarize(res.get("samples", []))
        if not summ["n"] and "error" not in res:
            res["error"] = "no order request reached the gateway"
        out.update({k: summ.get(k) for k in ("n", "p50_ms", "p99_ms", "max_ms")})
        out["pipeline"] = {
            **summ, "events": res.get("measured_events"),
            "answered_events": res.get("answered_events"),
            "warm_after_events": res.get("warm_after_events"),
            "unmatched": res.get("unmatched"), "data": res.get("data"),
            "tree_start_s": res.get("tree_start_s"),
            "processes_left": res.get("processes_left"),
            "killed_leftovers": res.get("killed_leftovers"),
            **{k: res[k] for k in ("error", "state_dir") if k in res}}
        if args.samples:
            out["pipeline"]["samples_ms"] = [_ms(s[2]) for s in res.get("samples", [])]
    if args.mode in ("both", "real") and args.real_bars > 0:
        params = {**base, "n": args.real_bars, "warmup": 0}
        res = run_once("real", params, 20.0 + args.real_bars * hi_s, args.keep)
        summ = summarize(res.get("samples", []))
        out["real_strategy"] = {
            **summ, "bars": res.get("measured_events"),
            "bars_with_orders": res.get("answered_events"), "counts": res.get("counts"),
            "unmatched": res.get("unmatched"),
            "tree_start_s": res.get("tree_start_s"),
            "processes_left": res.get("processes_left"),
            "killed_leftovers": res.get("killed_leftovers"),
            **{k: res[k] for k in ("error", "state_dir") if k in res}}
    out["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(out))
    failed = any("error" in out.get(k, {}) for k in ("pipeline", "real_strategy"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
