"""SymbolSupervisor in real multiprocTCPBase trees of dummy actors: kill -9, crash on every
start (restart intensity, cancel through a fresh gateway), hang (heartbeat)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from treeutil import actor_pids, running_tree

from supervision import netsec


def test_kill9_of_one_actor_restarts_it_from_snapshot_and_spares_other_symbols(
        tmp_path: Path) -> None:
    with running_tree(tmp_path) as t:
        btc, eth = t.actors("BTCUSDT"), t.actors("ETHUSDT")
        assert all(a["state"] == "running" for a in btc.values())
        old_starts = btc["order"]["status"]["starts"]
        os.kill(btc["order"]["pid"], signal.SIGKILL)

        def restarted() -> dict | None:
            a = t.actors("BTCUSDT")
            ok = a["order"]["pid"] != btc["order"]["pid"] and all(
                x["state"] == "running" and x["status"] for x in a.values())
            return a if ok else None

        new = t.wait_for(restarted, what="order restarted")
        # restored from its snapshot: the start counter continued
        assert new["order"]["status"]["starts"] == old_starts + 1
        assert new["order"]["restarts"] == 1
        # rest_for_one: gateway (started before order) untouched, risk/strategy restarted
        assert new["gateway"]["pid"] == btc["gateway"]["pid"]
        assert new["risk"]["pid"] != btc["risk"]["pid"]
        assert new["strategy"]["pid"] != btc["strategy"]["pid"]
        assert netsec.proc_stat(btc["order"]["pid"]) is None
        # re-wired: the new strategy knows its peers
        assert {"gateway", "order", "risk", "portfolio"} <= set(new["strategy"]["status"]["peers"])
        # the other symbol did not notice
        assert actor_pids(t.actors("ETHUSDT")) == actor_pids(eth)
        assert t.status()["symbols"]["ETHUSDT"]["tree"]["restarts_total"] == 0
        logs = t.wait_for(lambda: [r for r in t.log_events("ACTOR_RESTARTED")
                                   if r.get("actor") == "order"], what="ACTOR_RESTARTED log")
        assert logs[0]["symbol"] == "BTCUSDT"
        assert logs[0]["restart_count"] == 1
        assert "exited" in logs[0]["reason"]
        assert logs[0]["restore_ms"] >= 0


def test_actor_crashing_on_every_start_stops_only_its_symbol(tmp_path: Path) -> None:
    with running_tree(tmp_path, markers=("ETHUSDT.risk.crash_on_start",),
                      max_restarts=2) as t:
        def eth_stopped() -> bool:
            return t.status()["symbols"]["ETHUSDT"]["state"] == "stopped"

        t.wait_for(eth_stopped, what="ETHUSDT stopped")
        st = t.status()
        eth = st["symbols"]["ETHUSDT"]
        assert "risk failed more than 2 times" in eth["stop_reason"]
        assert eth["tree"]["state"] == "stopped"
        assert all(a["state"] == "stopped" for a in eth["tree"]["actors"])
        # a fresh gateway was started only to wind the symbol down (flatten by default)
        assert t.marker("ETHUSDT.wind_down").read_text().startswith("flatten symbol stopped")
        assert "open orders cancelled, position 1 closed" in eth["stop_reason"]
        # the other symbol keeps running, untouched
        btc = t.actors("BTCUSDT")
        assert all(a["state"] == "running" and a["restarts"] == 0 for a in btc.values())
        assert st["symbols"]["BTCUSDT"]["state"] == "running"
        # no ETH actor process is left
        for a in eth["tree"]["actors"]:
            assert a["pid"] == 0 or netsec.proc_stat(a["pid"]) is None
        events = t.wait_for(lambda: t.log_events("SYMBOL_STOPPED"), what="SYMBOL_STOPPED")
        assert {e["symbol"] for e in events} == {"ETHUSDT"}


def test_hung_actor_is_detected_by_heartbeat_and_restarted(tmp_path: Path) -> None:
    with running_tree(tmp_path, symbols=("BTCUSDT",)) as t:
        before = t.actors("BTCUSDT")
        t.marker("BTCUSDT.strategy.hang").touch()  # the next Heartbeat hangs the strategy

        def replaced() -> dict | None:
            a = t.actors("BTCUSDT")
            s = a["strategy"]
            return a if s["pid"] != before["strategy"]["pid"] and s["state"] == "running" \
                else None

        after = t.wait_for(replaced, what="hung strategy replaced")
        assert after["strategy"]["restarts"] == 1
        assert netsec.proc_stat(before["strategy"]["pid"]) is None  # the hung process is gone
        assert after["order"]["pid"] == before["order"]["pid"]
        logs = t.wait_for(lambda: [r for r in t.log_events("ACTOR_RESTARTED")
                                   if r.get("actor") == "strategy"], what="restart log")
        assert "hung" in logs[0]["reason"]
