"""The launcher and the operator commands, end to end in subprocesses (python run.py ...)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import dummy_actors
import pytest

import run
from supervision import launcher, netsec

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _config(tmp: Path, **sup: Any) -> Path:
    cfg = {
        "portfolio": {"symbols": ["BTCUSDT", "ETHUSDT"],
                      "weights": {"BTCUSDT": 0.6, "ETHUSDT": 0.4},
                      "markets": {"BTCUSDT": "futures", "ETHUSDT": "futures"}},
        "supervision": {"heartbeat_interval_s": 0.3, "heartbeat_timeout_s": 2.0,
                        "restart_backoff_s": 0.05, "shutdown_timeout_s": 5.0, **sup},
    }
    path = tmp / "cfg.json"
    path.write_text(json.dumps(cfg))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(HERE), str(REPO), env.get("PYTHONPATH", "")])
    env["GRIDBOT_ACTOR_CLASSES"] = json.dumps(dummy_actors.CLASSES)
    return env


def _cli(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "run.py"), *argv], capture_output=True,
                          text=True, timeout=timeout, env=_env(), cwd=str(REPO))


class Bot:
    """``python run.py run`` in its own session (like a service), with dummy actors."""

    def __init__(self, tmp: Path, **sup: Any) -> None:
        self.state = tmp / "state"
        (self.state / "ctl").mkdir(parents=True, exist_ok=True)
        cfg = tmp / "cfg.json" if (tmp / "cfg.json").exists() and not sup else _config(tmp, **sup)
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "run.py"), "run", "--config", str(cfg),
             "--state-dir", str(self.state), "--log-dir", str(tmp / "logs")],
            env=_env(), cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            start_new_session=True)
        deadline = time.monotonic() + 40
        while launcher.bot_is_running(self.state) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError(f"bot did not start: {self.proc.communicate()}")
            time.sleep(0.1)
        self.info = launcher.read_bot_file(self.state) or {}

    def wait(self, timeout: float = 40) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        sid = getattr(self, "info", {}).get("session")
        launcher.kill_session(sid, 0.5)


@pytest.fixture
def bot(tmp_path: Path) -> Any:
    b = Bot(tmp_path)
    yield b
    b.kill()


def test_status_stop_resume_without_a_bot_say_so(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("status", "stop", "resume"):
        assert run.main([cmd, "--state-dir", str(tmp_path)]) == 1
        assert f"no gridbot is running (state dir {tmp_path})" in capsys.readouterr().err


def test_stale_bot_file_is_not_a_running_bot(tmp_path: Path) -> None:
    launcher.write_bot_file(tmp_path, {"pid": 1, "admin_port": netsec.free_port()})
    assert launcher.bot_is_running(tmp_path) is None
    assert run.main(["status", "--state-dir", str(tmp_path)]) == 1


def test_bad_config_exits_2_listing_every_error(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"supervision": {"max_restarts": -1, "heartbeat_timeout_s": 0.1},
                               "nonsense": 1}))
    assert run.main(["run", "--config", str(bad), "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "$.nonsense: unknown key" in err
    assert not (tmp_path / "s").exists()  # nothing started
    bad.write_text(json.dumps({"supervision": {"max_restarts": -1, "heartbeat_timeout_s": 0.1}}))
    assert run.main(["run", "--config", str(bad), "--state-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "max_restarts" in err and "heartbeat_timeout_s" in err


def test_corrupt_state_db_refuses_to_start_and_is_untouched(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    state.mkdir()
    db = state / "BTCUSDT.db"
    db.write_bytes(b"this is not sqlite" * 100)
    before = db.read_bytes()
    assert run.main(["run", "--config", str(_config(tmp_path)), "--state-dir", str(state)]) == 1
    assert "BTCUSDT.db" in capsys.readouterr().err
    assert db.read_bytes() == before
    # only the state dir's lock file (taken before the check, kept: unlinking it would race)
    assert sorted(p.name for p in state.iterdir()) == ["BTCUSDT.db", "bot.lock"]


def test_status_json_then_stop_with_mode(bot: Bot) -> None:
    res = _cli("status", "--json", "--state-dir", str(bot.state))
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["bot"]["pid"] == bot.proc.pid
    for sym in ("BTCUSDT", "ETHUSDT"):
        acts = data["symbols"][sym]["tree"]["actors"]
        assert [a["name"] for a in acts] == ["gateway", "order", "risk", "strategy"]
        assert all(a["pid"] > 0 and a["state"] == "running" for a in acts)
    assert data["portfolio"]["status"]["leverage_cap"] == 6.0
    # the launcher's own sockets are loopback-only too
    assert all(h == "127.0.0.1" for h, _ in netsec.listening_sockets(bot.proc.pid))

    text = _cli("status", "--state-dir", str(bot.state))
    assert text.returncode == 0 and "BTCUSDT  running" in text.stdout
    assert "leverage 0.5 / cap 6.0" in text.stdout

    res = _cli("stop", "--mode", "cancel-only", "--state-dir", str(bot.state))
    assert res.returncode == 0, res.stderr
    assert bot.wait() == 0
    assert (bot.state / "ctl" / "BTCUSDT.order.stop.cancel-only").exists()
    assert (bot.state / "ctl" / "ETHUSDT.order.stop.cancel-only").exists()
    assert not (bot.state / launcher.BOT_FILE).exists()
    assert netsec.session_pids(bot.info["session"]) == []


def test_sigint_flattens_persists_and_exits_0(bot: Bot) -> None:
    bot.proc.send_signal(signal.SIGINT)
    assert bot.wait() == 0
    assert (bot.state / "ctl" / "BTCUSDT.order.stop.flatten").exists()
    assert not (bot.state / launcher.BOT_FILE).exists()
    assert netsec.session_pids(bot.info["session"]) == []
    from infra.store import StateStore

    for sym in ("BTCUSDT", "ETHUSDT"):
        with StateStore(bot.state / f"{sym}.db") as s:
            assert set(s.snapshot_ages()) == {"gateway", "order", "risk", "strategy"}


def test_forced_kill_of_the_launcher_group_then_restart_recovers_state(tmp_path: Path) -> None:
    b = Bot(tmp_path)
    try:
        sid = b.info["session"]
        assert netsec.session_pids(sid)
        os.killpg(os.getpgid(b.proc.pid), signal.SIGKILL)  # kill -9 of the launcher's group
        b.proc.wait(10)
        # the orphaned actor system notices and goes down by itself (nothing trades unattended)
        deadline = time.monotonic() + 20
        while netsec.session_pids(sid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert netsec.session_pids(sid) == []
        assert (b.state / launcher.BOT_FILE).exists()  # stale, but its port no longer answers
    finally:
        b.kill()
    again = Bot(tmp_path)  # same state dir
    try:
        data = json.loads(_cli("status", "--json", "--state-dir", str(b.state)).stdout)
        for sym in ("BTCUSDT", "ETHUSDT"):
            for a in data["symbols"][sym]["tree"]["actors"]:
                assert a["status"]["starts"] == 2  # restored from the snapshot of the first run
        again.proc.send_signal(signal.SIGTERM)
        assert again.wait() == 0
    finally:
        again.kill()


def test_second_sigint_skips_flattening_but_still_persists(tmp_path: Path) -> None:
    b = Bot(tmp_path, shutdown_timeout_s=30.0)
    try:
        (b.state / "ctl" / "BTCUSDT.order.noack.flatten").touch()  # flattening never confirms
        b.proc.send_signal(signal.SIGINT)
        stop_flag = b.state / "ctl" / "BTCUSDT.order.stop.flatten"
        deadline = time.monotonic() + 10
        while not stop_flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stop_flag.exists()
        assert b.proc.poll() is None  # still waiting for the flatten confirmation
        b.proc.send_signal(signal.SIGINT)
        assert b.wait(timeout=20) == 0  # well before shutdown_timeout_s
        assert (b.state / "ctl" / "BTCUSDT.order.stop.cancel-only").exists()
        assert netsec.session_pids(b.info["session"]) == []
        from infra.store import StateStore

        with StateStore(b.state / "BTCUSDT.db") as s:
            assert set(s.snapshot_ages()) == {"gateway", "order", "risk", "strategy"}
    finally:
        b.kill()


def test_duration_parsing_and_speed_scaling() -> None:
    assert launcher.parse_duration("90m") == 5400.0
    assert launcher.parse_duration("2d") == 172800.0
    assert launcher.parse_duration("15") == 15.0
    with pytest.raises(ValueError):
        launcher.parse_duration("soon")
    assert launcher.duration_wall_seconds("6h", "60") == 360.0
    assert launcher.duration_wall_seconds(None, "60") is None
    assert launcher.duration_wall_seconds("1h", None) == 3600.0  # no speed: wall time


def test_bot_file_is_written_atomically_and_removed_only_by_its_owner(tmp_path: Path) -> None:
    launcher.write_bot_file(tmp_path, {"pid": 42, "admin_port": 1})
    assert launcher.read_bot_file(tmp_path) == {"pid": 42, "admin_port": 1}
    assert [p.name for p in tmp_path.iterdir()] == [launcher.BOT_FILE]  # no temp file left
    launcher.remove_bot_file(tmp_path, pid=7)
    assert launcher.read_bot_file(tmp_path) is not None
    launcher.remove_bot_file(tmp_path, pid=42)
    assert launcher.read_bot_file(tmp_path) is None


def test_duration_stops_the_bot_by_itself(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "ctl").mkdir(parents=True)
    res = _cli("run", "--config", str(_config(tmp_path)), "--state-dir", str(state),
               "--log-dir", str(tmp_path / "logs"), "--duration", "2s")
    assert res.returncode == 0, res.stderr
    assert "--duration reached" in res.stderr and "session summary" in res.stderr
    assert '"DURATION_REACHED"' in (tmp_path / "logs" / "gridbot.jsonl").read_text()
    assert (state / "ctl" / "BTCUSDT.order.stop.flatten").exists()
    assert not (state / launcher.BOT_FILE).exists()


def test_duration_on_the_sim_clock_stops_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """--duration on the embedded exchange counts the exchange's clock, not wall time."""
    from models.config import Config
    from models.messages import TradingStopped

    class FakeSystem:
        def tell(self, addr: object, msg: object) -> None:
            pass

        def listen(self, timeout: float) -> object:
            return TradingStopped()

    sim = {"ms": 1_000}

    def clock() -> int:
        sim["ms"] += 600_000  # ten sim minutes per look
        return sim["ms"]

    logged: list[str] = []
    monkeypatch.setattr(launcher, "log_event", lambda ev, *a, **k: logged.append(ev))
    t0 = time.monotonic()
    code = launcher._run_until_stopped(FakeSystem(), None, Config(), Path("/nonexistent"),
                                       launcher._Signals(), None, (clock, 1_000, 3_600_000))
    assert code == 0 and "DURATION_REACHED" in logged
    assert 6 * 600_000 <= sim["ms"] - 1_000 <= 8 * 600_000  # stopped after an hour of sim time
    assert time.monotonic() - t0 < 5.0


def test_an_unexpected_thespian_is_one_line_not_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from supervision import thespian_compat

    def refuse() -> None:
        raise thespian_compat.ThespianCompatError("thespian 9.9 is installed; gridbot's "
                                                  "adapter was written for 4.0.1")

    monkeypatch.setattr(thespian_compat, "check", refuse)
    code = run.main(["run", "--state-dir", str(tmp_path / "s"), "--log-dir",
                     str(tmp_path / "l")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err == ("gridbot run: thespian 9.9 is installed; gridbot's adapter "
                                 "was written for 4.0.1")
    assert not (tmp_path / "s").exists()  # nothing was started
