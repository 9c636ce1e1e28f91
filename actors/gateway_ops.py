"""The gateway's REST operations: OMS commands in, typed events out (gateway worker thread).

Each function calls ``VenueClient`` and turns every outcome into the events the OMS expects;
none raises for an exchange error:

* definitive refusal -> ``OrderRejected`` / ``OrderCancelRejected`` / ``OrderModifyRejected``
  with Binance's code (never retried here);
* timeout / 5xx / -1006 / -1007 -> ``OrderOutcomeUnknown`` (the OMS queries by clientOrderId;
  nothing is ever resent blindly);
* **not sent** (paused by a 429 longer than the request timeout, 418 ban, no connection) ->
  a new order is answered ``OrderRejected(code=-1003, reason="not sent: ...")``. This is
  chosen only because ``VenueClient`` raises ``NotSentError`` strictly *before* the request
  leaves the process (or when no TCP connection could be made), so the exchange provably
  has no such order; short pauses are waited out inside ``VenueClient`` instead.

Events carry the command's ``correlation_id`` (or its ``msg_id``) for tracing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import msgspec

from actors.venue_client import VenueClient
from actors.venue_errors import (
    NotSentError,
    OrderNotFoundError,
    OrderRejectedError,
    UnknownOutcomeError,
    VenueError,
)
from infra.logs import log_event
from models import binance_parse as bp
from models import messages as m
from models.backoff import Backoff
from models.enums import Market, OrderType, Side
from models.timeframes import INTERVAL_MS

NOT_SENT_CODE = -1003



def _log(event: str, msg: str = "", level: str = "WARNING", **ctx: Any) -> None:
    try:
        log_event(event, msg, level=level, **ctx)
    except Exception:  # noqa: BLE001 - logging must never break the worker
        pass


def _tag(events: list[m.Message], cmd: m.Message) -> list[m.Message]:
    """Give events the command's correlation id (and symbol when missing)."""
    corr = cmd.correlation_id or cmd.msg_id
    out = []
    for ev in events:
        changes: dict[str, Any] = {"correlation_id": corr}
        if not ev.symbol:
            changes["symbol"] = cmd.symbol
        out.append(msgspec.structs.replace(ev, **changes))
    return out


def _now_ns(client: VenueClient) -> int:
    return client.server_time_ms() * bp.NS_PER_MS


# --------------------------------------------------------------------------------------------
# Orders
# --------------------------------------------------------------------------------------------
def send_order(client: VenueClient, market: Market, msg: m.SendOrder) -> list[m.Message]:
    """New order -> ``OrderAccepted`` (+ ``OrderFilled`` for spot FULL fills, ``OrderExpired``)
    | ``OrderRejected`` | ``OrderOutcomeUnknown``."""
    cid, sym = msg.client_order_id, msg.symbol
    ts = _now_ns(client)
    try:
        d = client.place_order(sym, cid, msg.side, msg.order_type, msg.qty, msg.price, msg.tif,
                               msg.reduce_only, msg.stop_price)
    except NotSentError as e:
        return _tag([m.OrderRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                     code=NOT_SENT_CODE, reason=f"not sent: {e}")], msg)
    except OrderRejectedError as e:
        return _tag([m.OrderRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                     code=e.code, reason=e.msg)], msg)
    except UnknownOutcomeError as e:
        return _tag([m.OrderOutcomeUnknown(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                           detail=e.detail)], msg)
    except VenueError as e:  # TimeSyncError while retrying a -1021: that attempt was refused
        return _tag([m.OrderRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                     code=-1021, reason=str(e))], msg)
    try:
        events = bp.parse_order_ack(d, sym, side=msg.side, qty=msg.qty, price=msg.price)
    except Exception as e:  # noqa: BLE001 - the order exists but its answer is unreadable
        return _tag([m.OrderOutcomeUnknown(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                           detail=f"unreadable ack: {e}")], msg)
    return _tag(events, msg)


def cancel_order(client: VenueClient, market: Market, msg: m.SendCancel) -> list[m.Message]:
    """Cancel -> ``OrderCanceled`` | ``OrderCancelRejected`` (code -2011: unknown order) |
    ``OrderOutcomeUnknown``."""
    cid, sym = msg.client_order_id, msg.symbol
    ts = _now_ns(client)
    try:
        d = client.cancel_order(sym, cid)
    except NotSentError as e:
        ev: m.Message = m.OrderCancelRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                              code=NOT_SENT_CODE, reason=f"not sent: {e}")
    except OrderRejectedError as e:  # includes OrderNotFoundError (-2011)
        ev = m.OrderCancelRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                   code=e.code, reason=e.msg)
    except UnknownOutcomeError as e:
        ev = m.OrderOutcomeUnknown(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                   detail=f"cancel: {e.detail}")
    except VenueError as e:
        ev = m.OrderCancelRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                   code=-1021, reason=str(e))
    else:
        ev = bp.parse_cancel(d, sym, cid)
        if not ev.ts_event_ns:
            ev = msgspec.structs.replace(ev, ts_event_ns=ts)
    return _tag([ev], msg)


