"""Order lifecycle: exhaustive transition table, ids, fills, polls, ledger, reconciliation."""

from __future__ import annotations

import re
from decimal import Decimal as D

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import models.orders as om
from models.enums import Side
from models.messages import OpenOrderRow, TradeRow
from models.orders import (
    IGNORED,
    TERMINAL,
    TRANSITIONS,
    ErrorClass,
    IllegalTransition,
    LedgerState,
    OrderLedger,
    OrderRecord,
    OrderState,
    OrderView,
    OverFill,
    TradeView,
    Trigger,
    apply_exchange_status,
    apply_fill,
    apply_trigger,
    classify_error,
    client_order_id,
    generation_of,
    new_order,
    next_state,
    parse_client_order_id,
    reconcile,
)

S, T = OrderState, Trigger
FILL_TRIGGERS = {T.FILL, T.PARTIAL_FILL}


# -- the table ---------------------------------------------------------------------------------
def _doc_table() -> dict[tuple[OrderState, Trigger], str]:
    """Parse the table in the module docstring (the documentation must match the code)."""
    abbrev = {"PEND_NEW": S.PENDING_NEW, "NEW": S.NEW, "PART": S.PARTIALLY_FILLED,
              "PEND_CXL": S.PENDING_CANCEL, "PEND_MOD": S.PENDING_MODIFY, "FILLED": S.FILLED,
              "CANCELED": S.CANCELED, "EXPIRED": S.EXPIRED, "REJECTED": S.REJECTED}
    lines = om.__doc__.splitlines()
    start = next(i for i, ln in enumerate(lines) if "trigger \\ state" in ln)
    header = lines[start].split()[3:]
    cols = [abbrev[h] for h in header]
    by_prefix = {t.value[:16]: t for t in Trigger}
    out: dict[tuple[OrderState, Trigger], str] = {}
    for ln in lines[start + 1:]:
        if not ln.strip():
            break
        name, *cells = ln.split()
        trig = by_prefix.get(name[:16]) or next(t for t in Trigger
                                                 if t.value.startswith(name.rstrip(".")))
        assert len(cells) == len(cols), ln
        for s, c in zip(cols, cells, strict=True):
            out[(s, trig)] = c
    return out


def test_every_pair_is_exactly_one_of_move_ignore_or_illegal() -> None:
    assert not set(TRANSITIONS) & IGNORED
    doc = _doc_table()
    assert len(doc) == len(OrderState) * len(Trigger)
    abbrev = {"PEND_NEW": S.PENDING_NEW, "NEW": S.NEW, "PART": S.PARTIALLY_FILLED,
              "PEND_CXL": S.PENDING_CANCEL, "PEND_MOD": S.PENDING_MODIFY, "FILLED": S.FILLED,
              "CANCELED": S.CANCELED, "EXPIRED": S.EXPIRED, "REJECTED": S.REJECTED,
              "N*": S.NEW}
    for s in OrderState:
        for t in Trigger:
            cell = doc[(s, t)]
            if cell == "X":
                with pytest.raises(IllegalTransition):
                    next_state(s, t)
            elif cell in (".", ".f"):
                assert next_state(s, t) is None, (s, t)
                assert (cell == ".f") == (t in FILL_TRIGGERS), (s, t)
            else:
                assert next_state(s, t) is abbrev[cell], (s, t)


def test_terminal_states_never_move() -> None:
    for (s, _t), _target in TRANSITIONS.items():
        assert s not in TERMINAL


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


# -- client order ids ------------------------------------------------------------------------------
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,36}$")
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BTC", "BTCUSDC", "BTCUSDCUSDT", "1000PEPEUSDT",
           "VERYLONGSYMBOLNAMEXUSDT"]
KEYS = ["L1", "L-1", "L+1", "S2", "TP-L", "SL-S", "L-10", "x" * 40, "a.b", "a-b-c", "ü",
        "L 1", "1", "-", "--", "TP:L"]


def test_ids_unique_short_and_deterministic_over_grid() -> None:
    seen: dict[str, tuple] = {}
    for sym in SYMBOLS:
        for key in KEYS:
            for gen in [0, 1, 2, 35, 36, 1295, 10**6, 2**31]:
                cid = client_order_id("gb", sym, key, gen)
                assert ID_RE.match(cid), cid
                assert cid == client_order_id("gb", sym, key, gen)
                assert seen.setdefault(cid, (sym, key, gen)) == (sym, key, gen), cid
                assert generation_of(cid) == gen
    assert len(seen) == len(SYMBOLS) * len(KEYS) * 8


@settings(max_examples=300, deadline=None)
@given(sym=st.sampled_from(SYMBOLS), k1=st.text(min_size=1, max_size=50),
       k2=st.text(min_size=1, max_size=50), g1=st.integers(0, 10**9), g2=st.integers(0, 10**9))
def test_ids_injective_property(sym: str, k1: str, k2: str, g1: int, g2: int) -> None:
    a = client_order_id("gb", sym, k1, g1)
    b = client_order_id("gb", sym, k2, g2)
    assert ID_RE.match(a) and ID_RE.match(b)
    assert (a == b) == ((k1, g1) == (k2, g2))


def test_id_rejects_bad_inputs_and_parses_back() -> None:
    for bad in [("g-b", "BTCUSDT", "L1", 0), ("gb", "btcusdt", "L1", 0),
                ("gb", "BTCUSDT", "", 0), ("gb", "BTCUSDT", "L1", -1)]:
        with pytest.raises(ValueError):
            client_order_id(*bad)
    # a trailing newline is not a plain character ("$" would have let it through)
    for bad in [("gb\n", "BTCUSDT", "L1", 0), ("gb", "BTCUSDT\n", "L1", 0)]:
        with pytest.raises(ValueError):
            client_order_id(*bad)
    nl = client_order_id("gb", "BTCUSDT", "0\n", 0)
    assert ID_RE.fullmatch(nl) and nl != client_order_id("gb", "BTCUSDT", "0", 0)
    cid = client_order_id("gb", "ETHUSDT", "L-3", 40)
    assert cid == "gb-ETH-L-3-14"
    p = parse_client_order_id(cid, "gb")
    assert p is not None and (p.symbol_code, p.key, p.generation) == ("ETH", "L-3", 40)
    assert parse_client_order_id("web_abc", "gb") is None


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
    changed = om.apply_plan_fills(led, plan)
    assert len(changed) == 2 and led.get(recs[1].client_order_id).state is S.FILLED
    assert om.apply_plan_fills(led, plan) == []  # idempotent
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
