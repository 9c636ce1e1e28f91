"""Backtest driver: replay market data through the live strategy, risk, portfolio and order
actors on thespian's ``simpleSystemBase``, against the in-process venue of
``backtest.venue`` (the embedded exchange's matching engine).

Only the gateway and the clock differ from a live run:

* the gateway role is ``BacktestGatewayActor`` (no I/O);
* ``infra.clock.SimClock`` is installed and advanced to each bar's close; thespian wakeups
  (``wakeupAfter``) are scheduled on that clock instead of the wall clock, so timers (the
  portfolio's throttled EQUITY flush, risk timeouts) fire at the same sim time in every run.

The actors are wired as ``supervision/supervisor.py`` wires them (``StartActor`` with the
config JSON and a temporary state directory, then ``Wire`` with pickled addresses; portfolio
peers keyed ``"<SYMBOL>.<role>"``), without the supervisors (their heartbeats are wall-clock
timers). ``simpleSystemBase`` delivers every message a ``tell`` triggers before ``tell``
returns, which is the quiescence barrier: all consequences of bar *t* are processed before bar
*t+1* is released, and an order placed after bar *t*'s close can only fill on bar *t+1*'s path.

State stores live in a temporary directory with ``synchronous=OFF`` (a crash loses nothing of
value in a backtest); everything else about persistence is the live code path.

``run_backtest(BacktestOptions) -> BacktestResult`` is the API; ``backtest_command(args)`` is
``python run.py backtest``. See docs/BACKTEST.md.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gc
import heapq
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from backtest.venue import (
    BacktestGatewayActor,
    BacktestVenue,
    SymbolFeed,
    register_venue,
    unregister_venue,
)
from exchange_sim import marketdata as md
from infra import clock as aclock
from models import messages as m
from models.config import Config, base_interval, config_to_json
from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms, parse_time

EXIT_OK, EXIT_FAIL = 0, 1
DAY_MS = 86_400_000
NS = 1_000_000
#: events kept in memory for trades.csv / equity.csv / the result (the rest is only logged)
KEEP_EVENTS = frozenset({"TRADE_CLOSED", "EQUITY", "ORDER_FILLED"})
TRADE_COLUMNS = ("symbol", "side", "qty", "entry_price", "exit_price", "gross_pnl", "fees",
                 "funding", "net_pnl", "opened_ms", "closed_ms", "holding_s")
EQUITY_COLUMNS = ("ts_ms", "time", "equity", "peak_equity", "drawdown", "leverage",
                  "worst_case_leverage", "level", "state")


class BacktestError(Exception):
    """Bad input (data, range, configuration): the message says what and where."""


# --------------------------------------------------------------------------------------------
# options / result
# --------------------------------------------------------------------------------------------
@dataclass
class BacktestOptions:
    """What to replay and how."""

    config: Config
    symbols: tuple[str, ...]
    market: Market
    start_ms: int
    end_ms: int
    out_dir: Path | None = None
    data_dir: Path | None = None
    data_file: Path | None = None
    #: engine bar interval (None: the strategy's base interval, as the embedded exchange)
    fill_interval: str | None = None
    #: fitted feature weights per symbol (walk-forward); None: the strategy's defaults
    initial_weights: dict[str, Any] | None = None
    progress: bool = False
    report: bool = True
    charts: bool = True
    #: logging to gridbot.jsonl in out_dir (False: keep events in memory only)
    log_file: bool = True
    #: warm-up history loaded before start_ms (None: what the strategy asks for, + margin)
    history_ms: int | None = None
    #: write actor snapshots/outbox to the (temporary) state stores as live does (about 4x
    #: slower); False (the default) skips them: a backtest never restarts an actor, and the
    #: trading is the same either way (tests/integration/test_backtest.py)
    persist: bool = False
    #: initial USDT balance of the account (None: the config's sim balances)
    balance: Decimal | None = None
    #: render the JSON log in a child process (``infra.log_writer``) on the other core;
    #: False: in this process (same lines either way)
    offload_log: bool = True


@dataclass
class BacktestResult:
    """What a run produced."""

    bars: int = 0
    messages: int = 0
    wall_s: float = 0.0
    fills: int = 0
    orders: int = 0
    trades: list[dict[str, Any]] = field(default_factory=list)
    equity: list[dict[str, Any]] = field(default_factory=list)
    fills_log: list[dict[str, Any]] = field(default_factory=list)
    gaps: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    actor_errors: list[str] = field(default_factory=list)
    final_equity: str = ""
    initial_equity: str = ""
    report: dict[str, Any] | None = None
    out_dir: Path | None = None
    #: the replayed span, ISO-8601 UTC (``end`` exclusive)
    start: str = ""
    end: str = ""

    def summary(self) -> dict[str, Any]:
        """JSON-able summary (no per-event lists)."""
        return {
            "start": self.start, "end": self.end,
            "bars": self.bars, "messages": self.messages, "wall_s": round(self.wall_s, 3),
            "bars_per_s": round(self.bars / self.wall_s, 1) if self.wall_s else None,
            "msgs_per_s": round(self.messages / self.wall_s, 1) if self.wall_s else None,
            "orders": self.orders, "fills": self.fills, "trades": len(self.trades),
            "initial_equity": self.initial_equity, "final_equity": self.final_equity,
            "gaps": self.gaps, "notes": self.notes, "actor_errors": self.actor_errors,
            "out_dir": str(self.out_dir) if self.out_dir else None,
        }


# --------------------------------------------------------------------------------------------
# configuration for a run
# --------------------------------------------------------------------------------------------
def backtest_config(cfg: Config, symbols: tuple[str, ...], market: Market,
                    strategy: str | None = None) -> Config:
    """``cfg`` restricted to ``symbols`` on ``market`` (weights renormalised to sum 1)."""
    if not symbols:
        raise BacktestError("no symbols")
    pf = cfg.portfolio
    raw = {s: pf.weights.get(s, 0.0) for s in symbols}
    if sum(raw.values()) <= 0 or any(w <= 0 for w in raw.values()):
        raw = {s: raw[s] if raw[s] > 0 else 1.0 / len(symbols) for s in symbols}
    tot = sum(raw.values())
    weights = {s: raw[s] / tot for s in symbols}
    pf = msgspec.structs.replace(pf, symbols=tuple(symbols), weights=weights,
                                 markets={s: market for s in symbols})
    st = cfg.strategy if strategy is None else msgspec.structs.replace(cfg.strategy,
                                                                        kind=strategy)
    return msgspec.structs.replace(cfg, portfolio=pf, strategy=st)


def history_need_ms(cfg: Config) -> int:
    """Warm-up history the strategy actor asks for at start (its ``on_wired`` rule) + margin."""
    _iv, base_ms = base_interval(cfg)
    bars = cfg.strategy.history_bars(base_ms) + 40
    return bars * base_ms


# --------------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------------
def _floor(ms: int, iv: int) -> int:
    return ms - ms % iv


def check_symbols(symbols: tuple[str, ...], market: Market) -> None:
    """Every symbol must have the embedded exchange's filters on ``market``."""
    from exchange_sim.specs import default_specs

    specs = default_specs(market)
    for sym in symbols:
        if sym not in specs:
            raise BacktestError(f"{sym}: no {market.value} symbol filters on the embedded "
                                f"exchange (known: {', '.join(sorted(specs))})")


