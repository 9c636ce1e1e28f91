"""Bench-only actors for ``bench/latency_bench.py``: a gateway with no network and a strategy
that turns every closed kline into one order.

``LatencyGateway`` plays the exchange side of the real pipeline. On wiring it sends the real
BTCUSDT futures filters and the account, answers ``RequestReconciliation`` with an empty exchange
snapshot and ``RequestHistory`` with real 5m bars, then emits one ``KlineClosed`` every
``spacing_ms`` (a seeded draw) through the real ``GatewayActor._route``. Every order request that
reaches it (``SendOrder``, ``SendModify``, ``SendCancel``) is stamped on arrival, matched to the
market event that caused it and answered like an exchange would (accepted, then expired in
``bench`` mode so exposure never piles up). The figures go to ``<state_dir>/latency_result.json``
when the run is over; the bench process only waits for that file, so polling adds no traffic to
the actors being measured.

Parameters come from ``<state_dir>/latency_params.json`` (written by the bench).
"""

from __future__ import annotations

import json
import os
import random
import time
from decimal import ROUND_CEILING, Decimal
from pathlib import Path
from typing import Any

import msgspec
from thespian.actors import ActorAddress, WakeupMessage

from actors.base import GridActor
from actors.gateway import GatewayActor
from actors.strategy import StrategyActor
from exchange_sim.marketdata import DataError, load_klines
from exchange_sim.specs import default_specs
from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce

PARAMS_FILE = "latency_params.json"
RESULT_FILE = "latency_result.json"
TICK = "latency-tick"
FINISH = "latency-finish"
#: Grace after the last measured event for its order to arrive before the result is written.
FINISH_GRACE_S = 1.5
BAR_MS = 300_000


def default_params() -> dict[str, Any]:
    """Defaults of ``latency_params.json`` (the bench overrides them)."""
    return {
        "mode": "bench",          # "bench": LatencyStrategy; "real": the real StrategyActor
        "n": 300,                 # measured market events
        "warmup": 5,              # events skipped after the first order request arrived
        "max_pre_events": 200,    # give up if no order request arrives within this many events
        "spacing_ms": [50, 100],  # uniform draw per event
        "seed": 7,
        "start_delay_s": 0.5,     # after wiring, before the first event
        "wallet": "100000",
        "symbol_data": "BTCUSDT",
        "first_bar_ms": 1_740_787_200_000,  # 2025-03-01 00:00 UTC (5m futures data)
        "history_bars": 400,
        "data_dir": "",
    }


def _synthetic_rows(start_ms: int, count: int, seed: int) -> list[m.KlineRow]:
    """Deterministic 5m bars around 85,000 (0.2 % steps)."""
    rng = random.Random(seed)
    out = []
    close = 85_000.0
    for i in range(count):
        o = close
        close = o * (1.0 + rng.gauss(0.0, 0.002))
        hi, lo = max(o, close) * 1.0005, min(o, close) * 0.9995
        ot = start_ms + i * BAR_MS
        out.append(m.KlineRow(ot, ot + BAR_MS - 1, o, hi, lo, close, 100.0 + 50 * rng.random()))
    return out


class _Emitted:
    """One emitted market event: sequence number and its emission stamps."""

    __slots__ = ("seq", "perf_ns", "wall_ns", "measured", "answered")

    def __init__(self, seq: int, perf_ns: int, wall_ns: int, measured: bool) -> None:
        self.seq = seq
        self.perf_ns = perf_ns
        self.wall_ns = wall_ns
        self.measured = measured
        self.answered = False


