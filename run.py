"""gridbot command line: ``python run.py [SUBCOMMAND] ...`` (also installed as ``gridbot``).

Subcommands: run (default), status, stop, resume, sim, backtest, report, acceptance, config.
Exit codes: 0 ok, 1 runtime failure, 2 bad input (config, arguments). Every error is one line
``gridbot CMD: what is wrong`` on stderr (a config with several errors: one line each).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import select
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from infra import cli_args as ca
from infra.cli_args import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, CliError

SUBCOMMANDS = ("run", "status", "stop", "resume", "sim", "backtest", "report", "acceptance",
               "config")
_ARGUMENT_RE = re.compile(r"^argument (?P<opt>[^:]+): (?P<msg>.*)$", re.S)
_TYPE_RE = re.compile(r"^invalid (?P<type>\S+) value: (?P<value>'.*')$")
_CHOICE_RE = re.compile(r"^invalid choice: (?P<value>'.*') \(choose from (?P<choices>.*)\)$")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``gridbot CMD: --opt: message``, exit 2) instead of the
    usage block plus an error line; ``--help`` is unchanged."""

    def error(self, message: str) -> NoReturn:
        message = " ".join(message.split())
        m = _ARGUMENT_RE.match(message)
        if m:
            opt, msg = m.group("opt"), m.group("msg")
            c = _CHOICE_RE.match(msg)
            if c and not opt.startswith("-"):  # SUBCOMMAND / ACTION
                noun = {"SUBCOMMAND": "command", "ACTION": "config action"}.get(opt, opt)
                message = (f"{c.group('value')} is not a {noun} (choose from "
                           f"{c.group('choices').replace(chr(39), '')})")
            elif c:
                message = (f"{opt} {c.group('value')}: invalid choice (choose from "
                           f"{c.group('choices').replace(chr(39), '')})")
            elif t := _TYPE_RE.match(msg):  # a type= function raised ValueError/TypeError
                kind = {"int": "a whole number", "float": "a number"}.get(
                    t.group("type"), f"a valid {t.group('type').strip('_')}")
                message = f"{opt} {t.group('value')}: expected {kind}"
            else:  # the validators' messages start with the quoted value
                message = f"{opt} {msg}" if msg.startswith("'") else f"{opt}: {msg}"
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: {message} (see {self.prog} --help)\n")

    def value_options(self) -> dict[str, argparse.Action]:
        """Option strings that take exactly one value."""
        return {o: a for a in self._actions
                if isinstance(a, argparse._StoreAction) and a.nargs is None
                for o in a.option_strings}

    def glue_dash_values(self, tokens: list[str]) -> list[str]:
        """``--duration -1h`` -> ``--duration=-1h``: argparse would read ``-1h`` as an unknown
        option and say 'expected one argument'; glued, the validator names the value."""
        opts = self.value_options()
        known = {o for a in self._actions for o in a.option_strings}
        out: list[str] = []
        i = 0
        while i < len(tokens):
            t = tokens[i]
            nxt = tokens[i + 1] if i + 1 < len(tokens) else None
            if (t in opts and nxt is not None and nxt.startswith("-") and nxt != "--"
                    and nxt.split("=", 1)[0] not in known):
                out.append(f"{t}={nxt}")
                i += 2
                continue
            out.append(t)
            i += 1
        return out


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    """Handler ``module.func(args)``, imported only when that subcommand runs (an ImportError
    is a bug and surfaces as one)."""
    def handler(args: argparse.Namespace) -> int:
        return int(getattr(importlib.import_module(module), func)(args) or 0)
    return handler


# -- handlers that only exist here --------------------------------------------------------------
def cmd_config_check(args: argparse.Namespace) -> int:
    """``config check FILE``: print ``ok`` or every error with its JSON path; exit 2 on errors."""
    from infra.config_io import ConfigFileError, load_config
    from models.config import ConfigError

    try:
        load_config(args.file)
    except ConfigFileError as e:
        raise CliError(*e.errors) from None
    except ConfigError as e:
        for err in e.errors:
            print(err)
        return EXIT_BAD_INPUT
    print("ok")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    """``run``: check the files named on the command line, then ``launcher.run_bot``."""
    for opt, p in (("--state-dir", args.state_dir), ("--log-dir", args.log_dir)):
        if p is not None:
            ca.check_output_dir(p, opt)
    if args.sim_urls is not None:
        ca.check_input_file(args.sim_urls, "--sim-urls")
        try:
            urls = json.loads(args.sim_urls.read_bytes())
        except ValueError:
            urls = None
        if not isinstance(urls, dict):
            raise CliError(f"--sim-urls {args.sim_urls}: not the JSON object 'sim --urls-file' "
                           "writes")
    return _lazy("supervision.launcher", "run_bot")(args)


def cmd_report(args: argparse.Namespace) -> int:
    """``report``: refuse an ``--out`` that is a file before reading the log."""
    ca.check_output_dir(args.out, "--out")
    return _lazy("report.build", "report_command")(args)