def load_feeds(opts: BacktestOptions, cfg: Config, notes: list[str], gaps: list[str]
               ) -> dict[str, SymbolFeed]:
    """Fill bars, base bars and funding per symbol; gaps are reported, never filled."""
    from exchange_sim.specs import default_specs

    base_iv, base_ms = base_interval(cfg)
    fill_iv = opts.fill_interval or base_iv
    fill_ms = INTERVAL_MS[fill_iv]
    if base_ms % fill_ms:
        raise BacktestError(f"fill interval {fill_iv} does not divide the base interval "
                            f"{base_iv}")
    check_symbols(opts.symbols, opts.market)
    specs = default_specs(opts.market)
    hist = opts.history_ms if opts.history_ms is not None else history_need_ms(cfg)
    start, end = opts.start_ms, opts.end_ms
    h0 = _floor(start - hist, base_ms)
    feeds: dict[str, SymbolFeed] = {}
    for sym in opts.symbols:
        bars = _load_bars(opts, sym, fill_iv, h0, end, start, notes)
        run = bars.slice_time(start, end)
        if not len(run):
            raise BacktestError(f"{opts.market.value} {sym} {fill_iv}: no bars between "
                                f"{fmt_ms(start)} and {fmt_ms(end)}")
        for g in run.gaps():
            gaps.append(str(g))
        if int(run.open_time[0]) > start:
            gaps.append(f"{opts.market.value} {sym} {fill_iv}: data starts at "
                        f"{fmt_ms(int(run.open_time[0]))}, after the requested start "
                        f"{fmt_ms(start)}")
        if run.end_ms is not None and run.end_ms < end:
            gaps.append(f"{opts.market.value} {sym} {fill_iv}: data ends at "
                        f"{fmt_ms(run.end_ms)}, before the requested end {fmt_ms(end)}")
        pre = bars.slice_time(None, start)
        if len(pre) * fill_ms < hist:
            notes.append(f"{sym}: only {len(pre) * fill_ms // 60_000} min of history before "
                         f"the start (the strategy asks for {hist // 60_000}); it warms up "
                         "during the run")
        base = bars if fill_iv == base_iv else bars.resample(base_iv)
        funding: list[tuple[int, Decimal]] = []
        if opts.market is Market.FUTURES:
            funding = _load_funding(opts, cfg, sym, bars, notes)
        feeds[sym] = SymbolFeed(symbol=sym, market=opts.market, filters=specs[sym], fill=bars,
                                base=base, funding=funding)
    return feeds


def _load_bars(opts: BacktestOptions, sym: str, iv: str, h0: int, end: int, start: int,
               notes: list[str]) -> md.Bars:
    if opts.data_file is not None:
        if len(opts.symbols) != 1:
            raise BacktestError("a single kline file (--data FILE) replays one symbol only")
        try:
            bars = md.load_kline_csv(opts.data_file, sym, opts.market)
        except md.DataError as e:
            raise BacktestError(str(e)) from e
        if bars.interval != iv:
            if INTERVAL_MS[iv] % bars.interval_ms:
                raise BacktestError(f"{opts.data_file}: {bars.interval} bars cannot make "
                                    f"{iv} bars")
            bars = bars.resample(iv)
        return bars.slice_time(h0, end)
    try:
        return md.load_klines(sym, opts.market, iv, h0, end, data_dir=opts.data_dir)
    except md.DataError as first:
        # less history than wanted: start where the data covering the run begins
        lo = start
        try:
            for s0, e0 in md.coverage(sym, opts.market, iv, opts.data_dir):
                if s0 <= start and e0 >= end:
                    lo = max(h0, s0)
        except md.DataError:
            pass
        try:
            bars = md.load_klines(sym, opts.market, iv, lo, end, data_dir=opts.data_dir)
        except md.DataError as e:  # names the requested range itself, not range + history
            raise BacktestError(str(e)) from first
        notes.append(f"{sym}: {iv} history only from {fmt_ms(lo)} in the data")
        return bars


