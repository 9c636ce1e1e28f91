"""Order records (OMS core): one order as the OMS knows it, triggers and fills applied to it,
exchange views and polls, and the classification of failed requests. Pure: timestamps are
passed in. The state machine (table and real-world edges) is ``models.order_states``.
"""

from __future__ import annotations

from decimal import Decimal
from enum import Enum
from typing import Protocol

import msgspec

from models.client_ids import client_order_id
from models.enums import OrderType, Side, TimeInForce
from models.order_states import (
    TERMINAL,
    IllegalTransition,
    OrderState,
    Trigger,
    resolved_state,
)

ZERO = Decimal(0)


class OverFill(ValueError):
    """A trade would fill more than the order's quantity (exchange/protocol error)."""


# ------------------------------------------------------------------------------------------
# Order record
# ------------------------------------------------------------------------------------------
class OrderRecord(msgspec.Struct, frozen=True, kw_only=True):
    """One order as the OMS knows it; functions below return updated copies."""

    client_order_id: str
    symbol: str
    side: Side
    type: OrderType = OrderType.LIMIT
    tif: TimeInForce | None = TimeInForce.GTC
    price: Decimal | None = None
    qty: Decimal
    stop_price: Decimal | None = None
    filled_qty: Decimal = ZERO
    avg_fill_price: Decimal = ZERO
    quote_filled: Decimal = ZERO
    fees: dict[str, Decimal] = {}
    state: OrderState = OrderState.PENDING_NEW
    exchange_order_id: int | None = None
    key: str = ""
    generation: int = 0
    kind: str = "ENTRY"
    reduce_only: bool = False
    reservation_id: str = ""
    intent_id: str = ""
    created_ms: int = 0
    updated_ms: int = 0
    seen_trade_ids: tuple[int, ...] = ()
    pending_price: Decimal | None = None
    pending_qty: Decimal | None = None
    outcome_unknown: bool = False
    exchange_executed_qty: Decimal = ZERO
    last_trigger: str = ""
    reason: str = ""
    code: int = 0

    @property
    def is_open(self) -> bool:
        """Not in a terminal state."""
        return self.state not in TERMINAL

    @property
    def remaining_qty(self) -> Decimal:
        """Quantity not yet filled."""
        return self.qty - self.filled_qty

    @property
    def missing_fill_qty(self) -> Decimal:
        """Executed quantity the exchange reported but whose trades are not booked yet."""
        return max(ZERO, self.exchange_executed_qty - self.filled_qty)


def new_order(*, prefix: str, symbol: str, key: str, generation: int, side: Side, qty: Decimal,
              price: Decimal | None = None, order_type: OrderType = OrderType.LIMIT,
              tif: TimeInForce | None = TimeInForce.GTC, reduce_only: bool = False,
              kind: str = "ENTRY", reservation_id: str = "", intent_id: str = "",
              stop_price: Decimal | None = None, ts_ms: int = 0) -> OrderRecord:
    """A fresh PENDING_NEW record with its deterministic client order id."""
    if qty <= ZERO:
        raise ValueError("qty must be > 0")
    return OrderRecord(
        client_order_id=client_order_id(prefix, symbol, key, generation), symbol=symbol,
        side=side, type=order_type, tif=tif, price=price, qty=qty, stop_price=stop_price,
        key=key, generation=generation, kind=kind, reduce_only=reduce_only,
        reservation_id=reservation_id, intent_id=intent_id, created_ms=ts_ms, updated_ms=ts_ms,
        last_trigger=Trigger.SUBMIT.value)


def _resolve(rec: OrderRecord, trigger: Trigger, filled: Decimal) -> OrderState | None:
    """Target state for ``trigger`` (None = ignored), with the N* resolution."""
    try:
        return resolved_state(rec.state, trigger, filled > ZERO)
    except IllegalTransition as e:
        e.client_order_id = rec.client_order_id
        e.args = (f"{rec.client_order_id}: {trigger.value} is illegal in {rec.state.value}",)
        raise


_FILL_TRIGGERS = frozenset({Trigger.FILL, Trigger.PARTIAL_FILL})


