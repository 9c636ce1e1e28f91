"""Matching engine: spot behaviour, fill model, errors, persistence."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from exchange_sim.engine import (
    AccountEvent,
    CancelReplaceError,
    Engine,
    ExchangeError,
    FeeSchedule,
    FillConfig,
    OrderEvent,
)
from models.enums import Market, OrderType, Side, TimeInForce

D = Decimal
S = "BTCUSDT"
BUY, SELL = Side.BUY, Side.SELL
LIMIT, MARKET, MAKER = OrderType.LIMIT, OrderType.MARKET, OrderType.LIMIT_MAKER
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def spot(usdt: str = "100000", btc: str = "10", **kw: object) -> Engine:
    e = Engine(Market.SPOT, **kw)  # type: ignore[arg-type]
    e.create_account("a", {"USDT": D(usdt), "BTC": D(btc)})
    e.set_last_price(S, D("30000"), 0)
    return e


def lim(e: Engine, side: Side, price: str, qty: str, tif: TimeInForce | None = GTC,
        otype: OrderType = LIMIT, **kw: object):
    return e.place_order("a", S, side, otype, qty=D(qty), price=D(price), tif=tif,
                         ts_ms=kw.pop("ts_ms", 1), **kw)  # type: ignore[arg-type]


def bar(e: Engine, o: float, h: float, l: float, c: float, v: float = 1000.0,  # noqa: E741
        t: int = 60_000) -> list:
    return e.on_bar(S, t, t + 59_999, o, h, l, c, v)


def trades(events: list) -> list[OrderEvent]:
    return [x for x in events if isinstance(x, OrderEvent) and x.exec_type == "TRADE"]


def code(excinfo: pytest.ExceptionInfo) -> int:
    return excinfo.value.code


# -- lifecycle and fill model ---------------------------------------------------------------------
def test_resting_limit_fills_only_when_traded_through() -> None:
    e = spot()
    o, ev = lim(e, BUY, "29900", "0.01")
    assert o.status == "NEW" and [x.exec_type for x in ev if isinstance(x, OrderEvent)] == ["NEW"]
    assert bar(e, 30000, 30010, 29900, 30000) == []  # touch only
    assert o.status == "NEW"
    ev = bar(e, 30000, 30010, 29899.99, 30000, t=120_000)
    (tr,) = trades(ev)
    assert o.status == "FILLED" and tr.fill.price == D("29900") and tr.fill.maker
    assert 120_000 <= tr.fill.time_ms <= 179_999
    assert e.open_orders("a") == []


def test_fill_on_touch_config() -> None:
    e = spot(fill=FillConfig(fill_on_touch=True))
    o, _ = lim(e, SELL, "30100", "0.01")
    bar(e, 30000, 30100, 29990, 30050)
    assert o.status == "FILLED"


@pytest.mark.parametrize("bullish", [True, False])
def test_intrabar_path_order_depends_on_candle_shape(bullish: bool) -> None:
    e = spot()
    b, _ = lim(e, BUY, "29900", "0.01")
    s, _ = lim(e, SELL, "30100", "0.01")
    close = 30050 if bullish else 29950
    ev = bar(e, 30000, 30200, 29800, close)
    fills = [x.fill for x in trades(ev)]
    assert [f.order_id for f in fills] == ([b.order_id, s.order_id] if bullish
                                           else [s.order_id, b.order_id])
    assert fills[0].time_ms < fills[1].time_ms
    assert e.last_price(S) == D(close)


def test_gap_open_fills_resting_limit_at_its_price() -> None:
    e = spot()
    o, _ = lim(e, BUY, "29900", "0.01")
    (tr,) = trades(bar(e, 29000, 29100, 28900, 29050, t=60_000))
    assert tr.fill.price == D("29900") and tr.fill.time_ms == 60_000


def test_volume_cap_partial_fills_across_bars() -> None:
    e = spot(fill=FillConfig(max_volume_share=0.1))
    o, _ = lim(e, BUY, "29900", "0.25")
    ev = bar(e, 30000, 30010, 29800, 29950, v=1.0)
    assert o.status == "PARTIALLY_FILLED" and o.executed_qty == D("0.1")
    assert [x.exec_type for x in ev if isinstance(x, OrderEvent)] == ["TRADE"]
    bar(e, 29950, 30010, 29800, 29950, v=1.0, t=120_000)
    assert o.executed_qty == D("0.2")
    bar(e, 29950, 30010, 29800, 29950, v=1.0, t=180_000)
    assert o.status == "FILLED" and o.executed_qty == D("0.25")
    assert e.balances("a")["USDT"][1] == 0


def test_volume_cap_is_shared_and_rounds_down_to_step() -> None:
    e = spot(fill=FillConfig(max_volume_share=0.1))
    a, _ = lim(e, BUY, "29900", "0.08")
    b, _ = lim(e, BUY, "29800", "0.08")
    bar(e, 30000, 30010, 29700, 29950, v=1.0)
    assert a.executed_qty == D("0.08") and b.executed_qty == D("0.02")
    c, _ = lim(e, SELL, "30100", "0.01", ts_ms=2)
    bar(e, 29950, 30200, 29940, 30000, v=0.00005, t=120_000)  # cap 0.000005 < step 0.00001
    assert c.status == "NEW" and c.executed_qty == 0


def test_volume_cap_disabled() -> None:
    e = spot(fill=FillConfig(max_volume_share=None))
    o, _ = lim(e, BUY, "29900", "3")
    bar(e, 30000, 30010, 29800, 29950, v=0.001)
    assert o.status == "FILLED"


def test_market_order_slippage_rounds_adversely_and_pays_taker_fee() -> None:
    e = spot()
    e.set_last_price(S, D("30000.01"), 1)
    o, ev = e.place_order("a", S, BUY, MARKET, qty=D("0.01"), ts_ms=2)
    (tr,) = trades(ev)
    assert tr.fill.price == D("30003.02")  # 30000.01 * 1.0001 = 30003.010001 -> up
    assert not tr.fill.maker and tr.fill.commission == D("0.00001")
    assert tr.fill.commission_asset == "BTC" and o.status == "FILLED"
    o, ev = e.place_order("a", S, SELL, MARKET, qty=D("0.01"), ts_ms=3)
    (tr,) = trades(ev)
    assert tr.fill.price == D("29997.00")  # 29997.009999 -> down
    assert tr.fill.commission == D("0.29997") and tr.fill.commission_asset == "USDT"


def test_market_buy_by_quote_qty() -> None:
    e = spot(fill=FillConfig(market_slippage_bps=D(0)))
    o, _ = e.place_order("a", S, BUY, MARKET, quote_qty=D("100"), ts_ms=1)
    assert o.executed_qty == D("0.00333") and o.cum_quote == D("99.9")


def test_crossing_limit_is_taker_at_last_price() -> None:
    e = spot()
    o, ev = lim(e, BUY, "30500", "0.01")
    (tr,) = trades(ev)
    assert tr.fill.price == D("30000") and not tr.fill.maker and o.status == "FILLED"
    assert e.balances("a")["USDT"] == (D("100000") - D("300"), 0)


@pytest.mark.parametrize("tif", [IOC, FOK])
def test_ioc_fok_expire_when_not_crossing_and_fill_when_crossing(tif: TimeInForce) -> None:
    e = spot()
    o, ev = lim(e, BUY, "29000", "0.01", tif=tif)
    assert o.status == "EXPIRED" and [x.exec_type for x in ev if isinstance(x, OrderEvent)] == [
        "NEW", "EXPIRED"]
    assert e.balances("a")["USDT"] == (D("100000"), 0)
    o, _ = lim(e, BUY, "31000", "0.01", tif=tif)
    assert o.status == "FILLED"


def test_limit_maker_rejected_when_it_would_take() -> None:
    e = spot()
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "30001", "0.01", tif=None, otype=MAKER)
    assert (ei.value.code, ei.value.msg) == (-2010, "Order would immediately match and take.")
    o, _ = lim(e, BUY, "29999", "0.01", tif=None, otype=MAKER)
    assert o.status == "NEW"
    assert e.balances("a")["USDT"] == (D("100000") - D("299.99"), D("299.99"))


def test_balance_locking_and_unlocking() -> None:
    e = spot()
    b, _ = lim(e, BUY, "29000", "0.5")
    s, ev = lim(e, SELL, "31000", "2")
    acc = [x for x in ev if isinstance(x, AccountEvent)]
    assert acc and acc[0].balances["BTC"] == (D("8"), D("2"))
    assert e.balances("a") == {"BTC": (D("8"), D("2")), "USDT": (D("85500"), D("14500"))}
    e2 = spot(fill=FillConfig(max_volume_share=0.1))
    b2, _ = lim(e2, BUY, "29000", "0.5")
    bar(e2, 30000, 30010, 28900, 29950, v=2.0)  # fills 0.2
    e2.cancel_order("a", S, order_id=b2.order_id, ts_ms=5)
    assert b2.status == "CANCELED" and b2.executed_qty == D("0.2")
    fee = D("0.2") * D("0.001")
    assert e2.balances("a") == {"BTC": (D("10.2") - fee, 0), "USDT": (D("100000") - D("5800"), 0)}
    e.cancel_all("a", S, ts_ms=5)
    assert e.balances("a") == {"BTC": (D("10"), 0), "USDT": (D("100000"), 0)}


def test_insufficient_balance() -> None:
    e = spot(usdt="100", btc="0.001")
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29000", "0.01")
    assert (code(ei), ei.value.msg) == (
        -2010, "Account has insufficient balance for requested action.")
    with pytest.raises(ExchangeError):
        lim(e, SELL, "31000", "0.002")
    with pytest.raises(ExchangeError):
        e.place_order("a", S, BUY, MARKET, qty=D("0.01"), ts_ms=1)
    assert e.balances("a") == {"BTC": (D("0.001"), 0), "USDT": (D("100"), 0)}
    assert e.all_orders("a", S) == []


@pytest.mark.parametrize("price,qty,msg", [
    ("29000.001", "0.01", "Filter failure: PRICE_FILTER"),
    ("29000", "0.000001", "Filter failure: LOT_SIZE"),
    ("29000", "0.010005", "Filter failure: LOT_SIZE"),
    ("29000", "0.0001", "Filter failure: NOTIONAL"),
])
def test_spot_filter_violations(price: str, qty: str, msg: str) -> None:
    e = spot()
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, price, qty)
    assert (code(ei), ei.value.msg) == (-1013, msg)


def test_parameter_errors() -> None:
    e = spot()
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29000", "0.01", tif=None)
    assert code(ei) == -1102
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29000", "0.01", tif=TimeInForce.GTX)
    assert code(ei) == -1115
    with pytest.raises(ExchangeError) as ei:
        e.place_order("a", S, BUY, OrderType.STOP_MARKET, qty=D("0.01"), stop_price=D("31000"),
                      ts_ms=1)
    assert code(ei) == -1116
    with pytest.raises(ExchangeError) as ei:
        e.place_order("a", "DOGEUSDT", BUY, MARKET, qty=D("1"), ts_ms=1)
    assert code(ei) == -1121


def test_duplicate_client_order_id_only_among_open_orders() -> None:
    e = spot()
    o, _ = lim(e, BUY, "29000", "0.01", client_order_id="x1")
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29001", "0.01", client_order_id="x1")
    assert (code(ei), ei.value.msg) == (-2010, "Duplicate order sent.")
    e.cancel_order("a", S, client_order_id="x1", ts_ms=2)
    o2, _ = lim(e, BUY, "29001", "0.01", client_order_id="x1")
    assert o2.order_id > o.order_id
    assert e.get_order("a", S, client_order_id="x1").order_id == o2.order_id


def test_unknown_orders_and_auto_client_ids() -> None:
    e = spot()
    with pytest.raises(ExchangeError) as ei:
        e.cancel_order("a", S, order_id=999, ts_ms=1)
    assert (code(ei), ei.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(ExchangeError) as ei:
        e.get_order("a", S, order_id=999)
    assert (code(ei), ei.value.msg) == (-2013, "Order does not exist.")
    o1, _ = lim(e, BUY, "31000", "0.01")  # fills at once
    with pytest.raises(ExchangeError) as ei:
        e.cancel_order("a", S, order_id=o1.order_id, ts_ms=2)
    assert code(ei) == -2011
    o2, _ = lim(e, BUY, "29000", "0.01")
    assert o2.order_id > o1.order_id and o2.client_order_id == f"sim-{o2.order_id}"
    assert e.get_order("a", S, order_id=o1.order_id).status == "FILLED"


def test_test_order_validates_without_placing() -> None:
    e = spot()
    e.test_order("a", S, BUY, LIMIT, qty=D("0.01"), price=D("29000"), tif=GTC, ts_ms=1)
    with pytest.raises(ExchangeError):
        e.test_order("a", S, BUY, LIMIT, qty=D("100"), price=D("29000"), tif=GTC, ts_ms=1)
    assert e.all_orders("a", S) == [] and e.balances("a")["USDT"] == (D("100000"), 0)


def test_queries() -> None:
    e = spot()
    os_ = [lim(e, BUY, str(29000 + i), "0.01", ts_ms=10 * i)[0] for i in range(5)]
    lim(e, BUY, "31000", "0.01", ts_ms=100)
    assert [o.order_id for o in e.all_orders("a", S, limit=2)] == [5, 6]
    assert [o.order_id for o in e.all_orders("a", S, from_order_id=2, limit=2)] == [2, 3]
    assert [o.order_id for o in e.all_orders("a", S, start_ms=20, end_ms=30)] == [3, 4]
    assert [o.order_id for o in e.open_orders("a", S)] == [o.order_id for o in os_]
    (t,) = e.trades("a", S)
    assert t.order_id == 6 and e.trades("a", S, from_id=t.trade_id + 1) == []


def test_cancel_replace() -> None:
    e = spot()
    o, _ = lim(e, BUY, "29000", "0.01")
    c, n, ev = e.cancel_replace("a", S, cancel_order_id=o.order_id,
                                new_order={"side": BUY, "type": LIMIT, "qty": D("0.02"),
                                           "price": D("29100"), "tif": GTC}, ts_ms=2)
    assert c is o and o.status == "CANCELED" and n is not None and n.status == "NEW"
    assert [x.exec_type for x in ev if isinstance(x, OrderEvent)] == ["CANCELED", "NEW"]
    # STOP_ON_FAILURE: the cancel fails, the new order is not attempted
    with pytest.raises(CancelReplaceError) as ei:
        e.cancel_replace("a", S, cancel_order_id=999,
                         new_order={"side": BUY, "type": LIMIT, "qty": D("0.01"),
                                    "price": D("29000"), "tif": GTC}, ts_ms=3)
    assert ei.value.code == -2022 and ei.value.new_order_result == "NOT_ATTEMPTED"
    assert len(e.open_orders("a")) == 1
    # ALLOW_FAILURE: the cancel fails, the new order is placed
    with pytest.raises(CancelReplaceError) as ei:
        e.cancel_replace("a", S, cancel_order_id=999, mode="ALLOW_FAILURE",
                         new_order={"side": BUY, "type": LIMIT, "qty": D("0.01"),
                                    "price": D("29000"), "tif": GTC}, ts_ms=4)
    assert ei.value.code == -2021 and ei.value.new_order is not None
    assert ei.value.http_status == 409 and len(e.open_orders("a")) == 2
    # the cancel succeeds, the new order fails: the cancel stands
    with pytest.raises(CancelReplaceError) as ei:
        e.cancel_replace("a", S, cancel_order_id=n.order_id,
                         new_order={"side": BUY, "type": LIMIT, "qty": D("100"),
                                    "price": D("29000"), "tif": GTC}, ts_ms=5)
    assert ei.value.code == -2021 and ei.value.cancel_result == "SUCCESS"
    assert n.status == "CANCELED" and len(e.open_orders("a")) == 1


def test_bnb_discount_spot_fee_in_quote_with_reserve() -> None:
    e = spot(fees=FeeSchedule.default(Market.SPOT, bnb_discount=True))
    o, _ = lim(e, BUY, "29900", "0.1")
    reserve = D("2990") * D("0.00075")
    assert e.balances("a")["USDT"] == (D("100000") - D("2990") - reserve, D("2990") + reserve)
    (tr,) = trades(bar(e, 30000, 30010, 29800, 29950))
    assert tr.fill.commission == D("2.2425") and tr.fill.commission_asset == "USDT"
    assert e.balances("a") == {"BTC": (D("10.1"), 0), "USDT": (D("100000") - D("2992.2425"), 0)}


def test_order_snapshots_in_events_do_not_change_later() -> None:
    e = spot()
    o, ev = lim(e, BUY, "29900", "0.01")
    bar(e, 30000, 30010, 29800, 29950)
    assert ev[0].order.status == "NEW" and o.status == "FILLED"


def _scenario(e: Engine, start: int) -> list[str]:
    out = []
    for i in range(start, start + 6):
        p = 30000 + 150 * ((-1) ** i) * (i % 4)
        out += [repr(x) for x in bar(e, 30000, p + 200, p - 200, p, v=0.5, t=60_000 * i)]
        if i % 2:
            try:
                _, ev = lim(e, BUY if i % 4 == 1 else SELL, str(p + 30 * (i % 3) - 30), "0.03",
                            ts_ms=60_000 * i + 1)
                out += [repr(x) for x in ev]
            except ExchangeError as err:
                out.append(str(err))
    return out


def test_state_round_trip_behaves_identically() -> None:
    e = spot(fill=FillConfig(max_volume_share=0.05))
    lim(e, BUY, "29800", "0.2")
    lim(e, SELL, "30300", "0.2", client_order_id="tp")
    _scenario(e, 1)
    state = json.loads(json.dumps(e.to_state()))
    e2 = Engine.from_state(state)
    assert e2.to_state() == e.to_state()
    assert _scenario(e, 10) == _scenario(e2, 10)
    assert e.balances("a") == e2.balances("a")
