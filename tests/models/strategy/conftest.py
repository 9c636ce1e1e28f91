"""Shared fixtures for the strategy tests: real-data loader, synthetic bars, symbol filters."""

from __future__ import annotations

import gzip
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from models.filters import SymbolFilters
from models.strategy.types import Bar


def _data_dir() -> Path:
    from exchange_sim.marketdata import default_data_dir

    d = default_data_dir()
    return (Path(d) if d is not None else Path("/nonexistent")) / "klines"


DATA = _data_dir()
_cache: dict[str, np.ndarray] = {}


def _load(rel: str) -> np.ndarray:
    path = DATA / rel
    if not path.exists():
        pytest.skip(f"market data {path} not available")
    if rel not in _cache:
        with gzip.open(path, "rt") as fh:
            _cache[rel] = np.loadtxt(fh, delimiter=",", skiprows=1)
    return _cache[rel]


@pytest.fixture
def load_klines():
    """Function rel_path -> (N, 6) array of open_time, o, h, l, c, v (skips if absent)."""
    return _load


def to_bars(a: np.ndarray, interval_ms: int) -> list[Bar]:
    """Array rows -> Bar objects."""
    return [Bar(int(r[0]), int(r[0]) + interval_ms - 1, float(r[1]), float(r[2]), float(r[3]),
                float(r[4]), float(r[5])) for r in a]


@pytest.fixture
def bars_of():
    """Function (array, interval_ms) -> list[Bar]."""
    return to_bars


def synth(n: int, seed: int = 1, start_ms: int = 1_600_000_000_000 - 1_600_000_000_000 % 86_400_000,
          interval_ms: int = 60_000, price: float = 100.0, vol: float = 0.0008,
          drift: list[float] | None = None) -> np.ndarray:
    """Seeded random-walk OHLCV rows; ``drift`` (len n) adds a per-bar log-return."""
    rng = np.random.default_rng(seed)
    r = rng.normal(0.0, vol, n)
    if drift is not None:
        r = r + np.asarray(drift)
    c = price * np.exp(np.cumsum(r))
    o = np.concatenate([[price], c[:-1]])
    span = np.abs(rng.normal(0.0, vol, n)) * c
    h = np.maximum(o, c) + span
    lo = np.minimum(o, c) - span
    v = rng.lognormal(3.0, 0.5, n)
    t = start_ms + interval_ms * np.arange(n)
    return np.column_stack([t, o, h, lo, c, v])


@pytest.fixture
def synth_rows():
    """The ``synth`` generator."""
    return synth


def make_filters(tick: str = "0.01", step: str = "0.00001", min_notional: str = "5") -> SymbolFilters:
    """BTCUSDT-like filters."""
    return SymbolFilters(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT",
                         tick_size=Decimal(tick), min_price=Decimal(tick),
                         max_price=Decimal("10000000"), step_size=Decimal(step),
                         min_qty=Decimal(step), max_qty=Decimal("9000"),
                         market_step_size=Decimal(step), market_min_qty=Decimal(step),
                         market_max_qty=Decimal("100"), min_notional=Decimal(min_notional),
                         price_precision=2, qty_precision=5)


@pytest.fixture
def filters() -> SymbolFilters:
    """BTCUSDT-like filters (tick 0.01, step 0.00001, min notional 5)."""
    return make_filters()
