"""Reading market-data CSV files: kline / mark-price OHLC(V) and funding rates.

Our 6-column kline format and Binance's 12-column archive files (with or without a header;
``open_time`` in s, ms or µs), funding ``funding_time,funding_rate``. A malformed file raises
``DataError`` naming the file and the line. Parsed files are cached in-process (keyed by path,
mtime and size) and, for klines, on disk (``$GRIDBOT_CACHE_DIR``); the returned arrays are
read-only so the cached copies can be shared safely.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import json
import os
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

import numpy as np

from exchange_sim import dataquality as dq
from exchange_sim.bars import Bars, DataError, interval_ms_of, readonly
from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms

CSV_SUFFIXES = (".csv.gz", ".csv")


def read_text(path: Path) -> str:
    """The text of a (gzipped) CSV file."""
    try:
        raw = gzip.open(path, "rb").read() if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as e:
        raise DataError(f"{path}: cannot read: {e}") from e
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not a text CSV ({e})") from e


def is_number(tok: str) -> bool:
    """True when ``tok`` parses as a float."""
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
            if not is_number(tok):
                return DataError(f"{where}, column {j + 1}: not a number {tok!r}: {line!r}")
    return DataError(f"{path}: malformed CSV")


def _parse_numeric_csv(path: Path, min_cols: int) -> tuple[np.ndarray, int, int]:
    """Parse a numeric CSV (optional header) into a 2-D float64 array.

    Returns (array, number of columns in the file, line number of the first data row)."""
    text = read_text(path)
    lines = text.splitlines()
    first = 0
    while first < len(lines) and not lines[first].strip():
        first += 1
    if first == len(lines):
        raise DataError(f"{path}: empty file")
    head = lines[first].strip().split(",")
    if not is_number(head[0]):
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


def normalise_times(t: np.ndarray) -> np.ndarray:
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
        lines = read_text(path).splitlines()[first_line_no - 1:]
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
    key = f"{path_s}|{mtime_ns}|{size}|{int(with_volume)}|v2".encode()
    return d / "klines" / f"{hashlib.sha1(key).hexdigest()}.npy"  # noqa: S324 - a cache key


@lru_cache(maxsize=256)
def parse_ohlc_cached(path_s: str, mtime_ns: int, size: int, with_volume: bool) -> tuple:
    """``_parse_ohlc`` through two caches: this process's (LRU) and a disk cache of the parsed
    columns and issues keyed by the file's path, mtime and size (a changed file is parsed
    afresh; an unreadable or unwritable cache is ignored). Returns the six columns and the
    file's ``DataIssue`` tuple."""
    cf = _disk_cache_file(path_s, mtime_ns, size, with_volume)
    if cf is not None:
        try:
            arr = np.load(cf, allow_pickle=False)
            found = _load_issues(cf.with_suffix(".issues.json"))
            if arr.ndim == 2 and arr.shape[0] == 6 and arr.dtype == np.float64:
                ot = arr[0].astype(np.int64)
                if np.array_equal(ot, arr[0]):
                    return (readonly(ot),) + tuple(readonly(np.ascontiguousarray(c))
                                                    for c in arr[1:]) + (found,)
        except (OSError, ValueError, KeyError, TypeError):
            pass
    cols = _parse_ohlc(path_s, with_volume)
    if cf is not None:
        try:
            cf.parent.mkdir(parents=True, exist_ok=True)
            side = cf.with_suffix(".issues.json")
            tmp = side.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps([dataclasses.asdict(x) for x in cols[6]]))
            os.replace(tmp, side)  # before the columns: a cached .npy always has its issues
            tmp = cf.with_suffix(f".{os.getpid()}.tmp")
            with open(tmp, "wb") as fh:
                np.save(fh, np.vstack([c.astype(np.float64) for c in cols[:6]]),
                        allow_pickle=False)
            os.replace(tmp, cf)
        except OSError:
            pass
    return cols


