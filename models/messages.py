"""Every message that crosses an actor boundary.

All messages are frozen, tagged ``msgspec.Struct``s (tag = class name, field ``type``) with the
common header ``msg_id``, ``correlation_id``, ``symbol``, ``ts_event_ns``, ``ts_init_ns``.
Commands are imperative (``PlaceOrder``), events past tense (``OrderFilled``). Class names are
unique project-wide because thespian's dispatcher matches bare class names.

Messages never carry thespian ``ActorAddress`` objects directly: wiring messages carry them as
opaque pickled ``bytes`` (``actors.base.pack_address`` / ``unpack_address``), so every message
stays plain data that encodes to JSON and msgpack. Never mutate a received message
(``simpleSystemBase`` passes by reference); they are frozen for that reason.

The ``msg_id`` and ``ts_init_ns`` defaults come from sources the shell installs with
``set_sources`` (``infra.clock.install_message_sources``: pid/start-time ids, the actors' clock);
this module reads no wall clock and no pid.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Union

import msgspec

from models.enums import Market, OrderType, Side, TimeInForce, TradingState
from models.filters import SymbolFilters


def _sequence_ids() -> Callable[[], str]:
    counter = itertools.count(1)
    return lambda: f"0-{next(counter):x}"


def _no_clock() -> int:
    return 0


# Header defaults come from sources the shell installs (``infra.clock`` in every bot process):
# models read no wall clock and no pid. Until then: ids "0-1", "0-2", ... and ts_init_ns 0.
_new_id: Callable[[], str] = _sequence_ids()
_now_ns: Callable[[], int] = _no_clock


def set_sources(new_id: Callable[[], str] | None, now_ns: Callable[[], int] | None) -> None:
    """Install this process's message-id source and creation clock (nanoseconds), used for
    the ``msg_id`` and ``ts_init_ns`` defaults; ``None`` restores the deterministic default
    (a fresh per-process counter ``"0-<hex>"``; ``0``). Ids must stay unique across processes
    and restarts wherever messages are persisted or deduplicated (risk, OMS): every bot
    process installs ``infra.clock``'s sources."""
    global _new_id, _now_ns
    _new_id = new_id if new_id is not None else _sequence_ids()
    _now_ns = now_ns if now_ns is not None else _no_clock


def new_msg_id() -> str:
    """A new message id from the installed source."""
    return _new_id()


def now_ns() -> int:
    """Creation time from the installed clock: the default ``ts_init_ns``."""
    return _now_ns()


class Message(msgspec.Struct, frozen=True, kw_only=True, tag_field="type", tag=True):
    """Common header of every message."""

    symbol: str = ""
    ts_event_ns: int = 0
    msg_id: str = msgspec.field(default_factory=new_msg_id)
    correlation_id: str = ""
    ts_init_ns: int = msgspec.field(default_factory=now_ns)


# --------------------------------------------------------------------------------------------
# Orders: strategy -> risk -> order (OMS) -> gateway
# --------------------------------------------------------------------------------------------
class PlaceOrder(Message, frozen=True, kw_only=True):
    """Strategy asks for a new order; risk checks it before anything else sees it."""

    key: str
    side: Side
    order_type: OrderType = OrderType.LIMIT
    price: Decimal | None = None
    qty: Decimal
    tif: TimeInForce | None = TimeInForce.GTC
    reduce_only: bool = False
    kind: str = "ENTRY"
    conviction: float = 0.0
    reason: str = ""
    strategy_context: dict[str, Any] = {}


class ModifyOrder(Message, frozen=True, kw_only=True):
    """Move a resting order to a new price/quantity (futures modify, spot cancel-replace)."""

    client_order_id: str
    side: Side
    price: Decimal
    qty: Decimal
    reason: str = ""
    strategy_context: dict[str, Any] = {}


class CancelOrder(Message, frozen=True, kw_only=True):
    """Cancel one order by our client order id."""

    client_order_id: str
    reason: str = ""


class CancelAllOrders(Message, frozen=True, kw_only=True):
    """Cancel every open order of the symbol."""

    reason: str = ""


