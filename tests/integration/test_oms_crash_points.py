"""The OMS killed at its two dangerous instants, against the embedded exchange.

The order actor does, for a new order: persist (snapshot + order row + outbox, one SQLite
transaction) → send ``SendOrder`` → the gateway POSTs → the reply comes back. A process killed

* between the outbox write and the POST: the exchange never saw the order;
* between the POST and the reply: the exchange has it, the store says PENDING_NEW.

Each case is replayed here exactly as the actor runs it (same core, same store, same gateway
operations, real python-binance against the sim), the "process" is dropped at the crash point,
and a fresh core is restored from the store and reconciled like a restarted actor. Both must
end with exactly one order per intent at the exchange and a local state that matches it.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import msgspec
import pytest
from sim_harness import SYM, Sim, flat

from actors import gateway_ops as ops
from actors.venue_client import VenueClient
from actors.venue_endpoints import VenueEndpoints
from infra.store import StateStore
from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce
from models.oms import Effects, OmsCore, OmsState, order_row

D = Decimal
QTY = {Market.SPOT: D("0.001"), Market.FUTURES: D("0.003")}


def persist(store: StateStore, oms: OmsCore, fx: Effects) -> None:
    """What OrderActor.persist_with does: one transaction before anything is sent."""
    store.save_snapshot("order", 1, msgspec.msgpack.encode(oms.to_state()), fx.outbox,
                        orders=[order_row(r) for r in fx.orders], fills=fx.fills,
                        done_refs=fx.done_refs)


def restart(path: Path, market: Market) -> tuple[StateStore, OmsCore]:
    """A new process: open the store, restore the core from its snapshot."""
    store = StateStore(path)
    snap = store.load_snapshot("order")
    assert snap is not None
    state = msgspec.msgpack.decode(snap[1], type=OmsState)
    return store, OmsCore(SYM, market, "gb", state=state)


def settle(store: StateStore, oms: OmsCore, vc: VenueClient, market: Market,
           cmds: list[m.Message]) -> None:
    """Gateway commands → exchange → events → OMS (persisting each step) until quiet."""
    for _ in range(50):
        if not cmds:
            return
        cmd = cmds.pop(0)
        if isinstance(cmd, m.SendOrder):
            evs = ops.send_order(vc, market, cmd)
        elif isinstance(cmd, m.SendCancel):
            evs = ops.cancel_order(vc, market, cmd)
        elif isinstance(cmd, m.QueryOrder):
            evs = ops.query_order(vc, market, cmd)
        elif isinstance(cmd, m.RequestReconciliation):
            evs = ops.reconciliation(vc, market, SYM, cmd.since_trade_id)
        else:
            raise AssertionError(cmd)
        for ev in evs:
            fx = oms.on_event(ev)
            persist(store, oms, fx)
            cmds += [x for role, x in fx.sends if role == "gateway"]
            cmds += [m.QueryOrder(symbol=SYM, client_order_id=c) for c in fx.queries_later]
    raise AssertionError("did not settle")


def reconcile_after_restart(store: StateStore, oms: OmsCore, vc: VenueClient,
                            market: Market) -> None:
    """The restarted actor's on_wired + deferred queries of in-flight orders."""
    settle(store, oms, vc, market,
           [m.RequestReconciliation(symbol=SYM, since_trade_id=oms.last_trade_id)]
           + [m.QueryOrder(symbol=SYM, client_order_id=c) for c in oms.pending_resolution()])


def exchange_orders(vc: VenueClient, cid_prefix: str) -> list[dict]:
    return [o for o in vc.open_orders(SYM) if o["clientOrderId"].startswith(cid_prefix)]


def submit(key: str, market: Market, n: int = 1) -> m.SubmitOrder:
    """Risk's n-th intent for ``key`` (its msg_id is what makes a re-delivery idempotent)."""
    return m.SubmitOrder(symbol=SYM, key=key, side=Side.BUY, order_type=OrderType.LIMIT,
                         price=D("39000"), qty=QTY[market], tif=TimeInForce.GTC,
                         msg_id=f"intent-{key}-{n}")


