"""``python run.py backtest``: arguments -> ``BacktestOptions``, the run, what it prints."""

from __future__ import annotations

import argparse
import json
import sys
import time
from decimal import Decimal
from pathlib import Path

from backtest.driver import run_backtest
from backtest.feeds import check_symbols
from backtest.options import BacktestError, BacktestOptions, backtest_config
from backtest.walkforward import run_walk_forward
from exchange_sim import marketdata as md
from infra.cli_args import CliError, make_output_dir
from infra.config_io import config_error_lines, load_config
from models.config import ConfigError
from models.enums import Market
from models.timeframes import INTERVAL_MS, fmt_ms, parse_time

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
                           strict=bool(getattr(args, "strict", False)),
                           persist=bool(getattr(args, "persist", False))
                           and not getattr(args, "no_persist", False), progress=True)


def backtest_command(args: argparse.Namespace) -> int:
    """``python run.py backtest ...``: 0 ok, 1 failure, 2 bad input. stderr: what is replayed
    (ISO dates) and where the outputs go, progress, data gaps; stdout: one JSON summary."""

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
    for d in summary.get("data_issues", []):
        say(f"data issue: {d}")
    print(json.dumps(summary, default=str), flush=True)
    html = opts.out_dir / "report.html"
    say(f"outputs in {opts.out_dir}" + (f" (open {html})" if html.is_file() else ""))
    return 0 if not summary.get("actor_errors") else 1