def modify_order(client: VenueClient, market: Market, msg: m.SendModify) -> list[m.Message]:
    """Modify -> ``OrderModified`` (spot: preceded by ``OrderAccepted`` of the new order and
    followed by its immediate fills) | ``OrderModifyRejected`` (the OMS falls back to cancel +
    new) | spot: ``OrderCanceled`` + ``OrderRejected(new)`` when only the new leg failed |
    ``OrderOutcomeUnknown`` (spot: for both ids)."""
    cid, sym, new = msg.client_order_id, msg.symbol, msg.new_client_order_id
    ts = _now_ns(client)

    def rejected(code: int, reason: str) -> list[m.Message]:
        return _tag([m.OrderModifyRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                           code=code, reason=reason)], msg)

    if market is Market.SPOT and not new:
        return rejected(-1102, "spot cancel-replace needs new_client_order_id")
    try:
        d = client.modify_order(sym, cid, msg.side, msg.qty, msg.price, new or None)
    except NotSentError as e:
        return rejected(NOT_SENT_CODE, f"not sent: {e}")
    except OrderRejectedError as e:
        if market is Market.SPOT and e.data:
            return _tag(bp.parse_cancel_replace_error(e.data, sym, cid, new, e.code, e.msg),
                        msg)
        return rejected(e.code, e.msg)
    except UnknownOutcomeError as e:
        ids = [cid, new] if market is Market.SPOT else [cid]
        return _tag([m.OrderOutcomeUnknown(symbol=sym, ts_event_ns=ts, client_order_id=i,
                                           detail=f"modify: {e.detail}") for i in ids], msg)
    except VenueError as e:
        return rejected(-1021, str(e))
    try:
        return _tag(bp.parse_modify_response(d, sym, market, cid, new), msg)
    except Exception as e:  # noqa: BLE001 - it happened, but the answer is unreadable
        ids = [cid, new] if market is Market.SPOT else [cid]
        return _tag([m.OrderOutcomeUnknown(symbol=sym, ts_event_ns=ts, client_order_id=i,
                                           detail=f"unreadable modify answer: {e}")
                     for i in ids], msg)


def query_order(client: VenueClient, market: Market, msg: m.QueryOrder) -> list[m.Message]:
    """Query by clientOrderId -> ``OrderStatusReported`` (``found=False`` when the exchange
    does not know the order). When the query itself fails (after the client's retries) ->
    ``OrderOutcomeUnknown``, which makes the OMS query again later."""
    cid, sym = msg.client_order_id, msg.symbol
    ts = _now_ns(client)
    try:
        d = client.query_order(sym, cid)
    except OrderNotFoundError:
        d = None
    except (UnknownOutcomeError, NotSentError, OrderRejectedError, VenueError) as e:
        _log("QUERY_FAILED", str(e), symbol=sym, client_order_id=cid)
        return _tag([m.OrderOutcomeUnknown(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                           detail=f"query failed: {e}")], msg)
    if d is None:
        return _tag([bp.not_found(sym, cid, ts)], msg)
    ev = bp.parse_rest_order(d, sym)
    if not ev.ts_event_ns:
        ev = msgspec.structs.replace(ev, ts_event_ns=ts)
    return _tag([ev], msg)


