"""``python run.py acceptance --venue sim``: the Milestone-1 checks as one JSON object."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_acceptance_on_the_embedded_exchange_passes_and_reports_reconnect_time() -> None:
    r = subprocess.run([sys.executable, str(REPO / "run.py"), "acceptance", "--venue", "sim",
                        "--stable-seconds", "6"], capture_output=True, text=True, timeout=120,
                       cwd=str(REPO))
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert r.returncode == 0, (out, r.stderr[-2000:])
    assert out["venue"] == "sim" and out["pass"] is True
    names = [c["name"] for c in out["checks"]]
    assert names == ["ws_stable", "market_orders", "modifications", "cancellation", "reconnect"]
    assert all(c["pass"] for c in out["checks"])
    assert 0 < out["reconnect_s"] < 60
    assert [c for c in out["checks"] if c["name"] == "market_orders"][0]["filled"] == 5


def test_acceptance_bad_config_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"portfolio": {"leverage_cap": -1}}')
    r = subprocess.run([sys.executable, str(REPO / "run.py"), "acceptance", "--config",
                        str(bad)], capture_output=True, text=True, timeout=60, cwd=str(REPO))
    assert r.returncode == 2 and "leverage_cap" in r.stderr
