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

``Bars``, ``Gap`` and ``DataError`` live in ``exchange_sim.bars``, the CSV readers and their
caches in ``exchange_sim.klinecsv``; this module finds the files of a data directory, merges
and resamples them (``exchange_sim.synthetic.resolve_bars`` falls back to synthetic bars
when there is no data at all).
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import numpy as np

from exchange_sim import dataquality as dq
from exchange_sim.bars import (
    KLINE_HEADER,
    Bars,
    DataError,
    Gap,
    concat_bars,
    interval_ms_of,
    market_of,
)
from exchange_sim.dataquality import DataIssue
from exchange_sim.klinecsv import (
    CSV_SUFFIXES,
    check_alignment,
    file_issues,
    load_kline_csv,
    parse_funding_cached,
    parse_ohlc_cached,
    stat_key,
)
from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms


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
        if not p.name.endswith(CSV_SUFFIXES):
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
            for col in KLINE_HEADER[1:]:
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
    return _merged(tuple(stat_key(p) for p in files), symbol, market, interval)


def coverage(symbol: str, market: Market | str, interval: str, data_dir: Path | None = None
             ) -> list[tuple[int, int]]:
    """Time spans ``[start_ms, end_ms)`` covered by the files of exactly this interval (outage
    gaps inside a file do not split a span; see ``Bars.gaps``)."""
    d, mk = _resolve_dir(data_dir), market_of(market)
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
    issues: list[DataIssue] | None = None,
) -> Bars:
    """Bars of ``symbol`` on ``market`` with open time in ``[start_ms, end_ms)``.

    Reads every file of that interval under ``<data_dir>/klines/<market>/<SYMBOL>/`` (merged,
    de-duplicated, sorted). If that interval has no file, or its files do not cover the range,
    the finest interval that divides it and covers the range is resampled (without a range: the
    finer one spanning the most time). Raises ``DataError`` when there is no data, when no
    candidate's files cover the range in one span (the message lists the coverage), or when
    ``allow_gaps`` is False and the result has missing bars (the message lists them).
    ``issues``, when given, receives what validation found in the files read, in the range
    (``exchange_sim.dataquality``)."""
    symbol = symbol.upper()
    mk = market_of(market)
    target_ms = interval_ms_of(interval)
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
    if issues is not None:
        for f in by_iv[src_iv]:
            issues += dq.in_range(file_issues(f), start_ms, end_ms)
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
                  if p.name.startswith(prefix) and p.name.endswith(CSV_SUFFIXES))


@lru_cache(maxsize=32)
def _merged_mark(keys: tuple[tuple[str, int, int], ...], symbol: str) -> Bars:
    parts = []
    for k in keys:
        path = Path(k[0])
        ot, o, h, lo, c, v, _issues = parse_ohlc_cached(*k, False)
        check_alignment(path, ot, "1h")
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
    out = _merged_mark(tuple(stat_key(p) for p in files), symbol).slice_time(start_ms, end_ms)
    return out if len(out) else None




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
        for t, r in parse_funding_cached(*stat_key(p)):
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


__all__ = [
    "Bars", "DataError", "Gap", "available", "concat_bars", "coverage",
    "DataIssue", "default_data_dir", "file_issues", "load_funding", "load_kline_csv",
    "load_klines", "load_mark",
]
