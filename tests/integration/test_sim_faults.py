"""Every fault type of POST /_sim/fault, observed through python-binance."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request

import pytest
from binance.exceptions import BinanceAPIException
from sim_harness import SYM, Sim, fast, flat, recv, recv_until, resync

ROWS = flat(40)


@pytest.fixture()
def sim() -> Sim:
    s = Sim(spot=ROWS, futures=ROWS)
    yield s
    s.stop()


def _limit(c, cid: str) -> dict:
    return c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                          quantity="0.001", price="40000", newClientOrderId=cid)


def test_order_5xx_before_and_after(sim: Sim) -> None:
    c = sim.client()
    sim.fault(type="order_5xx", count=1, when="before")
    with pytest.raises(BinanceAPIException) as e:
        _limit(c, "before-1")
    assert e.value.status_code == 503 and e.value.code == -1008
    assert c.get_open_orders(symbol=SYM) == []  # nothing happened
    sim.fault(type="order_5xx", count=1, when="after")
    with pytest.raises(BinanceAPIException) as e:
        _limit(c, "after-1")
    assert e.value.status_code == 503 and e.value.code == -1007
    (o,) = c.get_open_orders(symbol=SYM)  # ...but the order exists (unknown outcome)
    assert o["clientOrderId"] == "after-1"
    # queries are not order requests: unaffected; the next order works again
    _limit(c, "ok-1")
    sim.fault(type="order_5xx", count=1, when="after", status=500)
    with pytest.raises(BinanceAPIException) as e:
        c.cancel_order(symbol=SYM, origClientOrderId="ok-1")
    assert e.value.status_code == 500
    assert [o["clientOrderId"] for o in c.get_open_orders(symbol=SYM)] == ["after-1"]


def test_forced_429_418_and_latency(sim: Sim) -> None:
    c = sim.client()
    sim.fault(type="force_429", count=1)
    sim.fault(type="force_418", count=1)
    with pytest.raises(BinanceAPIException) as e:
        c.get_server_time()
    assert e.value.status_code == 429 and "Retry-After" in e.value.response.headers
    with pytest.raises(BinanceAPIException) as e:
        c.futures_time()
    assert e.value.status_code == 418
    assert "serverTime" in c.get_server_time()
    r = sim.fault(type="latency", ms=20, count=2)
    assert r["faults"]["latency_requests_left"] == 2
    c.get_server_time()
    c.get_server_time()
    assert sim.admin("status")["faults"]["latency_requests_left"] == 0


def test_clock_jump(sim: Sim) -> None:
    c = sim.client()
    t0 = c.get_server_time()["serverTime"]
    sim.fault(type="clock_jump", ms=120_000)
    assert c.get_server_time()["serverTime"] == t0 + 120_000
    with pytest.raises(BinanceAPIException) as e:  # our offset is now 2 minutes stale
        c.get_account()
    assert e.value.code == -1021
    resync(c)
    assert c.get_account()["accountType"] == "SPOT"
    sim.fault(type="clock_jump", ms=-60_000)
    assert c.get_server_time()["serverTime"] == t0 + 60_000


def test_drop_stall_and_expire_streams(sim: Sim) -> None:
    async def scenario() -> None:
        c = await sim.aclient()
        bsm = sim.BSM(c)
        k = fast(bsm.kline_socket(SYM, "1m"))
        fu = fast(bsm.futures_user_socket())
        async with k, fu:
            await asyncio.sleep(0.2)
            # stall: connections stay open, bars close, nothing is sent
            await asyncio.to_thread(sim.fault, type="stall_ws", seconds=60)
            await sim.aadvance(c, 1)
            with pytest.raises(asyncio.TimeoutError):
                await recv(k, timeout=0.7)
            assert (await asyncio.to_thread(sim.admin, "status"))["connections"][
                "spot:market"] == 1
            await asyncio.to_thread(sim.fault, type="clear")
            await sim.aadvance(c, 1)
            assert (await recv(k))["e"] == "kline"
            # expire listen keys: listenKeyExpired then the stream is closed
            await asyncio.to_thread(sim.fault, type="expire_listen_keys")
            msgs = await recv_until(fu, lambda m: m.get("e") == "listenKeyExpired")
            assert len(msgs[-1]["listenKey"]) == 64
            fu.MAX_RECONNECTS = 0  # the key is gone: stop python-binance retrying with it
            # drop every socket: python-binance reports the error, reconnects (after ~1 s),
            # and the next closed bar arrives on the new connection
            r = await asyncio.to_thread(sim.fault, type="drop_ws")
            assert r["dropped"] >= 1
            err = await recv_until(k, lambda m: m.get("e") == "error")
            assert err[-1]["type"] in ("ConnectionClosedError", "BinanceWebsocketClosed",
                                       "ConnectionClosedOK", "IncompleteReadError")
            for _ in range(50):
                st = await asyncio.to_thread(sim.admin, "status")
                if st["connections"].get("spot:market"):
                    break
                await asyncio.sleep(0.1)
            await sim.aadvance(c, 1)
            ev = await recv_until(k, lambda m: m.get("e") == "kline", timeout=5)
            assert ev[-1]["k"]["x"] is True
        await c.close_connection()

    asyncio.run(scenario())


def test_fault_log_status_and_validation(sim: Sim) -> None:
    from loguru import logger
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(str(m)), level="WARNING")
    try:
        sim.fault(type="force_429", count=3)
    finally:
        logger.remove(sink)
    logged = [json.loads(x[x.index("{"):]) for x in lines if "FAULT_INJECTED" in x]
    assert logged and logged[0]["event"] == "FAULT_INJECTED" and logged[0]["count"] == 3
    st = sim.admin("status")
    assert st["faults"]["forced_pending"] == [429, 429, 429]
    assert st["fault_history"][-1]["type"] == "force_429"
    req = urllib.request.Request(f"{sim.urls.admin}/fault", method="POST",
                                 data=json.dumps({"type": "meteor"}).encode())
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=5)
    assert e.value.code == 400
