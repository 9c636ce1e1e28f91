"""WebSocket side of the embedded exchange: market streams, user data streams, WS-API.

URL forms (P = port)::

    ws://127.0.0.1:P/ws/<stream>[/<stream>...]            spot raw streams
    ws://127.0.0.1:P/stream?streams=<s1>/<s2>              spot combined ({"stream","data"})
    ws://127.0.0.1:P/ws/<listenKey>                        spot legacy user stream
    ws://127.0.0.1:P/ws-api/v3                             spot WS-API (userDataStream.subscribe
                                                           .signature, ping, time)
    ws://127.0.0.1:P/f/[market/|public/]ws/<stream>        futures raw streams
    ws://127.0.0.1:P/f/[market/|public/]stream?streams=..  futures combined
    ws://127.0.0.1:P/f/[private/]ws?listenKey=<key>        futures user stream
    ws://127.0.0.1:P/f/ws/<listenKey>                      futures user stream (classic form)

Streams: ``<sym>@kline_<iv>``, ``<pair>_perpetual@continuousKline_<iv>`` (futures),
``<sym>@bookTicker``, ``<sym>@aggTrade``, ``<sym>@trade`` (spot), ``<sym>@depth[@100ms]``,
``<sym>@depth<5|10|20>[@100ms|@500ms]``, ``<sym>@markPrice[@1s]`` (futures). Market events are
emitted when a replayed bar closes; kline streams also carry the candle in progress (``"x":
false``) every ``KLINE_UPDATE_S`` (2) seconds of wall time while the clock runs, as far
as its intrabar path has gone (``Feed.progress``). Klines of every interval that is a whole
multiple of the replayed one are aggregated; a stream the replay cannot serve (a finer interval,
a symbol not replayed) is refused: the connection is closed with code 1008 and the reason, or a
SUBSCRIBE gets an error reply, and the sim logs a WARNING (SIM_STREAM_REFUSED). Clients may
SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS. This module holds the connections, the client
messages and the fan-out; the market events themselves are built by ``exchange_sim.ws_market``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import msgspec
from aiohttp import WSMsgType, web
from loguru import logger

from exchange_sim.auth import ApiError, check_api_key, check_timestamp, sign
from exchange_sim.replay import Feed
from exchange_sim.ws_market import MarketPayloads, parse_stream
from infra.logs import log_event

if TYPE_CHECKING:
    from exchange_sim.server import SimServer

_enc = msgspec.json.Encoder()
_dec = msgspec.json.Decoder()
MAX_QUEUE = 10000
#: Wall seconds between updates of the candle in progress on kline streams (Binance: 2 s).
KLINE_UPDATE_S = 2.0
#: A WebSocket close reason may hold at most 123 bytes.
MAX_CLOSE_REASON = 123


@dataclass(eq=False)
class Conn:
    """One WebSocket connection."""

    ws: web.WebSocketResponse
    request: web.Request
    market: str
    kind: str  # "market" | "user" | "ws_api"
    combined: bool = False
    streams: set[str] = field(default_factory=set)
    account: str | None = None
    listen_key: str | None = None
    subs: dict[int, str] = field(default_factory=dict)  # ws-api subscriptionId -> account
    opened: float = field(default_factory=time.monotonic)
    last_ping: float = field(default_factory=time.monotonic)
    queue: asyncio.Queue = field(default_factory=lambda: asyncio.Queue(MAX_QUEUE))
    closed: bool = False
    kline_sent: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    """Per kline stream: the in-progress candle last sent (unchanged candles are not resent)."""


class WsHub:
    """All WebSocket connections of one ``SimServer`` and the fan-out to them."""

    def __init__(self, srv: SimServer) -> None:
        self.srv = srv
        #: Wall seconds between in-progress kline updates (0: closes only).
        self.kline_update_s = KLINE_UPDATE_S
        self.conns: set[Conn] = set()
        self._sub_seq = 0
        self.payloads = MarketPayloads(srv)
        self.sent = 0

    # -- bookkeeping --------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        """Open connections by market/kind."""
        out: dict[str, int] = {}
        for c in self.conns:
            k = f"{c.market}:{c.kind}"
            out[k] = out.get(k, 0) + 1
        return out

    def _refuse(self, market: str, name: str, why: str, how: str) -> str:
        """Log a refused stream (WARNING) and return the reason for the client."""
        log_event("SIM_STREAM_REFUSED",
                  f"WebSocket stream {name} refused ({how}): {why} [{market} market]",
                  level="WARNING", stream=name, how=how, reason=why, market=market)
        return f"{name}: {why}"

    def _send(self, c: Conn, text: str, force: bool = False) -> None:
        """Queue ``text`` for ``c``; dropped while streams are stalled unless ``force`` (replies
        to client requests still go out during a stall)."""
        if c.closed or (self.srv.faults.stalled() and not force):
            return
        try:
            c.queue.put_nowait(text)
        except asyncio.QueueFull:
            log_event("SIM_SLOW_CONSUMER", f"closing slow WebSocket consumer ({MAX_QUEUE} "
                      "queued)", level="WARNING", market=c.market, kind=c.kind,
                      queued=MAX_QUEUE)
            c.closed = True
            asyncio.get_running_loop().create_task(self._close(c, 1008, "slow consumer"))

    async def _writer(self, c: Conn) -> None:
        try:
            while True:
                msg = await c.queue.get()
                if msg is None:
                    return
                await c.ws.send_str(msg)
                self.sent += 1
        except (ConnectionResetError, RuntimeError, asyncio.CancelledError):
            return
        except Exception:  # noqa: BLE001 - a broken socket ends the writer only
            return

    async def _close(self, c: Conn, code: int = 1000, reason: str = "") -> None:
        c.closed = True
        with contextlib.suppress(Exception):
            await c.ws.close(code=code, message=reason.encode())

    async def _serve(self, c: Conn) -> web.WebSocketResponse:
        self.conns.add(c)
        writer = asyncio.create_task(self._writer(c))
        try:
            async for msg in c.ws:
                if msg.type == WSMsgType.TEXT:
                    await self._on_text(c, msg.data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        except Exception:  # noqa: BLE001
            pass
        finally:
            c.closed = True
            self.conns.discard(c)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
        return c.ws

    async def _prepare(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None, max_msg_size=1 << 20)
        await ws.prepare(request)
        return ws

    # -- endpoints ----------------------------------------------------------------------------
    async def handle_spot(self, request: web.Request) -> web.StreamResponse:
        """/ws/<streams or listenKey> and /stream?streams=."""
        return await self._handle_streams(request, "spot", request.path)

    async def handle_futures(self, request: web.Request) -> web.StreamResponse:
        """/f/... (market/public/private categories accepted)."""
        tail = request.match_info["tail"]
        for cat in ("market/", "public/", "private/"):
            if tail.startswith(cat):
                tail = tail[len(cat):]
                break
        return await self._handle_streams(request, "futures", "/" + tail)

    async def _handle_streams(self, request: web.Request, market: str, path: str
                              ) -> web.StreamResponse:
        if market not in self.srv.markets:
            raise web.HTTPNotFound()
        lk = request.query.get("listenKey")
        combined = path.startswith("/stream")
        names: list[str] = []
        if combined:
            names = [s for s in request.query.get("streams", "").split("/") if s]
        elif path.startswith("/ws/"):
            names = [s for s in path[len("/ws/"):].split("/") if s]
        elif path.rstrip("/") != "/ws" and not lk:
            raise web.HTTPNotFound()
        if not lk and len(names) == 1 and names[0] in self.srv.listen_keys:
            lk = names[0]
            names = []
        if lk is not None:
            entry = self.srv.listen_keys.get(lk)
            if entry is None or entry[1] < time.monotonic():
                return web.json_response({"code": -1125,
                                          "msg": "This listenKey does not exist."}, status=400)
            ws = await self._prepare(request)
            c = Conn(ws, request, market, "user", account=entry[0], listen_key=lk)
            return await self._serve(c)
        bad = [n for n in names if parse_stream(n) is None]
        if bad:
            return web.json_response({"code": -1100, "msg": f"Invalid stream name {bad[0]}"},
                                     status=400)
        refused = [(n, p) for n in names if (p := self.payloads.stream_problem(market, n)) is not None]
        ws = await self._prepare(request)
        if refused:
            # A well-formed stream the replay cannot serve: say why instead of staying silent.
            reason = self._refuse(market, refused[0][0], refused[0][1], "connect")
            cut = reason.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")  # whole chars
            await ws.close(code=1008, message=cut.encode())
            return ws
        c = Conn(ws, request, market, "market", combined=combined, streams=set(names))
        return await self._serve(c)

    async def handle_ws_api(self, request: web.Request) -> web.StreamResponse:
        """/ws-api/v3: JSON requests; user-data subscription by signature."""
        if "spot" not in self.srv.markets:
            raise web.HTTPNotFound()
        ws = await self._prepare(request)
        c = Conn(ws, request, "spot", "ws_api")
        return await self._serve(c)

    # -- client messages ----------------------------------------------------------------------
    async def _on_text(self, c: Conn, text: str) -> None:
        try:
            msg = _dec.decode(text)
        except msgspec.DecodeError:
            self._send(c, _enc.encode({"error": {"code": 3, "msg": "Invalid JSON"}}).decode(),
                       force=True)
            return
        if c.kind == "ws_api":
            self._send(c, _enc.encode(self._ws_api(c, msg)).decode(), force=True)
            return
        mid = msg.get("id") if isinstance(msg, dict) else None
        method = msg.get("method") if isinstance(msg, dict) else None
        params = msg.get("params") or [] if isinstance(msg, dict) else []
        if method == "SUBSCRIBE":
            bad = [p for p in params if not isinstance(p, str) or parse_stream(p) is None]
            refused = [(p, why) for p in params if not bad
                       and (why := self.payloads.stream_problem(c.market, p)) is not None]
            if bad:
                out: dict[str, Any] = {"error": {"code": 2, "msg": f"Invalid request: {bad[0]}"},
                                       "id": mid}
            elif refused:
                why = self._refuse(c.market, refused[0][0], refused[0][1], "SUBSCRIBE")
                out = {"error": {"code": 2, "msg": f"Invalid request: {why}"}, "id": mid}
            else:
                c.streams.update(params)
                out = {"result": None, "id": mid}
        elif method == "UNSUBSCRIBE":
            for p in params:
                if isinstance(p, str):
                    c.streams.discard(p)
                    c.kline_sent.pop(p, None)
            out = {"result": None, "id": mid}
        elif method == "LIST_SUBSCRIPTIONS":
            out = {"result": sorted(c.streams), "id": mid}
        else:
            out = {"error": {"code": 2, "msg": "Invalid request: unknown method"}, "id": mid}
        self._send(c, _enc.encode(out).decode(), force=True)

    def _ws_api(self, c: Conn, msg: Any) -> dict[str, Any]:
        mid = msg.get("id") if isinstance(msg, dict) else None
        method = msg.get("method") if isinstance(msg, dict) else None
        params = dict(msg.get("params") or {}) if isinstance(msg, dict) else {}
        srv = self.srv
        try:
            if method == "ping":
                result: Any = {}
            elif method == "time":
                result = {"serverTime": srv.now_ms()}
            elif method == "userDataStream.subscribe.signature":
                api_key = params.get("apiKey")
                secret = check_api_key(srv.keys, api_key)
                sig = params.pop("signature", None)
                payload = urlencode(sorted((k, str(v)) for k, v in params.items()))
                if not sig or sign(secret, payload) != str(sig).lower():
                    raise ApiError(400, -1022, "Signature for this request is not valid.")
                check_timestamp({k: str(v) for k, v in params.items()}, srv.now_ms(),
                                srv.config.max_recv_window_ms)
                self._sub_seq += 1
                c.subs[self._sub_seq] = srv.account_of[api_key]  # type: ignore[index]
                result = {"subscriptionId": self._sub_seq}
            elif method == "userDataStream.unsubscribe":
                sid = params.get("subscriptionId")
                if sid is None:
                    c.subs.clear()
                else:
                    c.subs.pop(int(sid), None)
                result = {}
            elif method == "session.status":
                result = {"apiKey": None, "serverTime": srv.now_ms()}
            else:
                raise ApiError(400, -1020, f"Unsupported operation {method!r}.")
            return {"id": mid, "status": 200, "result": result, "rateLimits": []}
        except ApiError as e:
            return {"id": mid, "status": e.http_status, "error": {"code": e.code, "msg": e.msg}}

    # -- fan-out: user data -------------------------------------------------------------------
    def user_event(self, market: str, account: str, payload: dict[str, Any]) -> None:
        """Send one user-data event to every stream of ``account`` on ``market``."""
        raw: str | None = None
        for c in list(self.conns):
            if c.market != market or c.closed:
                continue
            if c.kind == "user" and c.account == account:
                raw = raw or _enc.encode(payload).decode()
                self._send(c, raw)
            elif c.kind == "ws_api":
                for sid, acct in c.subs.items():
                    if acct == account:
                        self._send(c, _enc.encode({"subscriptionId": sid,
                                                   "event": payload}).decode())

    # -- fan-out: market data -----------------------------------------------------------------
    def on_bar(self, f: Feed, i: int) -> None:
        """Emit market events for bar ``i`` of ``f`` that just closed."""
        subs = [c for c in self.conns if c.kind == "market" and c.market == f.market
                and not c.closed and c.streams]
        if not subs:
            return
        cache: dict[str, Any] = {}
        for c in subs:
            for name in c.streams:
                parsed = parse_stream(name)
                if parsed is None or parsed[0] != f.symbol:
                    continue
                if name not in cache:
                    cache[name] = self.payloads.on_bar(f, i, parsed)
                for p in cache[name]:
                    if c.combined:
                        self._send(c, _enc.encode({"stream": name, "data": p}).decode())
                    else:
                        self._send(c, _enc.encode(p).decode())

    # -- fan-out: the candle in progress -------------------------------------------------------
    async def kline_updates(self) -> None:
        """Every ``kline_update_s`` of wall time, while the sim clock runs: the in-progress
        candle of every subscribed kline stream (see ``push_kline_updates``)."""
        while self.kline_update_s > 0:
            await asyncio.sleep(self.kline_update_s)
            try:
                self.push_kline_updates()
            except Exception:  # noqa: BLE001 - market data must survive one bad update
                logger.bind(event="SIM_KLINE_UPDATE_FAILED").exception("kline update failed")

    def push_kline_updates(self) -> int:
        """Send each market connection the current candle of each kline stream it subscribes,
        when it changed since the last one sent to it (``"x": false``; at most one per stream
        per call). Only while the clock runs: paused, nothing trades; at speed "max", bars
        close faster than anyone could watch and only their closes are sent. Bars due by now
        are replayed first, so a candle never arrives before the close of the one before it.
        Returns the number of messages queued."""
        srv = self.srv
        if not srv.clock.running:
            return 0
        subs = [c for c in self.conns if c.kind == "market" and not c.closed and c.streams]
        if not subs:
            return 0
        srv.process_due()
        now = srv.now_ms()
        nxt = srv.replay.next_bar_time()
        if nxt is not None:  # the clock ran on since: stay before the next unreplayed close
            now = min(now, nxt - 1)
        cache: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, Any]] | None] = {}
        sent = 0
        for c in subs:
            for name in c.streams:
                key = (c.market, name)
                if key not in cache:
                    cache[key] = self.payloads.current_kline(c.market, name, now)
                cur = cache[key]
                if cur is None or c.kline_sent.get(name) == cur[0]:
                    continue
                c.kline_sent[name] = cur[0]
                p = cur[1]
                self._send(c, _enc.encode({"stream": name, "data": p} if c.combined else p
                                          ).decode())
                sent += 1
        return sent

    # -- control ------------------------------------------------------------------------------
    async def drop_all(self, code: int | None = None) -> int:
        """Close every connection: abruptly (no close frame) unless ``code`` is given."""
        conns = list(self.conns)
        for c in conns:
            c.closed = True
            if code is None:
                tr = c.request.transport
                if tr is not None:
                    tr.abort()
            else:
                await self._close(c, code, "server shutdown")
        return len(conns)

    def close_listen_key(self, key: str, expired: bool) -> None:
        """Close the streams of ``key`` (after a listenKeyExpired event when ``expired``)."""
        now = self.srv.now_ms()
        for c in list(self.conns):
            if c.kind == "user" and c.listen_key == key:
                if expired:
                    with contextlib.suppress(asyncio.QueueFull):
                        c.queue.put_nowait(_enc.encode({"e": "listenKeyExpired", "E": now,
                                                        "listenKey": key}).decode())
                c.closed = True
                asyncio.get_running_loop().create_task(self._close_after_flush(c))

    async def _close_after_flush(self, c: Conn) -> None:
        for _ in range(50):
            if c.queue.empty():
                break
            await asyncio.sleep(0.01)
        await self._close(c, 1000, "listenKey expired")

    async def expire_user_streams(self) -> int:
        """Fault: expire every listen key / WS-API subscription, notify, and close."""
        n = 0
        now = self.srv.now_ms()
        for key in list(self.srv.listen_keys):
            self.close_listen_key(key, expired=True)
            n += 1
        for c in list(self.conns):
            if c.kind == "ws_api" and c.subs:
                for sid in list(c.subs):
                    with contextlib.suppress(asyncio.QueueFull):
                        c.queue.put_nowait(_enc.encode({"subscriptionId": sid, "event": {
                            "e": "eventStreamTerminated", "E": now}}).decode())
                    n += 1
                c.subs.clear()
                c.closed = True
                asyncio.get_running_loop().create_task(self._close_after_flush(c))
        return n

    async def maintenance(self) -> None:
        """Server pings, 24 h (configurable) connection limit, listen-key expiry."""
        cfg = self.srv.config
        period = max(0.05, min(1.0, cfg.ws_ping_interval_s / 2, cfg.ws_max_age_s / 4))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for c in list(self.conns):
                if c.closed:
                    continue
                if now - c.opened >= cfg.ws_max_age_s:
                    c.closed = True
                    await self._close(c, 1000, "connection max age reached")
                    continue
                if now - c.last_ping >= cfg.ws_ping_interval_s and not self.srv.faults.stalled():
                    c.last_ping = now
                    with contextlib.suppress(Exception):
                        await c.ws.ping()
            for key, (_acct, exp) in list(self.srv.listen_keys.items()):
                if exp < now:
                    del self.srv.listen_keys[key]
                    self.close_listen_key(key, expired=True)
