"""Pure matching engine of the embedded Binance-compatible exchange.

No I/O and no clock reads: every call carries its timestamp (``ts_ms``), and the replayed market
arrives as klines through ``on_bar`` (or single prices through ``set_last_price``). The engine
keeps per-symbol books of *our* resting orders (of every account) and matches them against the
replayed market; our orders never match each other (no self-trade, no market impact).

Fill model
----------
* **Intrabar path.** A bar is walked as straight price segments from the previous last price to
  the open (a *gap*: no trades in between), then O→L→H→C when ``close >= open`` (a bullish
  candle dips first) else O→H→L→C. Events on a segment are handled in the order the path
  reaches their prices; fills are timestamped ``open_time + fraction of path length travelled ×
  (close_time - open_time)`` (gap fills at ``open_time``). The last price follows the path and is
  the close at the end of the bar.
* **Resting limits** are makers and fill at their own limit price when the path trades
  *through* it (strictly below a buy / above a sell); an equal touch fills only with
  ``FillConfig.fill_on_touch``. Within a bar the fills of one symbol (all accounts together) are
  capped at ``max_volume_share × bar volume`` (default 10 %; ``0``/``None`` = uncapped); a capped
  fill rounds down to the step size and is skipped for the bar if that gives 0, leaving the order
  PARTIALLY_FILLED / NEW for later bars.
* **Market orders** fill at once, in full, at the last price moved by ``market_slippage_bps``
  against the taker (buy higher, sell lower) and rounded to the tick in the adverse direction.
  They are not volume-capped (they count against the bar's cap when triggered inside a bar).
* **Limits that cross the last price at placement** (buy above / sell below it; equal counts only
  with ``fill_on_touch``) are takers and fill at once at the last price (their limit or better),
  uncapped. IOC: fill what is possible, expire the rest; FOK: all or nothing (EXPIRED); a
  non-crossing IOC/FOK expires. With uncapped taker fills, "what is possible" is only less than
  the quantity for reduce-only orders.
* **Post-only**: spot LIMIT_MAKER that would take → -2010 "Order would immediately match and
  take."; futures GTX that would take → -5022 (Binance accepts and expires it; rejecting is the
  simplest faithful equivalent).
* **STOP_MARKET / TAKE_PROFIT_MARKET** (futures only) trigger on the last-price path (buy stop /
  sell TP when the price rises to the stop price, sell stop / buy TP when it falls to it; touch
  triggers) and then fill as a market order at the stop price (at the open after a gap) plus
  slippage. A stop that would trigger at placement is rejected (-2021). A triggered non-reduce-only
  stop without enough margin expires.
* **Reduce-only** (futures): rejected with -2022 if the position is flat or on the order's side;
  fills are capped at the position size; a resting reduce-only order is shrunk (AMENDMENT event) when
  the position shrinks below its remaining quantity and expires when the position is flat or flips.
* With no last price known, limits rest and market orders are rejected (-2010 "No market price
  available."); the first price (bar or ``set_last_price``) fills whatever it crosses as a gap.

Fees
----
Maker/taker rates per market (defaults spot 0.1 %/0.1 %, futures 0.02 %/0.05 %). With
``bnb_discount`` spot rates are 25 % off and futures 10 % off, and the fee is still charged in
the quote asset (no BNB balance is needed or used): spot buys then reserve the fee at the taker
rate in the order's quote lock. Without the discount spot fees are charged in the asset received
(base for buys, quote for sells), as on Binance. Commissions and funding are rounded down / to
8 decimals; realized PnL is rounded half-even to 8 decimals. Amounts booked are exactly the
amounts recorded, so money is conserved exactly.

Spot accounts
-------------
Per-asset free/locked balances. A LIMIT/LIMIT_MAKER buy locks ``price × qty`` quote (+ fee reserve
with BNB discount), a sell locks ``qty`` base; fills consume the lock, cancel/expire releases the
rest. Insufficient free balance → -2010 "Account has insufficient balance for requested action.".

Futures accounts (USDT-M, one-way, USDT margin)
-----------------------------------------------
Per-symbol leverage (1..125, default 20) and margin type (CROSSED default; ISOLATED is stored and
reported but margined as cross). Positions carry a signed quantity and an average entry price
(weighted on increase; realized PnL on reduce; a flip re-opens at the fill price). Mark price is
set from outside (``set_mark_price``) or else is the last price (then it moves along the bar
path). Initial margin = |notional at mark| / leverage; open orders add the margin of the part of
their quantity that would increase the position (max of the buy and sell sides). A new order whose
margin exceeds the available balance (wallet + unrealized PnL − position IM − order IM) is
rejected with -2019. Funding ``apply_funding(symbol, rate, ts)`` books
``−qty × mark × rate`` (longs pay a positive rate) as FUNDING_FEE income. Income records:
TRANSFER (deposits), REALIZED_PNL, COMMISSION, FUNDING_FEE, INSURANCE_CLEAR.
Liquidation (cross): when margin balance ≤ maintenance margin (bracket tables in
``exchange_sim.specs``), the account's orders on the symbol are cancelled and the position is
closed by a MARKET order ``autoclose-<orderId>`` without commission at the mark price (when the
mark follows the path: at the path's liquidation price, or at the open after a gap; rounded to
the tick against the account); cross liquidation closes all positions of the account; then a
clearance fee of 1.25 % of the closed notional, capped at the remaining wallet, is booked as
INSURANCE_CLEAR, and a negative wallet without other positions is reset to 0 by the insurance fund
(positive INSURANCE_CLEAR). An ``AccountEvent`` with reason "LIQUIDATION" is emitted.

Not modelled: order-book depth and queue position, self-trade prevention, hedge mode,
isolated-margin accounting, closePosition / trailing / STOP / TAKE_PROFIT limit orders, bracket
limits on leverage vs position size, price bands (PERCENT_PRICE), rate limits (server side),
spot stop-loss orders, BNB balances.

Modules
-------
``Engine`` (here: accounts, order entry, cancels, queries) combines the engine's parts:
``engine_types`` (orders, fills, events, errors, fee/fill settings), ``engine_base`` (state,
books, execution steps shared by both markets), ``engine_spot`` (spot validation, settlement,
cancel-replace), ``engine_futures`` (futures validation, settlement, reduce-only, modify,
leverage/margin type, views), ``engine_margin`` (margin arithmetic, liquidation),
``engine_funding`` (mark price, funding), ``engine_matching`` (the bar path) and
``engine_state`` (``to_state`` / ``from_state``).
"""

