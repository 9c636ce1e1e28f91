"""Order records: triggers follow the table, fills, the real-world edges, polls, error classes."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest

import models.orders as om
from models.enums import Side
from models.order_states import IllegalTransition, OrderState, Trigger, next_state
from models.orders import (
    ErrorClass,
    OrderRecord,
    OrderView,
    OverFill,
    apply_exchange_status,
    apply_fill,
    apply_trigger,
    classify_error,
    new_order,
)

S, T = OrderState, Trigger
FILL_TRIGGERS = {T.FILL, T.PARTIAL_FILL}


def _rec(state: OrderState, filled: D = D(0), **kw: object) -> OrderRecord:
    base = new_order(prefix="gb", symbol="BTCUSDT", key="L1", generation=0, side=Side.BUY,
                     qty=D("1.0"), price=D("100"), ts_ms=1)
    return msgspec.structs.replace(base, state=state, filled_qty=filled,
                                   exchange_executed_qty=filled, **kw)


@pytest.mark.parametrize("state", list(OrderState))
@pytest.mark.parametrize("trigger", [t for t in Trigger if t not in FILL_TRIGGERS])
def test_apply_trigger_follows_table(state: OrderState, trigger: Trigger) -> None:
    rec = _rec(state, pending_price=D("101"), pending_qty=D("1.0"))
    kw: dict = {"price": D("99"), "qty": D("1.0")} if trigger is T.MODIFY_REQUEST else {}
    try:
        expected = next_state(state, trigger)
    except IllegalTransition:
        with pytest.raises(IllegalTransition) as ei:
            apply_trigger(rec, trigger, ts_ms=5, **kw)
        assert ei.value.client_order_id == rec.client_order_id
        return
    out = apply_trigger(rec, trigger, ts_ms=5, **kw)
    if expected is None:
        assert out is rec
    else:
        assert out.state is expected and out.updated_ms == 5


def test_live_resolution_goes_to_partially_filled_when_filled() -> None:
    rec = _rec(S.PENDING_CANCEL, filled=D("0.4"))
    assert apply_trigger(rec, T.CANCEL_REJECT, ts_ms=2).state is S.PARTIALLY_FILLED
    rec = _rec(S.PENDING_CANCEL)
    assert apply_trigger(rec, T.CANCEL_REJECT, ts_ms=2).state is S.NEW


def test_fill_triggers_must_use_apply_fill() -> None:
    with pytest.raises(ValueError):
        apply_trigger(_rec(S.NEW), T.FILL, ts_ms=1)


# -- real-world edges ------------------------------------------------------------------------------
def test_fill_before_ack_then_late_ack_ignored() -> None:
    rec = _rec(S.PENDING_NEW)
    rec, ok = apply_fill(rec, 10, D("100"), D("0.4"), D("0.04"), "USDT", 2)
    assert ok and rec.state is S.PARTIALLY_FILLED
    rec2 = apply_trigger(rec, T.ACK, ts_ms=3, exchange_order_id=777)
    assert rec2.state is S.PARTIALLY_FILLED and rec2.exchange_order_id == 777


def test_fill_after_cancel_request_and_completing_fill_wins() -> None:
    rec = apply_trigger(_rec(S.NEW), T.CANCEL_REQUEST, ts_ms=2)
    rec, _ = apply_fill(rec, 1, D("100"), D("0.5"), D(0), "USDT", 3)
    assert rec.state is S.PENDING_CANCEL and rec.filled_qty == D("0.5")
    rec, _ = apply_fill(rec, 2, D("101"), D("0.5"), D(0), "USDT", 4)
    assert rec.state is S.FILLED
    assert rec.avg_fill_price == D("100.5")
    # the cancel is refused because the order filled: ignored
    assert apply_trigger(rec, T.CANCEL_REJECT, ts_ms=5, code=-2011) is rec


def test_duplicate_trade_applied_once_and_overfill_raises() -> None:
    rec = _rec(S.NEW)
    rec, ok = apply_fill(rec, 7, D("100"), D("0.6"), D("0.06"), "USDT", 2)
    again, ok2 = apply_fill(rec, 7, D("100"), D("0.6"), D("0.06"), "USDT", 2)
    assert ok and not ok2 and again is rec
    assert rec.fees == {"USDT": D("0.06")}
    with pytest.raises(OverFill):
        apply_fill(rec, 8, D("100"), D("0.5"), D(0), "USDT", 3)


def test_stale_poll_after_filled_is_ignored_but_contradiction_raises() -> None:
    rec = _rec(S.NEW)
    rec, _ = apply_fill(rec, 1, D("100"), D("1.0"), D(0), "USDT", 2)
    for status in ("NEW", "PARTIALLY_FILLED", "FILLED"):
        out = apply_exchange_status(rec, OrderView(client_order_id=rec.client_order_id,
                                                   status=status, qty=D("1.0"),
                                                   filled_qty=D("0.3")), 3)
        assert out.state is S.FILLED and out.filled_qty == D("1.0")
    with pytest.raises(IllegalTransition):
        apply_exchange_status(rec, OrderView(client_order_id=rec.client_order_id,
                                             status="CANCELED"), 3)


def test_late_trade_after_cancel_is_booked_without_state_change() -> None:
    rec = apply_trigger(_rec(S.NEW), T.CANCEL_ACK, ts_ms=2)
    rec, ok = apply_fill(rec, 5, D("100"), D("0.2"), D("0.02"), "USDT", 3)
    assert ok and rec.state is S.CANCELED and rec.filled_qty == D("0.2")


def test_unknown_submit_resolved_by_query() -> None:
    rec = apply_trigger(_rec(S.PENDING_NEW), T.UNKNOWN_OUTCOME, ts_ms=2)
    assert rec.state is S.PENDING_NEW and rec.outcome_unknown
    found = apply_exchange_status(rec, OrderView(client_order_id=rec.client_order_id,
                                                 exchange_order_id=9, status="NEW",
                                                 qty=D("1.0")), 3)
    assert found.state is S.NEW and not found.outcome_unknown and found.exchange_order_id == 9
    missing = apply_exchange_status(rec, OrderView(client_order_id=rec.client_order_id,
                                                   found=False), 3)
    assert missing.state is S.REJECTED and missing.reason == "NOT_FOUND"
    partial = apply_exchange_status(rec, OrderView(client_order_id=rec.client_order_id,
                                                   status="PARTIALLY_FILLED", qty=D("1.0"),
                                                   filled_qty=D("0.25")), 3)
    assert partial.state is S.PARTIALLY_FILLED
    assert partial.filled_qty == 0 and partial.missing_fill_qty == D("0.25")


def test_unknown_cancel_resolved_by_poll() -> None:
    rec = apply_trigger(_rec(S.PARTIALLY_FILLED, filled=D("0.5")), T.CANCEL_REQUEST, ts_ms=2)
    view = OrderView(client_order_id=rec.client_order_id, status="PARTIALLY_FILLED",
                     qty=D("1.0"), filled_qty=D("0.5"))
    # outcome known to be pending: a poll that still shows it live changes nothing
    assert apply_exchange_status(rec, view, 3).state is S.PENDING_CANCEL
    unk = apply_trigger(rec, T.UNKNOWN_OUTCOME, ts_ms=3)
    assert apply_exchange_status(unk, view, 4).state is S.PARTIALLY_FILLED
    gone = OrderView(client_order_id=rec.client_order_id, status="CANCELED")
    assert apply_exchange_status(unk, gone, 4).state is S.CANCELED


def test_futures_modify_flow() -> None:
    rec = _rec(S.NEW)
    pm = apply_trigger(rec, T.MODIFY_REQUEST, ts_ms=2, price=D("98"), qty=D("2"))
    assert pm.state is S.PENDING_MODIFY and pm.pending_price == D("98")
    done = apply_trigger(pm, T.MODIFY_ACK, ts_ms=3)
    assert (done.state, done.price, done.qty, done.pending_price) == (S.NEW, D("98"), D("2"), None)
    refused = apply_trigger(pm, T.MODIFY_REJECT, ts_ms=3, code=-5027)
    assert (refused.state, refused.price, refused.pending_qty) == (S.NEW, D("100"), None)
    # unknown modify outcome: the poll shows the target -> applied, anything else -> not
    unk = apply_trigger(pm, T.UNKNOWN_OUTCOME, ts_ms=3)
    hit = OrderView(client_order_id=rec.client_order_id, status="NEW", price=D("98"), qty=D("2"))
    miss = OrderView(client_order_id=rec.client_order_id, status="NEW", price=D("100"),
                     qty=D("1.0"))
    assert apply_exchange_status(unk, hit, 4).price == D("98")
    out = apply_exchange_status(unk, miss, 4)
    assert out.state is S.NEW and out.price == D("100")
    with pytest.raises(ValueError):
        apply_trigger(_rec(S.PARTIALLY_FILLED, filled=D("0.5")), T.MODIFY_REQUEST, ts_ms=2,
                      price=D("99"), qty=D("0.5"))


def test_poll_status_mapping_rejects_unknown_status() -> None:
    with pytest.raises(ValueError):
        om.poll_trigger("WEIRD")
    assert om.poll_trigger("EXPIRED_IN_MATCH") is T.POLL_EXPIRED


# -- error classes ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("status", "code", "timeout", "expected"), [
    (None, None, True, ErrorClass.UNKNOWN_OUTCOME),
    (503, None, False, ErrorClass.UNKNOWN_OUTCOME),
    (500, -1006, False, ErrorClass.UNKNOWN_OUTCOME),
    (408, -1007, False, ErrorClass.UNKNOWN_OUTCOME),
    (429, -1003, False, ErrorClass.RETRY_LATER),
    (429, None, False, ErrorClass.RETRY_LATER),
    (418, None, False, ErrorClass.BANNED),
    (400, -1021, False, ErrorClass.RESYNC_TIME),
    (400, -2011, False, ErrorClass.NOT_FOUND),
    (400, -2013, False, ErrorClass.NOT_FOUND),
    *[(400, c, False, ErrorClass.REJECTED)
      for c in (-1013, -2010, -2019, -2022, -4131, -4164, -1111, -4003, -4014)],
    (403, None, False, ErrorClass.REJECTED),
])
def test_classify_error(status: int | None, code: int | None, timeout: bool,
                        expected: ErrorClass) -> None:
    assert classify_error(status, code, timeout) is expected
