"""Strategy runner: warm-up, readiness gates, commands to risk, fills, brakes, snapshots."""

from __future__ import annotations

from decimal import Decimal as D

import numpy as np
import pytest

from models import messages as m
from models.enums import Market, OrderType, Side
from models.strategy.params import StrategyParams
from models.strategy.runner import StrategyRunner, restore_runner
from tests.models.strategy.runner_data import FILTERS, SYM, klines

WARM = 300


def params(kind: str = "static_grid") -> StrategyParams:
    return StrategyParams(kind=kind, warmup_minutes=120)


def runner(kind: str = "static_grid", market: Market = Market.FUTURES) -> StrategyRunner:
    return StrategyRunner(params(kind), SYM, market, 0.45, 0.3, 6.0)


def ready(r: StrategyRunner, ks: list[m.KlineClosed]) -> None:
    r.history([m.KlineRow(k.open_time_ms, k.close_time_ms, k.open, k.high, k.low, k.close,
                          k.volume) for k in ks])
    r.on_filters(FILTERS)
    r.on_reconciled()
    r.on_equity(m.EquityUpdated(symbol="", equity=D(10_000), peak_equity=D(10_000),
                                drawdown=0.0, leverage=0.0, leverage_cap=6.0))


def places(cmds: list[m.Message]) -> list[m.PlaceOrder]:
    return [c for c in cmds if isinstance(c, m.PlaceOrder)]


def test_no_orders_until_ready_then_grid_with_context() -> None:
    ks = klines(WARM + 5)
    r = runner()
    r.history([m.KlineRow(k.open_time_ms, k.close_time_ms, k.open, k.high, k.low, k.close,
                          k.volume) for k in ks[:WARM]])
    _, cmds = r.on_kline(ks[WARM])
    assert cmds == [] and not r.ready  # no filters, not reconciled, no equity
    r.on_filters(FILTERS)
    r.on_reconciled()
    _, cmds = r.on_kline(ks[WARM + 1])
    assert cmds == []  # equity unknown
    r.on_equity(m.EquityUpdated(symbol="", equity=D(10_000), peak_equity=D(10_000),
                                drawdown=0.0, leverage=0.0, leverage_cap=6.0))
    _, cmds = r.on_kline(ks[WARM + 2])
    ps = places(cmds)
    assert ps and {p.side for p in ps} == {Side.BUY, Side.SELL}
    for p in ps:
        assert p.order_type is OrderType.LIMIT and p.price is not None
        assert p.price == FILTERS.round_price(p.price) and p.qty == FILTERS.round_qty(p.qty)
        assert "reason" in p.strategy_context and "size" in p.strategy_context
    # the same keys are in flight: the next bar does not send them again
    _, cmds = r.on_kline(ks[WARM + 3])
    assert not {p.key for p in places(cmds)} & {p.key for p in ps}
    # a repeated (re-delivered) bar is ignored
    assert r.on_kline(ks[WARM + 3]) == (None, [])


def test_spot_is_long_only() -> None:
    ks = klines(WARM + 2)
    r = runner(market=Market.SPOT)
    ready(r, ks[:WARM])
    _, cmds = r.on_kline(ks[WARM])
    assert places(cmds) and all(p.side is Side.BUY for p in places(cmds))


def test_fill_updates_position_and_plans_take_profit() -> None:
    ks = klines(WARM + 2)
    r = runner()
    ready(r, ks[:WARM])
    _, cmds = r.on_kline(ks[WARM])
    buy = max((p for p in places(cmds) if p.side is Side.BUY), key=lambda p: p.price)
    r.on_placed(m.OrderPlaced(symbol=SYM, client_order_id="c1", key=buy.key, side=buy.side,
                              order_type=buy.order_type, price=buy.price, qty=buy.qty))
    r.on_open_orders(m.OpenOrdersReported(symbol=SYM, orders=[m.OpenOrderRow(
        client_order_id="c1", key=buy.key, side=Side.BUY, price=buy.price, qty=buy.qty,
        kind="ENTRY")]))
    cmds = r.on_fill(m.OrderFilled(symbol=SYM, client_order_id="c1", trade_id=1,
                                   side=Side.BUY, price=buy.price, qty=buy.qty,
                                   ts_event_ns=ks[WARM].close_time_ms * 1_000_000))
    assert r.st.position_qty == buy.qty and r.st.entry_price == buy.price
    # the same trade again (the OMS forwards what the gateway sent first): applied once
    assert r.on_fill(m.OrderFilled(symbol=SYM, client_order_id="c1", trade_id=1,
                                   side=Side.BUY, price=buy.price, qty=buy.qty)) == []
    assert r.st.position_qty == buy.qty
    tps = [p for p in places(cmds) if p.kind == "TP"]
    assert tps and tps[0].side is Side.SELL and tps[0].price > buy.price


