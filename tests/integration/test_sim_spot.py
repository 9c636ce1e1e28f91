"""Spot order lifecycle through python-binance against the sim: REST + WS-API user stream."""

from __future__ import annotations

import asyncio

import pytest
from binance.exceptions import BinanceAPIException
from sim_harness import SYM, D, Sim, fast, flat, recv_until


def _rows() -> list:
    rows = flat(5)
    rows += [(50_000, 50_005, 49_800, 49_950, 0.05)]   # dips through 49 900, thin volume
    rows += [(49_950, 49_960, 49_850, 49_900, 0.05)]   # again
    rows += flat(5)
    return rows


def test_limit_buy_partial_fill_fill_balances_and_user_stream() -> None:
    async def scenario(sim: Sim) -> None:
        c = await sim.aclient()
        bsm = sim.BSM(c)
        us = fast(bsm.user_socket())
        async with us:
            o = await c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                                     quantity="0.01", price="49900", newClientOrderId="grid-1")
            assert o["status"] == "NEW" and o["clientOrderId"] == "grid-1"
            assert o["price"] == "49900.00000000" and o["fills"] == []
            acct = await c.get_account()
            usdt = next(b for b in acct["balances"] if b["asset"] == "USDT")
            assert D(usdt["locked"]) == D("499") and D(usdt["free"]) == D("9501")
            msgs = await recv_until(us, lambda m: m.get("e") == "executionReport")
            er = msgs[-1]
            assert (er["x"], er["X"], er["c"], er["s"]) == ("NEW", "NEW", "grid-1", SYM)

            # duplicate client order id among open orders
            with pytest.raises(BinanceAPIException) as e:
                await c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                                     quantity="0.01", price="49000", newClientOrderId="grid-1")
            assert e.value.code == -2010

            await sim.aadvance(c, 1)  # 10 % of 0.05 = 0.005 fills
            msgs = await recv_until(us, lambda m: m.get("e") == "executionReport")
            er = msgs[-1]
            assert (er["x"], er["X"], D(er["l"]), D(er["L"])) == (
                "TRADE", "PARTIALLY_FILLED", D("0.005"), D("49900"))
            assert er["m"] is True and D(er["z"]) == D("0.005")
            q = await c.get_order(symbol=SYM, origClientOrderId="grid-1")
            assert q["status"] == "PARTIALLY_FILLED" and D(q["executedQty"]) == D("0.005")

            await sim.aadvance(c, 1)
            msgs = await recv_until(us, lambda m: m.get("e") == "executionReport")
            assert msgs[-1]["X"] == "FILLED"
            pos = await recv_until(us, lambda m: m.get("e") == "outboundAccountPosition")
            assert {b["a"] for b in pos[-1]["B"]} >= {"USDT"}

            trades = await c.get_my_trades(symbol=SYM)
            assert [D(t["qty"]) for t in trades] == [D("0.005"), D("0.005")]
            assert all(t["isMaker"] and t["isBuyer"] for t in trades)
            fee = sum(D(t["commission"]) for t in trades)
            assert all(t["commissionAsset"] == "BTC" for t in trades)
            acct = await c.get_account()
            bal = {b["asset"]: (D(b["free"]), D(b["locked"])) for b in acct["balances"]}
            assert bal["USDT"] == (D("9501"), D(0))
            assert bal["BTC"] == (D("0.01") - fee, D(0))
            assert fee == D("0.00001")

            # a cancel: Binance puts the cancel request's id in "c", the order's in "C"
            await c.create_order(symbol=SYM, side="SELL", type="LIMIT", timeInForce="GTC",
                                 quantity="0.005", price="52000", newClientOrderId="grid-2")
            await c.cancel_order(symbol=SYM, origClientOrderId="grid-2",
                                 newClientOrderId="cxl-2")
            er = (await recv_until(us, lambda m: m.get("x") == "CANCELED"))[-1]
            assert (er["X"], er["c"], er["C"]) == ("CANCELED", "cxl-2", "grid-2")
        await c.close_connection()

    with Sim(spot=_rows()) as sim:
        asyncio.run(scenario(sim))


def test_cancel_cancel_replace_open_orders_market_order() -> None:
    with Sim(spot=flat(20)) as sim:
        c = sim.client()
        a = c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.001", price="49000", newClientOrderId="a1")
        b = c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.001", price="48000", newClientOrderId="b1")
        assert {o["clientOrderId"] for o in c.get_open_orders(symbol=SYM)} == {"a1", "b1"}
        x = c.cancel_order(symbol=SYM, orderId=a["orderId"])
        assert x["status"] == "CANCELED" and x["origClientOrderId"] == "a1"
        with pytest.raises(BinanceAPIException) as e:
            c.cancel_order(symbol=SYM, orderId=a["orderId"])
        assert e.value.code == -2011
        with pytest.raises(BinanceAPIException) as e:
            c.get_order(symbol=SYM, orderId=999_999)
        assert e.value.code == -2013

        r = c._post("order/cancelReplace", True, data={
            "symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
            "quantity": "0.002", "price": "48500", "cancelReplaceMode": "STOP_ON_FAILURE",
            "cancelOrderId": b["orderId"], "newClientOrderId": "b2"})
        assert r["cancelResult"] == "SUCCESS" and r["newOrderResult"] == "SUCCESS"
        assert r["cancelResponse"]["status"] == "CANCELED"
        assert r["newOrderResponse"]["clientOrderId"] == "b2"
        with pytest.raises(BinanceAPIException) as e:  # the cancelled order is gone
            c._post("order/cancelReplace", True, data={
                "symbol": SYM, "side": "BUY", "type": "LIMIT", "timeInForce": "GTC",
                "quantity": "0.002", "price": "48500", "cancelReplaceMode": "STOP_ON_FAILURE",
                "cancelOrderId": b["orderId"]})
        assert e.value.code == -2022 and e.value.status_code == 400
        assert [o["clientOrderId"] for o in c.get_open_orders(symbol=SYM)] == ["b2"]

        m = c.create_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.001")
        assert m["status"] == "FILLED" and len(m["fills"]) == 1
        assert D(m["fills"][0]["price"]) > D("50000")  # taker slippage against us
        assert c.create_test_order(symbol=SYM, side="SELL", type="LIMIT", timeInForce="GTC",
                                   quantity="0.0005", price="51000") == {}
        with pytest.raises(BinanceAPIException) as e:
            c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.001", price="49000.001")
        assert e.value.code == -1013
        with pytest.raises(BinanceAPIException) as e:
            c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="1000", price="49000")
        assert e.value.code == -2010  # insufficient balance
        gone = c.cancel_all_open_orders(symbol=SYM)
        assert [o["origClientOrderId"] for o in gone] == ["b2"]
        assert c.get_open_orders(symbol=SYM) == []
        assert len(c.get_all_orders(symbol=SYM)) == 4
