"""Gateway REST side against the embedded exchange, through the real python-binance client:
time sync and -1021, orders on spot and futures, unknown outcomes, 429/418, history paging,
reconciliation snapshots. No mock of python-binance anywhere."""

from __future__ import annotations

import socket
import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from sim_harness import SYM, T0, Sim, flat

from actors import gateway_ops as ops
from actors.venue_client import VenueClient
from actors.venue_endpoints import VenueEndpoints
from actors.venue_errors import (
    BannedError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
)
from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce
from models.ratelimit import RateLimiter

D = Decimal
SPOT, FUT = Market.SPOT, Market.FUTURES
QTY = {SPOT: D("0.001"), FUT: D("0.003")}


class FakeClock:
    """Pacing/pause clock advanced only by the client's own sleeps (signing stays on wall
    time, as python-binance signs)."""

    def __init__(self) -> None:
        self.t = time.time()
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


@pytest.fixture()
def sim() -> Any:
    s = Sim(spot=flat(60), futures=flat(60))
    s.admin("speed", {"speed": 1})  # a running clock: signed requests need no manual resync
    yield s
    s.stop()


def venue(sim: Sim, market: Market, **kw: Any) -> tuple[VenueClient, list[m.Message]]:
    events: list[m.Message] = []
    vc = VenueClient(market, VenueEndpoints.from_sim_urls(sim.urls), sim.urls.api_key,
                     sim.urls.api_secret, on_halt=events.append, **kw)
    vc.sync_time()
    vc.exchange_info(SYM)
    return vc, events


def send(cid: str, market: Market, price: str = "40000", side: Side = Side.BUY,
         order_type: OrderType = OrderType.LIMIT, qty: Decimal | None = None) -> m.SendOrder:
    return m.SendOrder(symbol=SYM, client_order_id=cid, side=side, order_type=order_type,
                       price=D(price) if order_type is not OrderType.MARKET else None,
                       qty=qty or QTY[market],
                       tif=TimeInForce.GTC if order_type is OrderType.LIMIT else None)


def open_cids(vc: VenueClient) -> list[str]:
    return [o["clientOrderId"] for o in vc.open_orders(SYM)]


# -- time -------------------------------------------------------------------------------------
@pytest.mark.parametrize("jump_ms", [5_000, -5_000])
def test_time_sync_and_1021_resync_then_retry(sim: Sim, jump_ms: int) -> None:
    vc, _ = venue(sim, FUT, recv_window_ms=2000)
    server = sim.sim_time()
    assert abs(vc.server_time_ms() - server) < 2000  # offset makes our clock the exchange's
    before = vc.offset_ms
    sim.fault(type="clock_jump", ms=jump_ms)
    sent = vc.requests_sent
    evs = ops.send_order(vc, FUT, send("tj-1", FUT))
    assert [type(e) for e in evs] == [m.OrderAccepted]  # -1021, resync, same request again
    assert vc.requests_sent - sent == 3  # refused order + /time + the retry
    assert abs(vc.offset_ms - before - jump_ms) < 1000
    assert open_cids(vc) == ["tj-1"]  # exactly one order


def test_periodic_resync() -> None:
    clock = FakeClock()
    with Sim(futures=flat(20)) as s:
        vc, _ = venue(s, FUT, clock=clock, sleep=clock.sleep, time_sync_interval_s=60)
        synced = vc.synced_at
        vc.open_orders(SYM)
        assert vc.synced_at == synced
        clock.t += 61
        n = vc.requests_sent
        vc.open_orders(SYM)
        assert vc.synced_at == clock.t and vc.requests_sent - n >= 2  # /time first


