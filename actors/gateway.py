"""Gateway actor: one per symbol; the only actor that talks to the exchange.

Blocking work never runs inside ``receiveMessage``: REST calls run on one worker thread (in
order, so a cancel never overtakes its order) and WebSockets on the ``StreamManager``'s event
loop thread. Both hand typed messages to the actor through a queue and wake it with a byte on a
pipe that the actor watches with thespian's ``ThespianWatch`` (no extra TCP hop, no polling).
See docs/ARCHITECTURE.md, "Gateway threads".

Credentials: read from the environment (testnet/live) or the embedded exchange's URL file (sim)
in this process only; they never enter a message, snapshot or log.
"""

from __future__ import annotations

import json
import math
import os
import queue
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

from thespian.actors import ActorAddress, ThespianWatch, WakeupMessage, WatchMessage

from actors import gateway_ops
from actors.base import GridActor
from actors.routes import ROUTES
from actors.streams import StreamManager
from actors.venue_client import VenueClient
from actors.venue_endpoints import VenueEndpoints
from infra.config_io import load_credentials
from infra.logs import log_event
from models import messages as m
from models.backoff import Backoff
from models.client_ids import client_order_id
from models.enums import Market, Venue
from models.sequencer import ReorderBuffer

SIM_URLS_FILE = "sim_urls.json"
#: Pause between reconciliation rounds while the exchange cannot be read.
RECONCILE_RETRY_S = 5.0
REORDER_TOKEN = "gateway-reorder"


def resolve_venue(cfg: Any, state_dir: Path) -> tuple[Any, str, str]:
    """Endpoints and credentials for the configured venue (sim: the URL file in state_dir)."""
    if cfg.venue is Venue.SIM:
        path = state_dir / SIM_URLS_FILE
        urls = json.loads(path.read_text())
        return VenueEndpoints.from_sim_urls(urls), urls["api_key"], urls["api_secret"]
    creds = load_credentials(cfg.venue)
    assert creds is not None
    return (VenueEndpoints.for_venue(cfg.venue.value, overrides=cfg.gateway.testnet_urls or None)
            if cfg.venue is Venue.TESTNET else VenueEndpoints.for_venue(cfg.venue.value),
            creds.api_key, creds.api_secret)


