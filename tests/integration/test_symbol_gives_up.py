"""A symbol that exhausts its restarts is wound down, not abandoned: with its state store
destroyed and its order actor killed, every restart fails at once (ACTOR_START_FAILED), the
tree gives up, a store-less gateway cancels the symbol's orders and closes its futures position
reduce-only (read back from the exchange), SYMBOL_STOPPED is CRITICAL, the other symbol keeps
trading, and the launcher's exit code says a symbol failed. Real actors, the embedded exchange
in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from exchange_sim.marketdata import default_data_dir
from tests.integration.test_bot_forced_kill import (
    REPO,
    SYMS,
    _cli,
    _events,
    _exchange_view,
    _start_bot,
    _status,
    _wait,
)

pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="needs ../shared/data")


def test_a_symbol_that_gives_up_ends_flat_and_the_exit_code_says_so(tmp_path: Path) -> None:
    cfg = {"portfolio": {"symbols": list(SYMS), "weights": {"BTCUSDT": 0.5, "ETHUSDT": 0.5},
                         "markets": {s: "futures" for s in SYMS}},
           "supervision": {"status_interval_s": 5.0, "max_restarts": 2,
                           "restart_backoff_s": 0.1}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sim = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "sim", "--symbols", *SYMS, "--market", "futures",
         "--interval", "5m", "--speed", "300", "--urls-file", str(tmp_path / "urls.json")],
        cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bot = None
    log = tmp_path / "logs" / "gridbot.jsonl"
    state = tmp_path / "state"
    try:
        assert _wait(lambda: (tmp_path / "urls.json").exists(), 30)
        urls = json.loads((tmp_path / "urls.json").read_text())
        bot = _start_bot(tmp_path)
        assert _wait(lambda: _exchange_view(urls)["ETHUSDT"][0] != 0, 150), "no ETH position"
        # freeze the market so that no take-profit closes the position before the wind-down
        req = __import__("urllib.request").request
        req.urlopen(req.Request(f"{urls['admin']}/speed", data=b'{"speed": 0}',
                                headers={"Content-Type": "application/json"}), timeout=10)
        held = _exchange_view(urls)["ETHUSDT"][0]
        assert held != 0
        st = _wait(lambda: _status(state), 30)
        assert st is not None
        order_pid = next(a["pid"] for a in st["symbols"]["ETHUSDT"]["tree"]["actors"]
                         if a["name"] == "order")
        # destroy ETHUSDT's store (a new file: the running actors keep their open one)
        garbage = state / "garbage.tmp"
        garbage.write_bytes(b"not a database " * 512)
        os.replace(garbage, state / "ETHUSDT.db")
        for side in ("-wal", "-shm"):
            (state / f"ETHUSDT.db{side}").unlink(missing_ok=True)
        os.kill(order_pid, signal.SIGKILL)
        stopped = _wait(lambda: [e for e in _events(log) if e["event"] == "SYMBOL_STOPPED"], 120)
        assert stopped, "ETHUSDT did not give up"
        ev = stopped[0]
        assert ev["symbol"] == "ETHUSDT" and ev["level"] == "CRITICAL", ev
        assert f"position {held} closed" in ev["reason"], ev
        assert "open orders cancelled" in ev["reason"], ev
        assert any(e["event"] == "ACTOR_START_FAILED" and e["symbol"] == "ETHUSDT"
                   for e in _events(log))
        assert _exchange_view(urls)["ETHUSDT"] == (Decimal(0), 0)
        st = _wait(lambda: _status(state), 30)
        assert st is not None and st["symbols"]["BTCUSDT"]["state"] == "running"
        assert st["symbols"]["ETHUSDT"]["state"] == "stopped"
        r = _cli("stop", "--state-dir", str(state), timeout=90)
        assert r.returncode == 0, r.stderr
        assert bot.wait(60) == 1  # a symbol failed during the run
        assert any(e["event"] == "EXIT_SYMBOLS_FAILED" for e in _events(log))
    finally:
        if bot is not None and bot.poll() is None:
            os.killpg(bot.pid, signal.SIGKILL)
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(15)
        except subprocess.TimeoutExpired:
            sim.kill()
