"""Static grid baseline: fixed levels and sizes around the start price, TP one step away."""

from __future__ import annotations

from decimal import Decimal

import pytest

from models.enums import Market, Side
from models.strategy import (
    MarketView,
    PositionView,
    RiskInputs,
    StaticGridParams,
    StrategyParams,
    make_strategy,
)

P = StrategyParams(kind="static_grid", static_grid=StaticGridParams(spacing_pct=0.01, levels=3,
                                                                    order_quote=100.0))
RISK = RiskInputs(max_long_notional=1000.0, max_short_notional=1000.0, equity=2000.0)


def test_levels_sizes_and_tp_one_step_away(filters):
    s = make_strategy(P, "BTCUSDT", 60_000)
    d = s.plan(MarketView(last_price=100.0), PositionView(), [], RISK, filters, Market.SPOT)
    assert [(o.key, o.side, o.price) for o in d] == [
        ("L-1", Side.BUY, Decimal("99.00")), ("L-2", Side.BUY, Decimal("98.00")),
        ("L-3", Side.BUY, Decimal("97.00"))]
    assert [o.qty for o in d] == [Decimal("1.01010"), Decimal("1.02040"), Decimal("1.03092")]
    # start price is fixed: later plans keep the same levels
    d2 = s.plan(MarketView(last_price=103.0), PositionView(), [], RISK, filters, Market.SPOT)
    assert [o.price for o in d2] == [o.price for o in d]
    s.on_fill(Side.BUY, d[1].price, d[1].qty, "ENTRY", 5, key="L-2")
    d3 = s.plan(MarketView(last_price=98.0), PositionView(), [], RISK, filters, Market.SPOT)
    tp = [o for o in d3 if o.kind == "TP"]
    assert len(tp) == 1 and tp[0].key == "TP-L-2" and tp[0].side is Side.SELL
    assert tp[0].price == Decimal("98.98") and tp[0].qty == d[1].qty
    assert "L-2" not in {o.key for o in d3}
    # the TP fills: the level is re-armed
    s.on_fill(Side.SELL, tp[0].price, tp[0].qty, "TP", 6)  # no key: matched by price
    d4 = s.plan(MarketView(last_price=99.5), PositionView(), [], RISK, filters, Market.SPOT)
    assert {o.key for o in d4} == {"L-1", "L-2", "L-3"}


def test_futures_both_sides_and_risk_inputs(filters):
    s = make_strategy(P, "BTCUSDT", 60_000)
    d = s.plan(MarketView(last_price=100.0), PositionView(), [], RISK, filters, Market.FUTURES)
    assert {o.key for o in d} == {"L-1", "L-2", "L-3", "S1", "S2", "S3"}
    sells = sorted((o for o in d if o.side is Side.SELL), key=lambda o: o.price)
    assert [o.price for o in sells] == [Decimal("101.00"), Decimal("102.00"), Decimal("103.00")]
    half = RiskInputs(max_long_notional=1000.0, max_short_notional=1000.0, size_factor=0.5)
    d2 = s.plan(MarketView(last_price=100.0), PositionView(), [], half, filters, Market.FUTURES)
    for a, b in zip(d, d2, strict=True):
        assert float(b.qty) / float(a.qty) == pytest.approx(0.5, rel=2e-3)
    halt = RiskInputs(max_long_notional=1000.0, max_short_notional=1000.0,
                      entries_allowed=False)
    assert s.plan(MarketView(last_price=100.0), PositionView(), [], halt, filters,
                  Market.FUTURES) == []
    small = RiskInputs(max_long_notional=250.0, max_short_notional=0.0)
    d3 = s.plan(MarketView(last_price=100.0), PositionView(), [], small, filters,
                Market.FUTURES)
    assert [o.key for o in d3] == ["L-1", "L-2"]


def test_static_values_and_warm(bars_of, synth_rows):
    s = make_strategy(P, "BTCUSDT", 60_000)
    v = None
    for b in bars_of(synth_rows(30), 60_000):
        v = s.on_bar(b)
    assert s.warm and v is not None and v.L == 0.0 and v.S == 0.0 and v.atr > 0


def test_memoised_plan_follows_market_side(filters):
    s = make_strategy(P, "BTCUSDT", 60_000)
    s.plan(MarketView(last_price=100.0), PositionView(), [], RISK, filters, Market.FUTURES)
    below = s.plan(MarketView(last_price=97.5), PositionView(), [], RISK, filters, Market.FUTURES)
    above = s.plan(MarketView(last_price=102.5), PositionView(), [], RISK, filters,
                   Market.FUTURES)
    assert {o.key for o in below} == {"L-3", "S1", "S2", "S3"}  # L-1, L-2 are above the market
    assert {o.key for o in above} == {"L-1", "L-2", "L-3", "S3"}
    again = s.plan(MarketView(last_price=97.5), PositionView(), [], RISK, filters,
                   Market.FUTURES)
    assert again == below