class LatencyGateway(GatewayActor):
    """A gateway without network that emits klines and times the order requests they cause."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params: dict[str, Any] = default_params()
        self.rng = random.Random(0)
        self.bars: list[m.KlineRow] = []
        self.history: list[m.KlineRow] = []
        self.booted = False
        self.pending: list[tuple[m.Message, ActorAddress]] = []
        self.emitted: dict[str, _Emitted] = {}
        self.seq = 0
        self.measure_from: int | None = None  # first measured sequence number
        self.measured_events = 0
        self.stop_emitting = False
        self.finished = False
        self.exchange_id = 0
        # samples: (seq, kind, total_ns, seg_a_ns, seg_b_ns, seg_c_ns)
        self.samples: list[tuple[int, str, int, int, int, int]] = []
        self.counts: dict[str, int] = {"SendOrder": 0, "SendModify": 0, "SendCancel": 0,
                                       "QueryOrder": 0}
        self.unmatched = 0
        self.data_source = ""

    # -- lifecycle ------------------------------------------------------------------------------
    def on_start(self) -> None:
        assert self.config is not None
        self.market = self.config.portfolio.market_of(self.symbol)
        path = self.state_dir / PARAMS_FILE
        if path.exists():
            self.params.update(json.loads(path.read_text()))
        self.rng = random.Random(int(self.params["seed"]))
        if self.params["mode"] == "real":
            # the real strategy's first orders (its initial grid) count: measure from the start
            self.measure_from = 1
        self._load_bars()

    def _load_bars(self) -> None:

        p = self.params
        first = int(p["first_bar_ms"])
        hist = int(p["history_bars"])
        n_live = int(p["n"]) + int(p["warmup"]) + int(p["max_pre_events"]) + 10
        try:
            bars = load_klines(str(p["symbol_data"]), Market.FUTURES, "5m",
                               first - hist * BAR_MS, first + n_live * BAR_MS,
                               Path(p["data_dir"]) if p["data_dir"] else None)
            rows = [m.KlineRow(int(ot), int(ot) + BAR_MS - 1, float(o), float(h), float(lo),
                               float(c), float(v))
                    for ot, o, h, lo, c, v in zip(bars.open_time, bars.open, bars.high,
                                                  bars.low, bars.close, bars.volume,
                                                  strict=True)]
            self.data_source = f"{p['symbol_data']} futures 5m (real)"
        except DataError:  # no market data on this machine: a seeded random walk
            rows = _synthetic_rows(first - hist * BAR_MS, hist + n_live, int(p["seed"]))
            self.data_source = "synthetic random walk"
        self.history = [r for r in rows if r.open_time_ms < first]
        self.bars = [r for r in rows if r.open_time_ms >= first]

    def on_wired(self) -> None:
        if self.booted:
            return
        self.booted = True

        filters = default_specs(self.market)[self.symbol]
        self._route(m.SymbolFiltersLoaded(symbol=self.symbol, filters=filters,
                                          market=self.market))
        self._route(m.AccountReported(symbol=self.symbol,
                                      wallet_balance=Decimal(str(self.params["wallet"])),
                                      market=self.market))
        pending, self.pending = self.pending, []
        for msg, sender in pending:
            self.receiveMessage(msg, sender)
        self.wakeupAfter(float(self.params["start_delay_s"]), payload=(TICK,))

    def on_stop(self) -> None:
        self.stop_emitting = True

    def status(self) -> dict[str, Any]:
        base = GridActor.status(self)
        base.update({"market": self.market.value, "emitted": self.seq,
                     "samples": len(self.samples), "finished": self.finished})
        return base

    # -- requests from the pipeline ------------------------------------------------------------
    def _defer(self, msg: m.Message, sender: ActorAddress) -> bool:
        """Requests that arrive before our own Wire are answered once wired."""
        if not self.booted:
            self.pending.append((msg, sender))
            return True
        return False

    def receiveMsg_RequestReconciliation(self, msg: m.RequestReconciliation,
                                         sender: ActorAddress) -> None:
        if self._defer(msg, sender):
            return
        self._route(m.ExchangeSnapshotReceived(symbol=self.symbol, balances={
            "USDT": Decimal(str(self.params["wallet"]))}))
        self._route(m.PositionUpdated(symbol=self.symbol, market=self.market, qty=Decimal(0)))

    def receiveMsg_RequestHistory(self, msg: m.RequestHistory, sender: ActorAddress) -> None:
        if self._defer(msg, sender):
            return
        if msg.start_ms > 0:
            rows = [r for r in self.history if r.open_time_ms >= msg.start_ms][: msg.limit]
        else:
            rows = self.history[-msg.limit:] if msg.limit > 0 else []
        self._route(m.HistoryLoaded(symbol=self.symbol, interval=msg.interval, klines=rows,
                                    complete=True))

    def receiveMsg_SendOrder(self, msg: m.SendOrder, sender: ActorAddress) -> None:
        self._record(msg, "SendOrder")
        self.exchange_id += 1
        self._route(m.OrderAccepted(symbol=self.symbol, ts_event_ns=time.time_ns(),
                                    client_order_id=msg.client_order_id,
                                    exchange_order_id=self.exchange_id, side=msg.side,
                                    price=msg.price, qty=msg.qty))
        if self.params["mode"] == "bench":
            # the bench's orders are not meant to rest: free the exposure at once
            self._route(m.OrderExpired(symbol=self.symbol, ts_event_ns=time.time_ns(),
                                       client_order_id=msg.client_order_id,
                                       reason="latency bench"))

    def receiveMsg_SendCancel(self, msg: m.SendCancel, sender: ActorAddress) -> None:
        self._record(msg, "SendCancel")
        self._route(m.OrderCanceled(symbol=self.symbol, ts_event_ns=time.time_ns(),
                                    client_order_id=msg.client_order_id))

    def receiveMsg_SendModify(self, msg: m.SendModify, sender: ActorAddress) -> None:
        self._record(msg, "SendModify")
        self._route(m.OrderModified(symbol=self.symbol, ts_event_ns=time.time_ns(),
                                    client_order_id=msg.client_order_id,
                                    new_client_order_id=msg.new_client_order_id,
                                    price=msg.price, qty=msg.qty))

    def receiveMsg_QueryOrder(self, msg: m.QueryOrder, sender: ActorAddress) -> None:
        self.counts["QueryOrder"] += 1
        self._route(m.OrderStatusReported(symbol=self.symbol, ts_event_ns=time.time_ns(),
                                          client_order_id=msg.client_order_id,
                                          status="EXPIRED", found=False))

    # -- timing ---------------------------------------------------------------------------------
    def _record(self, msg: m.Message, kind: str) -> None:
        """Stamp an order request on arrival and attribute it to its market event: both
        strategies here put the kline's ``msg_id`` into their commands' ``correlation_id``,
        which risk and the OMS carry through to the request."""
        perf = time.perf_counter_ns()
        wall = time.time_ns()
        self.counts[kind] += 1
        ev = self.emitted.get(msg.correlation_id)
        if ev is None:
            self.unmatched += 1
            return
        if self.measure_from is None:
            # the pipeline is warm (filters, equity, reconciliation): measure from here on
            self.measure_from = self.seq + 1 + int(self.params["warmup"])
        if not ev.measured:
            return
        first = not ev.answered
        ev.answered = True
        # wall-clock segments across processes: emission -> risk saw the command (risk stamps
        # ts_event_ns) -> the OMS built the request (ts_init_ns) -> arrival here
        seg_a = msg.ts_event_ns - ev.wall_ns
        seg_b = msg.ts_init_ns - msg.ts_event_ns
        seg_c = wall - msg.ts_init_ns
        self.samples.append((ev.seq, kind if first else kind + "+", perf - ev.perf_ns,
                             seg_a, seg_b, seg_c))

    def receiveMsg_WakeupMessage(self, msg: WakeupMessage, sender: ActorAddress) -> None:
        payload = msg.payload
        if not (isinstance(payload, tuple) and payload):
            return
        if payload[0] == FINISH:
            self._finish()
            return
        if payload[0] != TICK or self.stop_emitting:
            return
        self._emit_next()
        lo, hi = self.params["spacing_ms"]
        if self._enough():
            self.stop_emitting = True
            self.wakeupAfter(FINISH_GRACE_S, payload=(FINISH,))
        else:
            self.wakeupAfter(self.rng.uniform(float(lo), float(hi)) / 1000.0, payload=(TICK,))

    def _enough(self) -> bool:
        p = self.params
        if self.seq >= len(self.bars):
            return True
        if self.measure_from is None:
            return self.seq >= int(p["max_pre_events"])
        return self.measured_events >= int(p["n"])

    def _emit_next(self) -> None:
        r = self.bars[self.seq]
        self.seq += 1
        measured = self.measure_from is not None and self.seq >= self.measure_from
        if measured:
            self.measured_events += 1
        wall = time.time_ns()
        # an explicit id: default msg_ids are not unique across forked actor processes
        k = m.KlineClosed(symbol=self.symbol, ts_event_ns=wall, msg_id=f"lat.{self.seq}",
                          interval="5m",
                          open_time_ms=r.open_time_ms, close_time_ms=r.close_time_ms,
                          open=r.open, high=r.high, low=r.low, close=r.close, volume=r.volume)
        ev = _Emitted(self.seq, time.perf_counter_ns(), wall, measured)
        if len(self.emitted) > 4096:  # a long run: forget the oldest events
            self.emitted.pop(next(iter(self.emitted)))
        self.emitted[k.msg_id] = ev
        self._route(k)

    def _finish(self) -> None:
        if self.finished:
            return
        self.finished = True
        out = {
            "mode": self.params["mode"], "events": self.seq,
            "measured_events": self.measured_events,
            "warm_after_events": (self.measure_from - 1 - int(self.params["warmup"]))
            if self.measure_from is not None else None,
            "answered_events": sum(1 for e in self.emitted.values() if e.measured and e.answered),
            "counts": self.counts, "unmatched": self.unmatched, "data": self.data_source,
            "samples": self.samples, "pid": os.getpid(),
        }
        path = self.state_dir / RESULT_FILE
        tmp = path.with_name(f".{RESULT_FILE}.tmp")
        tmp.write_text(json.dumps(out))
        os.replace(tmp, path)


class LatencyStrategy(StrategyActor):
    """The real strategy actor, except that every closed kline becomes exactly one
    ``PlaceOrder`` (fresh key from the bar's open time; a limit buy 10 % under the close, just
    above the minimum notional) once filters, reconciliation and equity are known.

    It persists before sending, as the real actor does; it skips the strategy's own per-bar
    computation (measured by ``bench/strategy_bench.py``)."""

    def receiveMsg_KlineClosed(self, msg: m.KlineClosed, sender: ActorAddress) -> None:
        runner = self.runner
        assert runner is not None
        if msg.interval != self.interval:
            return
        f = runner.filters
        st = runner.st
        if f is None or not st.reconciled or st.equity <= 0 or not st.trading_active:
            return
        price = f.round_price(Decimal(repr(msg.close)) * Decimal("0.9"), Side.BUY)
        qty = (f.min_notional * Decimal("1.2") / price / f.step_size).to_integral_value(
            rounding=ROUND_CEILING) * f.step_size
        cmd = m.PlaceOrder(symbol=self.symbol, ts_event_ns=msg.ts_event_ns,
                           correlation_id=msg.msg_id, key=f"lat{msg.open_time_ms // 1000}",
                           side=Side.BUY, order_type=OrderType.LIMIT, price=price,
                           qty=f.round_qty(qty), tif=TimeInForce.GTC, kind="ENTRY",
                           conviction=1.0, reason="latency bench")
        st.last_open_ms = msg.open_time_ms
        self._send([cmd])


class TracingStrategy(StrategyActor):
    """The real strategy actor, unchanged except that the commands it sends while handling a
    kline carry that kline's ``msg_id`` as ``correlation_id`` (so the gateway can tell which
    market event caused which order request)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._cause = ""

    def receiveMsg_KlineClosed(self, msg: m.KlineClosed, sender: ActorAddress) -> None:
        self._cause = msg.msg_id
        try:
            super().receiveMsg_KlineClosed(msg, sender)
        finally:
            self._cause = ""

    def tell_peer(self, role: str, msg: m.Message) -> bool:
        if self._cause and not msg.correlation_id and isinstance(
                msg, (m.PlaceOrder, m.ModifyOrder, m.CancelOrder)):
            msg = msgspec.structs.replace(msg, correlation_id=self._cause)
        return super().tell_peer(role, msg)
