"""Account records of the embedded exchange (pure data; the engine owns the logic).

Spot accounts hold per-asset ``free``/``locked`` balances. USDT-M futures accounts hold one USDT
wallet balance, one-way positions per symbol (signed quantity, average entry price), per-symbol
leverage and margin type, and running aggregates of their open limit orders (for the
open-order initial margin).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

ZERO = Decimal(0)


@dataclass
class SpotAccount:
    """Per-asset balances of a spot account."""

    name: str
    free: dict[str, Decimal] = field(default_factory=dict)
    locked: dict[str, Decimal] = field(default_factory=dict)

    def to_state(self) -> dict[str, Any]:
        """JSON-able form (Decimals as str)."""
        return {"kind": "spot", "name": self.name,
                "free": {k: str(v) for k, v in self.free.items()},
                "locked": {k: str(v) for k, v in self.locked.items()}}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> SpotAccount:
        """Inverse of ``to_state``."""
        return cls(s["name"], {k: Decimal(v) for k, v in s["free"].items()},
                   {k: Decimal(v) for k, v in s["locked"].items()})


@dataclass
class Position:
    """One-way position of one symbol; also carries the symbol's leverage and margin type."""

    symbol: str
    qty: Decimal = ZERO
    entry_price: Decimal = ZERO
    leverage: int = 20
    margin_type: str = "CROSSED"
    update_ms: int = 0

    def to_state(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"symbol": self.symbol, "qty": str(self.qty), "entry_price": str(self.entry_price),
                "leverage": self.leverage, "margin_type": self.margin_type,
                "update_ms": self.update_ms}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> Position:
        """Inverse of ``to_state``."""
        return cls(s["symbol"], Decimal(s["qty"]), Decimal(s["entry_price"]), int(s["leverage"]),
                   s["margin_type"], int(s["update_ms"]))


@dataclass
class OrderAgg:
    """Remaining quantity and notional of an account's open, non-reduce-only limit orders."""

    buy_qty: Decimal = ZERO
    buy_notional: Decimal = ZERO
    sell_qty: Decimal = ZERO
    sell_notional: Decimal = ZERO

    def add(self, side_sign: int, qty: Decimal, price: Decimal) -> None:
        """Add (qty > 0) or remove (qty < 0) resting quantity at ``price``."""
        if side_sign > 0:
            self.buy_qty += qty
            self.buy_notional += qty * price
        else:
            self.sell_qty += qty
            self.sell_notional += qty * price


@dataclass
class FuturesAccount:
    """USDT-M futures account (one-way mode, USDT margin)."""

    name: str
    wallet: Decimal = ZERO
    positions: dict[str, Position] = field(default_factory=dict)
    orders: dict[str, OrderAgg] = field(default_factory=dict)

    def position(self, symbol: str) -> Position:
        """The position record of ``symbol`` (created flat on first use)."""
        p = self.positions.get(symbol)
        if p is None:
            p = self.positions[symbol] = Position(symbol)
        return p

    def peek(self, symbol: str) -> Position:
        """The position record of ``symbol`` without creating one (a flat default)."""
        p = self.positions.get(symbol)
        return p if p is not None else Position(symbol)

    def peek_agg(self, symbol: str) -> OrderAgg:
        """Open-order aggregates of ``symbol`` without creating them."""
        a = self.orders.get(symbol)
        return a if a is not None else OrderAgg()

    def agg(self, symbol: str) -> OrderAgg:
        """Open-order aggregates of ``symbol`` (created empty on first use)."""
        a = self.orders.get(symbol)
        if a is None:
            a = self.orders[symbol] = OrderAgg()
        return a

    def open_symbols(self) -> list[str]:
        """Symbols with a non-zero position."""
        return [s for s, p in self.positions.items() if p.qty]

    def to_state(self) -> dict[str, Any]:
        """JSON-able form (order aggregates are rebuilt from open orders)."""
        return {"kind": "futures", "name": self.name, "wallet": str(self.wallet),
                "positions": [p.to_state() for p in self.positions.values()]}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> FuturesAccount:
        """Inverse of ``to_state``."""
        a = cls(s["name"], Decimal(s["wallet"]))
        for p in s["positions"]:
            a.positions[p["symbol"]] = Position.from_state(p)
        return a


@dataclass(frozen=True)
class PositionView:
    """A futures position as reported by ``positionRisk`` / ``ACCOUNT_UPDATE``."""

    symbol: str
    qty: Decimal
    entry_price: Decimal
    mark_price: Decimal
    unrealized_pnl: Decimal
    leverage: int
    margin_type: str
    liquidation_price: Decimal
    notional: Decimal
    isolated_margin: Decimal
    initial_margin: Decimal
    maint_margin: Decimal
    update_ms: int


@dataclass(frozen=True)
class FuturesAccountView:
    """Totals of a futures account (``/fapi/v2/account`` meaning)."""

    wallet_balance: Decimal
    unrealized_pnl: Decimal
    margin_balance: Decimal
    available_balance: Decimal
    initial_margin: Decimal
    position_initial_margin: Decimal
    open_order_initial_margin: Decimal
    maint_margin: Decimal
    max_withdraw_amount: Decimal
    positions: list[PositionView]


@dataclass(frozen=True)
class IncomeRecord:
    """One ``/fapi/v1/income`` record."""

    tran_id: int
    symbol: str
    income_type: str
    income: Decimal
    asset: str
    time_ms: int
    info: str = ""
    trade_id: str = ""

    def to_state(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"tran_id": self.tran_id, "symbol": self.symbol, "income_type": self.income_type,
                "income": str(self.income), "asset": self.asset, "time_ms": self.time_ms,
                "info": self.info, "trade_id": self.trade_id}

    @classmethod
    def from_state(cls, s: dict[str, Any]) -> IncomeRecord:
        """Inverse of ``to_state``."""
        return cls(int(s["tran_id"]), s["symbol"], s["income_type"], Decimal(s["income"]),
                   s["asset"], int(s["time_ms"]), s["info"], s["trade_id"])
