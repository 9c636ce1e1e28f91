"""What the embedded exchange quotes between bar closes: the last price and the order book.

The book is synthesized around the last price: best bid = last price, best ask one tick above,
``levels`` levels one tick apart, each level's quantity a share (1/40, growing 10 % per level)
of the last closed bar's volume, at least the minimum quantity. It is informational: fills come
from the engine's bar path, not from this book. REST (``rest_market``) and the WebSocket
streams (``ws_market``) show the same book.
"""

from __future__ import annotations

from decimal import Decimal

from exchange_sim.formats import fmt
from exchange_sim.replay import Feed

ZERO = Decimal(0)


def last_price(f: Feed, now_ms: int) -> Decimal:
    """Last trade price visible at ``now_ms`` (0 before the first bar)."""
    p = f.last_price(now_ms)
    return p if p is not None else ZERO


def book(f: Feed, now_ms: int, levels: int) -> tuple[list[list[str]], list[list[str]]]:
    """Synthetic (bids, asks) as Binance string pairs."""
    last = last_price(f, now_ms)
    tick = f.filters.tick_size
    base = f.filters.round_qty(f.last_volume / Decimal(40)) if f.last_volume else ZERO
    base = max(base, f.filters.min_qty)
    bids, asks = [], []
    m = f.market
    for i in range(levels):
        q = fmt(f.filters.round_qty(base * (1 + Decimal(i) / 10)), m)
        if last - tick * i > 0:
            bids.append([fmt(last - tick * i, m), q])
        asks.append([fmt(last + tick * (i + 1), m), q])
    return bids, asks
