"""The OMS ledger's open-order index and the reservation book's resting cache are exact:
after any sequence of operations they equal a full scan of the records."""

from __future__ import annotations

import random
from decimal import Decimal as D

import pytest

from models.enums import Side
from models.order_ledger import OrderLedger
from models.order_states import TRANSITIONS, IllegalTransition, Trigger
from models.orders import apply_trigger
from models.portfolio import ReservationBook


def _scan_open(led: OrderLedger) -> list[str]:
    return [c for c, r in led._orders.items() if r.is_open]


@pytest.mark.parametrize("seed", range(5))
def test_ledger_open_index_matches_scan(seed: int) -> None:
    rng = random.Random(seed)
    led = OrderLedger("gb", "BTCUSDT")
    triggers = sorted({t for (_s, t) in TRANSITIONS}, key=lambda t: t.value)
    for step in range(600):
        op = rng.random()
        if op < 0.3:
            led.create(key=f"k{rng.randrange(8)}", side=rng.choice([Side.BUY, Side.SELL]),
                       qty=D("0.01"), price=D("100"), ts_ms=step, intent_id=f"i{step}")
        elif op < 0.9 and len(led):
            cid = rng.choice(list(led._orders))
            trig = rng.choice(triggers)
            if trig in (Trigger.FILL, Trigger.PARTIAL_FILL):
                continue
            try:
                led.put(apply_trigger(led._orders[cid], trig, ts_ms=step))
            except (IllegalTransition, ValueError):
                pass
        elif op < 0.95:
            led.prune(step - 50)
        else:  # a terminal record replaced by an open copy (e.g. a status poll)
            done = [r for r in led._orders.values() if not r.is_open]
            if done:
                r = rng.choice(done)
                led.put(r.__class__(**{**{f: getattr(r, f) for f in r.__struct_fields__},
                                       "state": led.open_orders()[0].state
                                       if led.open_orders() else r.state}))
        assert [r.client_order_id for r in led.open_orders()] == _scan_open(led)
        for k in range(8):
            exp = next((r for r in led._orders.values() if r.key == f"k{k}" and r.is_open),
                       None)
            assert led.open_for_key(f"k{k}") is exp
    assert led.open_orders(), "the sequence never left an order open: the test is too weak"


def _scan_resting(book: ReservationBook, sym: str, side: Side) -> D:
    return sum((r.remaining for r in book._open.values()
                if r.symbol == sym and r.side is side and not r.reduce_only), D(0))


@pytest.mark.parametrize("seed", range(5))
def test_book_resting_cache_matches_scan(seed: int) -> None:
    rng = random.Random(seed)
    syms = ["BTCUSDT", "ETHUSDT"]
    book = ReservationBook(3, {s: 0.5 for s in syms}, 0.9, equity=D("10000"))
    rids: list[str] = []
    for step in range(400):
        op = rng.random()
        if op < 0.5:
            rid = f"r{step}"
            book.reserve(rid, rng.choice(syms), rng.choice([Side.BUY, Side.SELL]),
                         D(rng.randrange(10, 900)), reduce_only=rng.random() < 0.2)
            rids.append(rid)
        elif op < 0.75 and rids:
            book.on_fill(rng.choice(rids), D(rng.randrange(1, 500)))
        elif op < 0.85 and rids:
            book.release(rng.choice(rids))
        elif op < 0.9:
            book.update_positions(rng.choice(syms), D(rng.randrange(-900, 900)))
        for s in syms:
            for side in (Side.BUY, Side.SELL):
                assert book.resting(s, side) == _scan_resting(book, s, side)
        assert book.position_exposure() == sum((abs(book.positions[s]) for s in syms), D(0))
        assert book.gross_exposure() == sum(
            (max(abs(book.positions[s] + _scan_resting(book, s, Side.BUY)),
                 abs(book.positions[s] - _scan_resting(book, s, Side.SELL))) for s in syms),
            D(0))
    restored = ReservationBook.from_state(book.to_state())
    for s in syms:
        for side in (Side.BUY, Side.SELL):
            assert restored.resting(s, side) == book.resting(s, side)