def _load_issues(path: Path) -> tuple[dq.DataIssue, ...]:
    """A disk-cached file's issues (``OSError`` when missing: the file is parsed again)."""
    return tuple(dq.DataIssue(**d) for d in json.loads(path.read_text()))


def _parse_ohlc(path_s: str, with_volume: bool) -> tuple:
    """The columns of a kline/mark file, sorted with unique open times, and its
    ``DataIssue``s (``exchange_sim.dataquality``) as a 7th element."""
    path = Path(path_s)
    ncols_needed = 6 if with_volume else 5
    arr, _ncols, first_line_no = _parse_numeric_csv(path, ncols_needed)
    _check_rows(path, arr, first_line_no, 4)
    ot = normalise_times(arr[:, 0])
    raw_ot = ot
    row = np.arange(len(ot))
    issues = dq.row_issues(path_s, raw_ot, arr, row)
    order = np.argsort(ot, kind="stable")
    if not np.all(order[1:] > order[:-1]):  # not already sorted
        ot = ot[order]
        arr = arr[order]
        row = row[order]
    keep = np.r_[True, ot[1:] != ot[:-1]]
    if not keep.all():
        ot, arr, row = ot[keep], arr[keep], row[keep]
    issues += dq.outlier_issues(path_s, ot, arr[:, 2], arr[:, 3], arr[:, 4], row)
    if issues:  # row indices -> line numbers (blank lines count; the parser skipped them)
        lines = read_text(path).splitlines()[first_line_no - 1:]
        nonblank = np.array([first_line_no + k for k, ln in enumerate(lines) if ln.strip()])
        issues = [dataclasses.replace(x, line=int(nonblank[x.line])) for x in issues]
        issues = [dataclasses.replace(x, detail=_relines(x.detail, nonblank),
                                      action=_relines(x.action, nonblank)) for x in issues]
    vol = arr[:, 5] if with_volume else np.zeros(len(arr))
    cols = (ot, arr[:, 1], arr[:, 2], arr[:, 3], arr[:, 4], vol)
    return tuple(readonly(np.ascontiguousarray(c)) for c in cols) + (tuple(issues),)


def _relines(detail: str, nonblank: np.ndarray) -> str:
    """``line N`` (a row index) in an issue's text -> the file's line number."""
    return re.sub(r"line (\d+)", lambda m: f"line {int(nonblank[int(m.group(1))])}", detail)


def stat_key(path: Path) -> tuple[str, int, int]:
    """(resolved path, mtime ns, size): the cache key of a file."""
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


def check_alignment(path: Path, ot: np.ndarray, interval: str) -> None:
    """``DataError`` when an open time is not a multiple of the interval."""
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
    ot, o, h, lo, c, v, _issues = parse_ohlc_cached(*stat_key(path), True)
    if interval is None:
        interval = _infer_interval(path, ot)
    else:
        interval_ms_of(interval)
    check_alignment(path, ot, interval)
    return Bars(symbol, market, interval, ot, o, h, lo, c, v)


def file_issues(path: Path | str) -> tuple[dq.DataIssue, ...]:
    """What validation found in a kline file (``exchange_sim.dataquality``); cached."""
    return parse_ohlc_cached(*stat_key(Path(path)), True)[6]



@lru_cache(maxsize=32)
def parse_funding_cached(path_s: str, mtime_ns: int, size: int) -> tuple[tuple[int, Decimal], ...]:
    """The (time ms, rate) rows of one funding CSV (cached by path, mtime, size)."""
    path = Path(path_s)
    out: list[tuple[int, Decimal]] = []
    for no, line in enumerate(read_text(path).splitlines(), 1):
        s = line.strip()
        if not s:
            continue
        toks = s.split(",")
        if no == 1 and not is_number(toks[0]):
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
    times = normalise_times(np.array([t for t, _ in out], dtype=np.float64))
    return tuple((int(t), r) for t, (_, r) in zip(times, out, strict=True))
