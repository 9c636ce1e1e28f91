"""The replayed data of a backtest: fill bars, base bars and funding per symbol (gaps reported,
never filled), and the matching engine with the embedded exchange's fees and fill model."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from backtest.options import BacktestError, BacktestOptions, history_need_ms
from backtest.venue import SymbolFeed
from exchange_sim import dataquality as dq
from exchange_sim import marketdata as md
from exchange_sim.engine import Engine, FeeSchedule, FillConfig
from exchange_sim.specs import default_specs
from models.config import Config, base_interval
from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms


def check_symbols(symbols: tuple[str, ...], market: Market) -> None:
    """Every symbol must have the embedded exchange's filters on ``market``."""
    specs = default_specs(market)
    for sym in symbols:
        if sym not in specs:
            raise BacktestError(f"{sym}: no {market.value} symbol filters on the embedded "
                                f"exchange (known: {', '.join(sorted(specs))})")


def load_feeds(opts: BacktestOptions, cfg: Config, notes: list[str], gaps: list[str],
               issues: list[str] | None = None) -> dict[str, SymbolFeed]:
    """Fill bars, base bars and funding per symbol; gaps are reported, never filled; what data
    validation found in the replayed span goes to ``issues`` (an error with ``strict``)."""
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
    h0 = start - hist - (start - hist) % base_ms
    feeds: dict[str, SymbolFeed] = {}
    for sym in opts.symbols:
        bars = load_bars(opts, sym, fill_iv, h0, end, start, notes, issues)
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


def load_bars(opts: BacktestOptions, sym: str, iv: str, h0: int, end: int, start: int,
              notes: list[str], issues: list[str] | None = None) -> md.Bars:
    """``iv`` bars of ``sym`` from ``h0`` (history) to ``end``, from ``--data`` or the data
    directory; less history than asked is noted, not an error. Data issues in the span
    (``exchange_sim.dataquality``) go to ``issues``; with ``opts.strict`` they are an error."""
    found: list[md.DataIssue] = []
    bars = _load_bars(opts, sym, iv, h0, end, start, notes, found)
    lo = int(bars.open_time[0]) if len(bars) else h0
    found = dq.in_range(found, lo, end)
    if found and opts.strict:
        listed = "; ".join(str(x) for x in found[:10])
        more = f" (+{len(found) - 10} more)" if len(found) > 10 else ""
        raise BacktestError(f"{sym}: {len(found)} data issue(s) in the replayed span "
                            f"(--strict): {listed}{more}")
    if issues is not None:
        issues += [str(x) for x in found if str(x) not in issues]
    return bars


def _load_bars(opts: BacktestOptions, sym: str, iv: str, h0: int, end: int, start: int,
               notes: list[str], found: list[md.DataIssue]) -> md.Bars:
    if opts.data_file is not None:
        if len(opts.symbols) != 1:
            raise BacktestError("a single kline file (--data FILE) replays one symbol only")
        try:
            bars = md.load_kline_csv(opts.data_file, sym, opts.market)
            found += md.file_issues(opts.data_file)
        except md.DataError as e:
            raise BacktestError(str(e)) from e
        if bars.interval != iv:
            if INTERVAL_MS[iv] % bars.interval_ms:
                raise BacktestError(f"{opts.data_file}: {bars.interval} bars cannot make "
                                    f"{iv} bars")
            bars = bars.resample(iv)
        return bars.slice_time(h0, end)
    try:
        return md.load_klines(sym, opts.market, iv, h0, end, data_dir=opts.data_dir,
                              issues=found)
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
            bars = md.load_klines(sym, opts.market, iv, lo, end, data_dir=opts.data_dir,
                                  issues=found)
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
