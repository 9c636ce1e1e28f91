"""The intrabar price path of a replayed bar: one rule for fills and for market data.

A replayed bar is only its open, high, low, close and volume. The embedded exchange assumes the
price walked straight segments O→L→H→C when ``close >= open`` (a bullish bar dips first) and
O→H→L→C otherwise. The matching engine fills and triggers orders in the order this path reaches
them and timestamps each fill ``open_time + travelled / path length × (close_time -
open_time)``. The kline of the bar in progress is published along the same path at the same
pace (``progress``): at sim time *t* it shows the open, the high and low the path has reached
by *t*, the price it is at as the close and the bar's volume pro rata of the time elapsed; a
price on the way is rounded toward where the path came from, so the candle never shows a price
the path has not reached yet.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal
from typing import NamedTuple, TypeVar

P = TypeVar("P", float, Decimal)
ZERO = Decimal(0)
_Q8 = Decimal("0.00000001")


def path_points(o: P, h: P, low: P, c: P, bullish: bool | None = None) -> tuple[P, P, P, P]:
    """The four corners of the intrabar path: O→L→H→C when ``c >= o`` (or ``bullish`` when
    given: decided on the data's own numbers before rounding to the tick), else O→H→L→C."""
    up = c >= o if bullish is None else bullish
    return (o, low, h, c) if up else (o, h, low, c)


class Progress(NamedTuple):
    """A bar in progress as far as the path has gone (exact decimals)."""

    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    share: Decimal
    """Share of the bar's duration elapsed, 0..1."""


def _toward(x: Decimal, tick: Decimal, up: bool) -> Decimal:
    """``x`` on the tick grid, rounded back toward where a path moving up/down came from."""
    if x % tick == 0:
        return x
    return (x / tick).to_integral_value(rounding=ROUND_FLOOR if up else ROUND_CEILING) * tick


def progress(points: tuple[Decimal, Decimal, Decimal, Decimal], volume: Decimal,
             elapsed_ms: int, duration_ms: int, tick: Decimal, volume_step: Decimal = _Q8
             ) -> Progress:
    """A bar after ``elapsed_ms`` of its ``duration_ms`` (close time minus open time, as the
    engine times fills). ``points`` are its ``path_points`` on the tick grid. High, low and
    last are as far along the path as that time reaches, volume pro rata (rounded down to
    ``volume_step``); ``elapsed_ms >= duration_ms`` gives the whole bar."""
    o = points[0]
    if duration_ms <= 0 or elapsed_ms >= duration_ms:
        return Progress(o, max(points), min(points), points[3], volume, Decimal(1))
    elapsed = Decimal(max(0, elapsed_ms))
    dur = Decimal(duration_ms)
    total = sum((abs(b - a) for a, b in zip(points, points[1:], strict=False)), ZERO)
    left = total * elapsed / dur  # path length travelled so far
    hi = lo = last = o
    for a, b in zip(points, points[1:], strict=False):
        seg = abs(b - a)
        if left >= seg:
            last = b
            left -= seg
        else:
            up = b > a
            last = _toward(a + left if up else a - left, tick, up)
            left = ZERO
        hi, lo = max(hi, last), min(lo, last)
        if left <= 0:
            break
    share = elapsed / dur
    vol = (volume * share / volume_step).to_integral_value(rounding=ROUND_DOWN) * volume_step
    return Progress(o, hi, lo, last, vol, share)
