"""Incremental O(1) indicators on plain floats (one update per closed bar).

Definitions (the tests check them against numpy/scipy batch versions on real data):
- ``EMA(n)``: alpha = 2/(n+1), seeded with the first value.
- ``Wilder(n)``: Wilder's smoothing (RMA), seeded with the simple mean of the first n inputs,
  then ``v += (x - v)/n``; ``nan`` until n inputs.
- ``ATR(n)``: Wilder(n) of the true range; the first bar's TR is high - low.
- ``RSI(n)``: 100 - 100/(1 + RMA(gain)/RMA(loss)) over close-to-close changes (100 when no loss).
- ``ADX(n)``: Wilder's DMI: RMA(n) of +DM, -DM and TR from the second bar on, DX = 100|DI+ -
  DI-|/(DI+ + DI-), ADX = Wilder(n) of DX.
- ``RollingMeanStd(n)``: mean and population std of the last n values (running sums about a
  shift that is re-anchored every n updates, so float error does not accumulate).
- ``RollingSum(n)`` / ``roll_window_sums``: sums of the last n non-negative values (several
  windows over one ring; exact ``math.fsum`` re-sum once per ring length, never below 0).
- ``EWZ(span)`` / ``ewz_update``: exponentially weighted mean/variance (alpha = 2/(span+1));
  returns tanh(clip(z, +-c)/2) where z uses the statistics *before* the new value.

The feature engine's hot path calls the same definitions on its own state
(``roll_window_sums``, ``ewz_update``, ``RollingMeanStd.z``): one copy of each formula.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque
from collections.abc import Sequence
from math import sqrt, tanh

from models.strategy.snapshot import Stateful

NAN = float("nan")


class EMA(Stateful):
    """Exponential moving average."""

    __slots__ = ("n", "alpha", "value", "count")

    def __init__(self, n: int) -> None:
        self.n = n
        self.alpha = 2.0 / (n + 1.0)
        self.value = NAN
        self.count = 0

    def update(self, x: float) -> float:
        """Add one value; return the EMA."""
        if self.count == 0:
            self.value = x
        else:
            self.value += self.alpha * (x - self.value)
        self.count += 1
        return self.value

    @property
    def ready(self) -> bool:
        """True once n values were seen."""
        return self.count >= self.n


class Wilder(Stateful):
    """Wilder's moving average (RMA) seeded with an SMA of the first n values."""

    __slots__ = ("n", "value", "count", "acc")

    def __init__(self, n: int) -> None:
        self.n = n
        self.value = NAN
        self.count = 0
        self.acc = 0.0

    def update(self, x: float) -> float:
        """Add one value; return the average (nan until n values)."""
        c = self.count + 1
        self.count = c
        n = self.n
        if c < n:
            self.acc += x
        elif c == n:
            self.value = (self.acc + x) / n
        else:
            self.value += (x - self.value) / n
        return self.value

    @property
    def ready(self) -> bool:
        """True once n values were seen."""
        return self.count >= self.n


class ATR(Stateful):
    """Average true range (Wilder)."""

    __slots__ = ("prev_close", "rma")

    def __init__(self, n: int) -> None:
        self.prev_close = NAN
        self.rma = Wilder(n)

    def update(self, high: float, low: float, close: float) -> float:
        """Add one bar; return the ATR (nan until n bars)."""
        pc = self.prev_close
        if pc != pc:  # first bar
            tr = high - low
        else:
            tr = max(high - low, abs(high - pc), abs(low - pc))
        self.prev_close = close
        return self.rma.update(tr)

    @property
    def value(self) -> float:
        """Current ATR."""
        return self.rma.value


