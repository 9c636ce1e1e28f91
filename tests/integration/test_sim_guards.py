"""Auth and guards through python-binance: API key, signature, timestamp/recvWindow against SIM
time, weight/order-count headers, 429 with Retry-After, then the 418 ban."""

from __future__ import annotations

import time

import pytest
from binance.exceptions import BinanceAPIException
from sim_harness import SYM, Sim, flat


@pytest.fixture(scope="module")
def sim() -> Sim:
    s = Sim(spot=flat(30), futures=flat(30))
    yield s
    s.stop()


def test_key_and_signature_errors(sim: Sim) -> None:
    bad_secret = sim.client(secret="x" * 64)
    with pytest.raises(BinanceAPIException) as e:
        bad_secret.get_account()
    assert (e.value.status_code, e.value.code) == (400, -1022)
    assert e.value.message == "Signature for this request is not valid."
    unknown = sim.client(key="A" * 64)
    with pytest.raises(BinanceAPIException) as e:
        unknown.futures_account()
    assert (e.value.status_code, e.value.code) == (401, -2015)
    anon = sim.Client(None, None)
    with pytest.raises(BinanceAPIException) as e:
        anon.futures_stream_get_listen_key()
    assert (e.value.status_code, e.value.code) == (401, -2014)


def test_timestamps_checked_against_sim_time(sim: Sim) -> None:
    c = sim.Client(sim.urls.api_key, sim.urls.api_secret)  # offset 0: wall clock, years ahead
    with pytest.raises(BinanceAPIException) as e:
        c.get_account()
    assert e.value.code == -1021 and "ahead of the server's time" in e.value.message
    server = c.get_server_time()["serverTime"]
    assert server == sim.sim_time() < time.time() * 1000  # sim time, not wall time
    c.timestamp_offset = server - int(time.time() * 1000) - 20_000  # 20 s stale
    with pytest.raises(BinanceAPIException) as e:
        c.get_account()
    assert e.value.code == -1021 and "outside of the recvWindow" in e.value.message
    c.timestamp_offset += 20_000
    assert c.get_account()["accountType"] == "SPOT"


def test_usage_headers_per_market(sim: Sim) -> None:
    c = sim.client()
    c.get_order_book(symbol=SYM, limit=100)
    h = c.response.headers
    assert int(h["X-MBX-USED-WEIGHT-1M"]) >= 5  # case-insensitive: spot sends ...-1m
    c.create_test_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                        quantity="0.001", price="40000")
    c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC", quantity="0.001",
                   price="40000")
    h = c.response.headers
    assert int(h["X-MBX-ORDER-COUNT-10S"]) >= 1 and int(h["X-MBX-ORDER-COUNT-1D"]) >= 1
    c.futures_create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.01", price="40000")
    h = c.response.headers
    assert int(h["X-MBX-ORDER-COUNT-1M"]) == 1 and "X-MBX-USED-WEIGHT-1M" in h


def test_429_then_418_ban() -> None:
    with Sim(futures=flat(10), futures_weight_per_min=10, ban_after_429=2,
             ban_seconds=600) as sim:
        sim.srv.limiters["futures"].clock = lambda: 1_000.0  # freeze the wall-time window
        c = sim.client()
        seen = []
        for _ in range(16):
            try:
                c.futures_klines(symbol=SYM, interval="1m", limit=10)
                seen.append(200)
            except BinanceAPIException as e:
                seen.append(e.status_code)
                if e.status_code == 429:
                    assert e.code == -1003 and int(e.response.headers["Retry-After"]) > 0
                if e.status_code == 418:
                    assert "banned until" in e.message
                    assert int(e.response.headers["Retry-After"]) > 0
        first_429 = seen.index(429)
        assert set(seen[:first_429]) == {200} and first_429 >= 8
        assert seen[first_429:first_429 + 2] == [429, 429]
        assert set(seen[first_429 + 2:]) == {418}


def test_order_rate_limit() -> None:
    with Sim(spot=flat(10), spot_orders_per_10s=2) as sim:
        sim.srv.limiters["spot"].clock = lambda: 2_000.0
        c = sim.client()
        for p in ("40000", "40001"):
            c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.001", price=p)
        with pytest.raises(BinanceAPIException) as e:
            c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.001", price="40002")
        assert (e.value.status_code, e.value.code) == (429, -1015)
        assert len(c.get_open_orders(symbol=SYM)) == 2  # the rejected order does not exist
