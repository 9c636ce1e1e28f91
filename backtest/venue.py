"""Backtest venue and gateway: the embedded exchange's matching engine, in process, on sim time.

``BacktestVenue`` holds one ``exchange_sim.engine.Engine`` per market (one account, ``main``,
shared by every symbol, as on the embedded exchange) and the replayed data of every symbol:

* *fill bars* (the engine's bars; the base interval by default, or any finer interval that
  divides it) go through ``Engine.on_bar`` exactly as ``exchange_sim.server`` does — the same
  fee schedule, fill model (``FillConfig``), filters (``exchange_sim.specs``), funding
  (``apply_funding`` at the funding time, after the bars closing then) and mark rule (futures
  mark = the last fill bar's close on the tick grid);
* *base bars* (the strategy's interval) are emitted as ``KlineClosed`` once closed and answer
  ``RequestHistory``;
* no HTTP, sockets, threads, sleeping or randomness: the same inputs give the same events.

``backtest.gateway.BacktestGatewayActor`` is the gateway role for one symbol: it answers the OMS's
``SendOrder``/``SendCancel``/``SendModify``/``QueryOrder``/``RequestReconciliation`` and the
strategy's ``RequestHistory`` with the event types the live gateway emits (routed by
``actors.routes.ROUTES``), and on ``BacktestAdvance(until_ms)`` replays its symbol's bars that
close by then. The driver (``backtest/driver.py``) owns the venue and registers it under an
id (``register_venue``); the actor finds it from ``BacktestAttach``.

Event order per fill bar (as the embedded exchange emits them): order/account events of the
bar's fills, then ``MarkPriceUpdated`` + ``FundingRateUpdated`` (futures; the latter only when
the rate or the next funding time changed, as the live stream reader does), ``BookUpdated``,
funding settlements due, and the ``KlineClosed`` of a base bar that closed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np

from exchange_sim.engine import (
    AccountEvent,
    CancelReplaceError,
    Engine,
    ExchangeError,
    Order,
    OrderEvent,
)
from exchange_sim.marketdata import Bars
from infra.clock import now_ms
from models import messages as m
from models.enums import Market, OrderType
from models.filters import SymbolFilters

ACCOUNT = "main"
NS = 1_000_000
ZERO = Decimal(0)
_venues: dict[str, BacktestVenue] = {}
_venue_ids = itertools.count(1)


def register_venue(venue: BacktestVenue) -> str:
    """Make ``venue`` reachable by backtest gateways in this process; returns its id."""
    vid = f"venue-{next(_venue_ids)}"
    _venues[vid] = venue
    return vid


def unregister_venue(venue_id: str) -> None:
    """Forget a venue (end of a backtest run)."""
    _venues.pop(venue_id, None)


def get_venue(venue_id: str) -> BacktestVenue:
    """The venue registered under ``venue_id`` (KeyError if none)."""
    return _venues[venue_id]


def to_dec(x: float, quantum: Decimal | None = None) -> Decimal:
    """Exact decimal of a data float (shortest repr), optionally on ``quantum``'s grid (the
    embedded exchange's ``replay.to_dec``)."""
    d = Decimal(repr(float(x)))
    return d.quantize(quantum) if quantum is not None else d


def funding_id(symbol: str, ts_ms: int) -> str:
    """Deterministic id of a funding settlement (the live user-stream parser's format)."""
    return f"FUNDING-{symbol}-{ts_ms}"


@dataclass
class SymbolFeed:
    """One symbol's replay data and cursors."""

    symbol: str
    market: Market
    filters: SymbolFilters
    fill: Bars
    base: Bars
    funding: list[tuple[int, Decimal]] = field(default_factory=list)
    fill_i: int = 0
    base_i: int = 0
    fund_i: int = 0
    #: close time (ms, exclusive end) of every fill bar, ascending
    fill_close: list[int] = field(default_factory=list)
    pending: list[m.Message] = field(default_factory=list)
    last_volume: float = 0.0
    #: (rate, next funding time) last emitted: like the live stream reader, a
    #: FundingRateUpdated goes out only when one of them changes
    funding_last: tuple[Decimal, int] | None = None

    def __post_init__(self) -> None:
        # the replay reads one bar at a time: plain Python lists (the same ints and floats)
        # cost a fraction of numpy's per-element access
        self.fill_rows = _rows(self.fill)
        self.base_rows = _rows(self.base)
        iv = self.fill.interval_ms
        self.fill_close = [t + iv for t in self.fill_rows[0]]

    def next_close_ms(self) -> int | None:
        """Sim time at which the next unreplayed fill bar closes (None when done)."""
        i = self.fill_i
        c = self.fill_close
        return c[i] if i < len(c) else None


