"""The embedded Binance-compatible exchange: REST + WebSocket on loopback (aiohttp).

One ``SimServer`` serves spot (``/api/v3/...``) and USDT-M futures (``/fapi/v1|v2|v3/...``)
from two matching engines (``exchange_sim.engine``), replays market data on a sim clock
(``exchange_sim.loading`` picks the data, ``exchange_sim.replay`` replays it), serves the REST
endpoints of ``rest_market`` / ``rest_spot`` / ``rest_futures`` through ``exchange_sim.rest``
(API keys, HMAC signatures and timestamps against sim time, request weight and order counts),
streams market and user data over WebSocket (``exchange_sim.ws``) and takes faults and clock
control on ``/_sim/...`` (``exchange_sim.admin``, loopback only). This module holds the server's
state, the replay loop, user events, listen keys, persistence and the lifecycle.

Use ``SimServer(config).start_in_thread()`` (tests, the bot) or ``await server.start()``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
from aiohttp import web
from loguru import logger

from exchange_sim import formats, rest_futures, rest_market, rest_spot
from exchange_sim.admin import AdminApi, is_loopback
from exchange_sim.auth import ApiError
from exchange_sim.engine import Engine, FeeSchedule, FillConfig
from exchange_sim.faults import FaultState
from exchange_sim.loading import load_replay
from exchange_sim.ratelimit import RateLimiter
from exchange_sim.replay import Feed, FundingEvent, SimClock, iso
from exchange_sim.rest import RestApi, RouteTable
from exchange_sim.specs import default_specs
from exchange_sim.ws import WsHub
from infra.logs import log_event
from models.enums import Market
from models.filters import SymbolFilters
from models.simconfig import SimConfig


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


class SimServer:
    """The embedded exchange. Build with a ``SimConfig``; optionally inject bars/funding."""

    def __init__(self, config: SimConfig | None = None, *,
                 bars: dict[tuple[str, str], Any] | None = None,
                 funding: dict[str, list[tuple[int, Decimal]]] | None = None) -> None:
        self.config = config or SimConfig()
        cfg = self.config
        self.markets = cfg.markets()
        #: API key -> secret (each key is one account on both markets)
        self.keys = cfg.accounts()
        self.account_of = {k: ("main" if k == cfg.api_key else f"acct{i}")
                           for i, k in enumerate(self.keys)}
        self.specs: dict[str, dict[str, SymbolFilters]] = {}
        self.engines: dict[str, Engine] = {}
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
        data = load_replay(cfg, self.markets, self.specs, bars, funding)
        self.feeds: dict[tuple[str, str], Feed] = data.feeds
        self.replay = data.replay
        self.notes = data.notes
        start_ms = data.start_ms
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
        self.hub = WsHub(self)
        self.rest = RestApi(self, RouteTable(rest_market.ROUTES, rest_spot.ROUTES,
                                             rest_futures.ROUTES))
        self.admin = AdminApi(self)
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
            log_event("SIM_REPLAY_FINISHED",
                      f"replay finished at sim time {iso(now)} (last bar replayed)",
                      sim_time=iso(now))
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

    def wake_replay(self) -> None:
        """Let a running replay loop re-plan at once (the clock moved)."""
        if self.clock.running and self._wake is not None:
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
                logger.bind(event="SIM_REPLAY_STEP_FAILED").exception("replay step failed")
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
        app.router.add_route("*", "/_sim/{tail:.*}", self.admin.handle)
        app.router.add_get("/ws-api/v3", self.hub.handle_ws_api)
        app.router.add_get("/ws", self.hub.handle_spot)
        app.router.add_get("/ws/{tail:.*}", self.hub.handle_spot)
        app.router.add_get("/stream", self.hub.handle_spot)
        app.router.add_get("/f/{tail:.*}", self.hub.handle_futures)
        app.router.add_route("*", "/api/v3/{tail:.*}", self.rest.handle)
        app.router.add_route("*", "/fapi/{ver:v[123]}/{tail:.*}", self.rest.handle)
        return app

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
        if not is_loopback(cfg.host):
            log_event("SIM_NOT_LOOPBACK", f"sim binds {cfg.host} (not loopback): the admin API "
                      "is reachable only from loopback, but the trading API is exposed",
                      level="WARNING", host=cfg.host)
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
            if n.startswith("data issue: "):
                log_event("DATA_ISSUE", f"sim: {n}", level="WARNING", note=n)
            else:
                log_event("SIM_NOTE", f"sim: {n}", note=n)
        first, last = self.replay_span()
        log_event("SIM_LISTENING", f"sim listening on {base}: {self.describe()}", url=base,
                  markets=list(self.markets), symbols=list(cfg.symbols),
                  interval=cfg.interval, replay_first_bar=iso(first),
                  replay_last_bar=iso(last), sim_time=iso(self.now_ms()),
                  speed=self.clock.speed)
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
                logger.bind(event="SIM_STATE_SAVE_FAILED",
                            path=str(self.config.state_file)).exception("state save failed")

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
