"""Binance REST JSON (spot ``/api/v3`` and USDT-M ``/fapi``) -> typed messages (pure).

Every decimal is built from the exchange's string exactly (``Decimal(str)``), never through a
float; market data (klines) are floats. ``ts_event_ns`` = the exchange's event/update time in
milliseconds x 1_000_000. Nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from models import messages as m
from models.enums import Market, Side

ZERO = Decimal(0)
NS_PER_MS = 1_000_000

#: Futures algo (conditional) order statuses -> the order statuses the OMS understands.
#: TRIGGERED / FINISHED mean a regular order now exists: callers look that one up.
ALGO_STATUS = {"NEW": "NEW", "CANCELED": "CANCELED", "EXPIRED": "EXPIRED",
               "REJECTED": "REJECTED", "TRIGGERING": "NEW", "TRIGGERED": "NEW",
               "FINISHED": "NEW"}


def dec(x: Any, default: Decimal = ZERO) -> Decimal:
    """Exact Decimal of an exchange value (strings as sent; ints; None/"" -> ``default``)."""
    if x is None or x == "":
        return default
    if isinstance(x, float):  # never expected from Binance; keep the shortest repr exactly
        return Decimal(repr(x))
    return Decimal(str(x))


def _price(x: Any) -> Decimal | None:
    """An order price; Binance sends "0" (or "0.00000000") for market orders -> None."""
    p = dec(x)
    return p if p > ZERO else None


def _ts_ns(d: dict[str, Any], *keys: str) -> int:
    for k in keys:
        v = d.get(k)
        if v:
            return int(v) * NS_PER_MS
    return 0


def is_algo(d: dict[str, Any]) -> bool:
    """True for a futures algo-order shape (``/fapi/v1/algoOrder``)."""
    return "algoId" in d or "clientAlgoId" in d


def order_status(d: dict[str, Any]) -> str:
    """The order status of any order shape (algo statuses mapped, see ``ALGO_STATUS``)."""
    if is_algo(d) and "status" not in d:
        return ALGO_STATUS.get(str(d.get("algoStatus", "NEW")), "NEW")
    return str(d.get("status", "NEW"))


def _cid(d: dict[str, Any]) -> str:
    return str(d.get("clientOrderId") or d.get("clientAlgoId") or "")


def _oid(d: dict[str, Any]) -> int:
    return int(d.get("orderId") or d.get("algoId") or 0)


def _qty(d: dict[str, Any]) -> Decimal:
    return dec(d.get("origQty", d.get("quantity")))


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------
def parse_rest_order(d: dict[str, Any], symbol: str) -> m.OrderStatusReported:
    """GET order (spot/futures/algo) -> ``OrderStatusReported`` (found=True)."""
    cum_quote = d.get("cummulativeQuoteQty", d.get("cumQuote"))
    return m.OrderStatusReported(
        symbol=symbol, ts_event_ns=_ts_ns(d, "updateTime", "transactTime", "time",
                                          "createTime"),
        client_order_id=_cid(d), exchange_order_id=_oid(d), status=order_status(d),
        executed_qty=dec(d.get("executedQty")), cum_quote=dec(cum_quote),
        price=_price(d.get("price")), qty=_qty(d), found=True)


def not_found(symbol: str, client_order_id: str, ts_event_ns: int = 0) -> m.OrderStatusReported:
    """The answer to a query for an order the exchange does not know (-2013)."""
    return m.OrderStatusReported(symbol=symbol, ts_event_ns=ts_event_ns,
                                 client_order_id=client_order_id, status="NOT_FOUND",
                                 found=False)


def parse_open_order(d: dict[str, Any], symbol: str) -> m.OpenOrderRow:
    """One row of GET openOrders (or openAlgoOrders) -> ``OpenOrderRow``."""
    return m.OpenOrderRow(
        client_order_id=_cid(d), side=Side(d["side"]), price=_price(d.get("price")),
        qty=_qty(d), filled_qty=dec(d.get("executedQty")),
        reduce_only=bool(d.get("reduceOnly", False)), status=order_status(d),
        exchange_order_id=_oid(d))


def _fills_of(d: dict[str, Any], symbol: str, cid: str, oid: int, side: Side,
              status: str, ts: int) -> list[m.Message]:
    """Spot FULL response fills (they carry tradeId) -> ``OrderFilled`` events."""
    out: list[m.Message] = []
    fills = d.get("fills") or []
    cum = ZERO
    for i, f in enumerate(fills):
        if f.get("tradeId") is None:
            continue  # without a trade id a fill cannot be deduplicated: leave it to streams
        qty = dec(f.get("qty"))
        cum += qty
        last = i == len(fills) - 1
        out.append(m.OrderFilled(
            symbol=symbol, ts_event_ns=ts, client_order_id=cid, exchange_order_id=oid,
            trade_id=int(f["tradeId"]), side=side, price=dec(f.get("price")), qty=qty,
            fee=dec(f.get("commission")), fee_asset=str(f.get("commissionAsset") or ""),
            maker=False, cum_qty=cum,
            order_status=status if last else "PARTIALLY_FILLED"))
    return out


def parse_order_ack(d: dict[str, Any], symbol: str, *, side: Side | None = None,
                    qty: Decimal | None = None, price: Decimal | None = None
                    ) -> list[m.Message]:
    """A POST order response -> ``[OrderAccepted, *OrderFilled, OrderExpired?]``.

    Spot FULL responses list the immediate fills with their ``tradeId``: they become
    ``OrderFilled`` (the user stream repeats them; the OMS dedups by trade id). Futures acks
    carry no trade ids: fills come from the user stream or reconciliation. An order that the
    exchange expired at once (IOC/FOK remainder, post-only) also yields ``OrderExpired`` —
    on futures only when nothing executed (the stream brings the fills first, then EXPIRED).
    ``side``/``qty``/``price`` fill in what an ACK-type response omits.
    """
    cid, oid = _cid(d), _oid(d)
    ts = _ts_ns(d, "transactTime", "updateTime", "createTime")
    s = Side(d["side"]) if d.get("side") else side
    if s is None:
        raise ValueError("order ack without side: pass side=")
    q = _qty(d) if ("origQty" in d or "quantity" in d) else (qty or ZERO)
    p = _price(d.get("price")) if "price" in d else price
    status = order_status(d) if ("status" in d or "algoStatus" in d) else "NEW"
    out: list[m.Message] = [m.OrderAccepted(symbol=symbol, ts_event_ns=ts, client_order_id=cid,
                                            exchange_order_id=oid, side=s, price=p, qty=q)]
    fills = _fills_of(d, symbol, cid, oid, s, status, ts)
    out += fills
    if status in ("EXPIRED", "EXPIRED_IN_MATCH"):
        booked = sum((f.qty for f in fills if isinstance(f, m.OrderFilled)), ZERO)
        if booked >= dec(d.get("executedQty")):
            out.append(m.OrderExpired(symbol=symbol, ts_event_ns=ts, client_order_id=cid,
                                      reason=status))
    return out


def parse_cancel(d: dict[str, Any], symbol: str, client_order_id: str) -> m.OrderCanceled:
    """A DELETE order response -> ``OrderCanceled`` (for our id, not the cancel's own id)."""
    return m.OrderCanceled(symbol=symbol, ts_event_ns=_ts_ns(d, "transactTime", "updateTime"),
                           client_order_id=client_order_id,
                           reason=str(d.get("status") or d.get("msg") or "CANCELED"))


def parse_modify_response(d: dict[str, Any], symbol: str, market: Market,
                          client_order_id: str, new_client_order_id: str = ""
                          ) -> list[m.Message]:
    """A modify answer -> events.

    Futures PUT /fapi/v1/order returns the amended order: ``[OrderModified]``.
    Spot POST /api/v3/order/cancelReplace returns ``cancelResponse`` + ``newOrderResponse``:
    ``[OrderAccepted(new), OrderModified(old -> new), *OrderFilled(new)]`` — the acceptance
    first so the OMS learns the new order's exchange id (its later ACK from OrderModified is
    then a no-op), the fills last.
    """
    if market is Market.FUTURES:
        return [m.OrderModified(symbol=symbol, ts_event_ns=_ts_ns(d, "updateTime"),
                                client_order_id=client_order_id, price=dec(d.get("price")),
                                qty=_qty(d))]
    new = d.get("newOrderResponse") or {}
    new_cid = _cid(new) or new_client_order_id
    ack = parse_order_ack(new, symbol)
    accepted, rest = ack[0], ack[1:]
    assert isinstance(accepted, m.OrderAccepted)
    modified = m.OrderModified(symbol=symbol, ts_event_ns=accepted.ts_event_ns,
                               client_order_id=client_order_id, new_client_order_id=new_cid,
                               price=accepted.price or ZERO, qty=accepted.qty)
    return [accepted, modified, *rest]


def parse_cancel_replace_error(data: dict[str, Any] | None, symbol: str, client_order_id: str,
                               new_client_order_id: str, code: int, msg: str
                               ) -> list[m.Message]:
    """A failed spot cancelReplace (-2021 / -2022 with its ``data``) -> events.

    cancel failed (new not attempted or failed) -> ``OrderModifyRejected`` (the OMS restores
    the old order and drops the new one); cancel succeeded but the new order failed ->
    ``OrderCanceled(old)`` + ``OrderRejected(new)``; both succeeded cannot be an error.
    """
    data = data or {}
    if data.get("cancelResult") == "SUCCESS":
        cresp = data.get("cancelResponse") or {}
        nresp = data.get("newOrderResponse") or {}
        return [parse_cancel(cresp, symbol, client_order_id),
                m.OrderRejected(symbol=symbol, client_order_id=new_client_order_id,
                                code=int(nresp.get("code", code)),
                                reason=str(nresp.get("msg", msg)))]
    cresp = data.get("cancelResponse") or {}
    return [m.OrderModifyRejected(symbol=symbol, client_order_id=client_order_id,
                                  code=int(cresp.get("code", code)),
                                  reason=str(cresp.get("msg", msg)))]


# --------------------------------------------------------------------------------------------
# Trades, klines, account
# --------------------------------------------------------------------------------------------
def parse_rest_trade(d: dict[str, Any], market: Market) -> m.TradeRow:
    """One row of spot GET myTrades / futures GET userTrades -> ``TradeRow``.

    Neither shape carries the client order id: ``client_order_id`` is "" unless the caller
    resolved it (``with_client_id``); the OMS also matches by ``exchange_order_id``.
    """
    if "side" in d:
        side = Side(d["side"])
    else:
        buyer = d.get("isBuyer", d.get("buyer"))
        side = Side.BUY if buyer else Side.SELL
    maker = d.get("isMaker", d.get("maker", False))
    return m.TradeRow(trade_id=int(d["id"]), exchange_order_id=int(d.get("orderId") or 0),
                      side=side, price=dec(d.get("price")), qty=dec(d.get("qty")),
                      fee=dec(d.get("commission")),
                      fee_asset=str(d.get("commissionAsset") or ""), maker=bool(maker),
                      time_ms=int(d.get("time") or 0))


def with_client_id(t: m.TradeRow, client_order_id: str) -> m.TradeRow:
    """The same trade with its order's client id filled in."""
    return m.TradeRow(trade_id=t.trade_id, client_order_id=client_order_id,
                      exchange_order_id=t.exchange_order_id, side=t.side, price=t.price,
                      qty=t.qty, fee=t.fee, fee_asset=t.fee_asset, maker=t.maker,
                      time_ms=t.time_ms)


def parse_rest_kline(row: list[Any]) -> m.KlineRow:
    """One REST kline ``[openTime, o, h, l, c, v, closeTime, ...]`` -> ``KlineRow``."""
    return m.KlineRow(int(row[0]), int(row[6]), float(row[1]), float(row[2]), float(row[3]),
                      float(row[4]), float(row[5]))


def kline_closed(row: m.KlineRow, symbol: str, interval: str) -> m.KlineClosed:
    """A closed ``KlineRow`` as the ``KlineClosed`` event the stream would have sent."""
    return m.KlineClosed(symbol=symbol, ts_event_ns=row.close_time_ms * NS_PER_MS,
                         interval=interval, open_time_ms=row.open_time_ms,
                         close_time_ms=row.close_time_ms, open=row.open, high=row.high,
                         low=row.low, close=row.close, volume=row.volume)


def parse_spot_balances(account: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """Spot GET account -> {asset: (free, locked)}."""
    return {str(b["asset"]): (dec(b.get("free")), dec(b.get("locked")))
            for b in account.get("balances", [])}


def parse_futures_balances(account: dict[str, Any]) -> dict[str, tuple[Decimal, Decimal]]:
    """Futures GET account -> {asset: (available, wallet - available)} per asset."""
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for a in account.get("assets", []):
        wallet = dec(a.get("walletBalance"))
        avail = dec(a.get("availableBalance"), wallet)
        out[str(a["asset"])] = (avail, wallet - avail)
    return out


def parse_futures_position(rows: list[dict[str, Any]] | dict[str, Any], symbol: str
                           ) -> dict[str, Decimal]:
    """positionRisk rows (or account ``positions``) -> {qty, entry_price, unrealized_pnl,
    mark_price} of ``symbol`` (one-way mode: the BOTH row; zeros when absent)."""
    items = rows if isinstance(rows, list) else rows.get("positions", [])
    qty = entry = upnl = mark = ZERO
    for r in items:
        if r.get("symbol") != symbol or r.get("positionSide", "BOTH") not in ("BOTH", ""):
            continue
        qty = dec(r.get("positionAmt"))
        entry = dec(r.get("entryPrice"))
        upnl = dec(r.get("unRealizedProfit", r.get("unrealizedProfit")))
        mark = dec(r.get("markPrice"))
    return {"qty": qty, "entry_price": entry, "unrealized_pnl": upnl, "mark_price": mark}


def parse_position_updated(pos: dict[str, Decimal], symbol: str, market: Market,
                           ts_event_ns: int = 0) -> m.PositionUpdated:
    """A position dict (``parse_futures_position`` / spot base balance) -> ``PositionUpdated``."""
    return m.PositionUpdated(symbol=symbol, ts_event_ns=ts_event_ns, market=market,
                             qty=pos.get("qty", ZERO), entry_price=pos.get("entry_price", ZERO),
                             unrealized_pnl=pos.get("unrealized_pnl", ZERO))


def parse_error_data(text: str) -> dict[str, Any] | None:
    """The ``data`` object of a Binance error body (cancelReplace failures), if any."""
    try:
        body = json.loads(text)
    except (ValueError, TypeError):
        return None
    data = body.get("data") if isinstance(body, dict) else None
    return data if isinstance(data, dict) else None