class FlattenPosition(Message, frozen=True, kw_only=True):
    """Close the symbol's position with reduce-only orders."""

    reason: str = ""


class SubmitOrder(Message, frozen=True, kw_only=True):
    """Risk-approved order handed to the OMS (prices/quantities already filter-valid)."""

    key: str
    side: Side
    order_type: OrderType
    price: Decimal | None = None
    qty: Decimal
    tif: TimeInForce | None = None
    reduce_only: bool = False
    kind: str = "ENTRY"
    reservation_id: str = ""
    strategy_context: dict[str, Any] = {}


class SendOrder(Message, frozen=True, kw_only=True):
    """OMS tells the gateway to send a new order (intent already persisted)."""

    client_order_id: str
    side: Side
    order_type: OrderType
    price: Decimal | None = None
    qty: Decimal
    tif: TimeInForce | None = None
    reduce_only: bool = False
    stop_price: Decimal | None = None


class SendCancel(Message, frozen=True, kw_only=True):
    """OMS tells the gateway to cancel an order."""

    client_order_id: str


class SendModify(Message, frozen=True, kw_only=True):
    """OMS tells the gateway to modify an order (spot: cancel-replace to ``new_client_order_id``)."""

    client_order_id: str
    new_client_order_id: str = ""
    side: Side
    price: Decimal
    qty: Decimal


class QueryOrder(Message, frozen=True, kw_only=True):
    """Resolve an order of unknown outcome by its client order id."""

    client_order_id: str


class RequestReconciliation(Message, frozen=True, kw_only=True):
    """Ask the gateway for the exchange's view (open orders, trades since an id, position)."""

    since_trade_id: int = 0


# --------------------------------------------------------------------------------------------
# Order events: gateway -> OMS -> risk/strategy/portfolio
# --------------------------------------------------------------------------------------------
class OrderAccepted(Message, frozen=True, kw_only=True):
    """The exchange acknowledged a new order."""

    client_order_id: str
    exchange_order_id: int
    side: Side
    price: Decimal | None = None
    qty: Decimal


class OrderRejected(Message, frozen=True, kw_only=True):
    """The exchange definitively refused an order (never retried in a loop)."""

    client_order_id: str
    code: int = 0
    reason: str = ""


class OrderDenied(Message, frozen=True, kw_only=True):
    """Risk refused an order before it reached the OMS (logged as RISK_BLOCKED)."""

    key: str
    side: Side
    reason: str
    detail: str = ""


class OrderFilled(Message, frozen=True, kw_only=True):
    """A (partial) fill, identified by the exchange trade id (applied once)."""

    client_order_id: str
    exchange_order_id: int = 0
    trade_id: int
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    maker: bool = False
    realized_pnl: Decimal = Decimal(0)
    cum_qty: Decimal = Decimal(0)
    order_status: str = ""


class OrderCanceled(Message, frozen=True, kw_only=True):
    """The exchange confirmed a cancel."""

    client_order_id: str
    reason: str = ""


class OrderExpired(Message, frozen=True, kw_only=True):
    """The exchange expired an order (IOC/FOK remainder, post-only, liquidation...)."""

    client_order_id: str
    reason: str = ""


class OrderModified(Message, frozen=True, kw_only=True):
    """A modify (or cancel-replace) took effect."""

    client_order_id: str
    new_client_order_id: str = ""
    price: Decimal
    qty: Decimal


class OrderModifyRejected(Message, frozen=True, kw_only=True):
    """A modify was refused; the OMS falls back to cancel + new."""

    client_order_id: str
    code: int = 0
    reason: str = ""


class OrderCancelRejected(Message, frozen=True, kw_only=True):
    """A cancel was refused (usually: the order already finished)."""

    client_order_id: str
    code: int = 0
    reason: str = ""


class OrderOutcomeUnknown(Message, frozen=True, kw_only=True):
    """Timeout/5xx: the order may or may not exist; resolve by QueryOrder, never resend."""

    client_order_id: str
    detail: str = ""


