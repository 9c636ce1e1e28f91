"""RootSupervisor: in real multiprocTCPBase trees of dummy actors (a killed symbol supervisor,
operator stop/resume, shutdown) and its status lines."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from treeutil import actor_pids, running_tree

from infra.store import StateStore
from models.messages import (
    ResumeTrading,
    StopTrading,
    TradingStateChanged,
    TradingStopped,
)
from supervision import netsec
from supervision.root_supervisor import symbol_status_lines


def test_killed_symbol_supervisor_takes_its_orphans_down_and_is_restarted(
        tmp_path: Path) -> None:
    with running_tree(tmp_path) as t:
        st = t.status()
        sup_pid = st["symbols"]["BTCUSDT"]["supervisor"]["pid"]
        old = actor_pids(t.actors("BTCUSDT"))
        eth = actor_pids(t.actors("ETHUSDT"))
        os.kill(sup_pid, signal.SIGKILL)

        def back() -> dict | None:
            s = t.status()["symbols"]["BTCUSDT"]
            acts = {a["name"]: a for a in s["tree"].get("actors", [])}
            ok = s["state"] == "running" and s["supervisor"]["pid"] not in (0, sup_pid) and \
                acts and all(a["state"] == "running" for a in acts.values())
            return acts if ok else None

        new = t.wait_for(back, what="BTC tree back")
        assert not set(actor_pids(new).values()) & set(old.values())
        for pid in old.values():  # orphans of the dead supervisor were killed
            assert netsec.proc_stat(pid) is None
        assert actor_pids(t.actors("ETHUSDT")) == eth


def test_stop_trading_and_resume_reach_every_tree(tmp_path: Path) -> None:
    with running_tree(tmp_path) as t:
        reply = t.asys.ask(t.root, StopTrading(mode="cancel-only"), 10)
        assert isinstance(reply, TradingStopped)
        for sym in ("BTCUSDT", "ETHUSDT"):
            for role in ("gateway", "order", "risk", "strategy"):
                assert t.marker(f"{sym}.{role}.stop.cancel-only").exists()
        assert t.marker("portfolio.portfolio.stop.cancel-only").exists()
        reply = t.asys.ask(t.root, ResumeTrading(safe_mode=True), 10)
        assert isinstance(reply, TradingStateChanged)


def test_shutdown_persists_and_leaves_no_process(tmp_path: Path) -> None:
    with running_tree(tmp_path, symbols=("BTCUSDT",)) as t:
        sid = t.sid
        assert len(netsec.session_pids(sid)) >= 7  # admin, logger, root, portfolio, sup, 4 actors
    assert netsec.session_pids(sid) == []
    with StateStore(tmp_path / "state" / "BTCUSDT.db") as s:
        assert set(s.snapshot_ages()) == {"gateway", "order", "risk", "strategy"}


def test_symbol_status_lines_pick_figures_from_the_tree() -> None:
    data = {"symbols": {"BTCUSDT": {"state": "RUNNING", "tree": {"actors": [
        {"name": "order", "status": {"open_orders": 4}},
        {"name": "risk", "status": {"position": "0.010", "entry_price": "100",
                                    "unrealized_pnl": "1.5", "realized_pnl": "-0.2",
                                    "leverage": 0.1}},
        {"name": "strategy", "status": {"L": 0.4, "S": 0.1}}]}},
        "ETHUSDT": {"state": "STOPPED", "tree": None}},
        "portfolio": {"status": {"leverage": 0.3, "leverage_cap": 6.0, "drawdown_level": 1}}}
    btc, eth = symbol_status_lines(data)
    assert btc["symbol"] == "BTCUSDT" and btc["position"] == "0.010"
    assert btc["open_orders"] == 4 and btc["drawdown_level"] == 1 and btc["L"] == 0.4
    assert btc["portfolio_leverage"] == 0.3 and btc["leverage_cap"] == 6.0
    assert eth["state"] == "STOPPED" and eth["position"] is None
