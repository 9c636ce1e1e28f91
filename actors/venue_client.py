"""Blocking Binance REST access for one gateway (python-binance underneath).

``VenueClient`` wraps python-binance's sync ``Client`` and adds what it lacks:

* **time sync** — python-binance's sync client never syncs (``timestamp_offset`` stays 0):
  ``sync_time()`` measures the offset at start and again every ``time_sync_interval_s``; a
  -1021 answer resyncs once and retries the request (safe: the exchange rejected it, and the
  retry carries the same clientOrderId);
* **rate limits** — ``models.ratelimit.RateLimiter`` loaded from exchangeInfo, corrected by the
  ``X-MBX-USED-WEIGHT-*`` / ``X-MBX-ORDER-COUNT-*`` headers of every answer (read from
  ``client.response.headers``); a request that does not fit *waits* (pacing), it is not
  rejected; 429 pauses every request to the host until ``Retry-After``; 418 stops all REST
  until the ban ends and calls ``on_halt(VenueBanned)``;
* **error classes named by what the caller must do** (``models.orders.classify_error``):
  ``OrderRejectedError`` (definitive, never retried in a loop), ``OrderNotFoundError``
  (-2011/-2013), ``UnknownOutcomeError`` (timeouts, 5xx, -1006/-1007: query, never resend),
  ``NotSentError`` and its ``RateLimitedError`` / ``BannedError`` (raised *before* sending,
  or when no connection could be made: provably not sent).
  Idempotent reads are retried with ``models.backoff.Backoff``; writes never are, except
  after -1021 and 429 which prove the request was not executed.

The same code serves the embedded exchange, the testnet and live: only ``VenueEndpoints``
and keys differ (python-binance reads URLs from class attributes, so a subclass carries them).

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlparse

import requests
from binance import Client
from binance.exceptions import BinanceAPIException, BinanceRequestException
from urllib3.exceptions import MaxRetryError, NewConnectionError

from models import binance_parse as bp
from models import messages as m
from models.backoff import Backoff
from models.enums import Market, OrderType, Side, TimeInForce
from models.filters import SymbolFilters
from models.orders import ErrorClass, classify_error
from models.ratelimit import RateLimiter

T = TypeVar("T")

ALGO_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})
_KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


# --------------------------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------------------------
class VenueError(Exception):
    """Base class of every error ``VenueClient`` raises."""


class OrderRejectedError(VenueError):
    """Definitive refusal (4xx with a Binance code): the request had no effect."""

    def __init__(self, code: int, msg: str, http_status: int | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.data = data


class OrderNotFoundError(OrderRejectedError):
    """The exchange does not know the order (-2011 on cancel, -2013 on query)."""


class UnknownOutcomeError(VenueError):
    """Timeout / 5xx / -1006 / -1007: the request may or may not have been executed."""

    def __init__(self, detail: str, code: int | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.http_status = http_status


class NotSentError(VenueError):
    """The request was provably never sent (paused, banned, or no connection could be made):
    nothing happened on the exchange."""


class RateLimitedError(NotSentError):
    """Paused by a 429 (or the local limiter) for longer than the caller may wait; the
    request was NOT sent. ``until`` is in ``clock`` seconds."""

    def __init__(self, until: float, detail: str = "rate limited") -> None:
        super().__init__(f"{detail} until {until:.3f}")
        self.until = until


class BannedError(NotSentError):
    """418: all REST stopped until ``until`` (``clock`` seconds); the request was NOT sent."""

    def __init__(self, until: float) -> None:
        super().__init__(f"IP banned until {until:.3f}")
        self.until = until


class TimeSyncError(VenueError):
    """Server time could not be read (or the round trip was too long to trust)."""


# --------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class VenueEndpoints:
    """Base URLs in python-binance's conventions (``rest`` ends in ``/api``, ``fapi`` in
    ``/fapi``, ``ws``/``fws`` end in ``/``)."""

    rest: str
    fapi: str
    ws: str
    fws: str
    ws_api: str
    testnet: bool = False

    @classmethod
    def from_sim_urls(cls, urls: Mapping[str, Any] | Any) -> VenueEndpoints:
        """From the embedded exchange's ``SimUrls`` (or its JSON dict)."""
        def get(k: str) -> str:
            return str(urls[k] if isinstance(urls, Mapping) else getattr(urls, k))
        return cls(rest=get("rest"), fapi=get("fapi"), ws=get("ws"), fws=get("fws"),
                   ws_api=get("ws_api"))

    @classmethod
    def for_venue(cls, name: str, overrides: Mapping[str, str] | None = None
                  ) -> VenueEndpoints:
        """Binance's real URLs: ``"live"`` or ``"testnet"`` (``overrides`` replaces fields,
        e.g. the config's ``gateway.testnet_urls``)."""
        if name == "live":
            base = cls(rest="https://api.binance.com/api", fapi="https://fapi.binance.com/fapi",
                       ws="wss://stream.binance.com:9443/", fws="wss://fstream.binance.com/",
                       ws_api="wss://ws-api.binance.com:443/ws-api/v3")
        elif name == "testnet":
            base = cls(rest="https://testnet.binance.vision/api",
                       fapi="https://testnet.binancefuture.com/fapi",
                       ws="wss://stream.testnet.binance.vision/",
                       fws="wss://fstream.binancefuture.com/",
                       ws_api="wss://ws-api.testnet.binance.vision/ws-api/v3", testnet=True)
        else:
            raise ValueError(f"unknown venue {name!r}: 'live' or 'testnet'")
        if overrides:
            fields = {k: v for k, v in overrides.items() if k in ("rest", "fapi", "ws", "fws",
                                                                  "ws_api")}
            base = cls(**{**base.__dict__, **fields})
        return base


