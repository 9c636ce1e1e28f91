"""State store: atomic snapshot + outbox, corruption detection without modification, migrations."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.store import (
    SCHEMA_VERSION,
    CorruptStateError,
    Mirror,
    SchemaTooNewError,
    StateStore,
)

ROOT = Path(__file__).resolve().parents[2]


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_writer(db: Path, kill_between: bool) -> int:
    """Write a snapshot + outbox in a child process; optionally SIGKILL it mid-transaction."""
    code = textwrap.dedent(f"""
        import os, signal
        from infra.store import StateStore
        s = StateStore({str(db)!r})
        def die():
            os.kill(os.getpid(), signal.SIGKILL)
        s.save_snapshot("order", 2, b"snapshot-v2", [("SEND_ORDER", "cid-2", b"payload")],
                        _between=die if {kill_between!r} else None)
    """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT)
    return proc.returncode


def test_tables_and_wal(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as s:
        names = set(s.db.table_names())
        assert {"app_state", "orders", "positions", "strategy_state", "snapshots", "journal",
                "fills", "schema_version"} <= names
        assert s._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert s.schema_version() == SCHEMA_VERSION


def test_snapshot_and_outbox_atomic_under_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    with StateStore(db) as s:
        s.save_snapshot("order", 1, b"snapshot-v1", [("SEND_ORDER", "cid-1", b"p1")])
    rc = _run_writer(db, kill_between=True)
    assert rc == -signal.SIGKILL
    with StateStore(db) as s:
        # neither the new snapshot nor its outbox entry: the old state is intact
        assert s.load_snapshot("order")[:2] == (1, b"snapshot-v1")
        assert [r["ref"] for r in s.pending_outbox("order")] == ["cid-1"]
    assert _run_writer(db, kill_between=False) == 0
    with StateStore(db) as s:
        assert s.load_snapshot("order")[:2] == (2, b"snapshot-v2")
        assert [r["ref"] for r in s.pending_outbox("order")] == ["cid-1", "cid-2"]


def test_outbox_completion_and_journal(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as s:
        (eid,) = s.save_snapshot("order", 1, b"x", [("SEND_ORDER", "cid", b"p")])
        s.complete_outbox(eid)
        assert s.pending_outbox("order") == []
        assert s.journal("order")[0]["status"] == "done"
        s.append_journal("risk", "RISK_BLOCKED", "k", b"{}")
        assert len(s.journal()) == 2


def test_fill_dedupe_and_orders(tmp_path: Path) -> None:
    with StateStore(tmp_path / "s.db") as s:
        row = {"symbol": "BTCUSDT", "trade_id": 7, "client_order_id": "c", "side": "BUY",
               "price": "100.5", "qty": "0.1", "fee": "0.01", "fee_asset": "USDT", "ts_ms": 1}
        assert s.record_fill(row) is True
        assert s.record_fill(row) is False
        assert s.last_trade_id("BTCUSDT") == 7
        s.upsert_order({"client_order_id": "c", "symbol": "BTCUSDT", "side": "BUY",
                        "type": "LIMIT", "status": "PENDING_NEW", "price": "100.5",
                        "orig_qty": "0.1", "exchange_order_id": None})
        s.upsert_order({"client_order_id": "c", "symbol": "BTCUSDT", "side": "BUY",
                        "type": "LIMIT", "status": "NEW", "price": "100.5", "orig_qty": "0.1",
                        "exchange_order_id": 99})
        o = s.get_order("c")
        assert o["status"] == "NEW" and o["exchange_order_id"] == 99
        assert len(s.orders("BTCUSDT", ["NEW"])) == 1
        s.set_app_state("halted", {"why": "test"})
        assert s.get_app_state("halted") == {"why": "test"}


@pytest.mark.parametrize("damage", ["truncate", "garbage", "zero", "flip_page"])
def test_corrupt_file_detected_and_not_modified(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "s.db"
    with StateStore(db) as s:
        for i in range(300):
            s.save_snapshot(f"actor{i}", i, os.urandom(200))
        s._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = db.read_bytes()
    if damage == "truncate":
        db.write_bytes(data[: len(data) // 3 + 17])
    elif damage == "garbage":
        db.write_bytes(b"this is not a database" * 100)
    elif damage == "zero":
        db.write_bytes(b"")
    else:
        page = 4096
        buf = bytearray(data)
        for i in range(page * 2, page * 2 + 300):
            buf[i] ^= 0xFF
        db.write_bytes(bytes(buf))
    before = _digest(db)
    names_before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(CorruptStateError) as ei:
        StateStore(db, full_check=True)
    assert str(db) in str(ei.value)
    assert _digest(db) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == names_before


def test_schema_too_new_refused(tmp_path: Path) -> None:
    db = tmp_path / "s.db"
    StateStore(db).close()
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO schema_version VALUES (?, 0)", (SCHEMA_VERSION + 5,))
    conn.commit()
    conn.close()
    with pytest.raises(SchemaTooNewError):
        StateStore(db)


def _hammer(path: str, actor: str, n: int) -> None:
    s = StateStore(path)
    for i in range(n):
        s.save_snapshot(actor, i, b"x" * 100, [("K", f"{actor}-{i}", b"")])
    s.close()


def test_concurrent_writers_do_not_fail(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    StateStore(db).close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(db, f"a{i}", 100)) for i in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    with StateStore(db) as s:
        assert len(s.journal()) == 300


def test_the_readable_mirror_commits_with_the_snapshot_or_not_at_all(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "s.db")
    mirror = Mirror(position=("BTCUSDT", "0.012", "94210.5", "-1.2"),
                    strategy=("BTCUSDT", {"L": 0.4, "warm": True}),
                    app={"trading_state": "ACTIVE"})
    store.save_snapshot("risk", 1, b"blob", mirror=mirror)
    assert [(r["size"], r["entry_price"]) for r in store.positions()] == [("0.012", "94210.5")]
    assert store.get_app_state("trading_state") == "ACTIVE"

    def crash() -> None:
        raise RuntimeError("power cut")

    later = Mirror(position=("BTCUSDT", "0.024", "94000", None), app={"trading_state": "HALTED"})
    with pytest.raises(RuntimeError):
        store.save_snapshot("risk", 1, b"blob2", mirror=later, _between=crash)
    assert store.load_snapshot("risk")[1] == b"blob"  # neither the snapshot...
    assert [r["size"] for r in store.positions()] == ["0.012"]  # ...nor its mirror moved
    assert store.get_app_state("trading_state") == "ACTIVE"
    row = store.db.execute("SELECT state_json FROM strategy_state").fetchone()
    assert json.loads(row[0]) == {"L": 0.4, "warm": True}
