"""The delivery side of ``actors.streams.StreamManager``: what happens to a parsed stream item.

``StreamDelivery`` (a mixin of ``StreamManager``, whose ``__init__`` holds all state) parses
each frame (``models.stream_parse``), holds live items back while a reconnect's repair runs,
tracks the last closed kline and trade id, drops duplicates, detects kline gaps (they end the
session so the repair fetches the missing bars), conflates book tickers to one per
``conflate_book_ms`` and runs the gap repair after a reconnect (see ``_repair``).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import msgspec

from actors.stream_wire import Conn, err_text
from infra.clock import now_ms, now_ns
from infra.logs import log_event
from models import messages as m
from models.backoff import Backoff
from models.enums import Market
from models.stream_parse import (
    KlineOpen,
    Parsed,
    StreamEnded,
    parse_market,
    parse_user,
)
from models.timeframes import INTERVAL_MS

RepairFn = Callable[[int, int, int], tuple[list[m.Message], dict]]

_decoder = msgspec.json.Decoder()


class StreamDelivery:
    """Item handling and gap repair of ``StreamManager`` (mixin: the attributes below are set
    by ``StreamManager.__init__``; ``_end_session`` and ``_safe_emit`` are its other halves)."""

    market: Market
    symbol: str
    repair: RepairFn | None
    repair_interval: str
    repair_attempts: int
    conflate_s: float
    last_kline_open_ms: dict[str, int]
    last_trade_id: int
    _end: asyncio.Future[Any] | None
    _held: list[Parsed] | None
    _book_latest: m.BookUpdated | None
    _book_handle: asyncio.TimerHandle | None
    _book_last: float
    _funding_last: tuple[Any, int] | None

    def _on_text(self, c: Conn, data: str | bytes) -> None:
        if self._end is not None and self._end.done():
            return  # the session is ending: the repair after the reconnect covers this
        try:
            payload = _decoder.decode(data)
        except msgspec.DecodeError:
            return
        if c.user:
            items = parse_user(payload, self.market, self.symbol)
        else:
            items = parse_market(payload, self.symbol, now_ns())
        for it in items:
            if isinstance(it, StreamEnded):
                self._end_session(c.name, it.reason)
            elif self._held is not None:
                if isinstance(it, m.BookUpdated) and self._held \
                        and isinstance(self._held[-1], m.BookUpdated):
                    self._held[-1] = it  # a slow repair must not pile up book ticks
                else:
                    self._held.append(it)
            else:
                self._handle(it)


    # -- delivery ---------------------------------------------------------------------------------
    def _handle(self, it: Parsed) -> None:
        """Track, deduplicate, conflate and emit one live item."""
        if isinstance(it, KlineOpen):
            iv_ms = INTERVAL_MS[it.interval]
            last = self.last_kline_open_ms.get(it.interval)
            if last is None:
                # The bar before the one in progress is closed; the strategy has it from
                # history, so a repair needs to start no earlier than that.
                self.last_kline_open_ms[it.interval] = it.open_time_ms - iv_ms
            elif it.open_time_ms - iv_ms > last:
                self._kline_gap(it.interval, last, it.open_time_ms - iv_ms)
            return
        if isinstance(it, m.KlineClosed):
            last = self.last_kline_open_ms.get(it.interval)
            if last is not None and it.open_time_ms <= last:
                return  # already delivered (e.g. by the repair)
            if last is not None and it.open_time_ms - INTERVAL_MS[it.interval] > last:
                if self._kline_gap(it.interval, last, it.open_time_ms):
                    return  # the repair after the reconnect delivers it, in order
            self.last_kline_open_ms[it.interval] = it.open_time_ms
        elif isinstance(it, m.BookUpdated):
            self._on_book(it)
            return
        elif isinstance(it, m.FundingRateUpdated):
            key = (it.funding_rate, it.next_funding_time_ms)
            if key == self._funding_last:
                return
            self._funding_last = key
        elif isinstance(it, m.OrderFilled):
            self.last_trade_id = max(self.last_trade_id, it.trade_id)
        self._safe_emit(it)  # type: ignore[arg-type]

    def _kline_gap(self, interval: str, last: int, got: int) -> bool:
        """A closed kline of the repair interval went missing on the wire (e.g. lost in a
        stall shorter than the heartbeat timeout): reconnect so the repair fetches it. True
        when a repair will follow."""
        if interval != self.repair_interval or self.repair is None:
            return False
        self._end_session("market", f"kline gap: {interval} after {last}, got {got}")
        return True

    def _on_book(self, b: m.BookUpdated) -> None:
        """At most one ``BookUpdated`` per ``conflate_book_ms``, always the latest value."""
        self._book_latest = b
        if self._book_handle is not None:
            return
        loop = asyncio.get_running_loop()
        wait = self._book_last + self.conflate_s - loop.time()
        if wait <= 0:
            self._flush_book()
        else:
            self._book_handle = loop.call_later(wait, self._flush_book)

    def _flush_book(self) -> None:
        self._book_handle = None
        b, self._book_latest = self._book_latest, None
        if b is not None:
            self._book_last = asyncio.get_running_loop().time()
            self._safe_emit(b)

    def _cancel_book_timer(self) -> None:
        if self._book_handle is not None:
            self._book_handle.cancel()
            self._book_handle = None
        self._book_latest = None

    # -- repair -----------------------------------------------------------------------------------
    async def _repair(self, dropped_at_ms: int, out: list[m.Reconnected]) -> None:
        """Call ``repair`` on an executor thread and emit its events; the ``Reconnected`` to
        emit next goes to ``out``.

        A failed repair (it raised, or its summary says ``"ok": False``) is retried in place
        with backoff up to ``repair_attempts`` times while live events stay held. Then the
        streams go live anyway (REST may be banned for hours; the streams must stay up):
        ``Reconnected.detail`` says so, the OMS reconciles on ``Reconnected`` (and retries
        that itself), and kline gap detection restarts from the next live bar."""
        gap_ms = max(0, now_ms() - dropped_at_ms) if dropped_at_ms else 0
        since_k = self.last_kline_open_ms.get(self.repair_interval, 0)
        since_t = self.last_trade_id
        n_k = n_t = 0
        problem = ""
        if self.repair is None:
            detail = "no repair configured"
        else:
            loop = asyncio.get_running_loop()
            pause = Backoff(0.25, 4.0, rng=random.Random(0))
            for attempt in range(self.repair_attempts):
                if attempt:
                    await asyncio.sleep(pause.next())
                try:
                    events, summary = await loop.run_in_executor(
                        self._pool, self.repair, self.last_kline_open_ms.get(
                            self.repair_interval, 0), gap_ms, self.last_trade_id)
                except Exception as e:  # noqa: BLE001 - reported; retried below
                    problem = f"gap repair failed: {err_text(e)}"
                else:
                    k, t = self._emit_repaired(events)
                    n_k, n_t = n_k + k, max(n_t, t)
                    problem = "" if summary.get("ok", True) else "gap repair incomplete"
                if not problem:
                    break
                _log("STREAM_REPAIR_FAILED", problem, symbol=self.symbol, attempt=attempt + 1)
            detail = f"since kline {since_k} ({self.repair_interval}), since trade {since_t}"
            if problem:
                detail = f"{detail}; {problem} after {self.repair_attempts} attempts"
                # Accept the next live bar as it comes: a hole REST cannot fill now must not
                # make every following bar look like a gap.
                self.last_kline_open_ms.pop(self.repair_interval, None)
        out.append(m.Reconnected(symbol=self.symbol, ts_event_ns=now_ns(), gap_ms=int(gap_ms),
                                 klines_repaired=n_k, trades_repaired=n_t, detail=detail))

    def _emit_repaired(self, events: list[m.Message]) -> tuple[int, int]:
        """Emit a repair's events (klines already delivered are dropped); (klines, trades)."""
        n_k = n_t = 0
        for ev in events:
            if isinstance(ev, m.KlineClosed):
                if ev.open_time_ms <= self.last_kline_open_ms.get(ev.interval, -1):
                    continue
                self.last_kline_open_ms[ev.interval] = ev.open_time_ms
                n_k += 1
            elif isinstance(ev, m.ExchangeSnapshotReceived) and ev.trades:
                self.last_trade_id = max(self.last_trade_id,
                                         max(t.trade_id for t in ev.trades))
                n_t += len(ev.trades)
            elif isinstance(ev, m.OrderFilled):
                self.last_trade_id = max(self.last_trade_id, ev.trade_id)
                n_t += 1
            self._safe_emit(ev)
        return n_k, n_t


def _log(event: str, msg: str, **ctx: Any) -> None:
    try:
        log_event(event, msg, level="WARNING", **ctx)
    except Exception:  # noqa: BLE001 - logging must never break the stream thread
        pass
