"""What the embedded exchange replays: bars and funding events for its markets and symbols.

From a kline CSV (``data_file``), a data directory (``data_dir``, else
``marketdata.default_data_dir()``) or a synthetic scenario (``scenario``, or ``gbm`` when there
is no data directory at all); funding from the data directory, else ``funding_rate_default``
every ``funding_interval_h`` hours. The replay starts at ``start``, else at the first common bar
+ ``warmup_bars``. ``notes`` say, for people, where the data came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from exchange_sim import marketdata as md
from exchange_sim import synthetic
from exchange_sim.replay import INTERVALS_MS, Feed, FundingEvent, Replay, iso
from models.enums import Market
from models.filters import SymbolFilters
from models.simconfig import SimConfig
from models.timeframes import parse_time


@dataclass
class ReplayData:
    """The feeds (by (market, symbol)), the replay over them, its start time and notes."""

    feeds: dict[tuple[str, str], Feed]
    replay: Replay
    start_ms: int
    notes: list[str] = field(default_factory=list)


def load_replay(cfg: SimConfig, markets: tuple[str, ...] | list[str],
                specs: dict[str, dict[str, SymbolFilters]],
                bars: dict[tuple[str, str], Any] | None = None,
                funding: dict[str, list[tuple[int, Decimal]]] | None = None) -> ReplayData:
    """Build feeds and funding events (``bars`` / ``funding``: given instead of loaded)."""
    notes: list[str] = []
    feeds: dict[tuple[str, str], Feed] = {}
    iv_ms = INTERVALS_MS.get(cfg.interval)
    if iv_ms is None:
        raise ValueError(f"unknown interval {cfg.interval!r}")
    loaded: dict[tuple[str, str], Any] = dict(bars or {})
    if not bars:
        loaded = _load_bars(cfg, markets, notes)
    for (m, sym), b in loaded.items():
        if m not in markets or sym not in cfg.symbols:
            continue
        feeds[(m, sym)] = Feed.from_bars(b, specs[m][sym], m)
    missing = [(m, s) for m in markets for s in cfg.symbols if (m, s) not in feeds]
    if missing:
        raise ValueError(f"no bars for {missing}")
    firsts = [int(f.open_time[0]) for f in feeds.values() if len(f)]
    ends = {f"{m} {s}": int(f.open_time[-1]) for (m, s), f in feeds.items() if len(f)}
    if len(set(ends.values())) > 1:
        notes.append("last bar by symbol: " + ", ".join(
            f"{k} {iso(t)}" for k, t in sorted(ends.items(), key=lambda kv: kv[1])))
    base_iv = max(f.interval_ms for f in feeds.values())
    if cfg.start is not None:
        start = int(cfg.start) if cfg.start.isdigit() else parse_time(cfg.start)
        end = max((int(f.open_time[-1]) + f.interval_ms for f in feeds.values()
                   if len(f)), default=None)
        if end is not None and start >= end:
            raise ValueError(f"start {iso(start)} is after the last bar (the data ends at "
                             f"{iso(end)}): nothing would be replayed")
    else:
        start = max(firsts) + cfg.warmup_bars * base_iv
    fund: list[FundingEvent] = []
    if "futures" in markets:
        for sym in cfg.symbols:
            rows = (funding or {}).get(sym)
            if rows is None:
                rows = _load_funding(cfg, sym, feeds[("futures", sym)], notes)
            fund += [FundingEvent(int(t), sym, Decimal(r)) for t, r in rows]
    return ReplayData(feeds, Replay(list(feeds.values()), fund), start, notes)


def _load_bars(cfg: SimConfig, markets: tuple[str, ...] | list[str],
               notes: list[str]) -> dict[tuple[str, str], Any]:
    out: dict[tuple[str, str], Any] = {}
    if cfg.data_file:
        for m in markets:
            for sym in cfg.symbols:
                out[(m, sym)] = md.load_kline_csv(Path(cfg.data_file), sym, m, cfg.interval)
        notes.append(f"replaying {cfg.data_file}")
        notes += [f"data issue: {x}" for x in md.file_issues(Path(cfg.data_file))]
        return out
    data_dir = Path(cfg.data_dir) if cfg.data_dir else md.default_data_dir()
    if cfg.scenario or data_dir is None:
        scen = cfg.scenario or "gbm"
        if data_dir is None and not cfg.scenario:
            notes.append("no market data directory found: replaying synthetic "
                         f"'{scen}' bars (seed {cfg.seed})")
        start = (parse_time(cfg.start) if cfg.start and not cfg.start.isdigit()
                 else int(cfg.start) if cfg.start else 1_704_067_200_000)
        iv = INTERVALS_MS[cfg.interval]
        first = start - cfg.warmup_bars * iv
        for m in markets:
            for k, sym in enumerate(cfg.symbols):
                out[(m, sym)] = synthetic.generate(
                    sym, scen, start_ms=first, n_bars=cfg.synthetic_bars + cfg.warmup_bars,
                    interval=cfg.interval, seed=cfg.seed + k, market=Market(m))
        return out
    for m in markets:
        for sym in cfg.symbols:
            found: list[md.DataIssue] = []
            out[(m, sym)] = md.load_klines(sym, m, cfg.interval, data_dir=data_dir,
                                           issues=found)
            notes += [f"data issue: {x}" for x in found]
    notes.append(f"replaying {cfg.interval} klines from {data_dir}")
    return out


def _load_funding(cfg: SimConfig, sym: str, f: Feed, notes: list[str]
                  ) -> list[tuple[int, Decimal]]:
    """Funding of ``sym`` from the data directory, else the default rate every N hours, over
    the span of its futures feed ``f``."""
    rows: list[tuple[int, Decimal]] = []
    if not cfg.scenario and not cfg.data_file:
        d = Path(cfg.data_dir) if cfg.data_dir else md.default_data_dir()
        if d is not None:
            try:
                rows = md.load_funding(sym, data_dir=d)
            except Exception as e:  # noqa: BLE001 - funding is optional data
                notes.append(f"no funding data for {sym}: {e}")
    if not len(f):
        return rows
    lo, hi = int(f.open_time[0]), int(f.open_time[-1]) + f.interval_ms
    rows = [(t, r) for t, r in rows if lo <= t <= hi]
    if rows:
        return rows
    every = cfg.funding_interval_h * 3_600_000
    first = (lo // every + 1) * every
    return [(t, cfg.funding_rate_default) for t in range(first, hi + 1, every)]
