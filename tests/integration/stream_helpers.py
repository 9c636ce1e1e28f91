"""Helpers for the StreamManager integration tests: a venue-client double over python-binance
(listen keys, WS-API signatures), an event recorder and a REST gap-repair function."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode

from sim_harness import SYM, Sim, resync

from actors.streams import StreamManager
from models import messages as m
from models.backoff import Backoff
from models.enums import Market, Side


class Endpoints:
    """The URLs a StreamManager needs (VenueEndpoints' fields)."""

    def __init__(self, urls: Any) -> None:
        self.ws, self.fws, self.ws_api = urls.ws, urls.fws, urls.ws_api
        self.rest, self.fapi = urls.rest, urls.fapi


class FakeVenue:
    """``new_listen_key`` / ``keepalive_listen_key`` / ``signed_ws_params`` over python-binance
    (the real ``VenueClient`` offers the same three methods)."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.client = sim.client()
        self.keys: list[str] = []
        self.keepalives: list[str] = []
        self.signatures = 0
        self.fail_keepalive = False
        self.blocked = False  # while set, user-stream auth fails (reconnects back off)

    def offset(self) -> int:
        return self.client.get_server_time()["serverTime"] - int(time.time() * 1000)

    def _check(self) -> None:
        if self.blocked:
            raise ConnectionError("venue unreachable (test)")

    def new_listen_key(self) -> str:
        self._check()
        key = self.client.futures_stream_get_listen_key()
        self.keys.append(key)
        return key

    def keepalive_listen_key(self, key: str) -> None:
        self.keepalives.append(key)
        if self.fail_keepalive:
            raise RuntimeError("keepalive refused (-1125)")
        self.client.futures_stream_keepalive(listenKey=key)

    def signed_ws_params(self, params: dict) -> dict:
        self._check()
        self.signatures += 1
        p = dict(params, apiKey=self.sim.urls.api_key,
                 timestamp=int(time.time() * 1000) + self.offset())
        payload = urlencode(sorted((k, str(v)) for k, v in p.items()))
        p["signature"] = hmac.new(self.sim.urls.api_secret.encode(), payload.encode(),
                                  hashlib.sha256).hexdigest()
        return p


class Recorder:
    """Thread-safe list of emitted messages with waiting helpers."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.times: list[float] = []  # time.monotonic() of each emit
        self.cond = threading.Condition()

    def __call__(self, msg: Any) -> None:
        with self.cond:
            self.events.append(msg)
            self.times.append(time.monotonic())
            self.cond.notify_all()

    def wait_for(self, pred: Callable[[Any], bool], timeout: float = 5.0, start: int = 0) -> Any:
        """The first event (from index ``start``) matching ``pred``; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for ev in self.events[start:]:
                    if pred(ev):
                        return ev
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no matching event in {len(self.events)}: "
                                         f"{[type(e).__name__ for e in self.events[-20:]]}")
                self.cond.wait(left)

    def wait_count(self, cls: type, n: int, timeout: float = 5.0) -> list[Any]:
        """Wait until at least ``n`` events of type ``cls`` were emitted; return them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(got := [e for e in self.events if isinstance(e, cls)]) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(got)} {cls.__name__} events, wanted {n}")
                self.cond.wait(left)
            return got

    def of(self, cls: type) -> list[Any]:
        with self.cond:
            return [e for e in self.events if isinstance(e, cls)]

    def index(self, ev: Any) -> int:
        with self.cond:
            return next(i for i, e in enumerate(self.events) if e is ev)


def is_(cls: type, **fields: Any) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, cls) and all(getattr(e, k) == v for k, v in fields.items())


class RestRepair:
    """A gap repair over python-binance REST (what gateway_ops.repair does): closed klines after
    ``since`` and the trades after ``since_trade_id``; records every call."""

    def __init__(self, sim: Sim, market: Market, interval: str = "1m") -> None:
        self.client = sim.client()
        self.market = market
        self.interval = interval
        self.calls: list[tuple[int, int, int]] = []
        self.fail = 0

    def __call__(self, since_kline_open_ms: int, gap_ms: int, since_trade_id: int
                 ) -> tuple[list[m.Message], dict]:
        self.calls.append((since_kline_open_ms, gap_ms, since_trade_id))
        if self.fail:
            self.fail -= 1
            raise RuntimeError("REST down")
        c = self.client
        resync(c)  # the paused sim clock moved since the last call
        now = c.get_server_time()["serverTime"]
        fut = self.market is Market.FUTURES
        rows = (c.futures_klines if fut else c.get_klines)(
            symbol=SYM, interval=self.interval, startTime=since_kline_open_ms + 1, limit=1000)
        ks = [m.KlineClosed(symbol=SYM, interval=self.interval, open_time_ms=r[0],
                            close_time_ms=r[6], open=float(r[1]), high=float(r[2]),
                            low=float(r[3]), close=float(r[4]), volume=float(r[5]))
              for r in rows if r[6] < now and r[0] > since_kline_open_ms]
        trades = (c.futures_account_trades if fut else c.get_my_trades)(
            symbol=SYM, fromId=since_trade_id + 1)
        rows_t = [m.TradeRow(trade_id=t["id"], exchange_order_id=t["orderId"],
                             side=Side.BUY if (t.get("buyer") or t.get("isBuyer")) else Side.SELL,
                             price=Decimal(t["price"]), qty=Decimal(t["qty"]))
                  for t in trades if t["id"] > since_trade_id]
        snap = m.ExchangeSnapshotReceived(symbol=SYM, trades=rows_t)
        return [*ks, snap], {"klines": len(ks), "trades": len(rows_t)}


def manager(sim: Sim, market: Market, rec: Recorder, **kw: Any) -> StreamManager:
    """A StreamManager on the sim with test-friendly timings (overridable)."""
    opts: dict[str, Any] = dict(kline_intervals=("1m",), user_stream=True,
                                venue_client=FakeVenue(sim), emit=rec,
                                heartbeat_timeout_s=2.0,
                                backoff=Backoff(0.05, 0.5, rng=__import__("random").Random(1)),
                                conflate_book_ms=200)
    opts.update(kw)
    return StreamManager(market, Endpoints(sim.urls), SYM, **opts)
