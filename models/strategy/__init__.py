"""Pure strategy engine: adaptive UP/DOWN/NEUTRAL ensemble grid and the static grid baseline.

No actors, no I/O, no wall clock, no hidden randomness: the same bars, fills and plan inputs
give the same outputs, and ``snapshot``/``restore`` reproduce them bit for bit.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol, runtime_checkable

from models.enums import Market, Side
from models.filters import SymbolFilters
from models.strategy.adaptive import AdaptiveStrategy
from models.strategy.ordering import diff_orders
from models.strategy.params import (
    ConvictionFilterParams,
    StaticGridParams,
    StrategyParams,
    SystemWeightParams,
)
from models.strategy.static_grid import StaticGridStrategy
from models.strategy.types import (
    Bar,
    DesiredOrder,
    MarketView,
    OpenOrderView,
    OrderActions,
    PositionView,
    RiskInputs,
    StrategyValues,
)
from models.strategy.weights import Weights, default_weights, fit_initial_weights


@runtime_checkable
class Strategy(Protocol):
    """What the strategy actor and the backtest drive (both strategies implement it)."""

    warm: bool

    def on_bar(self, bar: Bar) -> StrategyValues | None:
        """One closed base bar; None while warming up."""

    def plan(self, market: MarketView, position: PositionView, open_orders: list[OpenOrderView],
             risk: RiskInputs, filters: SymbolFilters,
             market_type: Market) -> list[DesiredOrder]:
        """Desired orders now."""

    def plan_actions(self, market: MarketView, position: PositionView,
                     open_orders: list[OpenOrderView], risk: RiskInputs,
                     filters: SymbolFilters, market_type: Market) -> OrderActions:
        """``plan`` + ``diff_orders``."""

    def on_fill(self, side: Side | str, price: Decimal | float, qty: Decimal | float,
                kind: str, ts_ms: int, key: str | None = None) -> None:
        """An own order (partly) filled."""

    def snapshot(self) -> bytes:
        """msgpack of the full state."""


def make_strategy(params: StrategyParams, symbol: str, base_interval_ms: int, seed: int = 0,
                  initial_weights: Weights | None = None) -> AdaptiveStrategy | StaticGridStrategy:
    """Build the strategy selected by ``params.kind``."""
    if params.kind == "adaptive":
        return AdaptiveStrategy(params, symbol, base_interval_ms, seed, initial_weights)
    if params.kind == "static_grid":
        return StaticGridStrategy(params, symbol, base_interval_ms, seed)
    raise ValueError(f"unknown strategy kind {params.kind!r}")


def restore_strategy(params: StrategyParams, blob: bytes) -> AdaptiveStrategy | StaticGridStrategy:
    """Restore whichever strategy ``params.kind`` selects from its snapshot."""
    cls = AdaptiveStrategy if params.kind == "adaptive" else StaticGridStrategy
    return cls.restore(params, blob)


__all__ = [
    "AdaptiveStrategy", "Bar", "ConvictionFilterParams", "DesiredOrder", "MarketView",
    "OpenOrderView", "OrderActions", "PositionView", "RiskInputs", "StaticGridParams",
    "StaticGridStrategy", "Strategy", "StrategyParams", "StrategyValues", "SystemWeightParams",
    "Weights", "default_weights", "diff_orders", "fit_initial_weights", "make_strategy",
    "restore_strategy",
]
