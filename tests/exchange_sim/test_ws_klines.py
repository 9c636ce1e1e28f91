"""Kline streams like Binance's: the candle in progress (``"x": false``) every couple of seconds
of wall time while the clock runs, every interval at or above the replayed one (aggregated),
REST and stream agreeing, finer intervals refused with a reason, a bounded rate, and each close
before the next candle. Through real WebSocket clients (aiohttp, python-binance)."""

from __future__ import annotations

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from loguru import logger

from exchange_sim.client import client_classes
from exchange_sim.marketdata import Bars
from exchange_sim.server import SimServer
from models.simconfig import SimConfig

M = 60_000
FIVE = 5 * M
T0 = 1_700_000_000_000 // 86_400_000 * 86_400_000  # a day boundary
SYM = "BTCUSDT"
KLINE_KEYS = {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q", "V", "Q", "B"}
INTERVALS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d", "3d", "1w")


def _bars(market: str, n: int, step: int) -> Bars:
    ot = [T0 + i * step for i in range(n)]
    o = [50_000.0 + 10 * (i % 50) for i in range(n)]
    return Bars(SYM, market, "5m" if step == FIVE else "1m", ot, o, [x + 60 for x in o],
                [x - 40 for x in o], [x + 20 for x in o], [100.0] * n)


def _sim(*, speed: float | str, start: int, step: int = FIVE, n: int = 600,
         update_s: float | None = None) -> SimServer:
    cfg = SimConfig(speed=speed, symbols=(SYM,), market="both", interval="5m" if step == FIVE
                    else "1m", start=str(start), warmup_bars=0)
    srv = SimServer(cfg, bars={(m, SYM): _bars(m, n, step) for m in ("spot", "futures")},
                    funding={SYM: []})
    if update_s is not None:
        srv.hub.kline_update_s = update_s
    srv.start_in_thread()
    return srv


async def _collect(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[dict]:
    out: list[dict] = []
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except asyncio.TimeoutError:
            break
        if msg.type == aiohttp.WSMsgType.TEXT:
            out.append(json.loads(msg.data))
    return out


def test_speed_1_subscriber_hears_the_candle_in_progress_within_5_s() -> None:
    start = T0 + 288 * FIVE + 90_000  # 1.5 min into a 5m bar
    srv = _sim(speed=1.0, start=start)
    assert srv.urls is not None
    _, AsyncClient, BSM = client_classes(srv.urls)

    async def scenario() -> None:
        client = await AsyncClient.create(srv.urls.api_key, srv.urls.api_secret)
        bsm = BSM(client)
        t_sub = time.monotonic()
        async with aiohttp.ClientSession() as s, \
                s.ws_connect(srv.urls.ws + "ws/btcusdt@kline_5m") as spot, \
                bsm.kline_futures_socket(SYM, "15m") as fut:  # python-binance, as the bot uses
            ev = await spot.receive_json(timeout=5)
            fev = await asyncio.wait_for(fut.recv(), 5)
            waited = time.monotonic() - t_sub
        await client.close_connection()
        assert waited < 5.0
        k = ev["k"]
        assert ev["e"] == "kline" and ev["s"] == SYM and set(k) == KLINE_KEYS
        bar = T0 + 288 * FIVE
        assert (k["t"], k["T"], k["i"], k["x"], k["s"]) == (bar, bar + FIVE - 1, "5m", False, SYM)
        o, h, lo, c = (Decimal(k[x]) for x in "ohlc")
        assert o == Decimal(50_000 + 10 * (288 % 50)) and lo <= c <= h and lo <= o <= h
        assert 0 < Decimal(k["v"]) < 100 and k["n"] > 0  # part of the bar's volume
        assert start <= ev["E"] < start + 10_000 and ev["E"] < bar + FIVE
        # futures continuous kline: pair + contract type, no "s" inside k, 15m aggregated
        assert fev["e"] == "continuous_kline" and fev["ps"] == SYM and fev["ct"] == "PERPETUAL"
        fk = fev["k"]
        assert set(fk) == KLINE_KEYS - {"s"} and fk["x"] is False and fk["i"] == "15m"
        assert fk["t"] == (start // (15 * M)) * 15 * M and fk["T"] == fk["t"] + 15 * M - 1

    try:
        asyncio.run(scenario())
    finally:
        srv.stop()


def test_rest_klines_agree_with_the_stream() -> None:
    # 01:13:20 on day 2: the 15m and 1h candles hold two closed 5m bars and one 3m20s in
    srv = _sim(speed=1.0, start=T0 + 302 * FIVE + 200_000)
    assert srv.urls is not None
    streams = [f"btcusdt@kline_{iv}" for iv in ("5m", "15m", "1h", "1d")]

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                srv.urls.ws + "stream?streams=" + "/".join(streams)) as ws:
            return await _collect(ws, 2.6)

    try:
        got = asyncio.run(scenario())
        assert {m["stream"] for m in got} == set(streams)
        for m in got:  # what the stream said is what REST says at that sim time
            d, iv = m["data"], m["data"]["k"]["i"]
            iv_ms = {"5m": FIVE, "15m": 15 * M, "1h": 60 * M, "1d": 1_440 * M}[iv]
            (row,) = srv.call(lambda d=d, iv_ms=iv_ms: srv.feeds[("spot", SYM)].klines(
                iv_ms, d["E"], None, None, 1))
            k = d["k"]
            assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"],
                    k["V"], k["Q"]] == row[:11]
        # and over HTTP, at a paused instant, against the candle the stream would send
        srv.call(lambda: srv.set_speed(0))
        client = client_classes(srv.urls)[0](srv.urls.api_key, srv.urls.api_secret)
        for name in streams:
            iv = name.rsplit("_", 1)[1]
            rest = client.get_klines(symbol=SYM, interval=iv, limit=2)[-1]
            _, payload = srv.call(lambda name=name: srv.hub.payloads.current_kline(
                "spot", name, srv.now_ms()))
            k = payload["k"]
            assert [k["t"], k["o"], k["h"], k["l"], k["c"], k["v"], k["T"]] == rest[:7]
            assert k["x"] is False
        fut = client.futures_klines(symbol=SYM, interval="15m", limit=1)[-1]
        _, payload = srv.call(lambda: srv.hub.payloads.current_kline(
            "futures", "btcusdt_perpetual@continuousKline_15m", srv.now_ms()))
        assert [payload["k"][x] for x in ("t", "o", "h", "l", "c", "v")] == fut[:6]
        assert Decimal(fut[2]) > Decimal(fut[1])  # two closed 5m bars are in: not flat
    finally:
        srv.stop()


def test_finer_interval_or_unreplayed_symbol_is_refused_with_a_reason() -> None:
    warnings: list[str] = []
    sink = logger.add(lambda m: warnings.append(str(m)), level="WARNING")
    srv = _sim(speed=1.0, start=T0 + 100 * FIVE)
    assert srv.urls is not None

    async def scenario() -> None:
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(srv.urls.ws + "ws/btcusdt@kline_1m") as ws:
                msg = await ws.receive(timeout=5)
                assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1008
                assert msg.extra == "btcusdt@kline_1m: 1m klines are finer than the " \
                                    "replayed 5m bars"
            async with s.ws_connect(srv.urls.fws + "market/stream?streams=btcusdt_perpetual"
                                    "@continuousKline_5m/btcusdt_perpetual@continuousKline_1m"
                                    ) as ws:
                msg = await ws.receive(timeout=5)
                assert msg.data == 1008 and "continuousKline_1m: 1m klines are finer" in msg.extra
            async with s.ws_connect(srv.urls.ws + "ws") as ws:
                await ws.send_json({"method": "SUBSCRIBE", "id": 1,
                                    "params": ["btcusdt@kline_15m", "btcusdt@kline_1s"]})
                r = await ws.receive_json(timeout=5)
                assert r["id"] == 1 and r["error"]["code"] == 2
                assert "btcusdt@kline_1s: 1s klines are finer" in r["error"]["msg"]
                await ws.send_json({"method": "SUBSCRIBE", "id": 2,
                                    "params": ["ethusdt@kline_5m"]})
                r = await ws.receive_json(timeout=5)
                assert "ETHUSDT is not replayed on spot" in r["error"]["msg"]
                await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 3})
                assert (await ws.receive_json(timeout=5))["result"] == []  # nothing half-added
                await ws.send_json({"method": "SUBSCRIBE", "id": 4,
                                    "params": ["btcusdt@kline_1w"]})
                assert await ws.receive_json(timeout=5) == {"result": None, "id": 4}
                ev = await ws.receive_json(timeout=5)  # served, aggregated, Monday-aligned
                assert ev["k"]["i"] == "1w" and ev["k"]["x"] is False
                assert (ev["k"]["t"] - 4 * 86_400_000) % (7 * 86_400_000) == 0

    try:
        asyncio.run(scenario())
    finally:
        srv.stop()
        logger.remove(sink)
    refused = [w for w in warnings if "refused" in w]
    assert len(refused) == 4 and all("WARNING" in w for w in refused)
    assert "btcusdt@kline_1m refused (connect): 1m klines are finer than the replayed 5m " \
           "bars" in refused[0]


