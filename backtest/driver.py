"""Backtest driver: replay market data through the live strategy, risk, portfolio and order
actors, in one process, against the in-process venue of ``backtest.venue`` (the embedded
exchange's matching engine).

Only the gateway, the clock and the actor runtime differ from a live run:

* the gateway role is ``BacktestGatewayActor`` (no I/O);
* ``infra.clock.SimClock`` is installed and advanced to each bar's close; the actors' timers
  (``wakeupAfter``: the portfolio's throttled EQUITY flush, risk timeouts) are scheduled on
  that clock, so they fire at the same sim time in every run;
* the actors run on ``backtest.runtime.InProcessSystem`` (thespian's public actor API, one
  FIFO queue, ``simpleSystemBase``'s delivery semantics) instead of ``multiprocTCPBase``.

The actors are wired as the supervisors (``supervision.symbol_supervisor``) wire them
(``StartActor`` with the config JSON and a temporary state directory, then ``Wire`` with
pickled addresses; portfolio peers keyed ``"<SYMBOL>.<role>"``), without the supervisors
(their heartbeats are wall-clock timers). A ``tell`` delivers every message it causes before
it returns, which is the quiescence barrier: all consequences of bar *t* are processed before
bar *t+1* is released, and an order placed after bar *t*'s close can only fill on bar *t+1*'s
path.

State stores live in a temporary directory with ``synchronous=OFF`` (a crash loses nothing of
value in a backtest); everything else about persistence is the live code path.

``run_backtest(BacktestOptions) -> BacktestResult`` is the API (``backtest.cli`` is
``python run.py backtest``). See docs/BACKTEST.md.
"""

from __future__ import annotations

import bisect
import gc
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from loguru import logger
from tqdm import tqdm

from actors.base import pack_address
from actors.order import OrderActor
from actors.portfolio import PortfolioActor
from actors.risk import RiskActor
from actors.strategy import StrategyActor
from backtest.feeds import load_feeds, make_engines
from backtest.gateway import BacktestGatewayActor
from backtest.options import (
    KEEP_EVENTS,
    NS,
    BacktestError,
    BacktestOptions,
    BacktestResult,
)
from backtest.outputs import write_report
from backtest.runtime import InProcessSystem, LocalAddress
from backtest.venue import (
    BacktestVenue,
    SymbolFeed,
    register_venue,
    unregister_venue,
)
from infra import clock as aclock
from infra.log_writer import LogWriterError
from infra.logs import (
    JSON_FILE,
    DirectJsonLog,
    configure_logging,
    log_event,
    log_wanted,
    set_direct_log,
)
from infra.store import StateStore
from models import messages as m
from models.config import Config, base_interval, config_to_json
from models.strategy import make_strategy
from models.strategy.runner import RunnerState
from models.timeframes import fmt_ms
from report.build import ReportCollector, write_equity_csv, write_trades_csv
from report.charts import ChartPool

SYMBOL_ROLES = ("gateway", "order", "risk", "strategy")


# --------------------------------------------------------------------------------------------
# actors: the live classes, single-process
# --------------------------------------------------------------------------------------------
def _fast_store(state_dir: Path, name: str) -> StateStore:
    st = StateStore(state_dir / f"{name}.db")
    st.db.execute("PRAGMA synchronous=OFF")
    return st


def _backtest_class(cls: type, persist: bool = True) -> type:
    """``cls`` with ``multiprocess = False``, a no-fsync state store and, with ``persist``
    False, no snapshot writes."""

    def open_store(self: Any, state_dir: Path) -> StateStore:
        return _fast_store(state_dir, self.symbol or "portfolio")

    def no_persist(self: Any, *args: Any, **kwargs: Any) -> list[int]:
        return []

    attrs: dict[str, Any] = {"multiprocess": False, "open_store": open_store,
                             "__module__": __name__}
    if not persist:
        attrs["persist"] = no_persist
        if hasattr(cls, "persist_with"):
            attrs["persist_with"] = no_persist
    return type(f"Backtest{cls.__name__}", (cls,), attrs)


