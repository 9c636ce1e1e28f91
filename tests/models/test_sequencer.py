"""Gateway reorder buffer: a bar close's events come out in one order whatever the race."""

from __future__ import annotations

from decimal import Decimal as D
from itertools import permutations

import pytest

from models import messages as m
from models.enums import Side
from models.sequencer import ReorderBuffer

T = 1_735_689_900_000 * 1_000_000


def bar_close_events() -> list[m.Message]:
    return [
        m.KlineClosed(symbol="X", ts_event_ns=T, interval="5m", open_time_ms=0,
                      close_time_ms=1, open=1, high=1, low=1, close=1, volume=1),
        m.BookUpdated(symbol="X", ts_event_ns=T, bid=1, bid_qty=1, ask=1, ask_qty=1),
        m.OrderFilled(symbol="X", ts_event_ns=T, client_order_id="c", trade_id=1,
                      side=Side.BUY, price=D(1), qty=D(1)),
        m.MarkPriceUpdated(symbol="X", ts_event_ns=T, mark_price=D(1)),
    ]


def test_every_arrival_order_releases_the_same_sequence() -> None:
    outs = set()
    for perm in permutations(bar_close_events()):
        b = ReorderBuffer(0.05)
        for i, ev in enumerate(perm):
            b.push(ev, 10.0 + i * 0.001)
        assert b.due(10.02) == []  # window still open
        outs.add(tuple(type(x).__name__ for x in b.due(10.1)))
    assert outs == {("OrderFilled", "MarkPriceUpdated", "BookUpdated", "KlineClosed")}


def test_earlier_event_time_first_and_bounded_hold() -> None:
    b = ReorderBuffer(0.05, max_hold_s=0.2)
    late, early = bar_close_events()[0], bar_close_events()[2]
    early = m.OrderFilled(**{f: getattr(early, f) for f in early.__struct_fields__
                             if f != "ts_event_ns"}, ts_event_ns=T + 10)
    b.push(early, 0.0)
    b.push(late, 0.01)
    assert [type(x) for x in b.due(0.1)] == [m.KlineClosed, m.OrderFilled]
    # a steady stream is still released within max_hold_s of the oldest event
    for i in range(10):
        b.push(late, 1.0 + i * 0.04)
    assert b.due(1.19) == [] and len(b.due(1.21)) == 10
    assert b.next_check_in(5.0) is None


def test_zero_hold_releases_at_once_and_bad_hold_is_rejected() -> None:
    b = ReorderBuffer(0.0)
    b.push(bar_close_events()[0], 1.0)
    assert len(b.due(1.0)) == 1
    with pytest.raises(ValueError):
        ReorderBuffer(-1)
