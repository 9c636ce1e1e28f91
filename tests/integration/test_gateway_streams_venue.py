"""StreamManager wired as the gateway wires it: the real VenueClient (listen keys, WS-API
signatures) and gateway_ops.repair as the gap repair, against the embedded exchange."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sim_harness import SYM, Sim, flat
from stream_helpers import Recorder, is_

from actors import gateway_ops
from actors.streams import StreamManager
from actors.venue_client import VenueClient
from actors.venue_endpoints import VenueEndpoints
from models import messages as m
from models.backoff import Backoff
from models.enums import Market, OrderType, Side, TimeInForce


@pytest.mark.parametrize("market", [Market.SPOT, Market.FUTURES])
def test_drop_and_repair_through_venue_client(market: Market) -> None:
    rows = flat(60)
    kw = {"spot": rows} if market is Market.SPOT else {"futures": rows}
    with Sim(**kw, ws_ping_interval_s=0.3) as sim:
        client = VenueClient(market, VenueEndpoints.from_sim_urls(sim.urls), sim.urls.api_key,
                             sim.urls.api_secret)
        client.sync_time()
        rec = Recorder()

        def repair(since_k: int, gap_ms: int, since_t: int) -> tuple[list[m.Message], dict]:
            return gateway_ops.repair(client, market, SYM, since_k, "1m", since_t)

        sm = StreamManager(market, client.endpoints, SYM, kline_intervals=("1m",),
                           user_stream=True, venue_client=client, emit=rec,
                           heartbeat_timeout_s=2.0, backoff=Backoff(0.05, 0.5),
                           conflate_book_ms=100, repair=repair)
        sm.start()
        try:
            assert sm.wait_connected(5)
            sim.advance(1)
            k0 = rec.wait_for(is_(m.KlineClosed))
            client.sync_time()
            client.place_order(SYM, "gb-v-1", Side.BUY, OrderType.LIMIT, Decimal("0.01"),
                               Decimal("49998"), TimeInForce.GTC)
            rec.wait_for(is_(m.OrderAccepted, client_order_id="gb-v-1"))
            sim.fault(type="drop_ws")
            rec.wait_for(is_(m.StreamDisconnected))
            sim.advance(2)  # closes 2 bars and fills the order (maybe while we reconnect)
            rc = rec.wait_for(is_(m.Reconnected))
            assert rc.klines_repaired + len([k for k in rec.of(m.KlineClosed)
                                             if k.open_time_ms > k0.open_time_ms]) >= 2
            opens = [k.open_time_ms for k in rec.wait_count(m.KlineClosed, 3)]
            assert opens == [k0.open_time_ms + i * 60_000 for i in range(3)]
            snap = rec.wait_for(is_(m.ExchangeSnapshotReceived))
            assert rec.index(snap) < rec.index(rc)
            # the fill is known either live or from the repair's trades, with one trade id
            ids = {f.trade_id for f in rec.of(m.OrderFilled)} | {
                t.trade_id for s in rec.of(m.ExchangeSnapshotReceived) for t in s.trades}
            assert len(ids) == 1
            if market is Market.FUTURES:
                assert sm.listen_key
        finally:
            sm.stop()