def _load_funding(opts: BacktestOptions, cfg: Config, sym: str, bars: md.Bars,
                  notes: list[str]) -> list[tuple[int, Decimal]]:
    """Funding like the embedded exchange: the data's, else the default rate every N hours."""
    lo, hi = int(bars.open_time[0]), int(bars.end_ms or 0)
    rows: list[tuple[int, Decimal]] = []
    if opts.data_file is None:
        try:
            rows = [(t, r) for t, r in md.load_funding(sym, data_dir=opts.data_dir)
                    if lo <= t <= hi]
        except md.DataError as e:
            notes.append(f"no funding data for {sym}: {e}")
    if rows:
        return rows
    every = cfg.sim.funding_interval_h * 3_600_000
    first = (lo // every + 1) * every
    notes.append(f"{sym}: no funding data in range; default rate {cfg.sim.funding_rate_default} "
                 f"every {cfg.sim.funding_interval_h} h")
    return [(t, cfg.sim.funding_rate_default) for t in range(first, hi + 1, every)]


def make_engines(cfg: Config, market: Market, symbols: tuple[str, ...],
                 balance: Decimal | None = None) -> dict[Market, Any]:
    """One engine for ``market`` with the embedded exchange's fees, fill model and balances."""
    from exchange_sim.engine import Engine, FeeSchedule, FillConfig
    from exchange_sim.specs import default_specs

    s = cfg.sim
    fill = FillConfig(fill_on_touch=s.fill_on_touch, max_volume_share=s.max_volume_share,
                      market_slippage_bps=s.market_slippage_bps)
    if market is Market.SPOT:
        fees = FeeSchedule(s.spot_maker_fee, s.spot_taker_fee, s.bnb_discount)
        bal = dict(s.spot_balances)
    else:
        fees = FeeSchedule(s.futures_maker_fee, s.futures_taker_fee, s.bnb_discount)
        bal = dict(s.futures_balances)
    if balance is not None:
        bal = {"USDT": balance}
    specs = default_specs(market)
    eng = Engine(market, specs={x: specs[x] for x in symbols}, fees=fees, fill=fill)
    eng.create_account("main", bal)
    return {market: eng}


# --------------------------------------------------------------------------------------------
# actors: the live classes, single-process
# --------------------------------------------------------------------------------------------
def _fast_store(state_dir: Path, name: str) -> Any:
    from infra.store import StateStore

    st = StateStore(state_dir / f"{name}.db")
    st.db.execute("PRAGMA synchronous=OFF")
    return st


def _backtest_class(cls: type, persist: bool = True, pending: list[Any] | None = None
                    ) -> type:
    """``cls`` with ``multiprocess = False``, a no-fsync state store and, with ``persist``
    False, no snapshot writes. With ``pending`` (the ``simpleSystemBase``'s queue of sends),
    ``tell_peer`` queues there directly: the same FIFO entry ``send`` makes, without the
    cross-thread lock and four call layers (a backtest has one thread)."""

    def open_store(self: Any, state_dir: Path) -> Any:
        return _fast_store(state_dir, self.symbol or "portfolio")

    def no_persist(self: Any, *args: Any, **kwargs: Any) -> list[int]:
        return []

    attrs: dict[str, Any] = {"multiprocess": False, "open_store": open_store,
                             "__module__": __name__}
    if pending is not None:
        from thespian.system.simpleSystemBase import PendingSend

        def tell_peer(self: Any, role: str, msg: Any) -> bool:
            addr = self.peers.get(role)
            if addr is None:
                return False
            me = self.__dict__.get("_bt_addr")
            if me is None:
                me = self._bt_addr = self.myAddress
            pending.append(PendingSend(me, msg, addr))
            return True

        attrs["tell_peer"] = tell_peer
    if not persist:
        attrs["persist"] = no_persist
        if hasattr(cls, "persist_with"):
            attrs["persist_with"] = no_persist
    return type(f"Backtest{cls.__name__}", (cls,), attrs)


def actor_classes(persist: bool = True, pending: list[Any] | None = None) -> dict[str, type]:
    """Role -> class: the live order/risk/strategy/portfolio actors, the backtest gateway."""
    from actors.order import OrderActor
    from actors.portfolio import PortfolioActor
    from actors.risk import RiskActor
    from actors.strategy import StrategyActor

    return {"gateway": _backtest_class(BacktestGatewayActor, persist, pending),
            "order": _backtest_class(OrderActor, persist, pending),
            "risk": _backtest_class(RiskActor, persist, pending),
            "strategy": _backtest_class(StrategyActor, persist, pending),
            "portfolio": _backtest_class(PortfolioActor, persist, pending)}


SYMBOL_ROLES = ("gateway", "order", "risk", "strategy")


class SimWakeups:
    """thespian ``wakeupAfter`` on the simulated clock (replaces the system's wall-clock timers).

    Due wakeups are delivered by the driver between bars, in due order (ties: request order)."""

    def __init__(self, system_base: Any, clk: aclock.SimClock) -> None:
        from thespian.actors import WakeupMessage
        from thespian.system.simpleSystemBase import PendingSend

        self._base = system_base
        self._clock = clk
        self._heap: list[tuple[int, int, Any, Any, float]] = []
        self._seq = 0
        self._wm = WakeupMessage
        self._ps = PendingSend
        system_base.wakeupAfter = self._add
        system_base._realizeWakeups = lambda: None

    def _add(self, from_actor: Any, time_period: Any, payload: Any) -> None:
        secs = time_period.total_seconds() if hasattr(time_period, "total_seconds") \
            else float(time_period)
        due = self._clock.ns + int(secs * 1e9)
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, from_actor, payload, secs))

    def next_due(self) -> int | None:
        """Sim ns of the next wakeup."""
        return self._heap[0][0] if self._heap else None

    def deliver_until(self, ns: int) -> int:
        """Deliver every wakeup due at or before ``ns`` (advancing the clock to each)."""
        n = 0
        while self._heap and self._heap[0][0] <= ns:
            due, _seq, addr, payload, secs = heapq.heappop(self._heap)
            self._clock.advance_to(due)
            with self._base._private_lock:
                self._base._pendingSends.append(
                    self._ps(addr, self._wm(timedelta(seconds=secs), payload), addr))
            self._base._runSends()
            n += 1
        return n


