"""StreamManager under faults of the embedded exchange: drop, stall, listen-key expiry, keepalive
failure, forced reconnect. After each: StreamDisconnected, reconnect with backoff, the REST
repair called with the right since-values before live events flow again, Reconnected."""

from __future__ import annotations

import time

import pytest
from sim_harness import SYM, T0, M, Sim, flat, resync
from stream_helpers import Recorder, RestRepair, is_, manager

from models import messages as m
from models.enums import Market

ROWS = flat(60)
SHORT = dict(ws_ping_interval_s=0.2)  # server pings = liveness of quiet market streams


def _sim(market: Market) -> Sim:
    kw = {"spot": ROWS} if market is Market.SPOT else {"futures": ROWS}
    return Sim(**kw, **SHORT)


def _market_order(sim: Sim, market: Market) -> None:
    c = sim.client()
    if market is Market.SPOT:
        c.create_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.01")
    else:
        c.futures_create_order(symbol=SYM, side="BUY", type="MARKET", quantity="0.01")


def _klines(rec: Recorder) -> list[int]:
    return [k.open_time_ms for k in rec.of(m.KlineClosed)]


def _assert_contiguous(opens: list[int]) -> None:
    assert opens == sorted(set(opens)), f"duplicate or out-of-order klines: {opens}"
    assert all(b - a == 60_000 for a, b in zip(opens, opens[1:], strict=False)), opens


@pytest.mark.parametrize("market", [Market.SPOT, Market.FUTURES])
def test_drop_gap_is_repaired_before_live_events(market: Market) -> None:
    with _sim(market) as sim:
        rec = Recorder()
        repair = RestRepair(sim, market)
        sm = manager(sim, market, rec, repair=repair)
        sm.start()
        try:
            assert sm.wait_connected(5)
            sim.advance(2)
            _market_order(sim, market)
            first_fill = rec.wait_for(is_(m.OrderFilled))
            last_open = rec.wait_for(lambda e: isinstance(e, m.KlineClosed)
                                     and e.open_time_ms == _klines(rec)[0] + 60_000).open_time_ms
            venue = sm.venue_client
            venue.blocked = True  # reconnects fail until we let them through
            sim.fault(type="drop_ws")
            rec.wait_for(is_(m.StreamDisconnected))
            assert not sm.connected
            # what happens while we are away: 3 bars close and an order fills
            sim.advance(3)
            _market_order(sim, market)
            time.sleep(0.3)
            n_before = len(rec.events)
            venue.blocked = False
            t0 = time.monotonic()
            rc = rec.wait_for(is_(m.Reconnected), timeout=5.0)
            took = time.monotonic() - t0
            assert took < 5.0
            assert sm.connected and sm.reconnects >= 1
            # the repair started exactly where the live streams left off
            since_k, gap_ms, since_t = repair.calls[-1]
            assert since_k == last_open
            assert since_t == first_fill.trade_id
            assert gap_ms > 0 and rc.gap_ms == gap_ms
            assert (rc.klines_repaired, rc.trades_repaired) == (3, 1)
            # repaired events come before Reconnected, none of them live-duplicated
            i_rc = rec.index(rc)
            repaired = [e for e in rec.events[n_before:i_rc] if isinstance(e, m.KlineClosed)]
            assert [k.open_time_ms for k in repaired] == [last_open + i * 60_000
                                                          for i in (1, 2, 3)]
            snap = rec.wait_for(is_(m.ExchangeSnapshotReceived), start=n_before)
            assert rec.index(snap) < i_rc and snap.trades[0].trade_id == first_fill.trade_id + 1
            assert sm.last_trade_id == first_fill.trade_id + 1
            # live events resume after Reconnected
            resync(venue.client)
            sim.advance(1)
            live = rec.wait_for(lambda e: isinstance(e, m.KlineClosed)
                                and e.open_time_ms == last_open + 4 * 60_000)
            assert rec.index(live) > i_rc
            _assert_contiguous(_klines(rec))
            # while blocked, every failed attempt was reported and retried with backoff
            fails = [e for e in rec.of(m.StreamDisconnected) if "connect failed" in e.detail]
            assert fails
        finally:
            sm.stop()
        assert not sm._thread.is_alive()


