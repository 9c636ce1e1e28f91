"""SymbolRiskCore (models.risk_service): PnL and TRADE_CLOSED to the cent, position mismatch,
marks, halt → cancel-all + flatten, snapshot round trip, status."""

from __future__ import annotations

from decimal import Decimal as D

from risk_harness import (
    BUY,
    FUT,
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
from models.enums import Market, OrderType, TradingState
from models.risk import RiskParams
from models.risk_service import SymbolRiskCore
from models.risk_state import (
    FLATTEN_KEY,
    MISMATCH_GRACE_NS,
    PORTFOLIO_UNAVAILABLE,
    decode_risk_state,
    encode_risk_state,
)


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
