"""Crash-safe state store: SQLite through sqlite-utils, WAL, ``synchronous=FULL``.

One store file per writer group (one per symbol tree plus one for the portfolio), so processes
rarely contend; where they do, every write transaction is ``BEGIN IMMEDIATE`` with a 30 s busy
timeout (``db.atomic()`` upgrades read→write locks without the busy handler and fails across
processes, see library-notes).

Tables (plan Appendix B, extended):

* ``app_state`` key/value settings and markers (e.g. halted flag, last reconciliation).
* ``orders`` keyed by our deterministic ``client_order_id``; ``exchange_order_id`` is nullable so
  the intent is written *before* the exchange replies.
* ``fills`` keyed by exchange trade id: a fill is applied once.
* ``positions``, ``strategy_state``, ``app_state`` as in the plan: a human-readable mirror an
  operator can query with ``sqlite3`` (a symbol's position with exact decimal strings, the
  strategy's readable state as JSON, the portfolio's version / start time / trading state),
  written by the actors in the same transaction as their snapshot (``Mirror``). The snapshot
  stays the one source the bot restores from; the mirror is never read back.
* ``snapshots`` one row per actor: version, msgpack blob, updated_at.
* ``journal`` append-only outbox/event journal; an outbox row is ``pending`` until its side
  effect is confirmed.
* ``schema_version`` for forward migrations.

A snapshot and its outbox entries commit in one transaction (``save_snapshot(..., outbox=...)``).
At open, an existing file is checked read-only (``PRAGMA quick_check`` / ``integrity_check``,
then its schema: every table, column and index of its version; see ``schema_problems``); a
corrupt, incomplete or non-SQLite file raises ``CorruptStateError`` and is never modified.
Every snapshot and journal row carries a checksum (``record_checksum``, BLAKE2b-64) verified on
load: a snapshot that fails raises ``SnapshotCorruptError`` and is never decoded; a pending
outbox row that fails is never acted on.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlite_utils

SQLITE_HEADER = b"SQLite format 3\x00"


class StateStoreError(Exception):
    """Base class of state-store errors."""


class CorruptStateError(StateStoreError):
    """The state file is unreadable or fails its integrity check; it was left untouched."""

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(
            f"state database {path} is corrupt or unreadable: {detail}. The bot refuses to "
            f"trade on it and has not modified it. Restore it from a backup, or move it aside "
            f"to start with an empty state (the bot then reconciles with the exchange)."
        )
        self.path = path
        self.detail = detail


class SchemaTooNewError(StateStoreError):
    """The file was written by a newer gridbot (its schema version is unknown here)."""


class SnapshotCorruptError(StateStoreError):
    """A snapshot's bytes do not match its checksum: it must not be decoded into state."""

    def __init__(self, path: Path, actor: str, detail: str) -> None:
        super().__init__(f"{path}: snapshot of {actor} {detail}")
        self.actor = actor
        self.detail = detail


def _now() -> float:
    return time.time()


# Forward migrations: index i migrates version i -> i+1. Never edit a shipped entry; append.
MIGRATIONS: list[Sequence[str]] = [
    (
        """CREATE TABLE app_state (
            key TEXT PRIMARY KEY,
            value TEXT,
            updated_at REAL NOT NULL)""",
        """CREATE TABLE orders (
            client_order_id TEXT PRIMARY KEY,
            exchange_order_id INTEGER,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL,
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            price TEXT,
            orig_qty TEXT NOT NULL,
            executed_qty TEXT NOT NULL DEFAULT '0',
            cummulative_quote_qty TEXT NOT NULL DEFAULT '0',
            key TEXT,
            generation INTEGER NOT NULL DEFAULT 0,
            reduce_only INTEGER NOT NULL DEFAULT 0,
            record BLOB,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL)""",
        "CREATE INDEX orders_symbol_status ON orders(symbol, status)",
        "CREATE INDEX orders_exchange_id ON orders(exchange_order_id)",
        """CREATE TABLE fills (
            symbol TEXT NOT NULL,
            trade_id INTEGER NOT NULL,
            client_order_id TEXT,
            side TEXT NOT NULL,
            price TEXT NOT NULL,
            qty TEXT NOT NULL,
            fee TEXT NOT NULL,
            fee_asset TEXT,
            ts_ms INTEGER NOT NULL,
            PRIMARY KEY (symbol, trade_id))""",
        """CREATE TABLE positions (
            symbol TEXT PRIMARY KEY,
            size TEXT NOT NULL,
            entry_price TEXT NOT NULL,
            unrealized_pnl TEXT,
            updated_at REAL NOT NULL)""",
        """CREATE TABLE strategy_state (
            symbol TEXT PRIMARY KEY,
            state_json TEXT NOT NULL,
            updated_at REAL NOT NULL)""",
        """CREATE TABLE snapshots (
            actor TEXT PRIMARY KEY,
            version INTEGER NOT NULL,
            blob BLOB NOT NULL,
            updated_at REAL NOT NULL)""",
        """CREATE TABLE journal (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            ref TEXT,
            payload BLOB,
            status TEXT NOT NULL DEFAULT 'pending',
            created_at REAL NOT NULL,
            done_at REAL)""",
        "CREATE INDEX journal_pending ON journal(actor, status)",
        "CREATE INDEX journal_ref ON journal(ref)",
    ),
    (  # v2: a checksum on every snapshot and journal record (existing rows: see _backfill)
        "ALTER TABLE snapshots ADD COLUMN checksum TEXT",
        "ALTER TABLE journal ADD COLUMN checksum TEXT",
    ),
]
SCHEMA_VERSION = len(MIGRATIONS)