def apply_trigger(rec: OrderRecord, trigger: Trigger, *, ts_ms: int,
                  exchange_order_id: int | None = None, price: Decimal | None = None,
                  qty: Decimal | None = None, code: int = 0, reason: str = "") -> OrderRecord:
    """Apply a non-fill trigger; returns a new record (the same object if ignored).

    ``price``/``qty``: the target of MODIFY_REQUEST, or the new values on MODIFY_ACK (default:
    the pending target). Fills go through ``apply_fill`` (they carry money).
    """
    if trigger in _FILL_TRIGGERS:
        raise ValueError("fills carry money: use apply_fill")
    target = _resolve(rec, trigger, rec.filled_qty)
    if target is None:
        if exchange_order_id is not None and rec.exchange_order_id is None:
            return msgspec.structs.replace(rec, exchange_order_id=exchange_order_id)
        return rec
    changes: dict = {"state": target, "updated_ms": ts_ms, "last_trigger": trigger.value,
                     "outcome_unknown": trigger is Trigger.UNKNOWN_OUTCOME}
    if exchange_order_id is not None and rec.exchange_order_id is None:
        changes["exchange_order_id"] = exchange_order_id
    if code or reason:
        changes["code"], changes["reason"] = code, reason
    if trigger is Trigger.MODIFY_REQUEST:
        if price is None or qty is None:
            raise ValueError("MODIFY_REQUEST needs the target price and qty")
        if qty <= rec.filled_qty:
            raise ValueError(f"modify qty {qty} must exceed filled {rec.filled_qty}")
        changes["pending_price"], changes["pending_qty"] = price, qty
    elif trigger is Trigger.MODIFY_ACK:
        new_price = price if price is not None else rec.pending_price
        new_qty = qty if qty is not None else rec.pending_qty
        if new_qty is not None and new_qty <= rec.filled_qty:
            raise ValueError(f"modified qty {new_qty} must exceed filled {rec.filled_qty}")
        changes["price"] = new_price if new_price is not None else rec.price
        changes["qty"] = new_qty if new_qty is not None else rec.qty
        changes["pending_price"] = changes["pending_qty"] = None
    elif trigger is Trigger.MODIFY_REJECT or (target is not OrderState.PENDING_MODIFY
                                              and rec.pending_price is not None):
        changes["pending_price"] = changes["pending_qty"] = None
    return msgspec.structs.replace(rec, **changes)


def apply_fill(rec: OrderRecord, trade_id: int, price: Decimal, qty: Decimal, fee: Decimal,
               fee_asset: str, ts_ms: int) -> tuple[OrderRecord, bool]:
    """Book one trade (deduplicated by ``trade_id``); returns ``(record, applied)``.

    Raises ``OverFill`` if the trade would fill beyond the order quantity.
    """
    if trade_id in rec.seen_trade_ids:
        return rec, False
    if qty <= ZERO or price <= ZERO:
        raise ValueError(f"trade {trade_id}: price and qty must be > 0")
    filled = rec.filled_qty + qty
    if filled > rec.qty:
        raise OverFill(f"{rec.client_order_id}: trade {trade_id} fills {filled} > {rec.qty}")
    trigger = Trigger.FILL if filled == rec.qty else Trigger.PARTIAL_FILL
    target = _resolve(rec, trigger, filled)
    quote = rec.quote_filled + price * qty
    fees = dict(rec.fees)
    if fee:
        fees[fee_asset] = fees.get(fee_asset, ZERO) + fee
    changes: dict = {
        "filled_qty": filled, "quote_filled": quote, "avg_fill_price": quote / filled,
        "fees": fees, "seen_trade_ids": (*rec.seen_trade_ids, trade_id), "updated_ms": ts_ms,
        "exchange_executed_qty": max(rec.exchange_executed_qty, filled),
    }
    if target is not None:
        changes["state"] = target
        changes["last_trigger"] = trigger.value
        if target is OrderState.FILLED:
            changes["pending_price"] = changes["pending_qty"] = None
            changes["outcome_unknown"] = False
    return msgspec.structs.replace(rec, **changes), True


# ------------------------------------------------------------------------------------------
# Exchange views, polls
# ------------------------------------------------------------------------------------------
class ExchangeOrderView(Protocol):
    """What the exchange says about one order (``messages.OpenOrderRow`` fits)."""

    client_order_id: str
    exchange_order_id: int
    side: Side
    price: Decimal | None
    qty: Decimal
    filled_qty: Decimal
    status: str


class ExchangeTradeView(Protocol):
    """One exchange trade (``messages.TradeRow`` fits)."""

    trade_id: int
    client_order_id: str
    exchange_order_id: int
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    time_ms: int


class OrderView(msgspec.Struct, frozen=True, kw_only=True):
    """Concrete ``ExchangeOrderView`` (also used for query answers; ``found=False`` = -2013)."""

    client_order_id: str
    exchange_order_id: int = 0
    side: Side = Side.BUY
    price: Decimal | None = None
    qty: Decimal = ZERO
    filled_qty: Decimal = ZERO
    status: str = "NEW"
    found: bool = True


