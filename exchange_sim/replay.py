"""The replay clock and the market-data feeds it drives (no look-ahead).

Sim time is one clock for the whole exchange. A bar is *closed* once sim time reaches
``open_time + interval``; only then does the engine see it (``Engine.on_bar``). Until then
REST and WS show the bar in progress as far as its intrabar path has gone by sim time
(``exchange_sim.intrabar``: the path the engine fills along; high/low/close reached so far,
volume pro rata), never more of it.

Klines of any Binance interval that is a whole multiple of the replayed one are aggregated from
the replayed bars, open times aligned as Binance aligns them (``group_open``).

Funding events fire when sim time reaches their timestamp, after the bars closing at or before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from exchange_sim.intrabar import Progress, path_points, progress
from models.filters import SymbolFilters
from models.timeframes import fmt_ms

INTERVALS_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000, "8h": 28_800_000,
    "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000, "1w": 604_800_000,
}


_Q8 = Decimal("0.00000001")
_WEEK_MS = INTERVALS_MS["1w"]
_MONDAY_MS = 4 * 86_400_000
"""The epoch was a Thursday; Binance's weekly candles open on Monday 00:00 UTC."""


def group_open(t_ms: Any, interval_ms: int) -> Any:
    """Open time of the ``interval_ms`` candle holding ``t_ms`` (an int or a numpy array):
    a multiple of the interval since the epoch, except weeks, which open on Mondays."""
    off = _MONDAY_MS if interval_ms == _WEEK_MS else 0
    return (t_ms - off) // interval_ms * interval_ms + off


def interval_problem(interval: str, replay_ms: int) -> str | None:
    """Why klines of ``interval`` cannot be served from bars of ``replay_ms`` (None: they
    can: a Binance interval that is a whole multiple of the replayed one)."""
    iv_ms = INTERVALS_MS.get(interval)
    replayed = interval_name(replay_ms)
    if iv_ms is None:
        known = ", ".join(INTERVALS_MS)
        return f"{interval!r} is not a kline interval this exchange serves (known: {known})"
    if iv_ms < replay_ms:
        return f"{interval} klines are finer than the replayed {replayed} bars"
    if iv_ms % replay_ms:
        return f"{interval} is not a whole multiple of the replayed {replayed} bars"
    return None


def interval_name(ms: int) -> str:
    """Binance's name of an interval in ms (e.g. 300000 -> "5m"), else "<ms>ms"."""
    for name, v in INTERVALS_MS.items():
        if v == ms:
            return name
    return f"{ms}ms"