def actor_classes(persist: bool = True) -> dict[str, type]:
    """Role -> class: the live order/risk/strategy/portfolio actors, the backtest gateway."""
    return {"gateway": _backtest_class(BacktestGatewayActor, persist),
            "order": _backtest_class(OrderActor, persist),
            "risk": _backtest_class(RiskActor, persist),
            "strategy": _backtest_class(StrategyActor, persist),
            "portfolio": _backtest_class(PortfolioActor, persist)}


class _ActorErrors(logging.Handler):
    """Collect the runtime's 'Failure of Actor ...' warnings (an exception in an actor)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.errors: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {type(record.exc_info[1]).__name__}: {record.exc_info[1]}"
        self.errors.append(text)


class Progress:
    """Progress on stderr: a tqdm bar on a terminal; elsewhere (a log file, CI) a plain line
    at every tenth of the run: share done, sim date, bars/s, ETA."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = max(1, total)
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.bar = tqdm(total=self.total, unit="bar", unit_scale=True, mininterval=0.5,
                        smoothing=0.1, leave=True, disable=not self.tty)
        self.done = 0
        self.t0 = time.perf_counter()
        self.next_tenth = 1

    def update(self, done: int, sim_ms: int, force: bool = False) -> None:
        if not self.enabled:
            return
        if self.tty:
            if done > self.done:
                self.bar.update(done - self.done)
            if force or done % 2048 < 4:
                self.bar.set_postfix_str(fmt_ms(sim_ms)[:16], refresh=force)
        elif done * 10 >= self.next_tenth * self.total or (force and done > self.done):
            self.next_tenth = done * 10 // self.total + 1
            el = max(1e-9, time.perf_counter() - self.t0)
            rate = done / el
            eta = (self.total - done) / rate if rate > 0 else 0.0
            print(f"gridbot backtest: {100 * done // self.total:3d}% {fmt_ms(sim_ms)[:16]}  "
                  f"{rate:,.0f} bars/s  ETA {int(eta) // 60}:{int(eta) % 60:02d}",
                  file=sys.stderr, flush=True)
        self.done = done

    def close(self) -> None:
        self.bar.close()


