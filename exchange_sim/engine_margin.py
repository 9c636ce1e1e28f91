"""Futures margin and liquidation of the matching engine (cross margin, USDT).

Initial margin = |notional at mark| / leverage; open orders add the margin of the part of their
quantity that would increase the position (the larger of the buy and sell sides). Maintenance
margin from the bracket tables (``exchange_sim.specs``). When an account's margin balance falls
to its maintenance margin, every position is closed at the mark price (``_liq_check``); see
``exchange_sim.engine`` for the clearance fee and the insurance fund.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal

from exchange_sim.accounts import FuturesAccount, OrderAgg
from exchange_sim.engine_base import Book, EngineBase
from exchange_sim.engine_types import (
    LIQUIDATION_FEE_RATE,
    Q8,
    ZERO,
    Event,
    Order,
)
from exchange_sim.specs import bracket_for, maintenance_brackets
from models.enums import OrderType, Side


class MarginRules(EngineBase):
    """Margin arithmetic, liquidation prices and liquidation of futures accounts."""

    # ------------------------------------------------------------------------------------------
    # margin arithmetic
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _increase_qty(pos_qty: Decimal, side: Side, qty: Decimal) -> Decimal:
        """Part of ``qty`` that would increase the position (the rest reduces it)."""
        if pos_qty == 0 or (pos_qty > 0) == (side is Side.BUY):
            return qty
        return max(ZERO, qty - abs(pos_qty))

    @staticmethod
    def _agg_im(pos_qty: Decimal, agg: OrderAgg, lev: int) -> Decimal:
        buy = sell = ZERO
        if agg.buy_qty > 0:
            inc = agg.buy_qty - max(-pos_qty, ZERO)
            if inc > 0:
                buy = agg.buy_notional * inc / agg.buy_qty
        if agg.sell_qty > 0:
            inc = agg.sell_qty - max(pos_qty, ZERO)
            if inc > 0:
                sell = agg.sell_notional * inc / agg.sell_qty
        return max(buy, sell) / lev

    def _order_im_delta(self, acct: FuturesAccount, symbol: str, side: Side, qty: Decimal,
                        price: Decimal) -> Decimal:
        pos = acct.peek(symbol)
        agg = acct.peek_agg(symbol)
        before = self._agg_im(pos.qty, agg, pos.leverage)
        after_agg = OrderAgg(agg.buy_qty, agg.buy_notional, agg.sell_qty, agg.sell_notional)
        after_agg.add(side.sign, qty, price)
        return self._agg_im(pos.qty, after_agg, pos.leverage) - before

    def _pos_mark(self, symbol: str, entry: Decimal) -> Decimal:
        m = self._mark(self._books[symbol])
        return m if m is not None else entry

    @staticmethod
    def _maint(symbol: str, notional: Decimal) -> Decimal:
        b = bracket_for(symbol, notional)
        return notional * b.mmr - b.cum

    def _totals(self, acct: FuturesAccount) -> tuple[Decimal, Decimal, Decimal, Decimal]:
        """(unrealized PnL, position IM, open-order IM, maintenance margin)."""
        upnl = pim = oim = mm = ZERO
        for sym in self._pos_syms[acct.name]:
            p = acct.positions[sym]
            m = self._pos_mark(sym, p.entry_price)
            upnl += p.qty * (m - p.entry_price)
            notional = abs(p.qty) * m
            pim += notional / p.leverage
            mm += self._maint(sym, notional)
        for sym, agg in acct.orders.items():
            if agg.buy_qty or agg.sell_qty:
                p = acct.peek(sym)
                oim += self._agg_im(p.qty, agg, p.leverage)
        return upnl, pim, oim, mm

    def _available(self, acct: FuturesAccount) -> Decimal:
        upnl, pim, oim, _ = self._totals(acct)
        return acct.wallet + upnl - pim - oim

    def _margin_state(self, acct: FuturesAccount) -> tuple[Decimal, Decimal]:
        """(margin balance, maintenance margin)."""
        upnl = mm = ZERO
        for sym in self._pos_syms[acct.name]:
            p = acct.positions[sym]
            m = self._pos_mark(sym, p.entry_price)
            upnl += p.qty * (m - p.entry_price)
            mm += self._maint(sym, abs(p.qty) * m)
        return acct.wallet + upnl, mm

    def _liq_price(self, acct: FuturesAccount, symbol: str) -> Decimal | None:
        """Mark price of ``symbol`` at which margin balance == maintenance margin (cross,
        other symbols' marks fixed); None when the position cannot be liquidated."""
        p = acct.positions.get(symbol)
        if p is None or not p.qty:
            return None
        w = acct.wallet
        m_other = ZERO
        for sym in self._pos_syms[acct.name]:
            if sym == symbol:
                continue
            o = acct.positions[sym]
            m = self._pos_mark(sym, o.entry_price)
            w += o.qty * (m - o.entry_price)
            m_other += self._maint(sym, abs(o.qty) * m)
        q = p.qty
        aq = abs(q)
        for b in maintenance_brackets(symbol):
            den = q - aq * b.mmr
            if not den:
                continue
            m = (m_other - b.cum - w + q * p.entry_price) / den
            if m <= 0:
                continue
            n = aq * m
            if b.floor <= n < b.cap:
                return m
        return None

    # ------------------------------------------------------------------------------------------
    # liquidation
    # ------------------------------------------------------------------------------------------
    def _liq_check(self, acct: FuturesAccount, symbol: str, ts: int,
                   events: list[Event]) -> None:
        """Liquidate ``acct`` when its margin balance is at or below its maintenance margin:
        cross liquidation closes all its positions (the one on ``symbol`` first)."""
        syms = self._pos_syms[acct.name]
        if not syms:
            return
        mb, mm = self._margin_state(acct)
        if mb > mm:
            return
        for sym in sorted(syms, key=lambda s: (s != symbol, s)):
            book = self._books[sym]
            pos = acct.positions[sym]
            m = self._pos_mark(sym, pos.entry_price)
            # on the tick grid, against the account (a mark can be finer than the tick)
            rnd = ROUND_FLOOR if pos.qty > 0 else ROUND_CEILING
            px = (m / book.f.tick_size).to_integral_value(rounding=rnd) * book.f.tick_size
            self._liquidate(acct, book, px, ts, events)

    def _liquidate(self, acct: FuturesAccount, book: Book, px: Decimal, ts: int,
                   events: list[Event]) -> None:
        for o in sorted((x for x in book.orders.values() if x.account == acct.name),
                        key=lambda x: x.order_id):
            self._cancel(acct, book, o, ts, events)
        pos = acct.positions[book.symbol]
        q = pos.qty
        lo = Order(self._next_order_id, "", acct.name, book.symbol,
                   Side.SELL if q > 0 else Side.BUY, OrderType.MARKET, None, ZERO, abs(q), ZERO,
                   ZERO, "NEW", ZERO, True, ts, ts)
        self._next_order_id += 1
        lo.client_order_id = f"autoclose-{lo.order_id}"
        self._register(lo)
        events.append(self._oev(lo, "NEW", None, ts))
        self._fill(acct, book, lo, abs(q), px, False, ts, events, liquidation=True)
        fee = min((abs(q) * px * LIQUIDATION_FEE_RATE).quantize(Q8, rounding=ROUND_DOWN),
                  max(acct.wallet, ZERO))
        if fee > 0:
            acct.wallet -= fee
            self._add_income(acct, book.symbol, "INSURANCE_CLEAR", -fee, ts, "liquidation fee")
        if acct.wallet < 0 and not self._pos_syms[acct.name]:
            cover = -acct.wallet
            acct.wallet = ZERO
            self._add_income(acct, book.symbol, "INSURANCE_CLEAR", cover, ts,
                             "insurance fund cover")
        self._epoch += 1
        events.append(self._aev(acct, book, "LIQUIDATION", ts))