# -- orders -----------------------------------------------------------------------------------
@pytest.mark.parametrize("market", [SPOT, FUT])
def test_place_query_modify_cancel(sim: Sim, market: Market) -> None:
    vc, _ = venue(sim, market)
    (acc,) = ops.send_order(vc, market, send("pq-1", market))
    assert isinstance(acc, m.OrderAccepted) and acc.client_order_id == "pq-1"
    assert acc.exchange_order_id > 0 and acc.qty == QTY[market] and acc.price == D("40000")
    (st,) = ops.query_order(vc, market, m.QueryOrder(symbol=SYM, client_order_id="pq-1"))
    assert st.found and st.status == "NEW" and st.exchange_order_id == acc.exchange_order_id
    new = "pq-2" if market is SPOT else ""
    evs = ops.modify_order(vc, market, m.SendModify(
        symbol=SYM, client_order_id="pq-1", new_client_order_id=new, side=Side.BUY,
        price=D("40001"), qty=QTY[market] * 2))
    mod = [e for e in evs if isinstance(e, m.OrderModified)]
    assert len(mod) == 1 and mod[0].price == D("40001") and mod[0].qty == QTY[market] * 2
    live = "pq-2" if market is SPOT else "pq-1"
    if market is SPOT:
        assert isinstance(evs[0], m.OrderAccepted) and evs[0].client_order_id == "pq-2"
        assert mod[0].new_client_order_id == "pq-2"
    assert open_cids(vc) == [live]
    (c,) = ops.cancel_order(vc, market, m.SendCancel(symbol=SYM, client_order_id=live))
    assert isinstance(c, m.OrderCanceled) and c.client_order_id == live
    (cr,) = ops.cancel_order(vc, market, m.SendCancel(symbol=SYM, client_order_id=live))
    assert isinstance(cr, m.OrderCancelRejected) and cr.code == -2011
    (nf,) = ops.query_order(vc, market, m.QueryOrder(symbol=SYM, client_order_id="never"))
    assert not nf.found and nf.status == "NOT_FOUND"
    assert open_cids(vc) == []


def test_rejects_are_definitive_and_carry_the_code(sim: Sim) -> None:
    vc, _ = venue(sim, FUT)
    (r,) = ops.send_order(vc, FUT, send("rj-1", FUT, qty=D("0.001")))  # notional < 100
    assert isinstance(r, m.OrderRejected) and r.code == -4164
    sent = vc.requests_sent
    with pytest.raises(OrderRejectedError):
        vc.place_order(SYM, "rj-2", Side.BUY, OrderType.LIMIT, D("0.003"), D("40000.05"),
                       TimeInForce.GTC)  # off-tick price: filter failure
    assert vc.requests_sent == sent + 1  # never retried
    (mr,) = ops.modify_order(vc, FUT, m.SendModify(symbol=SYM, client_order_id="nope",
                                                   side=Side.BUY, price=D("1"), qty=D("1")))
    assert isinstance(mr, m.OrderModifyRejected) and mr.code != 0


def test_spot_market_order_fills_come_with_trade_ids(sim: Sim) -> None:
    vc, _ = venue(sim, SPOT)
    evs = ops.send_order(vc, SPOT, send("mk-1", SPOT, order_type=OrderType.MARKET))
    acc, *fills = evs
    assert isinstance(acc, m.OrderAccepted)
    assert fills and all(isinstance(f, m.OrderFilled) and f.trade_id > 0 for f in fills)
    assert sum(f.qty for f in fills) == QTY[SPOT] and fills[-1].order_status == "FILLED"


def test_spot_cancel_replace_of_a_filled_order_is_refused(sim: Sim) -> None:
    vc, _ = venue(sim, SPOT)
    ops.send_order(vc, SPOT, send("cr-1", SPOT, order_type=OrderType.MARKET))
    evs = ops.modify_order(vc, SPOT, m.SendModify(
        symbol=SYM, client_order_id="cr-1", new_client_order_id="cr-2", side=Side.BUY,
        price=D("40000"), qty=QTY[SPOT]))
    assert [type(e) for e in evs] == [m.OrderModifyRejected]
    assert open_cids(vc) == []  # STOP_ON_FAILURE: the new order was not placed


# -- unknown outcomes -------------------------------------------------------------------------
@pytest.mark.parametrize("market", [SPOT, FUT])
def test_5xx_after_accept_is_unknown_then_query_finds_exactly_one(sim: Sim, market: Market
                                                                  ) -> None:
    vc, _ = venue(sim, market)
    sim.fault(type="order_5xx", count=1, when="after")
    sent = vc.requests_sent
    (u,) = ops.send_order(vc, market, send("ua-1", market))
    assert isinstance(u, m.OrderOutcomeUnknown) and u.client_order_id == "ua-1"
    assert vc.requests_sent == sent + 1  # never resent blindly
    (st,) = ops.query_order(vc, market, m.QueryOrder(symbol=SYM, client_order_id="ua-1"))
    assert st.found and st.status == "NEW" and st.exchange_order_id > 0
    assert open_cids(vc) == ["ua-1"]


def test_5xx_before_is_unknown_then_query_not_found(sim: Sim) -> None:
    vc, _ = venue(sim, FUT)
    sim.fault(type="order_5xx", count=1, when="before")
    (u,) = ops.send_order(vc, FUT, send("ub-1", FUT))
    assert isinstance(u, m.OrderOutcomeUnknown)
    (st,) = ops.query_order(vc, FUT, m.QueryOrder(symbol=SYM, client_order_id="ub-1"))
    assert not st.found and st.status == "NOT_FOUND"
    assert open_cids(vc) == []


