"""Matching engine: USDT-M futures behaviour (positions, margin, funding, liquidation, stops)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from exchange_sim.engine import (
    AccountEvent,
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
LIMIT, MARKET = OrderType.LIMIT, OrderType.MARKET
STOP, TP = OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET
GTC, IOC, FOK, GTX = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK, TimeInForce.GTX


def fut(wallet: str = "10000", slip: str = "0", **kw: object) -> Engine:
    e = Engine(Market.FUTURES, fill=kw.pop("fill", FillConfig(market_slippage_bps=D(slip))),
               **kw)  # type: ignore[arg-type]
    e.create_account("a", {"USDT": D(wallet)})
    e.set_last_price(S, D("30000"), 0)
    return e


def mkt(e: Engine, side: Side, qty: str, acct: str = "a", **kw: object):
    return e.place_order(acct, S, side, MARKET, qty=D(qty), ts_ms=kw.pop("ts_ms", 1),
                         **kw)  # type: ignore[arg-type]


def lim(e: Engine, side: Side, price: str, qty: str, tif: TimeInForce = GTC, **kw: object):
    return e.place_order("a", S, side, LIMIT, qty=D(qty), price=D(price), tif=tif,
                         ts_ms=kw.pop("ts_ms", 1), **kw)  # type: ignore[arg-type]


def stop(e: Engine, otype: OrderType, side: Side, sp: str, qty: str, **kw: object):
    return e.place_order("a", S, side, otype, qty=D(qty), stop_price=D(sp),
                         ts_ms=kw.pop("ts_ms", 1), **kw)  # type: ignore[arg-type]


def bar(e: Engine, o: float, h: float, l: float, c: float, v: float = 1000.0,  # noqa: E741
        t: int = 60_000) -> list:
    return e.on_bar(S, t, t + 59_999, o, h, l, c, v)


def pos(e: Engine, acct: str = "a"):
    return e.positions(acct, S)[0]


def kinds(events: list) -> list[str]:
    return [x.exec_type for x in events if isinstance(x, OrderEvent)]


def test_entry_averaging_realized_pnl_and_flip() -> None:
    e = fut()
    mkt(e, BUY, "0.01")
    e.set_last_price(S, D("31000"), 2)
    mkt(e, BUY, "0.03")
    p = pos(e)
    assert p.qty == D("0.04") and p.entry_price == D("30750")
    e.set_last_price(S, D("32000"), 3)
    assert pos(e).unrealized_pnl == D("50")
    _, ev = mkt(e, SELL, "0.02")
    fill = next(x.fill for x in ev if isinstance(x, OrderEvent) and x.fill)
    assert fill.realized_pnl == D("25") and pos(e).entry_price == D("30750")
    mkt(e, SELL, "0.05")  # closes 0.02 (+25) and opens a 0.03 short at 32000
    p = pos(e)
    assert p.qty == D("-0.03") and p.entry_price == D("32000")
    fees = D("0.15") + D("0.465") + D("0.32") + D("0.8")
    assert e.futures_account("a").wallet_balance == D("10000") + D("50") - fees
    inc = e.income("a")
    assert sum(r.income for r in inc if r.income_type == "REALIZED_PNL") == D("50")
    assert sum(r.income for r in inc if r.income_type == "COMMISSION") == -fees


def test_maker_taker_and_bnb_fees() -> None:
    for bnb, maker_fee in ((False, D("0.0598")), (True, D("0.05382"))):
        e = fut(fees=FeeSchedule.default(Market.FUTURES, bnb_discount=bnb))
        lim(e, BUY, "29900", "0.01")
        (tr,) = [x for x in bar(e, 30000, 30010, 29800, 29950) if
                 isinstance(x, OrderEvent) and x.fill]
        assert tr.fill.maker and tr.fill.commission == maker_fee
        _, ev = mkt(e, SELL, "0.01", ts_ms=70_000)
        f = next(x.fill for x in ev if isinstance(x, OrderEvent) and x.fill)
        assert f.commission == D("29950") * D("0.01") * D("0.0005") * (D("0.9") if bnb else 1)


def test_funding_sign() -> None:
    e = fut()
    e.create_account("b", {"USDT": D("10000")})
    mkt(e, BUY, "0.01")
    mkt(e, SELL, "0.01", acct="b")
    e.set_mark_price(S, D("30000"), 5)
    ev = e.apply_funding(S, D("0.0001"), 8 * 3600_000)
    assert {x.account for x in ev if isinstance(x, AccountEvent)} == {"a", "b"}
    (ra,) = e.income("a", income_type="FUNDING_FEE")
    (rb,) = e.income("b", income_type="FUNDING_FEE")
    assert (ra.income, rb.income) == (D("-0.03"), D("0.03"))
    # the ACCOUNT_UPDATE balance change ("bc") carries the funding amount
    bc = {x.account: x.balances["USDT"][2] for x in ev if isinstance(x, AccountEvent)}
    assert bc == {"a": D("-0.03"), "b": D("0.03")}
    e.apply_funding(S, D("-0.0002"), 16 * 3600_000)
    assert e.income("a", income_type="FUNDING_FEE")[-1].income == D("0.06")


def test_liquidation_on_mark_price() -> None:
    e = fut(wallet="1000")
    mkt(e, BUY, "0.5")  # 15000 notional at 20x, fee 7.5
    lim(e, BUY, "20000", "0.01")
    liq = pos(e).liquidation_price
    assert D("28127") < liq < D("28128")
    assert e.set_mark_price(S, D("28200"), 10) == []
    assert bar(e, 30000, 30010, 20000.0, 29000) == []  # the path no longer moves the mark
    ev = e.set_mark_price(S, D("28100"), 20)
    assert kinds(ev) == ["CANCELED", "NEW", "TRADE"]
    assert [x.reason for x in ev if isinstance(x, AccountEvent)][-1] == "LIQUIDATION"
    assert pos(e).qty == 0 and e.open_orders("a") == []
    trade = next(x for x in ev if isinstance(x, OrderEvent) and x.fill)
    assert trade.order.client_order_id.startswith("autoclose-")
    assert trade.fill.price == D("28100") and trade.fill.realized_pnl == D("-950")
    (clear,) = e.income("a", income_type="INSURANCE_CLEAR")
    assert clear.income == D("-42.5") and e.futures_account("a").wallet_balance == 0


def test_liquidation_on_bar_path_at_liquidation_price() -> None:
    e = fut(wallet="1000")
    mkt(e, BUY, "0.5")
    assert bar(e, 30000, 30050, 28200, 28500) == []
    ev = bar(e, 28500, 28550, 28000, 28300, t=120_000)
    trade = next(x for x in ev if isinstance(x, OrderEvent) and x.fill)
    assert trade.fill.price == D("28127.5") and pos(e).qty == 0
    assert 120_000 < trade.fill.time_ms < 179_999


def test_reduce_only_rules() -> None:
    e = fut()
    with pytest.raises(ExchangeError) as ei:
        lim(e, SELL, "31000", "0.01", reduce_only=True)
    assert (ei.value.code, ei.value.msg) == (-2022, "ReduceOnly Order is rejected.")
    mkt(e, BUY, "0.02")
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29000", "0.01", reduce_only=True)
    assert ei.value.code == -2022
    ro, _ = lim(e, SELL, "31000", "0.05", reduce_only=True)
    _, ev = mkt(e, SELL, "0.01")
    assert "AMENDMENT" in kinds(ev) and ro.orig_qty == D("0.01") and ro.status == "NEW"
    _, ev = mkt(e, SELL, "0.01")
    assert "EXPIRED" in kinds(ev) and ro.status == "EXPIRED"
    # reduce-only below min notional is allowed; a plain one is not
    mkt(e, BUY, "0.01")
    with pytest.raises(ExchangeError) as ei:
        lim(e, SELL, "31000", "0.001")
    assert ei.value.msg == ("Order's notional must be no smaller than 100 (unless you choose "
                            "reduce only).") and ei.value.code == -4164
    small, _ = lim(e, SELL, "31000", "0.001", reduce_only=True)
    assert small.status == "NEW"


@pytest.mark.parametrize("tif,status,executed", [(IOC, "EXPIRED", "0.01"),
                                                 (FOK, "EXPIRED", "0")])
def test_reduce_only_ioc_fok_capped_by_position(tif: TimeInForce, status: str,
                                                executed: str) -> None:
    e = fut()
    mkt(e, BUY, "0.01")
    o, _ = lim(e, SELL, "29000", "0.03", tif=tif, reduce_only=True)
    assert o.status == status and o.executed_qty == D(executed)


def test_stop_market_triggers_on_path_with_slippage() -> None:
    e = fut(slip="1")
    mkt(e, BUY, "0.01")
    with pytest.raises(ExchangeError) as ei:
        stop(e, STOP, SELL, "30100", "0.01", reduce_only=True)
    assert (ei.value.code, ei.value.msg) == (-2021, "Order would immediately trigger.")
    s, _ = stop(e, STOP, SELL, "29500", "0.01", reduce_only=True)
    assert bar(e, 30000, 30050, 29600, 29700) == []
    bar(e, 29700, 29750, 29400, 29450, t=120_000)
    assert s.status == "FILLED" and s.avg_price == D("29497.0") and pos(e).qty == 0


def test_take_profit_and_breakout_stop_and_gap() -> None:
    e = fut()
    mkt(e, SELL, "0.01")
    tp, _ = stop(e, TP, BUY, "29500", "0.01", reduce_only=True)
    bo, _ = stop(e, STOP, BUY, "30500", "0.02")
    bar(e, 30000, 30600, 29900, 30400)
    assert bo.status == "FILLED" and bo.avg_price == D("30500") and pos(e).qty == D("0.01")
    assert tp.status == "EXPIRED"  # the position flipped long: the reduce-only TP is void
    st, _ = stop(e, STOP, SELL, "29500", "0.01", reduce_only=True, ts_ms=200_000)
    bar(e, 29000, 29100, 28900, 29050, t=240_000)  # opens below the stop
    assert st.status == "FILLED" and st.avg_price == D("29000")


@pytest.mark.parametrize("bullish", [True, False])
def test_stop_vs_take_profit_depends_on_candle_shape(bullish: bool) -> None:
    e = fut()
    mkt(e, BUY, "0.01")
    sl, _ = stop(e, STOP, SELL, "29800", "0.01", reduce_only=True)
    tp, _ = lim(e, SELL, "30200", "0.01", reduce_only=True)
    bar(e, 30000, 30300, 29700, 30100 if bullish else 29900)
    winner, loser = (sl, tp) if bullish else (tp, sl)
    assert (winner.status, loser.status) == ("FILLED", "EXPIRED")
    assert pos(e).qty == 0


def test_post_only_gtx() -> None:
    e = fut()
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "30001", "0.01", tif=GTX)
    assert ei.value.code == -5022
    o, _ = lim(e, BUY, "29999", "0.01", tif=GTX)
    assert o.status == "NEW"


def test_margin_check() -> None:
    e = fut(wallet="100")
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29000", "0.1")
    assert (ei.value.code, ei.value.msg) == (-2019, "Margin is insufficient.")
    with pytest.raises(ExchangeError):
        mkt(e, BUY, "0.1")
    o, _ = lim(e, BUY, "29000", "0.05")  # 1450 notional / 20 = 72.5
    assert e.futures_account("a").open_order_initial_margin == D("72.5")
    e.set_leverage("a", S, 10)  # order IM now 145 > wallet
    with pytest.raises(ExchangeError):
        lim(e, BUY, "29000", "0.004")
    # the sell side needs less than the buy side: open-order margin is the max of the sides
    s, _ = lim(e, SELL, "31000", "0.01")
    assert s.status == "NEW" and e.futures_account("a").open_order_initial_margin == D("145")


@pytest.mark.parametrize("sym,price,qty,code", [
    (S, "30000.05", "0.01", -4014), (S, "30000.001", "0.01", -1111),
    (S, "30000", "0", -4003), (S, "30000", "0.0015", -1111), (S, "100", "1", -4013),
    ("SOLUSDT", "20", "1.5", -1111), ("SOLUSDT", "20", "0", -4003),
    ("ETHUSDT", "2000", "0.001", -4164),
])
def test_futures_filter_codes(sym: str, price: str, qty: str, code: int) -> None:
    e = fut()
    with pytest.raises(ExchangeError) as ei:
        e.place_order("a", sym, BUY, LIMIT, qty=D(qty), price=D(price), tif=GTC, ts_ms=1)
    assert ei.value.code == code


def test_duplicate_client_order_id_futures() -> None:
    e = fut()
    lim(e, BUY, "29000", "0.01", client_order_id="g1")
    with pytest.raises(ExchangeError) as ei:
        lim(e, BUY, "29100", "0.01", client_order_id="g1")
    assert (ei.value.code, ei.value.msg) == (-4116, "ClientOrderId is duplicated.")


def test_modify_order() -> None:
    e = fut(fill=FillConfig(market_slippage_bps=D(0), max_volume_share=0.1))
    o, _ = lim(e, BUY, "29000", "0.01")
    m, ev = e.modify_order("a", S, order_id=o.order_id, side=BUY, qty=D("0.02"),
                           price=D("29100"), ts_ms=5)
    assert m is o and kinds(ev) == ["AMENDMENT"] and (o.price, o.orig_qty) == (D("29100"),
                                                                               D("0.02"))
    with pytest.raises(ExchangeError) as ei:
        e.modify_order("a", S, order_id=o.order_id, side=BUY, qty=D("0.02"), price=D("29100"),
                       ts_ms=6)
    assert ei.value.code == -5027
    _, ev = e.modify_order("a", S, order_id=o.order_id, side=BUY, qty=D("0.02"),
                           price=D("30500"), ts_ms=7)
    assert kinds(ev) == ["AMENDMENT", "TRADE"] and o.status == "FILLED"
    assert o.order_id == m.order_id and o.avg_price == D("30000")
    with pytest.raises(ExchangeError) as ei:
        e.modify_order("a", S, order_id=o.order_id, side=BUY, qty=D("0.03"), price=D("29000"),
                       ts_ms=8)
    assert ei.value.code == -2013
    # quantity not above the executed quantity -> cancelled (Binance semantics)
    p, _ = lim(e, SELL, "30100", "0.03")
    bar(e, 30000, 30200, 29990, 30050, v=0.1)  # cap 0.01
    assert p.executed_qty == D("0.01")
    _, ev = e.modify_order("a", S, order_id=p.order_id, side=SELL, qty=D("0.01"),
                           price=D("30150"), ts_ms=9)
    assert p.status == "CANCELED" and kinds(ev) == ["CANCELED"]
    g, _ = lim(e, BUY, "29000", "0.01", tif=GTX)
    e.modify_order("a", S, order_id=g.order_id, side=BUY, qty=D("0.01"), price=D("31000"),
                   ts_ms=10)
    assert g.status == "CANCELED"
    s, _ = stop(e, STOP, BUY, "31000", "0.01")
    with pytest.raises(ExchangeError) as ei:
        e.modify_order("a", S, order_id=s.order_id, side=BUY, qty=D("0.01"), price=D("31000"),
                       ts_ms=11)
    assert ei.value.code == -5025


def test_leverage_and_margin_type() -> None:
    e = fut()
    for bad in (0, 126):
        with pytest.raises(ExchangeError) as ei:
            e.set_leverage("a", S, bad)
        assert (ei.value.code, ei.value.msg) == (-4028, f"Leverage {bad} is not valid")
    assert e.set_leverage("a", S, 50) == 50 and pos(e).leverage == 50
    with pytest.raises(ExchangeError) as ei:
        e.set_margin_type("a", S, "CROSSED")
    assert ei.value.code == -4046
    e.set_margin_type("a", S, "ISOLATED")
    assert pos(e).margin_type == "ISOLATED"
    mkt(e, BUY, "0.01")
    with pytest.raises(ExchangeError) as ei:
        e.set_margin_type("a", S, "CROSSED")
    assert ei.value.code == -4048


def test_spot_only_and_futures_only_calls() -> None:
    e = fut()
    with pytest.raises(ExchangeError):
        e.cancel_replace("a", S, cancel_order_id=1, new_order={"side": BUY, "type": MARKET,
                                                               "qty": D("0.01")}, ts_ms=1)
    with pytest.raises(ExchangeError):
        e.balances("a")
    sp = Engine(Market.SPOT)
    sp.create_account("a", {"USDT": D(1)})
    with pytest.raises(ExchangeError):
        sp.set_leverage("a", S, 5)


def _scenario(e: Engine, start: int) -> list[str]:
    out: list[str] = []
    for i in range(start, start + 8):
        p = 30000 + 120 * ((-1) ** i) * (i % 5)
        out += [repr(x) for x in bar(e, 30000, p + 150, p - 150, p, v=0.3, t=60_000 * i)]
        if i % 3 == 0:
            out += [repr(x) for x in e.apply_funding(S, D("0.0001"), 60_000 * i + 1)]
        try:
            _, ev = lim(e, BUY if i % 2 else SELL, str(p - 60 + 30 * (i % 4)), "0.02",
                        ts_ms=60_000 * i + 2)
            out += [repr(x) for x in ev]
        except ExchangeError as err:
            out.append(str(err))
    out.append(repr(e.futures_account("a")))
    return out


def test_futures_state_round_trip_behaves_identically() -> None:
    e = fut(fill=FillConfig(max_volume_share=0.05))
    mkt(e, BUY, "0.05")
    stop(e, STOP, SELL, "28000", "0.05", reduce_only=True)
    _scenario(e, 1)
    e2 = Engine.from_state(json.loads(json.dumps(e.to_state())))
    assert e2.to_state() == e.to_state()
    assert _scenario(e, 20) == _scenario(e2, 20)
    assert e.income("a", limit=1000) == e2.income("a", limit=1000)


def test_first_price_fills_what_rests_across_it() -> None:
    e = Engine(Market.FUTURES, fill=FillConfig(market_slippage_bps=D(0)))
    e.create_account("a", {"USDT": D("10000")})
    with pytest.raises(ExchangeError) as ei:
        mkt(e, BUY, "0.01")
    assert ei.value.code == -2010  # no market price yet
    b, _ = lim(e, BUY, "30100", "0.01")
    s, _ = lim(e, SELL, "30500", "0.01")
    ev = e.set_last_price(S, D("30000"), 5)
    assert b.status == "FILLED" and b.avg_price == D("30100") and s.status == "NEW"
    assert [x.fill.time_ms for x in ev if isinstance(x, OrderEvent) and x.fill] == [5]


def test_gap_through_liquidation_price_liquidates_at_open() -> None:
    e = fut(wallet="1000")
    mkt(e, BUY, "0.5")  # liquidation near 28127.5
    ev = bar(e, 27000, 27100, 26900, 27050)
    trade = next(x for x in ev if isinstance(x, OrderEvent) and x.fill)
    assert trade.fill.price == D("27000") and trade.fill.time_ms == 60_000
    inc = e.income("a", income_type="INSURANCE_CLEAR")
    assert inc[-1].income > 0 and e.futures_account("a").wallet_balance == 0  # fund covers


def test_cross_liquidation_closes_every_position() -> None:
    e = fut(wallet="1000")
    e.set_last_price("ETHUSDT", D("2000"), 0)
    mkt(e, BUY, "0.4")
    e.place_order("a", "ETHUSDT", BUY, MARKET, qty=D("1"), ts_ms=1)
    assert e.set_mark_price("ETHUSDT", D("2000"), 2) == []
    ev = e.set_mark_price(S, D("27000"), 3)
    closed = {x.order.symbol for x in ev if isinstance(x, OrderEvent) and x.fill}
    assert closed == {S, "ETHUSDT"}
    assert all(p.qty == 0 for p in e.positions("a"))
    assert e.futures_account("a").wallet_balance >= 0
