"""``python -m exchange_sim.cli`` (what ``python run.py sim`` runs): one JSON line of URLs on
stdout, --urls-file, clean SIGTERM stop, --state persistence across restarts."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from exchange_sim.client import client_classes

ROOT = Path(__file__).resolve().parents[2]
KEYS = {"rest", "fapi", "ws", "fws", "ws_api", "api_key", "api_secret"}


def _start(tmp: Path, *extra: str) -> tuple[subprocess.Popen, dict]:
    p = subprocess.Popen(
        [sys.executable, "-m", "exchange_sim.cli", "--scenario", "gbm", "--speed", "0",
         "--port", "0", "--symbols", "BTCUSDT", "--market", "both", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line, p.stderr.read()
    return p, json.loads(line)


def _stop(p: subprocess.Popen) -> tuple[str, str]:
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    return out, err


def test_urls_line_urls_file_and_clean_stop(tmp_path: Path) -> None:
    uf = tmp_path / "urls.json"
    p, urls = _start(tmp_path, "--urls-file", str(uf))
    try:
        assert KEYS <= set(urls)
        assert urls["rest"].startswith("http://127.0.0.1:") and urls["rest"].endswith("/api")
        assert urls["fws"].endswith("/f/") and urls["ws_api"].endswith("/ws-api/v3")
        assert json.loads(uf.read_text()) == urls
        client_cls, _, _ = client_classes(urls)
        c = client_cls(urls["api_key"], urls["api_secret"])  # the constructor pings
        assert c.futures_time()["serverTime"] == c.get_server_time()["serverTime"]
    finally:
        out, err = _stop(p)
    assert out == ""  # nothing but the single URLs line ever reaches stdout
    assert "sim stopping" in err


def test_state_survives_restart(tmp_path: Path) -> None:
    state = tmp_path / "sim-state.json"
    p, urls = _start(tmp_path, "--state", str(state))
    try:
        client_cls, _, _ = client_classes(urls)
        c = client_cls(urls["api_key"], urls["api_secret"])
        t = c.get_server_time()["serverTime"]
        c.timestamp_offset = t - int(time.time() * 1000)
        price = c.get_symbol_ticker(symbol="BTCUSDT")["price"]
        low = f"{float(price) * 0.8:.2f}"
        c.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                       quantity="0.001", price=low, newClientOrderId="persist-me")
    finally:
        _stop(p)
    assert state.exists()
    p, urls = _start(tmp_path, "--state", str(state))
    try:
        client_cls, _, _ = client_classes(urls)
        c = client_cls(urls["api_key"], urls["api_secret"])
        t2 = c.get_server_time()["serverTime"]
        assert t2 == t  # the paused clock resumed where it was
        c.timestamp_offset = t2 - int(time.time() * 1000)
        (o,) = c.get_open_orders(symbol="BTCUSDT")
        assert o["clientOrderId"] == "persist-me" and o["price"].startswith(low.split(".")[0])
    finally:
        _stop(p)


def test_no_options_serve_the_bot_defaults_and_log_iso_dates() -> None:
    import re

    p = subprocess.Popen([sys.executable, "-m", "exchange_sim.cli", "--speed", "0", "--port", "0"],
                         cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line, p.stderr.read()
    try:
        urls = json.loads(line)
        client_cls, _, _ = client_classes(urls)
        c = client_cls(urls["api_key"], urls["api_secret"])
        syms = {s["symbol"] for s in c.futures_exchange_info()["symbols"]}
        assert syms == {"BTCUSDT", "ETHUSDT", "SOLUSDT"}
    finally:
        _, err = _stop(p)
    (listen,) = [x for x in err.splitlines() if "sim listening on" in x]
    iso = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.search(rf"futures BTCUSDT ETHUSDT SOLUSDT, 5m bars {iso} \.\. {iso}, sim time "
                     rf"{iso}, speed paused", listen), listen
    assert not re.search(r"\d{13}", err)  # no epoch milliseconds for people to decode