def test_cancel_and_modify_5xx_are_unknown(sim: Sim) -> None:
    vc, _ = venue(sim, SPOT)
    ops.send_order(vc, SPOT, send("cu-1", SPOT))
    sim.fault(type="order_5xx", count=1, when="after")
    evs = ops.modify_order(vc, SPOT, m.SendModify(
        symbol=SYM, client_order_id="cu-1", new_client_order_id="cu-2", side=Side.BUY,
        price=D("40001"), qty=QTY[SPOT]))
    assert [(type(e), e.client_order_id) for e in evs] == [
        (m.OrderOutcomeUnknown, "cu-1"), (m.OrderOutcomeUnknown, "cu-2")]
    sim.fault(type="order_5xx", count=1, when="after", status=500)
    (u,) = ops.cancel_order(vc, SPOT, m.SendCancel(symbol=SYM, client_order_id="cu-2"))
    assert isinstance(u, m.OrderOutcomeUnknown)
    (st,) = ops.query_order(vc, SPOT, m.QueryOrder(symbol=SYM, client_order_id="cu-2"))
    assert st.found and st.status == "CANCELED"


class DelayProxy:
    """A loopback TCP proxy in front of the sim that can hold back the next answer: the
    exchange executes the request at once, the client times out waiting for the reply (the
    sim's own latency fault delays before reading the body, so a client that gives up
    aborts the request instead)."""

    def __init__(self, port: int) -> None:
        self.target = ("127.0.0.1", port)
        self.hold_next_s = 0.0
        self.srv = socket.create_server(("127.0.0.1", 0))
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            u = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(c, u, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(u, c, True), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, answers: bool) -> None:
        try:
            while data := src.recv(65536):
                if answers and self.hold_next_s:
                    hold, self.hold_next_s = self.hold_next_s, 0.0
                    time.sleep(hold)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def close(self) -> None:
        self.srv.close()


@pytest.mark.parametrize("market", [SPOT, FUT])
def test_timeout_then_accept_is_unknown_then_query_resolves_without_duplicate(
        sim: Sim, market: Market) -> None:
    proxy = DelayProxy(sim.urls.port)
    try:
        urls = {k: getattr(sim.urls, k).replace(f":{sim.urls.port}/", f":{proxy.port}/")
                for k in ("rest", "fapi", "ws", "fws", "ws_api")}
        vc = VenueClient(market, VenueEndpoints.from_sim_urls(urls), sim.urls.api_key,
                         sim.urls.api_secret, timeout_s=0.4)
        vc.sync_time()
        sent = vc.requests_sent
        proxy.hold_next_s = 1.0
        (u,) = ops.send_order(vc, market, send("to-1", market))
        assert isinstance(u, m.OrderOutcomeUnknown) and "Timeout" in u.detail
        assert vc.requests_sent == sent + 1  # not resent
        (st,) = ops.query_order(vc, market, m.QueryOrder(symbol=SYM, client_order_id="to-1"))
        assert st.found and st.status == "NEW" and st.exchange_order_id > 0
        assert open_cids(vc) == ["to-1"]  # exactly one order
    finally:
        proxy.close()


def test_reads_are_retried_with_backoff(sim: Sim) -> None:
    clock = FakeClock()
    vc, _ = venue(sim, FUT, timeout_s=0.3, clock=clock, sleep=clock.sleep)
    sim.fault(type="latency", ms=800, count=1)
    assert vc.open_orders(SYM) == []  # first attempt timed out, the retry answered
    assert clock.sleeps and 0 < clock.sleeps[0] <= 0.2


# -- rate limits ------------------------------------------------------------------------------
def _request_times(vc: VenueClient, clock: FakeClock) -> list[float]:
    times: list[float] = []
    vc._main.session.hooks["response"].append(lambda r, *a, **k: times.append(clock.t))
    return times


def test_429_waits_out_retry_after_without_requests_and_no_418(sim: Sim) -> None:
    clock = FakeClock()
    vc, events = venue(sim, FUT, clock=clock, sleep=clock.sleep)
    times = _request_times(vc, clock)
    sim.fault(type="force_429", count=1)
    assert vc.open_orders(SYM) == []
    # 429, then (after Retry-After: 1) openOrders + openAlgoOrders
    assert len(times) == 3 and times[1] - times[0] >= 1.0
    assert [type(e) for e in events] == [m.RateLimited]
    assert events[0].until_ms == pytest.approx((times[0] + 1.0) * 1000, abs=5)
    assert not any(isinstance(e, m.VenueBanned) for e in events)