class OrderStatusReported(Message, frozen=True, kw_only=True):
    """The exchange's answer to a QueryOrder (or a reconciliation row)."""

    client_order_id: str
    exchange_order_id: int = 0
    status: str
    executed_qty: Decimal = Decimal(0)
    cum_quote: Decimal = Decimal(0)
    price: Decimal | None = None
    qty: Decimal = Decimal(0)
    found: bool = True


class OrderPlaced(Message, frozen=True, kw_only=True):
    """The OMS persisted an intent and sent it (logged as ORDER_PLACED)."""

    client_order_id: str
    key: str
    side: Side
    order_type: OrderType
    price: Decimal | None = None
    qty: Decimal
    reduce_only: bool = False
    strategy_context: dict[str, Any] = {}


class OrderEnded(Message, frozen=True, kw_only=True):
    """An order reached a terminal state (lets risk release its reservation)."""

    client_order_id: str
    key: str = ""
    status: str
    filled_qty: Decimal = Decimal(0)
    reservation_id: str = ""


class OpenOrdersReported(Message, frozen=True, kw_only=True):
    """The OMS's current open orders (for the strategy's planner)."""

    orders: list[OpenOrderRow] = []


class OpenOrderRow(msgspec.Struct, frozen=True, kw_only=True):
    """One open order in an ``OpenOrdersReported`` or an ``ExchangeSnapshotReceived``."""

    client_order_id: str
    key: str = ""
    side: Side
    price: Decimal | None = None
    qty: Decimal
    filled_qty: Decimal = Decimal(0)
    kind: str = "ENTRY"
    reduce_only: bool = False
    status: str = "NEW"
    exchange_order_id: int = 0


class TradeRow(msgspec.Struct, frozen=True, kw_only=True):
    """One exchange trade in an ``ExchangeSnapshotReceived``."""

    trade_id: int
    client_order_id: str = ""
    exchange_order_id: int = 0
    side: Side
    price: Decimal
    qty: Decimal
    fee: Decimal = Decimal(0)
    fee_asset: str = ""
    maker: bool = False
    time_ms: int = 0


class ExchangeSnapshotReceived(Message, frozen=True, kw_only=True):
    """The exchange's view used for reconciliation (start-up and after reconnects)."""

    open_orders: list[OpenOrderRow] = []
    trades: list[TradeRow] = []
    position_qty: Decimal = Decimal(0)
    entry_price: Decimal = Decimal(0)
    balances: dict[str, Decimal] = {}


class ReconciliationCompleted(Message, frozen=True, kw_only=True):
    """The OMS matched its store against the exchange; trading may (re)start."""

    fills_applied: int = 0
    orders_closed: int = 0
    orders_adopted: int = 0
    orders_canceled: int = 0
    ok: bool = True
    detail: str = ""


# --------------------------------------------------------------------------------------------
# Market data and account events: gateway -> strategy/risk/portfolio
# --------------------------------------------------------------------------------------------
class KlineClosed(Message, frozen=True, kw_only=True):
    """A closed candle (floats: market data, not money sent to the exchange)."""

    interval: str
    open_time_ms: int
    close_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class BookUpdated(Message, frozen=True, kw_only=True):
    """Latest top of book (conflated by the gateway, never one message per tick)."""

    bid: float
    bid_qty: float
    ask: float
    ask_qty: float


class MarkPriceUpdated(Message, frozen=True, kw_only=True):
    """Futures mark price."""

    mark_price: Decimal
    index_price: Decimal | None = None


class FundingRateUpdated(Message, frozen=True, kw_only=True):
    """Futures funding rate and next settlement."""

    funding_rate: Decimal
    next_funding_time_ms: int = 0


class FundingPaid(Message, frozen=True, kw_only=True):
    """A funding settlement (signed: positive received, negative paid), counted once by ``funding_id``."""

    funding_id: str
    amount: Decimal
    asset: str = "USDT"


class BalanceUpdated(Message, frozen=True, kw_only=True):
    """Account balances after a change."""

    balances: dict[str, Decimal] = {}
    locked: dict[str, Decimal] = {}


