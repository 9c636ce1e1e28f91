"""Binance JSON shapes for engine objects (orders, fills, positions, user-stream events).

Decimals are string-encoded as Binance does; spot uses 8 decimal places, futures the plain
normalised value.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


def _v(x: Any) -> Any:
    """Enum -> its value; anything else unchanged."""
    return getattr(x, "value", x)


def s8(d: Decimal | None) -> str:
    """Spot style: fixed 8 decimal places."""
    return f"{(d if d is not None else ZERO):.8f}"


def sf(d: Decimal | None) -> str:
    """Futures style: plain decimal, no exponent, no trailing zeros beyond one."""
    if d is None:
        return "0"
    s = format(d.normalize() if d != 0 else ZERO, "f")
    return s


def fmt(d: Decimal | None, market: str) -> str:
    """Market-appropriate decimal string."""
    return s8(d) if market == "spot" else sf(d)


def _avg(o: Any) -> Decimal:
    ap = getattr(o, "avg_price", None)
    if ap:
        return ap
    if o.executed_qty and o.executed_qty > 0:
        return o.cum_quote / o.executed_qty
    return ZERO


# -- spot -------------------------------------------------------------------------------------
def spot_order(o: Any, *, fills: list[Any] | None = None, resp_type: str = "FULL",
               transact: bool = True) -> dict[str, Any]:
    """A spot order (new-order response when ``transact`` else query shape)."""
    d: dict[str, Any] = {
        "symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
        "clientOrderId": o.client_order_id,
    }
    if transact:
        d["transactTime"] = o.update_ms
        if resp_type == "ACK":
            return d
    d.update({
        "price": s8(o.price), "origQty": s8(o.orig_qty), "executedQty": s8(o.executed_qty),
        "origQuoteOrderQty": s8(getattr(o, "orig_quote_qty", None)),
        "cummulativeQuoteQty": s8(o.cum_quote), "status": o.status,
        "timeInForce": _v(o.tif) or "GTC", "type": _v(o.type), "side": _v(o.side),
    })
    if not transact:
        d.update({"stopPrice": s8(o.stop_price), "icebergQty": s8(None), "time": o.time_ms,
                  "updateTime": o.update_ms, "isWorking": True})
    d["workingTime"] = o.time_ms
    d["selfTradePreventionMode"] = "EXPIRE_MAKER"
    if transact and resp_type == "FULL":
        d["fills"] = [{"price": s8(f.price), "qty": s8(f.qty), "commission": s8(f.commission),
                       "commissionAsset": f.commission_asset, "tradeId": f.trade_id}
                      for f in (fills or [])]
    return d


def spot_cancel(o: Any, orig_client_id: str, new_client_id: str, ts: int) -> dict[str, Any]:
    """Spot cancel response."""
    return {
        "symbol": o.symbol, "origClientOrderId": orig_client_id, "orderId": o.order_id,
        "orderListId": -1, "clientOrderId": new_client_id, "transactTime": ts,
        "price": s8(o.price), "origQty": s8(o.orig_qty), "executedQty": s8(o.executed_qty),
        "cummulativeQuoteQty": s8(o.cum_quote), "status": o.status,
        "timeInForce": _v(o.tif) or "GTC", "type": _v(o.type), "side": _v(o.side),
        "selfTradePreventionMode": "EXPIRE_MAKER",
    }


def spot_trade(f: Any) -> dict[str, Any]:
    """A spot ``myTrades`` row."""
    return {
        "symbol": f.symbol, "id": f.trade_id, "orderId": f.order_id, "orderListId": -1,
        "price": s8(f.price), "qty": s8(f.qty), "quoteQty": s8(f.quote_qty),
        "commission": s8(f.commission), "commissionAsset": f.commission_asset,
        "time": f.time_ms, "isBuyer": _v(f.side) == "BUY", "isMaker": bool(f.maker),
        "isBestMatch": True,
    }


def execution_report(ev: Any, event_time: int, cancel_cid: str | None = None
                     ) -> dict[str, Any]:
    """Spot ``executionReport`` for an engine ``OrderEvent``. As on Binance, a CANCELED report
    carries the cancel request's client id in ``c`` and the order's own in ``C``."""
    o, f = ev.order, ev.fill
    exec_type = ev.exec_type
    if exec_type == "AMENDMENT":
        exec_type = "REPLACED"
    last_qty = f.qty if f else ZERO
    last_px = f.price if f else ZERO
    c, orig = o.client_order_id, ""
    if ev.exec_type == "CANCELED":
        c, orig = cancel_cid or f"sim-cxl-{o.order_id}", o.client_order_id
    return {
        "e": "executionReport", "E": event_time, "s": o.symbol, "c": c,
        "S": _v(o.side), "o": _v(o.type), "f": _v(o.tif) or "GTC", "q": s8(o.orig_qty),
        "p": s8(o.price), "P": s8(o.stop_price), "F": s8(None), "g": -1,
        "C": orig, "x": exec_type, "X": o.status,
        "r": getattr(ev, "reject_reason", None) or "NONE", "i": o.order_id, "l": s8(last_qty),
        "z": s8(o.executed_qty), "L": s8(last_px), "n": s8(f.commission if f else ZERO),
        "N": f.commission_asset if f else None, "T": ev.time_ms,
        "t": f.trade_id if f else -1, "v": 0, "I": _event_id(ev), "w": o.status in
        ("NEW", "PARTIALLY_FILLED"), "m": bool(f.maker) if f else False, "M": False,
        "O": o.time_ms, "Z": s8(o.cum_quote), "Y": s8(f.quote_qty if f else ZERO),
        "Q": s8(None), "W": o.time_ms, "V": "EXPIRE_MAKER",
    }


_EVENT_SEQ = [0]


def _event_id(ev: Any) -> int:
    _EVENT_SEQ[0] += 1
    return _EVENT_SEQ[0]


def outbound_account_position(balances: dict[str, tuple[Decimal, Decimal]], event_time: int,
                              update_ms: int) -> dict[str, Any]:
    """Spot ``outboundAccountPosition`` for the changed balances."""
    return {"e": "outboundAccountPosition", "E": event_time, "u": update_ms,
            "B": [{"a": a, "f": s8(fr), "l": s8(lk)} for a, (fr, lk) in sorted(balances.items())]}


# -- futures ----------------------------------------------------------------------------------
def futures_order(o: Any, *, with_time: bool = False) -> dict[str, Any]:
    """A futures order (new/cancel/query shape)."""
    d: dict[str, Any] = {
        "orderId": o.order_id, "symbol": o.symbol, "status": o.status,
        "clientOrderId": o.client_order_id, "price": sf(o.price), "avgPrice": sf(_avg(o)),
        "origQty": sf(o.orig_qty), "executedQty": sf(o.executed_qty),
        "cumQty": sf(o.executed_qty), "cumQuote": sf(o.cum_quote),
        "timeInForce": _v(o.tif) or "GTC", "type": _v(o.type),
        "reduceOnly": bool(o.reduce_only), "closePosition": False, "side": _v(o.side),
        "positionSide": "BOTH", "stopPrice": sf(o.stop_price), "workingType": "CONTRACT_PRICE",
        "priceProtect": False, "origType": _v(o.type), "priceMatch": "NONE",
        "selfTradePreventionMode": "EXPIRE_MAKER", "goodTillDate": 0, "updateTime": o.update_ms,
    }
    if with_time:
        d["time"] = o.time_ms
    return d


def futures_trade(f: Any) -> dict[str, Any]:
    """A futures ``userTrades`` row."""
    return {
        "buyer": _v(f.side) == "BUY", "commission": sf(f.commission),
        "commissionAsset": f.commission_asset, "id": f.trade_id, "maker": bool(f.maker),
        "orderId": f.order_id, "price": sf(f.price), "qty": sf(f.qty),
        "quoteQty": sf(f.quote_qty), "realizedPnl": sf(f.realized_pnl), "side": _v(f.side),
        "positionSide": "BOTH", "symbol": f.symbol, "time": f.time_ms,
    }


def order_trade_update(ev: Any, event_time: int) -> dict[str, Any]:
    """Futures ``ORDER_TRADE_UPDATE`` for an engine ``OrderEvent``."""
    o, f = ev.order, ev.fill
    return {
        "e": "ORDER_TRADE_UPDATE", "E": event_time, "T": ev.time_ms,
        "o": {
            "s": o.symbol, "c": o.client_order_id, "S": _v(o.side), "o": _v(o.type),
            "f": _v(o.tif) or "GTC", "q": sf(o.orig_qty), "p": sf(o.price), "ap": sf(_avg(o)),
            "sp": sf(o.stop_price), "x": ev.exec_type, "X": o.status, "i": o.order_id,
            "l": sf(f.qty if f else ZERO), "z": sf(o.executed_qty),
            "L": sf(f.price if f else ZERO), "N": f.commission_asset if f else "USDT",
            "n": sf(f.commission if f else ZERO), "T": ev.time_ms,
            "t": f.trade_id if f else 0, "b": "0", "a": "0", "m": bool(f.maker) if f else False,
            "R": bool(o.reduce_only), "wt": "CONTRACT_PRICE", "ot": _v(o.type), "ps": "BOTH",
            "cp": False, "rp": sf(f.realized_pnl if f else ZERO), "pP": False, "si": 0,
            "ss": 0, "V": "EXPIRE_MAKER", "pm": "NONE", "gtd": 0,
        },
    }


def position_risk(p: Any) -> dict[str, Any]:
    """A ``positionRisk`` row (v2/v3 fields)."""
    return {
        "symbol": p.symbol, "positionSide": "BOTH", "positionAmt": sf(p.qty),
        "entryPrice": sf(p.entry_price), "breakEvenPrice": sf(p.entry_price),
        "markPrice": sf(p.mark_price), "unRealizedProfit": sf(p.unrealized_pnl),
        "liquidationPrice": sf(p.liquidation_price), "leverage": str(p.leverage),
        "maxNotionalValue": "1000000000", "marginType": str(_v(p.margin_type)).lower(),
        "isolatedMargin": sf(p.isolated_margin), "isAutoAddMargin": "false",
        "isolatedWallet": sf(p.isolated_margin), "notional": sf(p.notional),
        "initialMargin": sf(abs(p.notional) / p.leverage if p.leverage else ZERO),
        "maintMargin": "0", "adlQuantile": 0, "marginAsset": "USDT",
        "updateTime": p.update_ms,
    }


def account_update(ev: Any, event_time: int) -> dict[str, Any]:
    """Futures ``ACCOUNT_UPDATE`` for an engine ``AccountEvent``."""
    bals = []
    for asset, v in sorted((ev.balances or {}).items()):
        if isinstance(v, tuple | list):
            wb = v[0]
            cw = v[1] if len(v) > 1 else v[0]
            bc = v[2] if len(v) > 2 else ZERO
        else:
            wb = cw = v
            bc = ZERO
        bals.append({"a": asset, "wb": sf(wb), "cw": sf(cw), "bc": sf(bc)})
    pos = [{"s": p.symbol, "pa": sf(p.qty), "ep": sf(p.entry_price), "bep": sf(p.entry_price),
            "cr": "0", "up": sf(p.unrealized_pnl), "mt": str(_v(p.margin_type)).lower(),
            "iw": sf(p.isolated_margin), "ps": "BOTH"} for p in (ev.positions or [])]
    return {"e": "ACCOUNT_UPDATE", "E": event_time, "T": ev.time_ms,
            "a": {"m": ev.reason, "B": bals, "P": pos}}
