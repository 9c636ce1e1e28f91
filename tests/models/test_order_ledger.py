"""Order ledger (idempotent creation, generations, persistence) and reconciliation."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec

from models.client_ids import client_order_id
from models.enums import Side
from models.messages import OpenOrderRow, TradeRow
from models.order_ledger import LedgerState, OrderLedger, apply_plan_fills, reconcile
from models.order_states import OrderState, Trigger
from models.orders import OrderRecord, OrderView, TradeView

S, T = OrderState, Trigger


# -- ledger ------------------------------------------------------------------------------------------
def test_ledger_create_is_idempotent_and_generations_advance() -> None:
    led = OrderLedger("gb", "BTCUSDT")
    a, created = led.create(key="L1", side=Side.BUY, qty=D("1"), price=D("100"), ts_ms=1,
                            intent_id="m1")
    assert created and a.generation == 0
    b, created = led.create(key="L1", side=Side.BUY, qty=D("1"), price=D("100"), ts_ms=2,
                            intent_id="m2")
    assert not created and b is a  # the key already has a live order
    led.trigger(a.client_order_id, T.ACK, ts_ms=3, exchange_order_id=11)
    led.fill(a.client_order_id, 1, D("100"), D("1"), D(0), "USDT", 4)
    c, created = led.create(key="L1", side=Side.BUY, qty=D("1"), price=D("100"), ts_ms=5,
                            intent_id="m1")
    assert not created and c.client_order_id == a.client_order_id  # same intent
    d, created = led.create(key="L1", side=Side.BUY, qty=D("1"), price=D("100"), ts_ms=5,
                            intent_id="m3")
    assert created and d.generation == 1 and d.client_order_id != a.client_order_id
    assert [r.client_order_id for r in led.open_orders()] == [d.client_order_id]
    assert led.by_exchange_id(11).client_order_id == a.client_order_id


def test_ledger_state_roundtrip_msgpack() -> None:
    led = OrderLedger("gb", "ETHUSDT")
    r, _ = led.create(key="S1", side=Side.SELL, qty=D("0.5"), price=D("2000.5"), ts_ms=1)
    led.fill(r.client_order_id, 3, D("2000.5"), D("0.2"), D("0.0001"), "BNB", 2)
    blob = msgspec.msgpack.encode(led.to_state())
    back = OrderLedger.from_state(msgspec.msgpack.decode(blob, type=LedgerState))
    rec = back.get(r.client_order_id)
    assert rec == led.get(r.client_order_id)
    assert rec.fees == {"BNB": D("0.0001")} and rec.seen_trade_ids == (3,)
    # the restored ledger still deduplicates the trade
    assert back.fill(r.client_order_id, 3, D("2000.5"), D("0.2"), D(0), "BNB", 3)[1] is False
    assert back.next_generation("S1") == 1
    back.trigger(r.client_order_id, T.CANCEL_ACK, ts_ms=10)
    assert back.prune(before_ms=11) == 1 and len(back) == 0


# -- reconciliation ----------------------------------------------------------------------------------
def _ledger_with_orders() -> tuple[OrderLedger, list[OrderRecord]]:
    led = OrderLedger("gb", "BTCUSDT")
    recs = []
    for i in range(4):
        r, _ = led.create(key=f"L{i}", side=Side.BUY, qty=D("1"), price=D(100 - i), ts_ms=1)
        recs.append(led.trigger(r.client_order_id, T.ACK, ts_ms=2, exchange_order_id=100 + i))
    return led, recs


def test_reconcile_plan() -> None:
    led, recs = _ledger_with_orders()
    led.fill(recs[0].client_order_id, 1, D("100"), D("0.5"), D(0), "USDT", 3)
    inflight, _ = led.create(key="L9", side=Side.BUY, qty=D("1"), price=D("90"), ts_ms=3)
    open_rows = [
        OpenOrderRow(client_order_id=recs[0].client_order_id, side=Side.BUY, price=D("100"),
                     qty=D("1"), filled_qty=D("0.7"), status="PARTIALLY_FILLED",
                     exchange_order_id=100),
        OpenOrderRow(client_order_id="web_manual", side=Side.SELL, price=D("200"), qty=D("1"),
                     exchange_order_id=555),
    ]
    trades = [
        TradeRow(trade_id=1, exchange_order_id=100, side=Side.BUY, price=D("100"), qty=D("0.5")),
        TradeRow(trade_id=2, exchange_order_id=100, side=Side.BUY, price=D("100"), qty=D("0.2")),
        TradeRow(trade_id=2, exchange_order_id=100, side=Side.BUY, price=D("100"), qty=D("0.2")),
        TradeRow(trade_id=3, client_order_id=recs[1].client_order_id, side=Side.BUY,
                 price=D("99"), qty=D("1")),
        TradeRow(trade_id=4, exchange_order_id=999, side=Side.BUY, price=D("1"), qty=D("1")),
    ]
    plan = reconcile(led, open_rows, trades, adopt_unknown=False)
    assert [(f.client_order_id, f.trade_id) for f in plan.fills] == [
        (recs[0].client_order_id, 2), (recs[1].client_order_id, 3)]
    assert [s.client_order_id for s in plan.statuses] == [recs[0].client_order_id]
    assert plan.mark_filled == [recs[1].client_order_id]
    assert sorted(plan.to_query) == sorted([recs[2].client_order_id, recs[3].client_order_id,
                                            inflight.client_order_id])
    assert [v.client_order_id for v in plan.to_cancel] == ["web_manual"] and not plan.to_adopt
    assert [t.trade_id for t in plan.unmatched_trades] == [4]
    changed = apply_plan_fills(led, plan)
    assert len(changed) == 2 and led.get(recs[1].client_order_id).state is S.FILLED
    assert apply_plan_fills(led, plan) == []  # idempotent
    adopt = reconcile(led, open_rows, [], adopt_unknown=True)
    assert [v.client_order_id for v in adopt.to_adopt] == ["web_manual"]
    rec = led.adopt(adopt.to_adopt[0], ts_ms=9)
    assert rec.state is S.NEW and led.get("web_manual") is rec


def test_reconcile_terminal_local_but_open_on_exchange_is_queried() -> None:
    led, recs = _ledger_with_orders()
    led.trigger(recs[0].client_order_id, T.CANCEL_ACK, ts_ms=3)
    rows = [OrderView(client_order_id=r.client_order_id, exchange_order_id=r.exchange_order_id,
                      side=Side.BUY, price=r.price, qty=r.qty) for r in recs]
    plan = reconcile(led, rows, [], adopt_unknown=True)
    assert plan.to_query == [recs[0].client_order_id]
    assert len(plan.statuses) == 3 and not plan.to_adopt


def test_adopt_own_id_restores_generation() -> None:
    led = OrderLedger("gb", "SOLUSDT")
    cid = client_order_id("gb", "SOLUSDT", "L2", 5)
    led.adopt(OrderView(client_order_id=cid, exchange_order_id=1, side=Side.BUY,
                        price=D("150"), qty=D("2"), filled_qty=D("1"),
                        status="PARTIALLY_FILLED"), ts_ms=1)
    assert led.get(cid).state is S.PARTIALLY_FILLED and led.next_generation("L2") == 6


def test_tradeview_is_accepted() -> None:
    led, recs = _ledger_with_orders()
    plan = reconcile(led, [], [TradeView(trade_id=1, exchange_order_id=100, side=Side.BUY,
                                         price=D("100"), qty=D("1"))], adopt_unknown=False)
    assert plan.mark_filled == [recs[0].client_order_id]
