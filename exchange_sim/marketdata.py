"""Market data for the embedded exchange and the backtest: real Binance klines, mark prices and
funding rates, loaded into columnar numpy ``Bars``.

Data layout (``<data_dir>``, by default ``../shared/data`` next to the repository or
``$GRIDBOT_DATA``)::

    klines/{spot,futures}/SYMBOL/SYMBOL-INTERVAL-FROM-TO.csv.gz   open_time,open,high,low,close,volume
    mark/SYMBOL-1h-mark-FROM-TO.csv.gz                           open_time,open,high,low,close
    funding/SYMBOL-funding-FROM-TO.csv.gz                        funding_time,funding_rate

``load_kline_csv`` also reads Binance public-archive kline CSVs (12 columns, with or without a
header, ``open_time`` in ms or, for 2025+ spot archives, in µs). Several files of one
symbol/interval are merged, de-duplicated by ``open_time`` and sorted.

Nothing is ever filled in: missing bars are reported as ``Gap``s (``Bars.gaps()``), a requested
range that the files do not cover raises ``DataError`` naming the symbol and the coverage, and
a malformed file raises ``DataError`` naming the file and the line.

Parsed files are cached in-process, keyed by path, mtime and size; the returned arrays are
read-only so the cached copies can be shared safely.
"""

from __future__ import annotations

import gzip
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

import numpy as np

from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms

_KLINE_HEADER = ("open_time", "open", "high", "low", "close", "volume")
_CSV_SUFFIXES = (".csv.gz", ".csv")


class DataError(Exception):
    """Market data that is missing, not covering a requested range, gappy or malformed."""


def _market(market: Market | str) -> Market:
    try:
        return market if isinstance(market, Market) else Market(str(market).lower())
    except ValueError:
        raise DataError(f"unknown market {market!r}: expected 'spot' or 'futures'") from None


def _interval_ms(interval: str) -> int:
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise DataError(
            f"unknown interval {interval!r}: expected one of {', '.join(INTERVAL_MS)}"
        ) from None


# -- Gap / Bars ----------------------------------------------------------------------------------
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


def _readonly(a: np.ndarray) -> np.ndarray:
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
        self.market = _market(market)
        self.interval = interval
        self.interval_ms = _interval_ms(interval)
        ot = np.asarray(open_time, dtype=np.int64)
        cols = [np.asarray(c, dtype=np.float64) for c in (open, high, low, close, volume)]
        n = len(ot)
        if any(len(c) != n for c in cols):
            raise ValueError("Bars: all columns must have the same length")
        self.open_time = _readonly(ot)
        self.open, self.high, self.low, self.close, self.volume = (_readonly(c) for c in cols)

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
        target = _interval_ms(interval)
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
        return {k: getattr(self, k) for k in _KLINE_HEADER}


def concat_bars(parts: list[Bars]) -> Bars:
    """Merge bars of one symbol/market/interval: sort by open time, drop duplicate open times
    (keeping the first part's bar)."""
    if not parts:
        raise ValueError("concat_bars: nothing to merge")
    p0 = parts[0]
    if len(parts) == 1:
        return p0
    cols = {k: np.concatenate([getattr(p, k) for p in parts]) for k in _KLINE_HEADER}
    # the stable sort keeps earlier parts first among equal open times; keep the first of a run
    order = np.argsort(cols["open_time"], kind="stable")
    ot = cols["open_time"][order]
    keep = order[np.r_[True, ot[1:] != ot[:-1]]]
    return Bars(p0.symbol, p0.market, p0.interval, *(cols[k][keep] for k in _KLINE_HEADER))


