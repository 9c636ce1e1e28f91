"""Data of the risk core of one symbol: its constants, the effects one message produces
(``RiskEffects``), its persistent snapshot (``RiskState`` and the records in it) with the
msgpack codec, and ``fmt_money`` for status output. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.enums import OrderType, Side, TradingState
from models.filters import SymbolFilters
from models.pnl import PositionLedger
from models.risk import BrakeState

ZERO = Decimal(0)
NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
#: Order key of the reduce-only market order that closes the position on a halt/flatten.
FLATTEN_KEY = "flatten"
MAX_FLATTEN_ATTEMPTS = 3
#: PlaceOrder/ModifyOrder message ids remembered (thespian re-delivers after an exception).
MAX_SEEN_MSGS = 128
#: Trade ids remembered for fill deduplication (older ones are covered by ``trade_floor``).
MAX_TRADE_IDS = 1000
#: A ledger/exchange position disagreement must persist this long before POSITION_MISMATCH.
MISMATCH_GRACE_NS = 5 * NS_PER_S
PORTFOLIO_UNAVAILABLE = "portfolio unavailable"


@dataclass
class RiskEffects:
    """What the actor must do after one message: persist (``changed``), log, send, arm
    fail-closed timers ``(delay_s, reservation_id)``."""

    sends: list[tuple[str, m.Message]] = field(default_factory=list)
    logs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    timers: list[tuple[float, str]] = field(default_factory=list)
    changed: bool = False

    def send(self, role: str, msg: m.Message) -> None:
        self.sends.append((role, msg))

    def log(self, event: str, level: str = "INFO", **ctx: Any) -> None:
        self.logs.append((event, level, ctx))


class OrderEntry(msgspec.Struct, kw_only=True):
    """An order risk handed to the OMS, live until its ``OrderEnded``."""

    key: str
    side: Side
    order_type: OrderType
    price: Decimal | None
    qty: Decimal
    reduce_only: bool = False
    kind: str = "ENTRY"
    reservation_ids: list[str] = msgspec.field(default_factory=list)
    reserved: Decimal = ZERO
    filled_qty: Decimal = ZERO
    filled_notional: Decimal = ZERO
    #: spot cancel-replace: OrderEnded of generations below this belong to replaced orders
    min_generation: int = 0

    def remaining_notional(self) -> Decimal:
        """Reserved notional not yet filled (what still rests on the book)."""
        return max(ZERO, self.reserved - self.filled_notional)


class PendingRequest(msgspec.Struct, kw_only=True):
    """An order (or modify) held until the portfolio answers."""

    reservation_id: str
    key: str
    side: Side
    notional: Decimal
    deadline_ns: int
    reduces: bool = False
    submit: m.SubmitOrder | None = None
    modify: m.ModifyOrder | None = None
    conviction: float = 0.0


_Q8 = Decimal("1e-8")


def fmt_money(d: Decimal) -> str:
    """A Decimal for status output: at most 8 decimals, no trailing zeros, never exponents."""
    q = f"{d.quantize(_Q8):f}"
    return q.rstrip("0").rstrip(".") if "." in q else q


class RiskState(msgspec.Struct, kw_only=True):
    """Persistent state of a ``SymbolRiskCore`` (msgpack snapshot)."""

    ledger: PositionLedger
    counter: int = 0
    orders: dict[str, OrderEntry] = msgspec.field(default_factory=dict)
    pending: dict[str, PendingRequest] = msgspec.field(default_factory=dict)
    filters: SymbolFilters | None = None
    equity: Decimal = ZERO
    brake: BrakeState | None = None
    trading_state: TradingState = TradingState.ACTIVE
    mark: Decimal = ZERO
    mark_source: str = ""
    trade_ids: list[int] = msgspec.field(default_factory=list)
    trade_floor: int = -1
    flatten_wanted: bool = False
    flatten_attempts: int = 0
    flatten_counter: int = 0
    seen_msgs: list[tuple[str, str]] = msgspec.field(default_factory=list)
    last_reported: tuple[str, str, str] = ("", "", "")


_state_decoder = msgspec.msgpack.Decoder(RiskState)
_encoder = msgspec.msgpack.Encoder()


def encode_risk_state(state: RiskState) -> bytes:
    """msgpack bytes of a risk snapshot."""
    return _encoder.encode(state)


def decode_risk_state(blob: bytes) -> RiskState:
    """Inverse of ``encode_risk_state``."""
    return _state_decoder.decode(blob)
