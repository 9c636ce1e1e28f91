"""Spot rules of the matching engine: order validation, settlement, cancel-replace.

Per-asset free/locked balances: a LIMIT/LIMIT_MAKER buy locks ``price × qty`` quote (+ the fee
reserve with the BNB discount), a sell locks ``qty`` base; fills consume the lock and
cancel/expire releases the rest (``EngineBase._finish``). See ``exchange_sim.engine``.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, Decimal
from typing import Any

from exchange_sim.accounts import SpotAccount
from exchange_sim.engine_base import Book, EngineBase
from exchange_sim.engine_types import (
    ONE,
    Q8,
    ZERO,
    CancelReplaceError,
    Event,
    ExchangeError,
    Order,
)
from models.enums import OrderType, Side, TimeInForce
from models.filters import FilterViolation


class SpotRules(EngineBase):
    """Validation and settlement of spot orders; spot cancel-replace."""

    def _prepare_spot(self, acct: SpotAccount, book: Book, side: Side, otype: OrderType,
                      qty: Decimal | None, quote_qty: Decimal | None, price: Decimal | None,
                      tif: TimeInForce | None, coid: str | None, stop_price: Decimal | None,
                      reduce_only: bool) -> tuple[Decimal | None, Decimal, bool, Decimal]:
        f = book.f
        if otype not in (OrderType.LIMIT, OrderType.LIMIT_MAKER, OrderType.MARKET):
            raise ExchangeError(-1116, "Invalid orderType.")
        if reduce_only:
            raise ExchangeError(-1106, "Parameter 'reduceOnly' sent when not required.")
        if stop_price is not None:
            raise ExchangeError(-1106, "Parameter 'stopPrice' sent when not required.")
        px: Decimal | None = None
        crossing = False
        if otype is OrderType.MARKET:
            if price is not None:
                raise ExchangeError(-1106, "Parameter 'price' sent when not required.")
            if tif is not None:
                raise ExchangeError(-1106, "Parameter 'timeInForce' sent when not required.")
            if (qty is None) == (quote_qty is None):
                raise ExchangeError(
                    -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                    "empty/null!" if qty is None else
                    "Parameter 'quantity' and 'quoteOrderQty' cannot both be sent.")
            last = book.last()
            if last is None:
                raise ExchangeError(-2010, "No market price available.")
            px = self._taker_price(book, side, last)
            if quote_qty is not None:
                quote_qty = Decimal(quote_qty)
                if quote_qty <= 0:
                    raise ExchangeError(-1013, "Filter failure: NOTIONAL")
                # a quote-sized buy must also cover a quote-asset fee (BNB mode)
                div = px * (ONE + self._taker) if (self._fee_in_quote and side is Side.BUY) \
                    else px
                qty = f.round_qty(quote_qty / div, market=True)
            assert qty is not None
            try:
                f.check(None, qty, market=True)
            except FilterViolation as e:
                raise ExchangeError(e.code, e.msg) from None
            if qty * px < f.min_notional:
                raise ExchangeError(-1013, "Filter failure: NOTIONAL")
            lock = ZERO
        else:
            if price is None:
                raise ExchangeError(-1102, "Mandatory parameter 'price' was not sent, was "
                                    "empty/null, or malformed.")
            if qty is None:
                raise ExchangeError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                                    "empty/null, or malformed.")
            if quote_qty is not None:
                raise ExchangeError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
            if otype is OrderType.LIMIT:
                if tif is None:
                    raise ExchangeError(-1102, "Mandatory parameter 'timeInForce' was not sent, "
                                        "was empty/null, or malformed.")
                if tif is TimeInForce.GTX:
                    raise ExchangeError(-1115, "Invalid timeInForce.")
            elif tif is not None:
                raise ExchangeError(-1106, "Parameter 'timeInForce' sent when not required.")
            try:
                f.check(price, qty)
            except FilterViolation as e:
                raise ExchangeError(e.code, e.msg) from None
            crossing = self._crosses(book, side, price)
            if otype is OrderType.LIMIT_MAKER and crossing:
                raise ExchangeError(-2010, "Order would immediately match and take.")
            if side is Side.BUY:
                lock = price * qty
                if self._fee_in_quote:
                    lock += (lock * self._reserve_rate).quantize(Q8, rounding=ROUND_CEILING)
            else:
                lock = qty
        if coid and (acct.name, coid) in self._open_coid:
            raise ExchangeError(-2010, "Duplicate order sent.")
        if side is Side.BUY:
            need = lock if otype is not OrderType.MARKET else qty * px  # type: ignore[operator]
            if otype is OrderType.MARKET and self._fee_in_quote:
                need += (need * self._taker).quantize(Q8, rounding=ROUND_DOWN)
            have = acct.free.get(f.quote_asset, ZERO)
        else:
            need = qty
            have = acct.free.get(f.base_asset, ZERO)
        if need > have:
            raise ExchangeError(-2010, "Account has insufficient balance for requested action.")
        return px, lock, crossing, qty

    def _settle_spot(self, acct: SpotAccount, book: Book, o: Order, qty: Decimal, px: Decimal,
                     maker: bool) -> tuple[Decimal, str]:
        base, quote = book.f.base_asset, book.f.quote_asset
        rate = self._maker if maker else self._taker
        notional = px * qty
        fq = self._fee_in_quote
        buy = o.side is Side.BUY
        fee = ((notional if (fq or not buy) else qty) * rate).quantize(Q8, rounding=ROUND_DOWN)
        free, locked = acct.free, acct.locked
        if o.type is not OrderType.MARKET:
            if buy:
                rel = o.price * qty
                o.locked -= rel
                locked[quote] -= rel
                free[quote] = free.get(quote, ZERO) + rel - notional
                if fq:
                    o.locked -= fee
                    locked[quote] -= fee
                free[base] = free.get(base, ZERO) + qty - (ZERO if fq else fee)
            else:
                o.locked -= qty
                locked[base] -= qty
                free[quote] = free.get(quote, ZERO) + notional - fee
        elif buy:
            free[quote] = free.get(quote, ZERO) - notional - (fee if fq else ZERO)
            free[base] = free.get(base, ZERO) + qty - (ZERO if fq else fee)
        else:
            free[base] = free.get(base, ZERO) - qty
            free[quote] = free.get(quote, ZERO) + notional - fee
        locked.setdefault(base, ZERO)
        locked.setdefault(quote, ZERO)
        return fee, (quote if (fq or not buy) else base)

    def cancel_replace(self, account: str, symbol: str, *, cancel_order_id: int | None = None,
                       cancel_client_order_id: str | None = None, new_order: dict[str, Any],
                       mode: str = "STOP_ON_FAILURE", ts_ms: int
                       ) -> tuple[Order | None, Order | None, list[Event]]:
        """Spot cancel-replace (POST /api/v3/order/cancelReplace).

        ``new_order`` holds ``place_order`` keyword arguments (side, type, qty, price, ...).
        On any failure raises ``CancelReplaceError`` (-2022 when nothing was done, -2021 when
        one half succeeded) carrying the results and the events of what happened."""
        if self.futures:
            raise ExchangeError(-1000, "Cancel-replace is only available on spot.")
        if mode not in ("STOP_ON_FAILURE", "ALLOW_FAILURE"):
            raise ExchangeError(-1102, "Invalid cancelReplaceMode.")
        events: list[Event] = []
        cancelled: Order | None = None
        cancel_err: ExchangeError | None = None
        try:
            cancelled, ev = self.cancel_order(account, symbol, order_id=cancel_order_id,
                                              client_order_id=cancel_client_order_id, ts_ms=ts_ms)
            events += ev
        except ExchangeError as e:
            cancel_err = e
            if mode == "STOP_ON_FAILURE":
                raise CancelReplaceError(
                    -2022, "Order cancel-replace failed.", cancel_result="FAILURE",
                    new_order_result="NOT_ATTEMPTED", cancel_error=e, new_order_error=None,
                    cancelled=None, new_order=None, events=events) from None
        kw = dict(new_order)
        kw.pop("ts_ms", None)
        side = kw.pop("side")
        otype = kw.pop("type")
        try:
            new, ev = self.place_order(account, symbol, side, otype, ts_ms=ts_ms, **kw)
            events += ev
        except ExchangeError as e:
            both = cancel_err is not None
            raise CancelReplaceError(
                -2022 if both else -2021,
                "Order cancel-replace failed." if both else
                "Order cancel-replace partially failed.",
                cancel_result="FAILURE" if both else "SUCCESS", new_order_result="FAILURE",
                cancel_error=cancel_err, new_order_error=e, cancelled=cancelled,
                new_order=None, events=events) from None
        if cancel_err is not None:
            raise CancelReplaceError(
                -2021, "Order cancel-replace partially failed.", cancel_result="FAILURE",
                new_order_result="SUCCESS", cancel_error=cancel_err, new_order_error=None,
                cancelled=None, new_order=new, events=events)
        return cancelled, new, events
