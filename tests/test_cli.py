"""The CLI: every subcommand has --help; bad arguments exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cmd", [c for c in run.SUBCOMMANDS])
def test_help_for_every_subcommand(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([cmd, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_config_check_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["config", "check", "--help"]) == 0
    assert "FILE" in capsys.readouterr().out.upper()


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["no-such-command"]) == 2
    assert run.main(["config"]) == 2
    assert run.main(["backtest", "--market", "options"]) == 2


def test_default_subcommand_is_run() -> None:
    parser = run.build_parser()
    args = parser.parse_args(["run", "--duration", "6h"])
    assert args.command == "run" and args.duration == "6h"


def test_console_script_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-c", "import run; raise SystemExit(run.main(['--help']))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "gridbot" in proc.stdout


def test_run_on_live_without_keys_exits_2(tmp_path, monkeypatch) -> None:
    import json

    import run

    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    cfg = tmp_path / "live.json"
    cfg.write_text(json.dumps({"venue": "live"}))
    assert run.main(["run", "--config", str(cfg), "--state-dir", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()
