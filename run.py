"""gridbot command line: ``python run.py [SUBCOMMAND] ...`` (also installed as ``gridbot``).

Subcommands: run (default), status, stop, resume, sim, backtest, report, acceptance, config.
Exit codes: 0 ok, 1 runtime failure, 2 bad input (config, arguments). Every error is one line
``gridbot CMD: what is wrong`` on stderr (a config with several errors: one line each).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from infra import cli_args as ca
from infra.cli_args import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, CliError
from infra.cli_parser import OneLineParser, stdout_is_closed, subparser_for
from infra.clock import install_message_sources

SUBCOMMANDS = ("run", "status", "stop", "resume", "sim", "backtest", "report", "acceptance",
               "config")


# -- handlers: each imports its subcommand's package when it runs (start-up time: ``gridbot
# status`` must not load thespian's actors, numpy or matplotlib), see tests/test_layout.py ------
def _run(args: argparse.Namespace) -> int:
    from supervision.launcher import run_command

    return run_command(args)


def _status(args: argparse.Namespace) -> int:
    from supervision.status import status_command

    return status_command(args)


def _stop(args: argparse.Namespace) -> int:
    from supervision.status import stop_command

    return stop_command(args)


def _resume(args: argparse.Namespace) -> int:
    from supervision.status import resume_command

    return resume_command(args)


def _sim(args: argparse.Namespace) -> int:
    from exchange_sim.cli import run_from_args

    return run_from_args(args)


def _backtest(args: argparse.Namespace) -> int:
    from backtest.cli import backtest_command

    return backtest_command(args)


def _optimize(args: argparse.Namespace) -> int:
    from backtest.optimize import optimize_command

    return optimize_command(args)


def _report(args: argparse.Namespace) -> int:
    from report.cli import report_command

    ca.check_output_dir(args.out, "--out")  # refuse a file before reading the log
    return report_command(args)


def _acceptance(args: argparse.Namespace) -> int:
    from acceptance.checks import acceptance_command

    return acceptance_command(args)


def _config_check(args: argparse.Namespace) -> int:
    from infra.config_io import config_check_command

    return config_check_command(args)


# -- the parser -----------------------------------------------------------------------------------
def _add_bot_location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=ca.path, default=None, metavar="DIR",
                   help="state directory of the bot (default: the config's state_dir)")
    p.add_argument("--config", type=ca.path, default=None, metavar="FILE",
                   help="config file (default: conf/default.json)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    from exchange_sim.cli_options import add_arguments as add_sim_arguments

    parser = OneLineParser(
        prog="gridbot",
        description="Adaptive grid-trading bot for Binance Spot and USDT-M Futures. "
                    "With no subcommand, 'run' starts the bot on the embedded exchange.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 bad input (config, arguments).")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")

    p = sub.add_parser("run", help="run the bot (default: on the embedded exchange)",
                       description="Run the bot: supervision tree per symbol, portfolio actor.")
    _add_bot_location(p)
    p.add_argument("--log-dir", type=ca.path, default=None, metavar="DIR",
                   help="log directory (default: the config's log_dir)")
    p.add_argument("--duration", type=ca.duration, default=None,
                   help="stop after this much sim time, e.g. 6h, 90m, 2d")
    p.add_argument("--speed", type=ca.speed, default=None,
                   help="embedded exchange replay speed: sim seconds per wall second (> 0; default: the "
                        "config's sim.speed)")
    p.add_argument("--sim-urls", type=ca.path, default=None, metavar="FILE",
                   help="trade on an already running embedded exchange (file written by "
                        "'sim --urls-file')")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-v", "--verbose", action="count", default=0,
                     help="terminal: also orders placed/amended/canceled and per-symbol status "
                          "(-vv: every log record)")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="terminal: only warnings, errors and the session summary")
    p.set_defaults(handler=_run)

    p = sub.add_parser("status", help="show the running bot's supervision tree and positions",
                       description="The running bot's supervision tree, positions, PnL and "
                                   "leverage. Exit 1 when no bot runs.")
    _add_bot_location(p)
    p.add_argument("--json", action="store_true",
                   help="machine-readable output (also when no bot runs: "
                        '{"running": false, ...})')
    p.set_defaults(handler=_status)

    p = sub.add_parser("stop", help="graceful shutdown of the running bot")
    _add_bot_location(p)
    p.add_argument("--mode", choices=("flatten", "cancel-only", "leave"), default=None,
                   help="what to do with positions (default: config supervision.shutdown_mode)")
    p.set_defaults(handler=_stop)

    p = sub.add_parser("resume", help="resume trading after a drawdown halt")
    _add_bot_location(p)
    p.add_argument("--safe-mode", action="store_true",
                   help="re-admit only high-conviction entries")
    p.set_defaults(handler=_resume)

    p = sub.add_parser("sim", help="run the embedded Binance-compatible exchange standalone")
    add_sim_arguments(p)
    p.set_defaults(handler=_sim)

    p = sub.add_parser(
        "backtest", help="replay market data through the bot's actors",
        description="Replay recorded market data through the live actors on a simulated "
                    "clock. Without --from/--to: 2025-01-01 .. 2026-01-01 on both markets.")
    p.add_argument("--symbols", type=ca.symbol_list, default=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                   metavar="SYM[,SYM...]",
                   help="comma-separated symbols (default: BTCUSDT,ETHUSDT,SOLUSDT)")
    p.add_argument("--market", choices=("spot", "futures"), default="futures",
                   help="market to replay (default: futures)")
    p.add_argument("--from", dest="start", type=ca.utc_time, default=None, metavar="DATE",
                   help="start (UTC date or ISO date-time; default 2025-01-01)")
    p.add_argument("--to", dest="end", type=ca.utc_time, default=None, metavar="DATE",
                   help="end, exclusive (default 2026-01-01)")
    p.add_argument("--data", type=ca.path, default=None, metavar="DIR|FILE",
                   help="data directory (layout of shared/data) or one kline CSV")
    p.add_argument("--strategy", choices=("adaptive", "static_grid"), default=None,
                   help="strategy (default: the config's strategy.kind)")
    p.add_argument("--config", type=ca.path, default=None, metavar="FILE",
                   help="config file (default: conf/default.json)")
    p.add_argument("--walk-forward", type=ca.walk_forward, default=None,
                   metavar="TRAIN_DAYS:TEST_DAYS",
                   help="fit on TRAIN days, trade the next TEST days, roll by TEST (e.g. 30:7)")
    p.add_argument("--out", type=ca.path, default=None, metavar="DIR",
                   help="output directory (default: a new directory under ~/gridbot-backtests; "
                        "the path is printed)")
    p.add_argument("--balance", type=ca.positive_decimal, default=None, metavar="USDT",
                   help="initial USDT balance (default: the config's sim balances)")
    p.add_argument("--fill-interval", type=ca.kline_interval, default=None, metavar="INTERVAL",
                   help="engine bar interval, e.g. 1m (default: the strategy's base interval)")
    p.add_argument("--strict", action="store_true",
                   help="refuse data with conflicting duplicate rows, out-of-order rows or "
                        "outlier bars in the span (default: warn, keep the first duplicate, "
                        "sort, keep outliers)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--persist", action="store_true",
                   help="write actor snapshots as live does (about 4x slower)")
    g.add_argument("--no-persist", action="store_true",
                   help="skip actor snapshot writes (the default)")
    p.set_defaults(handler=_backtest)

    p = sub.add_parser(
        "optimize", help="tune the strategy: an Optuna study scored on walk-forward test folds",
        description="Search the parameters in the search space (conf/search_space.json) with "
                    "Optuna, each trial scored on walk-forward test folds of pre-2026 data "
                    "through the research fast path. Resumable: re-run the same command.")
    p.add_argument("--study", required=True, metavar="NAME",
                   help="study name (resumed when --out already holds it)")
    p.add_argument("--out", type=ca.path, required=True, metavar="DIR",
                   help="directory for study.db, trials.csv, best_config.json, optimize.html")
    p.add_argument("--from", dest="start", type=ca.utc_time, default="2025-01-01",
                   metavar="DATE", help="start of the span (default 2025-01-01)")
    p.add_argument("--to", dest="end", type=ca.utc_time, default="2026-01-01", metavar="DATE",
                   help="end, exclusive (default 2026-01-01; no later without "
                        "--allow-out-of-sample)")
    p.add_argument("--symbols", type=ca.symbol_list, default=("BTCUSDT", "ETHUSDT", "SOLUSDT"),
                   metavar="SYM[,SYM...]", help="symbols (default BTCUSDT,ETHUSDT,SOLUSDT)")
    p.add_argument("--market", choices=("spot", "futures"), default="futures",
                   help="market (default futures)")
    p.add_argument("--walk-forward", type=ca.walk_forward, default="30:84",
                   metavar="TRAIN_DAYS:TEST_DAYS",
                   help="fit on TRAIN days, score on the next TEST days, roll by TEST "
                        "(default 30:84: four test folds in 2025)")
    p.add_argument("--trials", type=ca.positive_int, default=100, metavar="N",
                   help="trials in the study, resumed ones included (default 100)")
    p.add_argument("--jobs", type=ca.positive_int, default=None, metavar="N",
                   help="worker processes (default: one per core)")
    p.add_argument("--seed", type=int, default=1, help="sampler seed (default 1)")
    p.add_argument("--space", type=ca.path, default=None, metavar="FILE",
                   help="search space JSON (default conf/search_space.json)")
    p.add_argument("--config", type=ca.path, default=None, metavar="FILE",
                   help="base config (default conf/default.json)")
    p.add_argument("--objectives", default="score", metavar="LIST",
                   help="'score' (default; TPE), or e.g. return,max_drawdown (NSGA-II)")
    p.add_argument("--data", type=ca.path, default=None, metavar="DIR",
                   help="data directory (default ../shared/data)")
    p.add_argument("--allow-out-of-sample", action="store_true",
                   help="allow a span reaching 2026 (outputs marked OUT-OF-SAMPLE)")
    p.set_defaults(handler=_optimize)

    p = sub.add_parser("report", help="build the performance report from a JSON log")
    p.add_argument("logfile", type=ca.path, metavar="LOG",
                   help="gridbot.jsonl (or a directory holding gridbot*.jsonl)")
    p.add_argument("--out", type=ca.path, required=True, metavar="DIR",
                   help="directory for report.html, report.json and the charts")
    p.set_defaults(handler=_report)

    p = sub.add_parser("acceptance", help="run the Milestone-1 acceptance checks on a venue")
    p.add_argument("--venue", choices=("sim", "testnet"), default="sim",
                   help="where to run them (default: sim, the embedded exchange)")
    p.add_argument("--config", type=ca.path, default=None, metavar="FILE",
                   help="config file (default: conf/default.json)")
    p.add_argument("--stable-seconds", type=ca.positive_seconds, default=None, metavar="S",
                   help="how long the streams must stay up (default 45 on sim, 3600 on testnet)")
    p.set_defaults(handler=_acceptance)

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a config file: prints ok or every error")
    c.add_argument("file", type=ca.path, metavar="FILE", help="the config file to check")
    c.set_defaults(handler=_config_check)
    return parser


def _main(argv: Sequence[str] | None) -> int:
    tokens = list(sys.argv[1:] if argv is None else argv)
    if not tokens or (tokens[0].startswith("-") and tokens[0] not in ("-h", "--help")):
        tokens.insert(0, "run")
    parser = build_parser()
    sub = subparser_for(parser, tokens)
    if sub is not None:
        n = 2 if tokens[0] == "config" else 1
        tokens = tokens[:n] + sub.glue_dash_values(tokens[n:])
    try:
        args, extra = parser.parse_known_args(tokens)
        if extra:
            (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as e:  # argparse: 2 on bad arguments, 0 on --help
        return int(e.code or 0)
    cmd = " ".join(x for x in (args.command, getattr(args, "config_command", None)) if x)
    try:
        return int(args.handler(args))
    except CliError as e:
        for line in e.lines:
            print(f"gridbot {cmd}: {line}", file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python run.py`` and the ``gridbot`` console script."""
    install_message_sources()  # messages this process creates get unique ids (infra.clock)
    code = EXIT_OK
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        if not stdout_is_closed():
            raise  # a socket, not our reader: a real failure
        # the reader stopped early: exit quietly, and let the interpreter's final flush of
        # stdout go nowhere instead of printing "Exception ignored ... BrokenPipeError"
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    return code


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_OK", "SUBCOMMANDS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