def test_429_longer_than_the_caller_may_wait_rejects_new_orders_unsent(sim: Sim) -> None:
    clock = FakeClock()
    vc, events = venue(sim, FUT, clock=clock, sleep=clock.sleep, max_pause_wait_s=0.5)
    times = _request_times(vc, clock)
    sim.fault(type="force_429", count=1)
    with pytest.raises(RateLimitedError):
        vc.open_orders(SYM)
    (r,) = ops.send_order(vc, FUT, send("rl-1", FUT))
    assert isinstance(r, m.OrderRejected) and r.code == -1003 and "not sent" in r.reason
    assert len(times) == 1  # nothing inside the Retry-After window
    clock.t += 1.0
    (a,) = ops.send_order(vc, FUT, send("rl-2", FUT))
    assert isinstance(a, m.OrderAccepted)
    assert open_cids(vc) == ["rl-2"]


def test_418_halts_and_stops_all_rest_until_the_ban_ends(sim: Sim) -> None:
    clock = FakeClock()
    vc, events = venue(sim, SPOT, clock=clock, sleep=clock.sleep)
    times = _request_times(vc, clock)
    sim.fault(type="force_418", count=1)
    with pytest.raises(BannedError):
        vc.open_orders(SYM)
    assert [type(e) for e in events] == [m.VenueBanned]
    assert vc.banned() and vc.paused_until > clock.t
    (r,) = ops.send_order(vc, SPOT, send("bn-1", SPOT))
    assert isinstance(r, m.OrderRejected) and r.code == -1003
    (q,) = ops.query_order(vc, SPOT, m.QueryOrder(symbol=SYM, client_order_id="bn-1"))
    assert isinstance(q, m.OrderOutcomeUnknown)  # the OMS asks again later
    assert ops.account_events(vc, SPOT, SYM) == []
    assert len(times) == 1  # REST stopped
    clock.t += 1.01
    assert not vc.banned() and open_cids(vc) == []


