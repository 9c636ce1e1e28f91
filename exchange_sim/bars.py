"""Columnar OHLCV bars (``Bars``), missing-bar runs (``Gap``) and the market-data error.

``Bars`` is what ``exchange_sim.marketdata`` loads and ``exchange_sim.synthetic`` generates:
one symbol/market/interval, sorted by open time with unique open times, read-only numpy
columns. Nothing is ever filled in: missing bars are reported by ``Bars.gaps()``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms

KLINE_HEADER = ("open_time", "open", "high", "low", "close", "volume")


class DataError(Exception):
    """Market data that is missing, not covering a requested range, gappy or malformed."""


def market_of(market: Market | str) -> Market:
    """``market`` as a ``Market`` (``DataError`` naming it when unknown)."""
    try:
        return market if isinstance(market, Market) else Market(str(market).lower())
    except ValueError:
        raise DataError(f"unknown market {market!r}: expected 'spot' or 'futures'") from None


def interval_ms_of(interval: str) -> int:
    """Milliseconds of a Binance interval name (``DataError`` naming it when unknown)."""
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise DataError(
            f"unknown interval {interval!r}: expected one of {', '.join(INTERVAL_MS)}"
        ) from None


@dataclass(frozen=True)
class Gap:
    """A run of missing bars: ``[start_ms, end_ms)`` are the open times of the missing bars
    (``end_ms`` is the open time of the next bar present)."""

    symbol: str
    interval: str
    start_ms: int
    end_ms: int
    missing_bars: int
    market: str = ""

    def __str__(self) -> str:
        where = f"{self.market} {self.symbol}" if self.market else self.symbol
        return (
            f"{where} {self.interval}: {self.missing_bars} bar(s) missing "
            f"from {fmt_ms(self.start_ms)} until {fmt_ms(self.end_ms)}"
        )


def readonly(a: np.ndarray) -> np.ndarray:
    """``a``, made read-only (cached arrays are shared)."""
    a.flags.writeable = False
    return a


class Bars:
    """Columnar OHLCV bars of one symbol/market/interval, sorted by ``open_time`` with unique
    open times. The arrays are read-only; slicing returns views."""

    __slots__ = (
        "symbol", "market", "interval", "interval_ms",
        "open_time", "open", "high", "low", "close", "volume",
    )

    def __init__(
        self,
        symbol: str,
        market: Market | str,
        interval: str,
        open_time: np.ndarray,
        open: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        close: np.ndarray,
        volume: np.ndarray,
    ) -> None:
        self.symbol = symbol
        self.market = market_of(market)
        self.interval = interval
        self.interval_ms = interval_ms_of(interval)
        ot = np.asarray(open_time, dtype=np.int64)
        cols = [np.asarray(c, dtype=np.float64) for c in (open, high, low, close, volume)]
        n = len(ot)
        if any(len(c) != n for c in cols):
            raise ValueError("Bars: all columns must have the same length")
        self.open_time = readonly(ot)
        self.open, self.high, self.low, self.close, self.volume = (readonly(c) for c in cols)

    def __len__(self) -> int:
        return len(self.open_time)

    def __repr__(self) -> str:
        span = (
            f"{fmt_ms(int(self.open_time[0]))}..{fmt_ms(int(self.open_time[-1]))}"
            if len(self) else "empty"
        )
        return (
            f"Bars({self.market.value} {self.symbol} {self.interval}, {len(self)} rows, {span})"
        )

    def _take(self, sl: slice | np.ndarray) -> Bars:
        return Bars(
            self.symbol, self.market, self.interval, self.open_time[sl], self.open[sl],
            self.high[sl], self.low[sl], self.close[sl], self.volume[sl],
        )

    @property
    def first_ms(self) -> int | None:
        """Open time of the first bar (None when empty)."""
        return int(self.open_time[0]) if len(self) else None

    @property
    def end_ms(self) -> int | None:
        """Exclusive end of the data: open time of the last bar + interval (None when empty)."""
        return int(self.open_time[-1]) + self.interval_ms if len(self) else None

    def slice_time(self, start_ms: int | None, end_ms: int | None) -> Bars:
        """Bars whose open time lies in ``[start_ms, end_ms)`` (None = unbounded); a view."""
        lo = 0 if start_ms is None else int(np.searchsorted(self.open_time, start_ms, "left"))
        hi = len(self) if end_ms is None else int(
            np.searchsorted(self.open_time, end_ms, "left")
        )
        return self._take(slice(lo, max(lo, hi)))

    def close_time(self, i: int) -> int:
        """Close time of bar ``i``: open time + interval - 1 ms (Binance's convention)."""
        return int(self.open_time[i]) + self.interval_ms - 1

    def iter_rows(self) -> Iterator[tuple[int, float, float, float, float, float]]:
        """``(open_time_ms, open, high, low, close, volume)`` per bar, as Python scalars."""
        return zip(
            self.open_time.tolist(), self.open.tolist(), self.high.tolist(),
            self.low.tolist(), self.close.tolist(), self.volume.tolist(), strict=True,
        )

    def iter_klines(self) -> Iterator[tuple[int, int, float, float, float, float, float]]:
        """``(open_time_ms, close_time_ms, open, high, low, close, volume)`` per bar: the
        argument order of the matching engine's ``on_bar`` after the symbol."""
        return zip(
            self.open_time.tolist(), (self.open_time + (self.interval_ms - 1)).tolist(),
            self.open.tolist(), self.high.tolist(), self.low.tolist(), self.close.tolist(),
            self.volume.tolist(), strict=True,
        )

    def gaps(self) -> list[Gap]:
        """Runs of missing bars between the first and the last bar."""
        if len(self) < 2:
            return []
        d = np.diff(self.open_time)
        idx = np.nonzero(d != self.interval_ms)[0]
        out = []
        for i in idx.tolist():
            start = int(self.open_time[i]) + self.interval_ms
            end = int(self.open_time[i + 1])
            out.append(
                Gap(self.symbol, self.interval, start, end,
                    (end - start) // self.interval_ms, self.market.value)
            )
        return out

    def resample(self, interval: str) -> Bars:
        """Aggregate to a coarser interval (O first, H max, L min, C last, V sum), buckets aligned
        to the epoch (UTC); only complete buckets are kept, so missing input bars show up as
        missing output bars rather than as bars built from partial data."""
        target = interval_ms_of(interval)
        if target == self.interval_ms:
            return self
        if target < self.interval_ms or target % self.interval_ms:
            raise DataError(
                f"cannot resample {self.symbol} {self.interval} to {interval}: "
                "the target must be a multiple of the source interval"
            )
        per = target // self.interval_ms
        if len(self) == 0:
            return Bars(self.symbol, self.market, interval, *([np.empty(0)] * 6))
        bucket = self.open_time - self.open_time % target
        starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
        counts = np.diff(np.r_[starts, len(self)])
        full = counts == per
        s = starts[full]
        e = s + per - 1
        return Bars(
            self.symbol, self.market, interval,
            bucket[s],
            self.open[s],
            np.maximum.reduceat(self.high, starts)[full],
            np.minimum.reduceat(self.low, starts)[full],
            self.close[e],
            np.add.reduceat(self.volume, starts)[full],
        )

    def to_dict(self) -> dict[str, np.ndarray]:
        """The columns by name."""
        return {k: getattr(self, k) for k in KLINE_HEADER}


def concat_bars(parts: list[Bars]) -> Bars:
    """Merge bars of one symbol/market/interval: sort by open time, drop duplicate open times
    (keeping the first part's bar)."""
    if not parts:
        raise ValueError("concat_bars: nothing to merge")
    p0 = parts[0]
    if len(parts) == 1:
        return p0
    cols = {k: np.concatenate([getattr(p, k) for p in parts]) for k in KLINE_HEADER}
    # the stable sort keeps earlier parts first among equal open times; keep the first of a run
    order = np.argsort(cols["open_time"], kind="stable")
    ot = cols["open_time"][order]
    keep = order[np.r_[True, ot[1:] != ot[:-1]]]
    return Bars(p0.symbol, p0.market, p0.interval, *(cols[k][keep] for k in KLINE_HEADER))
