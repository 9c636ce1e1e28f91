"""Strategy-core throughput: one closed bar -> StrategyValues -> desired orders, one symbol.

Prints one JSON line. Uses real BTCUSDT 1m bars from ../shared/data when present (else a
seeded synthetic walk); the warm-up bars are processed before timing starts.
Run: ``python -m bench.strategy_bench [--bars N]``.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from decimal import Decimal
from pathlib import Path

import msgspec
import numpy as np

from exchange_sim.marketdata import default_data_dir
from models import messages as m
from models.enums import Market
from models.filters import SymbolFilters
from models.strategy import (
    Bar,
    MarketView,
    PositionView,
    RiskInputs,
    StrategyParams,
    make_strategy,
)
from models.strategy.runner import StrategyRunner

_ROOT = default_data_dir() or Path("/nonexistent")
DATA = Path(_ROOT) / "klines/spot/BTCUSDT/BTCUSDT-1m-20210917-20211017.csv.gz"


def _rows(n: int) -> tuple[np.ndarray, str]:
    if DATA.exists():
        with gzip.open(DATA, "rt") as fh:
            a = np.loadtxt(fh, delimiter=",", skiprows=1)
        return a[:n], DATA.name
    rng = np.random.default_rng(1)
    c = 40_000 * np.exp(np.cumsum(rng.normal(0, 8e-4, n)))
    o = np.concatenate([[c[0]], c[:-1]])
    t = 1_600_000_020_000 - 1_600_000_020_000 % 60_000 + 60_000 * np.arange(n)
    return np.column_stack([t, o, np.maximum(o, c) * 1.0003, np.minimum(o, c) * 0.9997, c,
                            rng.lognormal(3, 0.5, n)]), "synthetic"


def _runner_us(kind: str, rows: np.ndarray, filters: SymbolFilters) -> float:
    """us per KlineClosed through a ready ``StrategyRunner`` (futures), as the strategy actor
    runs it: commands applied to a minimal OMS stand-in (placed at once, never filled), open
    orders reported when they change."""

    params = StrategyParams(kind=kind)
    r = StrategyRunner(params, "BTCUSDT", Market.FUTURES, 0.45, 0.3, 5.0, 60_000)
    warm = 1500
    r.history([m.KlineRow(int(x[0]), int(x[0]) + 59_999, float(x[1]), float(x[2]),
                          float(x[3]), float(x[4]), float(x[5])) for x in rows[:warm]])
    r.on_filters(filters)
    r.on_reconciled()
    r.on_equity(m.EquityUpdated(equity=Decimal(10_000), peak_equity=Decimal(10_000),
                                drawdown=0.0, leverage=0.0, leverage_cap=5.0))
    ks = [m.KlineClosed(symbol="BTCUSDT", interval="1m", open_time_ms=int(x[0]),
                        close_time_ms=int(x[0]) + 59_999, open=float(x[1]), high=float(x[2]),
                        low=float(x[3]), close=float(x[4]), volume=float(x[5]),
                        ts_event_ns=(int(x[0]) + 59_999) * 1_000_000) for x in rows[warm:]]
    open_rows: dict[str, m.OpenOrderRow] = {}
    seq = 0
    spent = 0.0
    on_kline = r.on_kline
    for k in ks:
        t0 = time.perf_counter()
        _v, cmds = on_kline(k)
        spent += time.perf_counter() - t0
        for c in cmds:
            if isinstance(c, m.PlaceOrder):
                seq += 1
                cid = f"c{seq}"
                r.on_placed(m.OrderPlaced(client_order_id=cid, key=c.key, side=c.side,
                                          order_type=c.order_type, price=c.price, qty=c.qty))
                if c.price is not None:
                    open_rows[cid] = m.OpenOrderRow(client_order_id=cid, key=c.key,
                                                    side=c.side, price=c.price, qty=c.qty,
                                                    kind=c.kind, reduce_only=c.reduce_only)
            elif isinstance(c, m.ModifyOrder) and c.client_order_id in open_rows:
                open_rows[c.client_order_id] = msgspec.structs.replace(
                    open_rows[c.client_order_id], price=c.price, qty=c.qty)
            elif isinstance(c, m.CancelOrder):
                open_rows.pop(c.client_order_id, None)
        if cmds:
            r.on_open_orders(m.OpenOrdersReported(orders=list(open_rows.values())))
    return spent / len(ks) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=40_000)
    args = ap.parse_args()
    rows, source = _rows(args.bars)
    bars = [Bar(int(r[0]), int(r[0]) + 59_999, float(r[1]), float(r[2]), float(r[3]),
                float(r[4]), float(r[5])) for r in rows]
    mvs = [MarketView(last_price=b.close, ts_ms=b.close_time_ms) for b in bars]
    filters = SymbolFilters(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT",
                            tick_size=Decimal("0.01"), min_price=Decimal("0.01"),
                            max_price=Decimal("1000000"), step_size=Decimal("0.00001"),
                            min_qty=Decimal("0.00001"), max_qty=Decimal("9000"),
                            market_step_size=Decimal("0.00001"),
                            market_min_qty=Decimal("0.00001"), market_max_qty=Decimal("100"),
                            min_notional=Decimal("5"), price_precision=2, qty_precision=5)
    risk = RiskInputs(max_long_notional=10_000.0, max_short_notional=10_000.0, equity=10_000.0)
    pos = PositionView()
    out: dict[str, object] = {"bench": "strategy", "source": source}
    for kind in ("adaptive", "static_grid"):
        params = StrategyParams(kind=kind)
        warm_n = 1500
        res = {}
        for mode in ("on_bar", "on_bar+plan", "on_bar+plan_actions"):
            s = make_strategy(params, "BTCUSDT", 60_000)
            for b in bars[:warm_n]:
                s.on_bar(b)
            on_bar = s.on_bar
            plan = s.plan if mode == "on_bar+plan" else s.plan_actions
            n = len(bars) - warm_n
            t0 = time.perf_counter()
            if mode == "on_bar":
                for i in range(warm_n, len(bars)):
                    on_bar(bars[i])
            else:
                for i in range(warm_n, len(bars)):
                    on_bar(bars[i])
                    plan(mvs[i], pos, [], risk, filters, Market.FUTURES)
            dt = time.perf_counter() - t0
            res[mode] = round(n / dt)
        out[kind] = {f"{k}_steps_per_s": v for k, v in res.items()}
        out[kind]["bars"] = len(bars) - warm_n
        out[kind]["runner_on_kline_us"] = round(_runner_us(kind, rows, filters), 2)
    t0 = time.perf_counter()
    s = make_strategy(StrategyParams(), "BTCUSDT", 60_000)
    for b in bars[:3000]:
        s.on_bar(b)
    blob = s.snapshot()
    t1 = time.perf_counter()
    for _ in range(20):
        type(s).restore(StrategyParams(), blob)
    out["snapshot_bytes"] = len(blob)
    out["restore_ms"] = round((time.perf_counter() - t1) / 20 * 1000, 3)
    del t0
    print(json.dumps(out))


if __name__ == "__main__":
    main()
