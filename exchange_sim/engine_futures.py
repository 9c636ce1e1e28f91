"""Futures rules of the matching engine (USDT-M, one-way): order validation, settlement,
reduce-only, order modification, leverage / margin type, position and account views.

Margin arithmetic and liquidation are in ``engine_margin``, mark price and funding in
``engine_funding``. See ``exchange_sim.engine`` for the rules.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal

from exchange_sim.accounts import (
    FuturesAccount,
    FuturesAccountView,
    IncomeRecord,
    OrderAgg,
    PositionView,
    SpotAccount,
)
from exchange_sim.engine_base import Book, EngineBase
from exchange_sim.engine_types import (
    MAX_LEVERAGE,
    Q8,
    STOP_TYPES,
    ZERO,
    Event,
    ExchangeError,
    Order,
)
from models.enums import OrderType, Side, TimeInForce
from models.filters import SymbolFilters


def _digits(x: Decimal) -> int:
    e = x.normalize().as_tuple().exponent
    return max(0, -e) if isinstance(e, int) else 0


class FuturesRules(EngineBase):
    """Validation, settlement and settings of futures orders and positions."""

    # ------------------------------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------------------------------
    def _check_fut_price(self, f: SymbolFilters, p: Decimal) -> None:
        if p <= 0:
            raise ExchangeError(-4001, "Price less than 0.")
        if _digits(p) > f.price_precision:
            raise ExchangeError(-1111, "Precision is over the maximum defined for this asset.")
        if p < f.min_price:
            raise ExchangeError(-4013, "Price less than min price.")
        if f.max_price > 0 and p > f.max_price:
            raise ExchangeError(-4002, "Price greater than max price.")
        if p % f.tick_size:
            raise ExchangeError(-4014, "Price not increased by tick size.")

    def _check_fut_qty(self, f: SymbolFilters, q: Decimal, market: bool) -> None:
        if q <= 0:
            raise ExchangeError(-4003, "Quantity less than or equal to zero.")
        if _digits(q) > f.qty_precision:
            raise ExchangeError(-1111, "Precision is over the maximum defined for this asset.")
        step = f.market_step_size if market else f.step_size
        if q < (f.market_min_qty if market else f.min_qty):
            raise ExchangeError(-4004, "Quantity less than min quantity.")
        if q > (f.market_max_qty if market else f.max_qty):
            raise ExchangeError(-4005, "Quantity greater than max quantity.")
        if q % step:
            raise ExchangeError(-4023, "Quantity not increased by step size.")

    def _prepare_futures(self, acct: FuturesAccount, book: Book, side: Side, otype: OrderType,
                         qty: Decimal | None, quote_qty: Decimal | None, price: Decimal | None,
                         tif: TimeInForce | None, coid: str | None, stop_price: Decimal | None,
                         reduce_only: bool) -> tuple[Decimal | None, bool, Decimal]:
        f = book.f
        if otype not in (OrderType.LIMIT, OrderType.MARKET, *STOP_TYPES):
            raise ExchangeError(-1116, "Invalid orderType.")
        if quote_qty is not None:
            raise ExchangeError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
        if qty is None:
            raise ExchangeError(-1102, "Mandatory parameter 'quantity' was not sent, was "
                                "empty/null, or malformed.")
        px: Decimal | None = None
        crossing = False
        last = book.last()
        if otype is OrderType.LIMIT:
            if price is None:
                raise ExchangeError(-1102, "Mandatory parameter 'price' was not sent, was "
                                    "empty/null, or malformed.")
            if tif is None:
                raise ExchangeError(-1102, "Mandatory parameter 'timeInForce' was not sent, was "
                                    "empty/null, or malformed.")
            if stop_price is not None:
                raise ExchangeError(-1106, "Parameter 'stopPrice' sent when not required.")
            self._check_fut_price(f, price)
            self._check_fut_qty(f, qty, False)
            notional = price * qty
        else:
            if price is not None:
                raise ExchangeError(-1106, "Parameter 'price' sent when not required.")
            if tif is not None:
                raise ExchangeError(-1106, "Parameter 'timeInForce' sent when not required.")
            self._check_fut_qty(f, qty, True)
            if otype is OrderType.MARKET:
                if stop_price is not None:
                    raise ExchangeError(-1106, "Parameter 'stopPrice' sent when not required.")
                if last is None:
                    raise ExchangeError(-2010, "No market price available.")
                px = self._taker_price(book, side, last)
                notional = px * qty
            else:
                if stop_price is None:
                    raise ExchangeError(-1102, "Mandatory parameter 'stopPrice' was not sent, "
                                        "was empty/null, or malformed.")
                self._check_fut_price(f, stop_price)
                notional = stop_price * qty
        if notional < f.min_notional and not reduce_only:
            raise ExchangeError(-4164, f"Order's notional must be no smaller than "
                                f"{format(f.min_notional.normalize(), 'f')} (unless you choose "
                                "reduce only).")
        if coid and (acct.name, coid) in self._open_coid:
            raise ExchangeError(-4116, "ClientOrderId is duplicated.")
        pos = acct.peek(book.symbol)
        if reduce_only and (pos.qty == 0 or (pos.qty > 0) == (side is Side.BUY)):
            raise ExchangeError(-2022, "ReduceOnly Order is rejected.")
        if otype in STOP_TYPES and last is not None:
            s = stop_price
            up = (otype is OrderType.STOP_MARKET) == (side is Side.BUY)
            if (up and last >= s) or (not up and last <= s):  # type: ignore[operator]
                raise ExchangeError(-2021, "Order would immediately trigger.")
        if otype is OrderType.LIMIT:
            crossing = self._crosses(book, side, price)  # type: ignore[arg-type]
            if tif is TimeInForce.GTX and crossing:
                raise ExchangeError(-5022, "Due to the order could not be executed as maker, the "
                                    "Post Only order will be rejected.")
        if not reduce_only and otype is not OrderType.STOP_MARKET \
                and otype is not OrderType.TAKE_PROFIT_MARKET:
            if otype is OrderType.MARKET or crossing:
                fill_px = px if px is not None else last
                need = self._increase_qty(pos.qty, side, qty) * fill_px / pos.leverage
            else:
                need = self._order_im_delta(acct, book.symbol, side, qty, price)  # type: ignore
            if need > 0 and need > self._available(acct):
                raise ExchangeError(-2019, "Margin is insufficient.")
        return px, crossing, qty

    # ------------------------------------------------------------------------------------------
    # settlement and reduce-only
    # ------------------------------------------------------------------------------------------
    def _settle_futures(self, acct: FuturesAccount, book: Book, side: Side, qty: Decimal,
                        px: Decimal, maker: bool, ts: int, trade_id: int,
                        liquidation: bool) -> tuple[Decimal, Decimal]:
        symbol = book.symbol
        pos = acct.position(symbol)
        q, e = pos.qty, pos.entry_price
        d = qty if side is Side.BUY else -qty
        nq = q + d
        rpnl = ZERO
        if q == 0 or (q > 0) == (d > 0):
            pos.entry_price = (abs(q) * e + qty * px) / abs(nq)
        else:
            close = min(qty, abs(q))
            rpnl = (close * (px - e) * (1 if q > 0 else -1)).quantize(Q8, rounding=ROUND_HALF_EVEN)
            if nq == 0:
                pos.entry_price = ZERO
            elif (nq > 0) != (q > 0):
                pos.entry_price = px
        pos.qty = nq
        pos.update_ms = ts
        fee = ZERO if liquidation else \
            (px * qty * (self._maker if maker else self._taker)).quantize(Q8, rounding=ROUND_DOWN)
        acct.wallet += rpnl - fee
        if rpnl:
            self._add_income(acct, symbol, "REALIZED_PNL", rpnl, ts, "", str(trade_id))
        if fee:
            self._add_income(acct, symbol, "COMMISSION", -fee, ts, "", str(trade_id))
        if (q == 0) != (nq == 0):
            syms = self._pos_syms[acct.name]
            before = len(syms) >= 2
            if nq == 0:
                syms.discard(symbol)
                book.pos_accounts.discard(acct.name)
            else:
                syms.add(symbol)
                book.pos_accounts.add(acct.name)
            self._multi += (len(syms) >= 2) - before
        self._epoch += 1
        return rpnl, fee

    def _reducible(self, acct: SpotAccount | FuturesAccount, o: Order) -> Decimal:
        """How much of reduce-only ``o`` may fill now (0 when it would not reduce)."""
        assert isinstance(acct, FuturesAccount)
        q = acct.peek(o.symbol).qty
        if q == 0 or (q > 0) == (o.side is Side.BUY):
            return ZERO
        return min(o.remaining, abs(q))

    def _adjust_reduce_only(self, acct: FuturesAccount, book: Book, ts: int,
                            events: list[Event]) -> None:
        q = acct.peek(book.symbol).qty
        for o in [x for x in book.orders.values() if x.reduce_only and x.account == acct.name]:
            if q == 0 or (q > 0) == (o.side is Side.BUY):
                self._finish(book, o, "EXPIRED", ts)
                events.append(self._oev(o, "EXPIRED", None, ts))
            elif o.remaining > abs(q):
                o.orig_qty = o.executed_qty + abs(q)
                o.update_ms = ts
                events.append(self._oev(o, "AMENDMENT", None, ts))

    # ------------------------------------------------------------------------------------------
    # order modification
    # ------------------------------------------------------------------------------------------
    def modify_order(self, account: str, symbol: str, *, order_id: int | None = None,
                     client_order_id: str | None = None, side: Side, qty: Decimal,
                     price: Decimal, ts_ms: int) -> tuple[Order, list[Event]]:
        """Amend an open futures LIMIT order (PUT /fapi/v1/order): keeps the order id, emits
        AMENDMENT and fills at once if the new price crosses. As on Binance the order is
        cancelled when the new quantity is not above the executed quantity or when a GTX
        order would cross."""
        if not self.futures:
            raise ExchangeError(-1000, "Order modification is only available on futures.")
        book = self._book(symbol)
        acct = self._facct(account)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None or not o.is_open:
            raise ExchangeError(-2013, "Order does not exist.")
        if o.type is not OrderType.LIMIT:
            raise ExchangeError(-5025, "Only limit order is supported.")
        side, qty, price = Side(side), Decimal(qty), Decimal(price)
        if side is not o.side:
            raise ExchangeError(-1102, "Parameter 'side' must equal the order's side.")
        f = book.f
        self._check_fut_price(f, price)
        self._check_fut_qty(f, qty, False)
        if price * qty < f.min_notional and not o.reduce_only:
            raise ExchangeError(-4164, f"Order's notional must be no smaller than "
                                f"{format(f.min_notional.normalize(), 'f')} (unless you choose "
                                "reduce only).")
        if price == o.price and qty == o.orig_qty:
            raise ExchangeError(-5027, "No need to modify the order.")
        events: list[Event] = []
        crossing = self._crosses(book, side, price)
        if qty <= o.executed_qty or (o.tif is TimeInForce.GTX and crossing):
            self._cancel(acct, book, o, ts_ms, events)
            return o, events
        if not o.reduce_only:
            pos = acct.peek(symbol)
            if crossing:
                need = self._increase_qty(pos.qty, side, qty - o.executed_qty) \
                    * (book.last() or price) / pos.leverage
            else:
                agg = acct.peek_agg(symbol)
                before = self._agg_im(pos.qty, agg, pos.leverage)
                after = OrderAgg(agg.buy_qty, agg.buy_notional, agg.sell_qty, agg.sell_notional)
                after.add(side.sign, -o.remaining, o.price)
                after.add(side.sign, qty - o.executed_qty, price)
                need = self._agg_im(pos.qty, after, pos.leverage) - before
            if need > 0 and need > self._available(acct):
                raise ExchangeError(-2019, "Margin is insufficient.")
        self._unrest(book, o)
        o.price, o.orig_qty, o.update_ms = price, qty, ts_ms
        events.append(self._oev(o, "AMENDMENT", None, ts_ms))
        if crossing:
            last = book.last()
            assert last is not None
            if o.reduce_only or o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._exec_taker(acct, book, o, last, ts_ms, events,
                                 fok=o.tif is TimeInForce.FOK)
            else:
                self._fill(acct, book, o, o.remaining, last, False, ts_ms, events)
                self._liq_check(acct, symbol, ts_ms, events)
        else:
            self._rest(book, o)
            if o.reduce_only:
                self._adjust_reduce_only(acct, book, ts_ms, events)
        return o, events

    # ------------------------------------------------------------------------------------------
    # settings
    # ------------------------------------------------------------------------------------------
    def set_leverage(self, account: str, symbol: str, leverage: int) -> int:
        """Set the symbol's leverage (1..125); returns it."""
        self._book(symbol)
        acct = self._facct(account)
        if not isinstance(leverage, int) or not 1 <= leverage <= MAX_LEVERAGE:
            raise ExchangeError(-4028, f"Leverage {leverage} is not valid")
        acct.position(symbol).leverage = leverage
        self._epoch += 1
        return leverage

    def set_margin_type(self, account: str, symbol: str, margin_type: str) -> None:
        """Set CROSSED or ISOLATED (stored and reported; margined as cross)."""
        book = self._book(symbol)
        acct = self._facct(account)
        mt = {"CROSS": "CROSSED"}.get(margin_type.upper(), margin_type.upper())
        if mt not in ("CROSSED", "ISOLATED"):
            raise ExchangeError(-1102, "Invalid marginType.")
        pos = acct.peek(symbol)
        if pos.margin_type == mt:
            raise ExchangeError(-4046, "No need to change margin type.")
        if pos.qty:
            raise ExchangeError(-4048, "Margin type cannot be changed if there exists position.")
        if any(o.account == account for o in book.orders.values()):
            raise ExchangeError(-4047,
                                "Margin type cannot be changed if there exists open orders.")
        acct.position(symbol).margin_type = mt

    # ------------------------------------------------------------------------------------------
    # views
    # ------------------------------------------------------------------------------------------
    def _position_view(self, acct: FuturesAccount, symbol: str) -> PositionView:
        p = acct.peek(symbol)
        book = self._books[symbol]
        m = self._mark(book)
        mark = m if m is not None else p.entry_price
        notional = p.qty * mark
        lp = self._liq_price(acct, symbol) if p.qty else None
        im = abs(notional) / p.leverage
        return PositionView(
            symbol=symbol, qty=p.qty, entry_price=p.entry_price, mark_price=mark,
            unrealized_pnl=p.qty * (mark - p.entry_price) if p.qty else ZERO,
            leverage=p.leverage, margin_type=p.margin_type,
            liquidation_price=lp if lp is not None else ZERO, notional=notional,
            isolated_margin=im if p.margin_type == "ISOLATED" else ZERO, initial_margin=im,
            maint_margin=self._maint(symbol, abs(notional)) if p.qty else ZERO,
            update_ms=p.update_ms,
        )

    def positions(self, account: str, symbol: str | None = None) -> list[PositionView]:
        """Position views (every symbol when ``symbol`` is None, flat ones included)."""
        acct = self._facct(account)
        syms = [self._book(symbol).symbol] if symbol is not None else sorted(self._books)
        return [self._position_view(acct, s) for s in syms]

    def futures_account(self, account: str) -> FuturesAccountView:
        """Account totals and positions (/fapi/v2/account meaning)."""
        acct = self._facct(account)
        upnl, pim, oim, mm = self._totals(acct)
        mb = acct.wallet + upnl
        avail = mb - pim - oim
        return FuturesAccountView(
            wallet_balance=acct.wallet, unrealized_pnl=upnl, margin_balance=mb,
            available_balance=avail, initial_margin=pim + oim, position_initial_margin=pim,
            open_order_initial_margin=oim, maint_margin=mm,
            max_withdraw_amount=max(ZERO, min(avail, acct.wallet - pim - oim)),
            positions=self.positions(account),
        )

    def income(self, account: str, *, symbol: str | None = None, income_type: str | None = None,
               start_ms: int | None = None, end_ms: int | None = None,
               limit: int = 100) -> list[IncomeRecord]:
        """Income records (/fapi/v1/income), oldest first."""
        self._facct(account)
        out = self._income[account]
        if symbol is not None:
            out = [r for r in out if r.symbol == symbol]
        if income_type is not None:
            out = [r for r in out if r.income_type == income_type]
        if start_ms is not None:
            out = [r for r in out if r.time_ms >= start_ms]
        if end_ms is not None:
            out = [r for r in out if r.time_ms <= end_ms]
        if start_ms is not None:
            return out[:limit]
        return out[-limit:] if limit else []
