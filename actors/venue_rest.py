"""How one gateway's REST requests are sent: python-binance's sync ``Client`` plus what it lacks.

``VenueTransport`` is the sending half of ``actors.venue_client.VenueClient`` (which adds the
endpoints: orders, account, reconciliation, listen keys):

* **time sync** — python-binance's sync client never syncs (``timestamp_offset`` stays 0):
  ``sync_time()`` measures the offset at start and again every ``time_sync_interval_s``; a
  -1021 answer resyncs once and retries the request (safe: the exchange rejected it, and the
  retry carries the same clientOrderId);
* **rate limits** — ``models.ratelimit.RateLimiter`` loaded from exchangeInfo, corrected by the
  ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*`` headers of every answer (read from
  ``client.response.headers``); a request that does not fit *waits* (pacing), it is not
  rejected; 429 pauses every request to the host until ``Retry-After``; 418 stops all REST
  until the ban ends and calls ``on_halt(VenueBanned)``;
* **error classes** (``actors.venue_errors``, decided by ``models.orders.classify_error``).
  Idempotent reads are retried with ``models.backoff.Backoff``; writes never are, except
  after -1021 and 429 which prove the request was not executed.

Threads: the gateway calls everything from one worker thread; the stream thread may call the
listen-key methods and ``signed_ws_params`` concurrently. Each of the two uses its own
python-binance client (own HTTP session and ``response``), and the limiter, offset and pause
state are shared under a lock. Signing uses wall time (python-binance reads ``time.time()``);
``clock`` drives pacing, pauses and the periodic resync.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from binance import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from actors.venue_endpoints import VenueEndpoints, client_class
from actors.venue_errors import (
    BannedError,
    NotSentError,
    OrderNotFoundError,
    OrderRejectedError,
    RateLimitedError,
    TimeSyncError,
    UnknownOutcomeError,
    VenueError,
)
from models import binance_parse as bp
from models import messages as m
from models.backoff import Backoff
from models.enums import Market
from models.orders import ErrorClass, classify_error
from models.ratelimit import RateLimiter

T = TypeVar("T")


def _never_connected(e: Exception | None) -> bool:
    """True when the request provably never reached the server (connect timeout/refused)."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(e, requests.exceptions.ConnectionError) and e.args:
        inner = e.args[0]
        reason = getattr(inner, "reason", None) if isinstance(inner, MaxRetryError) else inner
        return isinstance(reason, NewConnectionError)
    return False