def _rows(b: Bars) -> tuple[list[int], list[float], list[float], list[float], list[float],
                            list[float]]:
    """open time, open, high, low, close, volume of ``b`` as Python lists."""
    return (np.asarray(b.open_time, dtype=np.int64).tolist(),
            np.asarray(b.open, dtype=np.float64).tolist(),
            np.asarray(b.high, dtype=np.float64).tolist(),
            np.asarray(b.low, dtype=np.float64).tolist(),
            np.asarray(b.close, dtype=np.float64).tolist(),
            np.asarray(b.volume, dtype=np.float64).tolist())


class BacktestVenue:
    """In-process exchange for a backtest (see module doc)."""

    def __init__(self, feeds: dict[str, SymbolFeed], engines: dict[Market, Engine],
                 start_ms: int) -> None:
        self.feeds = feeds
        self.engines = engines
        self.start_ms = start_ms
        self.fills = 0
        self.orders = 0
        for f in feeds.values():
            ot = f.fill.open_time
            f.fill_i = int(np.searchsorted(ot, start_ms, "left"))
            f.base_i = int(np.searchsorted(f.base.open_time, start_ms, "left"))
            f.fund_i = next((k for k, (t, _) in enumerate(f.funding) if t > start_ms),
                            len(f.funding))
            eng = engines[f.market]
            # like SimServer: the last close before the start is the last (and mark) price
            if f.fill_i > 0:
                last = to_dec(f.fill.close[f.fill_i - 1], f.filters.tick_size)
                f.last_volume = float(f.fill.volume[f.fill_i - 1])
            elif len(f.fill):
                last = to_dec(f.fill.open[0], f.filters.tick_size)
            else:
                continue
            eng.set_last_price(f.symbol, last, start_ms)
            if f.market is Market.FUTURES:
                eng.set_mark_price(f.symbol, last, start_ms)

    # -- time line ------------------------------------------------------------------------------
    def next_time(self) -> int | None:
        """Earliest close time of an unreplayed fill bar over all symbols."""
        times = [t for f in self.feeds.values() if (t := f.next_close_ms()) is not None]
        return min(times) if times else None

    def pending_symbols(self) -> list[str]:
        """Symbols with queued events (from another symbol's activity), sorted."""
        return sorted(s for s, f in self.feeds.items() if f.pending)

    def take(self, symbol: str) -> list[m.Message]:
        """Queued events of ``symbol`` (and clear them)."""
        f = self.feeds[symbol]
        out, f.pending = f.pending, []
        return out

    # -- engine events -> gateway messages ------------------------------------------------------
    def _dispatch(self, events: list[Any], own: str, out: list[m.Message]) -> None:
        """Translate engine events; ``own`` symbol's go to ``out``, others' to their queue."""
        for ev in events:
            if isinstance(ev, OrderEvent):
                msg = self._order_msg(ev)
                if msg is None:
                    continue
                sym = ev.order.symbol
                if sym == own:
                    out.append(msg)
                elif sym in self.feeds:
                    self.feeds[sym].pending.append(msg)
            elif isinstance(ev, AccountEvent):
                ts = ev.time_ms * NS
                for p in ev.positions:
                    if p.symbol not in self.feeds:
                        continue
                    msg = m.PositionUpdated(symbol=p.symbol, ts_event_ns=ts,
                                            market=Market.FUTURES, qty=p.qty,
                                            entry_price=p.entry_price,
                                            unrealized_pnl=p.unrealized_pnl)
                    (out if p.symbol == own else self.feeds[p.symbol].pending).append(msg)

    def _order_msg(self, ev: OrderEvent) -> m.Message | None:
        """One engine order event as the live user-stream parser turns it into a message."""
        o, x = ev.order, ev.exec_type
        ts = ev.time_ms * NS
        sym, cid = o.symbol, o.client_order_id
        if x == "NEW":
            return m.OrderAccepted(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                   exchange_order_id=o.order_id, side=o.side,
                                   price=o.price if o.type in (OrderType.LIMIT,
                                                               OrderType.LIMIT_MAKER) else None,
                                   qty=o.orig_qty)
        if x in ("TRADE", "CALCULATED"):
            f = ev.fill
            assert f is not None
            self.fills += 1
            futures = self.feeds[sym].market is Market.FUTURES if sym in self.feeds else True
            return m.OrderFilled(
                symbol=sym, ts_event_ns=ts, client_order_id=cid, exchange_order_id=o.order_id,
                trade_id=f.trade_id, side=o.side, price=f.price, qty=f.qty, fee=f.commission,
                fee_asset=f.commission_asset, maker=f.maker,
                realized_pnl=f.realized_pnl if futures else ZERO, cum_qty=o.executed_qty,
                order_status=o.status)
        if x == "CANCELED":
            return m.OrderCanceled(symbol=sym, ts_event_ns=ts, client_order_id=cid)
        if x == "EXPIRED":
            return m.OrderExpired(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                  reason=o.status)
        if x == "REJECTED":
            return m.OrderRejected(symbol=sym, ts_event_ns=ts, client_order_id=cid)
        if x in ("AMENDMENT", "REPLACED"):
            return m.OrderModified(symbol=sym, ts_event_ns=ts, client_order_id=cid,
                                   price=o.price, qty=o.orig_qty)
        return None

    # -- market data ----------------------------------------------------------------------------
    def advance(self, symbol: str, until_ms: int) -> list[m.Message]:
        """Replay ``symbol``'s fill bars closing by ``until_ms``, its funding due by then and
        emit its closed base bars; returns the symbol's events in order."""
        f = self.feeds[symbol]
        eng = self.engines[f.market]
        futures = f.market is Market.FUTURES
        out: list[m.Message] = []
        f_ot, f_open, f_high, f_low, f_close, f_vol = f.fill_rows
        closes = f.fill_close
        n = len(closes)
        iv = f.fill.interval_ms
        tick = f.filters.tick_size
        while f.fill_i < n and closes[f.fill_i] <= until_ms:
            i = f.fill_i
            f.fill_i += 1
            ot = f_ot[i]
            ct = ot + iv - 1
            c = f_close[i]
            events = eng.on_bar(symbol, ot, ct, f_open[i], f_high[i], f_low[i], c, f_vol[i])
            close_d = to_dec(c, tick)
            if futures:
                events = list(events) + list(eng.set_mark_price(symbol, close_d, ct))
            if events:
                self._dispatch(events, symbol, out)
            f.last_volume = f_vol[i]
            ts = ct * NS
            if futures:
                nxt = f.funding[f.fund_i] if f.fund_i < len(f.funding) else None
                out.append(m.MarkPriceUpdated(symbol=symbol, ts_event_ns=ts, mark_price=close_d,
                                              index_price=close_d))
                fkey = (nxt[1], nxt[0]) if nxt else (ZERO, 0)
                if fkey != f.funding_last:
                    f.funding_last = fkey
                    out.append(m.FundingRateUpdated(symbol=symbol, ts_event_ns=ts,
                                                    funding_rate=fkey[0],
                                                    next_funding_time_ms=fkey[1]))
            # the embedded exchange's book at the bar close: best bid = the last trade price
            # visible then (the open of the next bar when it starts now), ask one tick above,
            # quantity 1/40 of the bar's volume on the step grid, at least the minimum
            bid = to_dec(f_open[i + 1], tick) if i + 1 < n and f_ot[i + 1] == ot + iv \
                else close_d
            vol = f.filters.round_qty(to_dec(f.last_volume) / 40) if f.last_volume else ZERO
            q = float(max(vol, f.filters.min_qty))
            out.append(m.BookUpdated(symbol=symbol, ts_event_ns=ts, bid=float(bid), bid_qty=q,
                                     ask=float(bid + tick), ask_qty=q))
            self._funding(f, ot + iv, out)
            self._klines(f, ot + iv, out)
        self._funding(f, until_ms, out)
        self._klines(f, until_ms, out)
        return out

    def _funding(self, f: SymbolFeed, now: int, out: list[m.Message]) -> None:
        if f.market is not Market.FUTURES:
            return
        eng = self.engines[f.market]
        while f.fund_i < len(f.funding) and f.funding[f.fund_i][0] <= now:
            ts, rate = f.funding[f.fund_i]
            f.fund_i += 1
            events = eng.apply_funding(f.symbol, rate, ts)
            if not events:
                continue
            paid = sum((r.income for r in eng.income(ACCOUNT, symbol=f.symbol,
                                                     income_type="FUNDING_FEE", start_ms=ts,
                                                     end_ms=ts, limit=10)), ZERO)
            self._dispatch(events, f.symbol, out)
            if paid:
                out.append(m.FundingPaid(symbol=f.symbol, ts_event_ns=ts * NS,
                                         funding_id=funding_id(f.symbol, ts), amount=paid,
                                         asset="USDT"))

    def _klines(self, f: SymbolFeed, now: int, out: list[m.Message]) -> None:
        b = f.base
        iv = b.interval_ms
        b_ot, b_open, b_high, b_low, b_close, b_vol = f.base_rows
        n = len(b_ot)
        while f.base_i < n and b_ot[f.base_i] + iv <= now:
            j = f.base_i
            f.base_i += 1
            ot = b_ot[j]
            out.append(m.KlineClosed(
                symbol=f.symbol, ts_event_ns=(ot + iv - 1) * NS, interval=b.interval,
                open_time_ms=ot, close_time_ms=ot + iv - 1, open=b_open[j],
                high=b_high[j], low=b_low[j], close=b_close[j], volume=b_vol[j]))

    def history(self, symbol: str, msg: m.RequestHistory) -> m.HistoryLoaded:
        """Closed klines of ``msg.interval`` (close < now), from ``start_ms`` or the latest."""
        f = self.feeds[symbol]
        now = now_ms()
        if msg.interval == f.base.interval:
            bars = f.base
        elif msg.interval == f.fill.interval:
            bars = f.fill
        else:
            try:
                bars = f.fill.resample(msg.interval)
            except Exception:  # noqa: BLE001 - an interval we cannot build: answer empty
                return m.HistoryLoaded(symbol=symbol, interval=msg.interval, klines=[],
                                       complete=False)
        iv = bars.interval_ms
        hi = int(np.searchsorted(bars.open_time + iv, now, "right"))
        if msg.start_ms > 0:
            lo = int(np.searchsorted(bars.open_time, msg.start_ms, "left"))
            sel = range(lo, min(hi, lo + msg.limit))
        else:
            sel = range(max(0, hi - msg.limit), hi)
        rows = [m.KlineRow(int(bars.open_time[k]), int(bars.open_time[k]) + iv - 1,
                           float(bars.open[k]), float(bars.high[k]), float(bars.low[k]),
                           float(bars.close[k]), float(bars.volume[k])) for k in sel]
        ts = rows[-1].close_time_ms * NS if rows else 0
        return m.HistoryLoaded(symbol=symbol, ts_event_ns=ts, interval=msg.interval,
                               klines=rows, complete=True)

    # -- orders ---------------------------------------------------------------------------------
    def send_order(self, msg: m.SendOrder) -> list[m.Message]:
        """New order -> ``OrderAccepted`` (+ immediate fills, expiry) | ``OrderRejected``."""
        sym = msg.symbol
        eng = self.engines[self.feeds[sym].market]
        now = now_ms()
        out: list[m.Message] = []
        self.orders += 1
        try:
            _o, events = eng.place_order(
                ACCOUNT, sym, msg.side, msg.order_type, qty=msg.qty, price=msg.price,
                tif=msg.tif, client_order_id=msg.client_order_id, stop_price=msg.stop_price,
                reduce_only=msg.reduce_only, ts_ms=now)
        except ExchangeError as e:
            return [m.OrderRejected(symbol=sym, ts_event_ns=now * NS,
                                    client_order_id=msg.client_order_id, code=e.code,
                                    reason=e.msg)]
        self._dispatch(events, sym, out)
        return out

    def cancel_order(self, msg: m.SendCancel) -> list[m.Message]:
        """Cancel -> ``OrderCanceled`` | ``OrderCancelRejected``."""
        sym = msg.symbol
        eng = self.engines[self.feeds[sym].market]
        now = now_ms()
        out: list[m.Message] = []
        try:
            _o, events = eng.cancel_order(ACCOUNT, sym, client_order_id=msg.client_order_id,
                                          ts_ms=now)
        except ExchangeError as e:
            return [m.OrderCancelRejected(symbol=sym, ts_event_ns=now * NS,
                                          client_order_id=msg.client_order_id, code=e.code,
                                          reason=e.msg)]
        self._dispatch(events, sym, out)
        return out

    def modify_order(self, msg: m.SendModify) -> list[m.Message]:
        """Futures amend / spot cancel-replace -> the live gateway's event sequences."""
        sym = msg.symbol
        f = self.feeds[sym]
        eng = self.engines[f.market]
        now = now_ms()
        cid, new = msg.client_order_id, msg.new_client_order_id
        out: list[m.Message] = []

        def rejected(code: int, reason: str) -> list[m.Message]:
            return [m.OrderModifyRejected(symbol=sym, ts_event_ns=now * NS, client_order_id=cid,
                                          code=code, reason=reason)]

        if f.market is Market.FUTURES:
            try:
                _o, events = eng.modify_order(ACCOUNT, sym, client_order_id=cid, side=msg.side,
                                              qty=msg.qty, price=msg.price, ts_ms=now)
            except ExchangeError as e:
                return rejected(e.code, e.msg)
            self._dispatch(events, sym, out)
            return out
        if not new:
            return rejected(-1102, "spot cancel-replace needs new_client_order_id")
        try:
            old = eng.get_order(ACCOUNT, sym, client_order_id=cid)
            otype, tif = old.type, old.tif
        except ExchangeError:
            otype, tif = OrderType.LIMIT, None
        try:
            _c, neworder, events = eng.cancel_replace(
                ACCOUNT, sym, cancel_client_order_id=cid, ts_ms=now,
                new_order={"side": msg.side, "type": otype, "qty": msg.qty, "price": msg.price,
                           "tif": tif, "client_order_id": new})
        except CancelReplaceError as e:
            if e.cancel_result == "SUCCESS":
                ne = e.new_order_error
                return [m.OrderCanceled(symbol=sym, ts_event_ns=now * NS, client_order_id=cid),
                        m.OrderRejected(symbol=sym, ts_event_ns=now * NS, client_order_id=new,
                                        code=ne.code if ne else e.code,
                                        reason=ne.msg if ne else e.msg)]
            ce = e.cancel_error
            return rejected(ce.code if ce else e.code, ce.msg if ce else e.msg)
        except ExchangeError as e:
            return rejected(e.code, e.msg)
        # the REST answer's order: acceptance of the new order, the modify, then its fills
        tmp: list[m.Message] = []
        self._dispatch([ev for ev in events if not (isinstance(ev, OrderEvent)
                                                    and ev.order.client_order_id == cid)],
                       sym, tmp)
        accepted = [x for x in tmp if isinstance(x, m.OrderAccepted)]
        rest = [x for x in tmp if not isinstance(x, m.OrderAccepted)]
        assert neworder is not None
        modified = m.OrderModified(symbol=sym, ts_event_ns=now * NS, client_order_id=cid,
                                   new_client_order_id=neworder.client_order_id,
                                   price=neworder.price, qty=neworder.orig_qty)
        return [*accepted, modified, *rest]

    def query_order(self, msg: m.QueryOrder) -> list[m.Message]:
        """``OrderStatusReported`` (found=False when unknown)."""
        sym = msg.symbol
        eng = self.engines[self.feeds[sym].market]
        now = now_ms()
        try:
            o = eng.get_order(ACCOUNT, sym, client_order_id=msg.client_order_id)
        except ExchangeError:
            return [m.OrderStatusReported(symbol=sym, ts_event_ns=now * NS,
                                          client_order_id=msg.client_order_id,
                                          status="NOT_FOUND", found=False)]
        return [m.OrderStatusReported(
            symbol=sym, ts_event_ns=o.update_ms * NS, client_order_id=o.client_order_id,
            exchange_order_id=o.order_id, status=o.status, executed_qty=o.executed_qty,
            cum_quote=o.cum_quote, price=o.price, qty=o.orig_qty, found=True)]

    # -- account --------------------------------------------------------------------------------
    def _open_row(self, o: Order) -> m.OpenOrderRow:
        return m.OpenOrderRow(client_order_id=o.client_order_id, side=o.side,
                              price=o.price if o.price else None, qty=o.orig_qty,
                              filled_qty=o.executed_qty, reduce_only=o.reduce_only,
                              status=o.status, exchange_order_id=o.order_id)

    def _position(self, symbol: str) -> tuple[Decimal, Decimal, Decimal]:
        f = self.feeds[symbol]
        eng = self.engines[f.market]
        if f.market is Market.FUTURES:
            p = eng.positions(ACCOUNT, symbol)[0]
            return p.qty, p.entry_price, p.unrealized_pnl
        free, locked = eng.balances(ACCOUNT).get(f.filters.base_asset, (ZERO, ZERO))
        return free + locked, ZERO, ZERO

    def _balances(self, market: Market) -> dict[str, tuple[Decimal, Decimal]]:
        eng = self.engines[market]
        if market is Market.FUTURES:
            w = eng.futures_account(ACCOUNT).wallet_balance
            return {"USDT": (w, ZERO)}
        return eng.balances(ACCOUNT)

    def reconcile(self, msg: m.RequestReconciliation) -> list[m.Message]:
        """``ExchangeSnapshotReceived`` then the account events (as the live gateway)."""
        sym = msg.symbol
        f = self.feeds[sym]
        eng = self.engines[f.market]
        ts = now_ms() * NS
        opens = [self._open_row(o) for o in eng.open_orders(ACCOUNT, sym)]
        cids = {o.order_id: o.client_order_id for o in eng.all_orders(ACCOUNT, sym, limit=0)}
        frm = msg.since_trade_id + 1 if msg.since_trade_id > 0 else None
        fills = eng.trades(ACCOUNT, sym, from_id=frm, limit=10**9) if frm else \
            eng.trades(ACCOUNT, sym, limit=10**9)
        trades = [m.TradeRow(trade_id=t.trade_id, client_order_id=t.client_order_id or
                             cids.get(t.order_id, ""), exchange_order_id=t.order_id,
                             side=t.side, price=t.price, qty=t.qty, fee=t.commission,
                             fee_asset=t.commission_asset, maker=t.maker, time_ms=t.time_ms)
                  for t in fills]
        qty, entry, _upnl = self._position(sym)
        bals = {a: fr + lk for a, (fr, lk) in self._balances(f.market).items()}
        snap = m.ExchangeSnapshotReceived(symbol=sym, ts_event_ns=ts, open_orders=opens,
                                          trades=trades, position_qty=qty, entry_price=entry,
                                          balances=bals)
        return [snap, *self.account_events(sym)]

    def account_events(self, symbol: str) -> list[m.Message]:
        """``AccountReported`` + ``PositionUpdated`` + ``BalanceUpdated`` of one account read."""
        f = self.feeds[symbol]
        ts = now_ms() * NS
        bals = self._balances(f.market)
        if f.market is Market.FUTURES:
            wallet = bals["USDT"][0]
        else:
            fr, lk = bals.get(f.filters.quote_asset, (ZERO, ZERO))
            wallet = fr + lk
        qty, entry, upnl = self._position(symbol)
        return [
            m.AccountReported(symbol=symbol, ts_event_ns=ts, wallet_balance=wallet,
                              asset="USDT", market=f.market),
            m.PositionUpdated(symbol=symbol, ts_event_ns=ts, market=f.market, qty=qty,
                              entry_price=entry, unrealized_pnl=upnl),
            m.BalanceUpdated(symbol=symbol, ts_event_ns=ts,
                             balances={a: fr for a, (fr, _) in bals.items()},
                             locked={a: lk for a, (_, lk) in bals.items()}),
        ]

    def equity(self) -> Decimal:
        """Account equity over all markets in USDT (wallet + unrealized; spot at last prices)."""
        total = ZERO
        for mk, eng in self.engines.items():
            if mk is Market.FUTURES:
                v = eng.futures_account(ACCOUNT)
                total += v.wallet_balance + v.unrealized_pnl
            else:
                for asset, (fr, lk) in eng.balances(ACCOUNT).items():
                    amt = fr + lk
                    if asset == "USDT":
                        total += amt
                    elif amt:
                        sym = asset + "USDT"
                        px = eng.last_price(sym) if sym in eng.specs else None
                        total += amt * (px or ZERO)
        return total
