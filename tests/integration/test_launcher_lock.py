"""Two ``python run.py`` started at the same moment on one state dir: exactly one runs the bot,
the other exits 2 at once naming the holder's pid (before the lock, both reached BOT_READY and
traded one account from one store)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from exchange_sim.marketdata import default_data_dir

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="needs ../shared/data")


def test_two_launchers_on_one_state_dir_one_runs_the_other_exits_2(tmp_path: Path) -> None:
    cfg = {"portfolio": {"symbols": ["BTCUSDT"], "weights": {"BTCUSDT": 1.0},
                         "markets": {"BTCUSDT": "futures"}}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    state = tmp_path / "state"

    def launch(n: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "--config", str(tmp_path / "cfg.json"),
             "--duration", "30m", "--speed", "600", "--state-dir", str(state),
             "--log-dir", str(tmp_path / f"logs{n}"), "-q"],
            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)

    procs = [launch(0), launch(1)]
    try:
        outs = [p.communicate(timeout=120) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], (codes, [o[1][-2000:] for o in outs])
    win, lose = (0, 1) if codes[0] == 0 else (1, 0)
    err = outs[lose][1].strip().splitlines()
    assert len(err) == 1 and "Traceback" not in outs[lose][1]
    m = re.search(r"in use by pid (\d+)", err[0])
    assert m and int(m.group(1)) == procs[win].pid, err
    ready = [json.loads(x) for x in (tmp_path / f"logs{win}" / "gridbot.jsonl").read_text()
             .splitlines() if '"BOT_READY"' in x]
    assert len(ready) == 1
    assert not (tmp_path / f"logs{lose}" / "gridbot.jsonl").exists()
