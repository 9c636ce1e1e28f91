"""Test helpers: a real multiprocTCPBase supervision tree of dummy actors, cleaned up fully."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dummy_actors

from models.config import Config, PortfolioConfig
from models.enums import Market
from models.messages import StatusReported, StatusRequested
from supervision import launcher, netsec

FAST = {"heartbeat_interval_s": 0.2, "heartbeat_timeout_s": 1.0, "restart_backoff_s": 0.05,
        "max_restarts": 3, "restart_window_s": 30.0, "start_timeout_s": 8.0,
        "shutdown_timeout_s": 4.0, "status_interval_s": 3600.0}


def actor_pids(actors: dict[str, dict]) -> dict[str, int]:
    """Pid per actor name of a tree's status rows."""
    return {name: a["pid"] for name, a in actors.items()}


def make_config(symbols: tuple[str, ...]) -> Config:
    w = {s: 1.0 / len(symbols) for s in symbols}
    if len(symbols) == 3:
        w = {symbols[0]: 0.5, symbols[1]: 0.3, symbols[2]: 0.2}
    return Config(portfolio=PortfolioConfig(symbols=symbols, weights=w,
                                            markets={s: Market.FUTURES for s in symbols}))


@dataclass
class Tree:
    asys: Any
    root: Any
    root_pid: int
    sid: int
    state_dir: Path
    log_dir: Path

    def status(self, timeout: float = 6.0) -> dict[str, Any]:
        reply = self.asys.ask(self.root, StatusRequested(), timeout)
        assert isinstance(reply, StatusReported), reply
        return reply.data

    def actors(self, symbol: str) -> dict[str, dict[str, Any]]:
        tree = self.status()["symbols"][symbol]["tree"]
        return {a["name"]: a for a in tree.get("actors", [])}

    def marker(self, name: str) -> Path:
        return self.state_dir / "ctl" / name

    def wait_for(self, pred: Callable[[], Any], timeout: float = 20.0,
                 what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = pred()
            if last:
                return last
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def log_events(self, event: str) -> list[dict[str, Any]]:
        path = self.log_dir / "gridbot.jsonl"
        if not path.exists():
            return []
        out = []
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == event:
                out.append(rec)
        return out


@contextlib.contextmanager
def running_tree(tmp: Path, symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
                 markers: tuple[str, ...] = (), **overrides: Any) -> Iterator[Tree]:
    """Start root + portfolio + one dummy tree per symbol; always shut down every process."""
    state_dir, log_dir = tmp / "state", tmp / "logs"
    (state_dir / "ctl").mkdir(parents=True, exist_ok=True)
    for m in markers:
        (state_dir / "ctl" / m).touch()
    cfg = make_config(symbols)
    settings = {**FAST, **overrides}
    start = launcher.build_start_message(cfg, state_dir, classes=dict(dummy_actors.CLASSES),
                                         **settings)
    asys = launcher.start_actor_system(netsec.free_port(), log_dir)
    sid = None
    try:
        root, root_pid = launcher.start_tree(asys, start, 30.0)
        sid = launcher.session_of(root_pid)
        assert sid is not None
        yield Tree(asys, root, root_pid, sid, state_dir, log_dir)
    finally:
        leftovers = launcher.shutdown_actor_system(asys, sid)
        # every actor process exits on the actor system's shutdown; one that had to be
        # SIGKILLed (it is, so nothing leaks) is a bug of the tree's shutdown
        assert not leftovers, f"actor processes still alive after shutdown: {leftovers}"
