"""Seeded synthetic 1m klines and BTCUSDT-like filters for the runner tests (no test here)."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np

from models import messages as m
from models.filters import SymbolFilters

SYM = "BTCUSDT"
FILTERS = SymbolFilters(symbol=SYM, base_asset="BTC", quote_asset="USDT", tick_size=D("0.1"),
                        min_price=D("0.1"), max_price=D("1000000"), step_size=D("0.001"),
                        min_qty=D("0.001"), max_qty=D("1000"), market_step_size=D("0.001"),
                        market_min_qty=D("0.001"), market_max_qty=D("120"),
                        min_notional=D("5"), price_precision=1, qty_precision=3)


def klines(n: int, seed: int = 7) -> list[m.KlineClosed]:
    rng = np.random.default_rng(seed)
    c = 60_000 * np.exp(np.cumsum(rng.normal(0, 1e-3, n)))
    o = np.concatenate([[60_000.0], c[:-1]])
    t0 = 1_735_689_600_000
    out = []
    for i in range(n):
        hi = max(o[i], c[i]) * (1 + abs(rng.normal(0, 4e-4)))
        lo = min(o[i], c[i]) * (1 - abs(rng.normal(0, 4e-4)))
        ot = t0 + i * 60_000
        out.append(m.KlineClosed(symbol=SYM, interval="1m", open_time_ms=ot,
                                 close_time_ms=ot + 59_999, open=float(o[i]), high=float(hi),
                                 low=float(lo), close=float(c[i]),
                                 volume=float(rng.lognormal(3, 0.4)),
                                 ts_event_ns=(ot + 59_999) * 1_000_000))
    return out
