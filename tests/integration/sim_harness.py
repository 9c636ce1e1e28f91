"""Shared helpers for the sim integration tests: crafted bars, a paused sim, python-binance."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from decimal import Decimal
from typing import Any

from exchange_sim.client import client_classes
from exchange_sim.marketdata import Bars
from exchange_sim.server import SimServer, SimUrls
from models.simconfig import SimConfig

M = 60_000
T0 = 1_700_000_000_000 // M * M
SYM = "BTCUSDT"
Row = tuple[float, float, float, float, float]


def flat(n: int, price: float = 50_000.0, vol: float = 100.0) -> list[Row]:
    """``n`` quiet bars around ``price`` (range +-5)."""
    return [(price, price + 5, price - 5, price, vol)] * n


def bars(rows: list[Row], market: str, symbol: str = SYM) -> Bars:
    """Bars from (o, h, l, c, v) rows, one minute apart from ``T0``."""
    n = len(rows)
    cols = list(zip(*rows, strict=True)) if rows else [[]] * 5
    return Bars(symbol, market, "1m", [T0 + i * M for i in range(n)], *cols)


class Sim:
    """A paused sim on loopback with crafted bars; stop() when done (or use ``with``)."""

    def __init__(self, spot: list[Row] | None = None, futures: list[Row] | None = None,
                 *, warmup: int = 5, funding: list[tuple[int, Decimal]] | None = None,
                 **cfg: Any) -> None:
        data: dict[tuple[str, str], Bars] = {}
        if spot is not None:
            data[("spot", SYM)] = bars(spot, "spot")
        if futures is not None:
            data[("futures", SYM)] = bars(futures, "futures")
        market = "both" if spot is not None and futures is not None else (
            "spot" if spot is not None else "futures")
        conf = SimConfig(speed=0, symbols=(SYM,), interval="1m", warmup_bars=warmup,
                         market=market, **cfg)
        self.srv = SimServer(conf, bars=data,
                             funding={SYM: funding or []} if futures is not None else None)
        self.urls: SimUrls = self.srv.start_in_thread()
        self.Client, self.AsyncClient, self.BSM = client_classes(self.urls)

    def __enter__(self) -> Sim:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.srv.stop()

    # -- admin API over HTTP (as a test harness or an operator would use it) --------------------
    def admin(self, path: str, body: dict | None = None) -> dict:
        req = urllib.request.Request(
            f"{self.urls.admin}/{path}", method="POST" if body is not None else "GET",
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def advance(self, bars: int = 1) -> int:
        return self.admin("advance", {"bars": bars})["sim_time"]

    def fault(self, **spec: Any) -> dict:
        return self.admin("fault", spec)

    def sim_time(self) -> int:
        return self.admin("status")["sim_time"]

    # -- clients --------------------------------------------------------------------------------
    def client(self, key: str | None = None, secret: str | None = None) -> Any:
        """A synced sync ``Client`` (python-binance's sync client never syncs by itself)."""
        c = self.Client(key or self.urls.api_key, secret or self.urls.api_secret)
        c.timestamp_offset = c.get_server_time()["serverTime"] - int(time.time() * 1000)
        return c

    async def aclient(self) -> Any:
        c = await self.AsyncClient.create(self.urls.api_key, self.urls.api_secret)
        fast(c.ws_api)
        return c

    async def aadvance(self, c: Any, bars: int = 1) -> int:
        """Advance the paused clock and re-sync ``c`` (an AsyncClient) to the new sim time, as
        a client must after the exchange clock moved (else -1021)."""
        t = await asyncio.to_thread(self.advance, bars)
        c.timestamp_offset = t - int(time.time() * 1000)
        return t


def resync(c: Any) -> None:
    """Re-sync a sync ``Client`` to the sim clock."""
    c.timestamp_offset = c.get_server_time()["serverTime"] - int(time.time() * 1000)


def fast(sock: Any) -> Any:
    """python-binance's read loops notice a close only after their 10 s recv timeout: shorten
    it on this socket instance so tests do not idle."""
    sock.TIMEOUT = 0.5
    return sock


async def recv(sock: Any, timeout: float = 5.0) -> dict:
    """Next message of a python-binance socket (fails the test after ``timeout``)."""
    return await asyncio.wait_for(sock.recv(), timeout)


async def recv_until(sock: Any, pred: Any, timeout: float = 5.0, limit: int = 50) -> list[dict]:
    """Messages up to and including the first one matching ``pred``."""
    out = []
    for _ in range(limit):
        m = await recv(sock, timeout)
        out.append(m)
        if pred(m):
            return out
    raise AssertionError(f"no matching message in {out}")


def D(x: Any) -> Decimal:  # noqa: N802 - short for tests
    return Decimal(str(x))
