"""Base class of every supervised gridbot actor: start, restore, snapshot, heartbeat, stop.

Lifecycle (driven by the parent supervisor):

1. ``StartActor`` → open the state store, ``restore()`` from the last snapshot (None on a first
   start), ``on_start()``; reply ``ActorReady`` (readiness handshake: a tree reports ready only
   when every child answered).
2. ``Wire`` → peer addresses by role (``self.peers``); ``on_wired()``.
3. ``Heartbeat`` → ``HeartbeatAck`` (a supervisor restarts a child that stops answering).
4. ``ActorExitRequest`` → ``persist()`` and ``on_stop()``.

Subclasses implement ``snapshot() -> bytes`` / ``restore(blob)`` and call ``persist(outbox)``
after every state change that matters, *before* acting on it (persist before you act).

thespian delivers a message once more after an exception in ``receiveMessage``; handlers must
be idempotent (the OMS keys everything by client order id, fills by trade id).
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from loguru import logger
from thespian.actors import ActorAddress, ActorExitRequest, ActorTypeDispatcher

from infra.clock import install_message_sources
from infra.logs import configure_actor_logging, log_event
from infra.store import Mirror, SnapshotCorruptError, StateStore, StateStoreError
from models.config import Config, config_from_json
from models.messages import (
    ActorFailing,
    ActorReady,
    Heartbeat,
    HeartbeatAck,
    Message,
    StartActor,
    StatusReported,
    StatusRequested,
    Wire,
)

SNAPSHOT_VERSION = 1

# every process running actors creates messages: real ids (unique across processes) and clock
install_message_sources()


def pack_address(addr: ActorAddress) -> bytes:
    """An ``ActorAddress`` as opaque bytes for a ``Wire`` message."""
    return pickle.dumps(addr)


def unpack_address(data: bytes) -> ActorAddress:
    """Inverse of ``pack_address`` (only ever applied to bytes from our own supervisor)."""
    return pickle.loads(data)  # noqa: S301 - bytes come from our own supervisor


T = TypeVar("T")


class StoreWriteFailed(RuntimeError):
    """A state write failed: the handler stops here (nothing is sent on unsaved state)."""


class GridActor(ActorTypeDispatcher):
    """Common behaviour of gateway, order, risk, strategy and portfolio actors."""

    role: ClassVar[str] = "actor"
    #: backtests (one process, ``backtest.runtime``) set this False: no per-process logging set-up.
    multiprocess: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor_name = self.role
        self.symbol = ""
        self.config: Config | None = None
        self.store: StateStore | None = None
        self.state_dir_path = Path(".")
        self.wind_down_only = False
        self.peers: dict[str, ActorAddress] = {}
        self.parent: ActorAddress | None = None
        self.restart_count = 0
        self.restore_ms = 0.0
        self.last_snapshot_at = 0.0
        self.started = False

    # -- lifecycle messages -------------------------------------------------------------------
    def receiveMsg_StartActor(self, msg: StartActor, sender: ActorAddress) -> None:
        """Open the store, restore from the snapshot, start, then answer ``ActorReady``."""
        if self.started:  # re-delivery or duplicate: just re-confirm readiness
            self.send(sender, ActorReady(symbol=self.symbol, actor_name=self.actor_name,
                                         restore_ms=self.restore_ms, pid=os.getpid()))
            return
        t0 = time.perf_counter()
        if self.role != "gateway":
            # API credentials live only in the gateway's process (see docs/ARCHITECTURE.md)
            for name in ("BINANCE_API_KEY", "BINANCE_API_SECRET"):
                os.environ.pop(name, None)
        self.parent = sender
        self.actor_name = msg.actor_name
        self.symbol = msg.symbol
        self.restart_count = msg.restart_count
        self.config = config_from_json(msg.config_json)
        if self.multiprocess:
            configure_actor_logging(self.config.logging.level)
        self.state_dir_path = Path(msg.state_dir)
        self.wind_down_only = msg.wind_down_only
        if not msg.wind_down_only:  # a wind-down gateway needs no state (the store may be bad)
            try:
                self.store = self.open_store(self.state_dir_path)
                snap = self._load_snapshot(self.store)
                self.restore(snap[1] if snap else None)
            except Exception as e:
                self._start_failed(sender, f"cannot restore from the state store: "
                                   f"{type(e).__name__}: {e}")
                return
        self.on_start()
        self.restore_ms = (time.perf_counter() - t0) * 1000.0
        self.started = True
        self.send(sender, ActorReady(symbol=self.symbol, actor_name=self.actor_name,
                                     restore_ms=self.restore_ms, pid=os.getpid()))

    def _load_snapshot(self, store: StateStore) -> tuple[int, bytes, float] | None:
        """The actor's snapshot; one whose bytes fail their checksum is never decoded: it is
        moved to the journal, SNAPSHOT_DISCARDED is logged, and the actor starts from an empty
        state (the OMS then rebuilds from the exchange: open orders, position, trades)."""
        try:
            return store.load_snapshot(self.actor_name)
        except SnapshotCorruptError as e:
            store.discard_snapshot(self.actor_name, e.detail)
            log_event("SNAPSHOT_DISCARDED", f"{self.symbol} {self.actor_name}: {e}; starting "
                      "from an empty state and the exchange's", level="ERROR",
                      symbol=self.symbol, actor=self.actor_name, reason=e.detail)
            return None

    def _start_failed(self, sender: ActorAddress, reason: str) -> None:
        """A start that cannot succeed: drop the store untouched (nothing may be written over
        the state that failed to load) and tell the supervisor at once, which removes this
        actor and counts the failure, instead of waiting out the start timeout. In one
        process (backtest) it raises."""
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001 - the store is already unusable
                pass
            self.store = None
        if not self.multiprocess:
            raise RuntimeError(f"{self.symbol} {self.actor_name} could not start: {reason}")
        self.send(sender, ActorFailing(symbol=self.symbol, actor_name=self.actor_name,
                                           reason=reason, pid=os.getpid()))

    def receiveMsg_Wire(self, msg: Wire, sender: ActorAddress) -> None:
        """Learn peer addresses by role."""
        self.peers.update({role: unpack_address(b) for role, b in msg.peers.items()})
        self.on_wired()

    def receiveMsg_Heartbeat(self, msg: Heartbeat, sender: ActorAddress) -> None:
        """Liveness probe from the supervisor."""
        age = time.time() - self.last_snapshot_at if self.last_snapshot_at else -1.0
        self.send(sender, HeartbeatAck(symbol=self.symbol, seq=msg.seq,
                                       actor_name=self.actor_name, pid=os.getpid(),
                                       snapshot_age_s=age))

    def receiveMsg_StatusRequested(self, msg: StatusRequested, sender: ActorAddress) -> None:
        """Reply with ``status()`` as plain data."""
        self.send(sender, StatusReported(symbol=self.symbol, actor_name=self.actor_name,
                                         data=self.status()))

    def receiveMsg_ActorExitRequest(self, msg: ActorExitRequest, sender: ActorAddress) -> None:
        """Orderly stop: flush state."""
        try:
            if self.store is not None:
                self.persist()
                self.on_stop()
                self.store.close()
                self.store = None
            elif self.wind_down_only and self.started:
                self.on_stop()  # nothing to persist; stop the worker threads
        finally:
            if self.multiprocess:
                logger.complete()

    def receiveUnrecognizedMessage(self, msg: Any, sender: ActorAddress) -> None:
        """Ignore thespian system messages we do not handle; log anything else."""
        if isinstance(msg, Message):
            logger.bind(event="UNHANDLED_MESSAGE", symbol=self.symbol).warning(
                "{} has no handler for {}", self.actor_name, type(msg).__name__)

    # -- persistence ----------------------------------------------------------------------------
    def open_store(self, state_dir: Path) -> StateStore:
        """One store file per symbol tree (``portfolio.db`` for the portfolio)."""
        name = self.symbol or "portfolio"
        return StateStore(state_dir / f"{name}.db")

    def persist(self, outbox: tuple[tuple[str, str, bytes], ...] = ()) -> list[int]:
        """Write this actor's snapshot and ``outbox`` entries in one transaction."""
        assert self.store is not None, "persist() before StartActor"
        store = self.store
        ids = self.write_state(lambda: store.save_snapshot(
            self.actor_name, SNAPSHOT_VERSION, self.snapshot(), outbox, mirror=self.mirror()))
        self.last_snapshot_at = time.time()
        return ids

    def write_state(self, write: Callable[[], T]) -> T:
        """Run a store write. If it fails (missing table, I/O error, disk full) the actor
        must not act on state the database does not hold: the supervisor is told to remove
        it at once (it restarts from the last good snapshot and the OMS re-applies the fills
        from the exchange), and ``StoreWriteFailed`` aborts the handler before it sends."""
        try:
            return write()
        except (sqlite3.Error, StateStoreError, OSError) as e:
            reason = f"{type(e).__name__}: {e}"
            if self.multiprocess and self.parent is not None:
                self.send(self.parent, ActorFailing(symbol=self.symbol,
                                                    actor_name=self.actor_name,
                                                    reason=f"state write failed: {reason}",
                                                    pid=os.getpid()))
            raise StoreWriteFailed(f"{self.symbol} {self.actor_name}: state write failed: "
                                   f"{reason}") from e

    # -- hooks for subclasses -------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """The actor's full state as msgpack bytes."""
        return b""

    def restore(self, blob: bytes | None) -> None:
        """Rebuild state from ``snapshot()`` bytes (None: first start)."""

    def mirror(self) -> Mirror | None:
        """Readable rows written with each snapshot (``infra.store.Mirror``; None: none)."""
        return None

    def on_start(self) -> None:
        """After restore, before ``ActorReady``."""

    def on_wired(self) -> None:
        """After peers are known."""

    def on_stop(self) -> None:
        """During orderly shutdown, after the final snapshot."""

    def status(self) -> dict[str, Any]:
        """Status fields for ``run.py status``."""
        return {"restarts": self.restart_count}

    # -- helpers ----------------------------------------------------------------------------------
    def tell_peer(self, role: str, msg: Message) -> bool:
        """Send to a peer by role; False if that peer is unknown (not wired yet)."""
        addr = self.peers.get(role)
        if addr is None:
            return False
        self.send(addr, msg)
        return True
