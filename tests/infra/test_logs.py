"""JSON logs: one flat object per line with event/ts/symbol; secrets never reach the file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from loguru import logger

from infra import logs


@pytest.fixture()
def log_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BINANCE_API_KEY", "AKIAlivekey1234567890")
    monkeypatch.setenv("BINANCE_API_SECRET", "s3cr3t-very-secret-value-xyz")
    path = logs.configure_logging(tmp_path, stderr=False)
    yield path
    logger.remove()


def _lines(path: Path) -> list[dict]:
    logger.complete()
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_flat_json_with_event_and_context(log_path: Path) -> None:
    logs.log_event("ORDER_PLACED", "placed", symbol="BTCUSDT", client_order_id="gb1",
                   price=Decimal("100.10"), strategy_context={"L": 0.5, "reason": "grid"})
    (rec,) = _lines(log_path)
    assert rec["event"] == "ORDER_PLACED"
    assert rec["symbol"] == "BTCUSDT"
    assert rec["price"] == "100.10"
    assert rec["strategy_context"] == {"L": 0.5, "reason": "grid"}
    assert rec["ts"].endswith("Z") and "T" in rec["ts"]
    assert rec["msg"] == "placed"


def test_secrets_never_logged(log_path: Path) -> None:
    key, secret = "AKIAlivekey1234567890", "s3cr3t-very-secret-value-xyz"
    logs.log_event("STATUS", f"connecting with {key} and {secret}", symbol="ETHUSDT",
                   headers={"X-MBX-APIKEY": key}, api_secret=secret, url=f"x?signature={secret}",
                   nested=[{"secret": "whatever"}])
    logger.bind(event="LOG").info("raw {}", secret)
    try:
        raise RuntimeError(f"failed with {secret}")
    except RuntimeError:
        logger.bind(event="ERROR").exception("boom")
    text = log_path.read_text()
    assert key not in text and secret not in text
    assert "***" in text
    assert all(json.loads(line) for line in text.splitlines())


def test_register_secret_masks_other_values(log_path: Path) -> None:
    logs.register_secret("another-credential-42")
    logs.log_event("LOG", "value another-credential-42 here")
    assert "another-credential-42" not in log_path.read_text()


def test_ts_ms_follows_the_installed_clock(log_path: Path) -> None:
    from infra import clock

    clock.set_clock(clock.SimClock(1_735_689_600_000 * 1_000_000))
    try:
        logs.log_event("STRATEGY", symbol="BTCUSDT")
        logs.log_event("STATUS", symbol="BTCUSDT", ts_ms=42)
    finally:
        clock.set_clock(None)
    logs.log_event("STATUS", symbol="BTCUSDT")
    a, b, c = _lines(log_path)
    assert a["ts_ms"] == 1_735_689_600_000
    assert b["ts_ms"] == 42
    assert c["ts_ms"] > 1_735_689_600_000 + 10**9


def test_direct_log_lines_and_kept_events(tmp_path: Path) -> None:
    """A backtest's direct writer: the kept dict equals the parsed line; nested contexts take
    the fast encoder; a float that is not finite is written as null (NaN is not JSON)."""
    from models.enums import Side

    path = tmp_path / "direct.jsonl"
    w = logs.DirectJsonLog(path, level="INFO", direct_below="ERROR",
                           keep=frozenset({"ORDER_PLACED"}))
    logs.set_direct_log(w)
    try:
        ctx = {"L": 0.25, "features": {"rsi": -0.5, "funding": 0.0}, "levels": (1, 2)}
        logs.log_event("ORDER_PLACED", symbol="BTCUSDT", ts_ms=1_700_000_000_000,
                       side=Side.BUY, price=Decimal("100.10"), strategy_context=ctx,
                       api_secret="hunter2")
        logs.log_event("ORDER_PLACED", symbol="BTCUSDT", ts_ms=1_700_000_000_001,
                       strategy_context={"x": float("nan")})
        logs.log_event("STRATEGY", symbol="BTCUSDT", ts_ms=1_700_000_000_002, L=0.1)
    finally:
        logs.set_direct_log(None)
        w.close()
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    first = json.loads(lines[0])
    assert first["strategy_context"] == {"L": 0.25, "features": {"rsi": -0.5, "funding": 0.0},
                                         "levels": [1, 2]}
    assert first["price"] == "100.10" and first["side"] == "BUY"
    assert first["api_secret"] != "hunter2" and "hunter2" not in lines[0]
    assert json.loads(lines[1])["strategy_context"] == {"x": None}
    assert "NaN" not in lines[1]
    assert len(w.kept) == 2  # STRATEGY is not kept
    assert w.kept[0] == first
    assert json.dumps(w.kept[1], sort_keys=True) == json.dumps(json.loads(lines[1]),
                                                               sort_keys=True)


def _strict(line: str) -> dict:
    """Parse ``line`` refusing NaN/Infinity (not JSON)."""
    def bad(token: str) -> None:
        raise AssertionError(f"non-JSON number {token} in {line}")
    return json.loads(line, parse_constant=bad)


def test_nan_and_infinities_are_written_as_null(log_path: Path, tmp_path: Path) -> None:
    """NaN, inf and -inf (plain, nested, in a tuple, numpy) become null on every path: loguru,
    the direct writer (fast and json encoders) and the offloaded writer process."""
    import numpy as np

    from models.risk import BrakeEvent

    nan, inf = float("nan"), float("inf")
    ctx = {"a": nan, "b": inf, "c": -inf, "d": {"e": [1.5, nan]}, "f": (inf,),
           "g": np.float64("nan"), "ok": 0.25,
           "h": BrakeEvent(kind="LEVEL", level=1, previous_level=0, drawdown=nan,
                           size_factor=-inf, tp_factor=1.0, leverage_cap=6.0, halted=False,
                           safe_mode=False)}
    want = {"a": None, "b": None, "c": None, "d": {"e": [1.5, None]}, "f": [None],
            "g": None, "ok": 0.25,
            "h": {"kind": "LEVEL", "level": 1, "previous_level": 0, "drawdown": None,
                  "size_factor": None, "tp_factor": 1.0, "leverage_cap": 6.0, "halted": False,
                  "safe_mode": False, "reason": "", "actions": []}}
    logs.log_event("ORDER_PLACED", symbol="BTCUSDT", **ctx)
    logger.complete()
    recs = [_strict(x) for x in log_path.read_text().splitlines()]
    for offload in (False, True):
        path = tmp_path / f"direct-{offload}.jsonl"
        w = logs.DirectJsonLog(path, level="INFO", direct_below="ERROR",
                               keep=frozenset({"ORDER_PLACED"}), offload=offload)
        logs.set_direct_log(w)
        try:
            logs.log_event("ORDER_PLACED", symbol="BTCUSDT", **ctx)
            logs.log_event("STRATEGY", symbol="BTCUSDT", L=nan, S=0.1)
        finally:
            logs.set_direct_log(None)
            w.close()
        lines = path.read_text().splitlines()
        recs += [_strict(x) for x in lines]
        assert w.kept[0] == _strict(lines[0])
        assert _strict(lines[1])["L"] is None
    assert len(recs) == 5
    for rec in recs:
        if rec["event"] == "ORDER_PLACED":
            assert {k: rec[k] for k in want} == want