# -- CSV parsing ---------------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read: {e}") from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text CSV ({e})") from e


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _locate_error(path: Path, lines: list[str], first_line_no: int, ncols: int) -> DataError:
    """Slow path after the fast parser failed: find the first bad line and say what is wrong."""
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        toks = line.strip().split(",")
        where = f"{path}: line {first_line_no + k}"
        if len(toks) < ncols:
            return DataError(f"{where}: expected {ncols} columns, got {len(toks)}: {line!r}")
        for j, tok in enumerate(toks[:ncols]):
            if not _is_number(tok):
                return DataError(f"{where}, column {j + 1}: not a number {tok!r}: {line!r}")
    return DataError(f"{path}: malformed CSV")


def _parse_numeric_csv(path: Path, min_cols: int) -> tuple[np.ndarray, int, int]:
    """Parse a numeric CSV (optional header) into a 2-D float64 array.

    Returns (array, number of columns in the file, line number of the first data row)."""
    text = _read_text(path)
    lines = text.splitlines()
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first == len(lines):
        raise DataError(f"{path}: empty file")
    head = lines[first].strip().split(",")
    if not _is_number(head[0]):
        if "time" not in head[0].lower():
            raise DataError(
                f"{path}: line {first + 1}: neither a header (open_time,...) nor a data row: "
                f"{lines[first]!r}"
            )
        first += 1  # header row
    data_lines = lines[first:]
    first_line_no = first + 1
    k = 0
    while k < len(data_lines) and not data_lines[k].strip():
        k += 1
    if k == len(data_lines):
        raise DataError(f"{path}: no data rows")
    ncols = len(data_lines[k].strip().split(","))
    if ncols < min_cols:
        raise DataError(
            f"{path}: line {first_line_no + k}: expected at least {min_cols} columns, "
            f"got {ncols}: {data_lines[k]!r}"
        )
    usecols = tuple(range(min_cols))
    try:
        arr = np.loadtxt(
            data_lines, delimiter=",", dtype=np.float64, usecols=usecols, ndmin=2,
            comments=None,
        )
    except ValueError:
        raise _locate_error(path, data_lines, first_line_no, min_cols) from None
    return arr, ncols, first_line_no


def _normalise_times(t: np.ndarray) -> np.ndarray:
    """Epoch timestamps in s, ms or µs (told apart by magnitude) -> int64 ms."""
    if not len(t):
        return t.astype(np.int64)
    mx = float(np.max(t))
    if mx >= 1e14:  # microseconds (Binance spot archives from 2025 on)
        return (t // 1000).astype(np.int64)
    if 1e8 <= mx < 1e11:  # seconds (1973..5138); smaller values are taken as ms as they are
        return (t * 1000).astype(np.int64)
    return t.astype(np.int64)


def _check_rows(path: Path, arr: np.ndarray, first_line_no: int, price_cols: int) -> None:
    """Reject non-finite or non-positive prices, negative volume, high < low; name the line
    (counting blank lines, which the parser skips)."""
    prices = arr[:, 1:1 + price_cols]
    bad = ~np.isfinite(arr).all(axis=1) | (prices <= 0).any(axis=1)
    if arr.shape[1] > 1 + price_cols:
        bad |= arr[:, 1 + price_cols] < 0
    if price_cols >= 3:
        bad |= arr[:, 2] < arr[:, 3]
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        lines = _read_text(path).splitlines()[first_line_no - 1:]
        nonblank = [k for k, line in enumerate(lines) if line.strip()]
        raise DataError(
            f"{path}: line {first_line_no + nonblank[i]}: invalid bar values {arr[i].tolist()} "
            "(non-finite, non-positive price, negative volume or high < low)"
        )


def _disk_cache_dir() -> Path | None:
    """Where parsed kline files are cached (``$GRIDBOT_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/gridbot`` or ``~/.cache/gridbot``; ``GRIDBOT_CACHE_DIR=off`` disables)."""
    env = os.environ.get("GRIDBOT_CACHE_DIR")
    if env:
        return None if env.lower() in ("off", "0", "none") else Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gridbot"


def _disk_cache_file(path_s: str, mtime_ns: int, size: int, with_volume: bool) -> Path | None:
    d = _disk_cache_dir()
    if d is None:
        return None
    import hashlib

    key = f"{path_s}|{mtime_ns}|{size}|{int(with_volume)}|v1".encode()
    return d / "klines" / f"{hashlib.sha1(key).hexdigest()}.npy"  # noqa: S324 - a cache key


@lru_cache(maxsize=256)
def _parse_ohlc_cached(path_s: str, mtime_ns: int, size: int, with_volume: bool) -> tuple:
    """``_parse_ohlc`` through two caches: this process's (LRU) and a disk cache of the parsed
    columns keyed by the file's path, mtime and size (a changed file is parsed afresh; an
    unreadable or unwritable cache is ignored)."""
    cf = _disk_cache_file(path_s, mtime_ns, size, with_volume)
    if cf is not None:
        try:
            arr = np.load(cf, allow_pickle=False)
            if arr.ndim == 2 and arr.shape[0] == 6 and arr.dtype == np.float64:
                ot = arr[0].astype(np.int64)
                if np.array_equal(ot, arr[0]):
                    return (_readonly(ot),) + tuple(_readonly(np.ascontiguousarray(c))
                                                    for c in arr[1:])
        except (OSError, ValueError):
            pass
    cols = _parse_ohlc(path_s, with_volume)
    if cf is not None:
        try:
            cf.parent.mkdir(parents=True, exist_ok=True)
            tmp = cf.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, np.vstack([c.astype(np.float64) for c in cols]),
                        allow_pickle=False)
            os.replace(tmp, cf)
        except OSError:
            pass
    return cols