class FastDelivery:
    """Leaner delivery loop for ``simpleSystemBase`` (same order, same semantics).

    thespian's loop costs more per message than most handlers: a debug ``getLogger`` call, the
    wakeup scan, and ``ActorTypeDispatcher``'s walk of both class hierarchies with ``hasattr``
    per message. For gridbot messages (``models.messages.Message``) delivered the first time to
    an ``ActorTypeDispatcher`` actor, this calls the resolved ``receiveMsg_<Type>`` handler
    directly (resolution cached per actor class and message type, the dispatcher's rule: the
    first class of the message's MRO the actor has a handler for). A handler that raises is
    treated as thespian does (warning on the ``Thespian`` logger, ``attempts`` + 1, re-queued;
    the retry takes thespian's own path). Timer wakeups take the same path. Everything else
    (system messages, exits, retries) goes through thespian's ``_runSingleSend``."""

    def __init__(self, system_base: Any) -> None:
        from thespian.actors import ActorTypeDispatcher

        self._base = system_base
        self._orig_single = system_base._runSingleSend
        self._registry = system_base.actorRegistry
        self._dispatch_rm = ActorTypeDispatcher.receiveMessage
        self._handlers: dict[tuple[type, type], Any] = {}
        from thespian.actors import WakeupMessage

        #: delivered straight to the handler: gridbot messages and timer wakeups (the sim
        #: clock's, see SimWakeups; thespian gives them no special treatment either)
        self._fast = (m.Message, WakeupMessage)
        self.count = 0
        system_base._runSingleSend = self.run_single
        system_base._runSends = self.run_sends

    def _handler(self, acls: type, mcls: type) -> Any:
        key = (acls, mcls)
        fn = self._handlers.get(key)
        if fn is None:
            fn = False
            if getattr(acls, "receiveMessage", None) is self._dispatch_rm:
                for each in mcls.__mro__:
                    h = getattr(acls, "receiveMsg_" + each.__name__, None)
                    if h is not None:
                        fn = h
                        break
                else:
                    fn = getattr(acls, "receiveUnrecognizedMessage", False)
            self._handlers[key] = fn
        return fn

    def run_single(self, ps: Any) -> None:
        """Deliver one pending send."""
        self.count += 1
        msg = ps.msg
        if ps.attempts == 0 and isinstance(msg, self._fast):
            aa = ps.toActor._aaddr  # simpleSystemBase addresses are strings
            tgt = self._registry.get(aa if type(aa) is str else ps.toActor.actorAddressString)
            inst = tgt.instance if tgt is not None else None
            if inst is not None:
                fn = self._handlers.get((type(inst), type(msg)))
                if fn is None:
                    fn = self._handler(type(inst), type(msg))
                if fn:
                    try:
                        r = fn(inst, msg, ps.sender)
                    except Exception:  # noqa: BLE001 - thespian's retry semantics
                        import traceback

                        logging.getLogger("Thespian").warning(
                            "Failure of Actor %s during message processing (attempt %s)",
                            tgt.address, ps.attempts, exc_info=True)
                        ps.attempts += 1
                        ps.fail_details = traceback.format_exc()
                        self._base._pendingSends.append(ps)
                        return
                    if r != inst.SUPER:
                        return
                    raise RuntimeError(f"{type(inst).__name__}: SUPER from a handler of "
                                       f"{type(msg).__name__} is not supported in a backtest")
        self._orig_single(ps)

    def run_sends(self, timeout: Any = None, stop_on_available: Any = False) -> None:
        """Deliver until nothing is pending (``ask``: until the requester has an answer)."""
        from thespian.system import isInternalActorSystemMessage

        pend = self._base._pendingSends
        single = self._base._runSingleSend
        while pend:
            single(pend.pop(0))
            if stop_on_available and any(
                    not isInternalActorSystemMessage(r)
                    for r in getattr(stop_on_available.instance, "responses", ())):
                return


