"""The whole bot, end to end: ``python run.py`` with the real actors on the embedded exchange.

One run (module fixture) trades BTCUSDT and ETHUSDT futures on recorded 5m data at speed 600
for 4 sim-hours; mid-run the BTCUSDT order actor is killed with SIGKILL. Afterwards: the log
has the events a trader relies on, the killed actor was restarted from its snapshot, trading
went on, no client order id was used twice at the exchange, the graceful stop left no open
order and flat positions, and the bot's equity equals the exchange's wallet to the cent.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exchange_sim.marketdata import default_data_dir

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="needs ../shared/data")


def _status(state: Path) -> dict[str, Any] | None:
    try:
        r = subprocess.run([sys.executable, str(REPO / "run.py"), "status", "--json",
                            "--state-dir", str(state)], capture_output=True, text=True,
                           timeout=20, cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return None
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def _actor_pid(st: dict[str, Any], symbol: str, role: str) -> int | None:
    tree = st["symbols"][symbol].get("tree") or {}
    for a in tree.get("actors", []):
        if a["name"] == role:
            return a.get("pid")
    return None


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("bot")
    cfg = {
        "portfolio": {"symbols": ["BTCUSDT", "ETHUSDT"],
                      "weights": {"BTCUSDT": 0.55, "ETHUSDT": 0.45},
                      "markets": {"BTCUSDT": "futures", "ETHUSDT": "futures"}},
        "supervision": {"status_interval_s": 3.0, "heartbeat_interval_s": 1.0,
                        "heartbeat_timeout_s": 6.0, "restart_backoff_s": 0.1},
    }
    (tmp / "cfg.json").write_text(json.dumps(cfg))
    state = tmp / "state"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "--config", str(tmp / "cfg.json"),
         "--duration", "4h", "--speed", "600", "--state-dir", str(state),
         "--log-dir", str(tmp / "logs")],
        cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    killed: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline and not killed:
            time.sleep(1.0)
            st = _status(state)
            if not st:
                continue
            log = tmp / "logs" / "gridbot.jsonl"
            placed = log.exists() and '"ORDER_PLACED"' in log.read_text()
            pid = _actor_pid(st, "BTCUSDT", "order")
            if placed and pid:
                os.kill(pid, signal.SIGKILL)
                killed = {"pid": pid, "at": time.monotonic()}
        out, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    (tmp / "stderr.txt").write_text(err)
    (tmp / "killed.json").write_text(json.dumps(killed))
    (tmp / "rc").write_text(str(proc.returncode))
    return tmp


def _events(tmp: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (tmp / "logs" / "gridbot.jsonl").read_text().splitlines()]


def test_bot_runs_and_logs_what_a_trader_needs(run_dir: Path) -> None:
    assert (run_dir / "rc").read_text() == "0", (run_dir / "stderr.txt").read_text()[-3000:]
    ev = _events(run_dir)
    c = Counter(e["event"] for e in ev)
    assert c["ORDER_PLACED"] >= 5 and c["ORDER_FILLED"] >= 1, c
    assert c["STATUS"] >= 4 and c["STRATEGY"] >= 20, c
    assert not [e for e in ev if e["level"] in ("ERROR", "CRITICAL")
                and e["event"] not in ("ACTOR_FAILED",)], c
    placed = [e for e in ev if e["event"] == "ORDER_PLACED" and e.get("kind") == "ENTRY"]
    ctx = placed[0]["strategy_context"]
    for k in ("b_up", "c_up", "b_down", "c_down", "b_neu", "c_neu", "L", "S", "reason"):
        assert k in ctx


def test_killed_actor_restarts_from_snapshot_and_trading_goes_on(run_dir: Path) -> None:
    killed = json.loads((run_dir / "killed.json").read_text())
    assert killed, "no order actor was killed (the bot never placed an order in time)"
    ev = _events(run_dir)
    restarts = [e for e in ev if e["event"] == "ACTOR_RESTARTED" and e["symbol"] == "BTCUSDT"]
    assert restarts and restarts[0].get("actor") == "order"
    t_restart = restarts[0]["ts"]
    later = [e for e in ev if e["ts"] > t_restart and e["symbol"] == "BTCUSDT"
             and e["event"] in ("RECONCILED", "ORDER_PLACED", "ORDER_FILLED")]
    assert any(e["event"] == "RECONCILED" for e in later)
    eth_after = [e for e in ev if e["ts"] > t_restart and e["symbol"] == "ETHUSDT"
                 and e["event"] == "STRATEGY"]
    assert eth_after  # the other symbol kept trading
    assert not [e for e in ev if e["event"] == "ACTOR_RESTARTED" and e["symbol"] == "ETHUSDT"]


def test_exchange_is_flat_without_duplicates_and_equity_matches(run_dir: Path) -> None:
    sim = json.loads((run_dir / "state" / "exchange_sim.json").read_text())
    fut = sim["engines"]["futures"]
    cids = [o["client_order_id"] for o in fut["orders"]]
    assert len(cids) == len(set(cids)) and cids
    assert {o["status"] for o in fut["orders"]} <= {"FILLED", "CANCELED", "EXPIRED", "REJECTED"}
    (acct,) = fut["accounts"]
    assert all(Decimal(p["qty"]) == 0 for p in acct["positions"])
    eq = [e for e in _events(run_dir) if e["event"] == "EQUITY"][-1]
    assert abs(Decimal(eq["equity"]) - Decimal(acct["wallet"])) < Decimal("0.01")