# --------------------------------------------------------------------------------------------
# Market data and account
# --------------------------------------------------------------------------------------------
def _closed_klines(client: VenueClient, symbol: str, interval: str, start_ms: int, limit: int
                   ) -> tuple[list[m.KlineRow], bool]:
    """Up to ``limit`` closed klines (oldest first) from ``start_ms`` (0: the latest ones);
    returns (rows, complete) — complete is False when a request failed midway."""
    if interval not in INTERVAL_MS:
        raise ValueError(f"unknown interval {interval!r}")
    cap = 1000 if client.market is Market.SPOT else 1500
    rows: dict[int, m.KlineRow] = {}
    try:
        now = client.server_time()
        if start_ms > 0:
            start = start_ms
            while len(rows) < limit:
                want = min(cap, limit - len(rows))
                page = client.klines(symbol, interval, start, None, want)
                closed = [bp.parse_rest_kline(r) for r in page if int(r[6]) < now]
                for k in closed:
                    rows[k.open_time_ms] = k
                if len(page) < want or len(closed) < len(page):
                    break  # reached the present
                start = int(page[-1][0]) + 1
            out = sorted(rows.values(), key=lambda k: k.open_time_ms)[:limit]
        else:
            end: int | None = None
            while len(rows) < limit:
                want = min(cap, limit - len(rows) + 1)  # +1: the bar in progress
                page = client.klines(symbol, interval, None, end, want)
                for r in page:
                    if int(r[6]) < now:
                        k = bp.parse_rest_kline(r)
                        rows[k.open_time_ms] = k
                if len(page) < want or not page:
                    break  # no older data
                end = int(page[0][0]) - 1
            out = sorted(rows.values(), key=lambda k: k.open_time_ms)[-limit:]
        return out, True
    except VenueError as e:
        _log("HISTORY_INCOMPLETE", str(e), symbol=symbol, interval=interval, got=len(rows))
        return sorted(rows.values(), key=lambda k: k.open_time_ms)[-limit:], False


def history(client: VenueClient, symbol: str, msg: m.RequestHistory) -> m.HistoryLoaded:
    """Up to ``msg.limit`` CLOSED bars (close time < server now), oldest first, paginated:
    from ``msg.start_ms``, or the latest ``msg.limit`` when it is 0. ``complete=False`` when
    a request failed midway (the rows got so far are still returned)."""
    rows, ok = _closed_klines(client, symbol, msg.interval, msg.start_ms, msg.limit)
    ts = rows[-1].close_time_ms * bp.NS_PER_MS if rows else 0
    ev = m.HistoryLoaded(symbol=symbol, ts_event_ns=ts, interval=msg.interval, klines=rows,
                         complete=ok)
    return _tag([ev], msg)[0]  # type: ignore[return-value]


def account_events(client: VenueClient, market: Market, symbol: str) -> list[m.Message]:
    """``AccountReported`` (wallet balance) + ``PositionUpdated`` + ``BalanceUpdated`` from one
    account request; [] (logged) when the exchange cannot be read."""
    ts = _now_ns(client)
    try:
        if market is Market.FUTURES:
            acct = client.futures_account()
            wallet = bp.dec(acct.get("totalWalletBalance"))
            pos = bp.parse_futures_position(acct, symbol)
            bals = bp.parse_futures_balances(acct)
            asset = "USDT"
        else:
            acct = client.spot_account()
            bals = bp.parse_spot_balances(acct)
            base, asset = client.assets(symbol)
            free, locked = bals.get(asset, (bp.ZERO, bp.ZERO))
            wallet = free + locked
            bfree, blocked = bals.get(base, (bp.ZERO, bp.ZERO))
            pos = {"qty": bfree + blocked}
    except (VenueError, ValueError) as e:
        _log("ACCOUNT_UNAVAILABLE", str(e), symbol=symbol)
        return []
    return [
        m.AccountReported(symbol=symbol, ts_event_ns=ts, wallet_balance=wallet, asset=asset,
                          market=market),
        bp.parse_position_updated(pos, symbol, market, ts),
        m.BalanceUpdated(symbol=symbol, ts_event_ns=ts,
                         balances={a: f for a, (f, _) in bals.items()},
                         locked={a: lk for a, (_, lk) in bals.items()}),
    ]


def repair(client: VenueClient, market: Market, symbol: str, since_kline_open_ms: int,
           interval: str, since_trade_id: int, max_klines: int = 5000
           ) -> tuple[list[m.Message], dict[str, Any]]:
    """Gap repair after a stream reconnect: the closed klines opened after
    ``since_kline_open_ms`` (as ``KlineClosed``; none when it is 0) and an
    ``ExchangeSnapshotReceived`` (open orders, trades after ``since_trade_id``, position,
    balances). Summary: ``{"klines": n, "trades": n, "ok": bool}``."""
    out: list[m.Message] = []
    ok = True
    n_k = n_t = 0
    if since_kline_open_ms > 0:
        rows, ok = _closed_klines(client, symbol, interval, since_kline_open_ms + 1, max_klines)
        rows = [k for k in rows if k.open_time_ms > since_kline_open_ms]
        out += [bp.kline_closed(k, symbol, interval) for k in rows]
        n_k = len(rows)
    try:
        snap = client.snapshot_for_reconciliation(symbol, since_trade_id)
    except VenueError as e:
        _log("REPAIR_SNAPSHOT_FAILED", str(e), symbol=symbol)
        ok = False
    else:
        out.append(snap)
        n_t = len(snap.trades)
    return out, {"klines": n_k, "trades": n_t, "ok": ok}


