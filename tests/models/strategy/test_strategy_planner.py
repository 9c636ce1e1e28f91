"""Order planning KPIs: TP LIMIT after an entry fill, re-centering by modify when > 4 ATR away,
entries skipped below the percentile (80 and 90), size halved by the risk size factor,
proximity cancellation, stop-loss (decay and hard), spot long-only, futures both sides."""

from __future__ import annotations

from decimal import Decimal

import pytest

from models.enums import Market, OrderType, Side
from models.strategy import (
    MarketView,
    OpenOrderView,
    PositionView,
    RiskInputs,
    StrategyParams,
    make_strategy,
)
from models.strategy.conviction import ConvictionFilter
from models.strategy.features import FEATURE_NAMES, NF
from models.strategy.params import ConvictionFilterParams
from models.strategy.planner import grid_spacing, tp_distance
from models.strategy.types import StrategyValues

P0 = 50_000.0
ATR = 100.0
RISK = RiskInputs(max_long_notional=5_000.0, max_short_notional=5_000.0, equity=10_000.0)
FLAT = PositionView()


def values(L=0.3, S=0.0, atr=ATR, long_ok=True, short_ok=True, close=P0, ts=0):
    return StrategyValues(ts, 0.5, 0.6, 0.1, 0.1, 0.0, 0.0, L, S, (0.0,) * NF, FEATURE_NAMES,
                          atr, 30.0, 0.0, 0.0, long_ok, short_ok, close)


def strat(params=None, **kw):
    s = make_strategy(params or StrategyParams(), "BTCUSDT", 60_000)
    s.last = values(**kw)
    return s


def mkt(price=P0):
    return MarketView(last_price=price, ts_ms=1)


def as_open(desired):
    return [OpenOrderView(key=d.key, client_order_id=f"c-{d.key}", side=d.side, price=d.price,
                          qty=d.qty, kind=d.kind, reduce_only=d.reduce_only,
                          order_type=d.order_type) for d in desired]


def entries(desired, side=None):
    return [d for d in desired if d.kind == "ENTRY" and (side is None or d.side is side)]


def test_grid_levels_are_passive_exact_and_filter_valid(filters):
    s = strat()
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    buys, sells = entries(d, Side.BUY), entries(d, Side.SELL)
    assert [o.key for o in buys] == ["L-1", "L-2", "L-3", "L-4", "L-5"]
    sp = grid_spacing(ATR, 0.0, 0.3, 0.0, StrategyParams())
    assert sp == pytest.approx(0.75 * ATR / 1.15)
    for k, o in enumerate(buys, start=1):
        assert isinstance(o.price, Decimal) and isinstance(o.qty, Decimal)
        assert float(o.price) <= P0 - k * sp < float(o.price) + 0.01  # rounded down (passive)
        filters.check(o.price, o.qty)
        assert o.order_type is OrderType.LIMIT and not o.reduce_only
        assert o.context["L"] == 0.3
    assert sells == []  # S = 0 is below min conviction: no short entries


def test_tp_limit_emitted_after_entry_fill(filters):
    s = strat(L=0.3)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    l1 = d[0]
    s.on_fill(Side.BUY, l1.price, l1.qty, "ENTRY", 2)
    pos = PositionView(qty=l1.qty, entry_price=l1.price)
    d2 = s.plan(mkt(float(l1.price)), pos, as_open(d[1:]), RISK, filters, Market.FUTURES)
    tp = [o for o in d2 if o.kind == "TP"]
    assert len(tp) == 1
    tp = tp[0]
    p = StrategyParams()
    dist = tp_distance(grid_spacing(ATR, 0.0, 0.3, 0.0, p), 0.3, p)
    assert dist == pytest.approx(0.75 * ATR / 1.15 * 1.3)
    assert tp.key == "TP-L" and tp.side is Side.SELL and tp.order_type is OrderType.LIMIT
    assert tp.reduce_only and tp.qty == l1.qty
    assert float(tp.price) >= float(l1.price) + dist > float(tp.price) - 0.01  # rounded up
    # the filled level is not bought again; the grid extends one level deeper
    keys = [o.key for o in entries(d2)]
    assert "L-1" not in keys and keys[0] == "L-2" and "L-6" in keys
    acts = s.plan_actions(mkt(float(l1.price)), pos, as_open(d[1:]), RISK, filters,
                          Market.FUTURES)
    assert {o.key for o in acts.place} == {"TP-L", "L-6"}
    assert not acts.modify and not acts.cancel


