"""Small GridActor subclasses for supervision tests, steered by marker files in
``<state_dir>/ctl/`` (read by the actor processes, so a test can change behaviour at run time):

* ``<symbol>.<role>.crash_on_start``: the process exits (``os._exit``) during every start;
* ``<symbol>.<role>.hang``: the next Heartbeat hangs the actor (the marker is consumed first);
* the gateway writes ``<symbol>.wind_down`` (the reason) when it receives ``WindDownSymbol``
  and answers ``SymbolWoundDown`` (a position of 1 closed) unless ``<symbol>.wind_down.noack``
  exists;
* every actor writes ``<symbol>.<role>.stop.<mode>`` when it receives ``StopTrading``; the order
  actor answers ``TradingStopped`` unless ``<symbol>.order.noack.<mode>`` exists.

Each actor counts its starts in its snapshot (``starts``), so a restart that restored the
snapshot shows ``starts`` = previous + 1.
"""

from __future__ import annotations

import json
import os
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from thespian.actors import ActorAddress

from actors.base import GridActor
from models.enums import TradingState
from models.messages import (
    Heartbeat,
    ResumeTrading,
    StopTrading,
    SymbolWoundDown,
    TradingStateChanged,
    TradingStopped,
    WindDownSymbol,
)


class _Dummy(GridActor):
    role = "dummy"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.starts = 0
        self.ctl = Path(".")

    def _marker(self, name: str) -> Path:
        return self.ctl / f"{self.symbol or 'portfolio'}.{self.actor_name}.{name}"

    def snapshot(self) -> bytes:
        return json.dumps({"starts": self.starts}).encode()

    def restore(self, blob: bytes | None) -> None:
        if blob:
            self.starts = int(json.loads(blob)["starts"])

    def on_start(self) -> None:
        self.ctl = self.state_dir_path / "ctl"
        if self.wind_down_only:
            return
        if self._marker("crash_on_start").exists():
            os._exit(3)
        self.starts += 1
        self.persist()

    def receiveMsg_Heartbeat(self, msg: Heartbeat, sender: ActorAddress) -> None:
        hang = self._marker("hang")
        if hang.exists():
            hang.unlink()
            time.sleep(120)
        super().receiveMsg_Heartbeat(msg, sender)

    def receiveMsg_StopTrading(self, msg: StopTrading, sender: ActorAddress) -> None:
        self._marker(f"stop.{msg.mode}").touch()
        if self.role == "order" and not self._marker(f"noack.{msg.mode}").exists():
            self.send(sender, TradingStopped(symbol=self.symbol, open_orders=0))

    def status(self) -> dict[str, Any]:
        return {"restarts": self.restart_count, "starts": self.starts, "pid": os.getpid(),
                "peers": sorted(self.peers)}


class DummyGateway(_Dummy):
    role = "gateway"

    def receiveMsg_WindDownSymbol(self, msg: WindDownSymbol, sender: ActorAddress) -> None:
        assert self.wind_down_only and self.store is None
        (self.ctl / f"{self.symbol}.wind_down").write_text(f"{msg.mode} {msg.reason}")
        if not (self.ctl / f"{self.symbol}.wind_down.noack").exists():
            self.send(self.peers["supervisor"], SymbolWoundDown(
                symbol=self.symbol, orders_cancelled=True, open_orders_left=0,
                position_before=Decimal(1), position_after=Decimal(0)))


class DummyOrder(_Dummy):
    role = "order"


class DummyRisk(_Dummy):
    role = "risk"


class DummyStrategy(_Dummy):
    role = "strategy"


class DummyPortfolio(_Dummy):
    role = "portfolio"

    def receiveMsg_ResumeTrading(self, msg: ResumeTrading, sender: ActorAddress) -> None:
        self.send(sender, TradingStateChanged(state=TradingState.ACTIVE, reason=msg.reason))

    def status(self) -> dict[str, Any]:
        return {**super().status(), "equity": "1000", "leverage": 0.5, "leverage_cap": 6.0,
                "trading_state": "ACTIVE"}


CLASSES = {
    "gateway": "dummy_actors.DummyGateway",
    "order": "dummy_actors.DummyOrder",
    "risk": "dummy_actors.DummyRisk",
    "strategy": "dummy_actors.DummyStrategy",
    "portfolio": "dummy_actors.DummyPortfolio",
}
