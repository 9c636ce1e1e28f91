"""USDT-M futures account/trade REST endpoints (``/fapi/v1|v2|v3/...``) over the futures engine.

Conditional orders (STOP_MARKET / TAKE_PROFIT_MARKET), which python-binance 1.0.37 sends to
``/fapi/v1/algoOrder``, are kept by the engine as ordinary orders; the algo id is the order id.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Any

from exchange_sim import formats
from exchange_sim.auth import ApiError
from exchange_sim.formats import sf
from exchange_sim.rest import SIGNED, USER_STREAM, Req, RouteTable
from exchange_sim.rest_spot import _ids, check_duplicate, side_of, tif_of
from exchange_sim.specs import maintenance_brackets
from models.enums import OrderType

if TYPE_CHECKING:
    from exchange_sim.server import SimServer

FUT_TYPES = {"LIMIT", "MARKET", "STOP_MARKET", "TAKE_PROFIT_MARKET"}
ZERO = Decimal(0)
#: This module's endpoints (the server assembles the tables).
ROUTES = RouteTable()


def _symbol(srv: SimServer, req: Req) -> str:
    sym = req.req("symbol").upper()
    if sym not in srv.specs["futures"]:
        raise ApiError(400, -1121, "Invalid symbol.")
    return sym


def _eng(srv: SimServer) -> Any:
    return srv.engines["futures"]


def _order_kwargs(req: Req, algo: bool = False) -> dict[str, Any]:
    t = req.req("type")
    if t not in FUT_TYPES:
        raise ApiError(400, -1116, "Invalid orderType.")
    otype = OrderType(t)
    qty = req.dec("quantity")
    price = req.dec("price")
    stop = req.dec("triggerPrice" if algo else "stopPrice")
    if qty is None and not req.bool_("closePosition"):
        req.req("quantity")
    if otype == OrderType.LIMIT and price is None:
        req.req("price")
    if otype in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET) and stop is None:
        req.req("triggerPrice" if algo else "stopPrice")
    ps = req.get("positionSide", "BOTH")
    if ps != "BOTH":
        raise ApiError(400, -4061, "Order's position side does not match user's setting.")
    cid = req.get("clientAlgoId" if algo else "newClientOrderId")
    if cid is not None and (len(cid) > 36 or not all(c.isalnum() or c in "_.-:/" for c in cid)):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'newClientOrderId'; "
                                   "legal range is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    return {"side": side_of(req), "type": otype, "qty": qty, "price": price,
            "tif": tif_of(req, required=otype == OrderType.LIMIT), "client_order_id": cid,
            "stop_price": stop, "reduce_only": req.bool_("reduceOnly")}


@ROUTES.route("POST", "futures", "order", security=SIGNED, is_order=True)
def new_order(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/order."""
    sym = _symbol(srv, req)
    kw = _order_kwargs(req)
    check_duplicate(srv, req, kw["client_order_id"], -4116, "ClientOrderId is duplicated.")
    order, events = _eng(srv).place_order(req.account, sym, kw.pop("side"), kw.pop("type"),
                                          ts_ms=req.now, **kw)
    srv.emit_user("futures", list(events))
    return formats.futures_order(order)


