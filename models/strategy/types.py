"""Data types crossing the strategy boundary (inputs from the actor/backtest, outputs to the OMS).

Market data (bars, book) are floats; anything that becomes an order is ``Decimal``, rounded by
``models.filters.SymbolFilters`` in the passive direction.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from models.enums import OrderType, Side

KIND_ENTRY = "ENTRY"
KIND_TP = "TP"
KIND_SL = "SL"


class Bar(msgspec.Struct, frozen=True, gc=False):
    """One closed kline of the base interval (``close_time_ms`` = open + interval - 1)."""

    open_time_ms: int
    close_time_ms: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class MarketView(msgspec.Struct, frozen=True, kw_only=True):
    """Latest market snapshot when planning; ``bid_qty``/``ask_qty`` give the book imbalance
    (0 when either is missing, e.g. in a backtest)."""

    last_price: float
    bid: float = 0.0
    ask: float = 0.0
    bid_qty: float = 0.0
    ask_qty: float = 0.0
    funding_rate: float | None = None
    mark_price: float | None = None
    ts_ms: int = 0

    @property
    def imbalance(self) -> float:
        """(bid_qty - ask_qty) / (bid_qty + ask_qty) in [-1, 1]; 0 without a book."""
        tot = self.bid_qty + self.ask_qty
        return (self.bid_qty - self.ask_qty) / tot if tot > 0 else 0.0


class PositionView(msgspec.Struct, frozen=True, kw_only=True):
    """The symbol's position as the portfolio sees it. ``qty`` is signed base quantity
    (> 0 long, < 0 short; spot: the base asset held by this strategy). ``entry_conviction`` and
    ``opened_ms`` are informational: the strategy tracks its own copies from ``on_fill``."""

    qty: Decimal = Decimal(0)
    entry_price: Decimal = Decimal(0)
    entry_conviction: float = 0.0
    opened_ms: int = 0


class OpenOrderView(msgspec.Struct, frozen=True, kw_only=True):
    """A resting order of this strategy, as the OMS knows it."""

    key: str
    client_order_id: str
    side: Side
    price: Decimal
    qty: Decimal
    kind: str = KIND_ENTRY
    reduce_only: bool = False
    order_type: OrderType = OrderType.LIMIT


class RiskInputs(msgspec.Struct, frozen=True, kw_only=True):
    """What the risk core and portfolio allow right now. ``max_*_notional`` is the quote budget
    of one side (position + resting entries), e.g. equity x weight x utilization x leverage."""

    size_factor: float = 1.0
    tp_factor: float = 1.0
    entries_allowed: bool = True
    min_entry_conviction: float = 0.0
    max_long_notional: float = 0.0
    max_short_notional: float = 0.0
    equity: float = 0.0


class DesiredOrder(msgspec.Struct, frozen=True, kw_only=True):
    """One order the strategy wants resting (or a MARKET exit). ``key`` is deterministic per
    level ("L-3", "S2", "TP-L", "SL-S"); the OMS derives the clientOrderId from it."""

    key: str
    side: Side
    kind: str
    price: Decimal | None
    qty: Decimal
    reduce_only: bool = False
    order_type: OrderType = OrderType.LIMIT
    reason: str = ""
    context: dict[str, Any] = {}


class OrderActions(msgspec.Struct, kw_only=True):
    """Result of ``diff_orders``: what to place, modify and cancel."""

    place: list[DesiredOrder] = msgspec.field(default_factory=list)
    modify: list[tuple[OpenOrderView, DesiredOrder]] = msgspec.field(default_factory=list)
    cancel: list[tuple[OpenOrderView, str]] = msgspec.field(default_factory=list)
    keep: list[OpenOrderView] = msgspec.field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing has to be sent."""
        return not (self.place or self.modify or self.cancel)


class StrategyValues(msgspec.Struct, gc=False):
    """Per-bar output: the six system values, L/S, normalised features (in ``feature_names``
    order), the grid ATR, ADX, spacings at zero imbalance and the entry-filter verdicts."""

    ts_ms: int
    b_up: float
    c_up: float
    b_down: float
    c_down: float
    b_neu: float
    c_neu: float
    L: float
    S: float
    features: tuple[float, ...]
    feature_names: tuple[str, ...]
    atr: float
    adx: float
    spacing_long: float
    spacing_short: float
    long_ok: bool
    short_ok: bool
    close: float

    def feature_dict(self) -> dict[str, float]:
        """Normalised features by name."""
        return dict(zip(self.feature_names, self.features, strict=True))

    def as_dict(self) -> dict[str, Any]:
        """Everything as a flat dict (the STRATEGY log event)."""
        d = {k: getattr(self, k) for k in self.__struct_fields__
             if k not in ("features", "feature_names")}
        d["features"] = self.feature_dict()
        return d

    def __repr__(self) -> str:
        return (f"StrategyValues(ts={self.ts_ms}, b_up={self.b_up:.4f}, c_up={self.c_up:.4f}, "
                f"b_down={self.b_down:.4f}, c_down={self.c_down:.4f}, b_neu={self.b_neu:.4f}, "
                f"c_neu={self.c_neu:.4f}, L={self.L:.4f}, S={self.S:.4f})")
