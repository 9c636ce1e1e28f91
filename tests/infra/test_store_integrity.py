"""A store that proves itself: schema (tables, columns, indexes, version) checked at open and
at launch, a checksum on every snapshot and journal row verified on load, nothing modified
when a file is refused."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from actors.base import GridActor
from infra.store import (
    MIGRATIONS,
    SCHEMA_VERSION,
    CorruptStateError,
    SchemaTooNewError,
    SnapshotCorruptError,
    StateStore,
    check_database_file,
    record_checksum,
)
from supervision.launcher import check_state_files


def _store(tmp_path: Path) -> Path:
    db = tmp_path / "BTCUSDT.db"
    with StateStore(db) as s:
        s.save_snapshot("order", 1, b"state-bytes" * 20, [("send", "cid-1", b"payload")])
    return db


def _sql(db: Path, *stmts: str) -> None:
    conn = sqlite3.connect(db)
    for st in stmts:
        conn.execute(st)
    conn.commit()
    conn.close()


@pytest.mark.parametrize("damage, expected", [
    ("DROP TABLE fills", "table fills is missing"),
    ("DROP TABLE snapshots", "table snapshots is missing"),
    ("DROP INDEX journal_pending", "index journal_pending is missing"),
    ("ALTER TABLE orders DROP COLUMN key", "table orders lacks column(s) key"),
    ("DELETE FROM schema_version", "schema version 0 with tables present"),
])
def test_an_incomplete_schema_is_refused_and_left_untouched(tmp_path: Path, damage: str,
                                                            expected: str) -> None:
    db = _store(tmp_path)
    _sql(db, damage)
    before = db.read_bytes()
    with pytest.raises(CorruptStateError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        check_database_file(db, full=True)
    with pytest.raises(CorruptStateError):
        StateStore(db)
    assert db.read_bytes() == before
    errs = check_state_files(tmp_path)
    assert len(errs) == 1 and expected in errs[0] and "BTCUSDT.db" in errs[0]


def test_a_newer_schema_version_is_refused(tmp_path: Path) -> None:
    db = _store(tmp_path)
    _sql(db, f"INSERT INTO schema_version VALUES ({SCHEMA_VERSION + 1}, 0)")
    with pytest.raises(SchemaTooNewError):
        check_database_file(db)
    assert "newer than this gridbot" in check_state_files(tmp_path)[0]


def test_a_flipped_byte_in_a_snapshot_is_never_decoded(tmp_path: Path) -> None:
    db = _store(tmp_path)
    conn = sqlite3.connect(db)
    blob = bytearray(conn.execute("SELECT blob FROM snapshots").fetchone()[0])
    blob[7] ^= 0x04
    conn.execute("UPDATE snapshots SET blob = ?", (bytes(blob),))
    conn.commit()
    conn.close()
    check_database_file(db, full=True)  # the file itself is healthy SQLite
    with StateStore(db) as s:
        with pytest.raises(SnapshotCorruptError, match="does not match its checksum"):
            s.load_snapshot("order")
        s.discard_snapshot("order", "does not match its checksum")
        assert s.load_snapshot("order") is None
        kept = s.journal("order", "snapshot_discarded")
        assert len(kept) == 1 and kept[0]["payload"] == bytes(blob)  # kept for forensics


def test_a_damaged_outbox_row_is_never_acted_on(tmp_path: Path) -> None:
    db = _store(tmp_path)
    _sql(db, "UPDATE journal SET payload = X'00' WHERE ref = 'cid-1'")
    with StateStore(db) as s:
        assert s.pending_outbox("order") == []
        assert [r["status"] for r in s.journal("order")] == ["corrupt"]


def test_a_version_1_file_migrates_and_keeps_its_snapshot(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    conn = sqlite3.connect(db)
    for st in MIGRATIONS[0]:
        conn.execute(st)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at REAL)")
    conn.execute("INSERT INTO schema_version VALUES (1, 0)")
    conn.execute("INSERT INTO snapshots VALUES ('risk', 3, X'0102', 0)")
    conn.commit()
    conn.close()
    check_database_file(db, full=True)
    with StateStore(db) as s:
        assert s.schema_version() == SCHEMA_VERSION
        assert s.load_snapshot("risk")[:2] == (3, b"\x01\x02")


def test_a_torn_wal_copy_opens_at_a_consistent_point(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    s = StateStore(db)
    s._conn.execute("PRAGMA wal_autocheckpoint=0")
    for i in range(20):
        s.save_snapshot("order", 1, f"state-{i}".encode() * 50)
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(db, copy / "live.db")
    wal = db.with_name("live.db-wal").read_bytes()
    (copy / "live.db-wal").write_bytes(wal[: len(wal) * 2 // 3])  # a copy torn mid-write
    s.close()
    check_database_file(copy / "live.db", full=True)
    with StateStore(copy / "live.db") as c:
        snap = c.load_snapshot("order")
        assert snap is not None and snap[1].startswith(b"state-")  # an earlier, whole state


def test_an_actor_discards_a_damaged_snapshot_and_starts_empty(tmp_path: Path) -> None:
    db = _store(tmp_path)
    _sql(db, "UPDATE snapshots SET checksum = 'x'")
    a = GridActor.__new__(GridActor)
    a.actor_name, a.symbol = "order", "BTCUSDT"
    with StateStore(db) as s:
        assert a._load_snapshot(s) is None
        assert s.journal("order", "snapshot_discarded")


def test_checksums_cover_every_field() -> None:
    base = record_checksum("a", "k", "r", b"p")
    assert base != record_checksum("a", "k", "r", b"q")
    assert base != record_checksum("a", "kr", "", b"p")  # fields are length-prefixed
    assert record_checksum("a", 1, b"x") == record_checksum("a", "1", b"x")


def test_a_failing_write_stops_the_handler_and_tells_the_supervisor(tmp_path: Path) -> None:
    from actors.base import StoreWriteFailed
    from models.messages import ActorFailing

    db = _store(tmp_path)
    sent: list[object] = []
    a = GridActor.__new__(GridActor)
    a.actor_name, a.symbol, a.parent = "order", "BTCUSDT", "parent-address"
    a.send = lambda to, msg: sent.append((to, msg))  # type: ignore[method-assign]
    with StateStore(db) as s:
        a.store = s
        a.snapshot = lambda: b"new"  # type: ignore[method-assign]
        a.mirror = lambda: None  # type: ignore[method-assign]
        _sql(db, "DROP TABLE journal")  # e.g. damaged under the running bot
        with pytest.raises(StoreWriteFailed, match="no such table: journal"):
            a.persist((("send", "cid-2", b""),))
        assert s.load_snapshot("order")[1] == b"state-bytes" * 20  # rolled back, not half
    assert len(sent) == 1 and sent[0][0] == "parent-address"
    msg = sent[0][1]
    assert isinstance(msg, ActorFailing) and "no such table" in msg.reason