def test_halt_blocks_entries_and_size_factor_halves() -> None:
    ks = klines(WARM + 3)
    a, b = runner(), runner()
    ready(a, ks[:WARM])
    ready(b, ks[:WARM])
    b.on_drawdown(m.DrawdownLevelChanged(symbol="", level=1, previous_level=0, drawdown=-0.07,
                                         size_factor=0.5, tp_factor=0.7, leverage_cap=6.0))
    qa = {p.key: p.qty for p in places(a.on_kline(ks[WARM])[1])}
    qb = {p.key: p.qty for p in places(b.on_kline(ks[WARM])[1])}
    assert qa.keys() == qb.keys()
    for k in qa:
        assert float(qb[k]) == pytest.approx(float(qa[k]) / 2, rel=0.05, abs=0.0011)
    b.on_drawdown(m.DrawdownLevelChanged(symbol="", level=3, previous_level=1, drawdown=-0.16,
                                         size_factor=0.5, tp_factor=0.7, leverage_cap=3.0,
                                         halted=True))
    b.st.inflight.clear()
    assert not [p for p in places(b.on_kline(ks[WARM + 1])[1]) if p.kind == "ENTRY"]


def test_stop_sends_nothing_and_snapshot_restores_identically() -> None:
    ks = klines(WARM + 4)
    r = runner("adaptive")
    ready(r, ks[:WARM])
    r.on_kline(ks[WARM])
    blob = msgspec_encode(r)
    r2 = restore_runner(params("adaptive"), SYM, Market.FUTURES, 0.45, 0.3, 6.0, blob)
    r2.on_filters(FILTERS)
    v1, c1 = r.on_kline(ks[WARM + 1])
    v2, c2 = r2.on_kline(ks[WARM + 1])
    assert (v1.L, v1.S) == (v2.L, v2.S)
    assert [(type(c).__name__, getattr(c, "key", "")) for c in c1] == \
        [(type(c).__name__, getattr(c, "key", "")) for c in c2]
    r.on_stop()
    assert r.on_kline(ks[WARM + 2])[1] == []


def msgspec_encode(r: StrategyRunner) -> bytes:
    import msgspec

    return msgspec.msgpack.encode(r.to_state())


def test_klines_helper_is_deterministic() -> None:
    a, b = klines(50), klines(50)
    assert [k.close for k in a] == [k.close for k in b]
    assert np.all(np.diff([k.open_time_ms for k in a]) == 60_000)


def test_reducing_or_halted_portfolio_blocks_entries() -> None:
    from models.enums import TradingState

    ks = klines(WARM + 2)
    r = runner()
    ready(r, ks[:WARM])
    r.on_trading_state(m.TradingStateChanged(symbol="", state=TradingState.REDUCING))
    assert not [p for p in places(r.on_kline(ks[WARM])[1]) if p.kind == "ENTRY"]
    r.on_trading_state(m.TradingStateChanged(symbol="", state=TradingState.ACTIVE))
    assert [p for p in places(r.on_kline(ks[WARM + 1])[1]) if p.kind == "ENTRY"]


def test_funding_features_see_one_settled_rate_per_settlement() -> None:
    """Re-quotes of the predicted rate (Binance sends one every few seconds) reach the planner
    at once but the strategy's funding features only once per settlement, with the last rate
    quoted for it; a restart keeps the quote in progress."""
    r = runner("adaptive")

    def quote(x: StrategyRunner, rate: str, nxt: int) -> None:
        x.on_funding(m.FundingRateUpdated(symbol=SYM, funding_rate=D(rate),
                                          next_funding_time_ms=nxt))

    t1, t2, t3 = 8 * 3_600_000, 16 * 3_600_000, 24 * 3_600_000
    for rate in ("0.0001", "0.00012", "0.00015"):
        quote(r, rate, t1)
    assert r.strategy.eng.fund_hist == [] and r.funding == 0.00015
    quote(r, "0.00002", t2)
    assert r.strategy.eng.fund_hist == [0.00015]
    quote(r, "0.00003", t2)
    assert r.strategy.eng.fund_hist == [0.00015]
    r2 = restore_runner(params("adaptive"), SYM, Market.FUTURES, 0.45, 0.3, 6.0,
                        msgspec_encode(r), 60_000)
    quote(r2, "0.0001", t3)
    assert r2.strategy.eng.fund_hist == [0.00015, 0.00003]