class _ThespianErrors(logging.Handler):
    """Collect thespian's 'Failure of Actor ...' warnings (an exception in an actor)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.errors.append(text)


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
class Progress:
    """One-line progress on stderr: bars done, sim date, bars/s, ETA."""

    def __init__(self, total: int, enabled: bool, stream: Any = None) -> None:
        self.total = max(1, total)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.last = 0.0

    def update(self, done: int, sim_ms: int, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self.last < 0.5:
            return
        self.last = now
        el = max(1e-9, now - self.t0)
        rate = done / el
        eta = (self.total - done) / rate if rate > 0 else 0.0
        frac = min(1.0, done / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write(
            f"\r[{bar:<30}] {done}/{self.total} bars  {fmt_ms(sim_ms)[:16]}  "
            f"{rate:,.0f} bars/s  ETA {int(eta) // 60}:{int(eta) % 60:02d} ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def _seed_strategy(state_dir: Path, cfg: Config, sym: str, weights: Any) -> None:
    """Write a strategy snapshot with fitted initial weights (restored by the live actor)."""
    from models.strategy import make_strategy
    from models.strategy.runner import RunnerState

    _iv, base_ms = base_interval(cfg)
    strat = make_strategy(cfg.strategy, sym, base_ms, initial_weights=weights)
    st = RunnerState(strategy=strat.snapshot(), leverage_cap=cfg.portfolio.leverage_cap)
    store = _fast_store(state_dir, sym)
    try:
        store.save_snapshot("strategy", 1, msgspec.msgpack.encode(st))
    finally:
        store.close()


def run_backtest(opts: BacktestOptions, on_step: Callable[[int], None] | None = None,
                 on_start: Callable[[], None] | None = None) -> BacktestResult:
    """Replay ``opts`` through the actors; write outputs to ``opts.out_dir`` (if set).
    ``on_start`` is called once the data has loaded, before the first bar."""
    if opts.end_ms <= opts.start_ms:
        raise BacktestError(f"empty range {fmt_ms(opts.start_ms)} .. {fmt_ms(opts.end_ms)}")
    gc_was = gc.isenabled()
    # the report is fed while the run logs (no re-read of gridbot.jsonl), and its chart
    # workers import matplotlib on the other core while the data loads and the replay runs
    collector, pool = _report_helpers(opts)
    try:
        return _run_backtest(opts, on_step, collector, pool, on_start)
    finally:
        if pool is not None:
            pool.close()
        if gc_was:
            gc.enable()


def _run_backtest(opts: BacktestOptions, on_step: Callable[[int], None] | None,
                  collector: Any, pool: Any,
                  on_start: Callable[[], None] | None = None) -> BacktestResult:
    from loguru import logger
    from thespian.actors import ActorSystem

    from infra.log_writer import LogWriterError
    from infra.logs import (
        JSON_FILE,
        DirectJsonLog,
        configure_logging,
        log_event,
        set_direct_log,
    )

    cfg = opts.config
    res = BacktestResult(out_dir=opts.out_dir, start=fmt_ms(opts.start_ms),
                         end=fmt_ms(opts.end_ms))
    feeds = load_feeds(opts, cfg, res.notes, res.gaps)
    engines = make_engines(cfg, opts.market, opts.symbols, opts.balance)
    if on_start is not None:
        on_start()
    out = opts.out_dir
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if opts.log_file:
            # a re-run into the same --out replaces the previous run's log (appending would mix
            # two runs' fills and fees in the report)
            (out / JSON_FILE).unlink(missing_ok=True)
    # logging: the run's JSON log plus an in-memory capture of the events we need
    # one file for the whole run (no rotation: the report reads it after the run)
    # (the JSON file and the capture are one DirectJsonLog: log_event lines below the stderr
    # level skip loguru, the rest reach it through loguru, in call order)
    stderr_level = "ERROR" if opts.progress else "WARNING"
    configure_logging(None, level=cfg.logging.level, stderr=True, stderr_level=stderr_level)
    jlog = DirectJsonLog(out / JSON_FILE if (out is not None and opts.log_file) else None,
                         level=cfg.logging.level, direct_below=stderr_level, keep=KEEP_EVENTS,
                         collector=collector, offload=opts.offload_log)
    log_error = ""
    cap_id = logger.add(jlog, level=jlog.sink_level, format="{message}")
    set_direct_log(jlog)
    thes_log = logging.getLogger("Thespian")
    thes_err = _ThespianErrors()
    thes_log.addHandler(thes_err)
    tmp = Path(tempfile.mkdtemp(prefix="gridbot-bt-",
                                dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    clk = aclock.SimClock(opts.start_ms * NS)
    aclock.set_clock(clk)
    venue = BacktestVenue(feeds, engines, opts.start_ms)
    vid = register_venue(venue)
    asys = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
    base = asys._systemBase
    wake = SimWakeups(base, clk)
    delivery = FastDelivery(base)
    t0 = time.perf_counter()
    try:
        for g in res.gaps:
            log_event("DATA_GAP", g, level="WARNING")
        for n in res.notes:
            log_event("BACKTEST_NOTE", n)
        if opts.initial_weights:
            for sym, w in opts.initial_weights.items():
                if sym in feeds:
                    _seed_strategy(tmp, cfg, sym, w)
        log_event("BACKTEST_STARTED", symbols=list(opts.symbols), market=opts.market.value,
                  start=fmt_ms(opts.start_ms), end=fmt_ms(opts.end_ms),
                  strategy=cfg.strategy.kind, base_interval=base_interval(cfg)[0],
                  fill_interval=next(iter(feeds.values())).fill.interval)
        addrs = _start_actors(asys, cfg, tmp, opts.symbols, vid, opts.persist)
        res.initial_equity = str(venue.equity())
        _drive(asys, venue, wake, clk, addrs, opts, res, cfg, on_step)
        res.final_equity = str(venue.equity())
        log_event("BACKTEST_FINISHED", bars=res.bars, messages=delivery.count,
                  final_equity=res.final_equity, wall_s=round(time.perf_counter() - t0, 3))
        for a in addrs.values():
            asys.tell(a, _exit_request())
    finally:
        res.wall_s = time.perf_counter() - t0
        res.messages = delivery.count
        res.orders, res.fills = venue.orders, venue.fills
        # the wrap-up builds tens of thousands of small, acyclic objects (the log writer's
        # events, the report's rows) on a heap of millions: the cyclic GC would walk that
        # heap again and again for nothing (~0.4 s of a 3-month run)
        gc.disable()  # run_backtest re-enables it
        try:
            asys.shutdown()
        finally:
            aclock.set_clock(None)
            unregister_venue(vid)
            thes_log.removeHandler(thes_err)
            logger.complete()
            set_direct_log(None)
            logger.remove(cap_id)
            try:
                jlog.close()
            except LogWriterError as e:
                log_error = str(e)
            shutil.rmtree(tmp, ignore_errors=True)
    _wrap_up(res, opts, out, feeds, jlog, thes_err, log_error, pool)
    return res


def _wrap_up(res: BacktestResult, opts: BacktestOptions, out: Path | None,
             feeds: dict[str, SymbolFeed], jlog: Any, thes_err: _ThespianErrors,
             log_error: str, pool: Any) -> None:
    """Errors, the kept events, the CSVs, summary and report of a finished run."""
    res.actor_errors = thes_err.errors[:50]
    if log_error:
        res.actor_errors.append(f"log writer: {log_error} (gridbot.jsonl is incomplete)")
    collector = jlog.collector
    ev = jlog.kept
    res.trades = [e for e in ev if e.get("event") == "TRADE_CLOSED"]
    res.equity = [e for e in ev if e.get("event") == "EQUITY"]
    res.fills_log = [e for e in ev if e.get("event") == "ORDER_FILLED"]
    if out is not None:
        write_trades_csv(out / "trades.csv", res.trades)
        write_equity_csv(out / "equity.csv", res.equity)
        (out / "summary.json").write_text(json.dumps(res.summary(), indent=2))
        if opts.report:
            res.report = _report(out, opts, res, feeds, collector, pool)


def _report_helpers(opts: BacktestOptions) -> tuple[Any, Any]:
    """(ReportCollector, ChartPool) for a run that writes a report (None where not needed or
    the report extra is missing)."""
    if opts.out_dir is None or not opts.report:
        return None, None
    try:
        from report.build import ReportCollector, have_matplotlib
    except ImportError:
        return None, None
    pool = None
    # only whether charts can be drawn: the pool's workers import matplotlib themselves, on
    # the other core (importing it here would cost the run ~0.15 s)
    if opts.charts and have_matplotlib():
        from report.charts import ChartPool

        pool = ChartPool()
    return ReportCollector(), pool


def _exit_request() -> Any:
    from thespian.actors import ActorExitRequest

    return ActorExitRequest()


def _start_actors(asys: Any, cfg: Config, state_dir: Path, symbols: tuple[str, ...],
                  venue_id: str, persist: bool = True) -> dict[str, Any]:
    """Create, start and wire every actor; returns ``{"<SYM>.<role>" | "portfolio": addr}``."""
    from actors.base import pack_address

    classes = actor_classes(persist, asys._systemBase._pendingSends)
    cj = config_to_json(cfg)
    addrs: dict[str, Any] = {}

    def start(key: str, role: str, sym: str) -> None:
        a = asys.createActor(classes[role])
        ans = asys.ask(a, m.StartActor(symbol=sym, actor_name=role, config_json=cj,
                                       state_dir=str(state_dir)), 30)
        if not isinstance(ans, m.ActorReady):
            raise RuntimeError(f"{key} did not start: {ans!r}")
        addrs[key] = a

    start("portfolio", "portfolio", "")
    for sym in symbols:
        for role in SYMBOL_ROLES:
            start(f"{sym}.{role}", role, sym)
        asys.tell(addrs[f"{sym}.gateway"], m.BacktestAttach(symbol=sym, venue_id=venue_id))
    pf = pack_address(addrs["portfolio"])
    for sym in symbols:
        peers = {role: pack_address(addrs[f"{sym}.{role}"]) for role in SYMBOL_ROLES}
        peers["portfolio"] = pf
        for role in SYMBOL_ROLES:
            asys.tell(addrs[f"{sym}.{role}"], m.Wire(symbol=sym, peers=peers))
    asys.tell(addrs["portfolio"], m.Wire(peers={
        k: pack_address(a) for k, a in addrs.items() if k != "portfolio"}))
    return addrs


def _drive(asys: Any, venue: BacktestVenue, wake: SimWakeups, clk: aclock.SimClock,
           addrs: dict[str, Any], opts: BacktestOptions, res: BacktestResult, cfg: Config,
           on_step: Callable[[int], None] | None) -> None:
    from infra.logs import log_event

    feeds = venue.feeds
    total = sum(bisect.bisect_right(f.fill_close, opts.end_ms)
                - bisect.bisect_right(f.fill_close, opts.start_ms) for f in feeds.values())
    prog = Progress(total, opts.progress)
    status_ms = int(cfg.supervision.status_interval_s * 1000)
    next_status = opts.start_ms + status_ms
    gws = {s: addrs[f"{s}.gateway"] for s in feeds}
    # STATUS lines read the risk cores directly (the figures a StatusRequested would answer):
    # one thread, between bars, nothing in flight
    reg = asys._systemBase.actorRegistry
    risks = {s: reg[addrs[f"{s}.risk"].actorAddressString].instance.core for s in feeds}
    done = 0
    while True:
        t = venue.next_time()
        if t is None or t > opts.end_ms:
            break
        wake.deliver_until(t * NS)
        clk.advance_to(t * NS)
        for sym in sorted(feeds):
            f = feeds[sym]
            if f.next_close_ms() == t:
                asys.tell(gws[sym], m.BacktestAdvance(symbol=sym, until_ms=t))
                done += 1
        pend = venue.pending_symbols()
        while pend:
            for sym in pend:
                asys.tell(gws[sym], m.BacktestDrain(symbol=sym))
            pend = venue.pending_symbols()
        if t >= next_status:
            next_status = t - t % status_ms + status_ms
            for sym in sorted(feeds):
                log_event("STATUS", symbol=sym, **risks[sym].status_line())
        prog.update(done, t)
        if on_step is not None:
            on_step(t)
    # flush timers due by the end (e.g. the portfolio's throttled EQUITY line)
    wake.deliver_until(opts.end_ms * NS)
    clk.advance_to(opts.end_ms * NS)
    res.bars = done
    prog.update(done, opts.end_ms, force=True)
    prog.close()


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------
def write_trades_csv(path: Path, trades: list[dict[str, Any]]) -> None:
    """trades.csv: one row per TRADE_CLOSED event, in close order."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_COLUMNS)
        for tr in trades:
            w.writerow([tr.get(c, "") for c in TRADE_COLUMNS])


