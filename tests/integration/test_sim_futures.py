"""USDT-M futures lifecycle through python-binance against the sim: orders, modify, positions,
funding at its timestamp, conditional (algo) orders, listenKey user stream."""

from __future__ import annotations

import asyncio

import pytest
from binance.exceptions import BinanceAPIException
from sim_harness import SYM, T0, D, M, Sim, fast, flat, recv_until, resync

FUND_T = T0 + 8 * M  # funding settles when the 8th bar closes


def _rows() -> list:
    rows = flat(5)
    rows += [(50_000, 50_005, 49_800, 49_950, 0.5)]   # trades through 49 900, thin: 0.05 cap
    rows += [(49_950, 49_960, 49_850, 49_900, 5.0)]
    rows += flat(20)
    return rows


def test_futures_lifecycle_positions_funding_and_user_stream() -> None:
    async def scenario(sim: Sim) -> None:
        c = await sim.aclient()
        bsm = sim.BSM(c)
        us = fast(bsm.futures_user_socket())
        async with us:
            assert (await c.futures_change_leverage(symbol=SYM, leverage=10))["leverage"] == 10
            o = await c.futures_create_order(symbol=SYM, side="BUY", type="LIMIT",
                                             timeInForce="GTC", quantity="0.1", price="49900",
                                             newClientOrderId="f-1")
            assert o["status"] == "NEW" and o["positionSide"] == "BOTH"
            ev = (await recv_until(us, lambda m: m.get("e") == "ORDER_TRADE_UPDATE"))[-1]
            assert (ev["o"]["x"], ev["o"]["X"], ev["o"]["c"]) == ("NEW", "NEW", "f-1")

            m = await c.futures_modify_order(symbol=SYM, orderId=o["orderId"], side="BUY",
                                             quantity="0.1", price="49890")
            assert D(m["price"]) == D("49890")
            ev = (await recv_until(us, lambda m: m.get("e") == "ORDER_TRADE_UPDATE"))[-1]
            assert ev["o"]["x"] == "AMENDMENT"

            await sim.aadvance(c, 1)  # 10 % of 0.5 = 0.05 of 0.1
            ev = (await recv_until(us, lambda m: m.get("e") == "ORDER_TRADE_UPDATE"))[-1]
            assert (ev["o"]["x"], ev["o"]["X"], D(ev["o"]["l"])) == (
                "TRADE", "PARTIALLY_FILLED", D("0.05"))
            acc = (await recv_until(us, lambda m: m.get("e") == "ACCOUNT_UPDATE"))[-1]
            assert D(acc["a"]["P"][0]["pa"]) == D("0.05")

            await sim.aadvance(c, 1)
            ev = (await recv_until(us, lambda m: m.get("e") == "ORDER_TRADE_UPDATE"))[-1]
            assert ev["o"]["X"] == "FILLED" and D(ev["o"]["ap"]) == D("49890")

            (pos,) = await c.futures_position_information(symbol=SYM)
            assert D(pos["positionAmt"]) == D("0.1") and D(pos["entryPrice"]) == D("49890")
            assert pos["leverage"] == "10"
            trades = await c.futures_account_trades(symbol=SYM)
            fees = sum(D(t["commission"]) for t in trades)
            assert fees == D("0.1") * D("49890") * D("0.0002")  # maker
            bal = await c.futures_account_balance()
            assert D(bal[0]["balance"]) == D("10000") - fees

            # funding settles exactly at its timestamp: nothing one bar before
            t = await sim.aadvance(c, 0)
            while t < FUND_T - M:
                t = await sim.aadvance(c, 1)
            assert await c.futures_income_history(incomeType="FUNDING_FEE") == []
            await sim.aadvance(c, 1)
            (inc,) = await c.futures_income_history(incomeType="FUNDING_FEE")
            assert inc["time"] == FUND_T
            mark = D((await c.futures_mark_price(symbol=SYM))["markPrice"])
            assert D(inc["income"]) == -D("0.1") * mark * D("0.0001")
            acc = (await recv_until(us, lambda m: m.get("e") == "ACCOUNT_UPDATE"
                                    and m["a"]["m"] == "FUNDING_FEE"))[-1]
            assert acc["a"]["B"][0]["a"] == "USDT"
            fr = await c.futures_funding_rate(symbol=SYM)
            assert [r["fundingTime"] for r in fr] == [FUND_T]
        await c.close_connection()

    with Sim(futures=_rows(), funding=[(FUND_T, D("0.0001"))]) as sim:
        asyncio.run(scenario(sim))


def test_algo_stop_order_reduce_only_and_errors() -> None:
    rows = flat(6) + [(50_000, 50_005, 48_900, 49_000, 100.0)] + flat(5, 49_000)
    with Sim(futures=rows) as sim:
        c = sim.client()
        c.futures_create_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.01")
        stop = c.futures_create_order(symbol=SYM, side="SELL", type="STOP_MARKET",
                                      stopPrice="49500", quantity="0.01", reduceOnly="true")
        assert stop["algoType"] == "CONDITIONAL" and stop["algoStatus"] == "NEW"
        assert [a["algoId"] for a in c.futures_get_open_algo_orders(symbol=SYM)] == [
            stop["algoId"]]
        assert c.futures_get_open_orders(symbol=SYM) == []
        with pytest.raises(BinanceAPIException) as e:
            c.futures_create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                                   quantity="0.0001", price="40000")
        assert e.value.code == -1111  # more decimals than the step size allows
        with pytest.raises(BinanceAPIException) as e:
            c.futures_create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                                   quantity="0.001", price="40000")
        assert e.value.code == -4164  # notional below 100 USDT
        sim.advance(2)  # a quiet bar, then the drop through 49 500
        resync(c)
        (pos,) = c.futures_position_information(symbol=SYM)
        assert D(pos["positionAmt"]) == 0
        assert c.futures_get_open_algo_orders(symbol=SYM) == []
        with pytest.raises(BinanceAPIException) as e:
            c.futures_create_order(symbol=SYM, side="SELL", type="MARKET", quantity="0.01",
                                   reduceOnly="true")
        assert e.value.code == -2022
        acct = c.futures_account()
        assert D(acct["totalWalletBalance"]) < D("10000")  # lost on the stop + fees
        types = {r["incomeType"] for r in c.futures_income_history()}
        assert {"REALIZED_PNL", "COMMISSION"} <= types
