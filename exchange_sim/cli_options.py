"""The options of ``python run.py sim`` / ``python -m exchange_sim.cli``.

Only argparse here, so a command-line front (``run.py``) can offer the sim's options without
importing the server, the engines and the market data; ``exchange_sim.cli`` runs the command.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def _speed(s: str) -> float | str:
    """``--speed``: sim seconds per wall second (finite, >= 0; 0 = paused) or ``max``."""
    if s == "max":
        return "max"
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{s!r}: not a number: give sim seconds per wall "
                                         "second (0 = paused) or 'max'") from None
    if not math.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"{s!r}: must be a finite number >= 0 (0 = paused) "
                                         "or 'max'")
    return v


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sim options to ``parser``."""
    g = parser.add_mutually_exclusive_group()
    g.add_argument("--data", type=Path, default=None,
                   help="kline data directory (layout of shared/data) or one kline CSV(.gz)")
    g.add_argument("--scenario", default=None,
                   help="replay a synthetic scenario instead (gbm, pump5, crash12, chop, ...)")
    parser.add_argument("--symbols", nargs="+", default=None, help="e.g. BTCUSDT ETHUSDT")
    parser.add_argument("--speed", type=_speed, default=None,
                        help="sim seconds per wall second; 0 = paused; 'max' (default: the config's "
                             "sim.speed, 60)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (0 = any free one)")
    parser.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    parser.add_argument("--urls-file", type=Path, default=None,
                        help="also write the URLs JSON to this file (atomically)")
    parser.add_argument("--state", type=Path, default=None,
                        help="persist accounts/orders/clock here and restore from it")
    parser.add_argument("--start", default=None, help="sim start (ISO date/time or epoch ms)")
    parser.add_argument("--market", choices=("spot", "futures", "both"), default=None,
                        help="markets to serve (default: the config's markets)")
    parser.add_argument("--interval", default=None, help="replay bar interval (default 5m)")
    parser.add_argument("--seed", type=int, default=None, help="synthetic data seed")
    parser.add_argument("--config", type=Path, default=None,
                        help="bot config whose symbols, markets, bar interval and sim section "
                             "to serve (default: conf/default.json)")
    parser.add_argument("--sim-config", type=Path, default=None,
                        help="JSON file with SimConfig fields (command-line options win)")
