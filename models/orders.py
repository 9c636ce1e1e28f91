"""Order lifecycle (OMS core): transition table, deterministic client order ids, fills,
exchange polls, the order ledger and reconciliation. Pure: timestamps are passed in.

States: PENDING_NEW (intent persisted, sent or about to be), NEW, PARTIALLY_FILLED,
PENDING_CANCEL, PENDING_MODIFY, and the terminal FILLED, CANCELED, REJECTED, EXPIRED.

Transition table ``(state, trigger) -> state``. ``.`` = ignored (late, duplicate or stale
report: the record does not change, a state never moves backwards); ``X`` = illegal (a
contradiction of what the exchange said before: ``IllegalTransition`` is raised and the OMS
must reconcile). ``N*`` = NEW, or PARTIALLY_FILLED when something is already filled::

    trigger \\ state     PEND_NEW  NEW      PART     PEND_CXL  PEND_MOD  FILLED  CANCELED EXPIRED REJECTED
    SUBMIT              PEND_NEW  .        .        .         .         .       .        .       .
    ACK                 NEW       .        .        .         .         .       .        .       X
    REJECT              REJECTED  X        X        REJECTED  X         X       X        X       .
    PARTIAL_FILL        PART      PART     PART     PEND_CXL  PEND_MOD  .f      .f       .f      .f
    FILL                FILLED    FILLED   FILLED   FILLED    FILLED    .f      .f       .f      .f
    CANCEL_REQUEST      PEND_CXL  PEND_CXL PEND_CXL PEND_CXL  PEND_CXL  .       .        .       .
    CANCEL_ACK          CANCELED  CANCELED CANCELED CANCELED  CANCELED  X       .        .       X
    CANCEL_REJECT       X         .        .        N*        .         .       .        .       .
    MODIFY_REQUEST      X         PEND_MOD PEND_MOD X         PEND_MOD  .       .        .       .
    MODIFY_ACK          X         .        .        .         N*        .       .        .       X
    MODIFY_REJECT       X         .        .        .         N*        .       .        .       .
    EXPIRE              EXPIRED   EXPIRED  EXPIRED  EXPIRED   EXPIRED   X       .        .       X
    UNKNOWN_OUTCOME     PEND_NEW  .        .        PEND_CXL  PEND_MOD  .       .        .       .
    POLL_NEW            NEW       .        .        .         .         .       .        .       X
    POLL_PARTIALLY_F.   PART      PART     PART     .         .         .       .        .       X
    POLL_FILLED         FILLED    FILLED   FILLED   FILLED    FILLED    .       X        X       X
    POLL_CANCELED       CANCELED  CANCELED CANCELED CANCELED  CANCELED  X       .        .       X
    POLL_EXPIRED        EXPIRED   EXPIRED  EXPIRED  EXPIRED   EXPIRED   X       .        .       X
    POLL_REJECTED       REJECTED  X        X        REJECTED  X         X       X        X       .
    POLL_NOT_FOUND      REJECTED  X        X        CANCELED  X         .       .        .       .

Notes on the real-world edges:

* fill before the ack: PENDING_NEW -> PARTIALLY_FILLED/FILLED; the late ACK is ignored.
* fill after a cancel request: PARTIAL_FILL keeps PENDING_CANCEL; a completing FILL wins.
* ``.f``: a late trade after a terminal state is still *booked* (quantity, quote, fees: trades
  are facts) but the state does not change. Duplicate trade ids are never booked twice and a
  trade that would over-fill the order raises ``OverFill``.
* stale poll after a terminal state (e.g. NEW after FILLED) is ignored; a poll contradicting a
  terminal state (FILLED after CANCELED, anything live after REJECTED) is illegal.
* UNKNOWN_OUTCOME (timeout, 5xx, -1006, -1007) leaves the order in flight with
  ``outcome_unknown`` set; it is resolved by querying the clientOrderId (never by resending).
  A poll answering an unknown cancel/modify decides it: NEW/PARTIALLY_FILLED after an
  unknown cancel = CANCEL_REJECT; a poll showing the modify target = MODIFY_ACK, another
  price/qty after an unknown modify = MODIFY_REJECT.
* POLL_NOT_FOUND: an order in flight that the exchange does not know was never placed
  (REJECTED, reason NOT_FOUND); a pending cancel of it is simply done (CANCELED).
* Spot has no in-place modify: the OMS does cancel-replace as CANCEL_REQUEST on the old record
  and a new record (next generation) for the replacement. PENDING_MODIFY is futures only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from decimal import Decimal
from enum import Enum
from typing import Protocol

import msgspec

from models.enums import OrderType, Side, TimeInForce

ZERO = Decimal(0)


class OrderState(str, Enum):
    """Lifecycle state of one order."""

    PENDING_NEW = "PENDING_NEW"
    NEW = "NEW"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    PENDING_CANCEL = "PENDING_CANCEL"
    PENDING_MODIFY = "PENDING_MODIFY"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def terminal(self) -> bool:
        """True for FILLED, CANCELED, REJECTED, EXPIRED."""
        return self in TERMINAL


TERMINAL = frozenset({OrderState.FILLED, OrderState.CANCELED, OrderState.REJECTED,
                      OrderState.EXPIRED})
OPEN_STATES = frozenset(OrderState) - TERMINAL


class Trigger(str, Enum):
    """What happened to an order (our request, the exchange's answer, or a poll)."""

    SUBMIT = "SUBMIT"
    ACK = "ACK"
    REJECT = "REJECT"
    PARTIAL_FILL = "PARTIAL_FILL"
    FILL = "FILL"
    CANCEL_REQUEST = "CANCEL_REQUEST"
    CANCEL_ACK = "CANCEL_ACK"
    CANCEL_REJECT = "CANCEL_REJECT"
    MODIFY_REQUEST = "MODIFY_REQUEST"
    MODIFY_ACK = "MODIFY_ACK"
    MODIFY_REJECT = "MODIFY_REJECT"
    EXPIRE = "EXPIRE"
    UNKNOWN_OUTCOME = "UNKNOWN_OUTCOME"
    POLL_NEW = "POLL_NEW"
    POLL_PARTIALLY_FILLED = "POLL_PARTIALLY_FILLED"
    POLL_FILLED = "POLL_FILLED"
    POLL_CANCELED = "POLL_CANCELED"
    POLL_EXPIRED = "POLL_EXPIRED"
    POLL_REJECTED = "POLL_REJECTED"
    POLL_NOT_FOUND = "POLL_NOT_FOUND"


class IllegalTransition(Exception):
    """A trigger that contradicts the order's state (see the table)."""

    def __init__(self, state: OrderState, trigger: Trigger, client_order_id: str = "") -> None:
        super().__init__(f"{client_order_id or 'order'}: {trigger.value} is illegal in "
                         f"{state.value}")
        self.state = state
        self.trigger = trigger
        self.client_order_id = client_order_id


class OverFill(ValueError):
    """A trade would fill more than the order's quantity (exchange/protocol error)."""


S, T = OrderState, Trigger
_PN, _N, _PF, _PC, _PM = S.PENDING_NEW, S.NEW, S.PARTIALLY_FILLED, S.PENDING_CANCEL, S.PENDING_MODIFY
_F, _C, _R, _E = S.FILLED, S.CANCELED, S.REJECTED, S.EXPIRED


def _row(trigger: Trigger, targets: dict[OrderState, OrderState]) -> dict:
    return {(s, trigger): t for s, t in targets.items()}


#: Real moves and legitimate self-loops. ``NEW`` reached by CANCEL_REJECT / MODIFY_ACK /
#: MODIFY_REJECT becomes PARTIALLY_FILLED when the order already has fills.
TRANSITIONS: dict[tuple[OrderState, Trigger], OrderState] = {
    **_row(T.SUBMIT, {_PN: _PN}),
    **_row(T.ACK, {_PN: _N}),
    **_row(T.REJECT, {_PN: _R, _PC: _R}),
    **_row(T.PARTIAL_FILL, {_PN: _PF, _N: _PF, _PF: _PF, _PC: _PC, _PM: _PM}),
    **_row(T.FILL, {_PN: _F, _N: _F, _PF: _F, _PC: _F, _PM: _F}),
    **_row(T.CANCEL_REQUEST, {_PN: _PC, _N: _PC, _PF: _PC, _PC: _PC, _PM: _PC}),
    **_row(T.CANCEL_ACK, {_PN: _C, _N: _C, _PF: _C, _PC: _C, _PM: _C}),
    **_row(T.CANCEL_REJECT, {_PC: _N}),
    **_row(T.MODIFY_REQUEST, {_N: _PM, _PF: _PM, _PM: _PM}),
    **_row(T.MODIFY_ACK, {_PM: _N}),
    **_row(T.MODIFY_REJECT, {_PM: _N}),
    **_row(T.EXPIRE, {_PN: _E, _N: _E, _PF: _E, _PC: _E, _PM: _E}),
    **_row(T.UNKNOWN_OUTCOME, {_PN: _PN, _PC: _PC, _PM: _PM}),
    **_row(T.POLL_NEW, {_PN: _N}),
    **_row(T.POLL_PARTIALLY_FILLED, {_PN: _PF, _N: _PF, _PF: _PF}),
    **_row(T.POLL_FILLED, {_PN: _F, _N: _F, _PF: _F, _PC: _F, _PM: _F}),
    **_row(T.POLL_CANCELED, {_PN: _C, _N: _C, _PF: _C, _PC: _C, _PM: _C}),
    **_row(T.POLL_EXPIRED, {_PN: _E, _N: _E, _PF: _E, _PC: _E, _PM: _E}),
    **_row(T.POLL_REJECTED, {_PN: _R, _PC: _R}),
    **_row(T.POLL_NOT_FOUND, {_PN: _R, _PC: _C}),
}


def _ign(trigger: Trigger, states: Iterable[OrderState]) -> set[tuple[OrderState, Trigger]]:
    return {(s, trigger) for s in states}


#: Late, duplicate or stale reports: no state change (fills are still booked).
IGNORED: frozenset[tuple[OrderState, Trigger]] = frozenset(
    _ign(T.SUBMIT, [_N, _PF, _PC, _PM, _F, _C, _E, _R])
    | _ign(T.ACK, [_N, _PF, _PC, _PM, _F, _C, _E])
    | _ign(T.REJECT, [_R])
    | _ign(T.PARTIAL_FILL, TERMINAL)
    | _ign(T.FILL, TERMINAL)
    | _ign(T.CANCEL_REQUEST, TERMINAL)
    | _ign(T.CANCEL_ACK, [_C, _E])
    | _ign(T.CANCEL_REJECT, [_N, _PF, _PM, *TERMINAL])
    | _ign(T.MODIFY_REQUEST, TERMINAL)
    | _ign(T.MODIFY_ACK, [_N, _PF, _PC, _F, _C, _E])
    | _ign(T.MODIFY_REJECT, [_N, _PF, _PC, *TERMINAL])
    | _ign(T.EXPIRE, [_C, _E])
    | _ign(T.UNKNOWN_OUTCOME, [_N, _PF, *TERMINAL])
    | _ign(T.POLL_NEW, [_N, _PF, _PC, _PM, _F, _C, _E])
    | _ign(T.POLL_PARTIALLY_FILLED, [_PC, _PM, _F, _C, _E])
    | _ign(T.POLL_FILLED, [_F])
    | _ign(T.POLL_CANCELED, [_C, _E])
    | _ign(T.POLL_EXPIRED, [_C, _E])
    | _ign(T.POLL_REJECTED, [_R])
    | _ign(T.POLL_NOT_FOUND, [*TERMINAL])
)

_RESOLVE_LIVE = frozenset({(_PC, T.CANCEL_REJECT), (_PM, T.MODIFY_ACK), (_PM, T.MODIFY_REJECT)})


def next_state(state: OrderState, trigger: Trigger) -> OrderState | None:
    """Target state, ``None`` when the trigger is ignored; raises ``IllegalTransition``."""
    target = TRANSITIONS.get((state, trigger))
    if target is not None:
        return target
    if (state, trigger) in IGNORED:
        return None
    raise IllegalTransition(state, trigger)


# ------------------------------------------------------------------------------------------
# Client order ids
# ------------------------------------------------------------------------------------------
_PREFIX_RE = re.compile(r"^[A-Za-z0-9]{1,6}\Z")
_SYMBOL_RE = re.compile(r"^[A-Z0-9]{1,30}\Z")
_KEY_RE = re.compile(r"^[A-Za-z0-9_.-]+\Z")
_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"
MAX_ID_LEN = 36


def _base36(n: int) -> str:
    if n < 0:
        raise ValueError("generation must be >= 0")
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _B36[r] + out
        if n == 0:
            return out


def _symbol_code(symbol: str) -> str:
    if not _SYMBOL_RE.match(symbol):
        raise ValueError(f"symbol {symbol!r} must be 1-30 upper-case letters/digits")
    # USDT pairs drop the suffix; others get "_" so that "XUSDT" and "X" never collide
    return symbol[:-4] if symbol.endswith("USDT") and len(symbol) > 4 else symbol + "_"


def _digest(text: str, n: int) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()[:n]


def client_order_id(prefix: str, symbol: str, key: str, generation: int) -> str:
    """Deterministic clientOrderId (<= 36 chars of ``[A-Za-z0-9_.-]``), injective in
    (symbol, key, generation) for a given prefix. Three disjoint shapes:

    * ``{prefix}-{sym}-{key}-{gen36}`` (>= 3 dashes) when the key is plain and it fits;
    * ``{prefix}-{sym}.{hash12(key)}.{gen36}`` (exactly one dash) otherwise;
    * ``{prefix}.{hash16(symbol, key)}.{gen36}`` (no dash) if even that is too long.

    ``sym`` is the symbol without its USDT suffix. Only the hashed shapes can collide, with
    probability ~2^-48 per pair of keys.
    """
    if not _PREFIX_RE.match(prefix):
        raise ValueError(f"prefix {prefix!r} must be 1-6 letters or digits")
    if not key:
        raise ValueError("key must not be empty")
    sym, gen = _symbol_code(symbol), _base36(generation)
    if _KEY_RE.match(key):
        cid = f"{prefix}-{sym}-{key}-{gen}"
        if len(cid) <= MAX_ID_LEN:
            return cid
    cid = f"{prefix}-{sym}.{_digest(key, 12)}.{gen}"
    if len(cid) <= MAX_ID_LEN:
        return cid
    cid = f"{prefix}.{_digest(symbol + chr(0) + key, 16)}.{gen}"
    if len(cid) > MAX_ID_LEN:
        raise ValueError("generation too large for a 36-character client order id")
    return cid


class ParsedClientId(msgspec.Struct, frozen=True):
    """Parts of a plain-shape client order id."""

    prefix: str
    symbol_code: str
    key: str
    generation: int


def parse_client_order_id(cid: str, prefix: str) -> ParsedClientId | None:
    """Inverse of the plain shape of ``client_order_id`` (None for other ids; for hashed ids
    only the generation is recoverable via ``generation_of``)."""
    if not cid.startswith(prefix + "-") or cid.count("-") < 3:
        return None
    _, sym, rest = cid.split("-", 2)
    key, _, gen = rest.rpartition("-")
    try:
        return ParsedClientId(prefix, sym, key, int(gen, 36))
    except ValueError:
        return None


def generation_of(cid: str) -> int | None:
    """The base-36 generation suffix of any of our id shapes (None if not parseable)."""
    tail = re.split(r"[-.]", cid)[-1]
    try:
        return int(tail, 36)
    except ValueError:
        return None


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
        target = next_state(rec.state, trigger)
    except IllegalTransition as e:
        e.client_order_id = rec.client_order_id
        e.args = (f"{rec.client_order_id}: {trigger.value} is illegal in {rec.state.value}",)
        raise
    if target is not None and (rec.state, trigger) in _RESOLVE_LIVE and filled > ZERO:
        target = OrderState.PARTIALLY_FILLED
    return target


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


# ------------------------------------------------------------------------------------------
# Ledger
# ------------------------------------------------------------------------------------------
class LedgerState(msgspec.Struct, kw_only=True):
    """Persistent form of an ``OrderLedger``."""

    prefix: str
    symbol: str
    orders: list[OrderRecord] = msgspec.field(default_factory=list)
    generations: dict[str, int] = msgspec.field(default_factory=dict)


class OrderLedger:
    """The orders of one symbol keyed by clientOrderId, with the next generation per key."""

    def __init__(self, prefix: str, symbol: str) -> None:
        self.prefix = prefix
        self.symbol = symbol
        self._orders: dict[str, OrderRecord] = {}
        self._generations: dict[str, int] = {}
        self._by_intent: dict[str, str] = {}
        self._by_eid: dict[int, str] = {}
        #: the open records in ``_orders`` order (None: rebuild on the next read)
        self._open: dict[str, OrderRecord] | None = {}

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, cid: object) -> bool:
        return cid in self._orders

    def get(self, cid: str) -> OrderRecord | None:
        """The record of a client order id."""
        return self._orders.get(cid)

    def by_exchange_id(self, eid: int) -> OrderRecord | None:
        """The record of an exchange order id."""
        cid = self._by_eid.get(eid)
        return self._orders.get(cid) if cid else None

    def open_orders(self) -> list[OrderRecord]:
        """Non-terminal orders, oldest first."""
        return list(self._open_index().values())

    def _open_index(self) -> dict[str, OrderRecord]:
        idx = self._open
        if idx is None:
            idx = self._open = {c: r for c, r in self._orders.items() if r.is_open}
        return idx

    def terminal_orders(self) -> list[OrderRecord]:
        """Terminal orders, oldest first."""
        return [r for r in self._orders.values() if not r.is_open]

    def open_for_key(self, key: str) -> OrderRecord | None:
        """The live order of a grid key, if any."""
        for r in self._open_index().values():
            if r.key == key:
                return r
        return None

    def next_generation(self, key: str) -> int:
        """The generation the next new order for ``key`` would get."""
        return self._generations.get(key, 0)

    # -- mutation -----------------------------------------------------------------------------
    def put(self, rec: OrderRecord) -> None:
        """Store (or replace) a record and keep the indexes and generations in step."""
        cid = rec.client_order_id
        idx = self._open
        if idx is not None:
            if not rec.is_open:
                idx.pop(cid, None)
            elif cid in idx or cid not in self._orders:
                idx[cid] = rec  # same position as in _orders (replaced, or both appended)
            else:
                self._open = None  # a terminal record reopened: rebuild in _orders order
        self._orders[cid] = rec
        if rec.intent_id:
            self._by_intent[rec.intent_id] = rec.client_order_id
        if rec.exchange_order_id is not None:
            self._by_eid[rec.exchange_order_id] = rec.client_order_id
        if rec.key and self._generations.get(rec.key, 0) <= rec.generation:
            self._generations[rec.key] = rec.generation + 1

    def create(self, *, key: str, side: Side, qty: Decimal, ts_ms: int,
               intent_id: str = "", **kw: object) -> tuple[OrderRecord, bool]:
        """Idempotent order creation; returns ``(record, created)``.

        The same ``intent_id`` (e.g. the PlaceOrder msg_id) always returns the same record,
        and a key with a live order returns that order: a re-delivered or retried intent can
        never make a second order. Otherwise the key's next generation is used.
        """
        if intent_id and intent_id in self._by_intent:
            return self._orders[self._by_intent[intent_id]], False
        live = self.open_for_key(key)
        if live is not None:
            return live, False
        rec = new_order(prefix=self.prefix, symbol=self.symbol, key=key,
                        generation=self.next_generation(key), side=side, qty=qty,
                        intent_id=intent_id, ts_ms=ts_ms, **kw)  # type: ignore[arg-type]
        self.put(rec)
        return rec, True

    def trigger(self, cid: str, trigger: Trigger, **kw: object) -> OrderRecord:
        """``apply_trigger`` on a stored record and store the result."""
        rec = apply_trigger(self._require(cid), trigger, **kw)  # type: ignore[arg-type]
        self.put(rec)
        return rec

    def fill(self, cid: str, trade_id: int, price: Decimal, qty: Decimal, fee: Decimal,
             fee_asset: str, ts_ms: int) -> tuple[OrderRecord, bool]:
        """``apply_fill`` on a stored record and store the result."""
        rec, applied = apply_fill(self._require(cid), trade_id, price, qty, fee, fee_asset,
                                  ts_ms)
        if applied:
            self.put(rec)
        return rec, applied

    def status(self, cid: str, view: ExchangeOrderView, ts_ms: int) -> OrderRecord:
        """``apply_exchange_status`` on a stored record and store the result."""
        rec = apply_exchange_status(self._require(cid), view, ts_ms)
        self.put(rec)
        return rec

    def adopt(self, view: ExchangeOrderView, ts_ms: int, kind: str = "ADOPTED") -> OrderRecord:
        """Take over an exchange order we have no record of (state from its status)."""
        if view.client_order_id in self._orders:
            return self._orders[view.client_order_id]
        parsed = parse_client_order_id(view.client_order_id, self.prefix)
        key = parsed.key if parsed else f"adopted:{view.client_order_id}"
        gen = parsed.generation if parsed else 0
        executed = view.filled_qty or ZERO
        state = OrderState.PARTIALLY_FILLED if executed > ZERO else OrderState.NEW
        rec = OrderRecord(
            client_order_id=view.client_order_id, symbol=self.symbol, side=view.side,
            price=view.price, qty=view.qty, state=state,
            exchange_order_id=view.exchange_order_id or None, key=key, generation=gen,
            kind=kind, created_ms=ts_ms, updated_ms=ts_ms, exchange_executed_qty=executed,
            last_trigger="ADOPT")
        self.put(rec)
        return rec

    def prune(self, before_ms: int) -> int:
        """Drop terminal records last updated before ``before_ms``; returns how many."""
        drop = [c for c, r in self._orders.items() if not r.is_open and r.updated_ms < before_ms]
        for c in drop:
            r = self._orders.pop(c)
            if r.intent_id:
                self._by_intent.pop(r.intent_id, None)
            if r.exchange_order_id is not None:
                self._by_eid.pop(r.exchange_order_id, None)
        return len(drop)

    def _require(self, cid: str) -> OrderRecord:
        try:
            return self._orders[cid]
        except KeyError:
            raise KeyError(f"unknown client order id {cid!r}") from None

    # -- persistence --------------------------------------------------------------------------
    def to_state(self) -> LedgerState:
        """Snapshot (msgpack/JSON-encodable)."""
        return LedgerState(prefix=self.prefix, symbol=self.symbol,
                           orders=list(self._orders.values()),
                           generations=dict(self._generations))

    @classmethod
    def from_state(cls, state: LedgerState) -> OrderLedger:
        """Restore a snapshot."""
        led = cls(state.prefix, state.symbol)
        for rec in state.orders:
            led.put(rec)
        for k, g in state.generations.items():
            led._generations[k] = max(g, led._generations.get(k, 0))
        return led


