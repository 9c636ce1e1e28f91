"""The wire side of ``actors.streams.StreamManager``: opening, reading and watching its
WebSockets.

``Conn`` is one WebSocket of a session; ``StreamWire`` (a mixin of ``StreamManager``, whose
``__init__`` holds all state) opens a session's connections together (listen key or WS-API
subscription for the user stream), reads frames and hands their text to the delivery side
(``_on_text``), watches liveness (server frames; our own pings on the user stream) and keeps
the futures listen key alive. Any failure ends the whole session through ``_end_session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import msgspec

from models.enums import Market

_decoder = msgspec.json.Decoder()
_encoder = msgspec.json.Encoder()


class SessionEnded(Exception):
    """A session ended (drop, silence, user stream ended, forced, stop)."""

    def __init__(self, stream: str, detail: str) -> None:
        super().__init__(f"{stream}: {detail}")
        self.stream = stream
        self.detail = detail


class WsApiError(ConnectionError):
    """The WS-API answered a request with an error."""

    def __init__(self, code: Any, msg: str) -> None:
        super().__init__(msg)
        self.code = code


@dataclass(eq=False)
class Conn:
    """One WebSocket of a session."""

    name: str  # "market" | "book" | "user"
    url: str
    user: bool = False
    ws: aiohttp.ClientWebSocketResponse | None = None
    last_rx: float = field(default_factory=time.monotonic)  # any frame incl. our pongs
    last_alive: float = field(default_factory=time.monotonic)  # what counts for liveness
    ping_sent: float = 0.0


def slash(url: str) -> str:
    """``url`` with a trailing slash."""
    return url if url.endswith("/") else url + "/"


def failed_name(conns: list[Conn]) -> str:
    """The first connection of a session that never opened ("all" if every one did)."""
    for c in conns:
        if c.ws is None:
            return c.name
    return "all"


def err_text(e: BaseException) -> str:
    """An exception as one short line: ``Type: message``."""
    s = str(e)
    return f"{type(e).__name__}: {s}" if s else type(e).__name__


class StreamWire:
    """Connection handling of ``StreamManager`` (mixin: the attributes below are set by
    ``StreamManager.__init__``; ``_end_session`` and ``_on_text`` are its other halves)."""

    market: Market
    venue_client: Any
    heartbeat_timeout_s: float
    keepalive_s: float
    listen_key: str | None
    last_message_at: float
    _pool: ThreadPoolExecutor
    _ids: itertools.count[int]

    async def _open_all(self, http: aiohttp.ClientSession, conns: list[Conn]) -> None:
        """Open every connection concurrently; on the first failure cancel the others."""
        tasks = [asyncio.ensure_future(self._open(http, c)) for c in conns]
        try:
            for t in asyncio.as_completed(tasks):
                await t
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t

    async def _open(self, http: aiohttp.ClientSession, c: Conn) -> None:
        loop = asyncio.get_running_loop()
        timeout = max(self.heartbeat_timeout_s, 1.0)
        if c.user and self.market is Market.FUTURES:
            self.listen_key = await loop.run_in_executor(self._pool,
                                                         self.venue_client.new_listen_key)
            c.url = c.url + str(self.listen_key)
        c.ws = await asyncio.wait_for(
            http.ws_connect(c.url, autoping=False, autoclose=True, heartbeat=None,
                            max_msg_size=1 << 24), timeout)
        c.last_rx = c.last_alive = time.monotonic()
        if c.user and self.market is Market.SPOT:
            await asyncio.wait_for(self._ws_api_subscribe(c), timeout)

    async def _ws_api_subscribe(self, c: Conn) -> None:
        """Spot: ``userDataStream.subscribe.signature`` on the WS-API connection; a -1021
        (timestamp outside recvWindow) answer re-syncs the venue client's clock once."""
        try:
            await self._ws_api_subscribe_once(c)
        except WsApiError as e:
            sync = getattr(self.venue_client, "sync_time", None)
            if e.code != -1021 or sync is None:
                raise
            await asyncio.get_running_loop().run_in_executor(self._pool, sync)
            await self._ws_api_subscribe_once(c)

    async def _ws_api_subscribe_once(self, c: Conn) -> None:
        assert c.ws is not None
        loop = asyncio.get_running_loop()
        params = await loop.run_in_executor(self._pool, self.venue_client.signed_ws_params, {})
        rid = f"sub-{next(self._ids)}"
        await c.ws.send_str(_encoder.encode(
            {"id": rid, "method": "userDataStream.subscribe.signature",
             "params": params}).decode())
        while True:
            msg = await c.ws.receive()
            if msg.type == aiohttp.WSMsgType.PING:
                await c.ws.pong(msg.data)
                continue
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"WS-API closed during subscribe ({msg.type.name})")
            d = _decoder.decode(msg.data)
            if isinstance(d, dict) and d.get("id") == rid:
                if d.get("status") != 200:
                    err = d.get("error") or {}
                    raise WsApiError(err.get("code"), f"subscribe refused: {err.get('code')} "
                                                      f"{err.get('msg')}")
                return

    async def _close(self, c: Conn) -> None:
        if c.ws is not None and not c.ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(c.ws.close(), 1.0)

    # -- reading ----------------------------------------------------------------------------------
    async def _reader(self, c: Conn) -> None:
        ws = c.ws
        assert ws is not None
        try:
            while True:
                msg = await ws.receive()
                now = time.monotonic()
                c.last_rx = now
                t = msg.type
                if t == aiohttp.WSMsgType.TEXT:
                    c.last_alive = self.last_message_at = now
                    self._on_text(c, msg.data)
                elif t == aiohttp.WSMsgType.PING:
                    c.last_alive = self.last_message_at = now
                    await ws.pong(msg.data)
                elif t == aiohttp.WSMsgType.PONG:
                    c.ping_sent = 0.0
                    if c.user:
                        c.last_alive = now
                elif t == aiohttp.WSMsgType.BINARY:
                    c.last_alive = self.last_message_at = now
                    self._on_text(c, msg.data)
                else:  # CLOSE / CLOSING / CLOSED / ERROR
                    code = ws.close_code
                    why = msg.extra if t == aiohttp.WSMsgType.CLOSE and msg.extra else ""
                    detail = (f"closed ({t.name}{'' if code is None else f', code {code}'}"
                              f"{f': {why}' if why else ''})")
                    self._end_session(c.name, detail)
                    return
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - a broken socket ends the session
            self._end_session(c.name, f"read failed: {err_text(e)}")

    async def _watchdog(self, conns: list[Conn]) -> None:
        """Silence beyond the heartbeat timeout ends the session; user streams get pinged."""
        hb = self.heartbeat_timeout_s
        period = min(max(hb / 10, 0.02), 1.0)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for c in conns:
                silent = now - c.last_alive
                if silent > hb:
                    self._end_session(c.name, f"silent for {silent:.1f}s "
                                              f"(heartbeat timeout {hb:g}s)")
                    return
                if c.user and now - c.last_rx > hb / 3 and not c.ping_sent and c.ws:
                    c.ping_sent = now
                    with contextlib.suppress(Exception):
                        await c.ws.ping()

    async def _keepalive(self) -> None:
        """Futures: extend the listen key every ``keepalive_s``; a failure reopens the stream
        with a fresh key."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.keepalive_s)
            key = self.listen_key
            if key is None:
                continue
            try:
                await loop.run_in_executor(self._pool, self.venue_client.keepalive_listen_key,
                                           key)
            except Exception as e:  # noqa: BLE001 - any failure: get a new key
                self.listen_key = None
                self._end_session("user", f"listen key keepalive failed: {err_text(e)}")
                return