def write_equity_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """equity.csv: one row per EQUITY event (``level`` = the drawdown level)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(EQUITY_COLUMNS)
        for r in rows:
            ts = r.get("ts_ms")
            w.writerow([ts, fmt_ms(int(ts)) if ts is not None else "", r.get("equity", ""),
                        r.get("peak_equity", ""), r.get("drawdown", ""), r.get("leverage", ""),
                        r.get("worst_case_leverage", ""), r.get("drawdown_level", ""),
                        r.get("state", "")])


def _benchmark(feeds: dict[str, SymbolFeed], start: int, end: int
               ) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for sym, f in feeds.items():
        b = f.base.slice_time(start, end)
        step = max(1, 3_600_000 // b.interval_ms)
        out[sym] = [(int(b.open_time[i]) + b.interval_ms, float(b.close[i]))
                    for i in range(0, len(b), step)]
    return out


def _report(out: Path, opts: BacktestOptions, res: BacktestResult,
            feeds: dict[str, SymbolFeed], collector: Any = None,
            pool: Any = None) -> dict[str, Any] | None:
    try:
        from report.build import build_report
    except ImportError as e:
        res.notes.append(f"report skipped: {e}")
        return None
    meta = {"initial_equity": res.initial_equity, "market": opts.market.value,
            "strategy": opts.config.strategy.kind,
            "weights": dict(opts.config.portfolio.weights),
            "start": fmt_ms(opts.start_ms), "end": fmt_ms(opts.end_ms),
            "source": "backtest"}
    log = out / "gridbot.jsonl"
    events: Any = collector
    if events is None:
        events = None if log.exists() else []
    try:
        return build_report(out, log if log.exists() else None, events=events,
                            benchmark_prices=_benchmark(feeds, opts.start_ms, opts.end_ms),
                            meta=meta, charts=opts.charts, pool=pool)
    except Exception as e:  # noqa: BLE001 - the run's CSVs and log are still valid
        res.notes.append(f"report failed: {type(e).__name__}: {e}")
        print(f"gridbot backtest: report failed: {e}", file=sys.stderr)
        return None


# --------------------------------------------------------------------------------------------
# walk-forward
# --------------------------------------------------------------------------------------------
def fit_weights(opts: BacktestOptions, train_start: int, train_end: int,
                notes: list[str]) -> dict[str, Any]:
    """Initial feature weights per symbol fitted on ``[train_start, train_end)`` base bars."""
    from models.strategy import fit_initial_weights

    cfg = opts.config
    if cfg.strategy.kind != "adaptive":
        notes.append(f"{cfg.strategy.kind}: no feature weights to fit")
        return {}
    base_iv, base_ms = base_interval(cfg)
    out: dict[str, Any] = {}
    for sym in opts.symbols:
        try:
            bars = _load_bars(opts, sym, base_iv, train_start, train_end, train_start, notes)
            bars = bars.slice_time(train_start, train_end)
            out[sym] = fit_initial_weights(bars, cfg.strategy, base_ms)
        except (BacktestError, md.DataError, ValueError) as e:
            notes.append(f"{sym}: weights not fitted on {fmt_ms(train_start)[:10]}.."
                         f"{fmt_ms(train_end)[:10]} ({e}); default weights")
    return out


def run_walk_forward(opts: BacktestOptions, spec: str) -> dict[str, Any]:
    """Fit initial weights on each train window, trade each test window (a fresh account per
    fold), report only the test windows: ``fold_NN/`` per fold, and at the top level
    trades.csv (all folds), equity.csv (fold curves compounded), walkforward.json and the
    report built from those."""
    from models.walkforward import WalkForwardError, chain_equity, parse_spec, windows

    try:
        train_days, test_days = parse_spec(spec)
        folds = windows(opts.start_ms, opts.end_ms, train_days, test_days)
    except WalkForwardError as e:
        raise BacktestError(str(e)) from e
    out = opts.out_dir or default_out_dir(opts.market, opts.start_ms, opts.end_ms)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    curves: list[list[tuple[int, float]]] = []
    events: list[dict[str, Any]] = []
    gaps: list[str] = []
    errors: list[str] = []
    initial = None
    for w in folds:
        notes: list[str] = []
        weights = fit_weights(opts, w.train_start, w.train_end, notes)
        fo = BacktestOptions(**{**opts.__dict__, "start_ms": w.test_start, "end_ms": w.test_end,
                                "out_dir": out / f"fold_{w.index:02d}",
                                "initial_weights": weights or None, "charts": False})
        res = run_backtest(fo)
        initial = initial if initial is not None else float(res.initial_equity or 0)
        rep = (res.report or {}).get("summary") if res.report else None
        rows.append({"fold": w.index, "train": [fmt_ms(w.train_start), fmt_ms(w.train_end)],
                     "test": [fmt_ms(w.test_start), fmt_ms(w.test_end)],
                     "weights": {s: getattr(x, "source", "") for s, x in weights.items()},
                     "initial_equity": res.initial_equity, "final_equity": res.final_equity,
                     "trades": len(res.trades), "fills": res.fills, "report": rep,
                     "notes": notes + res.notes})
        trades += [{**t, "fold": w.index} for t in res.trades]
        curves.append([(int(e["ts_ms"]), float(e["equity"])) for e in res.equity])
        events += [e for e in res.trades] + res.fills_log
        gaps += res.gaps
        errors += res.actor_errors
    chained = chain_equity(curves, initial or 0.0)
    peak = 0.0
    eq_rows: list[dict[str, Any]] = []
    for t, v in chained:
        peak = max(peak, v)
        eq_rows.append({"event": "EQUITY", "ts_ms": t, "equity": f"{v:.8f}",
                        "peak_equity": f"{peak:.8f}",
                        "drawdown": round(v / peak - 1.0, 6) if peak else 0.0,
                        "leverage": 0.0, "worst_case_leverage": 0.0, "drawdown_level": "",
                        "state": ""})
    write_trades_csv(out / "trades.csv", trades)
    write_equity_csv(out / "equity.csv", eq_rows)
    summary = {"start": fmt_ms(opts.start_ms), "end": fmt_ms(opts.end_ms),
               "walk_forward": {"train_days": train_days, "test_days": test_days},
               "folds": rows, "trades": len(trades), "initial_equity": initial,
               "final_equity": chained[-1][1] if chained else initial, "gaps": gaps,
               "actor_errors": errors, "out_dir": str(out)}
    (out / "walkforward.json").write_text(json.dumps(summary, indent=2, default=str))
    if opts.report:
        try:
            from report.build import build_report

            evs = sorted(events + eq_rows, key=lambda e: int(e.get("ts_ms") or 0))
            build_report(out, None, events=evs, meta={
                "initial_equity": initial, "market": opts.market.value,
                "strategy": opts.config.strategy.kind, "source": "walk-forward",
                "weights": dict(opts.config.portfolio.weights)}, charts=opts.charts)
        except Exception as e:  # noqa: BLE001 - the folds' outputs stay valid
            summary["report_error"] = f"{type(e).__name__}: {e}"
    return summary


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------
#: Default replay span of ``run.py backtest`` (both markets): the calendar year 2025, which the
#: recorded 5m spot and futures data cover for BTCUSDT, ETHUSDT and SOLUSDT alike (and the
#: strategy's in-sample period: 2026 is out-of-sample).
DEFAULT_FROM, DEFAULT_TO = "2025-01-01", "2026-01-01"
#: Where ``run.py backtest`` writes without ``--out``: a new directory per run under this one,
#: outside any checkout.
DEFAULT_OUT_ROOT = Path("~/gridbot-backtests")


def default_out_dir(market: Market, start_ms: int, end_ms: int, now: float | None = None
                    ) -> Path:
    """A new ``~/gridbot-backtests/<UTC now>-<market>-<from>-<to>`` (never an existing one)."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    span = f"{fmt_ms(start_ms)[:10]}-{fmt_ms(end_ms)[:10]}".replace("-", "")
    base = DEFAULT_OUT_ROOT.expanduser() / f"{stamp}-{market.value}-{span[:8]}-{span[8:]}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def _parse_day(s: str | None, what: str) -> int:
    try:
        return parse_time(str(s))
    except (md.DataError, ValueError) as e:
        raise BacktestError(f"--{what} {s!r}: {e}") from e


