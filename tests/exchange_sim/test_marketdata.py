"""Behaviour of exchange_sim.marketdata on the real data (skipped when it is absent) and on small
temporary files."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from exchange_sim import marketdata as md
from exchange_sim.marketdata import (
    Bars,
    DataError,
    Gap,
    available,
    default_data_dir,
    load_funding,
    load_kline_csv,
    load_klines,
    load_mark,
)
from exchange_sim.synthetic import resolve_bars
from models.enums import Market
from models.timeframes import fmt_ms, parse_time

HOUR = 3_600_000
MIN = 60_000


@pytest.fixture(scope="module")
def real() -> Path:
    d = default_data_dir()
    if d is None or not (d / "klines").is_dir():
        pytest.skip("real market data (../shared/data or $GRIDBOT_DATA) not available")
    return d


def write_csv(path: Path, rows: list, header: str | None = None) -> Path:
    """Write rows (lists of values) as a gzipped or plain CSV depending on the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = ((header + "\n") if header else "") + "".join(
        ",".join(str(x) for x in r) + "\n" for r in rows
    )
    if path.name.endswith(".gz"):
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text)
    return path


HEADER = "open_time,open,high,low,close,volume"


def bars_rows(t0: int, n: int, step: int, skip: set[int] = frozenset(), price: float = 100.0):
    """Simple consistent OHLCV rows; indexes in ``skip`` are left out."""
    rows = []
    for i in range(n):
        if i in skip:
            continue
        o = price + i
        rows.append([t0 + i * step, o, o + 2, o - 1, o + 0.5, 1.5 + i])
    return rows


# -- real files ----------------------------------------------------------------------------------
def test_spot_and_futures_5m_files_match_sources_md(real: Path) -> None:
    spot = load_kline_csv(
        real / "klines/spot/BTCUSDT/BTCUSDT-5m-20241231-20260219.csv.gz", "BTCUSDT", "spot"
    )
    assert spot.interval == "5m" and spot.market is Market.SPOT
    assert len(spot) == 119784
    assert spot.first_ms == parse_time("2024-12-31T00:00")
    assert int(spot.open_time[-1]) == parse_time("2026-02-19T21:55")
    assert spot.open[0] == 92792.05 and spot.volume[0] == 51.41651
    fut = load_klines("BTCUSDT", Market.FUTURES, "5m", data_dir=real)
    assert len(fut) == 119724 and fut.market is Market.FUTURES
    assert fut.gaps() == []
    assert (fut.high >= np.maximum(fut.open, fut.close)).all()


def test_mark_and_funding_files(real: Path) -> None:
    mark = load_mark("BTCUSDT", data_dir=real)
    assert mark is not None and mark.interval == "1h"
    # the 2024-12-31..2026-02-19 file lies inside the long one: merged = the long file's rows
    assert len(mark) == 56084
    assert mark.first_ms == parse_time("2019-12-23T11:00")
    assert int(mark.open_time[-1]) == parse_time("2026-05-17T06:00")
    assert not mark.volume.any() and mark.gaps() == []
    assert load_mark("NOPEUSDT", data_dir=real) is None

    fund = load_funding("BTCUSDT", data_dir=real)
    assert len(fund) == 7323
    assert fund[0][0] == parse_time("2019-09-10T08:00")
    assert fund[-1][0] == parse_time("2026-05-17T00:00")
    assert all(isinstance(r, Decimal) for _, r in fund)
    assert [t for t, _ in fund] == sorted({t for t, _ in fund})
    with gzip.open(real / "funding/BTCUSDT-funding-20190910-20260517.csv.gz", "rt") as f:
        f.readline()
        t, rate = f.readline().strip().split(",")
    assert fund[0] == (int(t), Decimal(rate)) and str(fund[0][1]) == rate
    sol = load_funding("SOLUSDT", parse_time("2022-11-01"), parse_time("2022-12-01"), real)
    assert all(parse_time("2022-11-01") <= t < parse_time("2022-12-01") for t, _ in sol)
    assert min(b[0] - a[0] for a, b in zip(sol, sol[1:], strict=False)) < 8 * HOUR  # stress: 4h/2h