def _parse_ohlc(path_s: str, with_volume: bool) -> tuple:
    path = Path(path_s)
    ncols_needed = 6 if with_volume else 5
    arr, _ncols, first_line_no = _parse_numeric_csv(path, ncols_needed)
    _check_rows(path, arr, first_line_no, 4)
    ot = _normalise_times(arr[:, 0])
    order = np.argsort(ot, kind="stable")
    if not np.all(order[1:] > order[:-1]):  # not already sorted
        ot = ot[order]
        arr = arr[order]
    keep = np.r_[True, ot[1:] != ot[:-1]]
    if not keep.all():
        ot, arr = ot[keep], arr[keep]
    vol = arr[:, 5] if with_volume else np.zeros(len(arr))
    cols = (ot, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], vol)
    return tuple(_readonly(np.ascontiguousarray(c)) for c in cols)


def _stat_key(path: Path) -> tuple[str, int, int]:
    try:
        st = path.stat()
    except OSError as e:
        raise DataError(f"{path}: cannot read: {e}") from e
    return str(path.resolve()), st.st_mtime_ns, st.st_size


def _infer_interval(path: Path, ot: np.ndarray) -> str:
    if len(ot) < 2:
        raise DataError(f"{path}: cannot infer the interval from fewer than 2 rows; pass interval=")
    step = int(np.median(np.diff(ot)))
    for name, ms in INTERVAL_MS.items():
        if ms == step:
            return name
    raise DataError(f"{path}: median bar spacing {step} ms is not a known interval")


def _check_alignment(path: Path, ot: np.ndarray, interval: str) -> None:
    ms = INTERVAL_MS[interval]
    bad = np.flatnonzero(ot % ms)
    if len(bad):
        t = int(ot[bad[0]])
        raise DataError(
            f"{path}: open_time {t} ({fmt_ms(t)}) is not aligned to the {interval} interval "
            f"({len(bad)} such rows)"
        )


def load_kline_csv(
    path: Path | str, symbol: str, market: Market | str, interval: str | None = None
) -> Bars:
    """Load one kline CSV: our 6-column format or a Binance archive 12-column file (header or
    not; open_time in ms or µs). The interval is inferred from the median spacing when not
    given. Raises ``DataError`` naming the file (and line) when it is malformed."""
    path = Path(path)
    ot, o, h, lo, c, v = _parse_ohlc_cached(*_stat_key(path), True)
    if interval is None:
        interval = _infer_interval(path, ot)
    else:
        _interval_ms(interval)
    _check_alignment(path, ot, interval)
    return Bars(symbol, market, interval, ot, o, h, lo, c, v)


