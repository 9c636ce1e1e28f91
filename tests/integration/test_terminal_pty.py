"""What a trader sees: ``python run.py`` in a pseudo-terminal for a few sim hours on the
embedded exchange. Its stderr (the terminal) shows fills, a portfolio STATUS line, the stop and
the session summary, in colour, with sim time next to wall time, and no traceback."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from exchange_sim.marketdata import default_data_dir

REPO = Path(__file__).resolve().parents[2]
ANSI = re.compile(r"\x1b\[[0-9;]*m")
pytestmark = pytest.mark.skipif(default_data_dir() is None, reason="needs ../shared/data")


def _run_in_pty(args: list[str], env: dict[str, str], timeout_s: float) -> tuple[int, str]:
    """Run ``args`` with stderr on a pseudo-terminal (stdout a pipe); return (rc, stderr)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(args, cwd=str(REPO), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=slave, env=env,
                            start_new_session=True)
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every writer of the terminal has closed it
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
        if proc.stdout is not None:
            proc.stdout.close()
    return rc, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def test_terminal_shows_the_bot_at_work(tmp_path: Path) -> None:
    cfg = {"portfolio": {"symbols": ["BTCUSDT", "ETHUSDT", "SOLUSDT"],
                         "weights": {"BTCUSDT": 0.45, "ETHUSDT": 0.35, "SOLUSDT": 0.2}},
           "supervision": {"status_interval_s": 3.0}}
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    env["TERM"] = "xterm"
    rc, raw = _run_in_pty(
        [sys.executable, str(REPO / "run.py"), "--config", str(tmp_path / "cfg.json"),
         "--duration", "4h", "--speed", "600", "--state-dir", str(tmp_path / "state"),
         "--log-dir", str(tmp_path / "logs")], env, timeout_s=90)
    text = ANSI.sub("", raw)
    (tmp_path / "terminal.txt").write_text(raw)
    assert rc == 0, text[-3000:]
    assert "Traceback" not in text, text
    assert "\x1b[" in raw  # a terminal: coloured
    lines = text.splitlines()
    sim = r"\d\d:\d\d:\d\d  sim 20\d\d-\d\d-\d\d \d\d:\d\d  "
    fills = [ln for ln in lines if re.match(sim + r"[A-Z]+USDT\s+FILL\s+(BUY|SELL) ", ln)]
    status = [ln for ln in lines if re.match(sim + r"\s+STATUS\s+equity [\d,]+\.\d\d USDT", ln)]
    assert fills, text
    assert len(status) == 1, text  # status every 3 s, shown once a minute
    assert re.search(r"pos .*orders \d+", status[0]), status[0]
    assert any(re.search(r"STOP\s+graceful shutdown \(mode flatten\)", ln) for ln in lines)
    # the summary, after the exchange stopped, with the figures of this session's log
    at = next(i for i, ln in enumerate(lines) if ln.startswith("-- session summary ("))
    summary = "\n".join(lines[at:])
    assert any("embedded exchange stopped" in ln for ln in lines[:at])
    for label in (r"net PnL  [+-]?[\d,]+\.\d\d USDT", r"fees [\d,.]+", r"funding [+-]?[\d,.]+",
                  r"trades   \d+ closed", r"fills \d+", r"max drawdown -?\d+\.\d\d%",
                  r"equity   10,000\.00 -> [\d,]+\.\d\d USDT"):
        assert re.search(label, summary), (label, summary)
    n_fills = int(re.search(r"fills (\d+)", summary).group(1))  # type: ignore[union-attr]
    logged = [json.loads(x) for x in (tmp_path / "logs" / "gridbot.jsonl").read_text()
              .splitlines()]
    assert n_fills == sum(1 for e in logged if e["event"] == "ORDER_FILLED") == len(fills)
    # quiet by default on what a trader does not need
    assert not [ln for ln in lines if re.search(r"USDT\s+(order|cancel|amend|status)\s", ln)
                or "STRATEGY" in ln]
