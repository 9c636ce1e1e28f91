"""Benchmark of the embedded exchange; prints ONE JSON line of figures.

- ``orders_per_s``: limit orders placed + cancelled per second through python-binance's sync
  REST client (each placement and each cancellation counts as one order request);
- ``fanout_events_per_s``: market events per second received in total by N WebSocket clients
  (kline + bookTicker + aggTrade of one symbol) while the replay runs at speed "max";
- ``replay_bars_per_s``: bars per second replayed at speed "max" with no subscriber (spot and
  futures feeds of one symbol, each bar counted once per feed);
- ``kline_update_ms``: server time of one in-progress kline update round (what the sim does
  every 2 s of wall time at a running clock) for N clients each subscribed to every interval
  (5m .. 1w) of three futures symbols (36 continuous-kline streams), and the messages it sent.

Usage: ``python -m bench.sim_bench [--orders 300] [--clients 8] [--bars 20000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request

from loguru import logger

from exchange_sim.client import client_classes
from exchange_sim.server import SimServer
from models.simconfig import SimConfig


def _admin(urls, path: str, body: dict | None = None) -> dict:
    req = urllib.request.Request(f"{urls.admin}/{path}",
                                 data=json.dumps(body).encode() if body is not None else None,
                                 method="POST" if body is not None else "GET")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def bench_orders(n: int) -> float:
    srv = SimServer(SimConfig(scenario="gbm", speed=1.0, market="spot", synthetic_bars=1000,
                              spot_orders_per_10s=10**9, spot_weight_per_min=10**9))
    urls = srv.start_in_thread()
    try:
        client_cls, _, _ = client_classes(urls)
        c = client_cls(urls.api_key, urls.api_secret)
        c.timestamp_offset = c.get_server_time()["serverTime"] - int(time.time() * 1000)
        px = float(c.get_symbol_ticker(symbol="BTCUSDT")["price"])
        low = f"{px * 0.5:.2f}"
        t0 = time.perf_counter()
        for i in range(n):
            o = c.create_order(symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC",
                               quantity="0.001", price=low, newClientOrderId=f"b{i}")
            c.cancel_order(symbol="BTCUSDT", orderId=o["orderId"])
        dt = time.perf_counter() - t0
        return 2 * n / dt
    finally:
        srv.stop()


def bench_fanout(clients: int, bars: int) -> tuple[float, int]:
    import aiohttp
    srv = SimServer(SimConfig(scenario="gbm", speed=0, market="spot", interval="1m",
                              synthetic_bars=bars, warmup_bars=10))
    urls = srv.start_in_thread()
    streams = "btcusdt@kline_1m/btcusdt@bookTicker/btcusdt@aggTrade"
    per_bar = 4  # closed kline + new open kline + bookTicker + aggTrade

    async def run() -> tuple[float, int]:
        total = clients * bars * per_bar
        counts = [0] * clients
        async with aiohttp.ClientSession() as s:
            socks = [await s.ws_connect(f"{urls.ws}stream?streams={streams}", max_msg_size=0)
                     for _ in range(clients)]
            done = asyncio.Event()

            async def reader(i: int, ws) -> None:
                async for _ in ws:
                    counts[i] += 1
                    if sum(counts) >= total - clients * per_bar:
                        done.set()

            tasks = [asyncio.create_task(reader(i, w)) for i, w in enumerate(socks)]
            await asyncio.sleep(0.2)
            t0 = time.perf_counter()
            await asyncio.to_thread(_admin, urls, "speed", {"speed": "max"})
            try:
                await asyncio.wait_for(done.wait(), 300)
            except asyncio.TimeoutError:
                pass
            dt = time.perf_counter() - t0
            for t in tasks:
                t.cancel()
            for w in socks:
                await w.close()
        return sum(counts) / dt, sum(counts)

    try:
        return asyncio.run(run())
    finally:
        srv.stop()


def bench_replay(bars: int) -> float:
    srv = SimServer(SimConfig(scenario="gbm", speed=0, market="both", interval="1m",
                              synthetic_bars=bars, warmup_bars=10))
    urls = srv.start_in_thread()
    try:
        t0 = time.perf_counter()
        _admin(urls, "speed", {"speed": "max"})
        while True:
            st = _admin(urls, "status")
            if st["finished"]:
                break
            time.sleep(0.05)
        dt = time.perf_counter() - t0
        return sum(st["bars_replayed"].values()) / dt
    finally:
        srv.stop()


def bench_kline_updates(clients: int, rounds: int = 20) -> tuple[float, int]:
    import aiohttp
    srv = SimServer(SimConfig(scenario="gbm", speed=1.0, market="futures", interval="5m",
                              symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT"), synthetic_bars=2000,
                              warmup_bars=1000))
    srv.hub.kline_update_s = 0  # rounds are triggered here, not by the 2 s timer
    urls = srv.start_in_thread()
    ivs = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")
    streams = "/".join(f"{s.lower()}_perpetual@continuousKline_{iv}"
                       for s in ("BTCUSDT", "ETHUSDT", "SOLUSDT") for iv in ivs)

    async def run() -> tuple[float, int]:
        async with aiohttp.ClientSession() as s:
            socks = [await s.ws_connect(f"{urls.fws}market/stream?streams={streams}",
                                        max_msg_size=0) for _ in range(clients)]

            async def reader(ws) -> None:
                async for _ in ws:
                    pass

            tasks = [asyncio.create_task(reader(w)) for w in socks]
            await asyncio.sleep(0.2)
            spent, sent = 0.0, 0

            def one() -> tuple[float, int]:
                t0 = time.perf_counter()
                n = srv.hub.push_kline_updates()
                return time.perf_counter() - t0, n

            for _ in range(rounds):
                await asyncio.sleep(0.05)  # sim time moves: every candle changed
                dt, n = await asyncio.to_thread(srv.call, one)
                spent, sent = spent + dt, sent + n
            for t in tasks:
                t.cancel()
            for w in socks:
                await w.close()
        return spent / rounds * 1000, sent // rounds

    try:
        return asyncio.run(run())
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the three measurements and print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--orders", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--bars", type=int, default=20000)
    ap.add_argument("--fanout-bars", type=int, default=1000)
    a = ap.parse_args(argv)
    logger.remove()
    logger.add(sys.stderr, level="WARNING")
    orders = bench_orders(a.orders)
    fan, n_events = bench_fanout(a.clients, a.fanout_bars)
    replay = bench_replay(a.bars)
    tick_ms, tick_msgs = bench_kline_updates(a.clients)
    print(json.dumps({
        "bench": "sim", "orders_per_s": round(orders, 1), "orders": 2 * a.orders,
        "fanout_events_per_s": round(fan, 1), "fanout_clients": a.clients,
        "fanout_events": n_events, "replay_bars_per_s": round(replay, 1),
        "replay_bars": 2 * a.bars, "kline_update_ms": round(tick_ms, 2),
        "kline_update_messages": tick_msgs,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
