"""Reservation book: leverage cap across symbols, idempotency, trading state, snapshots."""

from __future__ import annotations

from decimal import Decimal as D

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.enums import Side, TradingState
from models.portfolio import (
    BookState,
    Denial,
    Grant,
    IllegalTradingTransition,
    ReservationBook,
    TradingCommand,
)

W = {"BTCUSDT": 0.45, "ETHUSDT": 0.35, "SOLUSDT": 0.20}
SYMS = list(W)
BUY, SELL = Side.BUY, Side.SELL


#: Overlapping budgets (sum of weights > 1) so the global cap binds before the symbol budgets.
W_OVER = {"BTCUSDT": 0.6, "ETHUSDT": 0.5, "SOLUSDT": 0.4}


def book(equity: str = "10000", util: float = 1.0, weights: dict | None = None
         ) -> ReservationBook:
    return ReservationBook(6.0, weights or W, util, D(equity))


def test_budgets_and_formula() -> None:
    b = book(util=0.3)
    assert b.cap_notional() == D("60000")
    assert b.symbol_budget("BTCUSDT") == D("27000.00")
    assert b.resting_budget("BTCUSDT") == D("8100.000")


def test_worst_case_counts_sides_separately() -> None:
    b = book()
    b.update_positions("BTCUSDT", D("1000"))
    assert isinstance(b.reserve("r1", "BTCUSDT", BUY, D("500")), Grant)
    assert isinstance(b.reserve("r2", "BTCUSDT", SELL, D("3000")), Grant)
    # max(|1000 + 500|, |1000 - 3000|) = 2000
    assert b.worst_case("BTCUSDT") == D("2000") and b.gross_exposure() == D("2000")
    assert b.leverage() == pytest.approx(0.1) and b.worst_case_leverage() == pytest.approx(0.2)


def test_global_cap_across_symbols_and_denial_reasons() -> None:
    b = book()
    assert isinstance(b.reserve("a", "BTCUSDT", BUY, D("27000")), Grant)
    d = b.reserve("a2", "BTCUSDT", BUY, D("1"))
    assert isinstance(d, Denial) and d.reason == "SYMBOL_BUDGET"
    assert isinstance(b.reserve("b", "ETHUSDT", SELL, D("21000")), Grant)
    assert isinstance(b.reserve("c", "SOLUSDT", BUY, D("12000")), Grant)
    assert b.gross_exposure() == D("60000")
    d = b.reserve("c2", "SOLUSDT", SELL, D("12000.01"))  # sell side worst case > buy side
    assert isinstance(d, Denial) and d.reason == "LEVERAGE_CAP"
    # the other side of SOL up to the same size does not raise the worst case
    assert isinstance(b.reserve("c3", "SOLUSDT", SELL, D("12000")), Grant)
    b.set_cap(3.0)  # brake level 2
    assert b.leverage_cap == D("3.0") and b.over_cap()
    assert b.trading_state is TradingState.REDUCING
    assert b.reserve("x", "BTCUSDT", BUY, D("1")).reason == "REDUCING"
    # a sell does not raise BTC's worst case (only buys rest there): still granted
    assert isinstance(b.reserve("y", "BTCUSDT", SELL, D("1")), Grant)
    assert isinstance(b.reserve("ro", "BTCUSDT", SELL, D("9999"), reduce_only=True), Grant)
    b.set_cap(10.0)
    assert b.leverage_cap == D("6.0")  # never above the configured cap


def test_utilization_limits_resting_per_side() -> None:
    b = book(util=0.3)
    assert isinstance(b.reserve("a", "ETHUSDT", BUY, D("6300")), Grant)
    d = b.reserve("b", "ETHUSDT", BUY, D("0.01"))
    assert isinstance(d, Denial) and d.reason == "UTILIZATION"
    assert isinstance(b.reserve("c", "ETHUSDT", SELL, D("6300")), Grant)


