"""The OMS core driven through gateway_ops against the embedded exchange: the events the REST
side emits must move the OMS's orders exactly as the exchange moved them (acks with exchange
ids, spot cancel-replace, unknown outcomes resolved by queries, fills via reconciliation)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from sim_harness import SYM, Sim, flat

from actors import gateway_ops as ops
from actors.venue_client import VenueClient
from actors.venue_endpoints import VenueEndpoints
from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce
from models.oms import Effects, OmsCore

D = Decimal
QTY = {Market.SPOT: D("0.001"), Market.FUTURES: D("0.003")}


def dispatch(vc: VenueClient, market: Market, cmd: m.Message) -> list[m.Message]:
    """What GatewayActor's worker does with each OMS command."""
    if isinstance(cmd, m.SendOrder):
        return ops.send_order(vc, market, cmd)
    if isinstance(cmd, m.SendCancel):
        return ops.cancel_order(vc, market, cmd)
    if isinstance(cmd, m.SendModify):
        return ops.modify_order(vc, market, cmd)
    if isinstance(cmd, m.QueryOrder):
        return ops.query_order(vc, market, cmd)
    if isinstance(cmd, m.RequestReconciliation):
        return ops.reconciliation(vc, market, SYM, cmd.since_trade_id)
    raise AssertionError(f"unexpected command {cmd!r}")


def pump(oms: OmsCore, vc: VenueClient, market: Market, fx: Effects) -> list[m.Message]:
    """Run the OMS's gateway commands (and its deferred queries) until quiet; returns every
    event the gateway produced."""
    queue = [msg for role, msg in fx.sends if role == "gateway"]
    queue += [m.QueryOrder(symbol=SYM, client_order_id=c) for c in fx.queries_later]
    seen: list[m.Message] = []
    for _ in range(50):
        if not queue:
            return seen
        for ev in dispatch(vc, market, queue.pop(0)):
            seen.append(ev)
            out = oms.on_event(ev)
            assert not [lg for lg in out.logs if lg[0] == "ORDER_CONFLICT"], out.logs
            queue += [msg for role, msg in out.sends if role == "gateway"]
            queue += [m.QueryOrder(symbol=SYM, client_order_id=c) for c in out.queries_later]
    raise AssertionError("gateway/OMS loop did not settle")


def submit(key: str, market: Market, order_type: OrderType = OrderType.LIMIT,
           price: str = "40000") -> m.SubmitOrder:
    return m.SubmitOrder(symbol=SYM, key=key, side=Side.BUY, order_type=order_type,
                         price=D(price) if order_type is OrderType.LIMIT else None,
                         qty=QTY[market],
                         tif=TimeInForce.GTC if order_type is OrderType.LIMIT else None)


@pytest.mark.parametrize("market", [Market.SPOT, Market.FUTURES])
def test_oms_round_trip_through_the_rest_gateway(market: Market) -> None:
    spot = market is Market.SPOT
    with Sim(spot=flat(40) if spot else None, futures=None if spot else flat(40)) as sim:
        sim.admin("speed", {"speed": 1})
        vc = VenueClient(market, VenueEndpoints.from_sim_urls(sim.urls), sim.urls.api_key,
                         sim.urls.api_secret)
        vc.sync_time()
        vc.exchange_info(SYM)
        oms = OmsCore(SYM, market, "gb")
        oms.on_event(vc.snapshot_for_reconciliation(SYM, 0))
        assert oms.reconciled

        def rec(cid: str) -> Any:
            r = oms.ledger.get(cid)
            assert r is not None
            return r

        # new order: acknowledged with its exchange id
        fx = oms.submit(submit("g1", market))
        (cid1,) = [s.client_order_id for r, s in fx.sends if isinstance(s, m.SendOrder)]
        pump(oms, vc, market, fx)
        assert rec(cid1).state.value == "NEW" and rec(cid1).exchange_order_id

        # modify: futures in place; spot cancel-replace (new order acked with its id)
        fx = oms.modify(m.ModifyOrder(symbol=SYM, client_order_id=cid1, side=Side.BUY,
                                      price=D("40001"), qty=QTY[market]))
        pump(oms, vc, market, fx)
        live = {o["clientOrderId"]: o for o in vc.open_orders(SYM)}
        if spot:
            assert rec(cid1).state.value == "CANCELED"
            (new,) = [r for r in oms.ledger.open_orders() if r.key == "g1"]
            assert new.state.value == "NEW" and new.price == D("40001")
            assert new.exchange_order_id == live[new.client_order_id]["orderId"]
        else:
            assert rec(cid1).state.value == "NEW" and rec(cid1).price == D("40001")
            assert D(live[cid1]["price"]) == D("40001")

        # 5xx after the exchange accepted: unknown, then the query resolves it
        sim.fault(type="order_5xx", count=1, when="after")
        fx = oms.submit(submit("g2", market, price="39000"))
        (cid2,) = [s.client_order_id for r, s in fx.sends if isinstance(s, m.SendOrder)]
        evs = pump(oms, vc, market, fx)
        assert [type(e) for e in evs] == [m.OrderOutcomeUnknown, m.OrderStatusReported]
        assert rec(cid2).state.value == "NEW" and rec(cid2).exchange_order_id
        assert sum(1 for o in vc.open_orders(SYM) if o["clientOrderId"] == cid2) == 1

        # 5xx before: unknown, the query finds nothing -> rejected locally
        sim.fault(type="order_5xx", count=1, when="before")
        fx = oms.submit(submit("g4", market, price="38000"))
        (cid4,) = [s.client_order_id for r, s in fx.sends if isinstance(s, m.SendOrder)]
        pump(oms, vc, market, fx)
        assert rec(cid4).state.value == "REJECTED"

        # market order: spot fills come with the ack; futures fills via reconciliation
        fx = oms.submit(submit("g3", market, OrderType.MARKET))
        (cid3,) = [s.client_order_id for r, s in fx.sends if isinstance(s, m.SendOrder)]
        pump(oms, vc, market, fx)
        if not spot:
            assert rec(cid3).state.value == "NEW"  # the ack carries no trades
            pump(oms, vc, market, Effects(sends=[("gateway", m.RequestReconciliation(
                symbol=SYM, since_trade_id=oms.last_trade_id))]))
        assert rec(cid3).state.value == "FILLED" and rec(cid3).filled_qty == QTY[market]
        assert oms.last_trade_id > 0

        # cancel everything
        pump(oms, vc, market, oms.cancel_all(m.CancelAllOrders(symbol=SYM)))
        assert oms.ledger.open_orders() == [] and vc.open_orders(SYM) == []
