"""gridbot command line: ``python run.py [SUBCOMMAND] ...`` (also installed as ``gridbot``).

Subcommands: run (default), status, stop, resume, sim, backtest, report, acceptance, config.
Exit codes: 0 ok, 1 runtime failure, 2 bad input (config, arguments), 3 not available yet.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT, EXIT_UNAVAILABLE = 0, 1, 2, 3
SUBCOMMANDS = ("run", "status", "stop", "resume", "sim", "backtest", "report", "acceptance",
               "config")


def _unavailable(name: str, issue: str) -> Callable[[argparse.Namespace], int]:
    def handler(args: argparse.Namespace) -> int:
        print(f"gridbot {name}: not available yet in this version (planned: {issue}). "
              "Nothing was started.", file=sys.stderr)
        return EXIT_UNAVAILABLE
    return handler


def _resolve(module: str, func: str, name: str, issue: str) -> Callable[[argparse.Namespace], int]:
    """Late-bound handler: ``module.func(args)`` if that code exists, else 'not available'."""
    def handler(args: argparse.Namespace) -> int:
        import importlib

        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name and (module == e.name or module.startswith(e.name + ".")):
                return _unavailable(name, issue)(args)
            raise
        fn = getattr(mod, func, None)
        if fn is None:
            return _unavailable(name, issue)(args)
        return int(fn(args) or 0)
    return handler


# -- config check -------------------------------------------------------------------------------
def cmd_config_check(args: argparse.Namespace) -> int:
    """``config check FILE``: print ``ok`` or every error with its JSON path; exit 2 on errors."""
    from models.config import ConfigError
    from supervision.config_io import load_config

    try:
        load_config(args.file)
    except ConfigError as e:
        for err in e.errors:
            print(err)
        return EXIT_BAD_INPUT
    print("ok")
    return EXIT_OK


def _add_bot_location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=Path, default=None,
                   help="state directory of the bot (default: the config's state_dir)")
    p.add_argument("--config", type=Path, default=None,
                   help="config file (default: conf/default.json)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="gridbot",
        description="Adaptive grid-trading bot for Binance Spot and USDT-M Futures. "
                    "With no subcommand, 'run' starts the bot on the embedded exchange.")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")

    p = sub.add_parser("run", help="run the bot (default: on the embedded exchange)",
                       description="Run the bot: supervision tree per symbol, portfolio actor.")
    _add_bot_location(p)
    p.add_argument("--log-dir", type=Path, default=None, help="log directory")
    p.add_argument("--duration", default=None,
                   help="stop after this much sim time, e.g. 6h, 90m, 2d")
    p.add_argument("--speed", default=None,
                   help="embedded exchange replay speed (sim seconds per second, or 'max')")
    p.add_argument("--sim-urls", type=Path, default=None,
                   help="trade on an already running embedded exchange (file written by "
                        "'sim --urls-file')")
    out = p.add_mutually_exclusive_group()
    out.add_argument("-v", "--verbose", action="count", default=0,
                     help="terminal: also orders placed/amended/canceled and per-symbol status "
                          "(-vv: every log record)")
    out.add_argument("-q", "--quiet", action="store_true",
                     help="terminal: only warnings, errors and the session summary")
    p.set_defaults(handler=_resolve("supervision.launcher", "run_bot", "run", "issue 5"))

    p = sub.add_parser("status", help="show the running bot's supervision tree and positions")
    _add_bot_location(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_resolve("supervision.status", "status_command", "status", "issue 5"))

    p = sub.add_parser("stop", help="graceful shutdown of the running bot")
    _add_bot_location(p)
    p.add_argument("--mode", choices=("flatten", "cancel-only", "leave"), default=None,
                   help="what to do with positions (default: config supervision.shutdown_mode)")
    p.set_defaults(handler=_resolve("supervision.status", "stop_command", "stop", "issue 5"))

    p = sub.add_parser("resume", help="resume trading after a drawdown halt")
    _add_bot_location(p)
    p.add_argument("--safe-mode", action="store_true",
                   help="re-admit only high-conviction entries")
    p.set_defaults(handler=_resolve("supervision.status", "resume_command", "resume", "issue 5"))

    p = sub.add_parser("sim", help="run the embedded Binance-compatible exchange standalone")
    try:
        from exchange_sim import cli as sim_cli

        sim_cli.add_arguments(p)
        p.set_defaults(handler=sim_cli.run_from_args)
    except (ImportError, AttributeError):
        p.set_defaults(handler=_unavailable("sim", "issue 3"))

    p = sub.add_parser("backtest", help="replay market data through the bot's actors")
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT,SOLUSDT")
    p.add_argument("--market", choices=("spot", "futures"), default="futures")
    p.add_argument("--from", dest="start", default=None, help="start date (UTC), e.g. 2025-01-01")
    p.add_argument("--to", dest="end", default=None, help="end date (UTC, exclusive)")
    p.add_argument("--data", type=Path, default=None, help="data directory or kline CSV")
    p.add_argument("--strategy", choices=("adaptive", "static_grid"), default=None)
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--walk-forward", default=None, metavar="TRAIN_DAYS:TEST_DAYS")
    p.add_argument("--out", type=Path, default=None, help="output directory")
    p.add_argument("--balance", default=None, help="initial USDT balance (default: config sim)")
    p.add_argument("--fill-interval", default=None,
                   help="engine bar interval (default: the strategy's base interval)")
    p.add_argument("--persist", action="store_true",
                   help="write actor snapshots as live does (about 4x slower)")
    p.add_argument("--no-persist", action="store_true",
                   help="skip actor snapshot writes (the default)")
    p.set_defaults(handler=_resolve("supervision.backtest", "backtest_command", "backtest",
                                    "issue 7"))

    p = sub.add_parser("report", help="build the performance report from a JSON log")
    p.add_argument("logfile", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(handler=_resolve("supervision.report", "report_command", "report", "issue 7"))

    p = sub.add_parser("acceptance", help="run the Milestone-1 acceptance checks on a venue")
    p.add_argument("--venue", choices=("sim", "testnet"), default="sim")
    p.add_argument("--config", type=Path, default=None)
    p.add_argument("--stable-seconds", type=float, default=None,
                   help="how long the streams must stay up (default 45 on sim, 3600 on testnet)")
    p.set_defaults(handler=_resolve("supervision.acceptance", "acceptance_command",
                                    "acceptance", "issue 4"))

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a config file: prints ok or every error")
    c.add_argument("file", type=Path)
    c.set_defaults(handler=cmd_config_check)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python run.py`` and the ``gridbot`` console script."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "run")
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as e:  # argparse: 2 on bad arguments, 0 on --help
        return int(e.code or 0)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