class RSI(Stateful):
    """Relative strength index (Wilder)."""

    __slots__ = ("prev_close", "gain", "loss", "value")

    def __init__(self, n: int) -> None:
        self.prev_close = NAN
        self.gain = Wilder(n)
        self.loss = Wilder(n)
        self.value = NAN

    def update(self, close: float) -> float:
        """Add one close; return RSI in [0, 100] (nan until n changes)."""
        pc = self.prev_close
        self.prev_close = close
        if pc != pc:
            return self.value
        d = close - pc
        g = self.gain.update(d if d > 0 else 0.0)
        lo = self.loss.update(-d if d < 0 else 0.0)
        if g == g:
            self.value = 100.0 if lo == 0.0 else 100.0 - 100.0 / (1.0 + g / lo)
        return self.value


class ADX(Stateful):
    """Average directional index with +DI/-DI (Wilder)."""

    __slots__ = ("prev_high", "prev_low", "prev_close", "tr", "pdm", "mdm", "dx", "pdi", "mdi")

    def __init__(self, n: int) -> None:
        self.prev_high = NAN
        self.prev_low = NAN
        self.prev_close = NAN
        self.tr = Wilder(n)
        self.pdm = Wilder(n)
        self.mdm = Wilder(n)
        self.dx = Wilder(n)
        self.pdi = NAN
        self.mdi = NAN

    def update(self, high: float, low: float, close: float) -> float:
        """Add one bar; return ADX in [0, 100] (nan until 2n bars)."""
        ph, pl, pc = self.prev_high, self.prev_low, self.prev_close
        self.prev_high, self.prev_low, self.prev_close = high, low, close
        if pc != pc:
            return NAN
        up = high - ph
        dn = pl - low
        p = up if (up > dn and up > 0.0) else 0.0
        m = dn if (dn > up and dn > 0.0) else 0.0
        tr = max(high - low, abs(high - pc), abs(low - pc))
        atr = self.tr.update(tr)
        sp = self.pdm.update(p)
        sm = self.mdm.update(m)
        if atr != atr:
            return NAN
        if atr > 0.0:
            pdi = 100.0 * sp / atr
            mdi = 100.0 * sm / atr
        else:
            pdi = mdi = 0.0
        self.pdi, self.mdi = pdi, mdi
        s = pdi + mdi
        dx = 100.0 * abs(pdi - mdi) / s if s > 0.0 else 0.0
        return self.dx.update(dx)

    @property
    def value(self) -> float:
        """Current ADX."""
        return self.dx.value


class RollingMeanStd(Stateful):
    """Mean and population standard deviation of the last n values, O(1) per update."""

    __slots__ = ("n", "buf", "pos", "count", "shift", "s1", "s2", "since")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = [0.0] * n
        self.pos = 0
        self.count = 0
        self.shift = NAN
        self.s1 = 0.0
        self.s2 = 0.0
        self.since = 0

    def update(self, x: float) -> None:
        """Add one value (dropping the oldest once n are held)."""
        n = self.n
        if self.shift != self.shift:
            self.shift = x
        k = self.shift
        d = x - k
        if self.count == n:
            o = self.buf[self.pos] - k
            self.s1 += d - o
            self.s2 += d * d - o * o
        else:
            self.count += 1
            self.s1 += d
            self.s2 += d * d
        self.buf[self.pos] = x
        self.pos = (self.pos + 1) % n
        self.since += 1
        if self.since >= n:
            self._reanchor()

    def _reanchor(self) -> None:
        c = self.count
        vals = self.buf if c == self.n else self.buf[:c]
        k = math.fsum(vals) / c
        s1 = s2 = 0.0
        for v in vals:
            d = v - k
            s1 += d
            s2 += d * d
        self.shift, self.s1, self.s2, self.since = k, s1, s2, 0

    @property
    def full(self) -> bool:
        """True once n values are held."""
        return self.count == self.n

    @property
    def mean(self) -> float:
        """Mean of the held values."""
        return self.shift + self.s1 / self.count if self.count else NAN

    @property
    def std(self) -> float:
        """Population standard deviation of the held values."""
        c = self.count
        if not c:
            return NAN
        m = self.s1 / c
        v = self.s2 / c - m * m
        return math.sqrt(v) if v > 0.0 else 0.0

    def z(self, x: float) -> float:
        """z-score of ``x`` against the held values (nan when there are none or std is 0)."""
        c = self.count
        if not c:
            return NAN
        m = self.s1 / c
        v = self.s2 / c - m * m
        return (x - (self.shift + self.s1 / c)) / math.sqrt(v) if v > 0.0 else NAN