class TradeView(msgspec.Struct, frozen=True, kw_only=True):
    """Concrete ``ExchangeTradeView``."""

    trade_id: int
    client_order_id: str = ""
    exchange_order_id: int = 0
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal = ZERO
    fee_asset: str = ""
    time_ms: int = 0


_POLL = {
    "NEW": Trigger.POLL_NEW,
    "PENDING_NEW": Trigger.POLL_NEW,
    "PENDING_CANCEL": Trigger.POLL_NEW,
    "PARTIALLY_FILLED": Trigger.POLL_PARTIALLY_FILLED,
    "FILLED": Trigger.POLL_FILLED,
    "CANCELED": Trigger.POLL_CANCELED,
    "EXPIRED": Trigger.POLL_EXPIRED,
    "EXPIRED_IN_MATCH": Trigger.POLL_EXPIRED,
    "REJECTED": Trigger.POLL_REJECTED,
    "NOT_FOUND": Trigger.POLL_NOT_FOUND,
}


def poll_trigger(status: str, found: bool = True) -> Trigger:
    """Map a Binance order status (or not-found) to its POLL_* trigger."""
    if not found:
        return Trigger.POLL_NOT_FOUND
    try:
        return _POLL[status]
    except KeyError:
        raise ValueError(f"unknown exchange order status {status!r}") from None


def apply_exchange_status(rec: OrderRecord, view: ExchangeOrderView, ts_ms: int) -> OrderRecord:
    """Apply a query answer or reconciliation row (monotonic: never moves backwards).

    The exchange's executed quantity is remembered (``missing_fill_qty`` tells the OMS to
    fetch trades); the filled quantity itself only grows through ``apply_fill``.
    """
    trigger = poll_trigger(view.status, getattr(view, "found", True))
    eid = getattr(view, "exchange_order_id", 0) or None
    live = trigger in (Trigger.POLL_NEW, Trigger.POLL_PARTIALLY_FILLED)
    if live and rec.state is OrderState.PENDING_MODIFY:
        matches = view.price == rec.pending_price and view.qty == rec.pending_qty
        if matches:
            trigger = Trigger.MODIFY_ACK
        elif rec.outcome_unknown:
            trigger = Trigger.MODIFY_REJECT
    elif live and rec.state is OrderState.PENDING_CANCEL and rec.outcome_unknown:
        trigger = Trigger.CANCEL_REJECT
    out = apply_trigger(rec, trigger, ts_ms=ts_ms, exchange_order_id=eid,
                        price=view.price if trigger is Trigger.MODIFY_ACK else None,
                        qty=view.qty if trigger is Trigger.MODIFY_ACK else None,
                        reason="NOT_FOUND" if trigger is Trigger.POLL_NOT_FOUND else "")
    executed = getattr(view, "filled_qty", ZERO) or ZERO
    if executed > out.exchange_executed_qty:
        out = msgspec.structs.replace(out, exchange_executed_qty=executed)
    return out


# ------------------------------------------------------------------------------------------
# Error classification
# ------------------------------------------------------------------------------------------
class ErrorClass(str, Enum):
    """How the OMS reacts to a failed request."""

    REJECTED = "REJECTED"  # definitive: the request had no effect; never retried in a loop
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"  # may or may not have happened: query by clientOrderId
    RETRY_LATER = "RETRY_LATER"  # rate limited (429 / -1003): back off, then retry
    BANNED = "BANNED"  # 418: stop all REST until the ban ends
    RESYNC_TIME = "RESYNC_TIME"  # -1021: resync server time, then retry (no effect happened)
    NOT_FOUND = "NOT_FOUND"  # -2011 / -2013: the order is unknown to the exchange


_REJECT_CODES = frozenset({-1013, -1100, -1102, -1106, -1111, -1116, -1117, -2010, -2019,
                           -2021, -2022, -4003, -4014, -4131, -4164, -5022})


def classify_error(http_status: int | None, code: int | None, timeout: bool) -> ErrorClass:
    """Classify a failed REST call (Binance codes take precedence over the HTTP status)."""
    if timeout:
        return ErrorClass.UNKNOWN_OUTCOME
    if code in (-1006, -1007):
        return ErrorClass.UNKNOWN_OUTCOME
    if code == -1003 or http_status == 429:
        return ErrorClass.RETRY_LATER
    if http_status == 418:
        return ErrorClass.BANNED
    if code == -1021:
        return ErrorClass.RESYNC_TIME
    if code in (-2011, -2013):
        return ErrorClass.NOT_FOUND
    if http_status is not None and http_status >= 500:
        return ErrorClass.UNKNOWN_OUTCOME
    if code in _REJECT_CODES or (http_status is not None and 400 <= http_status < 500):
        return ErrorClass.REJECTED
    return ErrorClass.UNKNOWN_OUTCOME