@pytest.mark.parametrize("market", [Market.SPOT, Market.FUTURES])
def test_killed_between_outbox_write_and_post(tmp_path: Path, market: Market) -> None:
    spot = market is Market.SPOT
    with Sim(spot=flat(40) if spot else None, futures=None if spot else flat(40)) as sim:
        sim.admin("speed", {"speed": 1})
        vc = VenueClient(market, VenueEndpoints.from_sim_urls(sim.urls), sim.urls.api_key,
                         sim.urls.api_secret)
        vc.sync_time()
        vc.exchange_info(SYM)
        path = tmp_path / f"{SYM}.db"
        store = StateStore(path)
        oms = OmsCore(SYM, market, "gb")
        oms.on_event(vc.snapshot_for_reconciliation(SYM, 0))
        fx = oms.submit(submit("L-1", market))
        persist(store, oms, fx)  # intent + outbox committed ...
        (send,) = [x for role, x in fx.sends if role == "gateway"]
        assert store.pending_outbox("order")  # ... and the process dies before the POST
        store.close()

        store, oms = restart(path, market)
        assert not oms.reconciled  # no order goes out before reconciliation
        assert oms.ledger.get(send.client_order_id).state.value == "PENDING_NEW"
        # the strategy's next attempt for the same level while unreconciled is refused
        denied = oms.submit(submit("L-1", market, 2))
        assert not [x for role, x in denied.sends if role == "gateway"]
        reconcile_after_restart(store, oms, vc, market)
        assert oms.reconciled
        rec = oms.ledger.get(send.client_order_id)
        assert not rec.is_open  # the exchange never saw it: closed, not resent blindly
        assert exchange_orders(vc, "gb-") == []
        # the level is placed again under the next generation: exactly one exchange order
        fx = oms.submit(submit("L-1", market, 3))
        persist(store, oms, fx)
        settle(store, oms, vc, market, [x for role, x in fx.sends if role == "gateway"])
        live = exchange_orders(vc, "gb-")
        assert len(live) == 1 and live[0]["clientOrderId"] != send.client_order_id
        assert oms.ledger.get(live[0]["clientOrderId"]).state.value == "NEW"


@pytest.mark.parametrize("market", [Market.SPOT, Market.FUTURES])
def test_killed_between_post_and_reply(tmp_path: Path, market: Market) -> None:
    spot = market is Market.SPOT
    with Sim(spot=flat(40) if spot else None, futures=None if spot else flat(40)) as sim:
        sim.admin("speed", {"speed": 1})
        vc = VenueClient(market, VenueEndpoints.from_sim_urls(sim.urls), sim.urls.api_key,
                         sim.urls.api_secret)
        vc.sync_time()
        vc.exchange_info(SYM)
        path = tmp_path / f"{SYM}.db"
        store = StateStore(path)
        oms = OmsCore(SYM, market, "gb")
        oms.on_event(vc.snapshot_for_reconciliation(SYM, 0))
        fx = oms.submit(submit("L-1", market))
        persist(store, oms, fx)
        (send,) = [x for role, x in fx.sends if role == "gateway"]
        ops.send_order(vc, market, send)  # the POST happens; the reply is lost with the process
        store.close()

        store, oms = restart(path, market)
        assert oms.ledger.get(send.client_order_id).state.value == "PENDING_NEW"
        reconcile_after_restart(store, oms, vc, market)
        live = exchange_orders(vc, "gb-")
        assert [o["clientOrderId"] for o in live] == [send.client_order_id]
        rec = oms.ledger.get(send.client_order_id)
        assert rec.state.value == "NEW" and rec.exchange_order_id == live[0]["orderId"]
        # a re-delivered intent (thespian re-delivers after a crash) sends nothing new
        again = oms.submit(submit("L-1", market))
        assert not [x for role, x in again.sends if role == "gateway"]
        assert len(exchange_orders(vc, "gb-")) == 1
        # and the row in the store says the same
        row = [r for r in store.db["orders"].rows_where("client_order_id = ?",
                                                         [send.client_order_id])]
        assert row and row[0]["status"] == "NEW"
