"""Forced kill of the whole bot (kill -9 of its process group) while it trades, then restart:
state is recovered and reconciled with the exchange (which kept running and filling) before
trading, so positions and open orders equal the exchange's exactly; a graceful stop then leaves
nothing open. Real actors, the embedded exchange in its own process (``run.py sim``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from exchange_sim.marketdata import default_data_dir

REPO = Path(__file__).resolve().parents[2]
SYMS = ("BTCUSDT", "ETHUSDT")
pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="needs ../shared/data")


def _cli(*argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "run.py"), *argv], capture_output=True,
                          text=True, timeout=timeout, cwd=str(REPO))


def _status(state: Path) -> dict[str, Any] | None:
    try:
        r = _cli("status", "--json", "--state-dir", str(state), timeout=20)
    except subprocess.TimeoutExpired:
        return None
    return json.loads(r.stdout) if r.returncode == 0 else None


def _bot_view(st: dict[str, Any]) -> dict[str, tuple[Decimal, int]]:
    out = {}
    for s in SYMS:
        actors = {a["name"]: a.get("status") or {} for a in st["symbols"][s]["tree"]["actors"]}
        out[s] = (Decimal(actors["risk"]["position"]), actors["order"]["open_orders"])
    return out


def _exchange_view(urls: dict[str, Any]) -> dict[str, tuple[Decimal, int]]:
    from actors.venue_client import VenueClient
    from actors.venue_endpoints import VenueEndpoints
    from models.enums import Market

    vc = VenueClient(Market.FUTURES, VenueEndpoints.from_sim_urls(urls), urls["api_key"],
                     urls["api_secret"])
    vc.sync_time()
    return {s: (Decimal(vc.position(s)["qty"]), len(vc.open_orders(s))) for s in SYMS}


def _events(log: Path) -> list[dict[str, Any]]:
    out = []
    if log.exists():
        for x in log.read_text().splitlines():
            try:
                out.append(json.loads(x))
            except ValueError:
                pass
    return out


def _start_bot(tmp: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "--config", str(tmp / "cfg.json"), "--sim-urls",
         str(tmp / "urls.json"), "--state-dir", str(tmp / "state"), "--log-dir",
         str(tmp / "logs")], cwd=str(REPO), stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, start_new_session=True)


def _wait(pred: Any, limit: float) -> Any:
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.5)
    return None


def test_forced_kill_then_restart_recovers_and_reconciles(tmp_path: Path) -> None:
    cfg = {"portfolio": {"symbols": list(SYMS), "weights": {"BTCUSDT": 0.55, "ETHUSDT": 0.45},
                         "markets": {s: "futures" for s in SYMS}},
           "supervision": {"status_interval_s": 5.0}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    sim = subprocess.Popen(
        [sys.executable, str(REPO / "run.py"), "sim", "--symbols", *SYMS, "--market", "futures",
         "--interval", "5m", "--speed", "300", "--urls-file", str(tmp_path / "urls.json")],
        cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bot = None
    log = tmp_path / "logs" / "gridbot.jsonl"
    try:
        assert _wait(lambda: (tmp_path / "urls.json").exists(), 30)
        urls = json.loads((tmp_path / "urls.json").read_text())
        bot = _start_bot(tmp_path)
        assert _wait(lambda: sum(e["event"] == "ORDER_FILLED" for e in _events(log)) >= 1, 90)
        os.killpg(bot.pid, signal.SIGKILL)  # the launcher's process group (the actor system
        bot.wait(10)  # has its own session: its root sees the launcher gone and stops it)
        time.sleep(2)  # the exchange keeps trading the resting orders meanwhile
        before = len([e for e in _events(log) if e["event"] == "RECONCILED"])
        bot = _start_bot(tmp_path)
        assert _wait(lambda: len([e for e in _events(log) if e["event"] == "RECONCILED"])
                     >= before + len(SYMS), 60), "no reconciliation after the restart"
        # the same instant from both sides: pause the exchange, let the bot catch up, compare
        req = __import__("urllib.request").request
        req.urlopen(req.Request(f"{urls['admin']}/speed", data=b'{"speed": 0}',
                                headers={"Content-Type": "application/json"}), timeout=10)
        time.sleep(3)
        st = _wait(lambda: _status(tmp_path / "state"), 30)
        assert st is not None
        assert _bot_view(st) == _exchange_view(urls)
        r = _cli("stop", "--state-dir", str(tmp_path / "state"), timeout=90)
        assert r.returncode == 0, r.stderr
        bot.wait(30)
        assert _exchange_view(urls) == {s: (Decimal(0), 0) for s in SYMS}
    finally:
        if bot is not None and bot.poll() is None:
            os.killpg(bot.pid, signal.SIGKILL)
        sim.send_signal(signal.SIGINT)
        try:
            sim.wait(15)
        except subprocess.TimeoutExpired:
            sim.kill()