def test_idempotent_reserve_release_and_fill() -> None:
    b = book()
    g = b.reserve("r", "BTCUSDT", BUY, D("1000"))
    assert b.reserve("r", "BTCUSDT", BUY, D("1000")) == g
    assert b.reserve("r", "BTCUSDT", BUY, D("99999")) == g  # same id: same answer
    assert b.resting("BTCUSDT", BUY) == D("1000")
    b.on_fill("r", D("400"))
    assert b.positions["BTCUSDT"] == D("400") and b.resting("BTCUSDT", BUY) == D("600")
    assert b.worst_case("BTCUSDT") == D("1000")
    assert b.release("r") and not b.release("r")
    assert b.resting("BTCUSDT", BUY) == 0 and b.worst_case("BTCUSDT") == D("400")
    assert b.reserve("r", "BTCUSDT", BUY, D("1000")) == g  # still the same, nothing re-added
    assert b.resting("BTCUSDT", BUY) == 0
    d = b.reserve("big", "BTCUSDT", BUY, D("30000"))
    assert isinstance(d, Denial) and b.reserve("big", "BTCUSDT", BUY, D("1")) == d
    assert b.reserve("u", "XRPUSDT", BUY, D("1")).reason == "UNKNOWN_SYMBOL"
    assert b.reserve("z", "BTCUSDT", BUY, D("0")).reason == "BAD_NOTIONAL"


def test_trading_state_table_and_changes() -> None:
    b = book()
    assert b.trading_state is TradingState.ACTIVE and b.poll_state_change() is None
    ch = b.command(TradingCommand.HALT, "drawdown hard stop")
    assert ch is not None and (ch.state, ch.previous) == (TradingState.HALTED,
                                                          TradingState.ACTIVE)
    assert b.reserve("a", "BTCUSDT", BUY, D("10")).reason == "HALTED"
    assert isinstance(b.reserve("b", "BTCUSDT", SELL, D("10"), reduce_only=True), Grant)
    assert b.headroom("BTCUSDT", BUY) == 0
    with pytest.raises(IllegalTradingTransition):
        b.command(TradingCommand.REDUCE)
    assert b.command(TradingCommand.RESUME).state is TradingState.ACTIVE
    assert b.command(TradingCommand.REDUCE).state is TradingState.REDUCING
    assert b.command(TradingCommand.REDUCE) is None
    assert b.command(TradingCommand.RESUME).state is TradingState.ACTIVE
    # equity drop pushes worst-case exposure above the cap -> REDUCING, then back
    assert isinstance(b.reserve("c", "BTCUSDT", BUY, D("20000")), Grant)
    b.set_equity(D("3000"))
    ch = b.poll_state_change()
    assert ch is not None and ch.state is TradingState.REDUCING and "cap" in ch.reason
    b.set_equity(D("10000"))
    assert b.poll_state_change().state is TradingState.ACTIVE


def test_no_equity_denies_new_exposure() -> None:
    b = book("0")
    assert b.reserve("a", "BTCUSDT", BUY, D("1")).reason in ("REDUCING", "NO_EQUITY")
    b2 = book("-5")
    assert isinstance(b2.reserve("a", "BTCUSDT", BUY, D("1")), Denial)


def test_snapshot_roundtrip_keeps_answers() -> None:
    b = book(util=0.3)
    g = b.reserve("r1", "SOLUSDT", BUY, D("100"))
    d = b.reserve("r2", "SOLUSDT", BUY, D("1e9"))
    b.on_fill("r1", D("40"))
    b.set_cap(3)
    blob = msgspec.msgpack.encode(b.to_state())
    r = ReservationBook.from_state(msgspec.msgpack.decode(blob, type=BookState))
    assert r.reserve("r1", "SOLUSDT", BUY, D("100")) == g
    assert r.reserve("r2", "SOLUSDT", BUY, D("1")) == d
    assert r.positions == b.positions and r.resting("SOLUSDT", BUY) == D("60")
    assert r.leverage_cap == D("3") and r.gross_exposure() == b.gross_exposure()
    assert msgspec.json.decode(msgspec.json.encode(b.to_state()), type=BookState) is not None


