"""PnL engine: hand-worked examples to the cent, funding once, equity and drawdown."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.enums import Market, Side
from models.pnl import ClosedTrade, EquityTracker, PositionLedger, SymbolPnl

BUY, SELL = Side.BUY, Side.SELL


def cents(x: D) -> D:
    return x.quantize(D("0.01"))


def test_long_with_partial_closes_and_funding() -> None:
    p = PositionLedger(symbol="BTCUSDT", base_asset="BTC")
    assert p.apply_fill(BUY, D("100"), D("1"), D("0.04"), "USDT", ts_ms=1_000) == []
    assert p.apply_fill(BUY, D("110"), D("1"), D("0.044"), "USDT", ts_ms=2_000) == []
    assert (p.qty, p.avg_entry, p.trade_fees) == (D("2"), D("105"), D("0.084"))
    (t1,) = p.apply_fill(SELL, D("120"), D("0.5"), D("0.024"), "USDT", ts_ms=3_000)
    # gross 15 x 0.5 = 7.5; fees = 1/4 of 0.084 entry fees + 0.024 = 0.045
    assert (t1.side, t1.qty, t1.entry_price, t1.exit_price) == (BUY, D("0.5"), D("105"), D("120"))
    assert (t1.gross_pnl, t1.fees, t1.funding, t1.net_pnl) == (D("7.5"), D("0.045"), 0, D("7.455"))
    assert (t1.opened_ms, t1.closed_ms, t1.holding_ms) == (1_000, 3_000, 2_000)
    assert p.apply_funding("BTCUSDT:4000", D("-0.3"), 4_000)
    (t2,) = p.apply_fill(SELL, D("100"), D("1.5"), D("0.06"), "USDT", ts_ms=5_000)
    # gross (100-105) x 1.5 = -7.5; fees 0.063 + 0.06; funding -0.3 -> net -7.923
    assert (t2.gross_pnl, t2.fees, t2.funding, t2.net_pnl) == (
        D("-7.5"), D("0.123"), D("-0.3"), D("-7.923"))
    assert p.qty == 0 and p.avg_entry == 0 and p.trade_fees == 0 and p.opened_ms == 0
    assert (p.realized_gross, p.fees, p.funding) == (0, D("0.168"), D("-0.3"))
    assert p.realized_net == t1.net_pnl + t2.net_pnl == D("-0.468")


def test_flip_long_to_short_splits_fee_pro_rata() -> None:
    p = PositionLedger(symbol="ETHUSDT")
    p.apply_fill(BUY, D("100"), D("1"), D("0.1"), "USDT", ts_ms=10)
    (closed,) = p.apply_fill(SELL, D("90"), D("3"), D("0.3"), "USDT", ts_ms=20)
    assert (closed.side, closed.qty, closed.gross_pnl, closed.fees, closed.net_pnl) == (
        BUY, D("1"), D("-10"), D("0.2"), D("-10.2"))
    assert (p.qty, p.avg_entry, p.trade_fees, p.opened_ms) == (D("-2"), D("90"), D("0.2"), 20)
    assert p.unrealized(D("85")) == D("10")
    (short,) = p.apply_fill(BUY, D("80"), D("2"), D("0.16"), "USDT", ts_ms=50)
    assert (short.side, short.gross_pnl, short.fees, short.net_pnl, short.holding_ms) == (
        SELL, D("20"), D("0.36"), D("19.64"), 30)
    assert p.realized_gross == D("10") and p.fees == D("0.56") and p.qty == 0


def test_funding_counted_once_across_restart() -> None:
    p = PositionLedger(symbol="BTCUSDT")
    p.apply_fill(SELL, D("50000"), D("0.1"), D("2"), "USDT", ts_ms=0)
    assert p.apply_funding("BTCUSDT:28800000", D("1.25"), 28_800_000)
    assert not p.apply_funding("BTCUSDT:28800000", D("1.25"), 28_800_000)
    restored = PositionLedger.from_state(p.to_state())
    assert restored == p
    assert not restored.apply_funding("BTCUSDT:28800000", D("1.25"), 28_800_000)
    assert restored.apply_funding("BTCUSDT:57600000", D("-0.5"), 57_600_000)
    assert restored.funding == D("0.75") and restored.trade_funding == D("0.75")
    (t,) = restored.apply_fill(BUY, D("49000"), D("0.1"), D("1.96"), "USDT", ts_ms=60_000_000)
    assert (t.gross_pnl, t.fees, t.funding, cents(t.net_pnl)) == (
        D("100"), D("3.96"), D("0.75"), D("96.79"))


def test_funding_dedupe_survives_id_trimming() -> None:
    p = PositionLedger(symbol="BTCUSDT")
    for i in range(1100):
        assert p.apply_funding(f"f{i}", D("0.01"), i)
    assert len(p.funding_seen) == 1000 and p.funding_floor_ms == 99
    assert not p.apply_funding("f5", D("0.01"), 5)  # trimmed, but older than the floor
    assert not p.apply_funding("f1099", D("0.01"), 1099)
    assert p.funding == D("11.00")


def test_spot_fees_in_base_and_bnb() -> None:
    p = PositionLedger(symbol="ETHUSDT", market=Market.SPOT, base_asset="ETH")
    p.apply_fill(BUY, D("2000"), D("1"), D("0.001"), "ETH", ts_ms=0)
    assert p.qty == D("0.999") and p.fees == D("2.000") and p.avg_entry == D("2000")
    (t,) = p.apply_fill(SELL, D("2100"), D("0.999"), D("2.0979"), "USDT", ts_ms=1)
    assert (t.gross_pnl, t.fees, t.net_pnl) == (D("99.9"), D("4.0979"), D("95.8021"))
    # equity check by cash: -2000 paid, 0.999 x 2100 - 2.0979 received
    assert p.realized_net == D("-2000") + D("0.999") * 2100 - D("2.0979")
    b = PositionLedger(symbol="BTCUSDT", market=Market.SPOT, base_asset="BTC")
    b.apply_fill(BUY, D("30000"), D("0.5"), D("0.01"), "BNB", D("300"), ts_ms=0)
    assert b.fees == D("3.00") and b.qty == D("0.5")
    with pytest.raises(ValueError):
        b.apply_fill(BUY, D("30000"), D("0.5"), D("0.01"), "BNB", ts_ms=0)


def test_equity_peak_and_drawdown() -> None:
    eq = EquityTracker(initial_equity=D("10000"))
    s = eq.report("BTCUSDT", SymbolPnl(realized_gross=D("500"), fees=D("20"), funding=D("-5"),
                                       unrealized=D("25")))
    assert s.equity == D("10500") and s.peak_equity == D("10500") and s.drawdown == 0
    s = eq.report("ETHUSDT", SymbolPnl(unrealized=D("-1050")))
    assert s.equity == D("9450") and s.peak_equity == D("10500")
    assert s.drawdown == pytest.approx(-0.1)
    assert (s.fees, s.funding, s.unrealized) == (D("20"), D("-5"), D("-1025"))
    back = EquityTracker.from_state(eq.to_state())
    assert back.peak_equity == D("10500") and back.equity() == D("9450")
    back.reset_peak()
    assert back.drawdown() == 0.0


def test_ledger_snapshot_feeds_equity() -> None:
    p = PositionLedger(symbol="SOLUSDT")
    p.apply_fill(BUY, D("150"), D("10"), D("0.6"), "USDT", ts_ms=0)
    snap = p.snapshot(D("140"))
    assert snap.unrealized == D("-100") and snap.net == D("-100.6")
    eq = EquityTracker(initial_equity=D("1000"))
    assert eq.report("SOLUSDT", snap).equity == D("899.4")


def test_invalid_fill_rejected() -> None:
    with pytest.raises(ValueError):
        PositionLedger(symbol="X").apply_fill(BUY, D("0"), D("1"))


price_st = st.integers(1, 100_000).map(lambda n: D(n) / 100)
qty_st = st.integers(1, 1000).map(lambda n: D(n) / 1000)
fills_st = st.lists(st.tuples(st.sampled_from([BUY, SELL]), price_st, qty_st,
                              st.integers(0, 100).map(lambda n: D(n) / 1000)),
                    min_size=1, max_size=25)


@settings(max_examples=150, deadline=None)
@given(fills=fills_st, mark=price_st)
def test_accounting_identity_property(fills: list, mark: D) -> None:
    """Equity from the ledger equals cash accounting: quote flows + inventory at mark."""
    p = PositionLedger(symbol="BTCUSDT")
    cash, trades = D(0), []
    for ts, (side, price, qty, fee) in enumerate(fills):
        trades += p.apply_fill(side, price, qty, fee, "USDT", ts_ms=ts)
        cash += (-price * qty if side is BUY else price * qty) - fee
    inventory = sum((q if s is BUY else -q for s, _, q, _ in fills), D(0))
    assert p.qty == inventory
    assert abs(p.realized_net + p.unrealized(mark) - (cash + inventory * mark)) < D("1e-12")
    assert all(isinstance(t, ClosedTrade) for t in trades)
    assert abs(sum((t.gross_pnl for t in trades), D(0)) - p.realized_gross) < D("1e-12")
    closed_fees = sum((t.fees for t in trades), D(0))
    assert abs(closed_fees + p.trade_fees - p.fees) < D("1e-12")


def test_revalue_matches_update() -> None:
    a = EquityTracker(initial_equity=D("1000"))
    b = EquityTracker(initial_equity=D("1000"))
    for u in ("5", "-20", "40", "-70.5"):
        pnl = SymbolPnl(unrealized=D(u))
        a.symbols["X"] = pnl
        b.symbols["X"] = pnl
        snap = a.update()
        assert b.revalue() == (snap.equity, snap.drawdown)
        assert a.peak_equity == b.peak_equity
