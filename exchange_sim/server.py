"""The embedded Binance-compatible exchange: REST + WebSocket on loopback (aiohttp).

One ``SimServer`` serves spot (``/api/v3/...``) and USDT-M futures (``/fapi/v1|v2|v3/...``)
from two matching engines (``exchange_sim.engine``), replays market data on a sim clock
(``exchange_sim.replay``), checks API keys / HMAC signatures / timestamps against sim time,
accounts request weight and order counts, streams market and user data over WebSocket
(``exchange_sim.ws``) and takes faults and clock control on ``/_sim/...`` (loopback only).

Use ``SimServer(config).start_in_thread()`` (tests, the bot) or ``await server.start()``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from loguru import logger

from exchange_sim import formats
from exchange_sim.auth import ApiError, check_api_key, check_timestamp, verify
from exchange_sim.faults import FaultState
from exchange_sim.ratelimit import RateLimiter
from exchange_sim.replay import INTERVALS_MS, Feed, FundingEvent, Replay, SimClock, iso
from models.enums import Market
from models.filters import FilterViolation, SymbolFilters
from models.simconfig import SimConfig
from models.timeframes import parse_time

NONE, USER_STREAM, SIGNED = 0, 1, 2


class SimUrls(msgspec.Struct, frozen=True, kw_only=True):
    """Where a running sim answers (the CLI prints this as one JSON line)."""

    rest: str
    fapi: str
    ws: str
    fws: str
    ws_api: str
    api_key: str
    api_secret: str
    admin: str
    port: int

    def to_json(self) -> str:
        """One-line JSON."""
        return msgspec.json.encode(self).decode()


@dataclass
class Req:
    """One parsed REST request."""

    method: str
    market: str
    path: str
    params: dict[str, str]
    ip: str
    now: int
    account: str | None = None
    api_key: str | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """Optional parameter."""
        v = self.params.get(name)
        return default if v is None or v == "" else v

    def req(self, name: str) -> str:
        """Mandatory parameter (-1102 when missing)."""
        v = self.params.get(name)
        if v is None or v == "":
            raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was "
                                       "empty/null, or malformed.")
        return v

    def dec(self, name: str, required: bool = False) -> Decimal | None:
        """Decimal parameter."""
        v = self.req(name) if required else self.get(name)
        if v is None:
            return None
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."
                           ) from None
        if not d.is_finite():
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
        return d

    def int_(self, name: str, default: int | None = None) -> int | None:
        """Integer parameter."""
        v = self.get(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^[0-9]{1,20}$'.") from None

    def bool_(self, name: str) -> bool:
        """'true'/'false' parameter."""
        return (self.get(name) or "false").lower() == "true"


Handler = Callable[["SimServer", Req], Any]


@dataclass
class Route:
    """A REST endpoint: handler, request weight, security, whether it counts as an order."""

    handler: Handler
    weight: int | Callable[[Req], int] = 1
    security: int = NONE
    is_order: bool = False
    order_request: bool = False
    """Subject to the order_5xx fault (new/cancel/modify/cancel-replace)."""


ROUTES: dict[tuple[str, str, str], Route] = {}


def route(method: str, market: str, path: str, weight: int | Callable[[Req], int] = 1,
          security: int = NONE, is_order: bool = False, order_request: bool = False
          ) -> Callable[[Handler], Handler]:
    """Register a REST handler for ``market`` ("spot"/"futures") and ``path`` (after the
    version segment, e.g. "order")."""
    def deco(fn: Handler) -> Handler:
        ROUTES[(method, market, path)] = Route(fn, weight, security, is_order,
                                               order_request or is_order)
        return fn
    return deco


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class SimServer:
    """The embedded exchange. Build with a ``SimConfig``; optionally inject bars/funding."""

    def __init__(self, config: SimConfig | None = None, *,
                 bars: dict[tuple[str, str], Any] | None = None,
                 funding: dict[str, list[tuple[int, Decimal]]] | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        self.markets = cfg.markets()
        self.notes: list[str] = []
        self._keys = cfg.accounts()
        self.account_of = {k: ("main" if k == cfg.api_key else f"acct{i}")
                           for i, k in enumerate(self._keys)}
        from exchange_sim.engine import Engine, FeeSchedule, FillConfig
        from exchange_sim.specs import default_specs
        self.specs: dict[str, dict[str, SymbolFilters]] = {}
        self.engines: dict[str, Any] = {}
        fill = FillConfig(fill_on_touch=cfg.fill_on_touch, max_volume_share=cfg.max_volume_share,
                          market_slippage_bps=cfg.market_slippage_bps)
        for m in self.markets:
            mk = Market(m)
            all_specs = default_specs(mk)
            missing = [s for s in cfg.symbols if s not in all_specs]
            if missing:
                raise ValueError(f"no {m} symbol filters for {missing}; known: {list(all_specs)}")
            self.specs[m] = {s: all_specs[s] for s in cfg.symbols}
            fees = (FeeSchedule(cfg.spot_maker_fee, cfg.spot_taker_fee, cfg.bnb_discount)
                    if m == "spot" else
                    FeeSchedule(cfg.futures_maker_fee, cfg.futures_taker_fee, cfg.bnb_discount))
            eng = Engine(mk, specs=self.specs[m], fees=fees, fill=fill)
            bal = cfg.spot_balances if m == "spot" else cfg.futures_balances
            for acct in self.account_of.values():
                eng.create_account(acct, dict(bal))
            self.engines[m] = eng
        self.feeds: dict[tuple[str, str], Feed] = {}
        start_ms = self._load_data(bars, funding)
        self.clock = SimClock(start_ms, 0.0)
        self.replay.seek(start_ms)
        for (m, sym), f in self.feeds.items():
            if f.last_close is not None:
                self.engines[m].set_last_price(sym, f.last_close, start_ms)
                if m == "futures":
                    self.engines[m].set_mark_price(sym, f.last_close, start_ms)
        self.faults = FaultState()
        self.limiters = {
            "spot": RateLimiter(
                market="spot", weight_per_min=cfg.spot_weight_per_min,
                order_windows=[(10, cfg.spot_orders_per_10s, "X-MBX-ORDER-COUNT-10S", "10 SECOND"),
                               (86400, cfg.spot_orders_per_day, "X-MBX-ORDER-COUNT-1D", "1 DAY")],
                ban_after_429=cfg.ban_after_429, ban_seconds=cfg.ban_seconds),
            "futures": RateLimiter(
                market="futures", weight_per_min=cfg.futures_weight_per_min,
                order_windows=[(10, cfg.futures_orders_per_10s, "X-MBX-ORDER-COUNT-10S",
                                "10 SECOND"),
                               (60, cfg.futures_orders_per_min, "X-MBX-ORDER-COUNT-1M",
                                "1 MINUTE")],
                ban_after_429=cfg.ban_after_429, ban_seconds=cfg.ban_seconds),
        }
        from exchange_sim.ws import WsHub
        self.hub = WsHub(self)
        self.update_id = 1
        self.listen_keys: dict[str, tuple[str, float]] = {}  # key -> (account, expires wall)
        self._lk_seq = 0
        self.leverage_max = 125
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.urls: SimUrls | None = None
        self.finished_logged = False
        self._pending_speed = cfg.speed
        if cfg.state_file and Path(cfg.state_file).exists():
            self.load_state(Path(cfg.state_file))

    # -- data ---------------------------------------------------------------------------------
    def _load_data(self, bars: dict[tuple[str, str], Any] | None,
                   funding: dict[str, list[tuple[int, Decimal]]] | None) -> int:
        """Build feeds and funding events; return the sim start time."""
        cfg = self.config
        iv_ms = INTERVALS_MS.get(cfg.interval)
        if iv_ms is None:
            raise ValueError(f"unknown interval {cfg.interval!r}")
        loaded: dict[tuple[str, str], Any] = dict(bars or {})
        if not bars:
            loaded = self._load_bars()
        for (m, sym), b in loaded.items():
            if m not in self.markets or sym not in cfg.symbols:
                continue
            self.feeds[(m, sym)] = Feed.from_bars(b, self.specs[m][sym], m)
        missing = [(m, s) for m in self.markets for s in cfg.symbols if (m, s) not in self.feeds]
        if missing:
            raise ValueError(f"no bars for {missing}")
        firsts = [int(f.open_time[0]) for f in self.feeds.values() if len(f)]
        ends = {f"{m} {s}": int(f.open_time[-1]) for (m, s), f in self.feeds.items() if len(f)}
        if len(set(ends.values())) > 1:
            self.notes.append("last bar by symbol: " + ", ".join(
                f"{k} {iso(t)}" for k, t in sorted(ends.items(), key=lambda kv: kv[1])))
        base_iv = max(f.interval_ms for f in self.feeds.values())
        if cfg.start is not None:
            start = int(cfg.start) if cfg.start.isdigit() else parse_time(cfg.start)
            end = max((int(f.open_time[-1]) + f.interval_ms for f in self.feeds.values()
                       if len(f)), default=None)
            if end is not None and start >= end:
                raise ValueError(f"start {iso(start)} is after the last bar (the data ends at "
                                 f"{iso(end)}): nothing would be replayed")
        else:
            start = max(firsts) + cfg.warmup_bars * base_iv
        fund: list[FundingEvent] = []
        if "futures" in self.markets:
            for sym in cfg.symbols:
                rows = (funding or {}).get(sym)
                if rows is None:
                    rows = self._load_funding(sym)
                fund += [FundingEvent(int(t), sym, Decimal(r)) for t, r in rows]
        self.replay = Replay(list(self.feeds.values()), fund)
        return start

    def _load_bars(self) -> dict[tuple[str, str], Any]:
        from exchange_sim import marketdata as md
        cfg = self.config
        out: dict[tuple[str, str], Any] = {}
        if cfg.data_file:
            for m in self.markets:
                for sym in cfg.symbols:
                    out[(m, sym)] = md.load_kline_csv(Path(cfg.data_file), sym, m, cfg.interval)
            self.notes.append(f"replaying {cfg.data_file}")
            return out
        data_dir = Path(cfg.data_dir) if cfg.data_dir else md.default_data_dir()
        if cfg.scenario or data_dir is None:
            from exchange_sim import synthetic
            scen = cfg.scenario or "gbm"
            if data_dir is None and not cfg.scenario:
                self.notes.append("no market data directory found: replaying synthetic "
                                  f"'{scen}' bars (seed {cfg.seed})")
            start = (parse_time(cfg.start) if cfg.start and not cfg.start.isdigit()
                     else int(cfg.start) if cfg.start else 1_704_067_200_000)
            iv = INTERVALS_MS[cfg.interval]
            first = start - cfg.warmup_bars * iv
            for m in self.markets:
                for k, sym in enumerate(cfg.symbols):
                    out[(m, sym)] = synthetic.generate(
                        sym, scen, start_ms=first, n_bars=cfg.synthetic_bars + cfg.warmup_bars,
                        interval=cfg.interval, seed=cfg.seed + k, market=Market(m))
            return out
        for m in self.markets:
            for sym in cfg.symbols:
                out[(m, sym)] = md.load_klines(sym, m, cfg.interval, data_dir=data_dir)
        self.notes.append(f"replaying {cfg.interval} klines from {data_dir}")
        return out

    def _load_funding(self, sym: str) -> list[tuple[int, Decimal]]:
        """Funding from the data directory, else the default rate every N hours."""
        cfg = self.config
        rows: list[tuple[int, Decimal]] = []
        if not cfg.scenario and not cfg.data_file:
            from exchange_sim import marketdata as md
            d = Path(cfg.data_dir) if cfg.data_dir else md.default_data_dir()
            if d is not None:
                try:
                    rows = md.load_funding(sym, data_dir=d)
                except Exception as e:  # noqa: BLE001 - funding is optional data
                    self.notes.append(f"no funding data for {sym}: {e}")
        f = self.feeds[("futures", sym)]
        if not len(f):
            return rows
        lo, hi = int(f.open_time[0]), int(f.open_time[-1]) + f.interval_ms
        rows = [(t, r) for t, r in rows if lo <= t <= hi]
        if rows:
            return rows
        every = cfg.funding_interval_h * 3_600_000
        first = (lo // every + 1) * every
        return [(t, cfg.funding_rate_default) for t in range(first, hi + 1, every)]

    # -- time and replay ----------------------------------------------------------------------
    def now_ms(self) -> int:
        """Current sim time (what /time reports)."""
        return self.clock.now_ms()

    def process_due(self) -> int:
        """Feed every bar / funding event due by now to the engines; return how many."""
        now = self.clock.now_ms()
        items = self.replay.due(now)
        for kind, a, i in items:
            if kind == "bar":
                self._on_bar(a, i)
            else:
                self._on_funding(a)
        if items and self.replay.finished() and not self.finished_logged:
            self.finished_logged = True
            logger.info("replay finished at sim time {} (last bar replayed)", iso(now))
        return len(items)

    def _on_bar(self, f: Feed, i: int) -> None:
        ot, ct, _, _, _, c, v = f.bar(i)
        eng = self.engines[f.market]
        events = list(eng.on_bar(f.symbol, ot, ct, float(f.open[i]), float(f.high[i]),
                                 float(f.low[i]), float(f.close[i]), float(f.volume[i])))
        if f.market == "futures":
            events += list(eng.set_mark_price(f.symbol, c, ct))
        f.last_close, f.last_volume = c, v
        self.update_id += 1
        self.emit_user(f.market, events)
        self.hub.on_bar(f, i)

    def _on_funding(self, ev: FundingEvent) -> None:
        eng = self.engines.get("futures")
        if eng is None:
            return
        events = eng.apply_funding(ev.symbol, ev.rate, ev.ts_ms)
        self.emit_user("futures", list(events))

    def set_speed(self, speed: float | str) -> None:
        """Change replay speed (0 = paused, "max")."""
        self.clock.set_speed(speed)
        if self._wake is not None:
            self._wake.set()

    def advance(self, *, bars: int = 0, ms: int = 0) -> int:
        """Paused-clock control: move sim time over the next ``bars`` bar closes and/or ``ms``
        milliseconds, processing what falls due. Returns the new sim time."""
        for _ in range(max(0, bars)):
            t = self.replay.next_bar_time()
            if t is None:
                break
            self.clock.set_base(t - self.clock.offset_ms)
            self.process_due()
        if ms > 0:
            self.clock.set_base(self.clock.now_ms() - self.clock.offset_ms + ms)
            self.process_due()
        return self.now_ms()

    async def _replay_loop(self) -> None:
        assert self._wake is not None
        n = 0
        while not self._stopping:
            try:
                if self.clock.speed == "max":
                    t = self.replay.next_time()
                    if t is None:
                        self._wake.clear()
                        await self._wake.wait()
                        continue
                    self.clock.set_base(t - self.clock.offset_ms)
                    self.process_due()
                    n += 1
                    if n % 32 == 0:
                        await asyncio.sleep(0)
                elif self.clock.running:
                    self.process_due()
                    nxt = self.replay.next_time()
                    if nxt is None:
                        delay = 0.5
                    else:
                        delay = (nxt - self.clock.now_ms()) / float(self.clock.speed) / 1000.0
                    self._wake.clear()
                    try:
                        await asyncio.wait_for(self._wake.wait(), max(0.0, min(delay, 0.5)))
                    except asyncio.TimeoutError:
                        pass
                else:
                    self._wake.clear()
                    await self._wake.wait()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the loop must survive one bad bar
                logger.exception("replay step failed")
                await asyncio.sleep(0.1)

    # -- user events --------------------------------------------------------------------------
    def emit_user(self, market: str, events: list[Any], cancel_cid: str | None = None) -> None:
        """Turn engine events into user-stream payloads for their accounts (``cancel_cid``: the
        client id of the cancel request that caused CANCELED events, spot)."""
        now = self.now_ms()
        for ev in events:
            if hasattr(ev, "exec_type"):
                acct = ev.order.account
                payload = (formats.execution_report(ev, now, cancel_cid) if market == "spot"
                           else formats.order_trade_update(ev, now))
            elif hasattr(ev, "reason"):
                acct = ev.account
                if market == "spot":
                    if not ev.balances:
                        continue
                    payload = formats.outbound_account_position(ev.balances, now, ev.time_ms)
                else:
                    payload = formats.account_update(ev, now)
            else:
                continue
            self.hub.user_event(market, acct, payload)

    # -- listen keys --------------------------------------------------------------------------
    def new_listen_key(self, account: str) -> str:
        """The account's live listen key (Binance returns the same one while valid)."""
        now = time.monotonic()
        for k, (a, exp) in self.listen_keys.items():
            if a == account and exp > now:
                self.listen_keys[k] = (a, now + self.config.listen_key_validity_s)
                return k
        self._lk_seq += 1
        import hashlib
        key = hashlib.sha256(f"{account}:{self._lk_seq}:{id(self)}".encode()).hexdigest()
        key = (key + key)[:64]
        self.listen_keys[key] = (account, now + self.config.listen_key_validity_s)
        return key

    def keepalive_listen_key(self, account: str, key: str | None) -> None:
        """Extend a listen key (-1125 when unknown)."""
        if key is None:
            key = next((k for k, (a, _) in self.listen_keys.items() if a == account), None)
        if key is None or key not in self.listen_keys or self.listen_keys[key][0] != account:
            raise ApiError(400, -1125, "This listenKey does not exist.")
        self.listen_keys[key] = (account, time.monotonic() + self.config.listen_key_validity_s)

    def close_listen_key(self, account: str, key: str | None) -> None:
        """Delete a listen key and close its streams."""
        if key is None:
            key = next((k for k, (a, _) in self.listen_keys.items() if a == account), None)
        if key is not None and key in self.listen_keys:
            del self.listen_keys[key]
            self.hub.close_listen_key(key, expired=False)

    # -- HTTP ---------------------------------------------------------------------------------
    def make_app(self) -> web.Application:
        """The aiohttp application (REST, WebSocket, admin)."""
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/_sim/{tail:.*}", self._admin)
        app.router.add_get("/ws-api/v3", self.hub.handle_ws_api)
        app.router.add_get("/ws", self.hub.handle_spot)
        app.router.add_get("/ws/{tail:.*}", self.hub.handle_spot)
        app.router.add_get("/stream", self.hub.handle_spot)
        app.router.add_get("/f/{tail:.*}", self.hub.handle_futures)
        app.router.add_route("*", "/api/v3/{tail:.*}", self._rest)
        app.router.add_route("*", "/fapi/{ver:v[123]}/{tail:.*}", self._rest)
        return app

    def _market_of(self, request: web.Request) -> tuple[str, str]:
        p = request.path
        if p.startswith("/api/v3/"):
            return "spot", p[len("/api/v3/"):]
        return "futures", request.match_info["tail"]

    async def _rest(self, request: web.Request) -> web.Response:
        market, path = self._market_of(request)
        method = request.method
        headers: dict[str, str] = {}
        try:
            if market not in self.markets and path not in ("ping", "time"):
                raise ApiError(404, -1, f"{market} is not served by this sim")
            forced = self.faults.take_forced()
            if forced == 429:
                raise ApiError(429, -1003, "Too many requests; current limit is exceeded "
                               "(injected fault).", {"Retry-After": "1"})
            if forced == 418:
                raise ApiError(418, -1003, "Way too much request weight used; IP banned "
                               "(injected fault).", {"Retry-After": "1"})
            delay = self.faults.take_latency()
            if delay > 0:
                await asyncio.sleep(delay)
            rt = ROUTES.get((method, market, path))
            if rt is None:
                raise ApiError(404, -1, f"Unknown endpoint {method} {request.path}")
            raw_query = request.query_string
            raw_body = (await request.text()) if request.can_read_body else ""
            params: dict[str, str] = dict(request.query)
            if raw_body:
                form = await request.post()
                for k, v in form.items():
                    params.setdefault(k, str(v))
            if self.clock.running:
                self.process_due()
            req = Req(method, market, path, params, request.remote or "?", self.now_ms())
            if rt.security >= USER_STREAM:
                api_key = request.headers.get("X-MBX-APIKEY")
                secret = check_api_key(self._keys, api_key)
                req.api_key, req.account = api_key, self.account_of[api_key]  # type: ignore
            weight = rt.weight(req) if callable(rt.weight) else rt.weight
            headers = self.limiters[market].admit(req.ip, weight, req.account, rt.is_order)
            if rt.security == SIGNED:
                verify(secret, raw_query, raw_body)
                spd = self.clock.speed
                check_timestamp(params, req.now, self.config.max_recv_window_ms,
                                None if spd == "max" else float(spd))
            fault = self.faults.take_order_5xx() if rt.order_request else None
            if fault is not None and fault[0] == "before":
                self._log_fault_hit("order_5xx_before", request)
                raise ApiError(fault[1], -1008, "Server is currently overloaded with other "
                               "requests. Please try again in a few minutes.")
            result = rt.handler(self, req)
            if asyncio.iscoroutine(result):
                result = await result
            if fault is not None:
                self._log_fault_hit("order_5xx_after", request)
                raise ApiError(fault[1], -1007, "Timeout waiting for response from backend "
                               "server. Send status unknown; execution status unknown.")
            return web.Response(body=msgspec.json.encode(result), headers=headers,
                                content_type="application/json")
        except ApiError as e:
            return self._error(e.http_status, e.code, e.msg, {**headers, **e.headers}, e.data)
        except FilterViolation as e:
            return self._error(400, e.code, e.msg, headers)
        except Exception as e:  # noqa: BLE001 - engine errors and bugs become Binance errors
            code = getattr(e, "code", None)
            if isinstance(code, int) and hasattr(e, "http_status"):
                return self._error(int(e.http_status), code, str(getattr(e, "msg", e)),
                                   headers)
            logger.exception("internal error on {} {}", method, request.path)
            return self._error(500, -1000, f"An unknown error occurred while processing the "
                                           f"request. ({type(e).__name__}: {e})", headers)

    @staticmethod
    def _error(status: int, code: int, msg: str, headers: dict[str, str],
               data: Any = None) -> web.Response:
        body: dict[str, Any] = {"code": code, "msg": msg}
        if data is not None:
            body["data"] = data
        return web.Response(status=status, body=msgspec.json.encode(body),
                            headers=headers, content_type="application/json")

    def _log_fault_hit(self, what: str, request: web.Request) -> None:
        logger.bind(event="FAULT_HIT").warning(
            json.dumps({"event": "FAULT_HIT", "fault": what, "path": request.path}))

    # -- admin --------------------------------------------------------------------------------
    async def _admin(self, request: web.Request) -> web.Response:
        if not _is_loopback(request.remote or ""):
            return self._error(403, -2015, "admin API is loopback only", {})
        tail = request.match_info["tail"]
        try:
            body: dict[str, Any] = {}
            if request.can_read_body:
                txt = await request.text()
                body = json.loads(txt) if txt.strip() else {}
            if tail == "status" and request.method == "GET":
                return web.json_response(self.status())
            if tail == "fault" and request.method == "POST":
                return web.json_response(await self.inject_fault(body))
            if tail == "advance" and request.method == "POST":
                t = self.advance(bars=int(body.get("bars", 0)), ms=int(body.get("ms", 0)))
                return web.json_response({"sim_time": t})
            if tail == "speed" and request.method == "POST":
                sp = body.get("speed")
                self.set_speed(sp if sp == "max" else float(sp))
                return web.json_response({"speed": self.clock.speed})
            if tail == "deposit" and request.method == "POST":
                eng = self.engines[body.get("market", "spot")]
                acct = self.account_of.get(body.get("api_key", self.config.api_key), "main")
                eng.deposit(acct, body["asset"], Decimal(str(body["amount"])))
                return web.json_response({"ok": True})
            if tail == "save" and request.method == "POST":
                p = body.get("path") or self.config.state_file
                if not p:
                    raise ApiError(400, -1102, "no state file configured")
                self.save_state(Path(p))
                return web.json_response({"saved": p})
            return self._error(404, -1, f"unknown admin endpoint {request.method} /_sim/{tail}",
                               {})
        except ApiError as e:
            return self._error(e.http_status, e.code, e.msg, {})
        except (ValueError, KeyError, TypeError) as e:
            return self._error(400, -1100, f"bad admin request: {e}", {})

    async def inject_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Apply one fault (see ``exchange_sim.faults``) and log FAULT_INJECTED."""
        kind = self.faults.validate(spec)
        logger.bind(event="FAULT_INJECTED").warning(
            json.dumps({"event": "FAULT_INJECTED", "sim_time": self.now_ms(), **spec}))
        if kind == "drop_ws":
            n = await self.hub.drop_all()
            self.faults.history.append(dict(spec))
            return {"ok": True, "dropped": n}
        if kind == "clock_jump":
            self.clock.jump(int(spec["ms"]))
            self.faults.history.append(dict(spec))
            if self.clock.running and self._wake is not None:
                self._wake.set()
            return {"ok": True, "sim_time": self.now_ms()}
        if kind == "expire_listen_keys":
            n = await self.hub.expire_user_streams()
            self.listen_keys.clear()
            self.faults.history.append(dict(spec))
            return {"ok": True, "expired": n}
        self.faults.apply(spec)
        return {"ok": True, "faults": self.faults.active()}

    def status(self) -> dict[str, Any]:
        """``GET /_sim/status`` body."""
        return {
            "sim_time": self.now_ms(), "sim_time_utc": iso(self.now_ms()),
            "speed": self.clock.speed, "clock_offset_ms": self.clock.offset_ms,
            "replay_first_bar_utc": iso(self.replay_span()[0]),
            "replay_last_bar_utc": iso(self.replay_span()[1]),
            "markets": list(self.markets), "symbols": list(self.config.symbols),
            "interval": self.config.interval,
            "bars_replayed": {f"{m}:{s}": f.bars_done for (m, s), f in self.feeds.items()},
            "next_bar_close": self.replay.next_bar_time(), "finished": self.replay.finished(),
            "connections": self.hub.counts(), "faults": self.faults.active(),
            "fault_history": self.faults.history[-50:], "notes": self.notes,
        }

    # -- persistence --------------------------------------------------------------------------
    def save_state(self, path: Path) -> None:
        """Write engines + clock + replay position atomically (JSON)."""
        state = {
            "version": 1, "sim_time": self.now_ms(),
            "engines": {m: e.to_state() for m, e in self.engines.items()},
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(msgspec.json.encode(state, enc_hook=_enc))
        os.replace(tmp, path)

    def load_state(self, path: Path) -> None:
        """Restore engines and clock from ``save_state`` output."""
        from exchange_sim.engine import Engine
        state = json.loads(path.read_text())
        for m, st in state.get("engines", {}).items():
            if m in self.engines:
                self.engines[m] = Engine.from_state(st)
        t = int(state["sim_time"])
        self.clock = SimClock(t, 0.0)
        self.replay.seek(t)
        self.notes.append(f"restored state from {path} at sim time {iso(t)}")

    # -- lifecycle ----------------------------------------------------------------------------
    async def start(self) -> SimUrls:
        """Bind and start serving on the running loop."""
        cfg = self.config
        if not _is_loopback(cfg.host):
            logger.warning("sim binds {} (not loopback): the admin API is reachable only from "
                           "loopback, but the trading API is exposed", cfg.host)
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._runner = web.AppRunner(self.make_app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, cfg.host, cfg.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        port = sock.getsockname()[1]
        host = cfg.host if cfg.host not in ("0.0.0.0", "::") else "127.0.0.1"
        base = f"http://{host}:{port}"
        wsb = f"ws://{host}:{port}"
        self.urls = SimUrls(rest=f"{base}/api", fapi=f"{base}/fapi", ws=f"{wsb}/",
                            fws=f"{wsb}/f/", ws_api=f"{wsb}/ws-api/v3", api_key=cfg.api_key,
                            api_secret=cfg.api_secret, admin=f"{base}/_sim", port=port)
        self.clock.set_speed(self._pending_speed)
        self._tasks = [asyncio.create_task(self._replay_loop()),
                       asyncio.create_task(self.hub.maintenance()),
                       asyncio.create_task(self.hub.kline_updates())]
        if cfg.state_file:
            self._tasks.append(asyncio.create_task(self._autosave()))
        for n in self.notes:
            logger.info("sim: {}", n)
        logger.info("sim listening on {}: {}", base, self.describe())
        return self.urls

    def replay_span(self) -> tuple[int | None, int | None]:
        """Open times of the first and the last replayed bar (over every feed)."""
        firsts = [int(f.open_time[0]) for f in self.feeds.values() if len(f)]
        lasts = [int(f.open_time[-1]) for f in self.feeds.values() if len(f)]
        return (min(firsts) if firsts else None, max(lasts) if lasts else None)

    def describe(self) -> str:
        """What is replayed, for people: markets, symbols, bars and span, sim time, speed."""
        first, last = self.replay_span()
        speed = self.clock.speed
        speed_s = "max" if speed == "max" else "paused" if not float(speed) else f"{speed:g}x"
        return (f"{'+'.join(self.markets)} {' '.join(self.config.symbols)}, "
                f"{self.config.interval} bars {iso(first)} .. {iso(last)}, "
                f"sim time {iso(self.now_ms())}, speed {speed_s}")

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self.config.state_save_interval_s)
            try:
                self.save_state(Path(self.config.state_file))  # type: ignore[arg-type]
            except Exception:  # noqa: BLE001
                logger.exception("state save failed")

    async def close(self) -> None:
        """Stop serving (closes every WebSocket, saves state when configured)."""
        self._stopping = True
        if self._wake is not None:
            self._wake.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        await self.hub.drop_all(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()
        if self.config.state_file:
            self.save_state(Path(self.config.state_file))

    def start_in_thread(self) -> SimUrls:
        """Run the server on its own event loop in a daemon thread; return its URLs."""
        ready = threading.Event()
        box: dict[str, Any] = {}

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            try:
                box["urls"] = loop.run_until_complete(self.start())
            except BaseException as e:  # noqa: BLE001 - reported to the caller
                box["error"] = e
                ready.set()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.close())
            loop.close()

        self._thread = threading.Thread(target=run, name="exchange-sim", daemon=True)
        self._thread.start()
        ready.wait()
        if "error" in box:
            raise box["error"]
        return box["urls"]

    def call(self, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Run ``fn`` on the server's loop thread (thread-safe access for tests/tools)."""
        assert self._loop is not None

        async def _c() -> Any:
            r = fn()
            if isinstance(r, Awaitable):
                r = await r
            return r
        return asyncio.run_coroutine_threadsafe(_c(), self._loop).result(timeout)

    def stop(self) -> None:
        """Stop a server started with ``start_in_thread``."""
        if self._loop is None or self._thread is None:
            return
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._thread = None


def _enc(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        return str(obj)
    if hasattr(obj, "value"):
        return obj.value
    raise NotImplementedError(type(obj))


# Register the REST handlers.
from exchange_sim import rest_futures, rest_market, rest_spot  # noqa: E402,F401