# -- data directory ------------------------------------------------------------------------------
def default_data_dir() -> Path | None:
    """``$GRIDBOT_DATA`` if set, else ``<repo root>/../shared/data`` if it exists, else None."""
    env = os.environ.get("GRIDBOT_DATA")
    if env:
        return Path(env)
    cand = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return cand if cand.is_dir() else None


def _resolve_dir(data_dir: Path | str | None) -> Path:
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if d is None:
        raise DataError(
            "no market data directory: set GRIDBOT_DATA or provide ../shared/data next to the "
            "repository (or use the synthetic generator)"
        )
    if not d.is_dir():
        raise DataError(f"market data directory {d} does not exist")
    return d


_NAME_RE = re.compile(r"^(?P<sym>[A-Z0-9]+)-(?P<iv>\d+[mhd])-")


def _kline_files(d: Path, market: Market, symbol: str) -> dict[str, list[Path]]:
    """Interval -> files, for one symbol under ``klines/<market>/<SYMBOL>/``."""
    folder = d / "klines" / market.value / symbol
    out: dict[str, list[Path]] = {}
    if not folder.is_dir():
        return out
    for p in sorted(folder.iterdir()):
        if not p.name.endswith(_CSV_SUFFIXES):
            continue
        m = _NAME_RE.match(p.name)
        if m and m.group("sym") == symbol and m.group("iv") in INTERVAL_MS:
            out.setdefault(m.group("iv"), []).append(p)
    return out


def _segments(parts: list[Bars]) -> list[tuple[int, int]]:
    """Union of the files' spans ``[first, last + interval)``, merged where they touch."""
    spans = sorted((p.first_ms, p.end_ms) for p in parts if len(p))
    out: list[list[int]] = []
    for s, e in spans:
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return [(s, e) for s, e in out]


def _fmt_segments(segs: list[tuple[int, int]]) -> str:
    return "; ".join(f"{fmt_ms(s)} .. {fmt_ms(e)}" for s, e in segs) or "none"


@lru_cache(maxsize=64)
def _merged(keys: tuple[tuple[str, int, int], ...], symbol: str, market: Market, interval: str
            ) -> tuple[Bars, tuple[tuple[int, int], ...]]:
    parts = [load_kline_csv(Path(k[0]), symbol, market, interval) for k in keys]
    _check_overlaps(parts, [k[0] for k in keys])
    return concat_bars(parts), tuple(_segments(parts))


def _check_overlaps(parts: list[Bars], names: list[str]) -> None:
    """Files covering the same bars must agree on them (to 1e-9 relative): a disagreement
    means a misplaced or corrupt file, which must not be papered over by picking one."""
    for i in range(len(parts)):
        for j in range(i + 1, len(parts)):
            a, b = parts[i], parts[j]
            _, ia, ib = np.intersect1d(a.open_time, b.open_time, assume_unique=True,
                                       return_indices=True)
            if not len(ia):
                continue
            for col in _KLINE_HEADER[1:]:
                x, y = getattr(a, col)[ia], getattr(b, col)[ib]
                bad = np.flatnonzero(~np.isclose(x, y, rtol=1e-9, atol=0.0))
                if len(bad):
                    k = int(bad[0])
                    t = int(a.open_time[ia[k]])
                    raise DataError(
                        f"{a.market.value} {a.symbol} {a.interval}: files {names[i]} and "
                        f"{names[j]} disagree on {len(bad)} overlapping bar(s), first at "
                        f"{fmt_ms(t)}: {col} {x[k]!r} vs {y[k]!r}"
                    )