class GatewayActor(GridActor):
    """Exchange access for one symbol (python-binance REST + WebSocket streams)."""

    role = "gateway"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._events: queue.SimpleQueue[tuple[float, m.Message]] = queue.SimpleQueue()
        self._reorder = ReorderBuffer(0.05)
        self._recheck_armed = False
        self._rfd: int | None = None
        self._wfd: int | None = None
        self._worker: ThreadPoolExecutor | None = None
        self._client: Any = None
        self._streams: Any = None
        self._stopping = threading.Event()
        self.market = Market.FUTURES
        self.state_dir = Path(".")

    # -- start / stop -------------------------------------------------------------------------
    def receiveMsg_StartActor(self, msg: m.StartActor, sender: ActorAddress) -> Any:
        self.state_dir = Path(msg.state_dir)
        super().receiveMsg_StartActor(msg, sender)
        return self._watch()

    def on_start(self) -> None:
        assert self.config is not None
        cfg = self.config
        self.market = cfg.portfolio.market_of(self.symbol)
        self._reorder = ReorderBuffer(cfg.gateway.event_reorder_ms / 1000.0)
        endpoints, key, secret = resolve_venue(cfg, self.state_dir)
        self._rfd, self._wfd = os.pipe()
        os.set_blocking(self._rfd, False)
        g = cfg.gateway
        self._client = VenueClient(self.market, endpoints, key, secret,
                                   recv_window_ms=g.recv_window_ms, timeout_s=g.request_timeout_s,
                                   rate_limit_safety=g.rate_limit_safety, on_halt=self._emit,
                                   time_sync_interval_s=g.time_sync_interval_s)
        self._worker = ThreadPoolExecutor(1, thread_name_prefix=f"gw-{self.symbol}")

    def on_wired(self) -> None:
        if self.wind_down_only:
            return  # REST only: no streams, no reconciliation
        if self._streams is None and self._worker is not None:
            self._worker.submit(self._boot_until_up)

    def _boot_until_up(self) -> None:
        """Boot, retrying with backoff while the exchange is unreachable (worker thread)."""
        assert self.config is not None
        g = self.config.gateway
        bo = Backoff(g.reconnect_backoff_initial_s, g.reconnect_backoff_max_s)
        while not self._stopping.is_set():
            try:
                self._boot()
                return
            except Exception as e:  # noqa: BLE001 - logged and retried; the OMS waits
                delay = bo.next()
                log_event("GATEWAY_BOOT_FAILED", f"{type(e).__name__}: {e}; retry in "
                          f"{delay:.1f}s", level="ERROR", symbol=self.symbol)
                self._stopping.wait(delay)

    def _boot(self) -> None:
        """Time sync, filters, then streams (runs on the worker thread)."""
        assert self.config is not None
        g = self.config.gateway
        offset = self._client.sync_time()
        self._emit(m.TimeSynced(symbol=self.symbol, offset_ms=offset))
        filters = self._client.exchange_info(self.symbol)
        self._emit(m.SymbolFiltersLoaded(symbol=self.symbol, filters=filters, market=self.market))
        if self.market is Market.FUTURES:
            # the exchange-side leverage only bounds margin; the portfolio enforces the cap
            lev = max(1, min(125, math.ceil(self.config.portfolio.leverage_cap)))
            self._client.set_leverage(self.symbol, lev)
        for ev in self._account_events():
            self._emit(ev)
        self._streams = StreamManager(
            self.market, self._client.endpoints, self.symbol,
            kline_intervals=g.kline_intervals, user_stream=True, venue_client=self._client,
            emit=self._emit, heartbeat_timeout_s=g.heartbeat_timeout_s,
            backoff=Backoff(g.reconnect_backoff_initial_s, g.reconnect_backoff_max_s),
            conflate_book_ms=g.book_conflation_ms, repair=self._repair)
        self._streams.start()
        # serve the OMS's reconciliation only once the user stream is subscribed, so no fill
        # can fall between the REST snapshot and the first live event
        if not self._streams.wait_connected(max(10.0, g.heartbeat_timeout_s)):
            log_event("STREAMS_NOT_CONNECTED", "streams not up yet; reconciling anyway (the "
                      "first reconnect repairs the gap)", level="WARNING", symbol=self.symbol)

    def on_stop(self) -> None:
        self._stopping.set()
        if self._streams is not None:
            self._streams.stop()
        if self._worker is not None:
            self._worker.shutdown(wait=False, cancel_futures=True)
        for fd in (self._rfd, self._wfd):
            if fd is not None:
                os.close(fd)
        self._rfd = self._wfd = None

    # -- plumbing: threads -> actor ---------------------------------------------------------
    def _emit(self, msg: m.Message) -> None:
        """Called from any thread: queue the event and wake the actor."""
        self._events.put((time.monotonic(), msg))
        if self._wfd is not None:
            try:
                os.write(self._wfd, b"\x01")
            except (BlockingIOError, OSError):
                pass  # pipe full: the actor is already due to wake and drain

    def _watch(self) -> ThespianWatch | None:
        return ThespianWatch([self._rfd]) if self._rfd is not None else None

    def receiveMessage(self, message: Any, sender: ActorAddress) -> Any:
        super().receiveMessage(message, sender)
        return self._watch()

    def receiveMsg_WatchMessage(self, msg: WatchMessage, sender: ActorAddress) -> None:
        if self._rfd is not None:
            try:
                while os.read(self._rfd, 4096):
                    pass
            except BlockingIOError:
                pass
        while True:
            try:
                recv, ev = self._events.get_nowait()
            except queue.Empty:
                break
            self._reorder.push(ev, recv)
        self._release()

    def _release(self) -> None:
        """Route the held events that are due, in their deterministic order."""
        now = time.monotonic()
        for ev in self._reorder.due(now):
            self._route(ev)
        wait = self._reorder.next_check_in(now)
        if wait is not None and not self._recheck_armed:
            self._recheck_armed = True
            self.wakeupAfter(timedelta(seconds=max(wait, 0.001)), payload=REORDER_TOKEN)

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: ActorAddress) -> None:
        if msg.payload == REORDER_TOKEN:
            self._recheck_armed = False
            self._release()

    def _route(self, ev: m.Message) -> None:
        if isinstance(ev, m.Reconnected):
            log_event("RECONNECTED", symbol=self.symbol, gap_ms=ev.gap_ms,
                      klines_repaired=ev.klines_repaired, trades_repaired=ev.trades_repaired,
                      detail=ev.detail)
        elif isinstance(ev, (m.VenueBanned, m.RateLimited, m.StreamDisconnected)):
            log_event(type(ev).__name__.upper(), symbol=self.symbol, level="WARNING",
                      **{f: getattr(ev, f) for f in ev.__struct_fields__ if f != "symbol"})
        for role in ROUTES.get(type(ev), ()):
            self.tell_peer(role, ev)

    def _guard(self, fn: Any, *args: Any) -> None:
        """Run ``fn`` on the worker; an unexpected error becomes a logged event, not a hang."""
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported, and the supervisor sees the state
            log_event("GATEWAY_ERROR", f"{type(e).__name__}: {e}", level="ERROR",
                      symbol=self.symbol)

    # -- commands from the OMS ----------------------------------------------------------------
    def _submit(self, fn: Any, *args: Any) -> None:
        if self._worker is not None and not self._stopping.is_set():
            self._worker.submit(self._guard, fn, *args)

    def receiveMsg_SendOrder(self, msg: m.SendOrder, sender: ActorAddress) -> None:
        self._submit(self._do_send, msg)

    def receiveMsg_SendCancel(self, msg: m.SendCancel, sender: ActorAddress) -> None:
        self._submit(self._do_cancel, msg)

    def receiveMsg_SendModify(self, msg: m.SendModify, sender: ActorAddress) -> None:
        self._submit(self._do_modify, msg)

    def receiveMsg_QueryOrder(self, msg: m.QueryOrder, sender: ActorAddress) -> None:
        self._submit(self._do_query, msg)

    def receiveMsg_RequestReconciliation(self, msg: m.RequestReconciliation,
                                         sender: ActorAddress) -> None:
        self._submit(self._do_reconcile, msg)

    def receiveMsg_StopTrading(self, msg: m.StopTrading, sender: ActorAddress) -> None:
        """Nothing to stop here: the gateway keeps its streams and REST worker so the OMS's
        cancels and flatten order go out and their fills come back."""

    def receiveMsg_RequestHistory(self, msg: m.RequestHistory, sender: ActorAddress) -> None:
        self._submit(self._do_history, msg)

    def receiveMsg_WindDownSymbol(self, msg: m.WindDownSymbol, sender: ActorAddress) -> None:
        """The symbol gave up: cancel its orders (and flatten), answer ``SymbolWoundDown``."""
        self._submit(self._do_wind_down, msg)

    # -- worker-thread bodies -------------------------------------------------------------------
    def _do_send(self, msg: m.SendOrder) -> None:
        for ev in gateway_ops.send_order(self._client, self.market, msg):
            self._emit(ev)

    def _do_cancel(self, msg: m.SendCancel) -> None:
        for ev in gateway_ops.cancel_order(self._client, self.market, msg):
            self._emit(ev)

    def _do_modify(self, msg: m.SendModify) -> None:
        for ev in gateway_ops.modify_order(self._client, self.market, msg):
            self._emit(ev)

    def _do_query(self, msg: m.QueryOrder) -> None:
        for ev in gateway_ops.query_order(self._client, self.market, msg):
            self._emit(ev)

    def _repair(self, since_kline_open_ms: int, gap_ms: int,
                since_trade_id: int) -> tuple[list[m.Message], dict[str, Any]]:
        """Gap repair after a stream reconnect (called on the stream manager's executor)."""
        assert self._streams is not None
        return gateway_ops.repair(self._client, self.market, self.symbol, since_kline_open_ms,
                                  self._streams.repair_interval, since_trade_id)

    def _do_reconcile(self, msg: m.RequestReconciliation) -> None:
        """The exchange's view for the OMS; retried until it succeeds (no trading before)."""
        if self._streams is not None:
            self._streams.note_trade_id(msg.since_trade_id)
        while not self._stopping.is_set():
            events = gateway_ops.reconciliation(self._client, self.market, self.symbol,
                                                msg.since_trade_id)
            if events:
                for ev in events:
                    self._emit(ev)
                for ev in self._account_events():
                    self._emit(ev)
                return
            self._stopping.wait(RECONCILE_RETRY_S)

    def _do_wind_down(self, msg: m.WindDownSymbol) -> None:
        assert self.config is not None
        cid = client_order_id(self.config.oms.client_id_prefix, self.symbol, "winddown",
                              msg.generation)
        self._emit(gateway_ops.wind_down(self._client, self.market, self.symbol, msg, cid,
                                         self._stopping))

    def _do_history(self, msg: m.RequestHistory) -> None:
        loaded = gateway_ops.history(self._client, self.symbol, msg)
        if self._streams is not None and loaded.klines:
            self._streams.note_kline_closed(msg.interval, loaded.klines[-1].open_time_ms)
        self._emit(loaded)

    def _account_events(self) -> list[m.Message]:
        return gateway_ops.account_events(self._client, self.market, self.symbol)

    def status(self) -> dict[str, Any]:
        base = super().status()
        streams = self._streams
        base.update({
            "market": self.market.value,
            "connected": bool(streams is not None and getattr(streams, "connected", False)),
            "used_weight": getattr(self._client, "used_weight", None),
        })
        return base
