"""StreamManager against the embedded exchange: closed klines, user-data order events and fills
for orders placed over REST (python-binance), futures mark price and positions, book
conflation, and the URLs it would use on Binance."""

from __future__ import annotations

import time
from decimal import Decimal
from types import SimpleNamespace

from sim_harness import SYM, T0, M, Sim, flat
from stream_helpers import Recorder, is_, manager

from actors.streams import StreamManager
from models import messages as m
from models.enums import Market, Side

# the sim's book sits at the last price, i.e. the next bar's open once a bar closed
LAST_BID = 50_030.0
RAMP = flat(5) + [(50_000 + i, 50_005 + i, 49_995 + i, 50_000 + i, 100.0) for i in range(60)]


def test_spot_klines_order_events_and_fills() -> None:
    with Sim(spot=RAMP, ws_ping_interval_s=0.5) as sim:
        rec = Recorder()
        sm = manager(sim, Market.SPOT, rec, kline_intervals=("5m", "1m"), book=False)
        assert sm.kline_intervals == ("5m", "1m") and sm.repair_interval == "5m"
        sm.start()
        try:
            assert sm.wait_connected(5)
            c = sim.client()
            c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.01", price="49998.50", newClientOrderId="gb-buy-1")
            c.create_order(symbol=SYM, side="BUY", type="LIMIT", timeInForce="GTC",
                           quantity="0.01", price="40000", newClientOrderId="gb-buy-2")
            acc = rec.wait_for(is_(m.OrderAccepted, client_order_id="gb-buy-1"))
            assert (acc.side, acc.price, acc.qty) == (Side.BUY, Decimal("49998.50"),
                                                      Decimal("0.01"))
            assert acc.exchange_order_id > 0
            c.cancel_order(symbol=SYM, origClientOrderId="gb-buy-2")
            cx = rec.wait_for(is_(m.OrderCanceled))
            assert cx.client_order_id == "gb-buy-2"  # the order's id, not the cancel's
            sim.advance(6)  # the next bar trades through 49998.50: a maker fill
            fill = rec.wait_for(is_(m.OrderFilled, client_order_id="gb-buy-1"))
            assert fill.maker and fill.price == Decimal("49998.50") and fill.qty == Decimal("0.01")
            assert fill.order_status == "FILLED" and fill.cum_qty == Decimal("0.01")
            assert fill.trade_id >= 1 and fill.fee > 0 and fill.fee_asset == "BTC"
            assert sm.last_trade_id == fill.trade_id
            bal = rec.wait_for(is_(m.BalanceUpdated))
            assert set(bal.balances) == {"BTC", "USDT"}
            rec.wait_for(is_(m.KlineClosed, interval="1m", open_time_ms=T0 + 10 * M))
            k = rec.wait_for(is_(m.KlineClosed, interval="5m"))
            assert k.open_time_ms % 300_000 == 0 and k.close_time_ms == k.open_time_ms + 299_999
            ones = [x.open_time_ms for x in rec.of(m.KlineClosed) if x.interval == "1m"]
            assert ones == [T0 + (5 + i) * M for i in range(6)]  # only closed bars, once
            assert sm.last_kline_open_ms["1m"] == ones[-1]
            assert not rec.of(m.StreamDisconnected)
        finally:
            sm.stop()
        assert not sm.connected


def test_futures_continuous_klines_mark_price_fills_and_position() -> None:
    with Sim(futures=RAMP, ws_ping_interval_s=0.5) as sim:
        rec = Recorder()
        sm = manager(sim, Market.FUTURES, rec, book=True)
        sm.start()
        try:
            assert sm.wait_connected(5)
            c = sim.client()
            c.futures_create_order(symbol=SYM, side="SELL", type="LIMIT", timeInForce="GTC",
                                   quantity="0.010", price="50001.5",
                                   newClientOrderId="gb-sell-1")
            rec.wait_for(is_(m.OrderAccepted, client_order_id="gb-sell-1"))
            sim.advance(3)
            k = rec.wait_for(is_(m.KlineClosed))
            assert k.open_time_ms == T0 + 5 * M and k.close == 50_000.0
            mark = rec.wait_for(is_(m.MarkPriceUpdated))
            assert isinstance(mark.mark_price, Decimal) and mark.mark_price > 0
            rec.wait_for(is_(m.FundingRateUpdated))
            fill = rec.wait_for(is_(m.OrderFilled, client_order_id="gb-sell-1"))
            assert fill.side is Side.SELL and fill.price == Decimal("50001.5") and fill.maker
            assert fill.fee_asset == "USDT"
            pos = rec.wait_for(lambda e: isinstance(e, m.PositionUpdated) and e.qty != 0)
            assert pos.qty == Decimal("-0.01") and pos.entry_price == Decimal("50001.5")
            assert pos.market is Market.FUTURES
            b = rec.wait_for(is_(m.BookUpdated))
            assert b.ask > b.bid > 0
            # the funding of every bar is the same rate: forwarded once, not per bar
            assert len(rec.wait_count(m.MarkPriceUpdated, 3)) == 3
            assert len(rec.of(m.FundingRateUpdated)) == 1
        finally:
            sm.stop()