@ROUTES.route("POST", "futures", "order/test", security=SIGNED)
def test_order(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/order/test."""
    sym = _symbol(srv, req)
    kw = _order_kwargs(req)
    _eng(srv).test_order(req.account, sym, kw.pop("side"), kw.pop("type"), ts_ms=req.now, **kw)
    return {}


@ROUTES.route("PUT", "futures", "order", security=SIGNED, order_request=True)
def modify_order(srv: SimServer, req: Req) -> dict:
    """PUT /fapi/v1/order (modify price/quantity of a LIMIT order)."""
    sym = _symbol(srv, req)
    order, events = _eng(srv).modify_order(
        req.account, sym, **_ids(req), side=side_of(req), qty=req.dec("quantity", True),
        price=req.dec("price", True), ts_ms=req.now)
    srv.emit_user("futures", list(events))
    return formats.futures_order(order)


@ROUTES.route("GET", "futures", "order", security=SIGNED)
def get_order(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v1/order."""
    o = _eng(srv).get_order(req.account, _symbol(srv, req), **_ids(req))
    return formats.futures_order(o, with_time=True)


@ROUTES.route("GET", "futures", "openOrder", security=SIGNED)
def get_open_order(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v1/openOrder."""
    o = _eng(srv).get_order(req.account, _symbol(srv, req), **_ids(req))
    if o.status not in ("NEW", "PARTIALLY_FILLED"):
        raise ApiError(400, -2013, "Order does not exist.")
    return formats.futures_order(o, with_time=True)


@ROUTES.route("DELETE", "futures", "order", security=SIGNED, order_request=True)
def cancel_order(srv: SimServer, req: Req) -> dict:
    """DELETE /fapi/v1/order."""
    o, events = _eng(srv).cancel_order(req.account, _symbol(srv, req), **_ids(req),
                                       ts_ms=req.now)
    srv.emit_user("futures", list(events))
    return formats.futures_order(o)


@ROUTES.route("DELETE", "futures", "allOpenOrders", security=SIGNED, order_request=True)
def cancel_all(srv: SimServer, req: Req) -> dict:
    """DELETE /fapi/v1/allOpenOrders."""
    _, events = _eng(srv).cancel_all(req.account, _symbol(srv, req), req.now)
    srv.emit_user("futures", list(events))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


@ROUTES.route("GET", "futures", "openOrders", weight=lambda r: 1 if r.get("symbol") else 40,
       security=SIGNED)
def open_orders(srv: SimServer, req: Req) -> list:
    """GET /fapi/v1/openOrders."""
    sym = _symbol(srv, req) if req.get("symbol") else None
    return [formats.futures_order(o, with_time=True)
            for o in _eng(srv).open_orders(req.account, sym)
            if o.type not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)]


@ROUTES.route("GET", "futures", "allOrders", weight=5, security=SIGNED)
def all_orders(srv: SimServer, req: Req) -> list:
    """GET /fapi/v1/allOrders."""
    limit = req.int_("limit", 500) or 500
    if not 0 < limit <= 1000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    return [formats.futures_order(o, with_time=True) for o in _eng(srv).all_orders(
        req.account, _symbol(srv, req), start_ms=req.int_("startTime"),
        end_ms=req.int_("endTime"), limit=limit, from_order_id=req.int_("orderId"))]


@ROUTES.route("GET", "futures", "userTrades", weight=5, security=SIGNED)
def user_trades(srv: SimServer, req: Req) -> list:
    """GET /fapi/v1/userTrades."""
    limit = req.int_("limit", 500) or 500
    if not 0 < limit <= 1000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    fills = _eng(srv).trades(req.account, _symbol(srv, req), start_ms=req.int_("startTime"),
                             end_ms=req.int_("endTime"), from_id=req.int_("fromId"),
                             limit=limit)
    oid = req.int_("orderId")
    return [formats.futures_trade(f) for f in fills if oid is None or f.order_id == oid]


@ROUTES.route("GET", "futures", "income", weight=30, security=SIGNED)
def income(srv: SimServer, req: Req) -> list:
    """GET /fapi/v1/income."""
    limit = req.int_("limit", 100) or 100
    if not 0 < limit <= 1000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    sym = req.get("symbol")
    rows = _eng(srv).income(req.account, symbol=sym.upper() if sym else None,
                            income_type=req.get("incomeType"), start_ms=req.int_("startTime"),
                            end_ms=req.int_("endTime"), limit=limit)
    return [{"symbol": r.symbol, "incomeType": r.income_type, "income": sf(r.income),
             "asset": r.asset, "info": r.info, "time": r.time_ms, "tranId": r.tran_id,
             "tradeId": getattr(r, "trade_id", "")} for r in rows]


def _account_view(srv: SimServer, req: Req) -> Any:
    return _eng(srv).futures_account(req.account)


@ROUTES.route("GET", "futures", "account", weight=5, security=SIGNED)
def account(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v2|v3/account."""
    v = _account_view(srv, req)
    now = req.now
    asset = {
        "asset": "USDT", "walletBalance": sf(v.wallet_balance),
        "unrealizedProfit": sf(v.unrealized_pnl), "marginBalance": sf(v.margin_balance),
        "maintMargin": sf(v.maint_margin), "initialMargin": sf(v.initial_margin),
        "positionInitialMargin": sf(v.position_initial_margin),
        "openOrderInitialMargin": sf(v.open_order_initial_margin),
        "crossWalletBalance": sf(v.wallet_balance), "crossUnPnl": sf(v.unrealized_pnl),
        "availableBalance": sf(v.available_balance),
        "maxWithdrawAmount": sf(v.max_withdraw_amount), "marginAvailable": True,
        "updateTime": now,
    }
    positions = [{
        "symbol": p.symbol, "initialMargin": sf(p.initial_margin),
        "maintMargin": sf(p.maint_margin), "unrealizedProfit": sf(p.unrealized_pnl),
        "positionInitialMargin": sf(p.initial_margin), "openOrderInitialMargin": "0",
        "leverage": str(p.leverage), "isolated": str(p.margin_type).upper() == "ISOLATED",
        "entryPrice": sf(p.entry_price), "breakEvenPrice": sf(p.entry_price),
        "maxNotional": "1000000000", "bidNotional": "0", "askNotional": "0",
        "positionSide": "BOTH", "positionAmt": sf(p.qty), "notional": sf(p.notional),
        "isolatedWallet": sf(p.isolated_margin), "updateTime": p.update_ms,
    } for p in v.positions]
    return {
        "feeTier": 0, "canTrade": True, "canDeposit": True, "canWithdraw": True,
        "feeBurn": False, "updateTime": 0, "multiAssetsMargin": False, "tradeGroupId": -1,
        "totalInitialMargin": sf(v.initial_margin), "totalMaintMargin": sf(v.maint_margin),
        "totalWalletBalance": sf(v.wallet_balance),
        "totalUnrealizedProfit": sf(v.unrealized_pnl),
        "totalMarginBalance": sf(v.margin_balance),
        "totalPositionInitialMargin": sf(v.position_initial_margin),
        "totalOpenOrderInitialMargin": sf(v.open_order_initial_margin),
        "totalCrossWalletBalance": sf(v.wallet_balance),
        "totalCrossUnPnl": sf(v.unrealized_pnl), "availableBalance": sf(v.available_balance),
        "maxWithdrawAmount": sf(v.max_withdraw_amount), "assets": [asset],
        "positions": positions,
    }


@ROUTES.route("GET", "futures", "balance", weight=5, security=SIGNED)
def balance(srv: SimServer, req: Req) -> list:
    """GET /fapi/v2|v3/balance."""
    v = _account_view(srv, req)
    return [{"accountAlias": "SimAcct", "asset": "USDT", "balance": sf(v.wallet_balance),
             "crossWalletBalance": sf(v.wallet_balance), "crossUnPnl": sf(v.unrealized_pnl),
             "availableBalance": sf(v.available_balance),
             "maxWithdrawAmount": sf(v.max_withdraw_amount), "marginAvailable": True,
             "updateTime": req.now}]


@ROUTES.route("GET", "futures", "positionRisk", weight=5, security=SIGNED)
def position_risk(srv: SimServer, req: Req) -> list:
    """GET /fapi/v2|v3/positionRisk."""
    sym = req.get("symbol")
    return [formats.position_risk(p)
            for p in _eng(srv).positions(req.account, sym.upper() if sym else None)]


@ROUTES.route("POST", "futures", "leverage", security=SIGNED)
def leverage(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/leverage."""
    sym = _symbol(srv, req)
    lev = req.int_("leverage")
    if lev is None:
        req.req("leverage")
    got = _eng(srv).set_leverage(req.account, sym, int(lev))  # type: ignore[arg-type]
    return {"leverage": got, "maxNotionalValue": "1000000000", "symbol": sym}


@ROUTES.route("POST", "futures", "marginType", security=SIGNED)
def margin_type(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/marginType."""
    mt = req.req("marginType").upper()
    if mt not in ("ISOLATED", "CROSSED"):
        raise ApiError(400, -1100, "Illegal characters found in parameter 'marginType'.")
    _eng(srv).set_margin_type(req.account, _symbol(srv, req), mt)
    return {"code": 200, "msg": "success"}


@ROUTES.route("GET", "futures", "positionSide/dual", weight=30, security=SIGNED)
def get_dual(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v1/positionSide/dual: always one-way mode."""
    return {"dualSidePosition": False}


@ROUTES.route("POST", "futures", "positionSide/dual", security=SIGNED)
def set_dual(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/positionSide/dual: only one-way mode is modelled."""
    if req.bool_("dualSidePosition"):
        raise ApiError(400, -4059, "No need to change position side.")
    raise ApiError(400, -4059, "No need to change position side.")


@ROUTES.route("GET", "futures", "multiAssetsMargin", weight=30, security=SIGNED)
def get_multi(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v1/multiAssetsMargin."""
    return {"multiAssetsMargin": False}


@ROUTES.route("GET", "futures", "commissionRate", weight=20, security=SIGNED)
def commission_rate(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v1/commissionRate."""
    cfg = srv.config
    return {"symbol": _symbol(srv, req), "makerCommissionRate": sf(cfg.futures_maker_fee),
            "takerCommissionRate": sf(cfg.futures_taker_fee)}


@ROUTES.route("GET", "futures", "leverageBracket", security=SIGNED)
def leverage_bracket(srv: SimServer, req: Req) -> list:
    """GET /fapi/v1/leverageBracket."""
    out = []
    syms = [req.get("symbol").upper()] if req.get("symbol") else list(srv.specs["futures"])
    for s in syms:
        rows = []
        for i, b in enumerate(maintenance_brackets(s), 1):
            d = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in vars(b).items()}
            d["bracket"] = i
            rows.append(d)
        out.append({"symbol": s, "brackets": rows})
    return out


# -- listen key ---------------------------------------------------------------------------------
@ROUTES.route("POST", "futures", "listenKey", security=USER_STREAM)
def lk_new(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/listenKey."""
    return {"listenKey": srv.new_listen_key(req.account)}


@ROUTES.route("PUT", "futures", "listenKey", security=USER_STREAM)
def lk_keepalive(srv: SimServer, req: Req) -> dict:
    """PUT /fapi/v1/listenKey."""
    key = req.get("listenKey")
    srv.keepalive_listen_key(req.account, key)
    return {"listenKey": key or next(k for k, (a, _) in srv.listen_keys.items()
                                     if a == req.account)}


@ROUTES.route("DELETE", "futures", "listenKey", security=USER_STREAM)
def lk_close(srv: SimServer, req: Req) -> dict:
    """DELETE /fapi/v1/listenKey."""
    srv.close_listen_key(req.account, req.get("listenKey"))
    return {}


# -- conditional (algo) orders ------------------------------------------------------------------
def _algo(o: Any) -> dict:
    status = {"NEW": "NEW", "CANCELED": "CANCELED", "EXPIRED": "EXPIRED"}.get(o.status,
                                                                            "TRIGGERED")
    return {
        "algoId": o.order_id, "clientAlgoId": o.client_order_id, "algoType": "CONDITIONAL",
        "orderType": formats._v(o.type), "symbol": o.symbol, "side": formats._v(o.side),
        "positionSide": "BOTH", "timeInForce": formats._v(o.tif) or "GTC",
        "quantity": sf(o.orig_qty), "algoStatus": status, "triggerPrice": sf(o.stop_price),
        "price": sf(o.price), "icebergQuantity": None,
        "selfTradePreventionMode": "EXPIRE_MAKER", "workingType": "CONTRACT_PRICE",
        "priceMatch": "NONE", "closePosition": False, "priceProtect": False,
        "reduceOnly": bool(o.reduce_only), "activatePrice": "", "callbackRate": "",
        "createTime": o.time_ms, "updateTime": o.update_ms, "triggerTime": 0,
        "goodTillDate": 0,
    }


@ROUTES.route("POST", "futures", "algoOrder", security=SIGNED, is_order=True)
def new_algo(srv: SimServer, req: Req) -> dict:
    """POST /fapi/v1/algoOrder (algoType=CONDITIONAL)."""
    if req.get("algoType", "CONDITIONAL") != "CONDITIONAL":
        raise ApiError(400, -1100, "Illegal characters found in parameter 'algoType'.")
    sym = _symbol(srv, req)
    kw = _order_kwargs(req, algo=True)
    if kw["type"] not in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET):
        raise ApiError(400, -1116, "Invalid orderType.")
    check_duplicate(srv, req, kw["client_order_id"], -4116, "ClientOrderId is duplicated.")
    order, events = _eng(srv).place_order(req.account, sym, kw.pop("side"), kw.pop("type"),
                                          ts_ms=req.now, **kw)
    srv.emit_user("futures", list(events))
    return _algo(order)


def _algo_ids(req: Req) -> dict[str, Any]:
    return _ids(req, "algoId", "clientAlgoId")


@ROUTES.route("GET", "futures", "algoOrder", security=SIGNED)
def get_algo(srv: SimServer, req: Req) -> dict:
    """GET /fapi/v1/algoOrder."""
    return _algo(_eng(srv).get_order(req.account, _symbol(srv, req), **_algo_ids(req)))


@ROUTES.route("DELETE", "futures", "algoOrder", security=SIGNED, order_request=True)
def cancel_algo(srv: SimServer, req: Req) -> dict:
    """DELETE /fapi/v1/algoOrder."""
    o, events = _eng(srv).cancel_order(req.account, _symbol(srv, req), **_algo_ids(req),
                                       ts_ms=req.now)
    srv.emit_user("futures", list(events))
    return {"algoId": o.order_id, "clientAlgoId": o.client_order_id, "code": "200",
            "msg": "success"}


@ROUTES.route("GET", "futures", "openAlgoOrders", security=SIGNED)
def open_algo(srv: SimServer, req: Req) -> list:
    """GET /fapi/v1/openAlgoOrders."""
    sym = _symbol(srv, req) if req.get("symbol") else None
    return [_algo(o) for o in _eng(srv).open_orders(req.account, sym)
            if o.type in (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)]