def test_overlapping_futures_files_merge_without_duplicates(real: Path) -> None:
    folder = real / "klines/futures/SOLUSDT"
    a = load_kline_csv(folder / "SOLUSDT-5m-20241231-20260219.csv.gz", "SOLUSDT", "futures")
    b = load_kline_csv(folder / "SOLUSDT-5m-20250407-20260516.csv.gz", "SOLUSDT", "futures")
    assert (len(a), len(b)) == (119724, 116425)
    merged = load_klines("SOLUSDT", "futures", "5m", data_dir=real)
    union = np.union1d(a.open_time, b.open_time)
    assert len(merged) == len(union) < len(a) + len(b)
    assert np.array_equal(merged.open_time, union)
    assert merged.first_ms == a.first_ms and merged.open_time[-1] == b.open_time[-1]
    assert merged.gaps() == []
    i = int(np.searchsorted(merged.open_time, b.open_time[-1]))
    assert merged.close[i] == b.close[-1]


def test_slice_time_is_half_open(real: Path) -> None:
    bars = load_klines("ETHUSDT", "futures", "5m", data_dir=real)
    s, e = parse_time("2025-03-01"), parse_time("2025-03-02")
    day = bars.slice_time(s, e)
    assert len(day) == 288 and day.first_ms == s and day.end_ms == e
    assert day.close_time(len(day) - 1) == e - 1
    assert len(bars.slice_time(s, s)) == 0
    assert len(bars.slice_time(None, s)) + len(bars.slice_time(s, None)) == len(bars)
    assert np.shares_memory(day.close, bars.close)  # a view, not a copy
    ranged = load_klines("ETHUSDT", "futures", "5m", s, e, data_dir=real)
    assert np.array_equal(ranged.close, day.close)


def test_gaps_where_sources_md_says(real: Path) -> None:
    one = load_kline_csv(
        real / "klines/spot/BTCUSDT/BTCUSDT-1m-20210917-20211017.csv.gz", "BTCUSDT", "spot"
    )
    assert len(one) == 43079 and one.interval == "1m"
    gaps = one.gaps()
    assert len(gaps) == 1
    g = gaps[0]
    assert g.start_ms == parse_time("2021-09-29T07:00") and g.end_ms == parse_time("2021-09-29T09:00")
    assert g.missing_bars == 120 and g.symbol == "BTCUSDT" and g.interval == "1m"
    assert "2021-09-29T07:00:00Z" in str(g) and "BTCUSDT" in str(g) and "120" in str(g)

    for sym, n in (("BTCUSDT", 27), ("ETHUSDT", 27), ("SOLUSDT", 10)):
        hourly = load_klines(sym, "spot", "1h", data_dir=real)
        assert len(hourly.gaps()) == n, sym
    largest = max(load_klines("BTCUSDT", "spot", "1h", data_dir=real).gaps(),
                  key=lambda g: g.missing_bars)
    assert fmt_day(largest.start_ms) == "2018-02-08"
    assert largest.end_ms - largest.start_ms + HOUR == 34 * HOUR  # 34 h between bars

    with pytest.raises(DataError) as ei:
        load_klines("BTCUSDT", "spot", "1m", parse_time("2021-09-20"), parse_time("2021-10-10"),
                    data_dir=real, allow_gaps=False)
    msg = str(ei.value)
    assert "BTCUSDT" in msg and "2021-09-29T07:00:00Z" in msg and "1 gap" in msg


def fmt_day(ms: int) -> str:
    return fmt_ms(ms)[:10]


def test_uncovered_range_names_symbol_and_coverage(real: Path) -> None:
    with pytest.raises(DataError) as ei:
        load_klines("BTCUSDT", "spot", "5m", parse_time("2022-01-01"), parse_time("2022-02-01"),
                    data_dir=real)
    msg = str(ei.value)
    assert "spot BTCUSDT 5m" in msg and "2022-01-01T00:00:00Z" in msg
    assert "2020-12-01T00:00:00Z" in msg and "2024-12-31T00:00:00Z" in msg  # coverage listed
    with pytest.raises(DataError, match="futures BTCUSDT 5m"):
        load_klines("BTCUSDT", "futures", "5m", parse_time("2024-12-30"), None, data_dir=real)
    with pytest.raises(DataError, match="NOPEUSDT"):
        load_klines("NOPEUSDT", "spot", "5m", data_dir=real)


