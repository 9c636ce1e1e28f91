"""``python run.py sim ...`` / ``python -m exchange_sim.cli ...``: run the sim standalone.

Prints exactly one JSON line with the URLs on stdout (human logs go to stderr), optionally
writes it to ``--urls-file`` atomically, and stops cleanly on Ctrl-C / SIGTERM. The options
are defined in ``exchange_sim.cli_options`` (argparse only: a front such as ``run.py`` can
offer them without importing the server).

By default it replays what the bot's default config (conf/default.json, or ``--config``)
trades: its symbols and markets, the strategy's base bar interval and enough history for its
warm-up, with that config's ``sim`` section; ``--sim-config`` and the options override it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import msgspec
from loguru import logger

from exchange_sim.cli_options import add_arguments
from exchange_sim.marketdata import DataError
from exchange_sim.server import SimServer
from infra.config_io import load_config
from infra.logs import log_event
from models.config import ConfigError, replay_for_bot
from models.simconfig import SimConfig

#: The readable line of ``python run.py sim`` on stderr: time, level and the message (the
#: event name and context go to the bot's JSON log when the sim runs inside the bot).
STDERR_FORMAT = ("<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> | <level>{level: <8}</level> | "
                 "<level>{message}</level>")


def bot_defaults(config: Path | None) -> dict:
    """SimConfig fields from a bot config: its ``sim`` section plus what the bot trades
    (``models.simconfig.replay_for_bot``). Raises ``ConfigError`` for a bad config file."""
    cfg = load_config(config)
    base = msgspec.to_builtins(cfg.sim)
    base.update(replay_for_bot(cfg))
    return base


def _from_file_name(path: Path) -> dict:
    """Symbol and interval of a kline CSV named like the data directory's
    (``BTCUSDT-5m-20241231-20260219.csv.gz``); empty when the name says nothing."""
    m = re.match(r"^(?P<sym>[A-Z0-9]+)-(?P<iv>\d+[smhdw])-", path.name)
    return {"symbols": [m["sym"]], "interval": m["iv"]} if m else {}


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """Build a ``SimConfig`` from the parsed options (and ``--sim-config``)."""
    base = bot_defaults(getattr(args, "config", None))
    data = getattr(args, "data", None)
    if data is not None and Path(data).is_file():
        # one CSV holds one symbol: replay that one (named in the file name, else --symbols)
        base.update(_from_file_name(Path(data)))
    if getattr(args, "sim_config", None):
        base.update(msgspec.json.decode(Path(args.sim_config).read_bytes()))
    if data is not None:
        if Path(data).is_file():
            base["data_file"] = str(data)
        else:
            base["data_dir"] = str(data)
    over = {
        "scenario": getattr(args, "scenario", None), "speed": getattr(args, "speed", None),
        "port": getattr(args, "port", None), "host": getattr(args, "host", None),
        "start": getattr(args, "start", None), "market": getattr(args, "market", None),
        "interval": getattr(args, "interval", None), "seed": getattr(args, "seed", None),
        "state_file": str(args.state) if getattr(args, "state", None) else None,
        "symbols": list(args.symbols) if getattr(args, "symbols", None) else None,
    }
    base.update({k: v for k, v in over.items() if v is not None})
    return msgspec.convert(base, SimConfig, strict=False)


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename."""
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


async def _serve(cfg: SimConfig, urls_file: Path | None) -> int:
    srv = SimServer(cfg)
    urls = await srv.start()
    line = urls.to_json()
    if urls_file is not None:
        write_atomic(urls_file, line + "\n")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    await stop.wait()
    log_event("SIM_STOPPING", "sim stopping")
    await srv.close()
    return 0


def run_from_args(args: argparse.Namespace) -> int:
    """Entry point for ``python run.py sim``; returns the exit code."""
    logger.remove()
    logger.add(sys.stderr, level="INFO", format=STDERR_FORMAT)
    try:
        cfg = config_from_args(args)
    except ConfigError as e:
        print(f"gridbot sim: {str(e).splitlines()[0]} {'; '.join(e.errors)}", file=sys.stderr)
        return 2
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, OSError) as e:
        print(f"gridbot sim: bad configuration: {e}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(cfg, getattr(args, "urls_file", None)))
    except (ValueError, DataError) as e:  # what to replay does not exist: bad input
        print(f"gridbot sim: cannot start: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # e.g. the port is taken
        print(f"gridbot sim: cannot start: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m exchange_sim.cli``."""
    p = argparse.ArgumentParser(prog="exchange_sim", description=__doc__)
    add_arguments(p)
    return run_from_args(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