# -- properties ------------------------------------------------------------------------------------
money = st.one_of(st.integers(1, 40).map(lambda n: D(n * 1000)),
                  st.integers(1, 40_000).map(lambda n: D(n)))
reserve_st = st.tuples(st.just("reserve"), st.integers(0, 30), st.sampled_from(SYMS),
                       st.sampled_from([BUY, SELL]), money,
                       st.sampled_from([False, False, False, True]))
op_st = st.one_of(
    reserve_st, reserve_st, reserve_st, reserve_st,
    st.tuples(st.just("release"), st.integers(0, 30)),
    st.tuples(st.just("fill"), st.integers(0, 30), st.integers(1, 100)),
    st.tuples(st.just("equity"), st.integers(1_000, 20_000)),
    st.tuples(st.just("cap"), st.sampled_from([1.0, 3.0, 6.0])),
)


def _run(ops: list, allow_equity_drop: bool, weights: dict) -> None:
    b = book(util=1.0, weights=weights)
    answers: dict[str, object] = {}
    for op in ops:
        before = b.gross_exposure()
        if op[0] == "reserve":
            _, i, sym, side, n, ro = op
            rid = f"r{i}"
            snapshot = msgspec.msgpack.encode(b.to_state())
            ans = b.reserve(rid, sym, side, n, reduce_only=ro)
            if rid in answers:  # re-delivery: same answer, no change at all
                assert ans == answers[rid]
                assert msgspec.msgpack.encode(b.to_state()) == snapshot
            answers.setdefault(rid, ans)
        elif op[0] == "release":
            b.release(f"r{op[1]}")
        elif op[0] == "fill":
            r = b.reservation(f"r{op[1]}")
            if r is not None and not r.reduce_only:
                b.on_fill(r.reservation_id, r.remaining * op[2] / 100)
        elif op[0] == "equity":
            if allow_equity_drop or D(op[1]) >= b.equity:
                b.set_equity(D(op[1]))
        else:
            if allow_equity_drop or D(str(op[1])) >= b.leverage_cap:
                b.set_cap(op[1])
        after = b.gross_exposure()
        if after > before:  # exposure only ever grows within the cap
            assert after <= b.cap_notional()
        if not allow_equity_drop:
            assert after <= b.cap_notional()
        for s in SYMS:
            if b.worst_case(s) > b.symbol_budget(s) and not allow_equity_drop:
                pytest.fail(f"{s} over its budget")


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op_st, max_size=60), weights=st.sampled_from([W, W_OVER]))
def test_cap_never_exceeded_by_grants(ops: list, weights: dict) -> None:
    _run(ops, allow_equity_drop=True, weights=weights)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(op_st, max_size=60), weights=st.sampled_from([W, W_OVER]))
def test_cap_holds_when_equity_and_cap_never_drop(ops: list, weights: dict) -> None:
    _run(ops, allow_equity_drop=False, weights=weights)


@settings(max_examples=200, deadline=None)
@given(pos=st.integers(-30_000, 30_000), rest=st.lists(
    st.tuples(st.sampled_from(SYMS), st.sampled_from([BUY, SELL]), money), max_size=6),
    sym=st.sampled_from(SYMS), side=st.sampled_from([BUY, SELL]),
    weights=st.sampled_from([W, W_OVER]))
def test_headroom_is_exactly_what_reserve_grants(pos: int, rest: list, sym: str,
                                                 side: Side, weights: dict) -> None:
    b = book(util=0.5, weights=weights)
    b.update_positions(sym, D(pos))
    for i, (s, sd, n) in enumerate(rest):
        b.reserve(f"x{i}", s, sd, n)
    h = b.headroom(sym, side)
    assert h >= 0
    if h > 0:
        assert isinstance(b.reserve("probe", sym, side, h), Grant)
        b.release("probe")
    assert isinstance(b.reserve("probe2", sym, side, h + D("0.01")), Denial)
