"""Walk-forward window splitting and equity chaining."""

from __future__ import annotations

import pytest

from models.walkforward import DAY_MS, WalkForwardError, chain_equity, parse_spec, windows

T0 = 1_735_689_600_000  # 2025-01-01


def test_parse_spec() -> None:
    assert parse_spec("30:7") == (30, 7)
    assert parse_spec(" 5:1 ") == (5, 1)
    for bad in ("30", "30:0", "a:b", "0:7", "1:2:3"):
        with pytest.raises(WalkForwardError):
            parse_spec(bad)


def test_windows_roll_by_test_length_and_never_overlap_tests() -> None:
    ws = windows(T0, T0 + 50 * DAY_MS, 30, 7)
    assert [w.index for w in ws] == [0, 1, 2]
    assert ws[0].train_start == T0 and ws[0].train_end == T0 + 30 * DAY_MS
    for w in ws:
        assert w.train_end == w.test_start
        assert w.train_end - w.train_start == 30 * DAY_MS
        assert w.test_end <= T0 + 50 * DAY_MS
    for a, b in zip(ws, ws[1:], strict=False):
        assert a.test_end == b.test_start  # tests tile the range after the first train window
    # 50 days = 30 train + 7 + 7 + 6 (last window cut at the end)
    assert ws[-1].test_end - ws[-1].test_start == 6 * DAY_MS


def test_windows_drop_a_final_stub_shorter_than_a_day() -> None:
    ws = windows(T0, T0 + 37 * DAY_MS + DAY_MS // 2, 30, 7)
    assert len(ws) == 1 and ws[0].test_end == T0 + 37 * DAY_MS


def test_windows_too_short_range_is_an_error() -> None:
    with pytest.raises(WalkForwardError, match="at least 30 train days"):
        windows(T0, T0 + 30 * DAY_MS, 30, 7)
    with pytest.raises(WalkForwardError):
        windows(T0, T0, 1, 1)


def test_chain_equity_compounds_fold_returns() -> None:
    f1 = [(1, 100.0), (2, 110.0)]           # +10 %
    f2 = [(3, 1000.0), (4, 500.0)]          # -50 %
    out = chain_equity([f1, [], f2], 200.0)
    assert out[0] == (1, 200.0)
    assert out[1] == (2, pytest.approx(220.0))
    assert out[2] == (3, pytest.approx(220.0))
    assert out[3] == (4, pytest.approx(110.0))
