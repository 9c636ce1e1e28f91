"""Data validation on load: conflicting duplicates, out-of-order rows and outlier bars are
reported with file, line and values; exact repeats and real crashes are not."""

from __future__ import annotations

from pathlib import Path

import pytest

from exchange_sim import dataquality as dq
from exchange_sim import klinecsv
from exchange_sim.klinecsv import file_issues, load_kline_csv

HEADER = "open_time,open,high,low,close,volume"
T0 = 1_735_689_600_000  # 2025-01-01
STEP = 300_000


def walk(n: int, seed: int = 7) -> list[list[float]]:
    """A deterministic random walk in whole ticks (no float maths that depend on the CPU)."""
    x, px, rows = seed, 1_000_000, []
    for i in range(n):
        x = (x * 1103515245 + 12345) % 2 ** 31
        nxt = px + (x % 2001) - 1000  # ±0.1 %
        hi, lo = max(px, nxt) + 200, min(px, nxt) - 200
        rows.append([T0 + i * STEP, px / 100, hi / 100, lo / 100, nxt / 100, 5.0])
        px = nxt
    return rows


def write(path: Path, rows: list[list[float]], blanks: tuple[int, ...] = ()) -> Path:
    lines = [HEADER]
    for k, r in enumerate(rows):
        if k in blanks:
            lines.append("")
        lines.append(",".join(f"{int(v)}" if j == 0 else f"{v:.2f}" for j, v in enumerate(r)))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(autouse=True)
def _fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBOT_CACHE_DIR", str(tmp_path / "cache"))
    klinecsv.parse_ohlc_cached.cache_clear()


def test_a_clean_file_has_no_issues_and_exact_repeats_are_silent(tmp_path: Path) -> None:
    rows = walk(2000)
    assert file_issues(write(tmp_path / "a.csv", rows)) == ()
    again = rows[:101] + [list(rows[100])] + rows[101:]  # the same row twice, in place
    assert file_issues(write(tmp_path / "b.csv", again)) == ()


def test_each_kind_is_reported_with_its_line(tmp_path: Path) -> None:
    rows = walk(2000)
    spike = list(rows[1500])
    spike[2] = spike[4] = spike[4] * 10_000  # high and close x10000, then back
    rows[1500] = spike
    dup = list(rows[700])
    dup[4] += 1.0
    rows.insert(701, dup)  # conflicting duplicate of the bar before it
    rows[300], rows[301] = rows[301], rows[300]  # one pair out of order
    p = write(tmp_path / "x.csv", rows, blanks=(50,))  # a blank line shifts later line numbers
    got = {x.kind: x for x in file_issues(p)}
    assert set(got) == {"out_of_order", "conflicting_duplicate", "outlier"}
    # line = 1-based row index + 1 header + 1 blank
    assert got["out_of_order"].line == 302 + 2
    assert "earlier than line 303" in got["out_of_order"].detail
    assert got["conflicting_duplicate"].line == 702 + 2
    assert "differs from line 703" in got["conflicting_duplicate"].detail
    assert got["conflicting_duplicate"].action == "line 703 kept"
    assert got["outlier"].line == 1502 + 2 and got["outlier"].open_time == rows[1501][0]
    assert "robust deviations" in got["outlier"].detail
    text = str(got["outlier"])
    assert str(p) in text and "line 1504" in text and "2025-01-06T05:00:00Z" in text
    # the first duplicate is what the bars hold; the file is sorted; the outlier kept
    bars = load_kline_csv(p, "BTCUSDT", "futures")
    assert len(bars) == 2000 and float(bars.close[700]) == rows[700][4]
    assert float(bars.high.max()) > 1e6


def test_a_crash_that_stays_down_is_not_an_outlier(tmp_path: Path) -> None:
    rows = walk(2000)
    for r in rows[1000:]:
        for j in (1, 2, 3, 4):
            r[j] = round(r[j] * 0.6, 2)  # -40 % in one bar, and it stays there
    rows[1000][1] = rows[999][4]
    rows[1000][2] = rows[999][4] + 1
    assert file_issues(write(tmp_path / "c.csv", rows)) == ()


def test_issues_survive_the_disk_cache(tmp_path: Path) -> None:
    rows = walk(600)
    rows[300][3] = rows[300][4] / 5  # a low of a fifth of the price: an impossible wick
    p = write(tmp_path / "w.csv", rows)
    first = file_issues(p)
    assert [x.kind for x in first] == ["outlier"] and "low" in first[0].detail
    klinecsv.parse_ohlc_cached.cache_clear()  # next read comes from the disk cache
    assert file_issues(p) == first
    assert list((tmp_path / "cache" / "klines").glob("*.issues.json"))


def test_in_range_filters_by_open_time() -> None:
    a = dq.DataIssue("outlier", "f", 3, 100, "d", "kept")
    b = dq.DataIssue("outlier", "f", 4, 200, "d", "kept")
    assert dq.in_range([a, b], 150, None) == [b]
    assert dq.in_range([a, b], None, 200) == [a]