def test_at_most_one_update_per_stream_per_period() -> None:
    srv = _sim(speed=1.0, start=T0 + 300 * FIVE + 10_000, update_s=0.25)
    assert srv.urls is not None
    streams = [f"btcusdt@kline_{iv}" for iv in INTERVALS]

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                srv.urls.ws + "stream?streams=" + "/".join(streams)) as ws:
            return await _collect(ws, 2.0)

    try:
        got = asyncio.run(scenario())
    finally:
        srv.stop()
    by: dict[str, list[int]] = {}
    for m in got:
        assert m["data"]["k"]["x"] is False
        by.setdefault(m["stream"], []).append(m["data"]["E"])
    assert set(by) == set(streams)
    for name, times in by.items():
        assert 2 <= len(times) <= 2.0 / 0.25 + 1, (name, times)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        assert min(gaps) >= 200, (name, times)  # sim ms at speed 1: one per period at most


def test_fast_replay_sends_every_close_before_the_next_candle() -> None:
    srv = _sim(speed=240.0, start=T0 + 100 * M, step=M, n=400, update_s=0.1)  # 1m bar / 0.25 s
    assert srv.urls is not None
    streams = {"btcusdt@kline_1m": M, "btcusdt@kline_3m": 3 * M, "btcusdt@kline_5m": FIVE}

    async def scenario() -> list[dict]:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                srv.urls.ws + "stream?streams=" + "/".join(streams)) as ws:
            return await _collect(ws, 3.0)

    try:
        got = asyncio.run(scenario())
    finally:
        srv.stop()
    for name, iv_ms in streams.items():
        ks = [m["data"]["k"] for m in got if m["stream"] == name]
        assert sum(k["x"] for k in ks) >= 2 and any(not k["x"] for k in ks)
        for a, b in zip(ks, ks[1:], strict=False):
            assert b["t"] in (a["t"], a["t"] + iv_ms), (name, a, b)
            if b["t"] != a["t"]:
                assert a["x"] is True, (name, a, b)  # the close came first
            else:
                assert a["x"] is False  # nothing after a close of the same candle
        closes = [k["t"] for k in ks if k["x"]]
        assert closes == sorted(set(closes))  # each candle closed once


