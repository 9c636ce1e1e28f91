"""OMS ledger pruning: ended orders leave memory after TERMINAL_KEEP_MS, live ones never."""

from __future__ import annotations

from decimal import Decimal as D

from models import messages as m
from models.enums import Market, OrderType, Side
from models.oms import PRUNE_EVERY, TERMINAL_KEEP_MS, OmsCore

SYM = "BTCUSDT"
NS = 1_000_000


def _cycle(c: OmsCore, i: int, ts_ms: int, cancel: bool = True) -> str:
    key = f"L-{i}"
    c.submit(m.SubmitOrder(symbol=SYM, key=key, side=Side.BUY, order_type=OrderType.LIMIT,
                           price=D("100.0"), qty=D("0.010"), reservation_id=f"r-{key}",
                           ts_event_ns=ts_ms * NS))
    cid = f"gb-BTC-{key}-0"
    c.on_event(m.OrderAccepted(symbol=SYM, client_order_id=cid, exchange_order_id=i + 1,
                               side=Side.BUY, qty=D("0.010"), ts_event_ns=ts_ms * NS))
    if cancel:
        c.on_event(m.OrderCanceled(symbol=SYM, client_order_id=cid, ts_event_ns=ts_ms * NS))
    return cid


def test_old_terminal_orders_are_pruned_open_and_recent_ones_kept() -> None:
    c = OmsCore(SYM, Market.FUTURES, "gb")
    c.on_event(m.ExchangeSnapshotReceived(symbol=SYM))
    t0 = 1_700_000_000_000
    live = _cycle(c, 0, t0, cancel=False)  # stays open for the whole test
    old = [_cycle(c, i, t0) for i in range(1, PRUNE_EVERY)]
    late = t0 + TERMINAL_KEEP_MS + 60_000
    # pruning runs once the ledger grew by PRUNE_EVERY records since the last run
    recent = [_cycle(c, i, late) for i in range(PRUNE_EVERY, 2 * PRUNE_EVERY)]
    assert all(c.ledger.get(x) is None for x in old)
    assert c.ledger.get(live) is not None and c.ledger.get(live).is_open
    assert all(c.ledger.get(x) is not None for x in recent)
    # a new order for a pruned key still gets a fresh client order id (generations kept)
    fx = c.submit(m.SubmitOrder(symbol=SYM, key="L-1", side=Side.BUY, order_type=OrderType.LIMIT,
                                price=D("100.0"),
                                qty=D("0.010"), reservation_id="r", ts_event_ns=late * NS))
    sent = [x.client_order_id for r, x in fx.sends if r == "gateway"]
    assert sent == ["gb-BTC-L-1-1"]


def test_nothing_pruned_within_the_keep_window() -> None:
    c = OmsCore(SYM, Market.FUTURES, "gb")
    c.on_event(m.ExchangeSnapshotReceived(symbol=SYM))
    t0 = 1_700_000_000_000
    cids = [_cycle(c, i, t0 + i) for i in range(PRUNE_EVERY + 20)]
    assert all(c.ledger.get(x) is not None for x in cids)
    assert len(c.ledger) == PRUNE_EVERY + 20
