"""The backtest venue on crafted bars (no actors): fills from the next bar on, event order,
funding, history without look-ahead, reconciliation."""

from __future__ import annotations

from decimal import Decimal

import pytest

from backtest.venue import BacktestVenue, SymbolFeed
from exchange_sim.engine import Engine
from exchange_sim.marketdata import Bars
from exchange_sim.specs import default_specs
from infra import clock as aclock
from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce

IV = 300_000
T0 = 1_735_862_400_000  # 2025-01-03
SYM = "BTCUSDT"


def _venue(rows: list[tuple[float, float, float, float]], start_bar: int,
           funding: list[tuple[int, Decimal]] | None = None) -> BacktestVenue:
    n = len(rows)
    o, h, lo, c = (list(x) for x in zip(*rows, strict=True))
    bars = Bars(SYM, Market.FUTURES, "5m", [T0 + i * IV for i in range(n)], o, h, lo, c,
                [1000.0] * n)
    spec = default_specs(Market.FUTURES)[SYM]
    eng = Engine(Market.FUTURES, specs={SYM: spec})
    eng.create_account("main", {"USDT": Decimal(10000)})
    feed = SymbolFeed(symbol=SYM, market=Market.FUTURES, filters=spec, fill=bars, base=bars,
                      funding=funding or [])
    return BacktestVenue({SYM: feed}, {Market.FUTURES: eng}, T0 + start_bar * IV)


@pytest.fixture(autouse=True)
def sim_clock() -> aclock.SimClock:
    clk = aclock.SimClock(0)
    aclock.set_clock(clk)
    yield clk
    aclock.set_clock(None)


def _buy(price: str, cid: str = "c1", qty: str = "0.01") -> m.SendOrder:
    return m.SendOrder(symbol=SYM, client_order_id=cid, side=Side.BUY,
                       order_type=OrderType.LIMIT, price=Decimal(price), qty=Decimal(qty),
                       tif=TimeInForce.GTC)


def test_order_placed_at_a_close_fills_only_on_the_next_bar(sim_clock: aclock.SimClock) -> None:
    flat = (100_000.0, 100_010.0, 99_990.0, 100_000.0)
    dip = (100_000.0, 100_010.0, 99_800.0, 99_900.0)
    v = _venue([flat] * 10 + [dip, flat], start_bar=10)
    # bar 9 already closed at the start; the order rests below the last price
    sim_clock.advance_to((T0 + 10 * IV) * 1_000_000)
    evs = v.send_order(_buy("99900"))
    assert [type(e) for e in evs] == [m.OrderAccepted]
    # bar 10 dips through 99 900: the fill comes first, then market data, then the kline
    t = T0 + 11 * IV
    sim_clock.advance_to(t * 1_000_000)
    evs = v.advance(SYM, t)
    kinds = [type(e).__name__ for e in evs]
    assert kinds.index("OrderFilled") < kinds.index("MarkPriceUpdated") < \
        kinds.index("KlineClosed")
    fill = next(e for e in evs if isinstance(e, m.OrderFilled))
    assert fill.price == Decimal("99900") and fill.maker and fill.qty == Decimal("0.01")
    assert T0 + 10 * IV <= fill.ts_event_ns // 1_000_000 < t
    assert any(isinstance(e, m.PositionUpdated) and e.qty == Decimal("0.01") for e in evs)
    k = next(e for e in evs if isinstance(e, m.KlineClosed))
    assert k.open_time_ms == T0 + 10 * IV and k.close_time_ms == t - 1 and k.low == 99_800.0


def test_a_touch_without_trading_through_does_not_fill(sim_clock: aclock.SimClock) -> None:
    touch = (100_000.0, 100_010.0, 99_900.0, 100_000.0)
    v = _venue([touch] * 12, start_bar=10)
    sim_clock.advance_to((T0 + 10 * IV) * 1_000_000)
    v.send_order(_buy("99900"))
    evs = v.advance(SYM, T0 + 12 * IV)
    assert not any(isinstance(e, m.OrderFilled) for e in evs)
    assert sum(isinstance(e, m.KlineClosed) for e in evs) == 2


def test_history_has_only_closed_bars_and_funding_is_paid(sim_clock: aclock.SimClock) -> None:
    flat = (100_000.0, 100_010.0, 99_990.0, 100_000.0)
    fund_t = T0 + 12 * IV
    v = _venue([flat] * 14, start_bar=10, funding=[(fund_t, Decimal("0.001"))])
    sim_clock.advance_to((T0 + 10 * IV + 1) * 1_000_000)
    h = v.history(SYM, m.RequestHistory(symbol=SYM, interval="5m", limit=1000))
    assert [k.open_time_ms for k in h.klines] == [T0 + i * IV for i in range(10)]
    taker = m.SendOrder(symbol=SYM, client_order_id="t1", side=Side.BUY,
                        order_type=OrderType.MARKET, qty=Decimal("0.1"))
    evs = v.send_order(taker)
    assert any(isinstance(e, m.OrderFilled) and not e.maker for e in evs)
    sim_clock.advance_to(fund_t * 1_000_000)
    evs = v.advance(SYM, fund_t)
    paid = [e for e in evs if isinstance(e, m.FundingPaid)]
    assert len(paid) == 1 and paid[0].amount < 0  # a long pays a positive rate
    assert paid[0].funding_id == f"FUNDING-{SYM}-{fund_t}"
    snap, acct, pos, _bal = v.reconcile(m.RequestReconciliation(symbol=SYM))
    assert isinstance(snap, m.ExchangeSnapshotReceived)
    assert [t.client_order_id for t in snap.trades] == ["t1"]
    assert snap.position_qty == Decimal("0.1")
    assert isinstance(acct, m.AccountReported) and acct.wallet_balance < Decimal(10000)
    assert isinstance(pos, m.PositionUpdated) and pos.qty == Decimal("0.1")


def test_rejections_use_binance_codes(sim_clock: aclock.SimClock) -> None:
    v = _venue([(100_000.0, 100_010.0, 99_990.0, 100_000.0)] * 12, start_bar=10)
    sim_clock.advance_to((T0 + 10 * IV) * 1_000_000)
    evs = v.send_order(_buy("99900", qty="0.0000001"))
    assert isinstance(evs[0], m.OrderRejected) and evs[0].code != 0
    evs = v.cancel_order(m.SendCancel(symbol=SYM, client_order_id="nope"))
    assert isinstance(evs[0], m.OrderCancelRejected) and evs[0].code == -2011
    q = v.query_order(m.QueryOrder(symbol=SYM, client_order_id="nope"))
    assert isinstance(q[0], m.OrderStatusReported) and not q[0].found
