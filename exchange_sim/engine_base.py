"""The matching engine's state and the steps every order goes through (``exchange_sim.engine``).

``EngineBase`` holds what one market's engine knows (books of our resting orders per symbol,
accounts, orders, fills, income, id counters, the fast path's epoch) and the steps shared by
spot and futures: look-ups, the last price and taker prices, resting/unresting an order,
terminal transitions, events, executing a fill (``_fill``, which settles through the spot or
futures rules) and taker execution. The market rules, the bar path and persistence are mixins
(``engine_spot``, ``engine_futures``, ``engine_margin``, ``engine_funding``, ``engine_matching``,
``engine_state``) combined by ``exchange_sim.engine.Engine``; a method named here but not
defined here (``_settle_spot``, ``_settle_futures``, ``_reducible``, ``_adjust_reduce_only``,
``_increase_qty``, ``_available``, ``_liq_check``, ``_position_view``) comes from one of them.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from exchange_sim.accounts import FuturesAccount, IncomeRecord, SpotAccount
from exchange_sim.engine_types import (
    BPS,
    INF,
    ONE,
    TRANSITIONS,
    ZERO,
    AccountEvent,
    Event,
    ExchangeError,
    FeeSchedule,
    Fill,
    FillConfig,
    IllegalTransition,
    Order,
    OrderEvent,
)
from exchange_sim.specs import default_specs
from models.enums import Market, OrderType, Side
from models.filters import SymbolFilters


class Book:
    """Our resting orders on one symbol plus the cached trigger bounds of the fast path."""

    __slots__ = ("f", "symbol", "orders", "lo", "hi", "stale", "last_f", "last_d", "mark_ext",
                 "liq_epoch", "pos_accounts", "n_reduce", "down", "up")

    def __init__(self, f: SymbolFilters) -> None:
        self.f = f
        self.symbol = f.symbol
        self.orders: dict[int, Order] = {}
        self.lo = -INF  # a bar with low > lo and high < hi triggers nothing
        self.hi = INF
        self.stale = False
        self.last_f: float | None = None
        self.last_d: Decimal | None = None
        self.mark_ext: Decimal | None = None
        self.liq_epoch = -1
        self.pos_accounts: set[str] = set()
        self.n_reduce = 0
        # (level, order) of the orders a falling / rising price reaches (rebuilt by _refresh)
        self.down: list[tuple[float, Order]] = []
        self.up: list[tuple[float, Order]] = []

    def last(self) -> Decimal | None:
        """Last price as a Decimal on the tick grid (converted lazily from the bar close)."""
        d = self.last_d
        if d is None and self.last_f is not None:
            d = self.last_d = to_tick(Decimal(repr(self.last_f)), self.f.tick_size)
        return d


def to_tick(x: Decimal, tick: Decimal) -> Decimal:
    """``x`` on the tick grid (half-even)."""
    if x % tick == 0:
        return x
    return (x / tick).to_integral_value(rounding=ROUND_HALF_EVEN) * tick


class EngineBase:
    """State and shared steps of one market's engine (see the module docstring)."""

    def __init__(self, market: Market, specs: dict[str, SymbolFilters] | None = None,
                 fees: FeeSchedule | None = None, fill: FillConfig | None = None) -> None:
        self.market = market
        self.futures = market is Market.FUTURES
        self.specs: dict[str, SymbolFilters] = dict(
            specs if specs is not None else default_specs(market))
        self.fees = fees or FeeSchedule.default(market)
        self.fill = fill or FillConfig()
        self._maker, self._taker = self.fees.rates(market)
        self._reserve_rate = max(self._maker, self._taker)
        self._fee_in_quote = (not self.futures) and self.fees.bnb_discount
        share = self.fill.max_volume_share
        self._share = Decimal(repr(float(share))) if share else None
        self._slip = Decimal(self.fill.market_slippage_bps) / BPS
        self._touch = self.fill.fill_on_touch
        self._books: dict[str, Book] = {s: Book(f) for s, f in self.specs.items()}
        self._accounts: dict[str, SpotAccount | FuturesAccount] = {}
        self._orders: dict[int, Order] = {}
        self._acct_orders: dict[tuple[str, str], list[int]] = {}
        self._open_coid: dict[tuple[str, str], int] = {}
        self._coid_any: dict[tuple[str, str], int] = {}
        self._fills: dict[tuple[str, str], list[Fill]] = {}
        self._income: dict[str, list[IncomeRecord]] = {}
        self._pos_syms: dict[str, set[str]] = {}
        self._next_order_id = 1
        self._next_trade_id = 1
        self._next_tran_id = 1
        self._epoch = 0  # bumped whenever a futures account's margin state changes
        self._multi = 0  # futures accounts with positions on >= 2 symbols

    # ------------------------------------------------------------------------------------------
    # lookups
    # ------------------------------------------------------------------------------------------
    def _acct(self, account: str) -> SpotAccount | FuturesAccount:
        try:
            return self._accounts[account]
        except KeyError:
            raise ExchangeError(-2015, "Invalid API-key, IP, or permissions for action.",
                                401) from None

    def _book(self, symbol: str) -> Book:
        try:
            return self._books[symbol]
        except KeyError:
            raise ExchangeError(-1121, "Invalid symbol.") from None

    def _facct(self, account: str) -> FuturesAccount:
        a = self._acct(account)
        if not isinstance(a, FuturesAccount):
            raise ExchangeError(-1000, "This request is only available on the futures market.")
        return a

    # ------------------------------------------------------------------------------------------
    # prices
    # ------------------------------------------------------------------------------------------
    def _mark(self, book: Book) -> Decimal | None:
        return book.mark_ext if book.mark_ext is not None else book.last()

    def _set_last(self, book: Book, price: Decimal) -> None:
        book.last_d = price
        book.last_f = float(price)
        if self._multi and book.pos_accounts and book.mark_ext is None:
            self._epoch += 1

    def _taker_price(self, book: Book, side: Side, base: Decimal) -> Decimal:
        """``base`` moved by the slippage against the taker, on the tick grid (adverse)."""
        tick = book.f.tick_size
        if side is Side.BUY:
            x = base * (ONE + self._slip)
            n = (x / tick).to_integral_value(rounding=ROUND_CEILING)
        else:
            x = base * (ONE - self._slip)
            n = (x / tick).to_integral_value(rounding=ROUND_FLOOR)
        return (n * tick).quantize(tick)

    def _crosses(self, book: Book, side: Side, price: Decimal) -> bool:
        last = book.last()
        if last is None:
            return False
        if side is Side.BUY:
            return price > last or (self._touch and price == last)
        return price < last or (self._touch and price == last)

    # ------------------------------------------------------------------------------------------
    # order book bookkeeping
    # ------------------------------------------------------------------------------------------
    def _register(self, o: Order) -> None:
        self._orders[o.order_id] = o
        self._acct_orders.setdefault((o.account, o.symbol), []).append(o.order_id)
        self._coid_any[(o.account, o.client_order_id)] = o.order_id
        self._open_coid[(o.account, o.client_order_id)] = o.order_id

    def _rest(self, book: Book, o: Order) -> None:
        book.orders[o.order_id] = o
        book.stale = True
        if o.reduce_only:
            book.n_reduce += 1
        elif self.futures and o.type is OrderType.LIMIT:
            acct = self._accounts[o.account]
            assert isinstance(acct, FuturesAccount)
            acct.agg(o.symbol).add(o.side.sign, o.remaining, o.price)

    def _unrest(self, book: Book, o: Order) -> None:
        if book.orders.pop(o.order_id, None) is None:
            return
        book.stale = True
        if o.reduce_only:
            book.n_reduce -= 1
        elif self.futures and o.type is OrderType.LIMIT:
            acct = self._accounts[o.account]
            assert isinstance(acct, FuturesAccount)
            acct.agg(o.symbol).add(o.side.sign, -o.remaining, o.price)

    @staticmethod
    def _transition(o: Order, status: str) -> None:
        if status not in TRANSITIONS[o.status]:
            raise IllegalTransition(f"order {o.order_id}: {o.status} -> {status}")
        o.status = status

    def _finish(self, book: Book, o: Order, status: str, ts: int) -> None:
        """Move ``o`` to a terminal status and release everything it held."""
        self._unrest(book, o)
        self._transition(o, status)
        o.update_ms = ts
        self._open_coid.pop((o.account, o.client_order_id), None)
        if o.locked:
            acct = self._accounts[o.account]
            assert isinstance(acct, SpotAccount)
            asset = book.f.quote_asset if o.side is Side.BUY else book.f.base_asset
            acct.locked[asset] -= o.locked
            acct.free[asset] = acct.free.get(asset, ZERO) + o.locked
            o.locked = ZERO

    # ------------------------------------------------------------------------------------------
    # events
    # ------------------------------------------------------------------------------------------
    @staticmethod
    def _oev(o: Order, exec_type: str, fill: Fill | None, ts: int) -> OrderEvent:
        snap = object.__new__(Order)
        snap.__dict__.update(o.__dict__)  # a shallow copy, ~3x faster than copy.copy
        return OrderEvent(snap, exec_type, fill, ts)

    def _aev(self, acct: SpotAccount | FuturesAccount, book: Book, reason: str,
             ts: int) -> AccountEvent:
        if isinstance(acct, SpotAccount):
            bal = {a: (acct.free.get(a, ZERO), acct.locked.get(a, ZERO))
                   for a in (book.f.base_asset, book.f.quote_asset)}
            return AccountEvent(acct.name, reason, bal, [], ts)
        return AccountEvent(acct.name, reason, {"USDT": (acct.wallet, acct.wallet)},
                            [self._position_view(acct, book.symbol)], ts)

    def _add_income(self, acct: FuturesAccount, symbol: str, itype: str, amount: Decimal,
                    ts: int, info: str = "", trade_id: str = "") -> None:
        self._income[acct.name].append(IncomeRecord(
            self._next_tran_id, symbol, itype, amount, "USDT", ts, info, trade_id))
        self._next_tran_id += 1

    # ------------------------------------------------------------------------------------------
    # execution
    # ------------------------------------------------------------------------------------------
    def _fill(self, acct: SpotAccount | FuturesAccount, book: Book, o: Order, qty: Decimal,
              px: Decimal, maker: bool, ts: int, events: list[Event],
              liquidation: bool = False) -> Fill:
        """Execute ``qty`` (≤ remaining, on the step grid) of ``o`` at ``px``."""
        trade_id = self._next_trade_id
        self._next_trade_id += 1
        if isinstance(acct, SpotAccount):
            commission, asset = self._settle_spot(acct, book, o, qty, px, maker)
            rpnl = ZERO
        else:
            rpnl, commission = self._settle_futures(acct, book, o.side, qty, px, maker, ts,
                                                    trade_id, liquidation)
            asset = "USDT"
        resting = o.order_id in book.orders
        if resting and self.futures and o.type is OrderType.LIMIT and not o.reduce_only:
            assert isinstance(acct, FuturesAccount)
            acct.agg(o.symbol).add(o.side.sign, -qty, o.price)
        o.executed_qty += qty
        o.cum_quote += qty * px
        o.update_ms = ts
        fill = Fill(trade_id, o.order_id, o.client_order_id, o.account, o.symbol, o.side, px, qty,
                    qty * px, commission, asset, maker, rpnl, ts)
        self._fills.setdefault((o.account, o.symbol), []).append(fill)
        if o.executed_qty == o.orig_qty:
            self._finish(book, o, "FILLED", ts)
        else:
            self._transition(o, "PARTIALLY_FILLED")
        events.append(self._oev(o, "TRADE", fill, ts))
        events.append(self._aev(acct, book, "ORDER", ts))
        if isinstance(acct, FuturesAccount) and book.n_reduce:
            self._adjust_reduce_only(acct, book, ts, events)
        return fill

    def _exec_taker(self, acct: SpotAccount | FuturesAccount, book: Book, o: Order,
                    px: Decimal, ts: int, events: list[Event], fok: bool = False,
                    check_margin: bool = False) -> Decimal:
        """Fill what is possible of ``o`` as a taker at ``px``, expire the rest; returns the
        filled quantity."""
        q = o.remaining
        if o.reduce_only:
            q = self._reducible(acct, o)
        elif check_margin and isinstance(acct, FuturesAccount):
            pos = acct.peek(o.symbol)
            need = self._increase_qty(pos.qty, o.side, q) * px / pos.leverage
            if need > 0 and need > self._available(acct):
                q = ZERO
        if fok and q < o.remaining:
            q = ZERO
        if q > 0:
            self._fill(acct, book, o, q, px, False, ts, events)
        if o.is_open:
            self._finish(book, o, "EXPIRED", ts)
            events.append(self._oev(o, "EXPIRED", None, ts))
        if isinstance(acct, FuturesAccount) and q > 0:
            self._liq_check(acct, book.symbol, ts, events)
        return q

    def _cancel(self, acct: SpotAccount | FuturesAccount, book: Book, o: Order, ts: int,
                events: list[Event]) -> None:
        had_lock = bool(o.locked)
        self._finish(book, o, "CANCELED", ts)
        events.append(self._oev(o, "CANCELED", None, ts))
        if had_lock:
            events.append(self._aev(acct, book, "ORDER", ts))
