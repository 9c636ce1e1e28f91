"""Binance WebSocket JSON -> typed messages (pure: no I/O, no clock; times are passed in).

Market streams (raw or combined ``{"stream", "data"}``): ``kline`` / ``continuous_kline`` (only
closed candles, ``k.x == true``), ``bookTicker``, ``markPriceUpdate``. User data (raw, or spot
WS-API ``{"subscriptionId", "event"}``): spot ``executionReport`` and
``outboundAccountPosition``; futures ``ORDER_TRADE_UPDATE`` and ``ACCOUNT_UPDATE``;
``listenKeyExpired`` / ``eventStreamTerminated`` become a ``StreamEnded`` marker (not a
message) telling the stream manager to reconnect with a new key / subscription.

Prices and quantities that go to the OMS are ``Decimal`` parsed from Binance's strings exactly;
market data (klines, book) are floats. ``ts_event_ns`` = event time ``E`` (else ``T``) in ns.
Trade ids are passed through unchanged: deduplication is the OMS's job.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.enums import Market, Side

ZERO = Decimal(0)
NS_PER_MS = 1_000_000



class StreamEnded(msgspec.Struct, frozen=True):
    """Marker: the server ended a user-data stream (listen key expired, subscription
    terminated); the stream must be reopened with a new key / subscription."""

    reason: str
    ts_ms: int = 0


class KlineOpen(msgspec.Struct, frozen=True):
    """Marker: an update of a kline still in progress (never forwarded; it tells the stream
    manager which bar is current, so a repair knows where to start)."""

    interval: str
    open_time_ms: int


Parsed = m.Message | StreamEnded | KlineOpen


def _dec(x: Any) -> Decimal:
    """Exact Decimal from Binance's string (or int); None/"" -> 0."""
    if x is None or x == "":
        return ZERO
    if isinstance(x, float):  # never expected from Binance; keep it exact-looking
        return Decimal(repr(x))
    return Decimal(x)


def _price(x: Any) -> Decimal | None:
    """A limit price, or None when Binance reports 0 (market / stop orders)."""
    d = _dec(x)
    return d if d != 0 else None


def _ts(d: dict[str, Any]) -> int:
    t = d.get("E") or d.get("T") or 0
    return int(t) * NS_PER_MS


def unwrap(payload: Any) -> Any:
    """The event inside a combined-stream (``data``) or WS-API (``event``) envelope."""
    if isinstance(payload, dict):
        if "stream" in payload and "data" in payload:
            return payload["data"]
        if "subscriptionId" in payload and "event" in payload:
            return payload["event"]
    return payload


# -- market data ---------------------------------------------------------------------------------
def parse_kline(d: dict[str, Any], symbol: str) -> m.KlineClosed | KlineOpen | None:
    """A ``kline`` / ``continuous_kline`` event: ``KlineClosed`` when closed, else a
    ``KlineOpen`` marker; None when the event is for another symbol."""
    sym = d.get("s") or d.get("ps") or ""
    if sym and sym.upper() != symbol:
        return None
    k = d["k"]
    if not k.get("x"):
        return KlineOpen(str(k["i"]), int(k["t"]))
    return m.KlineClosed(
        symbol=symbol, ts_event_ns=_ts(d), interval=str(k["i"]), open_time_ms=int(k["t"]),
        close_time_ms=int(k["T"]), open=float(k["o"]), high=float(k["h"]), low=float(k["l"]),
        close=float(k["c"]), volume=float(k["v"]))



def parse_book_ticker(d: dict[str, Any], symbol: str, recv_ns: int) -> m.BookUpdated | None:
    """A ``bookTicker`` event (spot has no event time: ``recv_ns`` is used instead)."""
    if str(d.get("s", symbol)).upper() != symbol:
        return None
    ts = _ts(d) or recv_ns
    return m.BookUpdated(symbol=symbol, ts_event_ns=ts, bid=float(d["b"]), bid_qty=float(d["B"]),
                         ask=float(d["a"]), ask_qty=float(d["A"]))


