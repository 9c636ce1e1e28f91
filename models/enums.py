"""Shared domain enumerations (plain string enums so they encode as Binance's own strings)."""

from __future__ import annotations

from enum import Enum


class Side(str, Enum):
    """Order side, spelled as Binance spells it."""

    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        """+1 for BUY, -1 for SELL."""
        return 1 if self is Side.BUY else -1

    def opposite(self) -> Side:
        """The other side."""
        return Side.SELL if self is Side.BUY else Side.BUY


class Market(str, Enum):
    """Which Binance market a symbol trades on."""

    SPOT = "spot"
    FUTURES = "futures"


class OrderType(str, Enum):
    """Order types the bot and the embedded exchange understand."""

    LIMIT = "LIMIT"
    LIMIT_MAKER = "LIMIT_MAKER"
    MARKET = "MARKET"
    STOP_MARKET = "STOP_MARKET"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"


class TimeInForce(str, Enum):
    """Time in force; GTX is Binance futures' post-only."""

    GTC = "GTC"
    IOC = "IOC"
    FOK = "FOK"
    GTX = "GTX"


class Venue(str, Enum):
    """Where the bot trades."""

    SIM = "sim"
    TESTNET = "testnet"
    LIVE = "live"


class TradingState(str, Enum):
    """Portfolio-wide trading state."""

    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"