def roll_window_sums(ring: list[float], pos: int, since: int, sums: list[float],
                     windows: Sequence[int], filled: int, x: float) -> tuple[int, int]:
    """Add one non-negative ``x`` to ``sums[k]`` = the sum of the last ``windows[k]`` values.

    ``ring`` (length ``max(windows)``, zero-initialised) holds the values, ``pos`` is its next
    slot, ``since`` counts pushes since the last exact re-sum, ``filled`` = values held after
    this push (at most the ring length). Running sums are kept >= 0 and re-summed exactly
    (``math.fsum``) once per ring length, so float error never accumulates. Returns the new
    ``(pos, since)``; ``sums`` and ``ring`` are updated in place.
    """
    k = 0
    for n in windows:
        # ring[pos - n] (negative indexes wrap) is the value leaving window n; 0.0 while
        # fewer than n values were pushed (that slot was never written)
        v = sums[k] + x - ring[pos - n]
        sums[k] = v if v > 0.0 else 0.0
        k += 1
    ring[pos] = x
    pos += 1
    size = len(ring)
    if pos == size:
        pos = 0
    since += 1
    if since >= size:
        exact_window_sums(ring, pos, filled, windows, sums)
        since = 0
    return pos, since


def exact_window_sums(ring: list[float], pos: int, filled: int, windows: Sequence[int],
                      sums: list[float]) -> None:
    """Recompute ``sums`` exactly from the ``filled`` newest values before slot ``pos``."""
    size = len(ring)
    for k, n in enumerate(windows):
        m = min(n, filled)
        sums[k] = math.fsum(ring[(pos - 1 - j) % size] for j in range(m))


class RollingSum(Stateful):
    """Sum of the last n non-negative values (``roll_window_sums`` with one window)."""

    __slots__ = ("n", "buf", "pos", "count", "sums", "since")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = [0.0] * n
        self.pos = 0
        self.count = 0
        self.sums = [0.0]
        self.since = 0

    def update(self, x: float) -> float:
        """Add one value; return the sum of the last n."""
        if self.count < self.n:
            self.count += 1
        self.pos, self.since = roll_window_sums(self.buf, self.pos, self.since, self.sums,
                                                (self.n,), self.count, x)
        return self.sums[0]

    @property
    def total(self) -> float:
        """Sum of the held values."""
        return self.sums[0]


class Lag(Stateful):
    """Value seen n updates ago (nan until then)."""

    __slots__ = ("n", "buf", "pos", "count")

    def __init__(self, n: int) -> None:
        self.n = n
        self.buf = [NAN] * (n + 1)
        self.pos = 0
        self.count = 0

    def update(self, x: float) -> float:
        """Add one value; return the value n updates before it."""
        m = self.n + 1
        self.buf[self.pos] = x
        self.pos = (self.pos + 1) % m
        self.count += 1
        return self.buf[self.pos] if self.count > self.n else NAN


class EWZ(Stateful):
    """Online normaliser: EW mean/variance z-score, clipped, squashed to (-1, 1) by tanh(z/2)."""

    __slots__ = ("alpha", "clip", "mean", "var", "count", "value")

    def __init__(self, span: float, clip: float = 3.0) -> None:
        self.alpha = 2.0 / (span + 1.0)
        self.clip = clip
        self.mean = 0.0
        self.var = 0.0
        self.count = 0
        self.value = 0.0

    def update(self, x: float) -> float:
        """Add one raw value; return its normalised value (0 for nan inputs or no history)."""
        if x != x:
            return self.value
        mean, var, count, out = [self.mean], [self.var], [self.count], [self.value]
        ewz_update(_ONE, (x,), (self.alpha,), self.clip, mean, var, count, out)
        self.mean, self.var, self.count, self.value = mean[0], var[0], count[0], out[0]
        return out[0]


