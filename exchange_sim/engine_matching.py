"""The bar path of the matching engine: what a replayed kline fills and triggers.

A bar is walked as straight segments from the previous last price to the open (a gap), then
along its intrabar path (``exchange_sim.intrabar``); on each segment the resting orders, stop
triggers and (mark following the last price) liquidation prices it reaches are handled in the
order the path reaches their prices. Each book caches the bounds (``Book.lo``/``hi``) within
which a bar reaches nothing, so most bars cost a few float comparisons (``on_bar``).
See ``exchange_sim.engine`` for the fill model.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

from exchange_sim.accounts import FuturesAccount
from exchange_sim.engine_base import Book, EngineBase, to_tick
from exchange_sim.engine_types import (
    INF,
    LIMIT_TYPES,
    ZERO,
    Event,
    ExchangeError,
    Order,
)
from exchange_sim.intrabar import path_points
from models.enums import OrderType, Side


class BarState:
    """What one bar has left: the volume cap of its fills and the orders it skips."""

    __slots__ = ("cap", "skip")

    def __init__(self, cap: Decimal | None) -> None:
        self.cap = cap
        self.skip: set[int] = set()


class Matching(EngineBase):
    """Replaying klines and single prices against the resting orders."""

    def on_bar(self, symbol: str, open_time_ms: int, close_time_ms: int, o: float, h: float,
               l: float, c: float, v: float) -> list[Event]:  # noqa: E741
        """Replay one kline: walk its intrabar path, fill/trigger what it reaches, set the last
        price to the close. Bars that reach nothing cost a few float comparisons."""
        book = self._books.get(symbol)
        if book is None:
            raise ExchangeError(-1121, "Invalid symbol.")
        if book.stale or (book.pos_accounts and book.liq_epoch != self._epoch):
            self._refresh(book)
        if l > book.lo and h < book.hi and book.last_f is not None:
            book.last_f = c
            book.last_d = None
            if self._multi and book.pos_accounts and book.mark_ext is None:
                self._epoch += 1
            return []
        return self._bar_slow(book, open_time_ms, close_time_ms, o, h, l, c, v)

    def _bar_slow(self, book: Book, t0: int, t1: int, o: float, h: float, l: float,  # noqa: E741
                  c: float, v: float) -> list[Event]:
        tick = book.f.tick_size

        def dec(x: float) -> Decimal:
            return to_tick(Decimal(repr(x)), tick)

        od, hd, ld, cd = dec(o), dec(h), dec(l), dec(c)
        pts = path_points(od, hd, ld, cd, bullish=c >= o)
        cap = Decimal(repr(float(v))) * self._share if self._share is not None else None
        st = BarState(cap)
        events: list[Event] = []
        prev = book.last()
        if prev is None:
            self._first_price(book, od, t0, st, events)
        elif prev != od:
            self._segment(book, prev, od, od < prev, True, lambda p: t0, st, events)
        total = abs(pts[1] - pts[0]) + abs(pts[2] - pts[1]) + abs(pts[3] - pts[2])
        dur = t1 - t0
        cum = ZERO
        for a, b in ((pts[0], pts[1]), (pts[1], pts[2]), (pts[2], pts[3])):
            if a == b:
                continue
            base = cum

            def t_of(p: Decimal, a: Decimal = a, base: Decimal = base) -> int:
                return t0 + int((base + abs(p - a)) * dur / total) if total else t0

            self._segment(book, a, b, b < a, False, t_of, st, events)
            cum += abs(b - a)
        self._set_last(book, cd)
        return events

    def _first_price(self, book: Book, p: Decimal, ts: int, st: BarState,
                     events: list[Event]) -> None:
        """The first price of a symbol: fill whatever rests across it (as a gap)."""
        self._segment(book, None, p, True, True, lambda x: ts, st, events)
        self._segment(book, None, p, False, True, lambda x: ts, st, events)

    def _fire_price(self, o: Order, a: Decimal | None, b: Decimal, down: bool) -> Decimal | None:
        """Price at which the path a→b reaches ``o`` (None if it does not)."""
        t = o.type
        if t is OrderType.LIMIT or t is OrderType.LIMIT_MAKER:
            p = o.price
            if down:
                if o.side is Side.BUY and (b < p or (self._touch and b == p)):
                    return p
            elif o.side is Side.SELL and (b > p or (self._touch and b == p)):
                return p
            return None
        s = o.stop_price
        if (t is OrderType.STOP_MARKET) == (o.side is Side.BUY):  # fires on the way up
            if not down and b >= s:
                return s if a is None or s > a else a
        elif down and b <= s:
            return s if a is None or s < a else a
        return None

    def _segment(self, book: Book, a: Decimal | None, b: Decimal, down: bool, gap: bool,
                 t_of: Callable[[Decimal], int], st: BarState, events: list[Event]) -> None:
        """Walk the straight path a→b (``gap``: no trades in between, fills of triggered
        market orders happen at b)."""
        heap: list[tuple[Decimal, int, int, Any, Decimal]] = []
        skip = st.skip
        if book.stale:
            self._refresh(book)
        orders = book.orders
        # float pre-filter (with slack for rounding); _fire_price decides exactly
        if down:
            bf = float(b) * (1 - 1e-9)
            cands = [o for x, o in book.down if x >= bf]
        else:
            bf = float(b) * (1 + 1e-9)
            cands = [o for x, o in book.up if x <= bf]
        for o in cands:
            if o.order_id in skip or o.order_id not in orders:
                continue
            p = self._fire_price(o, a, b, down)
            if p is not None:
                rank = 0 if o.type in LIMIT_TYPES else 1
                heap.append((-p if down else p, rank, o.order_id, o.order_id, p))
        follow = self.futures and book.mark_ext is None
        seq = 0
        if follow and not gap:
            for name in book.pos_accounts:
                seq += 1
                self._push_liq(heap, name, book, a, b, down, seq)
        if not heap and not (follow and book.pos_accounts):
            return
        heapq.heapify(heap)
        while heap:
            _key, rank, _, ref, p = heapq.heappop(heap)
            if rank == 2:
                acct = self._accounts[ref]
                assert isinstance(acct, FuturesAccount)
                if acct.name in book.pos_accounts:
                    self._set_last(book, p)
                    self._liq_check(acct, book.symbol, t_of(p), events)
                continue
            o = book.orders.get(ref)
            if o is None or ref in skip:
                continue
            acct = self._accounts[o.account]
            t = t_of(p)
            if follow:
                self._set_last(book, p)
            if rank == 0:
                q = o.remaining
                if st.cap is not None:
                    q = min(q, book.f.round_qty(st.cap))
                if o.reduce_only:
                    q = min(q, self._reducible(acct, o))
                if q <= 0:
                    skip.add(ref)
                    continue
                if st.cap is not None:
                    st.cap -= q
                self._fill(acct, book, o, q, o.price, True, t, events)
                if isinstance(acct, FuturesAccount):
                    self._liq_check(acct, book.symbol, t, events)
            else:
                px = self._taker_price(book, o.side, b if gap else p)
                q = self._exec_taker(acct, book, o, px, t, events, check_margin=True)
                if st.cap is not None:
                    st.cap = max(ZERO, st.cap - q)
            if follow and not gap and acct.name in book.pos_accounts:
                seq += 1
                self._push_liq(heap, acct.name, book, p, b, down, seq)
        if follow:
            self._set_last(book, b)
            for name in sorted(book.pos_accounts):
                acct = self._accounts[name]
                assert isinstance(acct, FuturesAccount)
                self._liq_check(acct, book.symbol, t_of(b), events)

    def _push_liq(self, heap: list[Any], name: str, book: Book, a: Decimal | None, b: Decimal,
                  down: bool, seq: int) -> None:
        acct = self._accounts[name]
        assert isinstance(acct, FuturesAccount)
        lp = self._liq_price(acct, book.symbol)
        if lp is None:
            return
        q = acct.positions[book.symbol].qty
        tick = book.f.tick_size
        if down and q > 0:
            p = (lp / tick).to_integral_value(rounding=ROUND_FLOOR) * tick
            if b <= p and (a is None or p < a):
                heapq.heappush(heap, (-p, 2, seq, name, p))
        elif not down and q < 0:
            p = (lp / tick).to_integral_value(rounding=ROUND_CEILING) * tick
            if b >= p and (a is None or p > a):
                heapq.heappush(heap, (p, 2, seq, name, p))

    def set_last_price(self, symbol: str, price: Decimal, ts_ms: int) -> list[Event]:
        """Set the last traded price (e.g. at replay start or from tick data); orders it
        crosses fill as after a gap (uncapped)."""
        book = self._book(symbol)
        price = Decimal(price)
        events: list[Event] = []
        st = BarState(None)
        prev = book.last()
        if prev is None:
            self._first_price(book, price, ts_ms, st, events)
        elif prev != price:
            self._segment(book, prev, price, price < prev, True, lambda p: ts_ms, st, events)
        self._set_last(book, price)
        if self.futures and book.mark_ext is None:
            for name in sorted(book.pos_accounts):
                acct = self._accounts[name]
                assert isinstance(acct, FuturesAccount)
                self._liq_check(acct, symbol, ts_ms, events)
        return events

    def _refresh(self, book: Book) -> None:
        """Recompute the fast-path trigger bounds of ``book``."""
        lo, hi = -INF, INF
        down: list[tuple[float, Order]] = []
        up: list[tuple[float, Order]] = []
        for o in book.orders.values():
            t = o.type
            if t is OrderType.LIMIT or t is OrderType.LIMIT_MAKER:
                x = float(o.price)
                if o.side is Side.BUY:
                    lo = max(lo, x)
                    down.append((x, o))
                else:
                    hi = min(hi, x)
                    up.append((x, o))
            else:
                x = float(o.stop_price)
                if (t is OrderType.STOP_MARKET) == (o.side is Side.BUY):
                    hi = min(hi, x)
                    up.append((x, o))
                else:
                    lo = max(lo, x)
                    down.append((x, o))
        book.down, book.up = down, up
        if book.pos_accounts and book.mark_ext is None:
            for name in book.pos_accounts:
                acct = self._accounts[name]
                assert isinstance(acct, FuturesAccount)
                lp = self._liq_price(acct, book.symbol)
                if lp is None:
                    continue
                x = float(lp)
                if acct.positions[book.symbol].qty > 0:
                    lo = max(lo, x * (1 + 1e-9))
                else:
                    hi = min(hi, x * (1 - 1e-9))
        book.lo, book.hi = lo, hi
        book.stale = False
        book.liq_epoch = self._epoch
