"""binance_parse: every REST shape the gateway reads, spot and futures (recorded shapes)."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from models import binance_parse as bp
from models import messages as m
from models.enums import Market, Side

SYM = "BTCUSDT"

# -- recorded shapes (Binance API docs / testnet answers) -----------------------------------
SPOT_FULL_PARTIAL_IOC = {
    "symbol": "BTCUSDT", "orderId": 28, "orderListId": -1, "clientOrderId": "gb-k1-0",
    "transactTime": 1507725176595, "price": "50000.01000000", "origQty": "0.00300000",
    "executedQty": "0.00200000", "origQuoteOrderQty": "0.00000000",
    "cummulativeQuoteQty": "100.00002000", "status": "EXPIRED", "timeInForce": "IOC",
    "type": "LIMIT", "side": "BUY", "workingTime": 1507725176595,
    "selfTradePreventionMode": "NONE",
    "fills": [
        {"price": "50000.00000000", "qty": "0.00100000", "commission": "0.00000100",
         "commissionAsset": "BTC", "tradeId": 56},
        {"price": "50000.02000000", "qty": "0.00100000", "commission": "0.00000100",
         "commissionAsset": "BTC", "tradeId": 57},
    ],
}
SPOT_ACK = {"symbol": "BTCUSDT", "orderId": 29, "orderListId": -1, "clientOrderId": "gb-k2-0",
            "transactTime": 1507725176600}
SPOT_QUERY = {
    "symbol": "BTCUSDT", "orderId": 1, "orderListId": -1, "clientOrderId": "myOrder1",
    "price": "0.10000000", "origQty": "1.00000000", "executedQty": "0.25000000",
    "cummulativeQuoteQty": "0.02500000", "status": "PARTIALLY_FILLED", "timeInForce": "GTC",
    "type": "LIMIT", "side": "SELL", "stopPrice": "0.00000000", "icebergQty": "0.00000000",
    "time": 1499827319559, "updateTime": 1499827319560, "isWorking": True,
    "workingTime": 1499827319559, "origQuoteOrderQty": "0.00000000",
    "selfTradePreventionMode": "NONE",
}
FUT_ORDER = {
    "avgPrice": "0.00000", "clientOrderId": "gb-k3-1", "cumQuote": "0", "executedQty": "0",
    "orderId": 22542179, "origQty": "10", "origType": "LIMIT", "price": "0.1", "reduceOnly": True,
    "side": "SELL", "positionSide": "BOTH", "status": "NEW", "stopPrice": "0",
    "closePosition": False, "symbol": "BTCUSDT", "time": 1579276756075, "timeInForce": "GTC",
    "type": "LIMIT", "activatePrice": "9020", "priceRate": "0.3", "updateTime": 1579276756075,
    "workingType": "CONTRACT_PRICE", "priceProtect": False, "priceMatch": "NONE",
    "selfTradePreventionMode": "NONE", "goodTillDate": 0,
}
FUT_ALGO = {
    "algoId": 2146760, "clientAlgoId": "gb-stop-0", "algoType": "CONDITIONAL",
    "orderType": "STOP_MARKET", "symbol": "BTCUSDT", "side": "SELL", "positionSide": "BOTH",
    "timeInForce": "GTC", "quantity": "0.010", "algoStatus": "TRIGGERED",
    "triggerPrice": "48000.00", "price": "0.00", "reduceOnly": True,
    "createTime": 1750485492076, "updateTime": 1750485492080, "triggerTime": 0,
}
SPOT_TRADE = {
    "symbol": "BTCUSDT", "id": 28457, "orderId": 100234, "orderListId": -1,
    "price": "4.00000100", "qty": "12.00000000", "quoteQty": "48.000012",
    "commission": "10.10000000", "commissionAsset": "BNB", "time": 1499865549590,
    "isBuyer": True, "isMaker": False, "isBestMatch": True,
}
FUT_TRADE = {
    "buyer": False, "commission": "-0.07819010", "commissionAsset": "USDT", "id": 698759,
    "maker": True, "orderId": 25851813, "price": "7819.01", "qty": "0.002",
    "quoteQty": "15.63802", "realizedPnl": "-0.91539999", "side": "SELL",
    "positionSide": "BOTH", "symbol": "BTCUSDT", "time": 1569514978020,
}
KLINE = [1499040000000, "0.01634790", "0.80000000", "0.01575800", "0.01577100",
         "148976.11427815", 1499644799999, "2434.19055334", 308, "1756.87402397",
         "28.46694368", "0"]


def test_parse_rest_order_spot_and_futures() -> None:
    r = bp.parse_rest_order(SPOT_QUERY, SYM)
    assert isinstance(r, m.OrderStatusReported) and r.found
    assert (r.client_order_id, r.exchange_order_id, r.status) == ("myOrder1", 1,
                                                                  "PARTIALLY_FILLED")
    assert r.executed_qty == D("0.25") and r.cum_quote == D("0.025")
    assert r.price == D("0.1") and r.qty == D("1")
    assert r.ts_event_ns == 1499827319560 * 1_000_000
    f = bp.parse_rest_order(FUT_ORDER, SYM)
    assert (f.client_order_id, f.exchange_order_id, f.status) == ("gb-k3-1", 22542179, "NEW")
    assert f.qty == D("10") and f.price == D("0.1") and f.executed_qty == 0
    assert str(f.price) == "0.1"  # exact: built from the string, not a float


def test_parse_rest_order_algo_maps_status() -> None:
    a = bp.parse_rest_order(FUT_ALGO, SYM)
    assert a.client_order_id == "gb-stop-0" and a.exchange_order_id == 2146760
    assert a.status == "NEW" and a.qty == D("0.010") and a.price is None
    assert bp.is_algo(FUT_ALGO) and not bp.is_algo(FUT_ORDER)


def test_not_found() -> None:
    r = bp.not_found(SYM, "x-1", 5)
    assert not r.found and r.status == "NOT_FOUND" and r.client_order_id == "x-1"


def test_parse_open_order() -> None:
    row = bp.parse_open_order(FUT_ORDER, SYM)
    assert row == m.OpenOrderRow(client_order_id="gb-k3-1", side=Side.SELL, price=D("0.1"),
                                 qty=D("10"), filled_qty=D("0"), reduce_only=True,
                                 status="NEW", exchange_order_id=22542179)
    srow = bp.parse_open_order(SPOT_QUERY, SYM)
    assert srow.filled_qty == D("0.25") and srow.side is Side.SELL and not srow.reduce_only


def test_order_ack_spot_full_with_fills_then_expired() -> None:
    evs = bp.parse_order_ack(SPOT_FULL_PARTIAL_IOC, SYM)
    assert [type(e) for e in evs] == [m.OrderAccepted, m.OrderFilled, m.OrderFilled,
                                      m.OrderExpired]
    acc, f1, f2, exp = evs
    assert acc.exchange_order_id == 28 and acc.qty == D("0.003") and acc.side is Side.BUY
    assert acc.price == D("50000.01") and acc.ts_event_ns == 1507725176595 * 1_000_000
    assert (f1.trade_id, f1.qty, f1.price, f1.fee, f1.fee_asset) == (
        56, D("0.001"), D("50000"), D("0.000001"), "BTC")
    assert f1.cum_qty == D("0.001") and f1.order_status == "PARTIALLY_FILLED"
    assert f2.trade_id == 57 and f2.cum_qty == D("0.002") and f2.order_status == "EXPIRED"
    assert exp.client_order_id == "gb-k1-0"


def test_order_ack_spot_ack_type_uses_request_fields() -> None:
    (acc,) = bp.parse_order_ack(SPOT_ACK, SYM, side=Side.SELL, qty=D("0.5"), price=D("10"))
    assert acc.side is Side.SELL and acc.qty == D("0.5") and acc.price == D("10")
    with pytest.raises(ValueError):
        bp.parse_order_ack(SPOT_ACK, SYM)


def test_order_ack_futures_has_no_fills_and_expired_only_when_nothing_executed() -> None:
    (acc,) = bp.parse_order_ack(FUT_ORDER, SYM)
    assert acc.exchange_order_id == 22542179 and acc.qty == D("10")
    gtx = {**FUT_ORDER, "status": "EXPIRED", "timeInForce": "GTX"}
    assert [type(e) for e in bp.parse_order_ack(gtx, SYM)] == [m.OrderAccepted, m.OrderExpired]
    ioc = {**FUT_ORDER, "status": "EXPIRED", "executedQty": "4"}
    assert [type(e) for e in bp.parse_order_ack(ioc, SYM)] == [m.OrderAccepted]
    filled = {**FUT_ORDER, "status": "FILLED", "executedQty": "10"}
    assert [type(e) for e in bp.parse_order_ack(filled, SYM)] == [m.OrderAccepted]


def test_order_ack_algo() -> None:
    new_algo = {**FUT_ALGO, "algoStatus": "NEW"}
    (acc,) = bp.parse_order_ack(new_algo, SYM)
    assert acc.client_order_id == "gb-stop-0" and acc.exchange_order_id == 2146760


def test_cancel_and_futures_modify() -> None:
    c = bp.parse_cancel({**SPOT_QUERY, "status": "CANCELED", "clientOrderId": "cxl-9",
                         "origClientOrderId": "myOrder1", "transactTime": 7}, SYM, "myOrder1")
    assert c.client_order_id == "myOrder1" and c.reason == "CANCELED" and c.ts_event_ns == 7e6
    (mod,) = bp.parse_modify_response({**FUT_ORDER, "price": "0.2", "origQty": "8"}, SYM,
                                      Market.FUTURES, "gb-k3-1")
    assert mod == m.OrderModified(symbol=SYM, ts_event_ns=mod.ts_event_ns, msg_id=mod.msg_id,
                                  ts_init_ns=mod.ts_init_ns, client_order_id="gb-k3-1",
                                  price=D("0.2"), qty=D("8"))


def test_spot_cancel_replace_success() -> None:
    resp = {
        "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS",
        "cancelResponse": {**SPOT_QUERY, "status": "CANCELED", "clientOrderId": "cxl"},
        "newOrderResponse": {**SPOT_FULL_PARTIAL_IOC, "clientOrderId": "gb-k1-1",
                             "status": "PARTIALLY_FILLED", "timeInForce": "GTC",
                             "fills": SPOT_FULL_PARTIAL_IOC["fills"][:1], "orderId": 30},
    }
    evs = bp.parse_modify_response(resp, SYM, Market.SPOT, "myOrder1", "gb-k1-1")
    assert [type(e) for e in evs] == [m.OrderAccepted, m.OrderModified, m.OrderFilled]
    acc, mod, fill = evs
    assert acc.client_order_id == "gb-k1-1" and acc.exchange_order_id == 30
    assert (mod.client_order_id, mod.new_client_order_id) == ("myOrder1", "gb-k1-1")
    assert mod.price == D("50000.01") and mod.qty == D("0.003")
    assert fill.client_order_id == "gb-k1-1" and fill.trade_id == 56


def test_spot_cancel_replace_errors() -> None:
    cancel_failed = {"cancelResult": "FAILURE", "newOrderResult": "NOT_ATTEMPTED",
                     "cancelResponse": {"code": -2011, "msg": "Unknown order sent."},
                     "newOrderResponse": None}
    (rej,) = bp.parse_cancel_replace_error(cancel_failed, SYM, "old", "new", -2021, "failed")
    assert isinstance(rej, m.OrderModifyRejected) and rej.code == -2011
    new_failed = {"cancelResult": "SUCCESS", "newOrderResult": "FAILURE",
                  "cancelResponse": {**SPOT_QUERY, "status": "CANCELED"},
                  "newOrderResponse": {"code": -2010, "msg": "insufficient balance"}}
    c, r = bp.parse_cancel_replace_error(new_failed, SYM, "old", "new", -2022, "failed")
    assert isinstance(c, m.OrderCanceled) and c.client_order_id == "old"
    assert isinstance(r, m.OrderRejected) and (r.client_order_id, r.code) == ("new", -2010)
    (rej2,) = bp.parse_cancel_replace_error(None, SYM, "old", "new", -2021, "x")
    assert rej2.code == -2021
    assert bp.parse_error_data('{"code":-2022,"msg":"x","data":{"a":1}}') == {"a": 1}
    assert bp.parse_error_data("<html>") is None


def test_parse_rest_trade_spot_and_futures() -> None:
    s = bp.parse_rest_trade(SPOT_TRADE, Market.SPOT)
    assert (s.trade_id, s.exchange_order_id, s.side, s.maker) == (28457, 100234, Side.BUY, False)
    assert s.price == D("4.000001") and s.qty == D("12") and s.fee == D("10.1")
    assert s.fee_asset == "BNB" and s.time_ms == 1499865549590 and s.client_order_id == ""
    f = bp.parse_rest_trade(FUT_TRADE, Market.FUTURES)
    assert (f.trade_id, f.side, f.maker, f.qty) == (698759, Side.SELL, True, D("0.002"))
    assert f.fee == D("-0.07819010")
    assert bp.with_client_id(f, "gb-x-0").client_order_id == "gb-x-0"
    nosidefut = {k: v for k, v in FUT_TRADE.items() if k != "side"}
    assert bp.parse_rest_trade(nosidefut, Market.FUTURES).side is Side.SELL


def test_parse_rest_kline_and_kline_closed() -> None:
    k = bp.parse_rest_kline(KLINE)
    assert (k.open_time_ms, k.close_time_ms) == (1499040000000, 1499644799999)
    assert (k.open, k.high, k.low, k.close, k.volume) == (0.0163479, 0.8, 0.015758, 0.015771,
                                                          148976.11427815)
    ev = bp.kline_closed(k, SYM, "1m")
    assert ev.interval == "1m" and ev.close == 0.015771
    assert ev.ts_event_ns == 1499644799999 * 1_000_000


def test_balances_and_positions() -> None:
    spot_acct = {"balances": [{"asset": "BTC", "free": "4723846.89208129",
                               "locked": "0.00000000"},
                              {"asset": "USDT", "free": "1.5", "locked": "2.25"}]}
    assert bp.parse_spot_balances(spot_acct) == {"BTC": (D("4723846.89208129"), D(0)),
                                                 "USDT": (D("1.5"), D("2.25"))}
    fut_acct = {"totalWalletBalance": "103.12345678",
                "assets": [{"asset": "USDT", "walletBalance": "23.72469206",
                            "availableBalance": "23.5"}],
                "positions": [{"symbol": "BTCUSDT", "positionSide": "BOTH",
                               "positionAmt": "1.000", "entryPrice": "0.00000",
                               "unrealizedProfit": "0.00000000"}]}
    assert bp.parse_futures_balances(fut_acct) == {"USDT": (D("23.5"), D("0.22469206"))}
    risk = [{"symbol": "BTCUSDT", "positionSide": "BOTH", "positionAmt": "-0.010",
             "entryPrice": "50000.5", "markPrice": "50100", "unRealizedProfit": "-0.995"},
            {"symbol": "ETHUSDT", "positionSide": "BOTH", "positionAmt": "3"}]
    pos = bp.parse_futures_position(risk, SYM)
    assert pos == {"qty": D("-0.010"), "entry_price": D("50000.5"),
                   "unrealized_pnl": D("-0.995"), "mark_price": D("50100")}
    assert bp.parse_futures_position(fut_acct, SYM)["qty"] == D("1.000")
    assert bp.parse_futures_position([], SYM)["qty"] == 0
    ev = bp.parse_position_updated(pos, SYM, Market.FUTURES, 3)
    assert ev.qty == D("-0.010") and ev.market is Market.FUTURES and ev.ts_event_ns == 3


def test_dec_is_exact() -> None:
    assert bp.dec("0.1") + bp.dec("0.2") == D("0.3")
    assert bp.dec(None) == 0 and bp.dec("", D(5)) == 5 and bp.dec(7) == 7
    assert bp.dec(0.1) == D("0.1")
