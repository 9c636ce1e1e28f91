"""Parity: the same bars through the embedded exchange (REST/WS, real python-binance, the live
``python run.py run`` path) and through the backtest venue give the same orders and fills.

The embedded exchange is paused and advanced one 5m bar at a time; after each bar the test
waits until the bot's log has been quiet for a moment, so the live bot reacts to bar *t*
before bar *t+1* is replayed, as the backtest's quiescence barrier guarantees. Timestamps are
not compared (live logs wall time), only what was ordered and filled, in order.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest

from backtest.driver import run_backtest
from backtest.options import BacktestOptions, backtest_config
from exchange_sim import marketdata as md
from infra.config_io import load_config
from models.enums import Market
from models.timeframes import parse_time

ROOT = Path(__file__).resolve().parents[2]
DATA = md.default_data_dir()
START = parse_time("2025-01-03")
BARS = 66  # the strategy first orders ~3.4 h in, first fill ~5 h in
SYM = "BTCUSDT"

pytestmark = [
    pytest.mark.skipif(DATA is None, reason="no market data directory"),
]


def _orders(lines: list[dict[str, Any]]) -> tuple[list[tuple], list[tuple]]:
    placed = [(e["client_order_id"], e["side"], e["type"], Decimal(e["price"] or 0),
               Decimal(e["qty"])) for e in lines if e.get("event") == "ORDER_PLACED"]
    fills = [(e["client_order_id"], e["side"], Decimal(e["price"]), Decimal(e["qty"]),
              Decimal(e["fee"])) for e in lines if e.get("event") == "ORDER_FILLED"]
    return placed, fills


def _read(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for x in path.read_text().splitlines():
        try:
            out.append(json.loads(x))
        except ValueError:
            pass
    return out


def _wait_quiet(path: Path, quiet_s: float = 0.6, limit_s: float = 20.0) -> None:
    t0 = time.monotonic()
    last = (-1, 0.0)
    while time.monotonic() - t0 < limit_s:
        size = path.stat().st_size if path.exists() else 0
        if size != last[0]:
            last = (size, time.monotonic())
        elif time.monotonic() - last[1] >= quiet_s:
            return
        time.sleep(0.05)


def test_embedded_exchange_and_backtest_give_the_same_orders_and_fills(tmp_path: Path) -> None:
    from exchange_sim.server import SimServer
    from models.simconfig import SimConfig

    cfg = backtest_config(load_config(None), (SYM,), Market.FUTURES)
    cfg = msgspec.structs.replace(cfg, state_dir=str(tmp_path / "state"),
                                  log_dir=str(tmp_path / "logs"))
    sim_cfg = SimConfig(speed=0, symbols=(SYM,), interval="5m", market="futures",
                        start=str(START), data_dir=str(DATA))
    srv = SimServer(sim_cfg)
    urls = srv.start_in_thread()
    conf = tmp_path / "bot.json"
    conf.write_bytes(msgspec.json.encode(cfg))
    urls_file = tmp_path / "urls.json"
    urls_file.write_text(urls.to_json() if hasattr(urls, "to_json") else json.dumps(urls))
    log = tmp_path / "logs" / "gridbot.jsonl"
    bot = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), "run", "--config", str(conf), "--sim-urls",
         str(urls_file), "--state-dir", str(tmp_path / "state"), "--log-dir",
         str(tmp_path / "logs")], cwd=ROOT, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 60:
            if any(e.get("event") == "RECONCILED" for e in _read(log)):
                break
            time.sleep(0.2)
        else:
            pytest.fail("live bot did not reconcile")
        _wait_quiet(log)
        admin = urls.admin if hasattr(urls, "admin") else urls["admin"]
        for _ in range(BARS):
            req = urllib.request.Request(f"{admin}/advance", data=b'{"bars": 1}',
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10).read()
            _wait_quiet(log, quiet_s=0.3)
        live = _read(log)
    finally:
        bot.send_signal(signal.SIGTERM)
        try:
            bot.wait(60)
        except subprocess.TimeoutExpired:
            bot.kill()
        srv.stop()
    opts = BacktestOptions(config=cfg, symbols=(SYM,), market=Market.FUTURES, start_ms=START,
                           end_ms=START + BARS * 300_000, out_dir=tmp_path / "bt",
                           report=False, persist=False)
    res = run_backtest(opts)
    bt = _read(tmp_path / "bt" / "gridbot.jsonl")
    live_placed, live_fills = _orders(live)
    bt_placed, bt_fills = _orders(bt)
    assert bt_placed, "the backtest should place orders in this window"
    n = len(bt_placed)
    assert live_placed[:n] == bt_placed, (live_placed[:n], bt_placed)
    assert bt_fills and live_fills[:len(bt_fills)] == bt_fills, (live_fills, bt_fills)
    assert res.actor_errors == []
