"""Risk's order path (models.risk_orders): pre-trade rounding/denials, reservation flow, fail
closed, modify cap, release, reduce-only while halted, flatten requests."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from risk_harness import (
    BUY,
    SELL,
    SYM,
    T0,
    S,
    cid,
    core,
    fill,
    logs,
    place,
    reserve_and_submit,
    sent,
)

from models import messages as m
from models.enums import Market, OrderType, TimeInForce
from models.risk_state import FLATTEN_KEY, PORTFOLIO_UNAVAILABLE


# -- pre-trade --------------------------------------------------------------------------------------
def test_place_rounds_then_reserves_then_submits() -> None:
    c = core()
    fx = c.handle(place(price="50000.17", qty="0.0109", tif=TimeInForce.GTX), T0)
    assert fx.changed and sent(fx, "order") == [] and sent(fx, "strategy") == []
    (req,) = sent(fx, "portfolio", m.ReserveExposure)
    assert req.reservation_id == "BTCUSDT-L1-1"  # deterministic: symbol, key, counter
    assert req.notional == D("50000.10") * D("0.010") and not req.reduce_only
    assert fx.timers == [(2.0, "BTCUSDT-L1-1")]
    assert logs(fx, "ORDER_ADJUSTED")[0]["new_price"] == D("50000.1")
    fx = c.handle(m.ExposureReserved(symbol=SYM, reservation_id=req.reservation_id,
                                     notional=req.notional), T0)
    (sub,) = sent(fx, "order", m.SubmitOrder)
    assert (sub.price, sub.qty, sub.reservation_id, sub.tif) == (
        D("50000.1"), D("0.010"), "BTCUSDT-L1-1", TimeInForce.GTX)
    assert c.resting(BUY) == req.notional and c.resting(SELL) == 0
    # the same PlaceOrder delivered again (thespian retry) changes nothing
    dup = place(key="X", price="50000", qty="0.01")
    assert sent(c.handle(dup, T0), "portfolio", m.ReserveExposure)
    assert c.handle(dup, T0).sends == []


@pytest.mark.parametrize(("kw", "setup", "reason"), [
    ({"qty": "0.001"}, None, "MIN_NOTIONAL"),                 # 50 USDT < 100
    ({"qty": "0.3"}, None, "MAX_ORDER_NOTIONAL"),             # 15000 > equity 10000
    ({}, "no_filters", "NO_FILTERS"),
    ({}, "no_equity", "NO_EQUITY"),
    ({}, "halted", "HALTED"),
    ({"conviction": 0.5}, "safe", "ENTRY_BLOCKED_SAFE_MODE"),
    ({"reduce_only": True}, None, "NOTHING_TO_REDUCE"),
    ({"price": None, "order_type": OrderType.MARKET}, None, "NO_PRICE"),
])
def test_pre_trade_denials_reach_the_strategy_only(kw: dict, setup: str | None,
                                                   reason: str) -> None:
    c = core(filters=setup != "no_filters", equity="" if setup == "no_equity" else "10000")
    if setup in ("halted", "safe"):
        c.handle(m.DrawdownLevelChanged(symbol=SYM, level=3 if setup == "halted" else 1,
                                        previous_level=0, drawdown=-0.15, size_factor=0.5,
                                        tp_factor=0.7, leverage_cap=3.0,
                                        halted=setup == "halted", safe_mode=setup == "safe",
                                        min_entry_conviction=0.8 if setup == "safe" else 0.0),
                 T0)
    fx = c.handle(place(**kw), T0)
    (den,) = sent(fx, "strategy", m.OrderDenied)
    assert den.reason == reason and den.key == "L1"
    assert sent(fx, "order") == [] and sent(fx, "portfolio") == []
    assert logs(fx, "RISK_BLOCKED")[0]["reason"] == reason


def test_symbol_exposure_counts_resting_orders() -> None:
    c = core()
    for i in range(3):  # 3 x 9000 resting buys = the 27000 symbol budget
        reserve_and_submit(c, place(key=f"L{i}", price="45000", qty="0.2"))
    fx = c.handle(place(key="L9", price="45000", qty="0.2"), T0)  # 27000 + 9000 > 27000
    assert sent(fx, "strategy")[0].reason == "SYMBOL_EXPOSURE"
    fx = c.handle(place(key="L1", price="45000", qty="0.01"), T0)
    assert sent(fx, "strategy")[0].reason == "KEY_HAS_LIVE_ORDER"


def test_portfolio_denial_reaches_strategy() -> None:
    c = core()
    fx = c.handle(place(), T0)
    rid = sent(fx, "portfolio")[0].reservation_id
    fx = c.handle(m.ExposureDenied(symbol=SYM, reservation_id=rid, reason="LEVERAGE_CAP"), T0)
    (den,) = sent(fx, "strategy", m.OrderDenied)
    assert den.reason == "LEVERAGE_CAP" and sent(fx, "order") == []
    assert logs(fx, "RISK_BLOCKED")[0]["stage"] == "portfolio"
    assert c.s.pending == {} and c.s.orders == {}


# -- fail closed ------------------------------------------------------------------------------------
def test_fail_closed_without_portfolio_but_reduce_only_passes() -> None:
    c = core()
    c.handle(fill("L0", BUY, "50000", "0.02", 1), T0)
    fx = c.handle(place(key="E1"), T0, portfolio_up=False)
    assert sent(fx, "strategy")[0].reason == PORTFOLIO_UNAVAILABLE
    assert sent(fx, "order") == [] and sent(fx, "portfolio", m.ReserveExposure) == []
    fx = c.handle(place(key="TP", side=SELL, price="51000", qty="0.02", reduce_only=True),
                  T0, portfolio_up=False)
    (sub,) = sent(fx, "order", m.SubmitOrder)
    assert sub.reduce_only and sub.reservation_id == "" and sent(fx, "portfolio",
                                                                   m.ReserveExposure) == []


def test_reservation_timeout_fails_closed_and_late_grant_is_released() -> None:
    c = core(reservation_timeout_s=1.5)
    fx = c.handle(place(), T0)
    rid = sent(fx, "portfolio")[0].reservation_id
    assert c.expire(T0 + S).sends == []  # not yet due
    fx = c.expire(T0 + 2 * S)
    assert sent(fx, "strategy")[0].reason == PORTFOLIO_UNAVAILABLE
    assert sent(fx, "portfolio", m.ReleaseExposure)[0].reservation_id == rid
    fx = c.handle(m.ExposureReserved(symbol=SYM, reservation_id=rid, notional=D(500)),
                  T0 + 3 * S)
    assert sent(fx, "order") == []
    assert sent(fx, "portfolio", m.ReleaseExposure)[0].reservation_id == rid


def test_halted_reduce_only_still_allowed() -> None:
    c = core()
    c.handle(fill("L0", BUY, "50000", "0.02", 1), T0)
    c.handle(m.HaltTrading(symbol=SYM, reason="test", flatten=False), T0)
    assert sent(c.handle(place(key="E"), T0), "strategy")[0].reason == "HALTED"
    fx = c.handle(place(key="R", side=SELL, price="50000", qty="0.05", reduce_only=True), T0,
                  portfolio_up=False)
    (sub,) = sent(fx, "order", m.SubmitOrder)
    assert sub.qty == D("0.020")  # clipped to the position


# -- modify and release -----------------------------------------------------------------------------
def test_modify_within_reservation_forwarded_above_re_reserves_delta() -> None:
    c = core()
    sub = reserve_and_submit(c, place(price="50000", qty="0.02"))  # 1000 reserved
    fx = c.handle(m.ModifyOrder(symbol=SYM, client_order_id=cid("L1"), side=BUY,
                                price=D("49000.04"), qty=D("0.02")), T0)
    (mod,) = sent(fx, "order", m.ModifyOrder)
    assert mod.price == D("49000.0") and sent(fx, "portfolio") == []
    fx = c.handle(m.ModifyOrder(symbol=SYM, client_order_id=cid("L1"), side=BUY,
                                price=D("51000"), qty=D("0.02")), T0)
    (req,) = sent(fx, "portfolio", m.ReserveExposure)
    assert req.notional == D("20.00") and sent(fx, "order") == []  # 1020 - 1000
    fx = c.handle(m.ExposureReserved(symbol=SYM, reservation_id=req.reservation_id,
                                     notional=req.notional), T0)
    assert sent(fx, "order", m.ModifyOrder)[0].price == D("51000")
    assert c.s.orders["L1"].reserved == D("1020.00")
    # a fill, then the end: both reservations are released
    c.handle(fill("L1", BUY, "51000", "0.005", 7), T0)
    fx = c.handle(m.OrderEnded(symbol=SYM, client_order_id=cid("L1"), key="L1",
                               status="CANCELED", filled_qty=D("0.005"),
                               reservation_id=sub.reservation_id), T0)
    rel = sent(fx, "portfolio", m.ReleaseExposure)
    assert [r.reservation_id for r in rel] == [sub.reservation_id, req.reservation_id]
    assert rel[0].filled_notional == D("255.000")
    assert c.s.orders == {} and c.resting(BUY) == 0


def test_modify_denied_when_portfolio_refuses_or_unknown_order() -> None:
    c = core()
    reserve_and_submit(c, place(price="50000", qty="0.02"))
    fx = c.handle(m.ModifyOrder(symbol=SYM, client_order_id=cid("nope"), side=BUY,
                                price=D("1"), qty=D("1")), T0)
    assert sent(fx, "strategy")[0].reason == "UNKNOWN_ORDER"
    fx = c.handle(m.ModifyOrder(symbol=SYM, client_order_id=cid("L1"), side=BUY,
                                price=D("50000"), qty=D("0.03")), T0)
    rid = sent(fx, "portfolio")[0].reservation_id
    fx = c.handle(m.ExposureDenied(symbol=SYM, reservation_id=rid, reason="UTILIZATION"), T0)
    assert sent(fx, "strategy")[0].reason == "UTILIZATION" and sent(fx, "order") == []
    assert c.s.orders["L1"].qty == D("0.02")


def test_spot_cancel_replace_old_generation_end_keeps_reservation() -> None:
    c = core(Market.SPOT)
    sub = reserve_and_submit(c, place(price="50000", qty="0.01"))
    c.handle(m.ModifyOrder(symbol=SYM, client_order_id=cid("L1", 0), side=BUY,
                           price=D("49000"), qty=D("0.01")), T0)
    fx = c.handle(m.OrderEnded(symbol=SYM, client_order_id=cid("L1", 0), key="L1",
                               status="CANCELED"), T0)  # replaced generation: no reservation
    assert sent(fx, "portfolio") == [] and "L1" in c.s.orders
    c.handle(m.OrderFilled(symbol=SYM, client_order_id=cid("L1", 1), trade_id=3, side=BUY,
                           price=D("49000"), qty=D("0.01")), T0)
    assert c.s.orders["L1"].filled_qty == D("0.01")
    fx = c.handle(m.OrderEnded(symbol=SYM, client_order_id=cid("L1", 1), key="L1",
                               status="FILLED", filled_qty=D("0.01"),
                               reservation_id=sub.reservation_id), T0)
    assert sent(fx, "portfolio", m.ReleaseExposure)[0].reservation_id == sub.reservation_id
    assert c.s.orders == {}


def test_halted_spot_take_profit_sell_goes_without_reservation() -> None:
    c = core(Market.SPOT)
    c.handle(fill("L1", BUY, "50000", "0.01", 1), T0)
    c.handle(m.HaltTrading(symbol=SYM, reason="hard stop", flatten=False), T0)
    fx = c.handle(place(key="TP", side=SELL, price="50500", qty="0.01"), T0)
    (sub,) = sent(fx, "order", m.SubmitOrder)
    assert sub.reservation_id == "" and sent(fx, "portfolio") == []
    fx = c.handle(place(key="S1", side=SELL, price="50500", qty="0.02"), T0)  # beyond inventory
    assert sent(fx, "strategy")[0].reason == "INSUFFICIENT_INVENTORY"


def test_flatten_position_from_strategy_and_cancels_forwarded() -> None:
    c = core()
    assert sent(c.handle(m.FlattenPosition(symbol=SYM), T0), "order", m.SubmitOrder) == []
    c.handle(fill("S1", SELL, "50000", "0.004", 1), T0)
    fx = c.handle(m.FlattenPosition(symbol=SYM, reason="strategy exit"), T0)
    cancel, sub = sent(fx, "order")
    assert isinstance(cancel, m.CancelAllOrders) and cancel.reason == "strategy exit"
    assert (sub.side, sub.qty, sub.key, sub.reservation_id) == (BUY, D("0.004"), FLATTEN_KEY, "")
    one = m.CancelOrder(symbol=SYM, client_order_id=cid("L1"))
    assert sent(c.handle(one, T0), "order") == [one]
    assert sent(c.handle(m.CancelAllOrders(symbol=SYM), T0), "order", m.CancelAllOrders)