def options_from_args(args: argparse.Namespace) -> BacktestOptions:
    """``run.py backtest`` arguments -> options (raises ``BacktestError`` / ``ConfigError``)."""
    from infra.config_io import load_config

    cfg = load_config(args.config)
    raw = args.symbols
    symbols = tuple(s.strip().upper() for s in (raw.split(",") if isinstance(raw, str) else raw)
                    if s.strip())
    market = Market(args.market)
    check_symbols(symbols, market)
    cfg = backtest_config(cfg, symbols, market, args.strategy)
    start = _parse_day(args.start or DEFAULT_FROM, "from")
    end = _parse_day(args.end or DEFAULT_TO, "to")
    if end <= start:
        def arg(name: str, given: str | None, default: str) -> str:
            return f"--{name} {given}" if given else f"--{name} {default} (the default)"

        raise BacktestError(f"empty range: {arg('to', args.end, DEFAULT_TO)} is not after "
                            f"{arg('from', args.start, DEFAULT_FROM)}")
    data = getattr(args, "data", None)
    data_dir = data_file = None
    if data is not None:
        data = Path(data)
        if data.is_file():
            data_file = data
        elif data.is_dir():
            data_dir = data
        else:
            raise BacktestError(f"--data {data}: no such file or directory")
    out = Path(args.out) if args.out else default_out_dir(market, start, end)
    bal = getattr(args, "balance", None)
    try:
        balance = Decimal(str(bal)) if bal is not None else None
    except ArithmeticError:
        raise BacktestError(f"--balance {bal!r}: not a number") from None
    if balance is not None and not (balance.is_finite() and balance > 0):
        raise BacktestError(f"--balance {bal}: must be > 0")
    fill_iv = getattr(args, "fill_interval", None)
    if fill_iv is not None and fill_iv not in INTERVAL_MS:
        raise BacktestError(f"--fill-interval {fill_iv!r}: one of {', '.join(INTERVAL_MS)}")
    return BacktestOptions(config=cfg, symbols=symbols, market=market, start_ms=start,
                           end_ms=end, out_dir=out, data_dir=data_dir, data_file=data_file,
                           fill_interval=fill_iv, balance=balance,
                           persist=bool(getattr(args, "persist", False))
                           and not getattr(args, "no_persist", False), progress=True)