def test_stall_is_detected_by_heartbeat_timeout() -> None:
    with _sim(Market.SPOT) as sim:
        rec = Recorder()
        repair = RestRepair(sim, Market.SPOT)
        sm = manager(sim, Market.SPOT, rec, repair=repair, heartbeat_timeout_s=0.8)
        sm.start()
        try:
            assert sm.wait_connected(5)
            sim.advance(1)
            k0 = rec.wait_for(is_(m.KlineClosed))
            stall_end = time.monotonic() + 1.5
            sim.fault(type="stall_ws", seconds=1.5)
            sim.advance(1)  # sent into the stall: lost on the wire
            dis = rec.wait_for(is_(m.StreamDisconnected), timeout=3.0)
            assert dis.stream == "market" and "silent" in dis.detail
            rc = rec.wait_for(is_(m.Reconnected), timeout=8.0)
            assert rc.klines_repaired == 1  # the bar closed during the stall, via REST
            assert repair.calls[0][0] == k0.open_time_ms
            rec.wait_for(is_(m.KlineClosed, open_time_ms=k0.open_time_ms + 60_000))
            # once the stall is over live klines flow again
            time.sleep(max(0.0, stall_end - time.monotonic()) + 0.3)
            sim.advance(1)
            rec.wait_for(is_(m.KlineClosed, open_time_ms=k0.open_time_ms + 120_000))
            _assert_contiguous(_klines(rec))
        finally:
            sm.stop()


def test_kline_lost_in_a_short_stall_is_repaired() -> None:
    """A stall shorter than the heartbeat timeout goes unnoticed, but the next kline shows the
    hole: reconnect + repair fill it, and the klines stay contiguous."""
    with _sim(Market.SPOT) as sim:
        rec = Recorder()
        repair = RestRepair(sim, Market.SPOT)
        sm = manager(sim, Market.SPOT, rec, repair=repair, heartbeat_timeout_s=5.0)
        sm.start()
        try:
            assert sm.wait_connected(5)
            sim.advance(1)
            k0 = rec.wait_for(is_(m.KlineClosed))
            sim.fault(type="stall_ws", seconds=0.4)
            sim.advance(1)  # lost
            time.sleep(0.6)
            sim.advance(1)  # arrives, one bar too far
            dis = rec.wait_for(is_(m.StreamDisconnected))
            assert "kline gap" in dis.detail
            rc = rec.wait_for(is_(m.Reconnected))
            assert rc.klines_repaired == 2 and repair.calls[0][0] == k0.open_time_ms
            assert _klines(rec) == [k0.open_time_ms + i * 60_000 for i in range(3)]
        finally:
            sm.stop()


def test_futures_listen_key_expiry_gets_a_new_key() -> None:
    with _sim(Market.FUTURES) as sim:
        rec = Recorder()
        sm = manager(sim, Market.FUTURES, rec, repair=RestRepair(sim, Market.FUTURES))
        venue = sm.venue_client
        sm.start()
        try:
            assert sm.wait_connected(5)
            key1 = sm.listen_key
            assert key1 == venue.keys[-1]
            sim.fault(type="expire_listen_keys")
            dis = rec.wait_for(is_(m.StreamDisconnected))
            assert dis.stream == "user" and dis.detail == "listenKeyExpired"
            rec.wait_for(is_(m.Reconnected))
            assert sm.listen_key != key1 and len(venue.keys) >= 2
            # fills arrive on the new stream
            _market_order(sim, Market.FUTURES)
            rec.wait_for(is_(m.OrderFilled))
        finally:
            sm.stop()


