"""A backtest on a file with an injected spike and a conflicting duplicate warns with the line
numbers (stderr, summary, log, report); with --strict it exits 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run
from exchange_sim import klinecsv
from tests.exchange_sim.test_dataquality import walk, write


@pytest.fixture
def bad_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("GRIDBOT_CACHE_DIR", str(tmp_path / "cache"))
    klinecsv.parse_ohlc_cached.cache_clear()
    rows = walk(1500)  # 2025-01-01 .. 2025-01-06 05:00, 5m
    rows[1200][2] = rows[1200][4] = rows[1200][4] * 10_000  # 10000x spike
    dup = list(rows[900])
    dup[4] += 3.0
    rows.insert(901, dup)
    return write(tmp_path / "BTCUSDT-5m.csv", rows)


def _args(f: Path, out: Path, *extra: str) -> list[str]:
    return ["backtest", "--data", str(f), "--symbols", "BTCUSDT", "--strategy", "static_grid",
            "--from", "2025-01-03", "--to", "2025-01-06", "--out", str(out), *extra]


def test_issues_are_reported_with_lines(bad_file: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out"
    assert run.main(_args(bad_file, out)) == 0
    cap = capsys.readouterr()
    summary = json.loads(cap.out.strip().splitlines()[-1])
    issues = summary["data_issues"]
    assert len(issues) == 2, issues
    assert any("line 903: conflicting duplicate" in d and "line 902 kept" in d for d in issues)
    assert any("line 1203: outlier" in d for d in issues)
    assert "data issue:" in cap.err and "line 1203" in cap.err
    log = [json.loads(x) for x in (out / "gridbot.jsonl").read_text().splitlines()]
    assert sum(r["event"] == "DATA_ISSUE" for r in log) == 2
    report = json.loads((out / "report.json").read_text())
    assert sum("line 1203" in w for w in report["warnings"]) == 1
    assert "line 1203" in (out / "report.html").read_text()


def test_strict_refuses_with_one_line(bad_file: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(_args(bad_file, tmp_path / "out2", "--strict")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--strict" in err[0] and "line 903" in err[0], err
    assert "Traceback" not in "\n".join(err)


def test_issues_before_the_span_are_not_reported(bad_file: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    # both issues lie after 2025-01-04: a run that ends before them sees none, strict passes
    assert run.main(["backtest", "--data", str(bad_file), "--symbols", "BTCUSDT",
                     "--strategy", "static_grid", "--from", "2025-01-02", "--to", "2025-01-03",
                     "--out", str(tmp_path / "o3"), "--strict"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["data_issues"] == []