from __future__ import annotations

from decimal import Decimal

from exchange_sim.accounts import (
    FuturesAccount,
    FuturesAccountView,
    IncomeRecord,
    PositionView,
    SpotAccount,
)
from exchange_sim.engine_base import Book
from exchange_sim.engine_funding import FundingRules
from exchange_sim.engine_futures import FuturesRules
from exchange_sim.engine_margin import MarginRules
from exchange_sim.engine_matching import Matching
from exchange_sim.engine_spot import SpotRules
from exchange_sim.engine_state import Persistence
from exchange_sim.engine_types import (
    LIMIT_TYPES,
    ZERO,
    AccountEvent,
    CancelReplaceError,
    Event,
    ExchangeError,
    FeeSchedule,
    Fill,
    FillConfig,
    IllegalTransition,
    Order,
    OrderEvent,
)
from models.enums import OrderType, Side, TimeInForce

__all__ = [
    "AccountEvent", "CancelReplaceError", "Engine", "ExchangeError", "FeeSchedule", "Fill",
    "FillConfig", "FuturesAccountView", "IllegalTransition", "IncomeRecord", "Order",
    "OrderEvent", "PositionView",
]


class Engine(SpotRules, FuturesRules, MarginRules, FundingRules, Matching, Persistence):
    """The matching engine of one market (spot or USDT-M futures); see the module docstring.

    ``Engine(market, specs=None, fees=None, fill=None)``: ``specs`` maps symbols to their
    filters (default: ``exchange_sim.specs.default_specs(market)``), ``fees`` the maker/taker
    rates (default Binance's VIP0), ``fill`` the fill-model knobs."""

    # ------------------------------------------------------------------------------------------
    # accounts
    # ------------------------------------------------------------------------------------------
    def create_account(self, account: str, balances: dict[str, Decimal]) -> None:
        """Open an account; futures: ``balances["USDT"]`` is the wallet balance."""
        if account in self._accounts:
            raise ValueError(f"account {account!r} exists")
        if self.futures:
            bad = set(balances) - {"USDT"}
            if bad:
                raise ValueError(f"futures accounts hold USDT only, got {sorted(bad)}")
            self._accounts[account] = FuturesAccount(account, Decimal(balances.get("USDT", 0)))
            self._pos_syms[account] = set()
            self._income[account] = []
        else:
            self._accounts[account] = SpotAccount(
                account, {a: Decimal(v) for a, v in balances.items()}, {a: ZERO for a in balances})

    def deposit(self, account: str, asset: str, amount: Decimal) -> None:
        """Credit ``amount`` of ``asset`` (futures: USDT into the wallet, a TRANSFER income)."""
        acct = self._acct(account)
        amount = Decimal(amount)
        if isinstance(acct, FuturesAccount):
            if asset != "USDT":
                raise ValueError("futures accounts hold USDT only")
            acct.wallet += amount
            self._add_income(acct, "", "TRANSFER", amount, 0, "deposit")
            self._epoch += 1
        else:
            acct.free[asset] = acct.free.get(asset, ZERO) + amount
            acct.locked.setdefault(asset, ZERO)

    # ------------------------------------------------------------------------------------------
    # prices
    # ------------------------------------------------------------------------------------------
    def last_price(self, symbol: str) -> Decimal | None:
        """Last traded price of the replayed market (None before the first price)."""
        return self._book(symbol).last()

    def mark_price(self, symbol: str) -> Decimal | None:
        """Mark price: the one set from outside, else the last price."""
        b = self._book(symbol)
        return b.mark_ext if b.mark_ext is not None else b.last()

    # ------------------------------------------------------------------------------------------
    # order entry
    # ------------------------------------------------------------------------------------------
    def _prepare(self, acct: SpotAccount | FuturesAccount, book: Book, side: Side,
                 otype: OrderType, qty: Decimal | None, quote_qty: Decimal | None,
                 price: Decimal | None, tif: TimeInForce | None, coid: str | None,
                 stop_price: Decimal | None, reduce_only: bool, ts: int
                 ) -> tuple[Order, Decimal | None, Decimal, bool]:
        """Check a new order without changing anything.

        Returns (order without id, market fill price, spot lock amount, crosses-at-placement)."""
        side = Side(side)
        otype = OrderType(otype)
        tif = TimeInForce(tif) if tif is not None else None
        qty = Decimal(qty) if qty is not None else None
        price = Decimal(price) if price is not None else None
        stop_price = Decimal(stop_price) if stop_price is not None else None
        if coid is not None and not (0 < len(coid) <= 36):
            raise ExchangeError(-1100 if not self.futures else -4015,
                                "Client order id is not valid.")
        if self.futures:
            assert isinstance(acct, FuturesAccount)
            px, crossing, qty = self._prepare_futures(acct, book, side, otype, qty, quote_qty,
                                                      price, tif, coid, stop_price, reduce_only)
            lock = ZERO
        else:
            assert isinstance(acct, SpotAccount)
            px, lock, crossing, qty = self._prepare_spot(acct, book, side, otype, qty, quote_qty,
                                                         price, tif, coid, stop_price, reduce_only)
        o = Order(
            order_id=0, client_order_id=coid or "", account=acct.name, symbol=book.symbol,
            side=side, type=otype, tif=tif, price=price if price is not None else ZERO,
            orig_qty=qty, executed_qty=ZERO, cum_quote=ZERO, status="NEW",
            stop_price=stop_price if stop_price is not None else ZERO, reduce_only=reduce_only,
            time_ms=ts, update_ms=ts,
            orig_quote_qty=Decimal(quote_qty) if quote_qty is not None else ZERO,
        )
        return o, px, lock, crossing

    def place_order(self, account: str, symbol: str, side: Side, type: OrderType, *,
                    qty: Decimal | None = None, quote_qty: Decimal | None = None,
                    price: Decimal | None = None, tif: TimeInForce | None = None,
                    client_order_id: str | None = None, stop_price: Decimal | None = None,
                    reduce_only: bool = False, ts_ms: int) -> tuple[Order, list[Event]]:
        """Place an order; raises ``ExchangeError`` on rejection (then nothing changed).

        Returns the order (live object; snapshot it if you keep it) and the events."""
        book = self._book(symbol)
        acct = self._acct(account)
        o, px, lock, crossing = self._prepare(acct, book, side, type, qty, quote_qty, price, tif,
                                              client_order_id, stop_price, reduce_only, ts_ms)
        return o, self._submit(acct, book, o, px, lock, crossing, ts_ms)

    def test_order(self, account: str, symbol: str, side: Side, type: OrderType, *,
                   qty: Decimal | None = None, quote_qty: Decimal | None = None,
                   price: Decimal | None = None, tif: TimeInForce | None = None,
                   client_order_id: str | None = None, stop_price: Decimal | None = None,
                   reduce_only: bool = False, ts_ms: int) -> None:
        """Validate an order like ``place_order`` without placing it."""
        self._prepare(self._acct(account), self._book(symbol), side, type, qty, quote_qty, price,
                      tif, client_order_id, stop_price, reduce_only, ts_ms)

    def _submit(self, acct: SpotAccount | FuturesAccount, book: Book, o: Order,
                px: Decimal | None, lock: Decimal, crossing: bool, ts: int) -> list[Event]:
        o.order_id = self._next_order_id
        self._next_order_id += 1
        if not o.client_order_id:
            o.client_order_id = f"sim-{o.order_id}"
        self._register(o)
        events: list[Event] = [self._oev(o, "NEW", None, ts)]
        if lock:
            assert isinstance(acct, SpotAccount)
            asset = book.f.quote_asset if o.side is Side.BUY else book.f.base_asset
            acct.free[asset] -= lock
            acct.locked[asset] = acct.locked.get(asset, ZERO) + lock
            o.locked = lock
            events.append(self._aev(acct, book, "ORDER", ts))
        if o.type is OrderType.MARKET:
            assert px is not None
            self._exec_taker(acct, book, o, px, ts, events)
        elif o.type in LIMIT_TYPES:
            if crossing:
                last = book.last()
                assert last is not None
                if o.reduce_only or o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                    self._exec_taker(acct, book, o, last, ts, events,
                                     fok=o.tif is TimeInForce.FOK)
                else:
                    self._fill(acct, book, o, o.remaining, last, False, ts, events)
                    if isinstance(acct, FuturesAccount):
                        self._liq_check(acct, book.symbol, ts, events)
            elif o.tif in (TimeInForce.IOC, TimeInForce.FOK):
                self._finish(book, o, "EXPIRED", ts)
                events.append(self._oev(o, "EXPIRED", None, ts))
            else:
                self._rest(book, o)
        else:
            self._rest(book, o)
        return events

    # ------------------------------------------------------------------------------------------
    # cancels
    # ------------------------------------------------------------------------------------------
    def _find(self, account: str, symbol: str, order_id: int | None,
              client_order_id: str | None) -> Order | None:
        if order_id is not None:
            o = self._orders.get(int(order_id))
        elif client_order_id is not None:
            oid = self._coid_any.get((account, client_order_id))
            o = self._orders.get(oid) if oid is not None else None
        else:
            raise ExchangeError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                                "both were empty/null!")
        if o is None or o.account != account or o.symbol != symbol:
            return None
        return o

    def cancel_order(self, account: str, symbol: str, *, order_id: int | None = None,
                     client_order_id: str | None = None, ts_ms: int
                     ) -> tuple[Order, list[Event]]:
        """Cancel an open order; -2011 if unknown or no longer open."""
        book = self._book(symbol)
        acct = self._acct(account)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None or not o.is_open:
            raise ExchangeError(-2011, "Unknown order sent.")
        events: list[Event] = []
        self._cancel(acct, book, o, ts_ms, events)
        return o, events

    def cancel_all(self, account: str, symbol: str, ts_ms: int
                   ) -> tuple[list[Order], list[Event]]:
        """Cancel every open order of ``account`` on ``symbol`` (none: empty lists)."""
        book = self._book(symbol)
        acct = self._acct(account)
        events: list[Event] = []
        done = [o for o in book.orders.values() if o.account == account]
        for o in sorted(done, key=lambda x: x.order_id):
            self._cancel(acct, book, o, ts_ms, events)
        return done, events

    # ------------------------------------------------------------------------------------------
    # queries
    # ------------------------------------------------------------------------------------------
    def get_order(self, account: str, symbol: str, *, order_id: int | None = None,
                  client_order_id: str | None = None) -> Order:
        """One order of the account (any status); -2013 if unknown."""
        self._book(symbol)
        self._acct(account)
        o = self._find(account, symbol, order_id, client_order_id)
        if o is None:
            raise ExchangeError(-2013, "Order does not exist.")
        return o

    def open_orders(self, account: str, symbol: str | None = None) -> list[Order]:
        """Open orders of the account, oldest first."""
        self._acct(account)
        books = [self._book(symbol)] if symbol is not None else list(self._books.values())
        out = [o for b in books for o in b.orders.values() if o.account == account]
        return sorted(out, key=lambda o: o.order_id)

    def all_orders(self, account: str, symbol: str, *, start_ms: int | None = None,
                   end_ms: int | None = None, limit: int = 500,
                   from_order_id: int | None = None) -> list[Order]:
        """Orders of the account on ``symbol`` (allOrders): from ``from_order_id`` on, else the
        most recent ``limit`` within the time range; oldest first."""
        self._book(symbol)
        self._acct(account)
        ids = self._acct_orders.get((account, symbol), [])
        out = [self._orders[i] for i in ids]
        if from_order_id is not None:
            return [o for o in out if o.order_id >= from_order_id][:limit]
        if start_ms is not None:
            out = [o for o in out if o.time_ms >= start_ms]
        if end_ms is not None:
            out = [o for o in out if o.time_ms <= end_ms]
        if start_ms is not None:
            return out[:limit]
        return out[-limit:] if limit else []

    def trades(self, account: str, symbol: str, *, start_ms: int | None = None,
               end_ms: int | None = None, from_id: int | None = None,
               limit: int = 500) -> list[Fill]:
        """Fills of the account on ``symbol`` (myTrades / userTrades), oldest first."""
        self._book(symbol)
        self._acct(account)
        out = self._fills.get((account, symbol), [])
        if from_id is not None:
            return [f for f in out if f.trade_id >= from_id][:limit]
        if start_ms is not None:
            out = [f for f in out if f.time_ms >= start_ms]
        if end_ms is not None:
            out = [f for f in out if f.time_ms <= end_ms]
        if start_ms is not None:
            return out[:limit]
        return out[-limit:] if limit else []

    def balances(self, account: str) -> dict[str, tuple[Decimal, Decimal]]:
        """Spot balances {asset: (free, locked)}."""
        acct = self._acct(account)
        if not isinstance(acct, SpotAccount):
            raise ExchangeError(-1000, "Balances by asset are only available on spot.")
        assets = sorted(set(acct.free) | set(acct.locked))
        return {a: (acct.free.get(a, ZERO), acct.locked.get(a, ZERO)) for a in assets}
