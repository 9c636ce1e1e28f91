"""``run.py optimize`` end to end on a tiny real span: outputs, a best config that loads,
refusing 2026 and bad input in one line, and resuming after Ctrl-C."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import run
from exchange_sim.marketdata import default_data_dir

REPO = Path(__file__).resolve().parents[2]
needs_data = pytest.mark.skipif(default_data_dir() is None, reason="needs ../shared/data")
TINY = ["--symbols", "BTCUSDT", "--from", "2025-01-01", "--to", "2025-01-22",
        "--walk-forward", "7:7"]


def _complete(out: Path) -> list[tuple[int, str]]:
    conn = sqlite3.connect(out / "study.db")
    try:
        return conn.execute("SELECT number, state FROM trials ORDER BY number").fetchall()
    finally:
        conn.close()


def test_a_span_reaching_2026_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = run.main(["optimize", "--study", "x", "--out", str(tmp_path / "o"),
                     "--from", "2025-06-01", "--to", "2026-02-01"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "out-of-sample" in err[0], err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("argv, fragment", [
    (["--trials", "0"], "--trials"),
    (["--jobs", "-1"], "--jobs"),
    (["--walk-forward", "7"], "--walk-forward"),
    (["--from", "2025-13-01"], "--from"),
    (["--objectives", "return,sharpe"], "--objectives"),
])
def test_bad_arguments_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture,
                                    argv: list[str], fragment: str) -> None:
    code = run.main(["optimize", "--study", "x", "--out", str(tmp_path / "o"), *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and fragment in err[0], err


def test_a_bad_space_reports_every_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"parameters": [{"name": "strategy.nope", "low": 0, "high": 1},
                                                {"name": "strategy.size_mult", "low": 2,
                                                 "high": 1}]}))
    code = run.main(["optimize", "--study", "x", "--out", str(tmp_path / "o"),
                     "--space", str(space)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 2, err
    assert "no such config field" in err[0] and "must be below" in err[1]


@needs_data
def test_a_study_runs_resumes_and_writes_a_loadable_config(tmp_path: Path) -> None:
    out = tmp_path / "study"
    cmd = [sys.executable, str(REPO / "run.py"), "optimize", "--study", "s1", "--out",
           str(out), *TINY, "--jobs", "1", "--seed", "3"]
    # interrupt it once at least one trial is done
    p = subprocess.Popen([*cmd, "--trials", "50"], cwd=str(REPO), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    end = time.monotonic() + 240
    while time.monotonic() < end:
        time.sleep(1.0)
        if (out / "study.db").exists() and any(s == "COMPLETE" for _, s in _complete(out)):
            break
    p.send_signal(signal.SIGINT)
    _out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert "run the same command again to resume" in err
    first = [n for n, s in _complete(out) if s == "COMPLETE"]
    assert first, err
    before = (out / "trials.csv").read_text().splitlines()[1]
    # resume with a total that is already almost reached: only the missing trials run
    target = len([1 for _, s in _complete(out) if s in ("COMPLETE", "PRUNED")]) + 1
    r = subprocess.run([*cmd, "--trials", str(target)], cwd=str(REPO), capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    states = dict(_complete(out))
    assert sum(s in ("COMPLETE", "PRUNED") for s in states.values()) == target
    assert all(states[n] == "COMPLETE" for n in first)  # earlier trials kept as they were
    assert (out / "trials.csv").read_text().splitlines()[1] == before
    assert "RUNNING" not in states.values()  # the interrupted trial was marked failed
    summary = json.loads((out / "optimize.json").read_text())
    assert summary["git_commit"] and summary["config_hash"] and summary["space"]
    assert summary["start"].startswith("2025-01-01") and len(summary["folds"]) == 2
    assert "OUT-OF-SAMPLE" not in (out / "optimize.html").read_text()
    # the best config is a ready --config
    r = subprocess.run([sys.executable, str(REPO / "run.py"), "config", "check",
                        str(out / "best_config.json")], cwd=str(REPO), capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    # a different study in the same directory is refused, not mixed in
    r = subprocess.run([*cmd[:-2], "--seed", "3", "--trials", "1", "--walk-forward", "5:5"],
                       cwd=str(REPO), capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "different walk_forward" in r.stderr, r.stderr