def _load_interval(d: Path, market: Market, symbol: str, interval: str, files: list[Path]
                   ) -> tuple[Bars, tuple[tuple[int, int], ...]]:
    return _merged(tuple(_stat_key(p) for p in files), symbol, market, interval)


def coverage(symbol: str, market: Market | str, interval: str, data_dir: Path | None = None
             ) -> list[tuple[int, int]]:
    """Time spans ``[start_ms, end_ms)`` covered by the files of exactly this interval (outage
    gaps inside a file do not split a span; see ``Bars.gaps``)."""
    d, mk = _resolve_dir(data_dir), _market(market)
    files = _kline_files(d, mk, symbol).get(interval)
    return list(_load_interval(d, mk, symbol, interval, files)[1]) if files else []


def load_klines(
    symbol: str,
    market: Market | str,
    interval: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    data_dir: Path | None = None,
    allow_gaps: bool = True,
) -> Bars:
    """Bars of ``symbol`` on ``market`` with open time in ``[start_ms, end_ms)``.

    Reads every file of that interval under ``<data_dir>/klines/<market>/<SYMBOL>/`` (merged,
    de-duplicated, sorted). If that interval has no file, or its files do not cover the range,
    the finest interval that divides it and covers the range is resampled (without a range: the
    finer one spanning the most time). Raises ``DataError`` when there is no data, when no
    candidate's files cover the range in one span (the message lists the coverage), or when
    ``allow_gaps`` is False and the result has missing bars (the message lists them)."""
    symbol = symbol.upper()
    mk = _market(market)
    target_ms = _interval_ms(interval)
    d = _resolve_dir(data_dir)
    by_iv = _kline_files(d, mk, symbol)
    what = f"{mk.value} {symbol} {interval}"
    if not by_iv:
        raise DataError(f"no {mk.value} kline files for {symbol} under {d / 'klines' / mk.value}")
    if start_ms is not None and end_ms is not None and end_ms <= start_ms:
        raise DataError(f"{what}: empty range {fmt_ms(start_ms)} .. {fmt_ms(end_ms)}")

    def covers(segs: tuple[tuple[int, int], ...]) -> bool:
        for s, e in segs:
            lo = s if start_ms is None else start_ms
            hi = e if end_ms is None else end_ms
            if s <= lo and hi <= e:
                return True
        return False

    finer = sorted(
        (iv for iv in by_iv if INTERVAL_MS[iv] < target_ms and target_ms % INTERVAL_MS[iv] == 0),
        key=INTERVAL_MS.__getitem__,
    )
    cands = ([interval] if interval in by_iv else []) + finer
    if not cands:
        raise DataError(
            f"{what}: no file of this interval or of a finer one that divides it "
            f"(available: {', '.join(sorted(by_iv, key=INTERVAL_MS.__getitem__))})"
        )
    loaded: dict[str, tuple[Bars, tuple[tuple[int, int], ...]]] = {}

    def load(iv: str) -> tuple[Bars, tuple[tuple[int, int], ...]]:
        if iv not in loaded:
            loaded[iv] = _load_interval(d, mk, symbol, iv, by_iv[iv])
        return loaded[iv]

    if start_ms is None and end_ms is None:
        # everything: the exact interval if present, else the finer one spanning the most time
        src_iv = cands[0] if cands[0] == interval else max(
            finer, key=lambda iv: (sum(e - s for s, e in load(iv)[1]), -INTERVAL_MS[iv])
        )
    else:
        # the exact interval if it covers the range, else the finest one that does
        src_iv = next((iv for iv in cands if covers(load(iv)[1])), "")
        if not src_iv:
            rng = (f"{fmt_ms(start_ms) if start_ms is not None else 'start'} .. "
                   f"{fmt_ms(end_ms) if end_ms is not None else 'end'}")
            avail = " | ".join(f"{iv}: {_fmt_segments(list(load(iv)[1]))}" for iv in cands)
            raise DataError(
                f"{what}: requested range {rng} is not covered by the data; available: {avail}"
            )
    bars, _segs = load(src_iv)
    out = bars.slice_time(start_ms, end_ms)
    if src_iv != interval:
        # resample from bucket-aligned edges so partial buckets at the ends are dropped
        out = out.resample(interval)
    if not len(out):
        raise DataError(f"{what}: no bars in the requested range")
    if not allow_gaps:
        gaps = out.gaps()
        if gaps:
            listed = "; ".join(str(g) for g in gaps[:20])
            more = f" (+{len(gaps) - 20} more)" if len(gaps) > 20 else ""
            raise DataError(f"{what}: {len(gaps)} gap(s) in the requested range: {listed}{more}")
    return out