def record_checksum(*parts: str | int | bytes | None) -> str:
    """BLAKE2b-64 of a record's fields (hex): written with the record, verified on load."""
    h = hashlib.blake2b(digest_size=8)
    for part in parts:
        b = part if isinstance(part, bytes) else b"" if part is None else str(part).encode()
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def expected_schema() -> dict[str, tuple[str, ...]]:
    """Every table (its columns, in order) and index the migrations create: ``{name: cols}``,
    indexes as ``index:NAME``."""
    conn = sqlite3.connect(":memory:")
    try:
        for stmts in MIGRATIONS:
            for stmt in stmts:
                conn.execute(stmt)
        return _schema_of(conn)
    finally:
        conn.close()


def _schema_of(conn: sqlite3.Connection) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master WHERE type IN "
                                   "('table', 'index') AND name NOT LIKE 'sqlite_%'"):
        if kind == "table":
            out[name] = tuple(r[1] for r in conn.execute(f"PRAGMA table_info('{name}')"))
        else:
            out[f"index:{name}"] = ()
    return out


def schema_problems(conn: sqlite3.Connection) -> list[str]:
    """What the file lacks of the schema this gridbot uses (tables, columns, indexes)."""
    have = _schema_of(conn)
    problems: list[str] = []
    for name, cols in expected_schema().items():
        if name not in have:
            what = f"index {name[6:]}" if name.startswith("index:") else f"table {name}"
            problems.append(f"{what} is missing")
            continue
        missing = [c for c in cols if c not in have[name]]
        if missing:
            problems.append(f"table {name} lacks column(s) {', '.join(missing)}")
    return problems


def check_database_file(path: Path, full: bool = False) -> None:
    """Raise ``CorruptStateError`` if ``path`` exists and is not a healthy SQLite database.

    Opens the file read-only (URI ``mode=ro``) so a damaged file is never modified.
    """
    if not path.exists():
        return
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as e:
        raise CorruptStateError(path, f"cannot read file: {e}") from e
    if path.stat().st_size == 0:
        raise CorruptStateError(path, "file is empty")
    if header != SQLITE_HEADER:
        raise CorruptStateError(path, "not an SQLite database (bad header)")
    pragma = "integrity_check" if full else "quick_check"
    try:
        # With no WAL beside it, open immutable: SQLite then creates no -wal/-shm files either.
        has_wal = path.with_name(path.name + "-wal").exists()
        mode = "mode=ro" if has_wal else "immutable=1"
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?{mode}", uri=True, timeout=30)
        try:
            rows = conn.execute(f"PRAGMA {pragma}").fetchall()
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            problems = [r[0] for r in rows if r and r[0] != "ok"]
            if not problems:
                problems = _version_and_schema_problems(conn)
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise CorruptStateError(path, f"{pragma} failed: {e}") from e
    if problems:
        raise CorruptStateError(path, "; ".join(problems[:5]))


