"""REST routes are registered by the app: each endpoint module fills its own table, the server
assembles them when it is built (no endpoint module imports the server)."""

from __future__ import annotations

from exchange_sim import rest_futures, rest_market, rest_spot
from exchange_sim.rest import SIGNED, USER_STREAM, Req, RouteTable
from exchange_sim.server import SimServer
from models.simconfig import SimConfig


def test_the_server_serves_every_endpoint_modules_routes() -> None:
    srv = SimServer(SimConfig(scenario="chop", synthetic_bars=50, symbols=("BTCUSDT",),
                              market="both"))
    tables = (rest_market.ROUTES, rest_spot.ROUTES, rest_futures.ROUTES)
    assert len(srv.rest.routes) == sum(len(t) for t in tables)  # no key in two modules
    order = srv.rest.routes.get(("POST", "futures", "order"))
    assert order is not None and order.is_order and order.security == SIGNED
    assert order.handler is rest_futures.new_order
    lk = srv.rest.routes.get(("POST", "spot", "userDataStream"))
    assert lk is not None and lk.security == USER_STREAM and not lk.is_order
    assert srv.rest.routes.get(("GET", "spot", "nothing")) is None


def test_a_route_table_registers_and_merges() -> None:
    a, b = RouteTable(), RouteTable()

    @a.route("GET", "spot", "x", weight=lambda r: 3)
    def x(srv: object, req: Req) -> dict:
        return {}

    b.route("DELETE", "futures", "y", order_request=True)(x)
    both = RouteTable(a, b)
    assert len(both) == 2 and len(a) == 1
    y = both.get(("DELETE", "futures", "y"))
    assert y is not None and y.order_request and not y.is_order

