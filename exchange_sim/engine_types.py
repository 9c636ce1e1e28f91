"""Records and errors of the matching engine (``exchange_sim.engine``).

Orders, fills and the events the engine emits, the fee and fill-model settings, Binance's
rejection errors and the order status state machine. Plain data: no engine logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from exchange_sim.accounts import PositionView
from models.enums import Market, OrderType, Side, TimeInForce

ZERO = Decimal(0)
ONE = Decimal(1)
BPS = Decimal(10000)
Q8 = Decimal("1E-8")
INF = float("inf")
LIQUIDATION_FEE_RATE = Decimal("0.0125")
MAX_LEVERAGE = 125

LIMIT_TYPES = (OrderType.LIMIT, OrderType.LIMIT_MAKER)
STOP_TYPES = (OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET)


class ExchangeError(Exception):
    """An order/request rejected with Binance's own error code and message."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status


class CancelReplaceError(ExchangeError):
    """Spot cancel-replace that failed in part or in full (-2021 / -2022).

    Carries what happened: ``cancel_result`` / ``new_order_result`` are "SUCCESS", "FAILURE" or
    "NOT_ATTEMPTED"; ``cancel_error`` / ``new_order_error`` the underlying errors; ``cancelled``
    and ``new_order`` the orders; ``events`` the events of the part that did happen."""

    def __init__(self, code: int, msg: str, *, cancel_result: str, new_order_result: str,
                 cancel_error: ExchangeError | None, new_order_error: ExchangeError | None,
                 cancelled: Order | None, new_order: Order | None,
                 events: list[OrderEvent | AccountEvent]) -> None:
        super().__init__(code, msg, 409 if code == -2021 else 400)
        self.cancel_result = cancel_result
        self.new_order_result = new_order_result
        self.cancel_error = cancel_error
        self.new_order_error = new_order_error
        self.cancelled = cancelled
        self.new_order = new_order
        self.events = events


class IllegalTransition(RuntimeError):
    """An order status change the state machine does not allow (an engine bug)."""


# Order status state machine.
TRANSITIONS: dict[str, frozenset[str]] = {
    "NEW": frozenset({"PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED", "REJECTED"}),
    "PARTIALLY_FILLED": frozenset({"PARTIALLY_FILLED", "FILLED", "CANCELED", "EXPIRED"}),
    "FILLED": frozenset(),
    "CANCELED": frozenset(),
    "EXPIRED": frozenset(),
    "REJECTED": frozenset(),
}
OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(frozen=True)
class FeeSchedule:
    """Maker/taker commission rates (fractions, e.g. 0.001 = 0.1 %)."""

    maker: Decimal
    taker: Decimal
    bnb_discount: bool = False

    @classmethod
    def default(cls, market: Market, bnb_discount: bool = False) -> FeeSchedule:
        """Binance's base VIP0 rates for ``market``."""
        if market is Market.SPOT:
            return cls(Decimal("0.001"), Decimal("0.001"), bnb_discount)
        return cls(Decimal("0.0002"), Decimal("0.0005"), bnb_discount)

    def rates(self, market: Market) -> tuple[Decimal, Decimal]:
        """Effective (maker, taker) after the BNB discount (spot 25 % off, futures 10 % off)."""
        if not self.bnb_discount:
            return self.maker, self.taker
        k = Decimal("0.75") if market is Market.SPOT else Decimal("0.9")
        return self.maker * k, self.taker * k


@dataclass(frozen=True)
class FillConfig:
    """Fill-model knobs (see the module docstring)."""

    fill_on_touch: bool = False
    max_volume_share: float | None = 0.1
    market_slippage_bps: Decimal = Decimal("1")