def _version_and_schema_problems(conn: sqlite3.Connection) -> list[str]:
    """A file that has a schema version must have every table, column and index of it (and
    of later versions, which the bot's migration adds); an empty file (no tables) is fine."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return []
    if "schema_version" not in tables:
        return ["table schema_version is missing"]
    row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    version = int(row[0] or 0)
    if version > SCHEMA_VERSION:
        raise SchemaTooNewError(f"schema version {version} is newer than this gridbot "
                                f"supports ({SCHEMA_VERSION}); upgrade gridbot")
    if version < 1:
        return [f"schema version {version} with tables present"]
    if version == SCHEMA_VERSION:
        return schema_problems(conn)
    # older file: the tables of its own version must be there (newer columns come by migration)
    ref = sqlite3.connect(":memory:")
    try:
        for stmts in MIGRATIONS[:version]:
            for stmt in stmts:
                ref.execute(stmt)
        want = _schema_of(ref)
    finally:
        ref.close()
    have = _schema_of(conn)
    return [f"{'index ' + n[6:] if n.startswith('index:') else 'table ' + n} is missing"
            for n in want if n not in have] + [
            f"table {n} lacks column(s) {', '.join(c for c in cols if c not in have[n])}"
            for n, cols in want.items() if n in have and any(c not in have[n] for c in cols)]


@dataclass(frozen=True)
class Mirror:
    """The readable rows written with a snapshot, in its transaction (plan Appendix B)."""

    #: (symbol, size, entry_price, unrealized_pnl): exact decimal strings
    position: tuple[str, str, str, str | None] | None = None
    #: (symbol, JSON-able state)
    strategy: tuple[str, dict[str, Any]] | None = None
    #: ``app_state`` keys and JSON-able values
    app: dict[str, Any] | None = None


class StateStore:
    """One SQLite state file. Not thread-safe: one instance per actor/process."""

    def __init__(self, path: str | Path, *, full_check: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        check_database_file(self.path, full=full_check)
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves.
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self.db = sqlite_utils.Database(self._conn)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as e:
            self._conn.close()
            raise CorruptStateError(self.path, str(e)) from e

    # -- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        """Close the connection (committed data is already durable)."""
        self._conn.close()

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite_utils.Database]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; rolls back on any exception. Nesting is flat."""
        if self._conn.in_transaction:
            yield self.db
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # -- schema -----------------------------------------------------------------------------
    def schema_version(self) -> int:
        """The schema version of the open file."""
        if "schema_version" not in self.db.table_names():
            return 0
        row = self._conn.execute("SELECT max(version) FROM schema_version").fetchone()
        return int(row[0] or 0)

    def _migrate(self) -> None:
        with self.transaction():
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, "
                "applied_at REAL NOT NULL)"
            )
            current = self.schema_version()
            if current > SCHEMA_VERSION:
                raise SchemaTooNewError(
                    f"{self.path}: schema version {current} is newer than this gridbot "
                    f"supports ({SCHEMA_VERSION}); upgrade gridbot"
                )
            for version in range(current, SCHEMA_VERSION):
                for stmt in MIGRATIONS[version]:
                    self._conn.execute(stmt)
                if version + 1 == 2:
                    self._backfill_checksums()
                self._conn.execute(
                    "INSERT INTO schema_version(version, applied_at) VALUES (?, ?)",
                    (version + 1, _now()),
                )
            problems = schema_problems(self._conn)
            if problems:
                raise CorruptStateError(self.path, "; ".join(problems[:5]))

    def _backfill_checksums(self) -> None:
        """v1 → v2: the rows written before checksums existed get theirs (trusted as they
        passed the integrity check)."""
        for actor, version, blob in self._conn.execute(
                "SELECT actor, version, blob FROM snapshots").fetchall():
            self._conn.execute("UPDATE snapshots SET checksum = ? WHERE actor = ?",
                               (record_checksum(actor, version, bytes(blob)), actor))
        for rid, actor, kind, ref, payload in self._conn.execute(
                "SELECT id, actor, kind, ref, payload FROM journal").fetchall():
            self._conn.execute("UPDATE journal SET checksum = ? WHERE id = ?",
                               (record_checksum(actor, kind, ref, payload), rid))

    # -- snapshots + outbox -----------------------------------------------------------------
    def save_snapshot(
        self,
        actor: str,
        version: int,
        blob: bytes,
        outbox: Sequence[tuple[str, str, bytes]] = (),
        *,
        orders: Sequence[dict[str, Any]] = (),
        fills: Sequence[dict[str, Any]] = (),
        done_refs: Sequence[str] = (),
        mirror: Mirror | None = None,
        _between: Callable[[], None] | None = None,
    ) -> list[int]:
        """Upsert ``actor``'s snapshot, append ``outbox`` entries (kind, ref, payload), upsert
        ``orders`` rows, record ``fills``, mark pending outbox entries whose ref is in
        ``done_refs`` done and write the readable ``mirror`` rows — all in one transaction.
        Returns the new journal ids. ``_between`` is a test hook run between the snapshot and
        the outbox writes."""
        ids: list[int] = []
        with self.transaction():
            now = _now()
            for row in orders:
                self.db["orders"].upsert({**row, "updated_at": now,
                                          "created_at": row.get("created_at", now)},
                                         pk="client_order_id")
            for row in fills:
                self.record_fill(row)
            for ref in done_refs:
                self._conn.execute("UPDATE journal SET status = 'done', done_at = ? "
                                   "WHERE actor = ? AND ref = ? AND status = 'pending'",
                                   (now, actor, ref))
            self._conn.execute(
                "INSERT INTO snapshots(actor, version, blob, updated_at, checksum) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT(actor) DO UPDATE SET "
                "version=excluded.version, blob=excluded.blob, updated_at=excluded.updated_at, "
                "checksum=excluded.checksum",
                (actor, version, blob, _now(), record_checksum(actor, version, blob)),
            )
            if mirror is not None:
                self._write_mirror(mirror)
            if _between is not None:
                _between()
            for kind, ref, payload in outbox:
                cur = self._conn.execute(
                    "INSERT INTO journal(actor, kind, ref, payload, status, created_at, "
                    "checksum) VALUES (?, ?, ?, ?, 'pending', ?, ?)",
                    (actor, kind, ref, payload, _now(),
                     record_checksum(actor, kind, ref, payload)),
                )
                ids.append(int(cur.lastrowid))
        return ids

    def _write_mirror(self, mirror: Mirror) -> None:
        if mirror.position is not None:
            self.upsert_position(*mirror.position)
        if mirror.strategy is not None:
            self.set_strategy_state(*mirror.strategy)
        for key, value in (mirror.app or {}).items():
            self.set_app_state(key, value)

    def load_snapshot(self, actor: str) -> tuple[int, bytes, float] | None:
        """``(version, blob, updated_at)`` of ``actor``'s snapshot, or None. Raises
        ``SnapshotCorruptError`` when the bytes do not match the stored checksum."""
        row = self._conn.execute(
            "SELECT version, blob, updated_at, checksum FROM snapshots WHERE actor = ?",
            (actor,)).fetchone()
        if not row:
            return None
        version, blob = int(row[0]), bytes(row[1])
        if row[3] != record_checksum(actor, version, blob):
            raise SnapshotCorruptError(self.path, actor,
                                       "has no checksum" if row[3] is None else
                                       "does not match its checksum (damaged bytes)")
        return version, blob, float(row[2])

    def discard_snapshot(self, actor: str, reason: str) -> None:
        """Move ``actor``'s unusable snapshot into the journal (kind ``snapshot_discarded``,
        the raw bytes kept for forensics) so the next save starts from a clean state."""
        with self.transaction():
            row = self._conn.execute("SELECT blob FROM snapshots WHERE actor = ?",
                                     (actor,)).fetchone()
            payload = bytes(row[0]) if row else b""
            self._conn.execute(
                "INSERT INTO journal(actor, kind, ref, payload, status, created_at, done_at, "
                "checksum) VALUES (?, 'snapshot_discarded', ?, ?, 'done', ?, ?, ?)",
                (actor, reason[:500], payload, _now(), _now(),
                 record_checksum(actor, "snapshot_discarded", reason[:500], payload)))
            self._conn.execute("DELETE FROM snapshots WHERE actor = ?", (actor,))

    def snapshot_ages(self) -> dict[str, float]:
        """Seconds since each actor's last snapshot."""
        now = _now()
        return {a: now - t for a, t in self._conn.execute("SELECT actor, updated_at FROM snapshots")}

    def append_journal(self, actor: str, kind: str, ref: str = "", payload: bytes = b"",
                       status: str = "done") -> int:
        """Append one journal row (an event already acted on, unless ``status='pending'``)."""
        with self.transaction():
            cur = self._conn.execute(
                "INSERT INTO journal(actor, kind, ref, payload, status, created_at, done_at, "
                "checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (actor, kind, ref, payload, status, _now(),
                 _now() if status != "pending" else None,
                 record_checksum(actor, kind, ref, payload)),
            )
        return int(cur.lastrowid)

    def pending_outbox(self, actor: str) -> list[dict[str, Any]]:
        """Outbox entries of ``actor`` not yet confirmed, oldest first. An entry whose bytes
        do not match its checksum is never returned (it must not be acted on): it is marked
        ``corrupt`` and left in the journal (reconciliation with the exchange covers it)."""
        rows = list(self.db.query(
            "SELECT id, kind, ref, payload, created_at, checksum FROM journal "
            "WHERE actor = ? AND status = 'pending' ORDER BY id", [actor]))
        good = []
        for r in rows:
            if r.pop("checksum") == record_checksum(actor, r["kind"], r["ref"], r["payload"]):
                good.append(r)
            else:
                self.complete_outbox(int(r["id"]), "corrupt")
        return good

    def complete_outbox(self, entry_id: int, status: str = "done") -> None:
        """Mark an outbox entry done (or ``failed``/``unknown``); the row itself stays."""
        with self.transaction():
            self._conn.execute(
                "UPDATE journal SET status = ?, done_at = ? WHERE id = ?", (status, _now(), entry_id)
            )

    def journal(self, actor: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        """Journal rows (for audits and tests)."""
        where, args = [], []
        if actor:
            where.append("actor = ?")
            args.append(actor)
        if kind:
            where.append("kind = ?")
            args.append(kind)
        sql = "SELECT * FROM journal" + (" WHERE " + " AND ".join(where) if where else "")
        return list(self.db.query(sql + " ORDER BY id", args))

    # -- orders and fills -------------------------------------------------------------------
    def upsert_order(self, row: dict[str, Any]) -> None:
        """Insert or update one order row (keyed by ``client_order_id``)."""
        now = _now()
        row = {**row, "updated_at": now}
        row.setdefault("created_at", now)
        with self.transaction():
            self.db["orders"].upsert(row, pk="client_order_id")

    def get_order(self, client_order_id: str) -> dict[str, Any] | None:
        """One order row or None."""
        rows = list(self.db.query(
            "SELECT * FROM orders WHERE client_order_id = ?", [client_order_id]))
        return rows[0] if rows else None

    def orders(self, symbol: str | None = None, status_in: Sequence[str] | None = None
               ) -> list[dict[str, Any]]:
        """Order rows, optionally filtered."""
        where, args = [], []
        if symbol:
            where.append("symbol = ?")
            args.append(symbol)
        if status_in:
            where.append(f"status IN ({','.join('?' * len(status_in))})")
            args.extend(status_in)
        sql = "SELECT * FROM orders" + (" WHERE " + " AND ".join(where) if where else "")
        return list(self.db.query(sql + " ORDER BY created_at", args))

    def record_fill(self, row: dict[str, Any]) -> bool:
        """Insert a fill; False if this (symbol, trade_id) was already recorded."""
        cols = ("symbol", "trade_id", "client_order_id", "side", "price", "qty", "fee",
                "fee_asset", "ts_ms")
        with self.transaction():
            cur = self._conn.execute(
                f"INSERT OR IGNORE INTO fills({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                tuple(str(row[c]) if c in ("price", "qty", "fee") else row.get(c) for c in cols),
            )
        return cur.rowcount == 1

    def last_trade_id(self, symbol: str) -> int:
        """Highest recorded trade id of ``symbol`` (0 when none)."""
        row = self._conn.execute(
            "SELECT max(trade_id) FROM fills WHERE symbol = ?", (symbol,)).fetchone()
        return int(row[0] or 0)

    # -- positions, strategy state, app state -----------------------------------------------
    def upsert_position(self, symbol: str, size: str, entry_price: str,
                        unrealized_pnl: str | None = None) -> None:
        """Record a symbol's position (strings: exact decimals)."""
        with self.transaction():
            self.db["positions"].upsert(
                {"symbol": symbol, "size": size, "entry_price": entry_price,
                 "unrealized_pnl": unrealized_pnl, "updated_at": _now()}, pk="symbol")

    def positions(self) -> list[dict[str, Any]]:
        """All position rows."""
        return list(self.db.query("SELECT * FROM positions ORDER BY symbol"))

    def set_strategy_state(self, symbol: str, state: dict[str, Any]) -> None:
        """Human-readable strategy state (the exact state lives in ``snapshots``)."""
        with self.transaction():
            self.db["strategy_state"].upsert(
                {"symbol": symbol, "state_json": json.dumps(state, sort_keys=True, default=str),
                 "updated_at": _now()}, pk="symbol")

    def set_app_state(self, key: str, value: Any) -> None:
        """Set a JSON value in ``app_state``."""
        with self.transaction():
            self.db["app_state"].upsert(
                {"key": key, "value": json.dumps(value, default=str), "updated_at": _now()},
                pk="key")

    def get_app_state(self, key: str, default: Any = None) -> Any:
        """Read a JSON value from ``app_state``."""
        row = self._conn.execute("SELECT value FROM app_state WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else default