def reconciliation(client: VenueClient, market: Market, symbol: str, since_trade_id: int, *,
                   attempts: int = 3, backoff: Backoff | None = None,
                   sleep: Callable[[float], None] = time.sleep) -> list[m.Message]:
    """``ExchangeSnapshotReceived`` followed by the account events, for a
    ``RequestReconciliation``. The snapshot is retried ``attempts`` times with backoff (reads
    are safe to repeat); [] (logged RECONCILIATION_UNAVAILABLE) when the exchange cannot be
    read — e.g. banned — so the caller can ask again later."""
    bo = backoff or Backoff(0.5, 5.0)
    for i in range(attempts):
        try:
            snap = client.snapshot_for_reconciliation(symbol, since_trade_id)
        except NotSentError as e:  # paused/banned: retrying now would not be sent either
            _log("RECONCILIATION_UNAVAILABLE", str(e), symbol=symbol)
            return []
        except VenueError as e:
            if i + 1 >= attempts:
                _log("RECONCILIATION_UNAVAILABLE", str(e), symbol=symbol)
                return []
            sleep(bo.next())
            continue
        return [snap, *account_events(client, market, symbol)]
    return []


# --------------------------------------------------------------------------------------------
# Wind-down of a symbol that gave up
# --------------------------------------------------------------------------------------------
WIND_DOWN_ATTEMPTS = 3
WIND_DOWN_SETTLE_S = 10.0


def wind_down(client: VenueClient, market: Market, symbol: str, msg: m.WindDownSymbol,
              cid: str, stopping: threading.Event, settle_s: float = WIND_DOWN_SETTLE_S
              ) -> m.SymbolWoundDown:
    """Cancel every open order of ``symbol``; with ``msg.mode`` flatten on futures, close the
    position with a reduce-only MARKET order ``cid`` and wait up to ``settle_s`` for the
    exchange to show it flat. Every step is retried a few times and read back from the
    exchange; nothing raises. A spot holding is never sold (it may be the owner's own coins;
    the amount is reported)."""
    notes: list[str] = []

    def attempt(what: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        for k in range(WIND_DOWN_ATTEMPTS):
            try:
                return True, fn()
            except VenueError as e:
                notes.append(f"{what} failed ({type(e).__name__}: {e})")
                if stopping.wait(min(2.0, 0.5 * (k + 1))):
                    break
        return False, None

    attempt("time sync", client.sync_time)
    cancelled, _ = attempt("cancel all", lambda: client.cancel_all(symbol))
    ok, pos = attempt("position", lambda: client.position(symbol))
    before = Decimal(pos["qty"]) if ok else Decimal(0)
    after = before
    if not ok:
        notes.append("position unknown")
    if ok and market is Market.FUTURES and msg.mode == "flatten" and before != 0:
        side = Side.SELL if before > 0 else Side.BUY
        try:
            client.place_order(symbol, cid, side, OrderType.MARKET, abs(before), None, None,
                               reduce_only=True)
            notes.append(f"reduce-only MARKET {side.value} {abs(before)} sent as {cid}")
        except OrderRejectedError as e:
            notes.append(f"flatten order {cid} rejected ({e.code}: {e.msg})")
        except (UnknownOutcomeError, VenueError) as e:
            notes.append(f"flatten order {cid}: {type(e).__name__}: {e}; reading the position")
        deadline = time.monotonic() + settle_s
        while True:
            ok, pos = attempt("position", lambda: client.position(symbol))
            if ok:
                after = Decimal(pos["qty"])
            if (ok and after == 0) or time.monotonic() >= deadline or stopping.wait(0.25):
                break
    elif market is Market.SPOT and before != 0:
        notes.append(f"spot holding of {before} left in the account (never sold by a wind-down)")
    elif msg.mode != "flatten" and before != 0:
        notes.append(f"position {before} left open (give_up_mode {msg.mode})")
    ok, rows = attempt("open orders", lambda: client.open_orders(symbol))
    left = len(rows) if ok else -1
    return m.SymbolWoundDown(symbol=symbol, orders_cancelled=cancelled and left == 0,
                             open_orders_left=left, position_before=before,
                             position_after=after, detail="; ".join(notes))