# -- mark price and funding ----------------------------------------------------------------------
def _files(folder: Path, prefix: str) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir()
                  if p.name.startswith(prefix) and p.name.endswith(_CSV_SUFFIXES))


@lru_cache(maxsize=32)
def _merged_mark(keys: tuple[tuple[str, int, int], ...], symbol: str) -> Bars:
    parts = []
    for k in keys:
        path = Path(k[0])
        ot, o, h, lo, c, v = _parse_ohlc_cached(*k, False)
        _check_alignment(path, ot, "1h")
        parts.append(Bars(symbol, Market.FUTURES, "1h", ot, o, h, lo, c, v))
    return concat_bars(parts)


def load_mark(
    symbol: str, start_ms: int | None = None, end_ms: int | None = None,
    data_dir: Path | None = None,
) -> Bars | None:
    """Futures mark-price 1h klines (volume zeros) in ``[start_ms, end_ms)``, merged over the
    ``mark/SYMBOL-1h-mark-*`` files; None when there is no mark data for the symbol there.
    May be partial or gappy: check ``gaps()`` and the ends."""
    symbol = symbol.upper()
    files = _files(_resolve_dir(data_dir) / "mark", f"{symbol}-1h-mark-")
    if not files:
        return None
    out = _merged_mark(tuple(_stat_key(p) for p in files), symbol).slice_time(start_ms, end_ms)
    return out if len(out) else None


