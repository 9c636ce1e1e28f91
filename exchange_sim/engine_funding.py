"""Mark price and funding of the matching engine (futures).

The mark price is set from outside (``set_mark_price``; from then on it no longer follows the
last price) or else is the last price. Funding ``apply_funding(symbol, rate, ts)`` books
``−qty × mark × rate`` per position (longs pay a positive rate) as FUNDING_FEE income.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

from exchange_sim.accounts import FuturesAccount
from exchange_sim.engine_base import EngineBase
from exchange_sim.engine_types import Q8, AccountEvent, Event, ExchangeError


class FundingRules(EngineBase):
    """The futures mark price and funding settlement."""

    def set_mark_price(self, symbol: str, price: Decimal, ts_ms: int) -> list[Event]:
        """Set the futures mark price from outside (from then on it no longer follows the last
        price); liquidates accounts whose margin balance falls to the maintenance margin."""
        if not self.futures:
            raise ExchangeError(-1000, "Mark price is only available on futures.")
        book = self._book(symbol)
        if book.mark_ext is None:
            # the fast-path bounds stop including liquidation prices (checked here from now
            # on); later marks change no order bound, so the bounds stay valid
            book.stale = True
        book.mark_ext = Decimal(price)
        if self._multi and book.pos_accounts:
            self._epoch += 1
        events: list[Event] = []
        for name in sorted(book.pos_accounts):
            acct = self._accounts[name]
            assert isinstance(acct, FuturesAccount)
            self._liq_check(acct, symbol, ts_ms, events)
        return events

    def apply_funding(self, symbol: str, rate: Decimal, ts_ms: int) -> list[Event]:
        """Settle funding on ``symbol``: each position pays ``qty × mark × rate`` (longs pay a
        positive rate), booked as FUNDING_FEE income."""
        if not self.futures:
            raise ExchangeError(-1000, "Funding is only available on futures.")
        book = self._book(symbol)
        rate = Decimal(rate)
        mark = self._mark(book)
        events: list[Event] = []
        if mark is None:
            if book.pos_accounts:
                raise ValueError(f"no mark price for {symbol}")
            return events
        for name in sorted(book.pos_accounts):
            acct = self._accounts[name]
            assert isinstance(acct, FuturesAccount)
            pos = acct.positions[symbol]
            amount = -(pos.qty * mark * rate).quantize(Q8, rounding=ROUND_HALF_EVEN)
            if not amount:
                continue
            acct.wallet += amount
            self._add_income(acct, symbol, "FUNDING_FEE", amount, ts_ms)
            self._epoch += 1
            ev = self._aev(acct, book, "FUNDING_FEE", ts_ms)
            # balance change "bc" of ACCOUNT_UPDATE carries the funding amount (as Binance)
            events.append(AccountEvent(ev.account, ev.reason,
                                       {"USDT": (acct.wallet, acct.wallet, amount)},
                                       ev.positions, ev.time_ms))
            self._liq_check(acct, symbol, ts_ms, events)
        return events