_ONE = (0,)


def ewz_update(idx: Sequence[int], xs: Sequence[float], alphas: Sequence[float], clip: float,
               mean: list[float], var: list[float], count: list[int], out: list[float]) -> None:
    """The ``EWZ`` step for several normalisers at once (one call per bar on the hot path):
    for each ``i`` of ``idx``, the raw value ``xs[k]`` updates ``mean[i]``, ``var[i]``,
    ``count[i]`` and writes its normalised value to ``out[i]``; a nan ``xs[k]`` leaves slot
    ``i`` as it was."""
    for i, x, a in zip(idx, xs, alphas, strict=True):
        if x != x:
            continue
        c = count[i]
        m = mean[i]
        if c == 0:
            mean[i] = x
            out[i] = 0.0
        else:
            v = var[i]
            if v > 0.0:
                z = (x - m) / sqrt(v)
                z = clip if z > clip else (-clip if z < -clip else z)
                out[i] = tanh(0.5 * z)
            else:
                out[i] = 0.0
            d = x - m
            mean[i] = m + a * d
            var[i] = (1.0 - a) * (v + a * d * d)
        count[i] = c + 1


class BarAggregator(Stateful):
    """Aggregates base bars into ``interval_ms`` bars aligned to UTC epoch multiples.

    ``update`` returns ``(open, high, low, close, volume)`` of a higher bar when the base bar
    closes it, or when a base bar of a later bucket arrives after a gap (the partial bar is
    then emitted first, at the time of that later bar: never ahead of the data)."""

    __slots__ = ("interval_ms", "base_ms", "bucket", "o", "h", "lo", "c", "v")

    def __init__(self, interval_ms: int, base_ms: int) -> None:
        self.interval_ms = interval_ms
        self.base_ms = base_ms
        self.bucket = -1
        self.o = self.h = self.lo = self.c = self.v = NAN

    def update(self, open_time_ms: int, o: float, h: float, lo: float, c: float,
               v: float) -> list[tuple[float, float, float, float, float]]:
        """Add one base bar; return the higher bars it closes (0, 1 or 2 after a gap)."""
        out: list[tuple[float, float, float, float, float]] = []
        iv = self.interval_ms
        b = open_time_ms // iv
        if b != self.bucket:
            if self.bucket >= 0:
                out.append((self.o, self.h, self.lo, self.c, self.v))
            self.bucket = b
            self.o, self.h, self.lo, self.c, self.v = o, h, lo, c, v
        else:
            if h > self.h:
                self.h = h
            if lo < self.lo:
                self.lo = lo
            self.c = c
            self.v += v
        if (open_time_ms + self.base_ms) % iv == 0:
            out.append((self.o, self.h, self.lo, self.c, self.v))
            self.bucket = -1
        return out


class RollingPercentile(Stateful):
    """Rolling window of values with a percentile test (nearest-rank, lower)."""

    __slots__ = ("n", "window", "sorted")

    def __init__(self, n: int) -> None:
        self.n = n
        self.window: deque[float] = deque()
        self.sorted: list[float] = []

    def threshold(self, pct: float) -> float:
        """Value at percentile ``pct`` of the history: sorted[floor(pct/100 * (k-1))]."""
        k = len(self.sorted)
        if not k:
            return NAN
        return self.sorted[int(pct / 100.0 * (k - 1))]

    def push(self, x: float) -> None:
        """Add one value, dropping the oldest beyond n."""
        w = self.window
        s = self.sorted
        if len(w) == self.n:
            old = w.popleft()
            del s[bisect_left(s, old)]
        w.append(x)
        insort(s, x)

    def __len__(self) -> int:
        return len(self.window)