def _seed_strategy(state_dir: Path, cfg: Config, sym: str, weights: Any) -> None:
    """Write a strategy snapshot with fitted initial weights (restored by the live actor)."""
    _iv, base_ms = base_interval(cfg)
    strat = make_strategy(cfg.strategy, sym, base_ms, initial_weights=weights)
    st = RunnerState(strategy=strat.snapshot(), leverage_cap=cfg.portfolio.leverage_cap)
    store = _fast_store(state_dir, sym)
    try:
        store.save_snapshot("strategy", 1, msgspec.msgpack.encode(st))
    finally:
        store.close()


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------
def run_backtest(opts: BacktestOptions, on_step: Callable[[int], None] | None = None,
                 on_start: Callable[[], None] | None = None) -> BacktestResult:
    """Replay ``opts`` through the actors; write outputs to ``opts.out_dir`` (if set).
    ``on_start`` is called once the data has loaded, before the first bar."""
    if opts.end_ms <= opts.start_ms:
        raise BacktestError(f"empty range {fmt_ms(opts.start_ms)} .. {fmt_ms(opts.end_ms)}")
    gc_was = gc.isenabled()
    # the report is fed while the run logs (no re-read of gridbot.jsonl), and its chart
    # workers import matplotlib on the other core while the data loads and the replay runs
    writes_report = opts.out_dir is not None and opts.report
    collector = ReportCollector() if writes_report else None
    pool = ChartPool() if writes_report and opts.charts else None
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
    cfg = opts.config
    res = BacktestResult(out_dir=opts.out_dir, start=fmt_ms(opts.start_ms),
                         end=fmt_ms(opts.end_ms))
    feeds = load_feeds(opts, cfg, res.notes, res.gaps, res.data_issues)
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
    # logging: the run's JSON log plus an in-memory capture of the events we need, in one
    # DirectJsonLog (log_event lines below the stderr level skip loguru, the rest reach it
    # through loguru, in call order); one file for the whole run, no rotation
    stderr_level = "ERROR"  # warnings are in the JSON log; a person needs to see errors only
    configure_logging(None, level=cfg.logging.level, stderr=True, stderr_level=stderr_level)
    jlog = DirectJsonLog(out / JSON_FILE if (out is not None and opts.log_file) else None,
                         level=cfg.logging.level, direct_below=stderr_level, keep=KEEP_EVENTS,
                         collector=collector, offload=opts.offload_log)
    log_error = ""
    cap_id = logger.add(jlog, level=jlog.sink_level, format="{message}")
    set_direct_log(jlog)
    thes_log = logging.getLogger("Thespian")
    errs = _ActorErrors()
    thes_log.addHandler(errs)
    tmp = Path(tempfile.mkdtemp(prefix="gridbot-bt-",
                                dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    clk = aclock.SimClock(opts.start_ms * NS)
    aclock.set_clock(clk)
    venue = BacktestVenue(feeds, engines, opts.start_ms)
    vid = register_venue(venue)
    system = InProcessSystem(clk)
    t0 = time.perf_counter()
    try:
        for g in res.gaps:
            log_event("DATA_GAP", g, level="WARNING")
        for d in res.data_issues:
            log_event("DATA_ISSUE", d, level="WARNING")
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
        addrs = _start_actors(system, cfg, tmp, opts.symbols, vid, opts.persist)
        res.initial_equity = str(venue.equity())
        _drive(system, venue, addrs, opts, res, cfg, on_step)
        res.final_equity = str(venue.equity())
        log_event("BACKTEST_FINISHED", bars=res.bars, messages=system.count,
                  final_equity=res.final_equity, wall_s=round(time.perf_counter() - t0, 3))
    finally:
        res.wall_s = time.perf_counter() - t0
        res.messages = system.count
        res.orders, res.fills = venue.orders, venue.fills
        # the wrap-up builds tens of thousands of small, acyclic objects (the log writer's
        # events, the report's rows) on a heap of millions: the cyclic GC would walk that
        # heap again and again for nothing (~0.4 s of a 3-month run)
        gc.disable()  # run_backtest re-enables it
        try:
            system.shutdown()  # every actor persists and closes its store
        finally:
            aclock.set_clock(None)
            unregister_venue(vid)
            thes_log.removeHandler(errs)
            logger.complete()
            set_direct_log(None)
            logger.remove(cap_id)
            try:
                jlog.close()
            except LogWriterError as e:
                log_error = str(e)
            shutil.rmtree(tmp, ignore_errors=True)
    _wrap_up(res, opts, out, feeds, jlog, errs, log_error, pool)
    return res


def _wrap_up(res: BacktestResult, opts: BacktestOptions, out: Path | None,
             feeds: dict[str, SymbolFeed], jlog: Any, errs: _ActorErrors,
             log_error: str, pool: Any) -> None:
    """Errors, the kept events, the CSVs, summary and report of a finished run."""
    res.actor_errors = errs.errors[:50]
    if log_error:
        res.actor_errors.append(f"log writer: {log_error} (gridbot.jsonl is incomplete)")
    ev = jlog.kept
    res.trades = [e for e in ev if e.get("event") == "TRADE_CLOSED"]
    res.equity = [e for e in ev if e.get("event") == "EQUITY"]
    res.fills_log = [e for e in ev if e.get("event") == "ORDER_FILLED"]
    if out is not None:
        write_trades_csv(out / "trades.csv", res.trades)
        write_equity_csv(out / "equity.csv", res.equity)
        (out / "summary.json").write_text(json.dumps(res.summary(), indent=2))
        if opts.report:
            res.report = write_report(out, opts, res, feeds, jlog.collector, pool)


def _start_actors(system: InProcessSystem, cfg: Config, state_dir: Path,
                  symbols: tuple[str, ...], venue_id: str, persist: bool = True
                  ) -> dict[str, LocalAddress]:
    """Create, start and wire every actor; returns ``{"<SYM>.<role>" | "portfolio": addr}``."""
    classes = actor_classes(persist)
    cj = config_to_json(cfg)
    addrs: dict[str, LocalAddress] = {}

    def start(key: str, role: str, sym: str) -> None:
        a = system.create(classes[role], key)
        ans = system.ask(a, m.StartActor(symbol=sym, actor_name=role, config_json=cj,
                                         state_dir=str(state_dir)))
        if not isinstance(ans, m.ActorReady):
            raise RuntimeError(f"{key} did not start: {ans!r}")
        addrs[key] = a

    start("portfolio", "portfolio", "")
    for sym in symbols:
        for role in SYMBOL_ROLES:
            start(f"{sym}.{role}", role, sym)
        system.tell(addrs[f"{sym}.gateway"], m.BacktestAttach(symbol=sym, venue_id=venue_id))
    pf = pack_address(addrs["portfolio"])
    for sym in symbols:
        peers = {role: pack_address(addrs[f"{sym}.{role}"]) for role in SYMBOL_ROLES}
        peers["portfolio"] = pf
        for role in SYMBOL_ROLES:
            system.tell(addrs[f"{sym}.{role}"], m.Wire(symbol=sym, peers=peers))
    system.tell(addrs["portfolio"], m.Wire(peers={
        k: pack_address(a) for k, a in addrs.items() if k != "portfolio"}))
    return addrs


def _drive(system: InProcessSystem, venue: BacktestVenue, addrs: dict[str, LocalAddress],
           opts: BacktestOptions, res: BacktestResult, cfg: Config,
           on_step: Callable[[int], None] | None) -> None:
    feeds = venue.feeds
    clk = system.clock
    total = sum(bisect.bisect_right(f.fill_close, opts.end_ms)
                - bisect.bisect_right(f.fill_close, opts.start_ms) for f in feeds.values())
    prog = Progress(total, opts.progress)
    status_ms = int(cfg.supervision.status_interval_s * 1000)
    next_status = opts.start_ms + status_ms
    gws = {s: addrs[f"{s}.gateway"] for s in feeds}
    # STATUS lines read the risk cores directly (the figures a StatusRequested would answer):
    # one thread, between bars, nothing in flight
    risks = {s: system.instance(addrs[f"{s}.risk"]).core for s in feeds}
    want_status = log_wanted("STATUS")  # nothing to build in a research run
    done = 0
    try:
        while True:
            t = venue.next_time()
            if t is None or t > opts.end_ms:
                break
            system.deliver_wakeups_until(t * NS)
            clk.advance_to(t * NS)
            for sym in sorted(feeds):
                f = feeds[sym]
                if f.next_close_ms() == t:
                    system.tell(gws[sym], m.BacktestAdvance(symbol=sym, until_ms=t))
                    done += 1
            pend = venue.pending_symbols()
            while pend:
                for sym in pend:
                    system.tell(gws[sym], m.BacktestDrain(symbol=sym))
                pend = venue.pending_symbols()
            if t >= next_status:
                next_status = t - t % status_ms + status_ms
                for sym in sorted(feeds) if want_status else ():
                    log_event("STATUS", symbol=sym, **risks[sym].status_line())
            prog.update(done, t)
            if on_step is not None:
                on_step(t)
        # flush timers due by the end (e.g. the portfolio's throttled EQUITY line)
        system.deliver_wakeups_until(opts.end_ms * NS)
        clk.advance_to(opts.end_ms * NS)
        res.bars = done
        prog.update(done, opts.end_ms, force=True)
    finally:
        prog.close()
