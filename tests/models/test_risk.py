"""Risk: params validation, drawdown brake (plan KPIs, hysteresis, halt/resume), pre-trade check."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.enums import Market, OrderType, Side
from models.filters import SymbolFilters
from models.risk import (
    BrakeSnapshot,
    BrakeState,
    CheckResult,
    DrawdownBrake,
    OrderIntent,
    RiskLimits,
    RiskParams,
    fail_closed,
    limits_for,
    pre_trade_check,
)

BUY, SELL = Side.BUY, Side.SELL


# -- params ------------------------------------------------------------------------------------------
def test_defaults_are_valid_and_match_plan() -> None:
    p = RiskParams()
    assert p.validate() == []
    assert p.drawdown_levels == (-0.05, -0.10, -0.15)
    assert (p.tp_reduction_factor_level_1, p.leverage_reduction_factor_level_2,
            p.safe_mode_conviction_threshold) == (0.7, 0.6, 0.8)
    assert p.level_2_cap(6.0) == 3.0 and p.level_2_cap(4.0) == pytest.approx(2.4)


@pytest.mark.parametrize(("changes", "expected"), [
    ({"drawdown_levels": (-0.05, -0.05, -0.15)}, "$.risk.drawdown_levels[1]: must be below -0.05"),
    ({"drawdown_levels": (0.05, -0.10, -0.15)}, "$.risk.drawdown_levels[0]: must be in (-1, 0)"),
    ({"drawdown_levels": (-0.05, -0.10, -1.0)}, "$.risk.drawdown_levels[2]: must be in (-1, 0)"),
    ({"size_reduction_factor": 0.0}, "$.risk.size_reduction_factor: must be in (0, 1]"),
    ({"tp_reduction_factor_level_1": 1.5}, "$.risk.tp_reduction_factor_level_1: must be in (0, 1]"),
    ({"hysteresis": 0.05}, "$.risk.hysteresis: must be smaller than the gap between "
                           "drawdown_levels (0.05)"),
    ({"hysteresis": -0.01}, "$.risk.hysteresis: must be >= 0"),
    ({"halt_resume_drawdown": -0.2},
     "$.risk.halt_resume_drawdown: must be in (-0.15, 0] (above drawdown_levels[2])"),
    ({"safe_mode_conviction_threshold": 1.2},
     "$.risk.safe_mode_conviction_threshold: must be in [0, 1]"),
    ({"level_2_max_leverage": 0.0}, "$.risk.level_2_max_leverage: must be > 0"),
    ({"max_order_notional": -1.0}, "$.risk.max_order_notional: must be >= 0 (0 = no absolute cap)"),
    ({"alert_drawdowns": (0.1,)}, "$.risk.alert_drawdowns[0]: must be in (-1, 0)"),
])
def test_validation_messages(changes: dict, expected: str) -> None:
    p = msgspec.structs.replace(RiskParams(), **changes)
    assert expected in p.validate()


def test_unknown_keys_rejected_and_json_roundtrip() -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"drawdown_level": [-0.1]}', type=RiskParams)
    p = msgspec.json.decode(b'{"safe_mode": true, "drawdown_levels": [-0.04, -0.08, -0.12]}',
                            type=RiskParams)
    assert p.safe_mode and p.drawdown_levels == (-0.04, -0.08, -0.12) and p.validate() == []


# -- brake -------------------------------------------------------------------------------------------
def brake(**kw: object) -> DrawdownBrake:
    return DrawdownBrake(msgspec.structs.replace(RiskParams(), **kw), leverage_cap=6.0)


def test_plan_kpis() -> None:
    b = brake()
    assert b.update(-0.03) == [] and b.state() == BrakeState(drawdown=-0.03)
    ev = b.update(-0.05)
    assert [(e.kind, e.level, e.previous_level) for e in ev] == [("LEVEL", 1, 0)]
    ev = b.update(-0.06)  # "drawdown event triggered at -6 %"
    assert [e.kind for e in ev] == ["ALERT"] and ev[0].drawdown == -0.06
    b.update(-0.07)  # "-7 % reduces order size by 50 %"
    s = b.state()
    assert (s.size_factor, s.tp_factor, s.leverage_cap, s.entries_allowed) == (0.5, 0.7, 6.0, True)
    ev = b.update(-0.12)  # "-12 % reduces orders by 50 % and leverage to 3x"
    assert [(e.kind, e.level) for e in ev] == [("LEVEL", 2)]
    s = b.state()
    assert (s.level, s.size_factor, s.leverage_cap) == (2, 0.5, 3.0)
    ev = b.update(-0.15)  # hard stop
    assert [(e.kind, e.level, e.actions) for e in ev] == [("HALT", 3, ("CANCEL_ALL", "FLATTEN"))]
    s = b.state()
    assert s.halted and s.reduce_only and not s.entries_allowed and s.size_factor == 0


def test_hysteresis_prevents_flapping() -> None:
    b = brake()
    events = []
    for dd in [-0.049, -0.050, -0.049, -0.045, -0.0501, -0.041, -0.0499]:
        events += b.update(dd)
    assert [(e.kind, e.level) for e in events] == [("LEVEL", 1)]
    assert b.update(-0.039)[0].level == 0
    b.update(-0.11)
    assert b.update(-0.095) == [] and b.level == 2
    assert b.update(-0.089)[0].level == 1


def test_halt_lifts_when_drawdown_recovers_past_resume_level() -> None:
    b = brake()
    b.update(-0.16)
    assert b.update(-0.08) == [] and b.state().halted
    ev = b.update(-0.049)
    assert [(e.kind, e.level, e.previous_level) for e in ev] == [("RESUME", 1, 3)]
    assert b.state().entries_allowed and b.state().min_entry_conviction == 0


def test_operator_resume_with_safe_mode_and_rearm() -> None:
    b = brake()
    b.update(-0.16)
    ev = b.resume(safe_mode=True)
    assert [(e.kind, e.level) for e in ev] == [("RESUME", 2)]
    s = b.state()
    assert not s.halted and s.safe_mode and s.min_entry_conviction == 0.8 and s.leverage_cap == 3
    assert b.update(-0.17) == []  # re-armed 5 % below the resume drawdown (-0.21)
    assert b.update(-0.21)[0].kind == "HALT"
    assert b.resume(safe_mode=False)[0].kind == "RESUME"
    assert not b.state().safe_mode
    b.update(-0.13)  # above -0.15 + h: the override lapses, the configured hard stop is back
    assert b.update(-0.15)[0].kind == "HALT"
    assert b.resume() and b.resume() == []


def test_configured_safe_mode_until_level_zero() -> None:
    b = brake(safe_mode=True)
    b.update(-0.15)
    b.update(-0.045)
    assert b.state().safe_mode and b.state().level == 1
    b.update(-0.02)
    assert not b.state().safe_mode and b.state().min_entry_conviction == 0


def test_operator_halt_persists_until_resume_and_snapshot_roundtrip() -> None:
    b = brake()
    ev = b.halt("venue banned")
    assert ev[0].kind == "HALT" and ev[0].reason == "venue banned" and b.halt() == []
    assert b.update(0.0) == [] and b.state().halted
    blob = msgspec.msgpack.encode(b.to_state())
    r = DrawdownBrake.from_state(RiskParams(), 6.0, msgspec.msgpack.decode(blob, type=BrakeSnapshot))
    assert r.state() == b.state()
    assert r.resume()[0].level == 0 and not r.state().halted


# -- pre-trade check -----------------------------------------------------------------------------------
BTC = SymbolFilters(symbol="BTCUSDT", base_asset="BTC", quote_asset="USDT", tick_size=D("0.1"),
                    min_price=D("556.8"), max_price=D("4529764"), step_size=D("0.001"),
                    min_qty=D("0.001"), max_qty=D("1000"), market_step_size=D("0.001"),
                    market_min_qty=D("0.001"), market_max_qty=D("120"),
                    min_notional=D("100"), price_precision=2, qty_precision=3)
OPEN = BrakeState()
LIM = RiskLimits(max_order_notional=D("10000"), max_symbol_notional=D("27000"))


def chk(side: Side, price: str | None, qty: str, pos: str = "0", brake_state: BrakeState = OPEN,
        limits: RiskLimits = LIM, **kw: object) -> CheckResult:
    market = kw.pop("market", Market.FUTURES)
    ref = kw.pop("ref_price", None)
    intent = OrderIntent(symbol="BTCUSDT", side=side, price=None if price is None else D(price),
                         qty=D(qty), **kw)
    return pre_trade_check(intent, BTC, brake_state, D(pos), limits, market=market,
                           ref_price=ref)


def test_rounds_away_from_market_and_down_in_size() -> None:
    r = chk(BUY, "50000.07", "0.0129")
    assert r.approved and r.adjusted and (r.price, r.qty) == (D("50000.0"), D("0.012"))
    r = chk(SELL, "50000.01", "0.01")
    assert r.approved and r.price == D("50000.1") and r.notional == D("500.001")
    r = chk(BUY, "50000", "0.01")
    assert r.approved and not r.adjusted


@pytest.mark.parametrize(("args", "reason"), [
    ((BUY, "50000", "0.001"), "MIN_NOTIONAL"),
    ((BUY, "50000", "0.0004"), "LOT_SIZE"),
    ((BUY, "100", "5"), "PRICE_FILTER"),
    ((BUY, "50000", "0.3"), "MAX_ORDER_NOTIONAL"),
    ((BUY, "50000", "-1"), "INVALID_ORDER"),
    ((BUY, None, "0.01"), "NO_PRICE"),
])
def test_denials(args: tuple, reason: str) -> None:
    r = chk(*args)
    assert not r.approved and r.reason == reason


def test_symbol_exposure_counts_position_and_resting() -> None:
    lim = RiskLimits(max_order_notional=D("10000"), max_symbol_notional=D("27000"),
                     resting_buy_notional=D("2000"))
    assert chk(BUY, "50000", "0.1", pos="0.4", limits=lim).approved  # 20k + 2k + 5k
    r = chk(BUY, "50000", "0.11", pos="0.4", limits=lim)
    assert r.reason == "SYMBOL_EXPOSURE"
    assert chk(SELL, "50000", "0.1", pos="0.4", limits=lim).approved  # reduces


def test_halted_allows_only_reductions() -> None:
    halted = BrakeState(level=3, halted=True, entries_allowed=False, reduce_only=True,
                        size_factor=0)
    assert chk(BUY, "50000", "0.01", brake_state=halted).reason == "HALTED"
    assert chk(SELL, "50000", "0.01", pos="-0.5", brake_state=halted).reason == "HALTED"
    ok = chk(BUY, "50000", "0.01", pos="-0.5", brake_state=halted)
    assert ok.approved and ok.reduces
    big = chk(BUY, None, "2", pos="-0.5", brake_state=halted, reduce_only=True,
              order_type=OrderType.MARKET, ref_price=D("50000"))
    assert big.approved and big.qty == D("0.5") and big.adjusted and big.price is None
    assert chk(BUY, "50000", "0.1", pos="0.5", reduce_only=True).reason == "NOTHING_TO_REDUCE"


def test_min_notional_exemption_only_for_futures_reduce_only() -> None:
    tiny = chk(SELL, "50000", "0.001", pos="0.001", reduce_only=True)
    assert tiny.approved and tiny.notional == D("50")
    assert chk(SELL, "50000", "0.001", pos="0.001").reason == "MIN_NOTIONAL"
    spot = chk(SELL, "50000", "0.001", pos="0.001", reduce_only=True, market=Market.SPOT)
    assert spot.reason == "MIN_NOTIONAL"
    assert chk(SELL, "50000", "0.01", market=Market.SPOT).reason == "INSUFFICIENT_INVENTORY"


def test_safe_mode_conviction_gate() -> None:
    safe = BrakeState(safe_mode=True, min_entry_conviction=0.8, level=2, size_factor=0.5)
    assert chk(BUY, "50000", "0.01", brake_state=safe, conviction=0.79).reason == \
        "ENTRY_BLOCKED_SAFE_MODE"
    assert chk(BUY, "50000", "0.01", brake_state=safe, conviction=0.8).approved


def test_market_orders_use_reference_price_and_market_lot() -> None:
    r = chk(BUY, None, "0.0105", order_type=OrderType.MARKET, ref_price=D("50000"))
    assert r.approved and r.qty == D("0.010") and r.notional == D("500.000")
    r = chk(BUY, None, "0.001", order_type=OrderType.MARKET, ref_price=D("50000"))
    assert r.reason == "MIN_NOTIONAL"


def test_limits_for_and_fail_closed() -> None:
    lim = limits_for(RiskParams(max_order_notional=5000.0), D("10000"), 0.45,
                     BrakeState(leverage_cap=3.0))
    assert lim.max_order_notional == D("5000") and lim.max_symbol_notional == D("13500.00")
    lim = limits_for(RiskParams(), D("10000"), 0.45, BrakeState())
    assert lim.max_order_notional == D("10000.0")
    ok = chk(BUY, "50000", "0.01")
    assert fail_closed(ok).reason == "PORTFOLIO_UNAVAILABLE"
    red = chk(SELL, "50000", "0.01", pos="0.02")
    assert fail_closed(red) is red


@settings(max_examples=300, deadline=None)
@given(price=st.decimals(min_value=D("0.01"), max_value=D("200000"), places=4),
       qty=st.decimals(min_value=D("0.00001"), max_value=D("2"), places=6),
       side=st.sampled_from([BUY, SELL]), pos=st.decimals(min_value=-2, max_value=2, places=3),
       reduce_only=st.booleans())
def test_approved_orders_always_pass_exchange_filters(price: D, qty: D, side: Side, pos: D,
                                                      reduce_only: bool) -> None:
    big = RiskLimits(max_order_notional=D("1e9"), max_symbol_notional=D("1e9"))
    r = pre_trade_check(OrderIntent(symbol="BTCUSDT", side=side, price=price, qty=qty,
                                    reduce_only=reduce_only), BTC, OPEN, pos, big)
    if r.approved:
        if r.reduces and reduce_only:
            assert r.qty <= abs(pos)
            assert r.price % BTC.tick_size == 0 and r.qty % BTC.step_size == 0
        else:
            BTC.check(r.price, r.qty)
        assert r.qty <= qty and (r.price <= price if side is BUY else r.price >= price)
    else:
        assert r.reason


def test_leverage_cap_shortcut_matches_state_at_every_level() -> None:
    b = brake()
    for dd in (0.0, -0.06, -0.11, -0.16, -0.02, 0.0):
        b.update(dd)
        assert b.leverage_cap() == b.state().leverage_cap