def test_spot_ws_api_subscription_terminated_resubscribes() -> None:
    with _sim(Market.SPOT) as sim:
        rec = Recorder()
        sm = manager(sim, Market.SPOT, rec, repair=RestRepair(sim, Market.SPOT))
        venue = sm.venue_client
        sm.start()
        try:
            assert sm.wait_connected(5)
            assert venue.signatures == 1
            sim.fault(type="expire_listen_keys")
            dis = rec.wait_for(is_(m.StreamDisconnected))
            assert dis.stream == "user" and dis.detail == "eventStreamTerminated"
            rec.wait_for(is_(m.Reconnected))
            assert venue.signatures >= 2
            _market_order(sim, Market.SPOT)
            rec.wait_for(is_(m.OrderFilled))
        finally:
            sm.stop()


def test_keepalive_and_its_failure() -> None:
    with _sim(Market.FUTURES) as sim:
        rec = Recorder()
        sm = manager(sim, Market.FUTURES, rec, keepalive_s=0.2, heartbeat_timeout_s=2.0)
        venue = sm.venue_client
        sm.start()
        try:
            assert sm.wait_connected(5)
            deadline = time.monotonic() + 3
            while len(venue.keepalives) < 2 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert venue.keepalives[:2] == [sm.listen_key] * 2
            assert not rec.of(m.StreamDisconnected)
            venue.fail_keepalive = True
            dis = rec.wait_for(is_(m.StreamDisconnected))
            assert dis.stream == "user" and "keepalive failed" in dis.detail
            venue.fail_keepalive = False
            rc = rec.wait_for(is_(m.Reconnected))
            assert rc.detail == "no repair configured"
            assert len(venue.keys) >= 2  # a fresh key was requested for the new session
        finally:
            sm.stop()


def test_force_reconnect_and_failed_repair_is_retried_in_place() -> None:
    with _sim(Market.SPOT) as sim:
        rec = Recorder()
        repair = RestRepair(sim, Market.SPOT)
        sm = manager(sim, Market.SPOT, rec, repair=repair)
        sm.start()
        try:
            assert sm.wait_connected(5)
            # what the gateway learns elsewhere (OMS's last trade, history's last bar)
            sm.note_trade_id(41)
            sm.note_trade_id(7)  # never moves back
            sm.note_kline_closed("1m", T0 + 3 * M)
            repair.fail = 2
            sm.force_reconnect()
            rc = rec.wait_for(is_(m.Reconnected))
            assert len(repair.calls) == 3  # two failures, then success on the same session
            assert repair.calls[0][0] == T0 + 3 * M and repair.calls[0][2] == 41
            assert "failed" not in rc.detail
            dis = rec.of(m.StreamDisconnected)
            assert len(dis) == 1 and dis[0].detail == "forced reconnect"
            assert sm.connected and sm.reconnects == 1
        finally:
            sm.stop()
        assert not sm.connected


def test_streams_go_live_when_rest_cannot_repair() -> None:
    """REST down (e.g. banned) must not keep the streams down: after the attempts the session
    goes live, says so, and later bars flow without being mistaken for gaps."""
    with _sim(Market.SPOT) as sim:
        rec = Recorder()
        repair = RestRepair(sim, Market.SPOT)
        sm = manager(sim, Market.SPOT, rec, repair=repair, repair_attempts=2)
        sm.start()
        try:
            assert sm.wait_connected(5)
            sim.advance(1)
            k0 = rec.wait_for(is_(m.KlineClosed))
            repair.fail = 99
            sm.venue_client.blocked = True
            sim.fault(type="drop_ws")
            rec.wait_for(is_(m.StreamDisconnected))
            sim.advance(2)  # two bars nobody can fetch
            sm.venue_client.blocked = False
            rc = rec.wait_for(is_(m.Reconnected))
            assert "gap repair failed" in rc.detail and rc.klines_repaired == 0
            assert len(repair.calls) == 2 and sm.connected
            n = len(rec.events)
            resync(sm.venue_client.client)
            sim.advance(2)
            rec.wait_for(is_(m.KlineClosed, open_time_ms=k0.open_time_ms + 4 * 60_000))
            assert not [e for e in rec.events[n:] if isinstance(e, m.StreamDisconnected)]
        finally:
            sm.stop()
