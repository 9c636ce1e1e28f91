"""SymbolRiskCore: pre-trade rounding/denials, reservation flow, fail closed, modify cap, release,
PnL and TRADE_CLOSED to the cent, halt → cancel-all + flatten, snapshot round trip."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

import pytest

from exchange_sim.specs import default_specs
from models import messages as m
from models.client_ids import client_order_id
from models.enums import Market, OrderType, Side, TimeInForce, TradingState
from models.risk import RiskParams
from models.risk_service import (
    FLATTEN_KEY,
    MISMATCH_GRACE_NS,
    PORTFOLIO_UNAVAILABLE,
    RiskEffects,
    SymbolRiskCore,
    decode_risk_state,
    encode_risk_state,
)

SYM = "BTCUSDT"
FUT = default_specs(Market.FUTURES)
SPOT = default_specs(Market.SPOT)
BUY, SELL = Side.BUY, Side.SELL
S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S


def core(market: Market = Market.FUTURES, equity: str = "10000", filters: bool = True,
         **kw: Any) -> SymbolRiskCore:
    c = SymbolRiskCore(SYM, market, 0.45, 6.0, RiskParams(), "gb", **kw)
    if filters:
        f = (FUT if market is Market.FUTURES else SPOT)[SYM]
        c.handle(m.SymbolFiltersLoaded(symbol=SYM, filters=f, market=market), T0)
    if equity:
        c.handle(m.EquityUpdated(symbol=SYM, equity=D(equity), peak_equity=D(equity),
                                 drawdown=0.0, leverage=0.0, leverage_cap=6.0), T0)
    return c


def place(key: str = "L1", side: Side = BUY, price: str | None = "50000",
          qty: str = "0.01", **kw: Any) -> m.PlaceOrder:
    return m.PlaceOrder(symbol=SYM, key=key, side=side, price=D(price) if price else None,
                        qty=D(qty), **kw)


def sent(fx: RiskEffects, role: str, typ: type | None = None) -> list[Any]:
    return [msg for r, msg in fx.sends if r == role and (typ is None or isinstance(msg, typ))]


def logs(fx: RiskEffects, event: str) -> list[dict[str, Any]]:
    return [ctx for ev, _, ctx in fx.logs if ev == event]


def cid(key: str, gen: int = 0) -> str:
    return client_order_id("gb", SYM, key, gen)


def fill(key: str, side: Side, price: str, qty: str, trade_id: int, fee: str = "0",
         ts_s: int = 0) -> m.OrderFilled:
    return m.OrderFilled(symbol=SYM, client_order_id=cid(key), trade_id=trade_id, side=side,
                         price=D(price), qty=D(qty), fee=D(fee), fee_asset="USDT",
                         ts_event_ns=T0 + ts_s * S)


def reserve_and_submit(c: SymbolRiskCore, msg: m.PlaceOrder, now: int = T0) -> m.SubmitOrder:
    fx = c.handle(msg, now)
    (req,) = sent(fx, "portfolio", m.ReserveExposure)
    fx = c.handle(m.ExposureReserved(symbol=SYM, reservation_id=req.reservation_id,
                                     notional=req.notional), now)
    (sub,) = sent(fx, "order", m.SubmitOrder)
    return sub


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


# -- PnL --------------------------------------------------------------------------------------------
def test_round_trip_pnl_to_the_cent_with_fees_and_funding_once() -> None:
    c = core()
    fx = c.handle(fill("L1", BUY, "50000", "0.010", 11, fee="0.20", ts_s=0), T0)
    (rep,) = sent(fx, "portfolio", m.PositionReported)
    assert (rep.qty, rep.entry_price, rep.fees) == (D("0.010"), D("50000"), D("0.20"))
    fx = c.handle(m.FundingPaid(symbol=SYM, funding_id="BTCUSDT:1", amount=D("-0.50")), T0)
    assert logs(fx, "FUNDING_PAID") == [{"funding_id": "BTCUSDT:1", "amount": D("-0.50")}]
    assert c.handle(m.FundingPaid(symbol=SYM, funding_id="BTCUSDT:1", amount=D("-0.50")),
                    T0).logs == []  # counted once
    assert c.handle(fill("L1", BUY, "50000", "0.010", 11, fee="0.20"), T0).sends == []  # dup
    fx = c.handle(m.MarkPriceUpdated(symbol=SYM, mark_price=D("50500")), T0 + S)
    assert sent(fx, "portfolio", m.PositionReported)[0].unrealized_pnl == D("5.000")
    fx = c.handle(fill("TP", SELL, "51000", "0.010", 12, fee="0.204", ts_s=3600), T0)
    (tc,) = logs(fx, "TRADE_CLOSED")
    assert tc["gross_pnl"] == D("10.000") and tc["fees"] == D("0.404")
    assert tc["funding"] == D("-0.50") and tc["net_pnl"] == D("9.096")
    assert (tc["entry_price"], tc["exit_price"], tc["qty"]) == (D("50000"), D("51000"),
                                                                D("0.010"))
    assert tc["holding_s"] == 3600.0 and tc["closed_ms"] - tc["opened_ms"] == 3_600_000
    kinds = [type(msg).__name__ for r, msg in fx.sends if r == "portfolio"]
    assert kinds == ["PositionReported", "TradeClosed"]  # equity first, then the trade
    rep = sent(fx, "portfolio", m.PositionReported)[0]
    assert rep.qty == 0 and rep.realized_pnl == D("10.000") and rep.funding == D("-0.50")
    st = c.status()
    assert st["realized_pnl"] == "9.096" and st["position"] == "0"


def test_position_mismatch_logged_after_grace_once() -> None:
    c = core()
    fx = c.handle(m.PositionUpdated(symbol=SYM, qty=D("0.01")), T0)
    assert logs(fx, "POSITION_MISMATCH") == [] and c.mismatch_pending()
    c.handle(fill("L1", BUY, "50000", "0.01", 1), T0 + S)  # the fill was on its way
    assert not c.mismatch_pending() and logs(c.check(T0 + 10 * S), "POSITION_MISMATCH") == []
    c.handle(m.PositionUpdated(symbol=SYM, qty=D("0.02")), T0 + 20 * S)
    assert logs(c.check(T0 + 21 * S), "POSITION_MISMATCH") == []
    (mm,) = logs(c.check(T0 + 20 * S + MISMATCH_GRACE_NS), "POSITION_MISMATCH")
    assert mm["exchange_qty"] == D("0.02") and mm["ledger_qty"] == D("0.01")
    assert logs(c.check(T0 + 60 * S), "POSITION_MISMATCH") == []


def test_spot_mark_from_fills_and_klines() -> None:
    c = core(Market.SPOT)
    c.handle(fill("L1", BUY, "50000", "0.01", 1), T0)
    assert c.s.mark == D("50000")
    fx = c.handle(m.KlineClosed(symbol=SYM, interval="1m", open_time_ms=0, close_time_ms=1,
                                open=1.0, high=1.0, low=1.0, close=50100.5, volume=1.0), T0)
    assert sent(fx, "portfolio")[0].unrealized_pnl == D("1.005")


# -- halt and flatten -------------------------------------------------------------------------------
def test_halt_with_flatten_cancels_all_and_closes_position() -> None:
    c = core()
    c.handle(fill("L1", BUY, "50000", "0.0125", 1), T0)
    fx = c.handle(m.HaltTrading(symbol=SYM, reason="hard stop", flatten=True), T0)
    order_msgs = sent(fx, "order")
    assert isinstance(order_msgs[0], m.CancelAllOrders)
    sub = order_msgs[1]
    assert isinstance(sub, m.SubmitOrder) and sub.key == FLATTEN_KEY
    assert (sub.side, sub.order_type, sub.qty, sub.reduce_only) == (SELL, OrderType.MARKET,
                                                                    D("0.012"), True)
    assert sub.msg_id == "risk-BTCUSDT-flatten-1"  # deterministic intent id
    # a repeated halt does not send a second flatten while one is live
    assert sent(c.handle(m.HaltTrading(symbol=SYM, reason="again", flatten=True), T0),
                "order", m.SubmitOrder) == []
    # the flatten order ended with a position left: flatten again
    c.handle(m.OrderFilled(symbol=SYM, client_order_id=cid(FLATTEN_KEY), trade_id=2,
                           side=SELL, price=D("49000"), qty=D("0.010")), T0)
    fx = c.handle(m.OrderEnded(symbol=SYM, client_order_id=cid(FLATTEN_KEY), key=FLATTEN_KEY,
                               status="EXPIRED", filled_qty=D("0.010")), T0)
    (again,) = sent(fx, "order", m.SubmitOrder)
    assert again.qty == D("0.002") and again.msg_id == "risk-BTCUSDT-flatten-2"
    assert c.halted() and c.s.trading_state is TradingState.HALTED
    # resume: entries allowed again
    c.handle(m.TradingStateChanged(symbol=SYM, state=TradingState.ACTIVE), T0)
    assert not c.halted()


# -- snapshot -----------------------------------------------------------------------------------------
def test_snapshot_round_trip_keeps_orders_pnl_counter_and_aborts_pending() -> None:
    c = core()
    sub = reserve_and_submit(c, place(price="50000", qty="0.02"))
    c.handle(fill("L1", BUY, "50000", "0.01", 5, fee="0.1"), T0)
    c.handle(place(key="L2", price="49000"), T0)  # held: waiting for the portfolio
    blob = encode_risk_state(c.to_state())
    r = SymbolRiskCore(SYM, Market.FUTURES, 0.45, 6.0, RiskParams(), "gb",
                       state=decode_risk_state(blob))
    assert r.ledger.qty == D("0.01") and r.ledger.fees == D("0.1")
    assert r.s.orders["L1"].reservation_ids == [sub.reservation_id]
    assert r.s.equity == D("10000") and r.s.filters == FUT[SYM]
    assert r.handle(fill("L1", BUY, "50000", "0.01", 5, fee="0.1"), T0).sends == []
    fx = r.abort_pending(T0)
    assert sent(fx, "strategy")[0].reason == PORTFOLIO_UNAVAILABLE
    assert sent(fx, "portfolio", m.ReleaseExposure)[0].reservation_id == "BTCUSDT-L2-2"
    fx = r.handle(place(key="L3", price="48000"), T0)
    assert sent(fx, "portfolio")[0].reservation_id == "BTCUSDT-L3-3"  # counter continues


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


def test_status_line_matches_status() -> None:
    """The backtest's STATUS fields are status()'s values, open or flat."""
    c = core()

    def same() -> None:
        st, ln = c.status(), c.status_line()
        assert ln == {"position": st["position"], "entry_price": st["entry_price"],
                      "unrealized_pnl": st["unrealized_pnl"], "realized_pnl": st["realized_pnl"],
                      "open_orders": st["live_orders"], "leverage": st["leverage"],
                      "drawdown_level": st["drawdown_level"]}

    same()
    c.handle(fill("L1", BUY, "50000", "0.010", 11, fee="0.20"), T0)
    c.handle(m.MarkPriceUpdated(symbol=SYM, mark_price=D("50500")), T0 + S)
    same()
    assert c.status_line()["unrealized_pnl"] == "5" and c.status_line()["leverage"] > 0
