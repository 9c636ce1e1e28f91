"""The parsed-kline disk cache: a hit returns exactly what parsing gives; a changed file is
parsed afresh; a corrupt cache entry is ignored and replaced; ``off`` disables it."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from exchange_sim import marketdata as md
from exchange_sim.klinecsv import parse_ohlc_cached
from models.enums import Market

ROWS = ["open_time,open,high,low,close,volume"] + [
    f"{1_700_000_100_000 + 60_000 * i},{100 + i},{101 + i},{99 + i},{100.5 + i},{10 + i}"
    for i in range(50)]


def _load(path: Path) -> md.Bars:
    parse_ohlc_cached.cache_clear()
    return md.load_kline_csv(path, "BTCUSDT", Market.SPOT)


def test_disk_cache_round_trip_and_invalidation(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBOT_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "k.csv"
    f.write_text("\n".join(ROWS) + "\n")
    a = _load(f)
    files = list((tmp_path / "cache" / "klines").glob("*.npy"))
    assert len(files) == 1
    b = _load(f)  # from the disk cache
    for col in ("open_time", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(a, col), getattr(b, col))
        assert getattr(a, col).dtype == getattr(b, col).dtype
    # a changed file (new size and mtime) is parsed afresh
    f.write_text("\n".join(ROWS[:-1]) + "\n")
    os.utime(f, ns=(1, 2))
    assert len(_load(f)) == 49
    # a corrupt entry is ignored (and replaced)
    for p in (tmp_path / "cache" / "klines").glob("*.npy"):
        p.write_bytes(b"garbage")
    assert len(_load(f)) == 49
    assert len(_load(f)) == 49


def test_disk_cache_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBOT_CACHE_DIR", "off")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    f = tmp_path / "k.csv"
    f.write_text("\n".join(ROWS) + "\n")
    assert len(_load(f)) == 50
    assert not (tmp_path / ".cache").exists()


def test_bad_file_still_reported_with_cache(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDBOT_CACHE_DIR", str(tmp_path / "cache"))
    f = tmp_path / "bad.csv"
    f.write_text("\n".join(ROWS[:5] + ["1700000400000,1,2,x,1,1"]) + "\n")
    with pytest.raises(md.DataError, match="bad.csv"):
        _load(f)