@dataclass
class Order:
    """The engine's order record; attribute names carry Binance's field meanings."""

    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: Side
    type: OrderType
    tif: TimeInForce | None
    price: Decimal
    orig_qty: Decimal
    executed_qty: Decimal
    cum_quote: Decimal
    status: str
    stop_price: Decimal
    reduce_only: bool
    time_ms: int
    update_ms: int
    orig_quote_qty: Decimal = ZERO
    # Spot: amount still locked for this order (quote for buys incl. fee reserve, base for sells).
    locked: Decimal = field(default=ZERO, repr=False)

    @property
    def avg_price(self) -> Decimal:
        """Average fill price (0 before any fill)."""
        return self.cum_quote / self.executed_qty if self.executed_qty else ZERO

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        """NEW or PARTIALLY_FILLED."""
        return self.status in OPEN_STATUSES

    def to_state(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "order_id": self.order_id, "client_order_id": self.client_order_id,
            "account": self.account, "symbol": self.symbol, "side": self.side.value,
            "type": self.type.value, "tif": self.tif.value if self.tif else None,
            "price": str(self.price), "orig_qty": str(self.orig_qty),
            "executed_qty": str(self.executed_qty), "cum_quote": str(self.cum_quote),
            "status": self.status, "stop_price": str(self.stop_price),
            "reduce_only": self.reduce_only, "time_ms": self.time_ms, "update_ms": self.update_ms,
            "orig_quote_qty": str(self.orig_quote_qty), "locked": str(self.locked),
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Order:
        """Inverse of ``to_state``."""
        return cls(
            int(s["order_id"]), s["client_order_id"], s["account"], s["symbol"], Side(s["side"]),
            OrderType(s["type"]), TimeInForce(s["tif"]) if s["tif"] else None,
            Decimal(s["price"]), Decimal(s["orig_qty"]), Decimal(s["executed_qty"]),
            Decimal(s["cum_quote"]), s["status"], Decimal(s["stop_price"]),
            bool(s["reduce_only"]), int(s["time_ms"]), int(s["update_ms"]),
            Decimal(s["orig_quote_qty"]), Decimal(s["locked"]),
        )


@dataclass(frozen=True)
class Fill:
    """One execution of one of our orders."""

    trade_id: int
    order_id: int
    client_order_id: str
    account: str
    symbol: str
    side: Side
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    maker: bool
    realized_pnl: Decimal
    time_ms: int

    def to_state(self) -> dict[str, Any]:
        """JSON-able form."""
        return {
            "trade_id": self.trade_id, "order_id": self.order_id,
            "client_order_id": self.client_order_id, "account": self.account,
            "symbol": self.symbol, "side": self.side.value, "price": str(self.price),
            "qty": str(self.qty), "quote_qty": str(self.quote_qty),
            "commission": str(self.commission), "commission_asset": self.commission_asset,
            "maker": self.maker, "realized_pnl": str(self.realized_pnl), "time_ms": self.time_ms,
        }

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Fill:
        """Inverse of ``to_state``."""
        return cls(
            int(s["trade_id"]), int(s["order_id"]), s["client_order_id"], s["account"],
            s["symbol"], Side(s["side"]), Decimal(s["price"]), Decimal(s["qty"]),
            Decimal(s["quote_qty"]), Decimal(s["commission"]), s["commission_asset"],
            bool(s["maker"]), Decimal(s["realized_pnl"]), int(s["time_ms"]),
        )


@dataclass(frozen=True)
class OrderEvent:
    """An order update (executionReport / ORDER_TRADE_UPDATE); ``order`` is a snapshot."""

    order: Order
    exec_type: str
    fill: Fill | None
    time_ms: int


@dataclass(frozen=True)
class AccountEvent:
    """A balance/position update (outboundAccountPosition / ACCOUNT_UPDATE).

    Spot: ``balances`` = {asset: (free, locked)} of the assets touched, ``positions`` empty.
    Futures: ``balances`` = {"USDT": (wallet balance, cross wallet balance[, balance change])},
    ``positions`` the positions touched (the balance change is set on FUNDING_FEE)."""

    account: str
    reason: str
    balances: dict[str, tuple[Decimal, ...]]
    positions: list[PositionView]
    time_ms: int


Event = OrderEvent | AccountEvent