def test_tp_trails_outwards_while_conviction_holds_and_is_capped(filters):
    s = strat(L=0.3)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    s.on_fill(Side.BUY, d[0].price, d[0].qty, "ENTRY", 2)
    pos = PositionView(qty=d[0].qty, entry_price=d[0].price)
    tp1 = next(o for o in s.plan(mkt(), pos, [], RISK, filters, Market.FUTURES) if o.kind == "TP")
    s.last = values(L=0.9)
    tp2 = next(o for o in s.plan(mkt(), pos, [], RISK, filters, Market.FUTURES) if o.kind == "TP")
    assert tp2.price > tp1.price
    s.last = values(L=1.0, atr=1000.0)  # would be far beyond the cap
    tp3 = next(o for o in s.plan(mkt(), pos, [], RISK, filters, Market.FUTURES) if o.kind == "TP")
    init = float(tp1.price) - float(d[0].price)
    assert float(tp3.price) - float(d[0].price) <= 2.0 * init + 0.02
    s.last = values(L=0.05)  # conviction gone: TP does not come back in
    tp4 = next(o for o in s.plan(mkt(), pos, [], RISK, filters, Market.FUTURES) if o.kind == "TP")
    assert tp4.price == tp3.price
    # risk's tp_factor (drawdown level 1) shortens the distance
    r = RiskInputs(max_long_notional=5000.0, tp_factor=0.7)
    tp5 = next(o for o in s.plan(mkt(), pos, [], r, filters, Market.FUTURES) if o.kind == "TP")
    assert float(tp5.price) - float(d[0].price) == pytest.approx(0.7 * (float(tp4.price)
                                                                       - float(d[0].price)),
                                                                abs=0.02)


def test_orders_modified_when_more_than_4_atr_from_market(filters):
    s = strat()
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    open_ = as_open(entries(d))
    # 3 ATR up: nearest level ~3.65 ATR away -> nothing moves
    acts = s.plan_actions(mkt(P0 + 3 * ATR), FLAT, open_, RISK, filters, Market.FUTURES)
    assert acts.empty and len(acts.keep) == 5
    # 5 ATR up: nearest level > 4 ATR away -> the grid is re-centred by modifying orders
    acts = s.plan_actions(mkt(P0 + 5 * ATR), FLAT, open_, RISK, filters, Market.FUTURES)
    assert len(acts.modify) == 5 and not acts.place and not acts.cancel
    for old, new in acts.modify:
        assert old.key == new.key and "recenter" in new.reason
        assert float(new.price - old.price) == pytest.approx(5 * ATR, abs=0.02)
    # with max_modifies below the number of moved orders: cancel + replace instead
    s2 = strat(StrategyParams(max_modifies=2))
    d = s2.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    acts = s2.plan_actions(mkt(P0 + 5 * ATR), FLAT, as_open(entries(d)), RISK, filters,
                           Market.FUTURES)
    assert not acts.modify and len(acts.cancel) == 5 and len(acts.place) == 5
    assert all(r == "recenter_replace" for _o, r in acts.cancel)


@pytest.mark.parametrize("pct, allowed", [(80, True), (90, False)])
def test_entry_skipped_below_percentile_threshold(pct, allowed, filters):
    filt = ConvictionFilter(ConvictionFilterParams(percentile_threshold=pct, window_bars=100,
                                                   min_history_bars=50))
    for i in range(100):
        filt.update((i + 1) / 100.0, 0.0)  # history 0.01 .. 1.00
    long_ok, _ = filt.update(0.85, 0.0)  # the 85th percentile of its history
    assert long_ok is allowed
    s = strat(L=0.85, long_ok=long_ok)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    if allowed:
        assert len(entries(d, Side.BUY)) == 5
    else:
        assert entries(d, Side.BUY) == []
        assert ("L", "below_percentile") in s.last_plan.skipped


def test_percentile_filter_on_real_data(load_klines, bars_of):
    rows = load_klines("spot/BTCUSDT/BTCUSDT-5m-20201201-20210717.csv.gz")[:3000]
    shares = {}
    for pct in (80, 90):
        p = StrategyParams(conviction_filter=ConvictionFilterParams(percentile_threshold=pct,
                                                                    window_bars=288))
        s = make_strategy(p, "BTCUSDT", 300_000)
        hist: list[float] = []
        ok = []
        for b in bars_of(rows, 300_000):
            v = s.on_bar(b)
            if v is None:
                continue
            if len(hist) >= 60:
                w = sorted(hist[-288:])
                thr = w[int(pct / 100 * (len(w) - 1))]
                assert v.long_ok == (v.L >= thr and v.L >= 0.02)
            hist.append(v.L)
            ok.append(v.long_ok)
        shares[pct] = sum(ok) / len(ok)
    assert 0.02 < shares[90] < shares[80] < 0.3