def backtest_command(args: argparse.Namespace) -> int:
    """``python run.py backtest ...``: 0 ok, 1 failure, 2 bad input. stderr: what is replayed
    (ISO dates) and where the outputs go, progress, data gaps; stdout: one JSON summary."""
    from infra.cli_args import CliError, make_output_dir
    from infra.config_io import config_error_lines
    from models.config import ConfigError

    def say(line: str) -> None:
        print(f"gridbot backtest: {line}", file=sys.stderr, flush=True)

    created: Path | None = None
    try:
        opts = options_from_args(args)
        assert opts.out_dir is not None
        created = None if opts.out_dir.exists() else opts.out_dir
        make_output_dir(opts.out_dir, "--out")
        default = "" if (args.start and args.end) else " (default span: --from/--to change it)"

        def announce() -> None:
            say(f"{opts.market.value} {','.join(opts.symbols)} from {fmt_ms(opts.start_ms)} "
                f"to {fmt_ms(opts.end_ms)} (exclusive){default}, "
                f"{opts.config.strategy.kind} strategy; outputs in {opts.out_dir}")

        wf = getattr(args, "walk_forward", None)
        if wf:
            announce()
            summary = run_walk_forward(opts, wf)
        else:
            res = run_backtest(opts, on_start=announce)
            summary = res.summary()
            if res.report is not None:
                summary["report"] = {k: res.report.get(k) for k in ("summary",)
                                     if k in res.report}
    except (ConfigError, BacktestError, md.DataError) as e:
        if created is not None and created.is_dir() and not any(created.iterdir()):
            created.rmdir()  # nothing ran: leave no empty output directory behind
        if isinstance(e, ConfigError):
            raise CliError(*config_error_lines(e, args.config)) from None
        raise CliError(str(e)) from None
    for g in summary.get("gaps", []):
        say(f"data gap: {g}")
    print(json.dumps(summary, default=str), flush=True)
    html = opts.out_dir / "report.html"
    say(f"outputs in {opts.out_dir}" + (f" (open {html})" if html.is_file() else ""))
    return EXIT_OK if not summary.get("actor_errors") else EXIT_FAIL