def test_resample_from_finer_file_matches_manual_aggregation(real: Path) -> None:
    s, e = parse_time("2021-09-28T00:00"), parse_time("2021-09-30T00:00")
    fifteen = load_klines("BTCUSDT", "spot", "15m", s, e, data_dir=real)  # no 15m spot file
    assert fifteen.interval == "15m"
    minute = load_klines("BTCUSDT", "spot", "1m", s, e, data_dir=real)
    expect = manual_resample(minute, 15 * MIN)
    assert_same_bars(list(fifteen.iter_rows()), expect)
    # the 2 h outage leaves 8 missing 15m buckets, not filled ones
    assert [(g.start_ms, g.missing_bars) for g in fifteen.gaps()] == [
        (parse_time("2021-09-29T07:00"), 8)
    ]
    assert len(fifteen) == 2 * 96 - 8


def test_exact_interval_not_covering_falls_back_to_finer(real: Path) -> None:
    # the spot 5m files stop in 2021-07, the 1m files cover 2021-09: 5m is resampled from 1m
    s, e = parse_time("2021-09-20"), parse_time("2021-09-21")
    five = load_klines("ETHUSDT", "spot", "5m", s, e, data_dir=real)
    assert len(five) == 288 and five.interval == "5m"
    minute = load_klines("ETHUSDT", "spot", "1m", s, e, data_dir=real)
    assert_same_bars(list(five.iter_rows()), manual_resample(minute, 5 * MIN))
    with pytest.raises(DataError) as ei:  # covered by neither: both coverages are listed
        load_klines("ETHUSDT", "spot", "5m", parse_time("2023-01-01"), parse_time("2023-01-02"),
                    data_dir=real)
    assert "5m: 2020-12-01" in str(ei.value) and "1m: 2021-05-15" in str(ei.value)