def test_order_size_halves_with_risk_size_factor(filters):
    s = strat()
    full = entries(s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES))
    s = strat()
    half_risk = RiskInputs(max_long_notional=5000.0, max_short_notional=5000.0, size_factor=0.5)
    half = entries(s.plan(mkt(), FLAT, [], half_risk, filters, Market.FUTURES))
    assert [o.price for o in full] == [o.price for o in half]
    for a, b in zip(full, half, strict=True):
        assert abs(float(b.qty) / float(a.qty) - 0.5) < 0.001


def test_size_grows_with_conviction_and_budget_caps_levels(filters):
    lo = entries(strat(L=0.1).plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES))
    hi = entries(strat(L=0.9).plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES))
    assert float(hi[0].qty * hi[0].price) > float(lo[0].qty * lo[0].price)
    # base = budget / (levels * (1 + size_mult)): a full grid fits even at L = 1
    assert len(lo) == len(hi) == 5
    assert sum(float(o.qty * o.price) for o in hi) <= 5000.0
    # an open position uses the side budget: only the levels that still fit are placed
    s = strat(L=0.9)
    pos = PositionView(qty=Decimal("0.06"), entry_price=Decimal("50000"))  # 3000 USDT
    d = entries(s.plan(mkt(), pos, [], RISK, filters, Market.FUTURES))
    assert len(d) == 2 and ("L", "budget") in s.last_plan.skipped
    assert 3000.0 + sum(float(o.qty * o.price) for o in d) <= 5000.0


def test_proximity_cancellation_when_conviction_drops(filters):
    s = strat()
    d = entries(s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES))
    open_ = as_open(d)
    s.last = values(L=0.01, long_ok=False)
    acts = s.plan_actions(mkt(), FLAT, open_, RISK, filters, Market.FUTURES)
    # L-1 (~0.65 ATR away) is within proximity_atr = 1 ATR: cancelled; the others rest
    assert [(o.key, r) for o, r in acts.cancel] == [("L-1", "proximity")]
    assert {o.key for o in acts.keep} == {"L-2", "L-3", "L-4", "L-5"}
    assert not acts.place and not acts.modify


def test_stop_loss_on_conviction_decay(filters):
    p = StrategyParams()
    s = strat(L=0.5)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    s.on_fill("BUY", d[0].price, d[0].qty, "ENTRY", 3)
    pos = PositionView(qty=d[0].qty, entry_price=d[0].price)
    for i in range(p.sl_decay_bars):
        s.ps.on_values(0.1, 0.0, p)  # 0.1 < 0.3 * 0.5
        s.last = values(L=0.1, long_ok=False)
        out = s.plan(mkt(float(d[0].price)), pos, [], RISK, filters, Market.FUTURES)
        sl = [o for o in out if o.kind == "SL"]
        if i < p.sl_decay_bars - 1:
            assert sl == []
    assert len(sl) == 1
    sl = sl[0]
    assert sl.key == "SL-L" and sl.side is Side.SELL and sl.order_type is OrderType.MARKET
    assert sl.reduce_only and sl.qty == d[0].qty and sl.reason == "conviction_decay"
    assert not [o for o in out if o.kind == "TP"]
    # not re-sent on the next call of the same bar; entries blocked (cool-down)
    out = s.plan(mkt(float(d[0].price)), pos, [], RISK, filters, Market.FUTURES)
    assert [o for o in out if o.kind == "SL"] == []
    s.last = values(L=0.9)
    out = s.plan(mkt(float(d[0].price)), FLAT, [], RISK, filters, Market.FUTURES)
    assert entries(out) == [] and ("L", "cooldown") in s.last_plan.skipped


def test_hard_stop(filters):
    s = strat(L=0.5)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    s.on_fill("BUY", d[0].price, d[0].qty, "ENTRY", 3)
    pos = PositionView(qty=d[0].qty, entry_price=d[0].price)
    out = s.plan(mkt(float(d[0].price) - 5.9 * ATR), pos, [], RISK, filters, Market.FUTURES)
    assert not [o for o in out if o.kind == "SL"]
    out = s.plan(mkt(float(d[0].price) - 6.1 * ATR), pos, [], RISK, filters, Market.FUTURES)
    sl = [o for o in out if o.kind == "SL"]
    assert len(sl) == 1 and sl[0].reason == "hard_stop"


