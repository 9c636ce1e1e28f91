"""The embedded exchange as the default venue of ``python run.py``.

``start_for_bot`` (the launcher's venue hook) starts a ``SimServer`` in a daemon thread of the
launcher process, configured from the bot's config: the portfolio's symbols and markets, the
strategy's base bar interval, enough history before the replay start for the strategy's
warm-up, the replay speed (``--speed``, default 60 sim seconds per wall second) and a state
file in the bot's state directory, so a restarted bot finds the exchange where it left it
(accounts, orders, positions, sim clock). Its URLs and (non-secret, sim-only) API key go to
``<state_dir>/sim_urls.json``, where the gateways read them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from exchange_sim.replay import iso
from exchange_sim.server import SimServer
from infra.logs import log_event
from models.config import Config, replay_for_bot
from models.enums import Venue
from models.simconfig import SimConfig

SIM_URLS_FILE = "sim_urls.json"
SIM_STATE_FILE = "exchange_sim.json"


def sim_config_for_bot(cfg: Config, args: argparse.Namespace | None,
                       state_dir: Path) -> SimConfig:
    """The ``SimConfig`` the bot's embedded exchange runs with (see module doc): what the bot
    trades (``models.simconfig.replay_for_bot``), its ``sim`` section, the replay speed and a
    state file in the bot's state directory."""
    speed: Any = cfg.sim.speed
    arg_speed = getattr(args, "speed", None) if args is not None else None
    if arg_speed is not None:
        speed = float(arg_speed)
    over: dict[str, Any] = {
        **replay_for_bot(cfg), "speed": speed,
        "state_file": cfg.sim.state_file or str(state_dir / SIM_STATE_FILE),
        "state_save_interval_s": min(cfg.sim.state_save_interval_s, 5.0),
    }
    base = msgspec.to_builtins(cfg.sim)
    base.update(over)
    return msgspec.convert(base, SimConfig, strict=False)


def start_for_bot(cfg: Config, args: argparse.Namespace | None,
                  state_dir: Path) -> Callable[[], None] | None:
    """Start the embedded exchange for a ``venue: sim`` bot; return its stop function."""
    if cfg.venue is not Venue.SIM:
        return None
    scfg = sim_config_for_bot(cfg, args, state_dir)
    srv = SimServer(scfg)
    urls = srv.start_in_thread()
    path = state_dir / SIM_URLS_FILE
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(urls.to_json() + "\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)
    info = json.loads(urls.to_json())
    first, last = srv.replay_span()
    log_event("SIM_STARTED", f"embedded exchange on {info['rest'].rsplit('/', 1)[0]}: "
              f"{srv.describe()}",
              symbols=list(scfg.symbols), market=scfg.market, interval=scfg.interval,
              speed=scfg.speed, state_file=scfg.state_file, admin=info["admin"],
              sim_time=iso(srv.now_ms()), replay_first_bar=iso(first),
              replay_last_bar=iso(last), notes=list(srv.notes))

    return _EmbeddedVenue(srv, path)


class _EmbeddedVenue:
    """The launcher's handle on the embedded exchange: call it to stop the exchange;
    ``sim_time_at`` gives the replay's sim time (the terminal shows it next to wall time)."""

    def __init__(self, srv: SimServer, urls_path: Path) -> None:
        self._srv = srv
        self._urls_path = urls_path
        self._started = time.time()

    def __call__(self) -> None:
        self._srv.stop()
        self._urls_path.unlink(missing_ok=True)
        log_event("SIM_STOPPED", "embedded exchange stopped (state saved)")

    def sim_now_ms(self) -> int:
        """The replay's current sim time (ms)."""
        return int(self._srv.clock.now_ms())

    def sim_time_at(self, epoch_s: float) -> int:
        """Sim time (ms) at the recent wall time ``epoch_s`` (the current sim time when the
        replay is paused or runs at speed "max")."""
        clock = self._srv.clock
        now = clock.now_ms()
        if not clock.running:
            return now
        ago = time.time() - max(epoch_s, self._started)  # nothing before the replay began
        return int(now - max(0.0, ago) * float(clock.speed) * 1000.0)