def iso(ms: int | None) -> str:
    """Epoch ms as ISO-8601 UTC to the second, for people: ``2025-01-01T17:40:00Z``."""
    return "-" if ms is None else fmt_ms(int(ms) // 1000 * 1000)


def num(d: Decimal) -> str:
    """Plain decimal string (at most 8 places, no exponent, no trailing zeros)."""
    return format(d.quantize(_Q8).normalize(), "f")


def to_dec(x: float, quantum: Decimal | None = None) -> Decimal:
    """Exact decimal of a data float (shortest repr), optionally on ``quantum``'s grid."""
    d = Decimal(repr(float(x)))
    return d.quantize(quantum) if quantum is not None else d


class SimClock:
    """Sim time in ms: anchored to a wall clock and scaled by ``speed``; paused at speed 0;
    at speed "max" it moves only when the replay sets it."""

    def __init__(self, start_ms: int, speed: float | str = 1.0,
                 wall: Callable[[], float] = time.monotonic) -> None:
        self.wall = wall
        self.offset_ms = 0
        self._sim = start_ms
        self._anchor_wall = wall()
        self.speed: float | str = 0.0
        self.set_speed(speed)

    @property
    def running(self) -> bool:
        """True when time flows with the wall clock (0 < speed < max)."""
        return self.speed != "max" and float(self.speed) > 0

    def _base(self) -> float:
        if self.running:
            return self._sim + (self.wall() - self._anchor_wall) * float(self.speed) * 1000.0
        return float(self._sim)

    def now_ms(self) -> int:
        """Current sim time, including any injected jump."""
        return int(self._base()) + self.offset_ms

    def set_speed(self, speed: float | str) -> None:
        """Change speed keeping the current sim time."""
        if speed != "max" and (not isinstance(speed, int | float) or speed < 0):
            raise ValueError("speed must be >= 0 or 'max'")
        self._sim = int(self._base())
        self._anchor_wall = self.wall()
        self.speed = speed

    def set_base(self, ms: int) -> None:
        """Move the (un-jumped) sim time to ``ms`` (never backwards)."""
        cur = int(self._base())
        self._sim = max(cur, ms)
        self._anchor_wall = self.wall()

    def jump(self, ms: int) -> None:
        """Shift the clock by ``ms`` (fault injection)."""
        self.offset_ms += ms


@dataclass
class Feed:
    """The bars of one symbol on one market, and how far the replay has consumed them."""

    market: str
    symbol: str
    filters: SymbolFilters
    interval_ms: int
    open_time: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    idx: int = 0
    """Index of the first bar not yet closed."""
    bars_done: int = 0
    last_close: Decimal | None = None
    last_volume: Decimal = Decimal(0)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_bars(cls, bars: Any, filters: SymbolFilters, market: str) -> Feed:
        """Build from a ``marketdata.Bars``."""
        return cls(
            market=market, symbol=bars.symbol, filters=filters,
            interval_ms=int(bars.interval_ms),
            open_time=np.asarray(bars.open_time, dtype=np.int64),
            open=np.asarray(bars.open, dtype=float), high=np.asarray(bars.high, dtype=float),
            low=np.asarray(bars.low, dtype=float), close=np.asarray(bars.close, dtype=float),
            volume=np.asarray(bars.volume, dtype=float),
        )

    def __len__(self) -> int:
        return len(self.open_time)

    def next_close_ms(self) -> int | None:
        """Sim time at which the next unconsumed bar closes."""
        if self.idx >= len(self):
            return None
        return int(self.open_time[self.idx]) + self.interval_ms

    def seek(self, now_ms: int) -> None:
        """Mark every bar closed by ``now_ms`` as history (used at start-up, no engine calls)."""
        self.idx = int(np.searchsorted(self.open_time + self.interval_ms, now_ms, side="right"))
        if self.idx > 0:
            self.last_close = self.price(self.close[self.idx - 1])
            self.last_volume = to_dec(self.volume[self.idx - 1])
        elif len(self):
            self.last_close = self.price(self.open[0])

    def price(self, x: float) -> Decimal:
        """A data price on the symbol's tick grid."""
        return to_dec(x, self.filters.tick_size)

    def bar(self, i: int) -> tuple[int, int, Decimal, Decimal, Decimal, Decimal, Decimal]:
        """(open_ms, close_ms, o, h, l, c, v) of bar ``i`` as exact decimals."""
        ot = int(self.open_time[i])
        return (ot, ot + self.interval_ms - 1, self.price(self.open[i]), self.price(self.high[i]),
                self.price(self.low[i]), self.price(self.close[i]), to_dec(self.volume[i]))

    def open_bar(self, now_ms: int) -> int | None:
        """Index of the bar in progress at ``now_ms`` (None in a gap or after the data)."""
        i = int(np.searchsorted(self.open_time, now_ms, side="right")) - 1
        if i >= 0 and int(self.open_time[i]) + self.interval_ms > now_ms:
            return i
        return None

    def last_price(self, now_ms: int) -> Decimal | None:
        """Last trade price visible at ``now_ms``: open of the bar in progress, else last close."""
        i = self.open_bar(now_ms)
        if i is not None and i >= self.idx:
            return self.price(self.open[i])
        return self.last_close

    def progress(self, i: int, now_ms: int) -> Progress:
        """Bar ``i`` as far as its intrabar path has gone at ``now_ms`` (whole once closed)."""
        ot = int(self.open_time[i])
        pts = tuple(self.price(x) for x in path_points(
            self.open[i], self.high[i], self.low[i], self.close[i],
            bullish=bool(self.close[i] >= self.open[i])))
        return progress(pts, to_dec(self.volume[i]), now_ms - ot,  # type: ignore[arg-type]
                        self.interval_ms - 1, self.filters.tick_size, self.filters.step_size)

    # -- klines without look-ahead (REST and WS) ----------------------------------------------
    def klines(self, interval_ms: int, now_ms: int, start_ms: int | None, end_ms: int | None,
               limit: int) -> list[list[Any]]:
        """Binance kline rows for ``interval_ms`` (a whole multiple of the feed's interval)."""
        k = interval_ms // self.interval_ms
        ot = self.open_time
        vis_end = int(np.searchsorted(ot, now_ms, side="right"))  # bars opened by now
        if end_ms is not None:
            vis_end = min(vis_end, int(np.searchsorted(
                ot, group_open(end_ms, interval_ms) + interval_ms - 1, side="right")))
        if start_ms is not None:
            g0 = group_open(start_ms, interval_ms) if k > 1 else start_ms
            lo = int(np.searchsorted(ot, g0, side="left"))
            hi = min(vis_end, lo + (limit + 1) * k)
        else:
            hi = vis_end
            lo = max(0, hi - (limit + 1) * k)
        if lo >= hi:
            return []
        keys = group_open(ot[lo:hi], interval_ms)
        rows: list[list[Any]] = []
        uniq, first = np.unique(keys, return_index=True)
        bounds = list(first) + [hi - lo]
        for j, g in enumerate(uniq):
            a, b = lo + bounds[j], lo + bounds[j + 1]
            if start_ms is not None and g < start_ms and k == 1:
                continue
            rows.append(self._row(int(g), interval_ms, a, b, now_ms))
        if start_ms is not None:
            rows = [r for r in rows if r[0] + interval_ms > start_ms][:limit]
        else:
            rows = rows[-limit:]
        return rows

    def kline_row(self, g: int, interval_ms: int, now_ms: int) -> list[Any] | None:
        """The row of the ``interval_ms`` candle opening at ``g`` as of ``now_ms`` (None when
        no replayed bar of it has opened by then)."""
        ot = self.open_time
        a = int(ot.searchsorted(g, side="left"))
        b = int(ot.searchsorted(g + interval_ms, side="left"))
        b = min(b, int(ot.searchsorted(now_ms, side="right")))
        return self._row(g, interval_ms, a, b, now_ms) if b > a else None

    def _row(self, g: int, interval_ms: int, a: int, b: int, now_ms: int) -> list[Any]:
        """One aggregated row over bars [a, b) opened by ``now_ms``: the closed ones whole, the
        one in progress as far as its path has gone (``progress``)."""
        closed_to = a + int(np.searchsorted(self.open_time[a:b] + self.interval_ms, now_ms,
                                            side="right"))
        o = self.price(self.open[a])
        h = lo_ = c = o
        vol = Decimal(0)
        n = 0
        if closed_to > a:
            h = max(h, self.price(float(self.high[a:closed_to].max())))
            lo_ = min(lo_, self.price(float(self.low[a:closed_to].min())))
            c = self.price(self.close[closed_to - 1])
            vol = to_dec(float(self.volume[a:closed_to].sum())).quantize(_Q8)
            n = int(closed_to - a) * 100 if vol > 0 else 0
        if closed_to < b:  # the bar in progress, as far as it has gone
            p = self.progress(closed_to, now_ms)
            h, lo_, c = max(h, p.high), min(lo_, p.low), p.close
            vol += p.volume
            n += int(p.share * 100) if p.volume > 0 else 0
        quote = (vol * c).quantize(_Q8)
        return [g, str(o), str(h), str(lo_), str(c), num(vol), g + interval_ms - 1, num(quote),
                n, num(vol / 2), num(quote / 2), "0"]


@dataclass(order=True)
class FundingEvent:
    """A funding settlement of one futures symbol."""

    ts_ms: int
    symbol: str = field(compare=False)
    rate: Decimal = field(compare=False)


class Replay:
    """Steps feeds and funding events in time order."""

    def __init__(self, feeds: list[Feed], funding: list[FundingEvent]) -> None:
        self.feeds = feeds
        self.funding = sorted(funding)
        self.funding_idx = 0
        self.last_funding: dict[str, FundingEvent] = {}

    def seek(self, now_ms: int) -> None:
        """Everything up to ``now_ms`` is history (no engine calls)."""
        for f in self.feeds:
            f.seek(now_ms)
        while self.funding_idx < len(self.funding) and \
                self.funding[self.funding_idx].ts_ms <= now_ms:
            ev = self.funding[self.funding_idx]
            self.last_funding[ev.symbol] = ev
            self.funding_idx += 1

    def next_time(self) -> int | None:
        """Sim time of the next bar close or funding event."""
        ts = [t for t in (f.next_close_ms() for f in self.feeds) if t is not None]
        if self.funding_idx < len(self.funding):
            ts.append(self.funding[self.funding_idx].ts_ms)
        return min(ts) if ts else None

    def next_bar_time(self) -> int | None:
        """Sim time of the next bar close."""
        ts = [t for t in (f.next_close_ms() for f in self.feeds) if t is not None]
        return min(ts) if ts else None

    def due(self, now_ms: int) -> list[tuple[str, Any, Any]]:
        """Pop every event with time <= ``now_ms`` in order: ("bar", feed, i) / ("funding",
        FundingEvent, None). Bars closing at a funding time come before it."""
        out: list[tuple[str, Any, Any]] = []
        while True:
            tb = self.next_bar_time()
            tf = (self.funding[self.funding_idx].ts_ms
                  if self.funding_idx < len(self.funding) else None)
            if tb is not None and tb <= now_ms and (tf is None or tb <= tf):
                for f in self.feeds:
                    if f.next_close_ms() == tb:
                        out.append(("bar", f, f.idx))
                        f.idx += 1
                        f.bars_done += 1
                continue
            if tf is not None and tf <= now_ms:
                ev = self.funding[self.funding_idx]
                self.funding_idx += 1
                self.last_funding[ev.symbol] = ev
                out.append(("funding", ev, None))
                continue
            return out

    def next_funding(self, symbol: str) -> FundingEvent | None:
        """The next pending funding event of ``symbol``."""
        for ev in self.funding[self.funding_idx:]:
            if ev.symbol == symbol:
                return ev
        return None

    def finished(self) -> bool:
        """True when every bar has been replayed."""
        return self.next_bar_time() is None