@pytest.mark.parametrize("speed", [0, "max"])
def test_paused_or_max_speed_sends_closes_only(speed: Any) -> None:
    srv = _sim(speed=speed, start=T0 + 100 * FIVE, update_s=0.1)
    assert srv.urls is not None

    async def scenario() -> tuple[list[dict], int]:
        async with aiohttp.ClientSession() as s, s.ws_connect(
                srv.urls.ws + "ws/btcusdt@kline_15m") as ws:
            await asyncio.sleep(0.3)
            if speed == 0:
                await asyncio.to_thread(srv.call, lambda: srv.advance(ms=60_000))
            pushed = await asyncio.to_thread(srv.call, srv.hub.push_kline_updates)
            return await _collect(ws, 0.6), pushed

    try:
        got, pushed = asyncio.run(scenario())
    finally:
        srv.stop()
    assert pushed == 0
    if speed == 0:
        assert got == []  # paused: nothing trades; advancing inside a bar closes nothing
    else:  # max: whatever came was sent as a 5m bar closed (the 15m candle so far), no ticks
        assert all(m["E"] % FIVE == 0 for m in got)


def test_a_candle_never_overtakes_the_close_before_it() -> None:
    """The clock runs on between replaying what is due and reading the time for the candle in
    progress; the candle must still stop short of a close not replayed yet."""
    from exchange_sim.replay import SimClock
    from exchange_sim.ws import Conn

    close = T0 + 101 * FIVE
    for lead in range(1, 6):  # start a few ms before the close: one push straddles it
        cfg = SimConfig(speed=0, symbols=(SYM,), market="spot", interval="5m",
                        start=str(close - lead), warmup_bars=0)
        srv = SimServer(cfg, bars={("spot", SYM): _bars("spot", 300, FIVE)})
        ticks = iter(range(10**6))
        srv.clock = SimClock(close - lead, 1.0,
                             wall=lambda ticks=ticks: next(ticks) / 1000)  # 1 ms per read
        srv.replay.seek(close - lead)
        c = Conn(ws=None, request=None, market="spot", kind="market",  # type: ignore[arg-type]
                 streams={"btcusdt@kline_5m", "btcusdt@kline_15m"})
        srv.hub.conns.add(c)
        for _ in range(8):
            srv.hub.push_kline_updates()
        ks: dict[str, list[dict]] = {}
        while not c.queue.empty():
            k = json.loads(c.queue.get_nowait())["k"]
            ks.setdefault(k["i"], []).append(k)
        assert [k["x"] for k in ks["5m"]].count(True) == 1
        for seq in ks.values():
            for a, b in zip(seq, seq[1:], strict=False):
                assert b["t"] == a["t"] or a["x"] is True, (lead, a, b)
