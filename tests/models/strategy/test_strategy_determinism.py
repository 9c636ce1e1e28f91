"""No look-ahead, determinism, and snapshot/restore to bit-identical behaviour."""

from __future__ import annotations

import numpy as np
import pytest

from models.enums import Market
from models.strategy import (
    MarketView,
    OpenOrderView,
    PositionView,
    RiskInputs,
    StrategyParams,
    make_strategy,
    restore_strategy,
)
from models.strategy.params import StaticGridParams

BTC_1M = "spot/BTCUSDT/BTCUSDT-1m-20210917-20211017.csv.gz"
RISK = RiskInputs(max_long_notional=5000.0, max_short_notional=5000.0, equity=10000.0)


def _trace(v):
    if v is None:
        return None
    return (v.b_up, v.c_up, v.b_down, v.c_down, v.b_neu, v.c_neu, v.L, v.S, v.features, v.atr,
            v.long_ok, v.short_ok)


def test_no_look_ahead_perturbing_future_bars(load_klines, bars_of):
    rows = load_klines(BTC_1M)[:2600]
    k = 2000
    s1 = make_strategy(StrategyParams(), "X", 60_000)
    base = [_trace(s1.on_bar(b)) for b in bars_of(rows, 60_000)]
    rng = np.random.default_rng(11)
    pert = rows.copy()
    scale = rng.uniform(0.8, 1.25, (len(rows) - k, 1))
    pert[k:, 1:5] *= scale  # future prices scaled (OHLC together), volumes shuffled
    pert[k:, 5] = rng.permutation(pert[k:, 5]) * 3.0
    s2 = make_strategy(StrategyParams(), "X", 60_000)
    other = [_trace(s2.on_bar(b)) for b in bars_of(pert, 60_000)]
    assert base[:k] == other[:k]  # bit-identical past
    assert base[k:] != other[k:]  # and the perturbation does matter afterwards
    assert base[k - 1] is not None


def _drive(s, bars, filters, market_type, start_pos=None):
    """Bars -> plans -> simulated fills, recording everything the strategy outputs."""
    out = []
    pos_qty = start_pos[0] if start_pos else 0
    pos_px = start_pos[1] if start_pos else 0
    open_: list[OpenOrderView] = []
    from decimal import Decimal
    pos_qty = Decimal(pos_qty)
    pos_px = Decimal(pos_px)
    for b in bars:
        v = s.on_bar(b)
        out.append(_trace(v))
        # fill any resting order the bar traded through (simple touch model)
        still = []
        for o in open_:
            hit = (o.side.value == "BUY" and b.low < float(o.price)) or \
                  (o.side.value == "SELL" and b.high > float(o.price))
            if hit:
                s.on_fill(o.side, o.price, o.qty, o.kind, b.close_time_ms, key=o.key)
                signed = o.qty if o.side.value == "BUY" else -o.qty
                if o.kind == "ENTRY":
                    tot = pos_qty + signed
                    if pos_qty == 0 or (pos_qty > 0) == (signed > 0):
                        pos_px = (pos_px * abs(pos_qty) + o.price * o.qty) / abs(tot)
                    pos_qty = tot
                else:
                    pos_qty += signed
                    if pos_qty == 0:
                        pos_px = Decimal(0)
                out.append(("fill", o.key, str(o.price), str(o.qty)))
            else:
                still.append(o)
        open_ = still
        acts = s.plan_actions(MarketView(last_price=b.close, ts_ms=b.close_time_ms),
                              PositionView(qty=pos_qty, entry_price=pos_px), open_, RISK,
                              filters, market_type)
        gone = {o.client_order_id for o, _r in acts.cancel}
        gone |= {o.client_order_id for o, _d in acts.modify}
        open_ = [o for o in open_ if o.client_order_id not in gone]
        for d in list(acts.place) + [d for _o, d in acts.modify]:
            if d.order_type.value == "MARKET":
                s.on_fill(d.side, Decimal(repr(b.close)), d.qty, d.kind, b.close_time_ms)
                pos_qty += d.qty if d.side.value == "BUY" else -d.qty
                if pos_qty == 0:
                    pos_px = Decimal(0)
                continue
            open_.append(OpenOrderView(key=d.key, client_order_id=f"{d.key}@{b.open_time_ms}",
                                       side=d.side, price=d.price, qty=d.qty, kind=d.kind,
                                       reduce_only=d.reduce_only, order_type=d.order_type))
        out.append(("acts", tuple((d.key, str(d.price), str(d.qty)) for d in acts.place),
                    tuple((o.key, d.key, str(d.price)) for o, d in acts.modify),
                    tuple((o.key, r) for o, r in acts.cancel)))
    return out, (pos_qty, pos_px), open_


@pytest.mark.parametrize("kind, market_type", [("adaptive", Market.FUTURES),
                                               ("adaptive", Market.SPOT),
                                               ("static_grid", Market.FUTURES)])
def test_snapshot_restore_is_bit_identical(kind, market_type, load_klines, bars_of, filters):
    params = StrategyParams(kind=kind, static_grid=StaticGridParams(spacing_pct=0.002))
    bars = bars_of(load_klines(BTC_1M)[:3200], 60_000)
    k = 2400
    s = make_strategy(params, "BTCUSDT", 60_000)
    head, pos, open_ = _drive(s, bars[:k], filters, market_type)
    blob = s.snapshot()
    assert isinstance(blob, bytes)
    tail_a, *_ = _drive(s, bars[k:], filters, market_type, pos)
    r = restore_strategy(params, blob)
    assert r.snapshot() == blob
    tail_b, *_ = _drive(r, bars[k:], filters, market_type, pos)
    assert tail_a == tail_b
    fills = [x for x in head + tail_a if x and x[0] == "fill"]
    assert fills, "the scenario should trade"
    # same inputs from scratch: same outputs (no hidden randomness)
    s2 = make_strategy(params, "BTCUSDT", 60_000)
    head2, *_ = _drive(s2, bars[:k], filters, market_type)
    assert head2 == head


def test_restore_rejects_other_kind():
    s = make_strategy(StrategyParams(kind="static_grid"), "X", 60_000)
    with pytest.raises(ValueError):
        restore_strategy(StrategyParams(), s.snapshot())


def test_bars_must_advance(load_klines, bars_of):
    s = make_strategy(StrategyParams(), "X", 60_000)
    bars = bars_of(load_klines(BTC_1M)[:3], 60_000)
    s.on_bar(bars[0])
    s.on_bar(bars[1])
    with pytest.raises(ValueError):
        s.on_bar(bars[1])