# -- the parser -----------------------------------------------------------------------------------
def _add_bot_location(p: argparse.ArgumentParser) -> None:
    p.add_argument("--state-dir", type=ca.path, default=None, metavar="DIR",
                   help="state directory of the bot (default: the config's state_dir)")
    p.add_argument("--config", type=ca.path, default=None, metavar="FILE",
                   help="config file (default: conf/default.json)")


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of every subcommand."""
    from exchange_sim import cli as sim_cli

    parser = _Parser(
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
    p.set_defaults(handler=cmd_run)

    p = sub.add_parser("status", help="show the running bot's supervision tree and positions",
                       description="The running bot's supervision tree, positions, PnL and "
                                   "leverage. Exit 1 when no bot runs.")
    _add_bot_location(p)
    p.add_argument("--json", action="store_true",
                   help="machine-readable output (also when no bot runs: "
                        '{"running": false, ...})')
    p.set_defaults(handler=_lazy("supervision.status", "status_command"))

    p = sub.add_parser("stop", help="graceful shutdown of the running bot")
    _add_bot_location(p)
    p.add_argument("--mode", choices=("flatten", "cancel-only", "leave"), default=None,
                   help="what to do with positions (default: config supervision.shutdown_mode)")
    p.set_defaults(handler=_lazy("supervision.status", "stop_command"))

    p = sub.add_parser("resume", help="resume trading after a drawdown halt")
    _add_bot_location(p)
    p.add_argument("--safe-mode", action="store_true",
                   help="re-admit only high-conviction entries")
    p.set_defaults(handler=_lazy("supervision.status", "resume_command"))

    p = sub.add_parser("sim", help="run the embedded Binance-compatible exchange standalone")
    sim_cli.add_arguments(p)
    p.set_defaults(handler=sim_cli.run_from_args)

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
    g = p.add_mutually_exclusive_group()
    g.add_argument("--persist", action="store_true",
                   help="write actor snapshots as live does (about 4x slower)")
    g.add_argument("--no-persist", action="store_true",
                   help="skip actor snapshot writes (the default)")
    p.set_defaults(handler=_lazy("backtest.cli", "backtest_command"))

    p = sub.add_parser("report", help="build the performance report from a JSON log")
    p.add_argument("logfile", type=ca.path, metavar="LOG",
                   help="gridbot.jsonl (or a directory holding gridbot*.jsonl)")
    p.add_argument("--out", type=ca.path, required=True, metavar="DIR",
                   help="directory for report.html, report.json and the charts")
    p.set_defaults(handler=cmd_report)

    p = sub.add_parser("acceptance", help="run the Milestone-1 acceptance checks on a venue")
    p.add_argument("--venue", choices=("sim", "testnet"), default="sim",
                   help="where to run them (default: sim, the embedded exchange)")
    p.add_argument("--config", type=ca.path, default=None, metavar="FILE",
                   help="config file (default: conf/default.json)")
    p.add_argument("--stable-seconds", type=ca.positive_seconds, default=None, metavar="S",
                   help="how long the streams must stay up (default 45 on sim, 3600 on testnet)")
    p.set_defaults(handler=_lazy("acceptance.checks", "acceptance_command"))

    p = sub.add_parser("config", help="configuration tools")
    csub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a config file: prints ok or every error")
    c.add_argument("file", type=ca.path, metavar="FILE", help="the config file to check")
    c.set_defaults(handler=cmd_config_check)
    return parser


def _subparser(parser: argparse.ArgumentParser, tokens: list[str]) -> _Parser | None:
    """The (sub)parser that parses ``tokens[...]`` after the command words."""
    current: argparse.ArgumentParser = parser
    for t in tokens[:2]:
        spa = next((a for a in current._actions if isinstance(a, argparse._SubParsersAction)),
                   None)
        if spa is None or t not in spa.choices:
            break
        current = spa.choices[t]
    return current if isinstance(current, _Parser) and current is not parser else None


def _stdout_is_closed() -> bool:
    """True when stdout is a pipe whose reader has gone (``gridbot status | head -1``)."""
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ is not None else 1
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        return any(ev & select.POLLERR for _, ev in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def _main(argv: Sequence[str] | None) -> int:
    tokens = list(sys.argv[1:] if argv is None else argv)
    if not tokens or (tokens[0].startswith("-") and tokens[0] not in ("-h", "--help")):
        tokens.insert(0, "run")
    parser = build_parser()
    sub = _subparser(parser, tokens)
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
    code = EXIT_OK
    try:
        code = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        if not _stdout_is_closed():
            raise  # a socket, not our reader: a real failure
        # the reader stopped early: exit quietly, and let the interpreter's final flush of
        # stdout go nowhere instead of printing "Exception ignored ... BrokenPipeError"
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ is not None else 1)
    return code


__all__ = ["EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_OK", "SUBCOMMANDS", "build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