def _book_burst(conflate_ms: int) -> tuple[list[m.BookUpdated], float, list[float]]:
    with Sim(spot=RAMP, ws_ping_interval_s=0.5) as sim:
        rec = Recorder()
        sm = manager(sim, Market.SPOT, rec, user_stream=False, venue_client=None,
                     conflate_book_ms=conflate_ms)
        sm.start()
        try:
            assert sm.wait_connected(5)
            t0 = time.monotonic()
            sim.advance(30)  # 30 bookTicker events in one burst
            rec.wait_for(is_(m.BookUpdated, bid=LAST_BID))
            elapsed = time.monotonic() - t0
            time.sleep(conflate_ms / 1000 + 0.1)  # a pending conflated update would land now
            books = rec.of(m.BookUpdated)
            return books, elapsed, [rec.times[rec.index(b)] for b in books]
        finally:
            sm.stop()


def test_book_is_conflated_to_the_latest_value() -> None:
    books, elapsed, times = _book_burst(300)
    assert len(books) <= 2 + elapsed / 0.3
    assert len(books) < 30
    assert books[-1].bid == LAST_BID and books[-1].ask == LAST_BID + 0.01  # the latest value
    assert all(b - a >= 0.29 for a, b in zip(times, times[1:], strict=False))


def test_book_unconflated_forwards_every_tick() -> None:
    books, _, _ = _book_burst(0)
    assert [b.bid for b in books] == [LAST_BID - 29 + i for i in range(30)]


def _live(market: Market, **kw: object) -> StreamManager:
    ep = SimpleNamespace(ws="wss://stream.binance.com:9443/", fws="wss://fstream.binance.com/",
                         ws_api="wss://ws-api.binance.com:443/ws-api/v3")
    return StreamManager(market, ep, "btcusdt", venue_client=object(), emit=lambda _m: None,
                         **kw)  # type: ignore[arg-type]


def test_binance_urls() -> None:
    spot = _live(Market.SPOT, kline_intervals=("5m", "1h")).urls()
    assert spot == {
        "market": "wss://stream.binance.com:9443/stream?streams="
                  "btcusdt@kline_5m/btcusdt@kline_1h/btcusdt@bookTicker",
        "user": "wss://ws-api.binance.com:443/ws-api/v3"}
    fut = _live(Market.FUTURES).urls()
    assert fut == {
        "market": "wss://fstream.binance.com/market/stream?streams="
                  "btcusdt_perpetual@continuousKline_1m/btcusdt@markPrice@1s",
        "book": "wss://fstream.binance.com/public/stream?streams=btcusdt@bookTicker",
        "user": "wss://fstream.binance.com/private/ws?listenKey="}
    assert _live(Market.FUTURES, book=False, mark=False, user_stream=False).urls() == {
        "market": "wss://fstream.binance.com/market/stream?streams="
                  "btcusdt_perpetual@continuousKline_1m"}


def test_stop_before_connect_is_clean() -> None:
    sm = _live(Market.SPOT, heartbeat_timeout_s=1.0)
    sm.endpoints = SimpleNamespace(ws="ws://127.0.0.1:9/", ws_api="ws://127.0.0.1:9/")
    sm.start()
    sm.stop(timeout=3.0)
    assert not sm._thread.is_alive() and not sm.connected


def test_candles_in_progress_reach_nobody_and_closed_bars_arrive_once_in_order() -> None:
    """At a running clock the sim pushes the candle in progress ("x": false) between closes,
    as Binance does: the manager forwards only closed klines, each once, in order, and the
    in-progress updates neither look like gaps nor keep a session from being healthy."""
    rows = flat(5) + [(50_000 + i, 50_020 + i, 49_980 + i, 50_010 + i, 100.0) for i in range(200)]
    with Sim(futures=rows, ws_ping_interval_s=0.5) as sim:
        sim.srv.hub.kline_update_s = 0.1
        rec = Recorder()
        sm = manager(sim, Market.FUTURES, rec, kline_intervals=("1m", "3m"), book=False,
                     mark=False, user_stream=False, venue_client=None)
        sm.start()
        try:
            assert sm.wait_connected(5)
            sim.admin("speed", {"speed": 60})  # a 1m bar per second, ten updates in between
            time.sleep(4.5)
            sim.admin("speed", {"speed": 0})
            time.sleep(0.3)
            now = sim.sim_time()
        finally:
            sm.stop()
        ks = rec.of(m.KlineClosed)
        ones = [k.open_time_ms for k in ks if k.interval == "1m"]
        threes = [k for k in ks if k.interval == "3m"]
        assert len(ones) >= 3 and ones == list(range(ones[0], ones[-1] + M, M))
        assert ones[0] == T0 + 5 * M  # the first bar replayed, none skipped, none twice
        assert all(k.close_time_ms < now for k in ks)  # only candles that had closed
        assert all(k.open_time_ms % (3 * M) == 0 and k.close_time_ms == k.open_time_ms + 3 * M - 1
                   for k in threes)
        assert [k for k in threes if k.volume != 300.0] == []  # whole 3m candles only
        assert not rec.of(m.StreamDisconnected) and not rec.of(m.Reconnected)
        assert sim.srv.hub.sent > 3 * len(ks)  # the x:false updates did flow