@lru_cache(maxsize=32)
def _parse_funding_cached(path_s: str, mtime_ns: int, size: int) -> tuple[tuple[int, Decimal], ...]:
    path = Path(path_s)
    out: list[tuple[int, Decimal]] = []
    for no, line in enumerate(_read_text(path).splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        toks = s.split(",")
        if no == 1 and not _is_number(toks[0]):
            continue
        if len(toks) < 2:
            raise DataError(f"{path}: line {no}: expected 2 columns (funding_time,funding_rate): "
                            f"{line!r}")
        try:
            t = int(toks[0]) if toks[0].isdigit() else int(float(toks[0]))
            rate = Decimal(toks[1].strip())
            if not rate.is_finite():
                raise InvalidOperation
        except (ValueError, InvalidOperation):
            raise DataError(f"{path}: line {no}: not a funding row: {line!r}") from None
        out.append((t, rate))
    if not out:
        raise DataError(f"{path}: no data rows")
    times = _normalise_times(np.array([t for t, _ in out], dtype=np.float64))
    return tuple((int(t), r) for t, (_, r) in zip(times, out, strict=True))


def load_funding(
    symbol: str, start_ms: int | None = None, end_ms: int | None = None,
    data_dir: Path | None = None,
) -> list[tuple[int, Decimal]]:
    """``(funding_time_ms, rate)`` in ``[start_ms, end_ms)``, sorted and de-duplicated, the
    rate an exact ``Decimal`` of the CSV text; empty when there is no funding file."""
    symbol = symbol.upper()
    files = _files(_resolve_dir(data_dir) / "funding", f"{symbol}-funding-")
    merged: dict[int, Decimal] = {}
    for p in files:
        for t, r in _parse_funding_cached(*_stat_key(p)):
            merged.setdefault(t, r)
    lo = -(2**63) if start_ms is None else start_ms
    hi = 2**63 if end_ms is None else end_ms
    return [(t, merged[t]) for t in sorted(merged) if lo <= t < hi]


# -- inventory -----------------------------------------------------------------------------------
def available(data_dir: Path | None = None) -> list[dict]:
    """Inventory of the data directory, one dict per series: ``kind`` (klines/mark/funding),
    ``market``, ``symbol``, ``interval``, ``first_ms``, ``last_ms``, ``rows``, ``gaps``,
    ``files``. Empty when there is no data directory."""
    try:
        d = _resolve_dir(data_dir)
    except DataError:
        return []
    out: list[dict] = []
    for mk in Market:
        root = d / "klines" / mk.value
        if not root.is_dir():
            continue
        for sym_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            for iv, files in sorted(_kline_files(d, mk, sym_dir.name).items(),
                                    key=lambda kv: INTERVAL_MS[kv[0]]):
                bars, _ = _load_interval(d, mk, sym_dir.name, iv, files)
                out.append(_inv("klines", mk.value, sym_dir.name, iv, bars, len(files)))
    mark_syms = sorted({p.name.split("-")[0] for p in _files(d / "mark", "")})
    for sym in mark_syms:
        bars = load_mark(sym, data_dir=d)
        if bars is not None:
            n = len(_files(d / "mark", f"{sym}-1h-mark-"))
            out.append(_inv("mark", Market.FUTURES.value, sym, "1h", bars, n))
    for sym in sorted({p.name.split("-")[0] for p in _files(d / "funding", "")}):
        rows = load_funding(sym, data_dir=d)
        if rows:
            out.append({
                "kind": "funding", "market": Market.FUTURES.value, "symbol": sym,
                "interval": "", "first_ms": rows[0][0], "last_ms": rows[-1][0],
                "rows": len(rows), "gaps": 0,
                "files": len(_files(d / "funding", f"{sym}-funding-")),
            })
    return out


def _inv(kind: str, market: str, symbol: str, interval: str, bars: Bars, files: int) -> dict:
    return {
        "kind": kind, "market": market, "symbol": symbol, "interval": interval,
        "first_ms": bars.first_ms, "last_ms": int(bars.open_time[-1]) if len(bars) else None,
        "rows": len(bars), "gaps": len(bars.gaps()), "files": files,
    }


# -- real data or synthetic ----------------------------------------------------------------------
def resolve_bars(
    symbol: str,
    market: Market | str,
    interval: str,
    start_ms: int,
    end_ms: int,
    data_dir: Path | None = None,
    seed: int = 0,
    scenario: str = "gbm",
) -> tuple[Bars, str]:
    """Real bars from the data directory, or, when there is no data directory at all, seeded
    synthetic bars (``exchange_sim.synthetic``). Returns ``(bars, note)``; ``note`` says where
    the bars came from so the caller can tell the user. Data that exists but does not cover the
    range still raises ``DataError``: it is never silently replaced."""
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if d is not None and d.is_dir():
        bars = load_klines(symbol, market, interval, start_ms, end_ms, d)
        return bars, f"real {_market(market).value} {symbol} {interval} klines from {d}"
    from exchange_sim.synthetic import generate  # lazy: synthetic imports this module

    ms = _interval_ms(interval)
    n = max(0, -(-(end_ms - start_ms) // ms))
    first = start_ms + (-start_ms) % ms
    bars = generate(symbol, scenario, start_ms=first, n_bars=n, interval=interval, seed=seed,
                    market=_market(market))
    where = "no market data directory found (set GRIDBOT_DATA or provide ../shared/data)"
    return bars, f"synthetic {scenario} {symbol} {interval} bars (seed {seed}): {where}"


__all__ = [
    "Bars", "DataError", "Gap", "available", "concat_bars", "coverage",
    "default_data_dir", "load_funding", "load_kline_csv", "load_klines", "load_mark",
    "resolve_bars",
]