def manual_resample(bars: Bars, target: int) -> list[tuple]:
    """Straightforward dict-of-lists aggregation keeping only complete buckets."""
    buckets: dict[int, list] = {}
    for row in bars.iter_rows():
        buckets.setdefault(row[0] // target * target, []).append(row)
    per = target // bars.interval_ms
    out = []
    for k in sorted(buckets):
        rs = buckets[k]
        if len(rs) != per:
            continue
        out.append((k, rs[0][1], max(r[2] for r in rs), min(r[3] for r in rs), rs[-1][4],
                    sum(r[5] for r in rs)))
    return out


def assert_same_bars(got: list[tuple], exp: list[tuple]) -> None:
    """OHLC and times exactly; volume up to float summation order."""
    assert len(got) == len(exp) > 0
    for g, x in zip(got, exp, strict=True):
        assert g[:5] == x[:5]
        assert g[5] == pytest.approx(x[5], rel=1e-12)


def test_resample_with_gap_and_partial_edges() -> None:
    rows = bars_rows(72 * MIN, 30, MIN, skip={12})  # starts mid-bucket; gap at 12
    t = np.array([r[0] for r in rows])
    cols = [np.array([r[k] for r in rows], dtype=float) for k in range(1, 6)]
    bars = Bars("XUSDT", "spot", "1m", t, *cols)
    got = bars.resample("5m")
    exp = manual_resample(bars, 5 * MIN)
    assert len(exp) == 4  # 3 bars before the first full bucket and the gapped bucket dropped
    assert_same_bars(list(got.iter_rows()), exp)
    assert all(r[0] % (5 * MIN) == 0 for r in exp)
    with pytest.raises(DataError):
        bars.resample("7m")
    assert bars.resample("1m") is bars
    with pytest.raises(DataError):
        got.resample("1m")


def test_iter_rows_gives_python_scalars() -> None:
    rows = bars_rows(0, 4, MIN)
    bars = Bars("XUSDT", "futures", "1m", *zip(*rows, strict=True))
    out = list(bars.iter_rows())
    assert out == [tuple(r) for r in rows]
    assert type(out[0][0]) is int and type(out[0][1]) is float
    k = list(bars.iter_klines())
    assert k[1] == (MIN, 2 * MIN - 1, *rows[1][1:]) and type(k[1][1]) is int
    with pytest.raises(ValueError):
        bars.close[0] = 1.0  # read-only


def test_available_inventory(real: Path) -> None:
    inv = available(real)
    keyed = {(r["kind"], r["market"], r["symbol"], r["interval"]): r for r in inv}
    r = keyed[("klines", "spot", "BTCUSDT", "1h")]
    assert r["rows"] == 73265 and r["first_ms"] == parse_time("2018-01-01") and r["gaps"] == 27
    assert keyed[("klines", "futures", "SOLUSDT", "5m")]["files"] == 2
    assert keyed[("funding", "futures", "ETHUSDT", "")]["rows"] == 7089
    assert keyed[("mark", "futures", "ETHUSDT", "1h")]["rows"] == 56084


# -- temporary files -----------------------------------------------------------------------------
def archive_rows(t0: int, n: int, step: int, unit: int = 1) -> list[list]:
    """Binance public-archive 12-column rows; ``unit`` 1000 for µs timestamps."""
    out = []
    for i in range(n):
        t = t0 + i * step
        o = 200.0 + i
        out.append([t * unit, o, o + 1.25, o - 0.75, o + 0.5, 3.0, (t + step - 1) * unit,
                    600.0, 12, 1.5, 300.0, 0])
    return out


@pytest.mark.parametrize("unit,header", [(1, False), (1, True), (1000, False), (1000, True)])
def test_archive_12_column_csv(tmp_path: Path, unit: int, header: bool) -> None:
    t0 = parse_time("2025-01-01")
    head = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,"
            "taker_buy_volume,taker_buy_quote_volume,ignore") if header else None
    p = write_csv(tmp_path / "BTCUSDT-1m-2025-01-01.csv", archive_rows(t0, 10, MIN, unit), head)
    bars = load_kline_csv(p, "BTCUSDT", "spot")
    assert bars.interval == "1m" and len(bars) == 10  # inferred from the spacing
    assert bars.first_ms == t0 and bars.close_time(0) == t0 + MIN - 1
    assert bars.open[3] == 203.0 and bars.high[3] == 204.25 and bars.volume[3] == 3.0


def test_our_format_plain_and_gz(tmp_path: Path) -> None:
    rows = bars_rows(parse_time("2025-01-01"), 6, HOUR)
    a = load_kline_csv(write_csv(tmp_path / "a.csv", rows, HEADER), "ETHUSDT", "spot")
    b = load_kline_csv(write_csv(tmp_path / "b.csv.gz", rows, HEADER), "ETHUSDT", "spot", "1h")
    assert a.interval == b.interval == "1h"
    assert list(a.iter_rows()) == list(b.iter_rows()) == [tuple(r) for r in rows]


@pytest.mark.parametrize(
    "bad_line,needle",
    [
        ("1735689960000,100,101,99,100.5,abc", "column 6"),
        ("1735689960000,100,101,99", "expected 6 columns"),
        ("1735689960000,100,99,101,100.5,1", "high < low"),
        ("1735689960000,-5,101,99,100.5,1", "invalid bar"),
    ],
)
def test_bad_file_names_file_and_line(tmp_path: Path, bad_line: str, needle: str) -> None:
    rows = [",".join(map(str, r)) for r in bars_rows(parse_time("2025-01-01"), 3, MIN)]
    p = tmp_path / "X-1m-bad.csv.gz"
    with gzip.open(p, "wt") as f:
        f.write(HEADER + "\n" + "\n".join(rows[:2] + [bad_line] + rows[2:]) + "\n")
    with pytest.raises(DataError) as ei:
        load_kline_csv(p, "XUSDT", "spot", "1m")
    msg = str(ei.value)
    assert str(p) in msg and "line 4" in msg and needle in msg


