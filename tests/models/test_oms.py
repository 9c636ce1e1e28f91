"""OMS core: intent before send, idempotent submits, fills once, reconciliation, modify paths."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from models import messages as m
from models.enums import Market, OrderType, Side
from models.oms import OmsCore

SYM = "BTCUSDT"


def core(market: Market = Market.FUTURES, reconciled: bool = True) -> OmsCore:
    c = OmsCore(SYM, market, "gb")
    if reconciled:
        c.on_event(m.ExchangeSnapshotReceived(symbol=SYM))
    return c


def submit(c: OmsCore, key: str = "L-1", msg_id: str | None = None, **kw) -> tuple:
    args = dict(symbol=SYM, key=key, side=Side.BUY, order_type=OrderType.LIMIT,
                price=D("100.0"), qty=D("0.010"), reservation_id=f"r-{key}", ts_event_ns=1_000_000)
    args.update(kw)
    if msg_id:
        args["msg_id"] = msg_id
    msg = m.SubmitOrder(**args)
    return msg, c.submit(msg)


def roles(fx) -> list[tuple[str, str]]:
    return [(r, type(x).__name__) for r, x in fx.sends]


def test_submit_writes_intent_and_sends_once() -> None:
    c = core()
    msg, fx = submit(c)
    (send,) = [x for r, x in fx.sends if r == "gateway"]
    assert isinstance(send, m.SendOrder) and send.client_order_id == "gb-BTC-L-1-0"
    assert fx.outbox[0][:2] == ("SEND_ORDER", "gb-BTC-L-1-0")
    assert fx.orders[0].state.value == "PENDING_NEW"
    assert any(e[0] == "ORDER_PLACED" for e in fx.logs)
    # thespian re-delivers the same message after a crash: no second send
    fx2 = c.submit(msg)
    assert fx2.sends == [] and fx2.outbox == []
    # a different intent for a key with a live order is denied, reservation released
    _, fx3 = submit(c)
    assert ("risk", "OrderEnded") in roles(fx3) and ("strategy", "OrderDenied") in roles(fx3)
    assert not any(r == "gateway" for r, _ in fx3.sends)


def test_not_reconciled_denies() -> None:
    c = core(reconciled=False)
    _, fx = submit(c)
    assert not any(r == "gateway" for r, _ in fx.sends)
    assert any(isinstance(x, m.OrderDenied) and x.reason == "NOT_RECONCILED" for _, x in fx.sends)


def test_ack_fill_dedupe_and_end() -> None:
    c = core()
    submit(c)
    cid = "gb-BTC-L-1-0"
    fx = c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=7,
                                    side=Side.BUY, qty=D("0.010")))
    assert fx.done_refs == [cid]
    fill = m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=1, side=Side.BUY,
                         price=D("100.0"), qty=D("0.004"), fee=D("0.0001"), fee_asset="USDT")
    fx = c.on_event(fill)
    assert ("risk", "OrderFilled") in roles(fx) and len(fx.fills) == 1
    assert c.on_event(fill).sends == []  # duplicate trade id: applied once
    fx = c.on_event(m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=2, side=Side.BUY,
                                  price=D("100.0"), qty=D("0.006")))
    ended = [x for _, x in fx.sends if isinstance(x, m.OrderEnded)]
    assert ended and ended[0].status == "FILLED" and ended[0].reservation_id == "r-L-1"
    assert c.ledger.get(cid).filled_qty == D("0.010")
    # after it ended, the key gets the next generation
    _, fx = submit(c)
    assert [x.client_order_id for r, x in fx.sends if r == "gateway"] == ["gb-BTC-L-1-1"]


def test_fill_before_ack_and_late_ack_ignored() -> None:
    c = core()
    submit(c)
    cid = "gb-BTC-L-1-0"
    c.on_event(m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=5, side=Side.BUY,
                             price=D("100.0"), qty=D("0.010")))
    fx = c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=9,
                                    side=Side.BUY, qty=D("0.010")))
    assert c.ledger.get(cid).state.value == "FILLED"
    assert not any(isinstance(x, m.OrderEnded) for _, x in fx.sends)


def test_unknown_outcome_is_queried_not_resent() -> None:
    c = core()
    submit(c)
    cid = "gb-BTC-L-1-0"
    fx = c.on_event(m.OrderOutcomeUnknown(symbol=SYM, client_order_id=cid, detail="503"))
    assert fx.queries_later == [cid]
    assert not any(isinstance(x, m.SendOrder) for _, x in fx.sends)
    fx = c.on_event(m.OrderStatusReported(symbol=SYM, client_order_id=cid, exchange_order_id=3,
                                          status="NEW", qty=D("0.010"), price=D("100.0")))
    assert c.ledger.get(cid).state.value == "NEW"
    # not found: it was never placed -> REJECTED, reservation released
    submit(c, key="L-2")
    cid2 = "gb-BTC-L-2-0"
    c.on_event(m.OrderOutcomeUnknown(symbol=SYM, client_order_id=cid2))
    fx = c.on_event(m.OrderStatusReported(symbol=SYM, client_order_id=cid2, status="",
                                          found=False))
    assert c.ledger.get(cid2).state.value == "REJECTED"
    assert any(isinstance(x, m.OrderEnded) for _, x in fx.sends)


def test_cancel_idempotent() -> None:
    c = core()
    submit(c)
    cid = "gb-BTC-L-1-0"
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=7,
                               side=Side.BUY, qty=D("0.010")))
    fx = c.cancel(m.CancelOrder(symbol=SYM, client_order_id=cid))
    assert roles(fx).count(("gateway", "SendCancel")) == 1
    assert c.cancel(m.CancelOrder(symbol=SYM, client_order_id=cid)).sends == []
    fx = c.on_event(m.OrderCanceled(symbol=SYM, client_order_id=cid))
    assert any(isinstance(x, m.OrderEnded) and x.status == "CANCELED" for _, x in fx.sends)


def test_futures_modify_and_reject_falls_back_to_cancel() -> None:
    c = core(Market.FUTURES)
    submit(c)
    cid = "gb-BTC-L-1-0"
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=7,
                               side=Side.BUY, qty=D("0.010")))
    fx = c.modify(m.ModifyOrder(symbol=SYM, client_order_id=cid, side=Side.BUY,
                                price=D("99.0"), qty=D("0.010")))
    assert ("gateway", "SendModify") in roles(fx)
    c.on_event(m.OrderModified(symbol=SYM, client_order_id=cid, price=D("99.0"),
                               qty=D("0.010")))
    assert c.ledger.get(cid).price == D("99.0")
    c.modify(m.ModifyOrder(symbol=SYM, client_order_id=cid, side=Side.BUY, price=D("98.0"),
                           qty=D("0.010")))
    fx = c.on_event(m.OrderModifyRejected(symbol=SYM, client_order_id=cid, code=-5027,
                                          reason="no need"))
    assert ("gateway", "SendCancel") in roles(fx)


def test_spot_modify_is_cancel_replace_to_next_generation() -> None:
    c = core(Market.SPOT)
    submit(c)
    cid = "gb-BTC-L-1-0"
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=7,
                               side=Side.BUY, qty=D("0.010")))
    fx = c.modify(m.ModifyOrder(symbol=SYM, client_order_id=cid, side=Side.BUY,
                                price=D("99.0"), qty=D("0.010")))
    (send,) = [x for r, x in fx.sends if r == "gateway"]
    assert send.new_client_order_id == "gb-BTC-L-1-1"
    fx = c.on_event(m.OrderModified(symbol=SYM, client_order_id=cid,
                                    new_client_order_id="gb-BTC-L-1-1", price=D("99.0"),
                                    qty=D("0.010")))
    assert c.ledger.get(cid).state.value == "CANCELED"
    assert c.ledger.get("gb-BTC-L-1-1").state.value == "NEW"
    assert c.ledger.get("gb-BTC-L-1-1").reservation_id == "r-L-1"
    ended = [x for _, x in fx.sends if isinstance(x, m.OrderEnded)]
    assert ended and ended[0].reservation_id == ""  # the reservation moved to the new order


def test_reconcile_after_restart_applies_missing_fills_and_queries_in_flight() -> None:
    c = core()
    submit(c)
    submit(c, key="L-2")
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id="gb-BTC-L-1-0", exchange_order_id=7,
                               side=Side.BUY, qty=D("0.010")))
    restored = OmsCore(SYM, Market.FUTURES, "gb", state=c.to_state())
    assert restored.reconciled is False
    snap = m.ExchangeSnapshotReceived(
        symbol=SYM,
        trades=[m.TradeRow(trade_id=11, client_order_id="gb-BTC-L-1-0", exchange_order_id=7,
                           side=Side.BUY, price=D("100.0"), qty=D("0.010"))],
        open_orders=[m.OpenOrderRow(client_order_id="foreign-1", side=Side.SELL,
                                    price=D("120"), qty=D("1"))])
    fx = restored.on_event(snap)
    assert restored.reconciled
    assert restored.ledger.get("gb-BTC-L-1-0").state.value == "FILLED"
    assert ("gateway", "QueryOrder") in roles(fx)  # L-2 was in flight: query, never resend
    assert any(isinstance(x, m.SendCancel) and x.client_order_id == "foreign-1"
               for _, x in fx.sends)
    assert not any(isinstance(x, m.SendOrder) for _, x in fx.sends)
    # the same snapshot again changes nothing (fills applied once)
    fx2 = restored.on_event(snap)
    assert not any(isinstance(x, m.OrderFilled) for _, x in fx2.sends)


def test_halted_only_reduce_only() -> None:
    c = core()
    c.set_halted(True)
    _, fx = submit(c)
    assert not any(r == "gateway" for r, _ in fx.sends)
    _, fx = submit(c, key="FLAT", reduce_only=True, order_type=OrderType.MARKET, price=None,
                   side=Side.SELL)
    assert ("gateway", "SendOrder") in roles(fx)


@pytest.mark.parametrize("market", [Market.SPOT, Market.FUTURES])
def test_snapshot_round_trip(market: Market) -> None:
    import msgspec

    from models.oms import OmsState

    c = core(market)
    submit(c)
    blob = msgspec.msgpack.encode(c.to_state())
    again = OmsCore(SYM, market, "gb", state=msgspec.msgpack.decode(blob, type=OmsState))
    assert again.ledger.get("gb-BTC-L-1-0") == c.ledger.get("gb-BTC-L-1-0")


def _fill(c: OmsCore, cid: str, trade_id: int, side: Side, qty: str, price: str = "100") -> None:
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=trade_id,
                               side=side, price=D(price), qty=D(qty)))
    c.on_event(m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=trade_id, side=side,
                             price=D(price), qty=D(qty)))


def test_stop_flatten_cancels_then_closes_the_position_reduce_only() -> None:
    from models.filters import SymbolFilters

    c = core()
    c.set_filters(SymbolFilters(symbol=SYM, base_asset="BTC", quote_asset="USDT",
                                tick_size=D("0.1"), min_price=D("0.1"), max_price=D("1e6"),
                                step_size=D("0.001"), min_qty=D("0.001"), max_qty=D("1000"),
                                min_notional=D("5"), market_step_size=D("0.001"),
                                market_min_qty=D("0.001"), market_max_qty=D("100"),
                                price_precision=1, qty_precision=3))
    _, fx = submit(c, key="L-1")
    _fill(c, "gb-BTC-L-1-0", 7, Side.BUY, "0.010")
    submit(c, key="L-2", price=D("99.0"))
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id="gb-BTC-L-2-0", exchange_order_id=8,
                               side=Side.BUY, price=D("99.0"), qty=D("0.010")))
    assert c.position_qty == D("0.010")
    fx = c.stop(m.StopTrading(symbol=SYM, mode="flatten"))
    sends = [x for r, x in fx.sends if r == "gateway"]
    assert any(isinstance(x, m.SendCancel) and x.client_order_id == "gb-BTC-L-2-0" for x in sends)
    (flat,) = [x for x in sends if isinstance(x, m.SendOrder)]
    assert flat.side is Side.SELL and flat.qty == D("0.010") and flat.reduce_only
    assert flat.order_type is OrderType.MARKET
    assert not c.stopped()
    # no new entries while stopping
    _, fx = submit(c, key="L-3")
    assert any(isinstance(x, m.OrderDenied) and x.reason == "STOPPING" for _, x in fx.sends)
    # re-delivered stop sends no second flatten order
    fx = c.stop(m.StopTrading(symbol=SYM, mode="flatten"))
    assert not any(isinstance(x, m.SendOrder) for _, x in fx.sends)
    c.on_event(m.OrderCanceled(symbol=SYM, client_order_id="gb-BTC-L-2-0"))
    _fill(c, flat.client_order_id, 9, Side.SELL, "0.010")
    assert c.position_qty == 0 and c.stopped()


def test_stop_cancel_only_leaves_the_position() -> None:
    c = core()
    submit(c, key="L-1")
    _fill(c, "gb-BTC-L-1-0", 7, Side.BUY, "0.010")
    fx = c.stop(m.StopTrading(symbol=SYM, mode="cancel-only"))
    assert not any(isinstance(x, m.SendOrder) for _, x in fx.sends)
    assert c.stopped() and c.position_qty == D("0.010")


def test_futures_reconciliation_takes_the_exchange_position() -> None:
    c = core()
    c.on_event(m.ExchangeSnapshotReceived(symbol=SYM, position_qty=D("-0.5")))
    assert c.position_qty == D("-0.5")
    s = core(Market.SPOT)
    s.on_event(m.ExchangeSnapshotReceived(symbol=SYM, position_qty=D("3")))
    assert s.position_qty == 0


def test_stop_leave_keeps_orders_and_position() -> None:
    c = core()
    submit(c, key="L-1")
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id="gb-BTC-L-1-0", exchange_order_id=1,
                               side=Side.BUY, price=D("100.0"), qty=D("0.010")))
    fx = c.stop(m.StopTrading(symbol=SYM, mode="leave"))
    assert not any(r == "gateway" for r, _ in fx.sends)
    assert c.stopped() and len(c.ledger.open_orders()) == 1