def test_local_pacing_waits_instead_of_rejecting(sim: Sim) -> None:
    vc, events = venue(sim, SPOT)
    waits: list[float] = []
    vc._sleep = lambda s: (waits.append(s), time.sleep(s))  # type: ignore[method-assign]
    vc.limiter.adopt(RateLimiter.from_exchange_info(
        [{"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 1, "limit": 4}],
        safety=1.0))
    evs = [ops.send_order(vc, SPOT, send(f"pc-{i}", SPOT, price=str(40000 + i)))[0]
           for i in range(10)]
    assert all(isinstance(e, m.OrderAccepted) for e in evs)
    assert waits  # paced
    assert not events  # no 429 from the exchange
    assert len(open_cids(vc)) == 10


def test_usage_headers_are_tracked(sim: Sim) -> None:
    vc, _ = venue(sim, FUT)
    vc.open_orders(SYM)
    assert vc.used_weight > 0
    ops.send_order(vc, FUT, send("uh-1", FUT))
    assert vc.limiter.order_counts.get(10, 0) >= 1


# -- history, account, reconciliation ---------------------------------------------------------
def test_history_pages_closed_bars_only() -> None:
    rows = [(100.0 + i % 7, 110.0 + i % 7, 90.0 + i % 7, 101.0 + i % 7, 1.0 + i)
            for i in range(2600)]
    with Sim(spot=rows, warmup=2400) as s:
        vc, _ = venue(s, SPOT)
        now = s.sim_time()
        h = ops.history(vc, SYM, m.RequestHistory(symbol=SYM, interval="1m", limit=2100))
        assert h.complete and len(h.klines) == 2100
        opens = [k.open_time_ms for k in h.klines]
        assert opens == list(range(opens[0], opens[0] + 2100 * 60_000, 60_000))
        assert h.klines[-1].close_time_ms < now <= h.klines[-1].close_time_ms + 1
        i = (opens[-1] - T0) // 60_000
        assert h.klines[-1].volume == 1.0 + i  # the right bar's data
        f = ops.history(vc, SYM, m.RequestHistory(symbol=SYM, interval="1m", start_ms=T0,
                                                  limit=1500))
        assert len(f.klines) == 1500 and f.klines[0].open_time_ms == T0
        assert f.klines[-1].open_time_ms == T0 + 1499 * 60_000
        tail = ops.history(vc, SYM, m.RequestHistory(symbol=SYM, interval="1m",
                                                     start_ms=now - 10 * 60_000, limit=500))
        assert tail.complete and len(tail.klines) == 10  # up to the present, closed only


@pytest.mark.parametrize("market", [SPOT, FUT])
def test_snapshot_for_reconciliation(sim: Sim, market: Market) -> None:
    vc, _ = venue(sim, market)
    ops.send_order(vc, market, send("sn-1", market, order_type=OrderType.MARKET))
    ops.send_order(vc, market, send("sn-2", market))
    ops.send_order(vc, market, send("sn-3", market, order_type=OrderType.MARKET))
    snap = vc.snapshot_for_reconciliation(SYM, 0)
    assert [o.client_order_id for o in snap.open_orders] == ["sn-2"]
    assert snap.open_orders[0].qty == QTY[market] and snap.open_orders[0].side is Side.BUY
    cids = sorted({t.client_order_id for t in snap.trades})
    assert cids == ["sn-1", "sn-3"]  # resolved although trades carry only order ids
    assert sum(t.qty for t in snap.trades) == 2 * QTY[market]
    assert snap.position_qty > 0 and snap.balances.get("USDT", 0) > 0
    first = min(t.trade_id for t in snap.trades)
    later = vc.snapshot_for_reconciliation(SYM, first)
    assert [t.trade_id for t in later.trades] == sorted(t.trade_id for t in snap.trades
                                                        if t.trade_id > first)
    if market is FUT:
        assert snap.position_qty == 2 * QTY[market] and snap.entry_price > 0


@pytest.mark.parametrize("market", [SPOT, FUT])
def test_account_events(sim: Sim, market: Market) -> None:
    vc, _ = venue(sim, market)
    ops.send_order(vc, market, send("ac-1", market, order_type=OrderType.MARKET))
    acc, pos, bal = ops.account_events(vc, market, SYM)
    assert isinstance(acc, m.AccountReported) and acc.market is market
    assert isinstance(pos, m.PositionUpdated) and pos.qty > 0 and pos.market is market
    assert isinstance(bal, m.BalanceUpdated) and "USDT" in bal.balances
    if market is FUT:
        assert acc.wallet_balance == vc.wallet_balance() and acc.wallet_balance > 9000
    else:
        assert acc.wallet_balance < D("10000")  # quote spent on the base asset
        assert pos.qty == QTY[SPOT] - sum(
            (t.fee for t in vc.snapshot_for_reconciliation(SYM, 0).trades), D(0))


def test_repair_after_reconnect(sim: Sim) -> None:
    sim.admin("speed", {"speed": 0})
    vc, _ = venue(sim, FUT)
    last = vc.klines(SYM, "1m", 0, limit=2)[0][0]  # last closed bar seen by the stream
    ops.send_order(vc, FUT, send("rp-1", FUT, order_type=OrderType.MARKET))
    sim.advance(3)
    vc.sync_time()
    evs, summary = ops.repair(vc, FUT, SYM, last, "1m", 0)
    kl = [e for e in evs if isinstance(e, m.KlineClosed)]
    # the bar in progress at the disconnect plus the two after it closed; the newest is open
    assert [k.open_time_ms for k in kl] == [last + i * 60_000 for i in (1, 2, 3)]
    assert isinstance(evs[-1], m.ExchangeSnapshotReceived)
    assert summary == {"klines": 3, "trades": len(evs[-1].trades), "ok": True}
    assert summary["trades"] >= 1


# -- user-stream auth ---------------------------------------------------------------------------
def test_listen_keys_and_ws_signature(sim: Sim) -> None:
    vc, _ = venue(sim, FUT)
    key = vc.new_listen_key()
    assert len(key) == 64
    vc.keepalive_listen_key(key)
    vc.close_listen_key(key)
    sp, _ = venue(sim, SPOT)
    p = sp.signed_ws_params({"recvWindow": 5000})
    assert p["apiKey"] == sim.urls.api_key and len(p["signature"]) == 64
    assert abs(p["timestamp"] - sim.sim_time()) < 2000
    assert list(p)[-1] == "signature"


def test_not_found_and_errors_are_typed(sim: Sim) -> None:
    vc, _ = venue(sim, SPOT)
    assert vc.query_order(SYM, "missing") is None
    with pytest.raises(OrderNotFoundError) as e:
        vc.cancel_order(SYM, "missing")
    assert e.value.code == -2011
    vc.cancel_all(SYM)  # nothing open: no error
    fv, _ = venue(sim, FUT)
    vc2 = fv
    vc2.set_leverage(SYM, 5)
    assert vc2.position(SYM)["qty"] == 0


def test_spot_cancel_replace_new_leg_fails_after_cancel(sim: Sim) -> None:
    vc, _ = venue(sim, SPOT)
    ops.send_order(vc, SPOT, send("nl-1", SPOT))
    evs = ops.modify_order(vc, SPOT, m.SendModify(  # 1 BTC @ 40000 > the 10 000 USDT balance
        symbol=SYM, client_order_id="nl-1", new_client_order_id="nl-2", side=Side.BUY,
        price=D("40000"), qty=D("1")))
    assert [type(e) for e in evs] == [m.OrderCanceled, m.OrderRejected]
    assert evs[0].client_order_id == "nl-1" and evs[1].client_order_id == "nl-2"
    assert evs[1].code != 0
    assert open_cids(vc) == []


def test_futures_conditional_orders_go_through_the_algo_endpoints(sim: Sim) -> None:
    vc, _ = venue(sim, FUT)
    (acc,) = ops.send_order(vc, FUT, m.SendOrder(
        symbol=SYM, client_order_id="st-1", side=Side.SELL, order_type=OrderType.STOP_MARKET,
        qty=D("0.003"), stop_price=D("45000")))
    assert isinstance(acc, m.OrderAccepted) and acc.exchange_order_id > 0
    (st,) = ops.query_order(vc, FUT, m.QueryOrder(symbol=SYM, client_order_id="st-1"))
    assert st.found and st.status == "NEW"
    assert [o.client_order_id for o in vc.snapshot_for_reconciliation(SYM, 0).open_orders] \
        == ["st-1"]
    fresh, _ = venue(sim, FUT)  # after a restart: no memory of which orders were algo
    (st2,) = ops.query_order(fresh, FUT, m.QueryOrder(symbol=SYM, client_order_id="st-1"))
    assert st2.found and st2.exchange_order_id == acc.exchange_order_id
    other, _ = venue(sim, FUT)
    (c,) = ops.cancel_order(other, FUT, m.SendCancel(symbol=SYM, client_order_id="st-1"))
    assert isinstance(c, m.OrderCanceled)
    assert vc.open_orders(SYM) == []


def test_reconciliation_helper_retries_reads_and_gives_up_cleanly(sim: Sim) -> None:
    clock = FakeClock()
    vc, _ = venue(sim, FUT, clock=clock, sleep=clock.sleep, read_retries=0)
    ops.send_order(vc, FUT, send("rc-1", FUT))
    sim.fault(type="latency", ms=600, count=1)
    vc.timeout_s = 0.3
    for c in (vc._main, vc._aux):
        c.REQUEST_TIMEOUT = 0.3
    evs = ops.reconciliation(vc, FUT, SYM, 0, sleep=clock.sleep)
    assert [type(e) for e in evs] == [m.ExchangeSnapshotReceived, m.AccountReported,
                                      m.PositionUpdated, m.BalanceUpdated]
    assert [o.client_order_id for o in evs[0].open_orders] == ["rc-1"]
    assert clock.sleeps  # the first snapshot attempt timed out and was retried
    sim.fault(type="force_418", count=1)
    assert ops.reconciliation(vc, FUT, SYM, 0, sleep=clock.sleep) == []


def test_endpoints_for_real_venues_and_sim_urls(sim: Sim) -> None:
    live = VenueEndpoints.for_venue("live")
    assert live.rest == "https://api.binance.com/api" and not live.testnet
    assert live.fapi == "https://fapi.binance.com/fapi"
    tn = VenueEndpoints.for_venue("testnet", {"fapi": "https://demo-fapi.binance.com/fapi",
                                              "bogus": "x"})
    assert tn.testnet and tn.rest == "https://testnet.binance.vision/api"
    assert tn.fapi == "https://demo-fapi.binance.com/fapi"
    with pytest.raises(ValueError):
        VenueEndpoints.for_venue("sim")
    as_dict = VenueEndpoints.from_sim_urls(
        {k: getattr(sim.urls, k) for k in ("rest", "fapi", "ws", "fws", "ws_api", "api_key")})
    assert as_dict == VenueEndpoints.from_sim_urls(sim.urls)
    assert as_dict.rest.endswith("/api") and as_dict.ws_api.endswith("/ws-api/v3")