class VenueTransport:
    """Paced, time-synced, classified REST requests to one market (spot or USDT-M futures) of
    one venue (see the module docstring).

    ``on_halt`` receives ``VenueBanned`` on a 418 (the gateway forwards it to the portfolio,
    which halts) and ``RateLimited`` on a 429 (logged by the gateway). Waits: pacing up to
    ``max_pace_wait_s``, a 429 pause up to ``max_pause_wait_s`` (default ``timeout_s``);
    longer ones raise ``RateLimitedError`` without sending. Reads are retried
    ``read_retries`` times with jittered backoff (seeded ``rng``)."""

    def __init__(self, market: Market, endpoints: VenueEndpoints, api_key: str,
                 api_secret: str, *, recv_window_ms: int = 5000, timeout_s: float = 10.0,
                 rate_limit_safety: float = 0.8,
                 on_halt: Callable[[m.Message], None] | None = None,
                 clock: Callable[[], float] = time.time, time_sync_interval_s: float = 300.0,
                 read_retries: int = 3, max_pace_wait_s: float = 65.0,
                 max_pause_wait_s: float | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 rng: random.Random | None = None) -> None:
        self.market = market
        self.endpoints = endpoints
        self.recv_window_ms = recv_window_ms
        self.timeout_s = timeout_s
        self.time_sync_interval_s = time_sync_interval_s
        self.read_retries = read_retries
        self.max_pace_wait_s = max_pace_wait_s
        self.max_pause_wait_s = timeout_s if max_pause_wait_s is None else max_pause_wait_s
        self.on_halt = on_halt
        self.clock = clock
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random(0)
        cls = client_class(endpoints)
        # two python-binance clients: one for the worker thread, one for the stream thread
        self._main = cls(api_key, api_secret, ping=False)
        self._aux = cls(api_key, api_secret, ping=False)
        for c in (self._main, self._aux):
            c.REQUEST_RECVWINDOW = recv_window_ms
            c.REQUEST_TIMEOUT = timeout_s
        self._client_locks = {id(self._main): threading.Lock(), id(self._aux): threading.Lock()}
        self._lock = threading.RLock()
        self.limiter = RateLimiter.default(market.value, rate_limit_safety)
        self._safety = rate_limit_safety
        self.offset_ms = 0
        self.synced_at: float | None = None
        base = endpoints.rest if market is Market.SPOT else endpoints.fapi
        self.host = urlparse(base).netloc or base
        self.requests_sent = 0

    # -- public state -------------------------------------------------------------------------
    @property
    def used_weight(self) -> int:
        """Request weight the exchange reported for its current minute."""
        return self.limiter.used_weight

    @property
    def paused_until(self) -> float:
        """When REST may resume (``clock`` seconds; <= now: not paused)."""
        with self._lock:
            return self.limiter.paused_until(self._lnow()) - self.offset_ms / 1000.0

    def banned(self) -> bool:
        """True while a 418 ban is in force."""
        with self._lock:
            return self.limiter.banned(self._lnow())

    # -- time ---------------------------------------------------------------------------------
    def _lnow(self) -> float:
        # limiter time: local clock shifted onto the exchange's clock, so that our fixed
        # windows line up with the exchange's (its windows are aligned to its own time)
        return self.clock() + self.offset_ms / 1000.0

    def server_time_ms(self) -> int:
        """Our estimate of the exchange's current time."""
        return int(time.time() * 1000) + self.offset_ms

    def _get_time(self, c: Client) -> dict:
        return c.get_server_time() if self.market is Market.SPOT else c.futures_time()

    def server_time(self) -> int:
        """The exchange's current time in ms, fetched (one weight-1 request)."""
        return int(self._request(self._get_time, weight=1, idempotent=True)["serverTime"])

    def sync_time(self) -> int:
        """Measure the offset to the exchange's clock (midpoint of the round trip); returns it
        in ms. Raises ``TimeSyncError`` if the time cannot be read."""
        t0 = time.time()
        try:
            res = self._request(self._get_time, weight=1, idempotent=True, sync=False)
        except VenueError as e:
            raise TimeSyncError(f"server time unavailable: {e}") from e
        t1 = time.time()
        rtt_ms = (t1 - t0) * 1000
        if rtt_ms > self.recv_window_ms:
            raise TimeSyncError(f"time round trip {rtt_ms:.0f} ms exceeds recvWindow")
        offset = int(res["serverTime"]) - int(round((t0 + t1) / 2 * 1000))
        with self._lock:
            self.offset_ms = offset
            self.synced_at = self.clock()
        return offset

    def _maybe_resync(self) -> None:
        with self._lock:
            due = self.synced_at is None or (
                self.clock() - self.synced_at >= self.time_sync_interval_s)
        if due:
            try:
                self.sync_time()
            except TimeSyncError:
                # keep the old offset; a -1021 will force another attempt
                with self._lock:
                    self.synced_at = self.clock()

    # -- plumbing -----------------------------------------------------------------------------
    def _notify(self, msg: m.Message) -> None:
        if self.on_halt is not None:
            try:
                self.on_halt(msg)
            except Exception:  # noqa: BLE001 - a failing callback must not break REST
                pass

    def _admit(self, weight: int, is_order: bool) -> None:
        """Wait until the limiter admits the request, or raise (nothing sent)."""
        while True:
            with self._lock:
                now = self._lnow()
                wait = self.limiter.acquire(weight, is_order, now)
                if wait <= 0.0:
                    return
                paused = self.limiter.paused_until(now) > now
                banned = self.limiter.banned(now)
                local_until = self.clock() + wait
            if banned:
                raise BannedError(local_until)
            limit = self.max_pause_wait_s if paused else self.max_pace_wait_s
            if wait > limit:
                raise RateLimitedError(local_until, "paused by 429" if paused
                                       else "local rate limit")
            self._sleep(wait)

    def _observe(self, response: Any) -> None:
        headers = getattr(response, "headers", None)
        if headers:
            with self._lock:
                self.limiter.observe_headers(headers, self._lnow())

    @staticmethod
    def _retry_after(response: Any) -> float | None:
        headers = getattr(response, "headers", None) or {}
        v = headers.get("Retry-After")
        try:
            return float(v) if v is not None else None
        except ValueError:
            return None

    def _on_429(self, response: Any) -> float:
        with self._lock:
            until = self.limiter.on_429(self._retry_after(response), self._lnow())
            local_until = until - self.offset_ms / 1000.0
        self._notify(m.RateLimited(host=self.host, until_ms=int(local_until * 1000),
                                   used_weight=self.limiter.used_weight))
        return local_until

    def _on_418(self, response: Any) -> float:
        with self._lock:
            until = self.limiter.on_418(self._retry_after(response), self._lnow())
            local_until = until - self.offset_ms / 1000.0
        self._notify(m.VenueBanned(host=self.host, until_ms=int(local_until * 1000)))
        return local_until

    def _request(self, fn: Callable[[Client], T], *, weight: int = 1, is_order: bool = False,
                 idempotent: bool, aux: bool = False, sync: bool = True) -> T:
        """Run one python-binance call with pacing, header tracking and error classes."""
        resynced = False
        attempts = limited = 0
        backoff = Backoff(0.2, 2.0, rng=self._rng)
        client = self._aux if aux else self._main
        while True:
            if sync:
                self._maybe_resync()
            self._admit(weight, is_order)
            err: Exception | None = None
            with self._client_locks[id(client)]:
                client.timestamp_offset = self.offset_ms
                self.requests_sent += 1
                try:
                    result = fn(client)
                    self._observe(client.response)
                    return result
                except BinanceAPIException as e:
                    self._observe(e.response)
                    err = e
                except (requests.exceptions.Timeout, requests.exceptions.ConnectionError,
                        BinanceRequestException) as e:
                    err = e
            attempts += 1
            if _never_connected(err):
                if attempts <= self.read_retries:
                    self._sleep(backoff.next())
                    continue
                raise NotSentError(f"cannot connect to {self.host}: {err}") from err
            if not isinstance(err, BinanceAPIException):
                detail = f"{type(err).__name__}: {err}"
                if idempotent and attempts <= self.read_retries:
                    self._sleep(backoff.next())
                    continue
                raise UnknownOutcomeError(detail) from err
            status, code = err.status_code, err.code
            if status == 418:  # before classify_error: a 418 also carries -1003
                raise BannedError(self._on_418(err.response)) from err
            cls = classify_error(status, code, False)
            if cls is ErrorClass.RETRY_LATER:
                until = self._on_429(err.response)
                limited += 1
                if limited <= 3 and until - self.clock() <= self.max_pause_wait_s:
                    continue  # a 429 was not executed: retrying is safe; _admit waits
                raise RateLimitedError(until, f"429 {code}") from err
            if cls is ErrorClass.BANNED:
                raise BannedError(self._on_418(err.response)) from err
            if cls is ErrorClass.RESYNC_TIME and not resynced:
                resynced = True
                self.sync_time()
                continue
            if cls is ErrorClass.NOT_FOUND:
                raise OrderNotFoundError(code, err.message, status) from err
            if cls is ErrorClass.UNKNOWN_OUTCOME:
                if idempotent and attempts <= self.read_retries:
                    self._sleep(backoff.next())
                    continue
                raise UnknownOutcomeError(f"HTTP {status} {code}: {err.message}", code,
                                          status) from err
            data = bp.parse_error_data(getattr(err.response, "text", "") or "")
            raise OrderRejectedError(code, err.message, status, data) from err