def test_spot_is_long_only_and_short_conviction_suppresses_longs(filters):
    s = strat(L=0.3, S=0.9)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.SPOT)
    assert entries(d) == [] and ("L", "short_dominates") in s.last_plan.skipped
    s = strat(L=0.3, S=0.2)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.SPOT)
    assert len(entries(d, Side.BUY)) == 5 and entries(d, Side.SELL) == []
    # spot TP: not reduce-only, tightened by S
    s.on_fill("BUY", d[0].price, d[0].qty, "ENTRY", 3)
    pos = PositionView(qty=d[0].qty, entry_price=d[0].price)
    tp = next(o for o in s.plan(mkt(), pos, [], RISK, filters, Market.SPOT) if o.kind == "TP")
    assert not tp.reduce_only
    p = StrategyParams()
    dist = tp_distance(grid_spacing(ATR, 0.0, 0.3, 0.0, p), 0.3, p) / (1 + 0.5 * 0.2)
    assert float(tp.price) - float(d[0].price) == pytest.approx(dist, abs=0.011)


def test_futures_trades_both_sides_but_not_against_the_position(filters):
    s = strat(L=0.3, S=0.4)
    d = s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES)
    sells = entries(d, Side.SELL)
    assert [o.key for o in sells] == ["S1", "S2", "S3", "S4", "S5"]
    assert all(float(o.price) > P0 for o in sells)
    long_pos = PositionView(qty=Decimal("0.01"), entry_price=Decimal("49900"))
    d = s.plan(mkt(), long_pos, [], RISK, filters, Market.FUTURES)
    assert entries(d, Side.SELL) == [] and ("S", "opposite_position") in s.last_plan.skipped


def test_risk_halt_cancels_all_entries(filters):
    s = strat()
    d = entries(s.plan(mkt(), FLAT, [], RISK, filters, Market.FUTURES))
    halt = RiskInputs(max_long_notional=5000.0, entries_allowed=False)
    acts = s.plan_actions(mkt(), FLAT, as_open(d), halt, filters, Market.FUTURES)
    assert len(acts.cancel) == 5 and all(r == "risk_halt" for _o, r in acts.cancel)


def test_safe_mode_minimum_conviction(filters):
    s = strat(L=0.5)
    r = RiskInputs(max_long_notional=5000.0, min_entry_conviction=0.8)
    assert entries(s.plan(mkt(), FLAT, [], r, filters, Market.FUTURES)) == []
    assert ("L", "safe_mode") in s.last_plan.skipped


def test_docs_worked_example(filters):
    from models.strategy.features import F_ATRPCT
    feats = [0.0] * NF
    feats[F_ATRPCT] = 0.2
    s = make_strategy(StrategyParams(), "BTCUSDT", 60_000)
    s.last = StrategyValues(0, 0.6, 0.5, 0.1, 0.3, 0.2, 0.4, 0.19, 0.0, tuple(feats),
                            FEATURE_NAMES, 120.0, 30.0, 0.0, 0.0, True, False, 60_000.0)
    m = MarketView(last_price=60_000.0, bid=59_999.99, ask=60_000.01, bid_qty=5.5, ask_qty=4.5)
    r = RiskInputs(max_long_notional=3_000.0)
    d = entries(s.plan(m, FLAT, [], r, filters, Market.FUTURES))
    assert [str(o.price) for o in d] == ["59912.77", "59825.55", "59738.32", "59651.10",
                                         "59563.87"]
    assert d[0].qty == Decimal("0.00676")
    assert d[0].context["size_quote"] == pytest.approx(405.4545, abs=1e-3)
    s.on_fill(Side.BUY, d[0].price, d[0].qty, "ENTRY", 1)
    pos = PositionView(qty=d[0].qty, entry_price=d[0].price)
    tp = next(o for o in s.plan(m, pos, [], r, filters, Market.FUTURES) if o.kind == "TP")
    assert str(tp.price) == "60016.57"
    half = RiskInputs(max_long_notional=3_000.0, size_factor=0.5)
    s2 = make_strategy(StrategyParams(), "BTCUSDT", 60_000)
    s2.last = s.last
    assert entries(s2.plan(m, FLAT, [], half, filters, Market.FUTURES))[0].qty == \
        Decimal("0.00338")