# ------------------------------------------------------------------------------------------
# Reconciliation
# ------------------------------------------------------------------------------------------
class FillToApply(msgspec.Struct, frozen=True, kw_only=True):
    """A trade the store is missing, matched to a local order."""

    client_order_id: str
    trade_id: int
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    time_ms: int


class StatusToApply(msgspec.Struct, frozen=True, kw_only=True):
    """An exchange open-order row to feed to ``apply_exchange_status``."""

    client_order_id: str
    view: OrderView


class ReconcilePlan(msgspec.Struct, kw_only=True):
    """What the OMS must do to match the exchange (nothing here has been applied yet)."""

    fills: list[FillToApply] = msgspec.field(default_factory=list)
    statuses: list[StatusToApply] = msgspec.field(default_factory=list)
    mark_filled: list[str] = msgspec.field(default_factory=list)
    to_query: list[str] = msgspec.field(default_factory=list)
    to_adopt: list[OrderView] = msgspec.field(default_factory=list)
    to_cancel: list[OrderView] = msgspec.field(default_factory=list)
    unmatched_trades: list[TradeView] = msgspec.field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when local state already matches."""
        return not (self.fills or self.statuses or self.mark_filled or self.to_query
                    or self.to_adopt or self.to_cancel or self.unmatched_trades)


def _as_order_view(v: ExchangeOrderView) -> OrderView:
    if isinstance(v, OrderView):
        return v
    return OrderView(client_order_id=v.client_order_id,
                     exchange_order_id=v.exchange_order_id or 0, side=v.side, price=v.price,
                     qty=v.qty, filled_qty=v.filled_qty, status=v.status)


def _as_trade_view(t: ExchangeTradeView) -> TradeView:
    if isinstance(t, TradeView):
        return t
    return TradeView(trade_id=t.trade_id, client_order_id=t.client_order_id,
                     exchange_order_id=t.exchange_order_id, side=t.side, price=t.price,
                     qty=t.qty, fee=t.fee, fee_asset=t.fee_asset, time_ms=t.time_ms)


def reconcile(local: OrderLedger, exchange_open: Sequence[ExchangeOrderView],
              exchange_trades: Sequence[ExchangeTradeView], *,
              adopt_unknown: bool) -> ReconcilePlan:
    """Compare the store with the exchange (start-up and after every reconnect).

    * trades of local orders not yet booked -> ``fills`` (deduplicated, in trade-id order);
      trades matching no local order -> ``unmatched_trades`` (the position check covers them);
    * local open orders found open on the exchange -> ``statuses`` (ack/partial updates);
    * local open orders not open on the exchange: fully filled by the known trades ->
      ``mark_filled``; otherwise -> ``to_query`` (resolved by clientOrderId, never guessed);
    * exchange open orders unknown locally -> ``to_adopt`` or ``to_cancel`` (config);
      ones the store has as terminal (a contradiction) -> ``to_query``.
    """
    plan = ReconcilePlan()
    seen_trades: set[int] = set()
    planned_qty: dict[str, Decimal] = {}
    for raw in sorted(exchange_trades, key=lambda t: t.trade_id):
        if raw.trade_id in seen_trades:
            continue
        seen_trades.add(raw.trade_id)
        t = _as_trade_view(raw)
        rec = local.get(t.client_order_id) if t.client_order_id else None
        if rec is None and t.exchange_order_id:
            rec = local.by_exchange_id(t.exchange_order_id)
        if rec is None:
            plan.unmatched_trades.append(t)
            continue
        if t.trade_id in rec.seen_trade_ids:
            continue
        plan.fills.append(FillToApply(client_order_id=rec.client_order_id, trade_id=t.trade_id,
                                      price=t.price, qty=t.qty, fee=t.fee,
                                      fee_asset=t.fee_asset, time_ms=t.time_ms))
        planned_qty[rec.client_order_id] = planned_qty.get(rec.client_order_id, ZERO) + t.qty
    open_by_cid: dict[str, OrderView] = {}
    for raw in exchange_open:
        v = _as_order_view(raw)
        rec = local.get(v.client_order_id)
        if rec is None and v.exchange_order_id:
            rec = local.by_exchange_id(v.exchange_order_id)
        if rec is None:
            (plan.to_adopt if adopt_unknown else plan.to_cancel).append(v)
        elif not rec.is_open:
            plan.to_query.append(rec.client_order_id)
        else:
            open_by_cid[rec.client_order_id] = v
    for rec in local.open_orders():
        cid = rec.client_order_id
        v = open_by_cid.get(cid)
        if v is not None:
            plan.statuses.append(StatusToApply(client_order_id=cid, view=v))
        elif rec.filled_qty + planned_qty.get(cid, ZERO) >= rec.qty:
            plan.mark_filled.append(cid)
        else:
            plan.to_query.append(cid)
    return plan


def apply_plan_fills(ledger: OrderLedger, plan: ReconcilePlan) -> list[OrderRecord]:
    """Book the plan's missing fills (idempotent); returns the records that changed."""
    changed: list[OrderRecord] = []
    for f in plan.fills:
        rec, applied = ledger.fill(f.client_order_id, f.trade_id, f.price, f.qty, f.fee,
                                   f.fee_asset, f.time_ms)
        if applied:
            changed.append(rec)
    return changed