def test_bad_line_number_counts_blank_lines(tmp_path: Path) -> None:
    rows = [",".join(map(str, r)) for r in bars_rows(parse_time("2025-01-01"), 3, MIN)]
    p = tmp_path / "blank.csv"
    p.write_text(HEADER + "\n" + rows[0] + "\n\n" + rows[1].replace(",101", ",-101") + "\n")
    with pytest.raises(DataError, match="line 4: invalid bar"):
        load_kline_csv(p, "XUSDT", "spot", "1m")
    p.write_text("garbage,1,2,3,4,5\n" + "\n".join(rows) + "\n")
    with pytest.raises(DataError, match="line 1: neither a header"):
        load_kline_csv(p, "XUSDT", "spot", "1m")


def test_unreadable_and_misaligned_files(tmp_path: Path) -> None:
    p = tmp_path / "broken.csv.gz"
    p.write_bytes(b"not gzip at all")
    with pytest.raises(DataError, match="broken.csv.gz"):
        load_kline_csv(p, "XUSDT", "spot", "1m")
    empty = tmp_path / "empty.csv"
    empty.write_text(HEADER + "\n")
    with pytest.raises(DataError, match="no data rows"):
        load_kline_csv(empty, "XUSDT", "spot", "1m")
    odd = write_csv(tmp_path / "odd.csv", bars_rows(parse_time("2025-01-01") + 7, 3, MIN), HEADER)
    with pytest.raises(DataError, match="not aligned"):
        load_kline_csv(odd, "XUSDT", "spot", "1m")


def make_dir(tmp_path: Path) -> Path:
    """A small data dir: two overlapping 1m files with a gap, mark and funding."""
    t0 = parse_time("2025-01-01")
    k = tmp_path / "klines/futures/XUSDT"
    write_csv(k / "XUSDT-1m-a.csv.gz", bars_rows(t0, 60, MIN, skip={20, 21}), HEADER)
    write_csv(k / "XUSDT-1m-b.csv.gz", bars_rows(t0, 120, MIN, skip=set(range(0, 40)) | {20}),
              HEADER)
    mark_rows = [r[:5] for r in bars_rows(t0, 5, HOUR)]
    write_csv(tmp_path / "mark/XUSDT-1h-mark-a.csv.gz", mark_rows, "open_time,open,high,low,close")
    write_csv(tmp_path / "funding/XUSDT-funding-a.csv.gz",
              [[t0 + 8 * HOUR, "0.00010000"], [t0, "-0.00002500"], [t0 + 16 * HOUR, "0.0003"]],
              "funding_time,funding_rate")
    return tmp_path


def test_small_dir_merge_gaps_coverage(tmp_path: Path) -> None:
    d = make_dir(tmp_path)
    t0 = parse_time("2025-01-01")
    bars = load_klines("xusdt", "futures", "1m", data_dir=d)
    assert len(bars) == 118 and bars.first_ms == t0
    assert bars.gaps() == [Gap("XUSDT", "1m", t0 + 20 * MIN, t0 + 22 * MIN, 2, "futures")]
    five = load_klines("XUSDT", "futures", "5m", data_dir=d)  # resampled from 1m
    assert len(five) == 23 and five.gaps()[0].start_ms == t0 + 20 * MIN
    with pytest.raises(DataError, match="available: 1m: 2025-01-01T00:00:00Z .. 2025-01-01T02:00:00Z"):
        load_klines("XUSDT", "futures", "1m", t0, t0 + 3 * HOUR, data_dir=d)
    with pytest.raises(DataError, match="spot"):
        load_klines("XUSDT", "spot", "1m", data_dir=d)
    write_csv(d / "klines/spot/YUSDT/YUSDT-1h-a.csv", bars_rows(0, 3, HOUR), HEADER)
    with pytest.raises(DataError, match="no file of this interval or of a finer one"):
        load_klines("YUSDT", "spot", "30m", data_dir=d)

    mark = load_mark("XUSDT", data_dir=d)
    assert mark is not None and len(mark) == 5 and not mark.volume.any()
    assert load_mark("XUSDT", t0 + 10 * HOUR, None, d) is None
    fund = load_funding("XUSDT", data_dir=d)
    assert fund == [(t0, Decimal("-0.00002500")), (t0 + 8 * HOUR, Decimal("0.00010000")),
                    (t0 + 16 * HOUR, Decimal("0.0003"))]
    assert str(fund[1][1]) == "0.00010000"
    assert load_funding("XUSDT", t0 + 1, t0 + 16 * HOUR, d) == [fund[1]]


