"""Benchmark of the embedded exchange's matching engine; prints one JSON line of figures.

* ``idle_bars_per_s``: spot bars that reach none of a handful of resting orders (fast path).
* ``idle_futures_pos_bars_per_s``: the same on futures with an open position (liquidation bound
  in the fast path) and the mark following the last price.
* ``grid_bars_per_s``: a 20-level spot grid (0.2 % spacing) re-armed as it trades: every fill
  places the opposite order one level away; prices mean-revert around the grid so it keeps
  trading. Also reports fills and orders placed.
* ``place_cancel_per_s``: resting limit orders placed and cancelled (pairs per second).

Prices are a seeded random walk (deterministic); run ``python -m bench.engine_bench [--bars N]``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from decimal import Decimal

from exchange_sim.engine import Engine, FillConfig, OrderEvent
from models.enums import Market, OrderType, Side, TimeInForce

D = Decimal
SYM = "BTCUSDT"


def _bars(n: int, seed: int, start: float = 30000.0, vol: float = 0.002,
          revert: float = 0.0) -> list[tuple]:
    """Seeded random-walk klines (open, high, low, close, volume), 1-minute spacing;
    ``revert`` > 0 pulls the log price back towards ``start`` (Ornstein-Uhlenbeck)."""
    rng = random.Random(seed)
    out = []
    p = start
    for i in range(n):
        o = p
        c = o * math.exp(rng.gauss(0.0, vol) - revert * math.log(o / start))
        h = max(o, c) * (1 + abs(rng.gauss(0.0, vol / 2)))
        lo = min(o, c) * (1 - abs(rng.gauss(0.0, vol / 2)))
        out.append((i * 60_000, i * 60_000 + 59_999, round(o, 2), round(h, 2), round(lo, 2),
                    round(c, 2), 50.0))
        p = c
    return out


def _idle(n: int) -> float:
    eng = Engine(Market.SPOT)
    eng.create_account("a", {"USDT": D(10_000_000), "BTC": D(100)})
    eng.set_last_price(SYM, D("30000"), 0)
    for k in range(3):
        eng.place_order("a", SYM, Side.BUY, OrderType.LIMIT, qty=D("0.01"), price=D(1000 + k),
                        tif=TimeInForce.GTC, ts_ms=0)
        eng.place_order("a", SYM, Side.SELL, OrderType.LIMIT, qty=D("0.01"),
                        price=D(900_000 + k), tif=TimeInForce.GTC, ts_ms=0)
    bars = [(t0, t1, 30000.0 + (i % 7), 30010.0 + (i % 5), 29990.0 - (i % 3), 30001.0, 10.0)
            for i, (t0, t1, *_r) in enumerate(_bars(n, 1))]
    on_bar = eng.on_bar
    t = time.perf_counter()
    for b in bars:
        on_bar(SYM, *b)
    return n / (time.perf_counter() - t)


def _idle_futures(n: int) -> float:
    eng = Engine(Market.FUTURES)
    eng.create_account("a", {"USDT": D(100_000)})
    eng.set_last_price(SYM, D("30000"), 0)
    eng.place_order("a", SYM, Side.BUY, OrderType.MARKET, qty=D("1"), ts_ms=0)
    eng.place_order("a", SYM, Side.SELL, OrderType.LIMIT, qty=D("1"), price=D("90000"),
                    tif=TimeInForce.GTC, reduce_only=True, ts_ms=0)
    bars = [(t0, t1, 30000.0 + (i % 7), 30010.0 + (i % 5), 29990.0 - (i % 3), 30001.0, 10.0)
            for i, (t0, t1, *_r) in enumerate(_bars(n, 2))]
    on_bar = eng.on_bar
    t = time.perf_counter()
    for b in bars:
        on_bar(SYM, *b)
    return n / (time.perf_counter() - t)


def _grid(n: int) -> dict[str, float]:
    eng = Engine(Market.SPOT, fill=FillConfig(max_volume_share=0.5))
    eng.create_account("g", {"USDT": D(10_000_000), "BTC": D(100)})
    eng.set_last_price(SYM, D("30000"), 0)
    step = D("0.002")
    qty = D("0.01")
    levels = {}

    def price_of(k: int) -> Decimal:
        return (D(30000) * (1 + step) ** k).quantize(D("0.01"))

    placed = 0
    for k in range(1, 11):
        for kk, side in ((-k, Side.BUY), (k, Side.SELL)):
            o, _ = eng.place_order("g", SYM, side, OrderType.LIMIT, qty=qty, price=price_of(kk),
                                   tif=TimeInForce.GTC, ts_ms=0)
            levels[o.order_id] = kk
            placed += 1
    fills = 0
    bars = _bars(n, 3, revert=0.01)
    t = time.perf_counter()
    for b in bars:
        evs = eng.on_bar(SYM, *b)
        while evs:  # a re-armed order can fill at once (the close is past it): handle that too
            more = []
            for ev in evs:
                if isinstance(ev, OrderEvent) and ev.exec_type == "TRADE":
                    fills += 1
                    if ev.order.status == "FILLED":
                        k = levels.pop(ev.order.order_id)
                        nk, side = (k + 1, Side.SELL) if ev.order.side is Side.BUY else \
                            (k - 1, Side.BUY)
                        o, new = eng.place_order("g", SYM, side, OrderType.LIMIT, qty=qty,
                                                 price=price_of(nk), tif=TimeInForce.GTC,
                                                 ts_ms=b[1])
                        levels[o.order_id] = nk
                        placed += 1
                        more += new
            evs = more
    dt = time.perf_counter() - t
    return {"grid_bars_per_s": n / dt, "grid_fills": fills, "grid_orders": placed}


def _place_cancel(n: int) -> float:
    eng = Engine(Market.SPOT)
    eng.create_account("a", {"USDT": D(10_000_000), "BTC": D(100)})
    eng.set_last_price(SYM, D("30000"), 0)
    t = time.perf_counter()
    for i in range(n):
        o, _ = eng.place_order("a", SYM, Side.BUY, OrderType.LIMIT, qty=D("0.01"),
                               price=D("29000"), tif=TimeInForce.GTC, ts_ms=i)
        eng.cancel_order("a", SYM, order_id=o.order_id, ts_ms=i)
    return n / (time.perf_counter() - t)


def main() -> None:
    """Run all measurements and print one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--grid-bars", type=int, default=50_000)
    ap.add_argument("--orders", type=int, default=20_000)
    a = ap.parse_args()
    out: dict[str, float] = {
        "idle_bars_per_s": _idle(a.bars),
        "idle_futures_pos_bars_per_s": _idle_futures(a.bars),
        **_grid(a.grid_bars),
        "place_cancel_per_s": _place_cancel(a.orders),
    }
    print(json.dumps({k: round(v, 1) if isinstance(v, float) else v for k, v in out.items()}))


if __name__ == "__main__":
    main()