def client_class(endpoints: VenueEndpoints) -> type[Client]:
    """A python-binance ``Client`` subclass whose URL class attributes point at ``endpoints``
    (testnet and live alike: we never pass ``testnet=True``, the URLs say it all)."""
    attrs = {"API_URL": endpoints.rest, "API_TESTNET_URL": endpoints.rest,
             "FUTURES_URL": endpoints.fapi, "FUTURES_TESTNET_URL": endpoints.fapi,
             "WS_API_URL": endpoints.ws_api, "WS_API_TESTNET_URL": endpoints.ws_api}
    return type("VenueBinanceClient", (Client,), attrs)


def _never_connected(e: Exception | None) -> bool:
    """True when the request provably never reached the server (connect timeout/refused)."""
    if isinstance(e, requests.exceptions.ConnectTimeout):
        return True
    if isinstance(e, requests.exceptions.ConnectionError) and e.args:
        inner = e.args[0]
        reason = getattr(inner, "reason", None) if isinstance(inner, MaxRetryError) else inner
        return isinstance(reason, NewConnectionError)
    return False


def fmt_dec(d: Decimal) -> str:
    """A Decimal as Binance wants it: plain notation, never an exponent."""
    return format(d, "f")


# --------------------------------------------------------------------------------------------
# Client
# --------------------------------------------------------------------------------------------
class VenueClient:
    """Blocking REST access to one market (spot or USDT-M futures) of one venue.

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
        self.filters: dict[str, SymbolFilters] = {}
        self._algo_cids: set[str] = set()
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

    # -- reference data -----------------------------------------------------------------------
    def exchange_info(self, symbol: str) -> SymbolFilters:
        """The symbol's filters; also loads the venue's rate limits into the limiter."""
        if self.market is Market.SPOT:
            info = self._request(lambda c: c._get("exchangeInfo", data={"symbol": symbol}),
                                 weight=20, idempotent=True)
        else:
            info = self._request(lambda c: c.futures_exchange_info(), weight=1,
                                 idempotent=True)
        limits = info.get("rateLimits")
        if limits:
            with self._lock:
                self.limiter.adopt(RateLimiter.from_exchange_info(limits, self._safety))
        for s in info.get("symbols", []):
            if s.get("symbol") == symbol:
                f = SymbolFilters.from_exchange_info(s)
                self.filters[symbol] = f
                return f
        raise OrderRejectedError(-1121, f"Invalid symbol {symbol!r}")

    def assets(self, symbol: str) -> tuple[str, str]:
        """(base, quote) of the symbol (from exchange_info, else a known quote suffix)."""
        f = self.filters.get(symbol)
        if f is not None:
            return f.base_asset, f.quote_asset
        for q in _KNOWN_QUOTES:
            if symbol.endswith(q) and len(symbol) > len(q):
                return symbol[: -len(q)], q
        raise ValueError(f"cannot split {symbol!r} into base/quote: load exchange_info first")

    # -- orders -------------------------------------------------------------------------------
    def place_order(self, symbol: str, client_order_id: str, side: Side, order_type: OrderType,
                    qty: Decimal, price: Decimal | None, tif: TimeInForce | None,
                    reduce_only: bool = False, stop_price: Decimal | None = None) -> dict:
        """POST a new order (spot FULL response; futures RESULT; futures STOP/TP go to
        ``/fapi/v1/algoOrder`` with ``clientAlgoId`` = our id)."""
        p: dict[str, Any] = {"symbol": symbol, "side": side.value, "type": order_type.value,
                             "quantity": fmt_dec(qty)}
        if price is not None and order_type not in (OrderType.MARKET, *ALGO_TYPES):
            p["price"] = fmt_dec(price)
        if tif is not None and order_type in (OrderType.LIMIT,):
            p["timeInForce"] = tif.value
        if stop_price is not None:
            p["stopPrice"] = fmt_dec(stop_price)
        if self.market is Market.SPOT:
            # no reduceOnly on spot: a sell can never exceed the base balance anyway
            p.update(newClientOrderId=client_order_id, newOrderRespType="FULL")
            return self._request(lambda c: c.create_order(**p), is_order=True,
                                 idempotent=False)
        if reduce_only:
            p["reduceOnly"] = "true"
        if order_type in ALGO_TYPES:
            p["clientAlgoId"] = client_order_id
            with self._lock:
                self._algo_cids.add(client_order_id)
        else:
            p.update(newClientOrderId=client_order_id, newOrderRespType="RESULT")
        return self._request(lambda c: c.futures_create_order(**p), is_order=True,
                             idempotent=False)

    def _is_algo(self, client_order_id: str) -> bool:
        with self._lock:
            return client_order_id in self._algo_cids

    def cancel_order(self, symbol: str, client_order_id: str) -> dict:
        """DELETE one order by our client order id (``OrderNotFoundError`` on -2011)."""
        if self.market is Market.SPOT:
            return self._request(lambda c: c.cancel_order(symbol=symbol,
                                                          origClientOrderId=client_order_id),
                                 idempotent=False)
        def cancel_algo() -> dict:
            return self._request(lambda c: c.futures_cancel_algo_order(
                symbol=symbol, clientAlgoId=client_order_id), idempotent=False)
        if self._is_algo(client_order_id):
            return cancel_algo()
        try:
            return self._request(lambda c: c.futures_cancel_order(
                symbol=symbol, origClientOrderId=client_order_id), idempotent=False)
        except OrderNotFoundError as first:
            # after a restart we may not remember that it was a conditional (algo) order
            try:
                res = cancel_algo()
            except OrderRejectedError:
                raise first from None
            with self._lock:
                self._algo_cids.discard(client_order_id)
            return res

    def modify_order(self, symbol: str, client_order_id: str, side: Side, qty: Decimal,
                     price: Decimal, new_client_order_id: str | None = None, *,
                     order_type: OrderType = OrderType.LIMIT,
                     tif: TimeInForce | None = TimeInForce.GTC) -> dict:
        """Futures: PUT /fapi/v1/order (same id). Spot: POST /api/v3/order/cancelReplace with
        STOP_ON_FAILURE (``new_client_order_id`` required; the new order is ``order_type``).
        A failed cancel-replace raises ``OrderRejectedError`` with the exchange's ``data``."""
        if self.market is Market.FUTURES:
            return self._request(lambda c: c.futures_modify_order(
                symbol=symbol, origClientOrderId=client_order_id, side=side.value,
                quantity=fmt_dec(qty), price=fmt_dec(price)), is_order=True, idempotent=False)
        if not new_client_order_id:
            raise ValueError("spot cancel-replace needs new_client_order_id")
        p: dict[str, Any] = {
            "symbol": symbol, "side": side.value, "type": order_type.value,
            "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": client_order_id,
            "newClientOrderId": new_client_order_id, "quantity": fmt_dec(qty),
            "price": fmt_dec(price), "newOrderRespType": "FULL"}
        if order_type is OrderType.LIMIT and tif is not None:
            p["timeInForce"] = tif.value
        return self._request(lambda c: c.cancel_replace_order(**p), is_order=True,
                             idempotent=False)

    def query_order(self, symbol: str, client_order_id: str) -> dict | None:
        """GET the order by our client order id; ``None`` when the exchange does not know it
        (-2013). Futures: falls back to the algo endpoint, and a triggered algo order is
        answered by the regular order it became."""
        try:
            if self.market is Market.SPOT:
                return self._request(lambda c: c.get_order(
                    symbol=symbol, origClientOrderId=client_order_id), weight=4, idempotent=True)
            if not self._is_algo(client_order_id):
                return self._request(lambda c: c.futures_get_order(
                    symbol=symbol, origClientOrderId=client_order_id), idempotent=True)
        except OrderNotFoundError:
            if self.market is Market.SPOT:
                return None
        try:
            algo = self._request(lambda c: c.futures_get_algo_order(
                symbol=symbol, clientAlgoId=client_order_id), idempotent=True)
        except OrderNotFoundError:
            return None
        except OrderRejectedError:
            return None  # venues without the algo service answer 4xx: nothing to find there
        with self._lock:
            self._algo_cids.add(client_order_id)
        if str(algo.get("algoStatus")) in ("TRIGGERED", "FINISHED"):
            actual = algo.get("actualOrderId")
            try:
                if actual:
                    return self._request(lambda c: c.futures_get_order(
                        symbol=symbol, orderId=int(actual)), idempotent=True)
                return self._request(lambda c: c.futures_get_order(
                    symbol=symbol, origClientOrderId=client_order_id), idempotent=True)
            except OrderNotFoundError:
                pass
        return algo

    def order_by_id(self, symbol: str, order_id: int) -> dict | None:
        """GET an order by exchange order id (None when unknown)."""
        try:
            if self.market is Market.SPOT:
                return self._request(lambda c: c.get_order(symbol=symbol, orderId=order_id),
                                     weight=4, idempotent=True)
            return self._request(lambda c: c.futures_get_order(symbol=symbol, orderId=order_id),
                                 idempotent=True)
        except OrderNotFoundError:
            return None

    def open_orders(self, symbol: str) -> list[dict]:
        """Open orders of the symbol (futures: regular and conditional/algo)."""
        if self.market is Market.SPOT:
            return self._request(lambda c: c.get_open_orders(symbol=symbol), weight=6,
                                 idempotent=True)
        rows = self._request(lambda c: c.futures_get_open_orders(symbol=symbol),
                             idempotent=True)
        try:
            algos = self._request(lambda c: c.futures_get_open_orders(symbol=symbol,
                                                                      conditional=True),
                                  idempotent=True)
        except OrderRejectedError:
            algos = []
        with self._lock:
            self._algo_cids.update(bp._cid(a) for a in algos)
        return list(rows) + list(algos)

    def cancel_all(self, symbol: str) -> None:
        """Cancel every open order of the symbol (no error when there is none)."""
        if self.market is Market.SPOT:
            try:
                self._request(lambda c: c.cancel_all_open_orders(symbol=symbol),
                              idempotent=False)
            except OrderNotFoundError:
                pass  # spot answers -2011 when nothing is open
            return
        self._request(lambda c: c.futures_cancel_all_open_orders(symbol=symbol),
                      idempotent=False)
        with self._lock:
            algos = list(self._algo_cids)
        for cid in algos:
            try:
                self._request(lambda c, cid=cid: c.futures_cancel_algo_order(
                    symbol=symbol, clientAlgoId=cid), idempotent=False)
            except OrderRejectedError:
                pass  # already finished
            with self._lock:
                self._algo_cids.discard(cid)

    # -- account ------------------------------------------------------------------------------
    def trades_since(self, symbol: str, from_id: int, max_pages: int = 20) -> list[dict]:
        """Account trades with id >= ``from_id`` (paginated, oldest first); ``from_id <= 0``:
        the most recent page (1000 trades)."""
        def page(fid: int | None) -> list[dict]:
            kw: dict[str, Any] = {"symbol": symbol, "limit": 1000}
            if fid is not None:
                kw["fromId"] = fid
            if self.market is Market.SPOT:
                return self._request(lambda c: c.get_my_trades(**kw), weight=20,
                                     idempotent=True)
            return self._request(lambda c: c.futures_account_trades(**kw), weight=5,
                                 idempotent=True)
        if from_id <= 0:
            return sorted(page(None), key=lambda t: int(t["id"]))
        out: list[dict] = []
        fid = from_id
        for _ in range(max_pages):
            rows = page(fid)
            out += rows
            if len(rows) < 1000:
                break
            fid = max(int(t["id"]) for t in rows) + 1
        return sorted({int(t["id"]): t for t in out}.values(), key=lambda t: int(t["id"]))

    def klines(self, symbol: str, interval: str, start_ms: int | None,
               end_ms: int | None = None, limit: int = 1000) -> list[list]:
        """Raw REST klines (one request; ``start_ms`` None/0: the latest ``limit``)."""
        cap = 1000 if self.market is Market.SPOT else 1500
        kw: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": min(limit, cap)}
        if start_ms:
            kw["startTime"] = int(start_ms)
        if end_ms:
            kw["endTime"] = int(end_ms)
        if self.market is Market.SPOT:
            return self._request(lambda c: c.get_klines(**kw), weight=2, idempotent=True)
        n = kw["limit"]
        w = 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10
        return self._request(lambda c: c.futures_klines(**kw), weight=w, idempotent=True)

    def _spot_account(self) -> dict:
        return self._request(lambda c: c.get_account(omitZeroBalances="true"), weight=20,
                             idempotent=True)

    def _futures_account(self) -> dict:
        return self._request(lambda c: c.futures_account(), weight=5, idempotent=True)

    def position(self, symbol: str) -> dict:
        """{qty, entry_price, unrealized_pnl, mark_price} (spot: qty = base free + locked)."""
        if self.market is Market.FUTURES:
            rows = self._request(lambda c: c.futures_position_information(symbol=symbol),
                                 weight=5, idempotent=True)
            return bp.parse_futures_position(rows, symbol)
        base, _ = self.assets(symbol)
        free, locked = self.balances().get(base, (bp.ZERO, bp.ZERO))
        return {"qty": free + locked, "entry_price": bp.ZERO, "unrealized_pnl": bp.ZERO,
                "mark_price": bp.ZERO}

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """{asset: (free, locked)} (futures: (available, wallet - available))."""
        if self.market is Market.SPOT:
            return bp.parse_spot_balances(self._spot_account())
        return bp.parse_futures_balances(self._futures_account())

    def wallet_balance(self, asset: str = "USDT") -> Decimal:
        """Futures: ``totalWalletBalance`` (USDT); spot: ``asset`` free + locked only."""
        if self.market is Market.FUTURES:
            acct = self._futures_account()
            if asset == "USDT":
                return bp.dec(acct.get("totalWalletBalance"))
            free, locked = bp.parse_futures_balances(acct).get(asset, (bp.ZERO, bp.ZERO))
            return free + locked
        free, locked = self.balances().get(asset, (bp.ZERO, bp.ZERO))
        return free + locked

    def futures_account(self) -> dict:
        """Raw futures GET account (wallet, assets, positions) in one request."""
        return self._futures_account()

    def spot_account(self) -> dict:
        """Raw spot GET account."""
        return self._spot_account()

    def set_leverage(self, symbol: str, lev: int) -> None:
        """Futures initial leverage of the symbol (spot: nothing to do)."""
        if self.market is Market.FUTURES:
            self._request(lambda c: c.futures_change_leverage(symbol=symbol, leverage=int(lev)),
                          idempotent=True)

    # -- reconciliation -------------------------------------------------------------------------
    def snapshot_for_reconciliation(self, symbol: str, since_trade_id: int,
                                    max_order_lookups: int = 20) -> m.ExchangeSnapshotReceived:
        """Open orders, trades after ``since_trade_id``, position and balances, parsed.

        Trade rows carry no client order id on Binance: they get it from the open orders and,
        for other orders, from up to ``max_order_lookups`` GET-order-by-id lookups (so the OMS
        can match fills of orders whose acknowledgement it never saw)."""
        ts = self.server_time_ms() * bp.NS_PER_MS
        raw_open = self.open_orders(symbol)
        open_rows = [bp.parse_open_order(o, symbol) for o in raw_open]
        raw_trades = self.trades_since(symbol, since_trade_id + 1 if since_trade_id > 0 else 0)
        if since_trade_id > 0:
            raw_trades = [t for t in raw_trades if int(t["id"]) > since_trade_id]
        cids = {r.exchange_order_id: r.client_order_id for r in open_rows}
        trades = [bp.parse_rest_trade(t, self.market) for t in raw_trades]
        for oid in sorted({t.exchange_order_id for t in trades} - set(cids))[:max_order_lookups]:
            try:
                o = self.order_by_id(symbol, oid)
            except UnknownOutcomeError:
                o = None
            if o is not None:
                cids[oid] = bp._cid(o)
        trades = [bp.with_client_id(t, cids.get(t.exchange_order_id, "")) for t in trades]
        if self.market is Market.FUTURES:
            acct = self._futures_account()
            rows = self._request(lambda c: c.futures_position_information(symbol=symbol),
                                 weight=5, idempotent=True)
            pos = bp.parse_futures_position(rows, symbol)
            bals = {a: f + lk for a, (f, lk) in bp.parse_futures_balances(acct).items()}
        else:
            sb = bp.parse_spot_balances(self._spot_account())
            base, _ = self.assets(symbol)
            free, locked = sb.get(base, (bp.ZERO, bp.ZERO))
            pos = {"qty": free + locked, "entry_price": bp.ZERO}
            bals = {a: f + lk for a, (f, lk) in sb.items()}
        return m.ExchangeSnapshotReceived(
            symbol=symbol, ts_event_ns=ts, open_orders=open_rows, trades=trades,
            position_qty=pos["qty"], entry_price=pos["entry_price"], balances=bals)

    # -- user-stream auth (called from the stream thread) ----------------------------------------
    def new_listen_key(self) -> str:
        """A user-data listen key (futures POST /fapi/v1/listenKey; spot legacy
        POST /api/v3/userDataStream where the venue still has it)."""
        if self.market is Market.FUTURES:
            return self._request(lambda c: c.futures_stream_get_listen_key(), aux=True,
                                 idempotent=True, sync=False)
        return self._request(lambda c: c.stream_get_listen_key(), weight=2, aux=True,
                             idempotent=True, sync=False)

    def keepalive_listen_key(self, key: str) -> None:
        """Extend a listen key's validity (60 min on Binance)."""
        if self.market is Market.FUTURES:
            self._request(lambda c: c.futures_stream_keepalive(key), aux=True, idempotent=True,
                          sync=False)
        else:
            self._request(lambda c: c.stream_keepalive(key), weight=2, aux=True,
                          idempotent=True, sync=False)

    def close_listen_key(self, key: str) -> None:
        """Delete a listen key (its streams close)."""
        if self.market is Market.FUTURES:
            self._request(lambda c: c.futures_stream_close(key), aux=True, idempotent=True,
                          sync=False)
        else:
            self._request(lambda c: c.stream_close(key), weight=2, aux=True, idempotent=True,
                          sync=False)

    def signed_ws_params(self, params: dict) -> dict:
        """``params`` + apiKey, server-synced timestamp and HMAC signature, as python-binance
        signs WS-API requests (spot ``userDataStream.subscribe.signature``)."""
        c = self._aux
        with self._client_locks[id(c)]:
            c.timestamp_offset = self.offset_ms
            return c._sign_ws_params(dict(params), c._generate_ws_api_signature)
