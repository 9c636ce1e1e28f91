"""Market streams through python-binance's socket manager: raw and combined forms, spot and
futures (incl. ``<pair>_perpetual@continuousKline``), events only when a bar closes."""

from __future__ import annotations

import asyncio

from sim_harness import SYM, T0, D, M, Sim, fast, flat, recv

ROWS = flat(5) + [(50_000, 50_100, 49_900, 50_050, 12.5)] + flat(10, 50_050)


def test_spot_streams_raw_and_combined() -> None:
    async def scenario(sim: Sim) -> None:
        c = await sim.aclient()
        bsm = sim.BSM(c)
        k = fast(bsm.kline_socket(SYM, "1m"))
        mx = fast(bsm.multiplex_socket(["btcusdt@bookTicker", "btcusdt@aggTrade",
                                        "btcusdt@depth5"]))
        async with k, mx:
            await asyncio.sleep(0.2)  # let the connections register before the bar closes
            await sim.aadvance(c, 1)
            closed = await recv(k)
            assert closed["e"] == "kline" and closed["s"] == SYM
            kk = closed["k"]
            assert (kk["t"], kk["T"], kk["i"], kk["x"]) == (T0 + 5 * M, T0 + 6 * M - 1, "1m",
                                                            True)
            assert (D(kk["o"]), D(kk["h"]), D(kk["l"]), D(kk["c"]), D(kk["v"])) == (
                D(50_000), D(50_100), D(49_900), D(50_050), D("12.5"))
            opened = await recv(k)
            assert opened["k"]["t"] == T0 + 6 * M and opened["k"]["x"] is False
            assert D(opened["k"]["o"]) == D(opened["k"]["c"]) == D(50_050)
            got = {}
            for _ in range(3):
                m = await recv(mx)
                got[m["stream"]] = m["data"]
            bt = got["btcusdt@bookTicker"]
            assert D(bt["a"]) - D(bt["b"]) == D("0.01") and D(bt["b"]) == D(50_050)
            assert got["btcusdt@aggTrade"]["e"] == "aggTrade"
            assert len(got["btcusdt@depth5"]["bids"]) == 5
        await c.close_connection()

    with Sim(spot=ROWS) as sim:
        asyncio.run(scenario(sim))


def test_futures_continuous_kline_and_mark_price() -> None:
    async def scenario(sim: Sim) -> None:
        c = await sim.aclient()
        bsm = sim.BSM(c)
        ck = fast(bsm.kline_futures_socket(SYM, "1m"))  # market/ws/btcusdt_perpetual@...
        mp = fast(bsm.symbol_mark_price_socket(SYM))  # market/stream?streams=...@markPrice@1s
        plain = fast(bsm.futures_multiplex_socket(["btcusdt@kline_1m"]))
        async with ck, mp, plain:
            await asyncio.sleep(0.2)
            await sim.aadvance(c, 1)
            ev = await recv(ck)
            assert ev["e"] == "continuous_kline" and ev["ps"] == SYM and ev["ct"] == "PERPETUAL"
            assert ev["k"]["x"] is True and D(ev["k"]["c"]) == D(50_050)
            m = await recv(mp)
            assert m["data"]["e"] == "markPriceUpdate" and D(m["data"]["p"]) == D(50_050)
            k = await recv(plain)
            assert k["stream"] == "btcusdt@kline_1m" and k["data"]["k"]["x"] is True
            status = await asyncio.to_thread(sim.admin, "status")
            assert status["connections"]["futures:market"] == 3
        await c.close_connection()

    with Sim(futures=ROWS) as sim:
        asyncio.run(scenario(sim))


def test_no_events_without_a_closed_bar_and_subscribe_method() -> None:
    async def scenario(sim: Sim) -> None:
        import aiohttp
        async with aiohttp.ClientSession() as s, s.ws_connect(sim.urls.ws + "ws") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 7})
            assert await ws.receive_json(timeout=5) == {"result": None, "id": 7}
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
            assert (await ws.receive_json(timeout=5))["result"] == ["btcusdt@kline_1m"]
            await asyncio.to_thread(sim.admin, "advance", {"ms": 30_000})  # half a bar
            await asyncio.to_thread(sim.advance, 1)
            ev = await ws.receive_json(timeout=5)
            assert ev["k"]["t"] == T0 + 5 * M and ev["k"]["x"] is True

    with Sim(spot=ROWS) as sim:
        asyncio.run(scenario(sim))


def test_server_pings_and_connection_max_age() -> None:
    async def scenario(sim: Sim) -> None:
        import aiohttp
        async with aiohttp.ClientSession() as s, s.ws_connect(
                sim.urls.ws + "ws/btcusdt@kline_1m", autoping=False) as ws:
            kinds = []
            while True:
                msg = await ws.receive(timeout=10)
                kinds.append(msg.type)
                if msg.type == aiohttp.WSMsgType.PING:
                    await ws.pong(msg.data)
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                    break
            assert aiohttp.WSMsgType.PING in kinds
            assert kinds[-1] in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)

    with Sim(spot=ROWS, ws_ping_interval_s=0.2, ws_max_age_s=1.0) as sim:
        asyncio.run(scenario(sim))
