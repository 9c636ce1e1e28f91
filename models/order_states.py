"""Order lifecycle state machine (OMS core): states, triggers and the transition table.
Pure. Records, fills and polls: ``models.orders``; ids: ``models.client_ids``; the ledger and
reconciliation: ``models.order_ledger``.

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

from collections.abc import Iterable
from enum import Enum


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


def resolved_state(state: OrderState, trigger: Trigger, filled: bool) -> OrderState | None:
    """``next_state`` with the ``N*`` cells resolved: NEW, or PARTIALLY_FILLED when the order
    already has fills (``filled``)."""
    target = next_state(state, trigger)
    if target is not None and filled and (state, trigger) in _RESOLVE_LIVE:
        return OrderState.PARTIALLY_FILLED
    return target