def test_disagreeing_overlap_is_reported(tmp_path: Path) -> None:
    t0 = parse_time("2025-01-01")
    k = tmp_path / "klines/spot/ZUSDT"
    write_csv(k / "ZUSDT-1m-a.csv", bars_rows(t0, 10, MIN), HEADER)
    write_csv(k / "ZUSDT-1m-b.csv", bars_rows(t0 + 5 * MIN, 10, MIN, price=500.0), HEADER)
    with pytest.raises(DataError, match="disagree") as ei:
        load_klines("ZUSDT", "spot", "1m", data_dir=tmp_path)
    assert "ZUSDT-1m-a.csv" in str(ei.value) and "2025-01-01T00:05:00Z" in str(ei.value)


def test_cache_is_invalidated_when_the_file_changes(tmp_path: Path) -> None:
    p = write_csv(tmp_path / "c.csv", bars_rows(0, 3, MIN), HEADER)
    assert len(load_kline_csv(p, "CUSDT", "spot")) == 3
    write_csv(p, bars_rows(0, 5, MIN), HEADER)
    assert len(load_kline_csv(p, "CUSDT", "spot")) == 5


def test_default_data_dir_env_and_absence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBOT_DATA", str(tmp_path))
    assert default_data_dir() == tmp_path
    monkeypatch.delenv("GRIDBOT_DATA")
    fake_repo = tmp_path / "clone" / "repo"
    (fake_repo / "exchange_sim").mkdir(parents=True)
    monkeypatch.setattr(md, "__file__", str(fake_repo / "exchange_sim" / "marketdata.py"))
    assert default_data_dir() is None
    (tmp_path / "clone" / "shared" / "data").mkdir(parents=True)
    assert default_data_dir() == tmp_path / "clone" / "shared" / "data"


def test_no_data_dir_falls_back_to_synthetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDBOT_DATA", raising=False)
    monkeypatch.setattr(md, "__file__", str(tmp_path / "repo" / "exchange_sim" / "marketdata.py"))
    with pytest.raises(DataError, match="GRIDBOT_DATA"):
        load_klines("BTCUSDT", "spot", "1m")
    assert available() == []
    s = parse_time("2025-01-06")
    bars, note = resolve_bars("BTCUSDT", "spot", "5m", s, s + 24 * HOUR, seed=3)
    assert "synthetic" in note and "no market data directory" in note
    assert len(bars) == 288 and bars.first_ms == s and bars.interval == "5m"
    again, _ = resolve_bars("BTCUSDT", "spot", "5m", s, s + 24 * HOUR, seed=3)
    assert np.array_equal(again.close, bars.close)


def test_resolve_bars_prefers_real_data(real: Path) -> None:
    s = parse_time("2025-06-01")
    bars, note = resolve_bars("BTCUSDT", "futures", "5m", s, s + HOUR, data_dir=real)
    assert note.startswith("real") and len(bars) == 12


def test_parse_time() -> None:
    assert parse_time("2025-01-01") == 1735689600000
    assert parse_time("2025-01-01T01:02:03") == 1735689600000 + 3723000
    assert parse_time("2025-01-01T00:00:00Z") == parse_time("2025-01-01 00:00")
    assert parse_time("2025-01-01T02:00:00+02:00") == 1735689600000
    for bad in ("", "yesterday", "2025-13-01", "01/02/2025"):
        with pytest.raises(ValueError, match="YYYY-MM-DD"):
            parse_time(bad)
