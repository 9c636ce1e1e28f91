"""The wind-down of a symbol that gave up (``gateway_ops.wind_down``) against a scripted
client, and the line the supervisor logs for it."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

from actors import gateway_ops
from actors.venue_errors import OrderRejectedError, UnknownOutcomeError
from models import messages as m
from models.enums import Market, OrderType, Side
from supervision.symbol_supervisor import wind_down_summary


class Client:
    """Position and open orders of one symbol; a MARKET reduce-only order closes it."""

    def __init__(self, qty: str, orders: int = 2, place_error: Exception | None = None,
                 cancel_errors: int = 0, fills: bool = True) -> None:
        self.qty, self.orders = Decimal(qty), orders
        self.place_error, self.cancel_errors, self.fills = place_error, cancel_errors, fills
        self.placed: list[tuple[Any, ...]] = []

    def sync_time(self) -> int:
        return 0

    def cancel_all(self, symbol: str) -> None:
        if self.cancel_errors:
            self.cancel_errors -= 1
            raise UnknownOutcomeError("timeout")
        self.orders = 0

    def position(self, symbol: str) -> dict[str, Decimal]:
        return {"qty": self.qty}

    def place_order(self, symbol: str, cid: str, side: Side, ot: OrderType, qty: Decimal,
                    price: Any, tif: Any, reduce_only: bool = False) -> dict:
        self.placed.append((cid, side, ot, qty, reduce_only))
        if self.place_error is not None:
            raise self.place_error
        if self.fills:
            self.qty += qty if side is Side.BUY else -qty
        return {}

    def open_orders(self, symbol: str) -> list[dict]:
        return [{}] * self.orders


def _run(c: Client, market: Market = Market.FUTURES, mode: str = "flatten",
         settle_s: float = 0.5) -> m.SymbolWoundDown:
    return gateway_ops.wind_down(c, market, "ETHUSDT", m.WindDownSymbol(symbol="ETHUSDT",
                                 mode=mode, generation=7), "gb-ETH-winddown-7",
                                 threading.Event(), settle_s=settle_s)


def test_a_short_is_closed_with_one_reduce_only_market_buy() -> None:
    c = Client("-0.397")
    r = _run(c)
    assert c.placed == [("gb-ETH-winddown-7", Side.BUY, OrderType.MARKET, Decimal("0.397"),
                         True)]
    assert r.orders_cancelled and r.open_orders_left == 0
    assert (r.position_before, r.position_after) == (Decimal("-0.397"), 0)
    assert wind_down_summary(r, "flatten").startswith(
        "wind-down (flatten): open orders cancelled, position -0.397 closed")


def test_cancel_is_retried_and_a_flat_symbol_sends_no_order() -> None:
    c = Client("0", cancel_errors=2)
    r = _run(c)
    assert c.placed == [] and r.orders_cancelled and r.position_after == 0
    assert "no position" in wind_down_summary(r, "flatten")


def test_leave_mode_and_spot_never_trade() -> None:
    c = Client("1.5")
    r = _run(c, mode="leave")
    assert c.placed == [] and r.position_after == Decimal("1.5")
    assert "LEFT OPEN" in wind_down_summary(r, "leave") and "give_up_mode leave" in r.detail
    c = Client("2")
    r = _run(c, market=Market.SPOT)
    assert c.placed == [] and "never sold" in r.detail


def test_a_rejected_or_unfilled_flatten_is_reported_open() -> None:
    c = Client("0.2", place_error=OrderRejectedError(-2019, "Margin is insufficient"))
    r = _run(c)
    assert r.position_after == Decimal("0.2") and "-2019" in r.detail
    assert "position 0.2 LEFT OPEN" in wind_down_summary(r, "flatten")
    c = Client("0.2", fills=False)
    r = _run(c, settle_s=0.3)
    assert len(c.placed) == 1 and r.position_after == Decimal("0.2")  # one order, never two
