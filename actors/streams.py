"""The gateway's WebSocket side: market and user-data streams with reconnection and gap repair.

``StreamManager`` owns one asyncio loop in one daemon thread and drives ``aiohttp`` WebSockets
directly (python-binance's sockets give up after 5 reconnects and stop when their queue
overflows). Every WS payload is parsed by ``models.stream_parse`` and handed to ``emit`` (the
gateway's thread-safe queue) from the loop thread.

Connections of one symbol (URLs as python-binance builds them; the embedded exchange serves the
same paths):

* spot: ``{ws}stream?streams=<s>@kline_<iv>/.../<s>@bookTicker`` and the user stream over the
  WS-API (``{ws_api}``, ``userDataStream.subscribe.signature``, events in
  ``{"subscriptionId", "event"}``);
* futures: ``{fws}market/stream?streams=<s>_perpetual@continuousKline_<iv>/.../<s>@markPrice@1s``,
  ``{fws}public/stream?streams=<s>@bookTicker`` and ``{fws}private/ws?listenKey=<key>``.

**Sessions.** All connections of the symbol form one session. When any of them drops, is
closed, goes silent beyond ``heartbeat_timeout_s``, or its user stream ends
(``listenKeyExpired`` / ``eventStreamTerminated`` / a failed keepalive), the whole session is
closed, ``StreamDisconnected`` is emitted and a new session is opened after a ``Backoff``
delay. On a new session live events are *held back* while ``repair(since_kline_open_ms, gap_ms,
since_trade_id)`` runs on an executor thread; its events are emitted first, then
``Reconnected``, then the held-back live events (closed klines already covered by the repair are
dropped). One repair covers every connection because they reconnect together. A failed
repair is retried in place a few times; then the streams go live anyway (a REST ban must not
keep the streams down) and ``Reconnected.detail`` says the repair failed.

**Kline gaps.** A closed kline of the repair interval that arrives more than one interval after
the last one (lost in a stall shorter than the heartbeat timeout, say) ends the session too, so
the repair fetches the missing bars and the strategy sees every bar once, in order.

**Liveness.** A market connection is alive while frames arrive from the server (data or the
server's pings: Binance pings every 20 s (spot) / 3 min (futures) and market streams push at
least every ~2 s). A user stream may be legitimately silent for hours, so it is also probed with
our own pings and any pong counts.

**Modules.** This one holds the manager's state, its public API and the session loop; the
connections (open, subscribe, read, liveness, listen-key keepalive) are ``actors.stream_wire``
and what happens to each parsed item (hold-back, dedup, gaps, book conflation, repair) is
``actors.stream_delivery``: both are mixins of ``StreamManager``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import aiohttp

from actors.stream_delivery import RepairFn, StreamDelivery
from actors.stream_wire import Conn, SessionEnded, StreamWire, err_text, failed_name, slash
from infra.clock import now_ms, now_ns
from models import messages as m
from models.backoff import Backoff
from models.enums import Market
from models.stream_parse import Parsed
from models.timeframes import INTERVAL_MS

#: A session up at least this long (or a heartbeat window, if shorter) resets the backoff.
STABLE_S = 10.0


class StreamManager(StreamWire, StreamDelivery):
    """Reconnecting market + user-data WebSockets of one symbol (see the module docstring).

    ``repair(since_kline_open_ms, gap_ms, since_trade_id) -> (events, {"klines": n,
    "trades": n})`` is called (on an executor thread) after every reconnect, before live events
    flow again. ``since_kline_open_ms`` is the open time of the last closed kline of
    ``kline_intervals[0]`` seen (0 if none yet); ``since_trade_id`` the last trade id seen on
    the user stream or in a repair's ``ExchangeSnapshotReceived``.
    """

    def __init__(self, market: Market, endpoints: Any, symbol: str, *,
                 kline_intervals: Sequence[str] = ("1m",), book: bool = True, mark: bool = True,
                 user_stream: bool = True, venue_client: Any = None,
                 emit: Callable[[m.Message], None], heartbeat_timeout_s: float = 30.0,
                 backoff: Backoff | None = None, conflate_book_ms: int = 250,
                 keepalive_s: float = 1800.0, repair: RepairFn | None = None,
                 repair_attempts: int = 3) -> None:
        if heartbeat_timeout_s <= 0:
            raise ValueError("heartbeat_timeout_s must be > 0")
        if user_stream and venue_client is None:
            raise ValueError("a user stream needs a venue_client (listen keys / signatures)")
        self.market = Market(market)
        self.endpoints = endpoints
        self.symbol = symbol.upper()
        base = tuple(kline_intervals) or ("1m",)
        for iv in base:
            if iv not in INTERVAL_MS:
                raise ValueError(f"unsupported kline interval {iv!r}")
        #: The repair's kline interval (the strategy's base bar).
        self.repair_interval = base[0]
        #: Exactly the configured intervals: a venue replaying 5m bars cannot serve 1m (the
        #: embedded exchange refuses such a stream rather than leave it silent).
        self.kline_intervals: tuple[str, ...] = tuple(dict.fromkeys(base))
        self.book = book
        self.mark = mark and self.market is Market.FUTURES
        self.user_stream = user_stream
        self.venue_client = venue_client
        self.emit = emit
        self.heartbeat_timeout_s = float(heartbeat_timeout_s)
        self.backoff = backoff or Backoff(0.2, 30.0)
        self.conflate_s = max(0, conflate_book_ms) / 1000.0
        self.keepalive_s = float(keepalive_s)
        self.repair = repair
        self.repair_attempts = max(1, int(repair_attempts))

        #: True while a session is up and repaired.
        self.connected = False
        #: ``time.monotonic()`` of the last frame received on any connection (0: never).
        self.last_message_at = 0.0
        #: Sessions opened after the first one.
        self.reconnects = 0
        #: Open time of the last closed kline per interval (what a repair starts from).
        self.last_kline_open_ms: dict[str, int] = {}
        #: Highest trade id seen (user stream or repair snapshot).
        self.last_trade_id = 0
        self.listen_key: str | None = None

        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._end: asyncio.Future[SessionEnded] | None = None
        self._connected_evt = threading.Event()
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(2, thread_name_prefix=f"streams-{self.symbol}-rest")
        self._ids = itertools.count(1)
        self._held: list[Parsed] | None = None  # live items held back during a repair
        self._book_latest: m.BookUpdated | None = None
        self._book_handle: asyncio.TimerHandle | None = None
        self._book_last = -1e18
        self._funding_last: tuple[Any, int] | None = None

    # -- public API (any thread) ----------------------------------------------------------------
    def start(self) -> None:
        """Start the stream thread (returns at once; connection happens in the background)."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(target=self._thread_main, daemon=True,
                                        name=f"streams-{self.symbol}")
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection and end the thread (waits up to ``timeout`` seconds)."""
        self._stopping.set()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def force_reconnect(self) -> None:
        """Drop the current session as if the network had (reconnect + repair follow)."""
        loop = self._loop
        if loop is not None:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._end_session, "all", "forced reconnect")

    def note_trade_id(self, trade_id: int) -> None:
        """Tell the manager a trade id known elsewhere (the OMS's last applied trade, a
        reconciliation snapshot) so the next repair does not start before it."""
        self._on_loop(self._note_trade, int(trade_id))

    def note_kline_closed(self, interval: str, open_time_ms: int) -> None:
        """Tell the manager a closed bar the strategy already has (e.g. the last bar of a
        ``HistoryLoaded``) so the next repair starts after it."""
        self._on_loop(self._note_kline, interval, int(open_time_ms))

    def _on_loop(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(fn, *args)
                return
        fn(*args)

    def _note_trade(self, trade_id: int) -> None:
        self.last_trade_id = max(self.last_trade_id, trade_id)

    def _note_kline(self, interval: str, open_time_ms: int) -> None:
        if open_time_ms > self.last_kline_open_ms.get(interval, -1):
            self.last_kline_open_ms[interval] = open_time_ms

    def wait_connected(self, timeout: float | None = None) -> bool:
        """Block until the first (or current) session is up; False on timeout."""
        return self._connected_evt.wait(timeout)

    # -- URLs -----------------------------------------------------------------------------------
    def _stream_names(self) -> tuple[list[str], list[str]]:
        """(market-category streams, book streams)."""
        s = self.symbol.lower()
        if self.market is Market.SPOT:
            market = [f"{s}@kline_{iv}" for iv in self.kline_intervals]
        else:
            market = [f"{s}_perpetual@continuousKline_{iv}" for iv in self.kline_intervals]
            if self.mark:
                market.append(f"{s}@markPrice@1s")
        return market, ([f"{s}@bookTicker"] if self.book else [])

    def urls(self) -> dict[str, str]:
        """Connection name -> URL (the user stream's listen key is filled in at connect)."""
        market, book = self._stream_names()
        out: dict[str, str] = {}
        if self.market is Market.SPOT:
            base = slash(self.endpoints.ws)
            out["market"] = f"{base}stream?streams={'/'.join(market + book)}"
            if self.user_stream:
                out["user"] = self.endpoints.ws_api
        else:
            base = slash(self.endpoints.fws)
            out["market"] = f"{base}market/stream?streams={'/'.join(market)}"
            if book:
                out["book"] = f"{base}public/stream?streams={'/'.join(book)}"
            if self.user_stream:
                out["user"] = f"{base}private/ws?listenKey="
        return out

    # -- thread / loop --------------------------------------------------------------------------
    def _thread_main(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        if self._stopping.is_set():
            return
        async with aiohttp.ClientSession() as http:
            dropped_at_ms = 0
            while not self._stop.is_set():
                started = time.monotonic()
                first = not self._was_up  # nothing to repair before the first session
                try:
                    await self._session(http, first, dropped_at_ms)
                except SessionEnded as e:
                    if self.connected:  # the gap starts at the last frame we received
                        quiet = time.monotonic() - (self.last_message_at or started)
                        dropped_at_ms = now_ms() - int(max(0.0, quiet) * 1000)
                    self._set_connected(False)
                    if self._stop.is_set():
                        break
                    self._safe_emit(m.StreamDisconnected(symbol=self.symbol,
                                                         ts_event_ns=now_ns(),
                                                         stream=e.stream, detail=e.detail))
                # A session that stayed up for a while was healthy: back off from scratch.
                if time.monotonic() - started >= min(self.heartbeat_timeout_s, STABLE_S):
                    self.backoff.reset()
                delay = self.backoff.next()
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        self._set_connected(False)

    _was_up = False

    def _set_connected(self, up: bool) -> None:
        self.connected = up
        if up:
            self._was_up = True
            self._connected_evt.set()
        else:
            self._connected_evt.clear()

    def _end_session(self, stream: str, detail: str) -> None:
        """End the current session (loop thread)."""
        if self._end is not None and not self._end.done():
            self._end.set_result(SessionEnded(stream, detail))

    def _safe_emit(self, msg: m.Message) -> None:
        try:
            self.emit(msg)
        except Exception:  # noqa: BLE001 - a broken sink must not kill the stream thread
            pass

    # -- one session ----------------------------------------------------------------------------
    async def _session(self, http: aiohttp.ClientSession, first: bool, dropped_at_ms: int
                       ) -> None:
        """Open every connection, repair if this is a reconnect, then serve until the session
        ends (always by raising ``SessionEnded``)."""
        assert self._stop is not None
        loop = asyncio.get_running_loop()
        self._end = loop.create_future()
        conns = [Conn(name, url, user=(name == "user")) for name, url in self.urls().items()]
        tasks: list[asyncio.Task[Any]] = []
        stop_task = loop.create_task(self._stop.wait())
        self._held = [] if not first else None
        try:
            try:
                await self._race(self._open_all(http, conns), stop_task)
            except SessionEnded:
                raise
            except Exception as e:  # noqa: BLE001 - any connect failure: back off and retry
                raise SessionEnded(failed_name(conns), f"connect failed: {err_text(e)}") from e
            for c in conns:
                tasks.append(loop.create_task(self._reader(c)))
            tasks.append(loop.create_task(self._watchdog(conns)))
            if self.market is Market.FUTURES and self.user_stream:
                tasks.append(loop.create_task(self._keepalive()))
            reconnected: list[m.Reconnected] = []
            if not first:
                self.reconnects += 1
                await self._race(self._repair(dropped_at_ms, reconnected), stop_task)
            held, self._held = self._held or [], None
            self._set_connected(True)
            for rc in reconnected:
                self._safe_emit(rc)
            for item in held:
                self._handle(item)
            done, _ = await asyncio.wait({self._end, stop_task},
                                         return_when=asyncio.FIRST_COMPLETED)
            if stop_task in done:
                raise SessionEnded("all", "stopped")
            raise self._end.result()
        finally:
            self._held = None
            stop_task.cancel()
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await asyncio.gather(*(self._close(c) for c in conns), return_exceptions=True)
            self._cancel_book_timer()

    async def _race(self, coro: Any, stop_task: asyncio.Task[Any]) -> None:
        """Run ``coro`` unless the session ends or the manager stops first."""
        assert self._end is not None
        work = asyncio.ensure_future(coro)
        done, _ = await asyncio.wait({work, self._end, stop_task},
                                     return_when=asyncio.FIRST_COMPLETED)
        if work not in done:
            work.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await work
            if stop_task in done:
                raise SessionEnded("all", "stopped")
            raise self._end.result()
        work.result()  # re-raise its error