class PositionUpdated(Message, frozen=True, kw_only=True):
    """Position of one symbol as the exchange reports it."""

    market: Market = Market.FUTURES
    qty: Decimal
    entry_price: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)


class SymbolFiltersLoaded(Message, frozen=True, kw_only=True):
    """Exchange filters of the symbol (from exchangeInfo), needed before any order."""

    filters: SymbolFilters
    market: Market = Market.FUTURES


class RequestHistory(Message, frozen=True, kw_only=True):
    """Strategy asks the gateway for closed klines to warm up (REST)."""

    interval: str
    start_ms: int = 0
    limit: int = 1000


class HistoryLoaded(Message, frozen=True, kw_only=True):
    """Closed klines answering a ``RequestHistory`` (oldest first)."""

    interval: str
    klines: list[KlineRow] = []
    complete: bool = True


class KlineRow(msgspec.Struct, frozen=True, array_like=True):
    """One closed kline in a ``HistoryLoaded`` (compact array form)."""

    open_time_ms: int
    close_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class AccountReported(Message, frozen=True, kw_only=True):
    """Account-level money of the venue (wallet balance in the quote asset), for equity."""

    wallet_balance: Decimal
    asset: str = "USDT"
    market: Market = Market.FUTURES


class StreamDisconnected(Message, frozen=True, kw_only=True):
    """A WebSocket stream dropped or went silent."""

    stream: str
    detail: str = ""


class Reconnected(Message, frozen=True, kw_only=True):
    """Streams are back and the gap was repaired over REST (logged as RECONNECTED)."""

    gap_ms: int
    klines_repaired: int = 0
    trades_repaired: int = 0
    detail: str = ""


class TimeSynced(Message, frozen=True, kw_only=True):
    """Clock offset to the exchange's server time."""

    offset_ms: int


class RateLimited(Message, frozen=True, kw_only=True):
    """HTTP 429: all requests to ``host`` paused until ``until_ms``."""

    host: str
    until_ms: int
    used_weight: int = 0


class VenueBanned(Message, frozen=True, kw_only=True):
    """HTTP 418: all REST stopped; the portfolio halts trading."""

    host: str
    until_ms: int


# --------------------------------------------------------------------------------------------
# Risk and portfolio
# --------------------------------------------------------------------------------------------
class ReserveExposure(Message, frozen=True, kw_only=True):
    """Risk asks the portfolio for exposure before approving an order (idempotent by id)."""

    reservation_id: str
    side: Side
    notional: Decimal
    reduce_only: bool = False


class ReleaseExposure(Message, frozen=True, kw_only=True):
    """An order ended: give its unused reservation back."""

    reservation_id: str
    filled_notional: Decimal = Decimal(0)


class ExposureReserved(Message, frozen=True, kw_only=True):
    """The portfolio granted a reservation."""

    reservation_id: str
    notional: Decimal


class ExposureDenied(Message, frozen=True, kw_only=True):
    """The portfolio refused a reservation."""

    reservation_id: str
    reason: str


class PositionReported(Message, frozen=True, kw_only=True):
    """A symbol's position and PnL, sent to the portfolio on every change."""

    qty: Decimal
    entry_price: Decimal = Decimal(0)
    mark_price: Decimal = Decimal(0)
    realized_pnl: Decimal = Decimal(0)
    unrealized_pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)
    funding: Decimal = Decimal(0)


class EquityUpdated(Message, frozen=True, kw_only=True):
    """Portfolio equity and drawdown, broadcast to risk and strategy actors."""

    equity: Decimal
    peak_equity: Decimal
    drawdown: float
    leverage: float
    leverage_cap: float


class DrawdownLevelChanged(Message, frozen=True, kw_only=True):
    """The drawdown brake changed (logged as DRAWDOWN_LEVEL); carries the brake's limits."""

    kind: str = "LEVEL"
    level: int
    previous_level: int
    drawdown: float
    size_factor: float
    tp_factor: float
    leverage_cap: float
    halted: bool = False
    safe_mode: bool = False
    min_entry_conviction: float = 0.0
    actions: list[str] = []
    reason: str = ""


