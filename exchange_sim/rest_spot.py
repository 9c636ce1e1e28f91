"""Spot account/trade REST endpoints (``/api/v3/...``) over the spot engine."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from exchange_sim import formats
from exchange_sim.auth import ApiError
from exchange_sim.engine import CancelReplaceError
from exchange_sim.rest import SIGNED, USER_STREAM, Req, RouteTable
from models.enums import OrderType, Side, TimeInForce

if TYPE_CHECKING:
    from exchange_sim.server import SimServer

SPOT_TYPES = {"LIMIT", "LIMIT_MAKER", "MARKET"}
#: This module's endpoints (the server assembles the tables).
ROUTES = RouteTable()


def side_of(req: Req, name: str = "side") -> Side:
    """Parse a side (-1100 style error when invalid)."""
    v = req.req(name)
    try:
        return Side(v)
    except ValueError:
        raise ApiError(400, -1117, "Invalid side.") from None


def tif_of(req: Req, required: bool) -> TimeInForce | None:
    """Parse timeInForce."""
    v = req.req("timeInForce") if required else req.get("timeInForce")
    if v is None:
        return None
    try:
        return TimeInForce(v)
    except ValueError:
        raise ApiError(400, -1115, "Invalid timeInForce.") from None


def check_duplicate(srv: SimServer, req: Req, client_id: str | None, code: int, msg: str
                    ) -> None:
    """Reject a client order id already used by an open order of the account."""
    if not client_id:
        return
    for o in srv.engines[req.market].open_orders(req.account):
        if o.client_order_id == client_id:
            raise ApiError(400, code, msg)


def order_kwargs(req: Req, types: set[str]) -> dict[str, Any]:
    """Common new-order parameters -> engine keyword arguments."""
    t = req.req("type")
    if t not in types:
        raise ApiError(400, -1116, "Invalid orderType.")
    otype = OrderType(t)
    qty = req.dec("quantity")
    quote = req.dec("quoteOrderQty")
    price = req.dec("price")
    if otype in (OrderType.LIMIT, OrderType.LIMIT_MAKER):
        if price is None:
            req.req("price")
        if qty is None:
            req.req("quantity")
    if otype == OrderType.MARKET and qty is None and quote is None:
        raise ApiError(400, -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both "
                                   "were empty/null!")
    tif = tif_of(req, required=otype == OrderType.LIMIT)
    cid = req.get("newClientOrderId")
    if cid is not None and (len(cid) > 36 or not all(c.isalnum() or c in "_.-:/" for c in cid)):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                   "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    return {"side": side_of(req), "type": otype, "qty": qty, "quote_qty": quote,
            "price": price, "tif": tif, "client_order_id": cid,
            "stop_price": req.dec("stopPrice")}


def _symbol(srv: SimServer, req: Req) -> str:
    sym = req.req("symbol").upper()
    if sym not in srv.specs[req.market]:
        raise ApiError(400, -1121, "Invalid symbol.")
    return sym


def _fills_of(events: list[Any], order_id: int) -> list[Any]:
    return [e.fill for e in events if getattr(e, "fill", None) is not None
            and e.order.order_id == order_id]


@ROUTES.route("POST", "spot", "order", security=SIGNED, is_order=True)
def new_order(srv: SimServer, req: Req) -> dict:
    """POST /api/v3/order."""
    sym = _symbol(srv, req)
    kw = order_kwargs(req, SPOT_TYPES)
    check_duplicate(srv, req, kw["client_order_id"], -2010, "Duplicate order sent.")
    order, events = srv.engines["spot"].place_order(req.account, sym, kw.pop("side"),
                                                     kw.pop("type"), ts_ms=req.now, **kw)
    srv.emit_user("spot", list(events))
    resp = req.get("newOrderRespType") or ("FULL" if order.type in (
        OrderType.MARKET, OrderType.LIMIT) else "ACK")
    return formats.spot_order(order, fills=_fills_of(list(events), order.order_id),
                              resp_type=resp)


@ROUTES.route("POST", "spot", "order/test", security=SIGNED)
def test_order(srv: SimServer, req: Req) -> dict:
    """POST /api/v3/order/test: validate only."""
    sym = _symbol(srv, req)
    kw = order_kwargs(req, SPOT_TYPES)
    srv.engines["spot"].test_order(req.account, sym, kw.pop("side"), kw.pop("type"),
                                   ts_ms=req.now, **kw)
    return {}


def _ids(req: Req, id_name: str = "orderId", cid_name: str = "origClientOrderId"
         ) -> dict[str, Any]:
    oid = req.int_(id_name)
    cid = req.get(cid_name)
    if oid is None and cid is None:
        raise ApiError(400, -1102, f"Param '{cid_name}' or '{id_name}' must be sent, but both "
                                   "were empty/null!")
    return {"order_id": oid, "client_order_id": cid}


@ROUTES.route("GET", "spot", "order", weight=4, security=SIGNED)
def get_order(srv: SimServer, req: Req) -> dict:
    """GET /api/v3/order."""
    o = srv.engines["spot"].get_order(req.account, _symbol(srv, req), **_ids(req))
    return formats.spot_order(o, transact=False)


@ROUTES.route("DELETE", "spot", "order", security=SIGNED, order_request=True)
def cancel_order(srv: SimServer, req: Req) -> dict:
    """DELETE /api/v3/order."""
    o, events = srv.engines["spot"].cancel_order(req.account, _symbol(srv, req), **_ids(req),
                                                  ts_ms=req.now)
    new_cid = req.get("newClientOrderId") or f"sim-cxl-{o.order_id}"
    srv.emit_user("spot", list(events), cancel_cid=new_cid)
    return formats.spot_cancel(o, o.client_order_id, new_cid, req.now)


@ROUTES.route("GET", "spot", "openOrders", weight=lambda r: 6 if r.get("symbol") else 80,
       security=SIGNED)
def open_orders(srv: SimServer, req: Req) -> list:
    """GET /api/v3/openOrders."""
    sym = _symbol(srv, req) if req.get("symbol") else None
    return [formats.spot_order(o, transact=False)
            for o in srv.engines["spot"].open_orders(req.account, sym)]


@ROUTES.route("DELETE", "spot", "openOrders", security=SIGNED, order_request=True)
def cancel_open_orders(srv: SimServer, req: Req) -> list:
    """DELETE /api/v3/openOrders."""
    sym = _symbol(srv, req)
    orders, events = srv.engines["spot"].cancel_all(req.account, sym, req.now)
    srv.emit_user("spot", list(events))
    return [formats.spot_cancel(o, o.client_order_id, f"sim-cxl-{o.order_id}", req.now)
            for o in orders]


@ROUTES.route("GET", "spot", "allOrders", weight=20, security=SIGNED)
def all_orders(srv: SimServer, req: Req) -> list:
    """GET /api/v3/allOrders."""
    limit = req.int_("limit", 500) or 500
    if not 0 < limit <= 1000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    orders = srv.engines["spot"].all_orders(
        req.account, _symbol(srv, req), start_ms=req.int_("startTime"),
        end_ms=req.int_("endTime"), limit=limit, from_order_id=req.int_("orderId"))
    return [formats.spot_order(o, transact=False) for o in orders]


@ROUTES.route("GET", "spot", "myTrades", weight=20, security=SIGNED)
def my_trades(srv: SimServer, req: Req) -> list:
    """GET /api/v3/myTrades."""
    limit = req.int_("limit", 500) or 500
    if not 0 < limit <= 1000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    fills = srv.engines["spot"].trades(req.account, _symbol(srv, req),
                                       start_ms=req.int_("startTime"),
                                       end_ms=req.int_("endTime"), from_id=req.int_("fromId"),
                                       limit=limit)
    oid = req.int_("orderId")
    return [formats.spot_trade(f) for f in fills if oid is None or f.order_id == oid]


@ROUTES.route("GET", "spot", "account", weight=20, security=SIGNED)
def account(srv: SimServer, req: Req) -> dict:
    """GET /api/v3/account."""
    cfg = srv.config
    bals = srv.engines["spot"].balances(req.account)
    omit = req.bool_("omitZeroBalances")
    rows = [{"asset": a, "free": formats.s8(f), "locked": formats.s8(lk)}
            for a, (f, lk) in sorted(bals.items()) if not (omit and f == 0 and lk == 0)]
    mk, tk = int(cfg.spot_maker_fee * 10000), int(cfg.spot_taker_fee * 10000)
    return {
        "makerCommission": mk, "takerCommission": tk, "buyerCommission": 0,
        "sellerCommission": 0,
        "commissionRates": {"maker": formats.s8(cfg.spot_maker_fee),
                            "taker": formats.s8(cfg.spot_taker_fee), "buyer": formats.s8(None),
                            "seller": formats.s8(None)},
        "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
        "requireSelfTradePrevention": False, "preventSor": False, "updateTime": req.now,
        "accountType": "SPOT", "balances": rows, "permissions": ["SPOT"], "uid": 1,
    }


@ROUTES.route("GET", "spot", "account/commission", weight=20, security=SIGNED)
def commission(srv: SimServer, req: Req) -> dict:
    """GET /api/v3/account/commission."""
    cfg = srv.config
    z = formats.s8(None)
    return {"symbol": _symbol(srv, req),
            "standardCommission": {"maker": formats.s8(cfg.spot_maker_fee),
                                   "taker": formats.s8(cfg.spot_taker_fee), "buyer": z,
                                   "seller": z},
            "taxCommission": {"maker": z, "taker": z, "buyer": z, "seller": z},
            "discount": {"enabledForAccount": cfg.bnb_discount, "enabledForSymbol": True,
                         "discountAsset": "BNB", "discount": "0.75000000"}}


@ROUTES.route("POST", "spot", "order/cancelReplace", security=SIGNED, is_order=True)
def cancel_replace(srv: SimServer, req: Req) -> dict:
    """POST /api/v3/order/cancelReplace (STOP_ON_FAILURE / ALLOW_FAILURE)."""
    sym = _symbol(srv, req)
    mode = req.req("cancelReplaceMode")
    if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'cancelReplaceMode'.")
    ids = _ids(req, "cancelOrderId", "cancelOrigClientOrderId")
    kw = order_kwargs(req, SPOT_TYPES)
    cxl_cid = req.get("cancelNewClientOrderId")

    def cxl(o: Any) -> dict:
        return formats.spot_cancel(o, o.client_order_id, cxl_cid or f"sim-cxl-{o.order_id}",
                                   req.now)

    def err(e: Any) -> dict | None:
        return {"code": e.code, "msg": e.msg} if e is not None else None

    try:
        canceled, new, events = srv.engines["spot"].cancel_replace(
            req.account, sym, cancel_order_id=ids["order_id"],
            cancel_client_order_id=ids["client_order_id"], new_order=kw, mode=mode,
            ts_ms=req.now)
    except CancelReplaceError as e:
        srv.emit_user("spot", list(e.events), cancel_cid=cxl_cid)
        data = {
            "cancelResult": e.cancel_result, "newOrderResult": e.new_order_result,
            "cancelResponse": cxl(e.cancelled) if e.cancelled is not None
            else err(e.cancel_error),
            "newOrderResponse": formats.spot_order(
                e.new_order, fills=_fills_of(list(e.events), e.new_order.order_id))
            if e.new_order is not None else err(e.new_order_error),
        }
        raise ApiError(e.http_status, e.code, e.msg, data=data) from None
    events = list(events)
    srv.emit_user("spot", events, cancel_cid=cxl_cid)
    return {
        "cancelResult": "SUCCESS", "newOrderResult": "SUCCESS", "cancelResponse": cxl(canceled),
        "newOrderResponse": formats.spot_order(new, fills=_fills_of(events, new.order_id)),
    }


@ROUTES.route("POST", "spot", "userDataStream", weight=2, security=USER_STREAM)
def uds_new(srv: SimServer, req: Req) -> dict:
    """POST /api/v3/userDataStream (legacy listenKey; stream at /ws/<listenKey>)."""
    return {"listenKey": srv.new_listen_key(req.account)}


@ROUTES.route("PUT", "spot", "userDataStream", weight=2, security=USER_STREAM)
def uds_keepalive(srv: SimServer, req: Req) -> dict:
    """PUT /api/v3/userDataStream."""
    srv.keepalive_listen_key(req.account, req.req("listenKey"))
    return {}


@ROUTES.route("DELETE", "spot", "userDataStream", weight=2, security=USER_STREAM)
def uds_close(srv: SimServer, req: Req) -> dict:
    """DELETE /api/v3/userDataStream."""
    srv.close_listen_key(req.account, req.req("listenKey"))
    return {}