def parse_mark_price(d: dict[str, Any], symbol: str
                     ) -> tuple[m.MarkPriceUpdated, m.FundingRateUpdated] | None:
    """A futures ``markPriceUpdate``: the mark price and the funding rate / next funding."""
    if str(d.get("s", symbol)).upper() != symbol:
        return None
    ts = _ts(d)
    idx = d.get("i")
    mark = m.MarkPriceUpdated(symbol=symbol, ts_event_ns=ts, mark_price=_dec(d["p"]),
                              index_price=_dec(idx) if idx not in (None, "") else None)
    fund = m.FundingRateUpdated(symbol=symbol, ts_event_ns=ts, funding_rate=_dec(d.get("r")),
                                next_funding_time_ms=int(d.get("T") or 0))
    return mark, fund


def parse_market(payload: Any, symbol: str, recv_ns: int) -> list[Parsed]:
    """Any market-stream payload (raw or combined) -> parsed items (possibly empty)."""
    d = unwrap(payload)
    if not isinstance(d, dict):
        return []
    e = d.get("e")
    if e in ("kline", "continuous_kline"):
        k = parse_kline(d, symbol)
        return [k] if k is not None else []
    if e == "markPriceUpdate":
        mp = parse_mark_price(d, symbol)
        return list(mp) if mp is not None else []
    if e == "bookTicker" or (e is None and {"b", "a", "B", "A"} <= d.keys()):
        b = parse_book_ticker(d, symbol, recv_ns)
        return [b] if b is not None else []
    return []


# -- order events (spot executionReport and futures ORDER_TRADE_UPDATE share their letters) -------
def _order_event(o: dict[str, Any], symbol: str, ts: int, futures: bool) -> list[m.Message]:
    """One order update (``o`` = the executionReport itself, or ``ORDER_TRADE_UPDATE.o``)."""
    x = o.get("x")
    cid = str(o.get("c") or "")
    side = Side(o["S"])
    oid = int(o.get("i") or 0)
    if x == "NEW":
        return [m.OrderAccepted(symbol=symbol, ts_event_ns=ts, client_order_id=cid,
                                exchange_order_id=oid, side=side, price=_price(o.get("p")),
                                qty=_dec(o.get("q")))]
    if x in ("TRADE", "CALCULATED"):  # CALCULATED: futures liquidation / ADL execution
        return [m.OrderFilled(
            symbol=symbol, ts_event_ns=ts, client_order_id=cid, exchange_order_id=oid,
            trade_id=int(o.get("t") or 0), side=side, price=_dec(o.get("L")),
            qty=_dec(o.get("l")), fee=_dec(o.get("n")), fee_asset=str(o.get("N") or ""),
            maker=bool(o.get("m")), realized_pnl=_dec(o.get("rp")) if futures else ZERO,
            cum_qty=_dec(o.get("z")), order_status=str(o.get("X") or ""))]
    if x == "CANCELED":
        # Spot: ``c`` is the cancel request's id and ``C`` the cancelled order's own id.
        orig = str(o.get("C") or "") if not futures else ""
        return [m.OrderCanceled(symbol=symbol, ts_event_ns=ts, client_order_id=orig or cid,
                                reason=str(o.get("r") or "") if o.get("r") != "NONE" else "")]
    if x == "EXPIRED" or (x == "TRADE_PREVENTION" and o.get("X") in ("EXPIRED",
                                                                      "EXPIRED_IN_MATCH")):
        return [m.OrderExpired(symbol=symbol, ts_event_ns=ts, client_order_id=cid,
                               reason=str(x if x != "EXPIRED" else o.get("X") or ""))]
    if x == "REJECTED":
        return [m.OrderRejected(symbol=symbol, ts_event_ns=ts, client_order_id=cid,
                                reason=str(o.get("r") or ""))]
    if x in ("AMENDMENT", "REPLACED"):
        return [m.OrderModified(symbol=symbol, ts_event_ns=ts, client_order_id=cid,
                                price=_dec(o.get("p")), qty=_dec(o.get("q")))]
    return []