class TradingStateChanged(Message, frozen=True, kw_only=True):
    """Portfolio trading state ACTIVE / REDUCING / HALTED."""

    state: TradingState
    reason: str = ""


class HaltTrading(Message, frozen=True, kw_only=True):
    """Stop new entries (and optionally flatten)."""

    reason: str
    flatten: bool = False


class ResumeTrading(Message, frozen=True, kw_only=True):
    """Operator resume after a halt."""

    reason: str = "operator"
    safe_mode: bool = False


class TradeClosed(Message, frozen=True, kw_only=True):
    """A round trip closed (logged as TRADE_CLOSED)."""

    side: Side
    qty: Decimal
    entry_price: Decimal
    exit_price: Decimal
    gross_pnl: Decimal
    fees: Decimal
    funding: Decimal
    net_pnl: Decimal
    opened_ms: int
    closed_ms: int


class StrategyValuesComputed(Message, frozen=True, kw_only=True):
    """The strategy's six system values and conviction (logged as STRATEGY)."""

    b_up: float
    c_up: float
    b_down: float
    c_down: float
    b_neu: float
    c_neu: float
    long_conviction: float
    short_conviction: float


# --------------------------------------------------------------------------------------------
# Supervision, lifecycle and status
# --------------------------------------------------------------------------------------------
class StartActor(Message, frozen=True, kw_only=True):
    """First message to a new actor: its name, config (JSON bytes) and state-store path."""

    actor_name: str
    config_json: bytes
    state_dir: str
    restart_count: int = 0
    #: a gateway started only to wind a stopped symbol down: no store, no streams
    wind_down_only: bool = False


class Wire(Message, frozen=True, kw_only=True):
    """Peer addresses (pickled ``ActorAddress`` bytes keyed by role)."""

    peers: dict[str, bytes] = {}


class ActorReady(Message, frozen=True, kw_only=True):
    """A child restored its snapshot and is ready (readiness handshake)."""

    actor_name: str
    restore_ms: float = 0.0
    pid: int = 0


class ActorFailing(Message, frozen=True, kw_only=True):
    """A child cannot go on (its state cannot be restored or written): remove it now and
    count a failure (it restarts from its last good snapshot and reconciles)."""

    actor_name: str
    reason: str
    pid: int = 0


class Heartbeat(Message, frozen=True, kw_only=True):
    """Supervisor liveness probe."""

    seq: int


class HeartbeatAck(Message, frozen=True, kw_only=True):
    """Reply to a ``Heartbeat``."""

    seq: int
    actor_name: str
    pid: int = 0
    snapshot_age_s: float = -1.0


class ActorRestarted(Message, frozen=True, kw_only=True):
    """A supervisor replaced a failed actor (logged as ACTOR_RESTARTED)."""

    actor_name: str
    reason: str
    restart_count: int
    restore_ms: float = 0.0


class SymbolStopped(Message, frozen=True, kw_only=True):
    """A symbol's tree exceeded its restart intensity and stopped."""

    reason: str


class WindDownSymbol(Message, frozen=True, kw_only=True):
    """Supervisor → a fresh gateway of a symbol that gave up: cancel every open order and,
    with ``mode`` flatten, close the futures position with a reduce-only MARKET order whose
    client id is derived from ``generation`` (deterministic: a retry cannot close twice)."""

    mode: str = "flatten"
    generation: int = 0
    reason: str = ""


class SymbolWoundDown(Message, frozen=True, kw_only=True):
    """Gateway → supervisor: what the wind-down did, read back from the exchange."""

    orders_cancelled: bool
    open_orders_left: int
    position_before: Decimal
    position_after: Decimal
    detail: str = ""


class StopTrading(Message, frozen=True, kw_only=True):
    """Graceful shutdown: no new orders; ``mode`` is flatten / cancel-only / leave."""

    mode: str = "flatten"


class TradingStopped(Message, frozen=True, kw_only=True):
    """Shutdown of a symbol finished (orders cancelled, positions per mode, state persisted)."""

    open_orders: int = 0
    position_qty: Decimal = Decimal(0)


