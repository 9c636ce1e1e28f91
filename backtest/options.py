"""What a backtest replays and what it produced: ``BacktestOptions``, ``BacktestResult``, the
config restricted to the replayed symbols, and the output columns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from models.config import Config, base_interval
from models.enums import Market

NS = 1_000_000
DAY_MS = 86_400_000
#: events kept in memory for trades.csv / equity.csv / the result (the rest is only logged)
KEEP_EVENTS = frozenset({"TRADE_CLOSED", "EQUITY", "ORDER_FILLED"})


class BacktestError(Exception):
    """Bad input (data, range, configuration): the message says what and where."""


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
    #: data issues (conflicting duplicates, out-of-order rows, outlier bars) in the replayed
    #: span are an error instead of a warning
    strict: bool = False


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
    #: what data validation found in the replayed span (``exchange_sim.dataquality``)
    data_issues: list[str] = field(default_factory=list)
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
            "gaps": self.gaps, "data_issues": self.data_issues, "notes": self.notes,
            "actor_errors": self.actor_errors,
            "out_dir": str(self.out_dir) if self.out_dir else None,
        }


def research_options(opts: BacktestOptions) -> BacktestOptions:
    """``opts`` as the research fast path runs it (the optimiser, walk-forward trials): the same
    actors and cores on the in-process runtime, with nothing written — no output directory,
    report, charts, JSON log or snapshots, logging in this process. Decisions, fills and
    equity are those of the full run (``backtest.parity``, tests/backtest/test_parity.py)."""
    return dataclasses.replace(opts, out_dir=None, report=False, charts=False, log_file=False,
                               persist=False, progress=False, offload_log=False)


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