def parse_execution_report(d: dict[str, Any], symbol: str) -> list[m.Message]:
    """Spot ``executionReport`` -> order events (other symbols -> [])."""
    if str(d.get("s", "")).upper() != symbol:
        return []
    return _order_event(d, symbol, _ts(d), futures=False)


def parse_order_trade_update(d: dict[str, Any], symbol: str) -> list[m.Message]:
    """Futures ``ORDER_TRADE_UPDATE`` -> order events (other symbols -> [])."""
    o = d.get("o") or {}
    if str(o.get("s", "")).upper() != symbol:
        return []
    return _order_event(o, symbol, _ts(d), futures=True)


# -- balances and positions -----------------------------------------------------------------------
def parse_account_position(d: dict[str, Any], symbol: str) -> m.BalanceUpdated:
    """Spot ``outboundAccountPosition`` -> balances (free) and locked of the changed assets."""
    rows: Iterable[dict[str, Any]] = d.get("B") or []
    bal: dict[str, Decimal] = {}
    locked: dict[str, Decimal] = {}
    for r in rows:
        bal[str(r["a"])] = _dec(r.get("f"))
        locked[str(r["a"])] = _dec(r.get("l"))
    return m.BalanceUpdated(symbol=symbol, ts_event_ns=_ts(d), balances=bal, locked=locked)


def funding_id(symbol: str, event_time_ms: int) -> str:
    """Deterministic id of a funding settlement seen on the user stream."""
    return f"FUNDING-{symbol}-{event_time_ms}"


def parse_account_update(d: dict[str, Any], symbol: str) -> list[m.Message]:
    """Futures ``ACCOUNT_UPDATE`` -> ``BalanceUpdated`` (wallet balances), ``PositionUpdated``
    for ``symbol`` when its position is included and, for reason ``FUNDING_FEE`` with our
    symbol's position included, ``FundingPaid`` (amount = the balance change ``bc``).

    Binance omits ``P`` on cross-margin funding events, so such a fee cannot be attributed to a
    symbol here and is not emitted (the REST income history has it)."""
    a = d.get("a") or {}
    ts = _ts(d)
    out: list[m.Message] = []
    balances = {str(b["a"]): _dec(b.get("wb")) for b in a.get("B") or []}
    if balances:
        out.append(m.BalanceUpdated(symbol=symbol, ts_event_ns=ts, balances=balances))
    mine = [p for p in a.get("P") or [] if str(p.get("s", "")).upper() == symbol
            and p.get("ps", "BOTH") == "BOTH"]
    for p in mine:
        out.append(m.PositionUpdated(symbol=symbol, ts_event_ns=ts, market=Market.FUTURES,
                                     qty=_dec(p.get("pa")), entry_price=_dec(p.get("ep")),
                                     unrealized_pnl=_dec(p.get("up"))))
    if a.get("m") == "FUNDING_FEE" and mine:
        for b in a.get("B") or []:
            amount = _dec(b.get("bc"))
            if amount != 0:
                out.append(m.FundingPaid(symbol=symbol, ts_event_ns=ts,
                                         funding_id=funding_id(symbol, int(d.get("E") or 0)),
                                         amount=amount, asset=str(b["a"])))
    return out


def parse_user(payload: Any, market: Market, symbol: str) -> list[Parsed]:
    """Any user-data payload (raw or WS-API envelope) -> parsed items (possibly empty)."""
    d = unwrap(payload)
    if not isinstance(d, dict):
        return []
    e = d.get("e")
    if e in ("listenKeyExpired", "eventStreamTerminated"):
        return [StreamEnded(str(e), int(d.get("E") or 0))]
    if market is Market.SPOT:
        if e == "executionReport":
            return list(parse_execution_report(d, symbol))
        if e == "outboundAccountPosition":
            return [parse_account_position(d, symbol)]
        return []
    if e == "ORDER_TRADE_UPDATE":
        return list(parse_order_trade_update(d, symbol))
    if e == "ACCOUNT_UPDATE":
        return list(parse_account_update(d, symbol))
    return []