class StatusRequested(Message, frozen=True, kw_only=True):
    """Ask an actor or supervisor for its status."""


class StatusReported(Message, frozen=True, kw_only=True):
    """Status of an actor/tree as plain data (rendered by ``run.py status``)."""

    actor_name: str
    data: dict[str, Any] = {}


AnyMessage = Union[  # noqa: UP007 - msgspec needs a runtime Union of the tagged types
    PlaceOrder, ModifyOrder, CancelOrder, CancelAllOrders, FlattenPosition, SubmitOrder,
    SendOrder, SendCancel, SendModify, QueryOrder, RequestReconciliation,
    OrderAccepted, OrderRejected, OrderDenied, OrderFilled, OrderCanceled, OrderExpired,
    OrderModified, OrderModifyRejected, OrderCancelRejected, OrderOutcomeUnknown,
    OrderStatusReported, OrderPlaced, OrderEnded, OpenOrdersReported, ExchangeSnapshotReceived,
    ReconciliationCompleted,
    KlineClosed, BookUpdated, MarkPriceUpdated, FundingRateUpdated, FundingPaid, BalanceUpdated,
    PositionUpdated, SymbolFiltersLoaded, RequestHistory, HistoryLoaded, AccountReported,
    StreamDisconnected, Reconnected, TimeSynced, RateLimited, VenueBanned,
    ReserveExposure, ReleaseExposure, ExposureReserved, ExposureDenied, PositionReported,
    EquityUpdated, DrawdownLevelChanged, TradingStateChanged, HaltTrading, ResumeTrading,
    TradeClosed, StrategyValuesComputed,
    StartActor, Wire, ActorReady, ActorFailing, Heartbeat, HeartbeatAck, ActorRestarted, SymbolStopped,
    WindDownSymbol, SymbolWoundDown,
    StopTrading, TradingStopped, StatusRequested, StatusReported,
]

ALL_MESSAGE_TYPES: tuple[type[Message], ...] = AnyMessage.__args__  # type: ignore[attr-defined]

_json_decoder = msgspec.json.Decoder(AnyMessage)
_msgpack_decoder = msgspec.msgpack.Decoder(AnyMessage)
_json_encoder = msgspec.json.Encoder()
_msgpack_encoder = msgspec.msgpack.Encoder()


def encode_json(msg: Message) -> bytes:
    """Encode any message to JSON (tagged)."""
    return _json_encoder.encode(msg)


def decode_json(data: bytes) -> Message:
    """Decode a tagged JSON message (type-checked)."""
    return _json_decoder.decode(data)


def encode_msgpack(msg: Message) -> bytes:
    """Encode any message to msgpack (tagged)."""
    return _msgpack_encoder.encode(msg)


def decode_msgpack(data: bytes) -> Message:
    """Decode a tagged msgpack message (type-checked)."""
    return _msgpack_decoder.decode(data)


# --------------------------------------------------------------------------------------------
# Backtest (driver -> in-process backtest gateway; see backtest/driver.py)
# --------------------------------------------------------------------------------------------
class BacktestAttach(Message, frozen=True, kw_only=True):
    """Bind a backtest gateway to the in-process venue registered under ``venue_id``."""

    venue_id: str


class BacktestAdvance(Message, frozen=True, kw_only=True):
    """Replay the symbol's market data up to ``until_ms`` (exclusive close) on the venue."""

    until_ms: int


class BacktestDrain(Message, frozen=True, kw_only=True):
    """Deliver venue events queued for this symbol by another symbol's activity."""


# The backtest messages join the union of every message (defined after it, so extend it here).
AnyMessage = Union[AnyMessage, BacktestAttach, BacktestAdvance, BacktestDrain]  # type: ignore[valid-type] # noqa: UP007
ALL_MESSAGE_TYPES = AnyMessage.__args__  # type: ignore[attr-defined]
_json_decoder = msgspec.json.Decoder(AnyMessage)
_msgpack_decoder = msgspec.msgpack.Decoder(AnyMessage)
