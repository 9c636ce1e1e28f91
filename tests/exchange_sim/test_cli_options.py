"""``python run.py sim`` options: by default the sim replays what the bot's config trades;
``--sim-config`` and the options override it; bad input is one line and exit 2."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from exchange_sim.cli import config_from_args, run_from_args
from exchange_sim.cli_options import add_arguments
from infra.config_io import load_config
from models.config import replay_for_bot

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _keep_test_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """run_from_args replaces loguru's sinks (right for the command, not for a test run)."""
    class _Quiet:
        def remove(self, *a: object) -> None: ...
        def add(self, *a: object, **k: object) -> int: return 0
        def info(self, *a: object, **k: object) -> None: ...

    monkeypatch.setattr("exchange_sim.cli.logger", _Quiet())


def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_arguments(p)
    return p.parse_args(list(argv))


def test_defaults_are_the_bot_defaults() -> None:
    cfg = config_from_args(_args())
    bot = load_config(None)
    assert cfg.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT") == tuple(bot.portfolio.symbols)
    assert cfg.market == "futures" and cfg.interval == "5m"
    assert cfg.warmup_bars == replay_for_bot(bot)["warmup_bars"] > 288  # a day of 5m bars
    assert cfg.speed == 60.0 and cfg.state_file is None  # the config's speed, no state


def test_another_bot_config_and_overrides(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "conf" / "default.json").read_text())
    doc["portfolio"].update(symbols=["BTCUSDT", "ETHUSDT"], weights={"BTCUSDT": 0.5,
                                                                     "ETHUSDT": 0.5},
                            markets={"BTCUSDT": "spot", "ETHUSDT": "futures"})
    bot = tmp_path / "bot.json"
    bot.write_text(json.dumps(doc))
    cfg = config_from_args(_args("--config", str(bot)))
    assert cfg.symbols == ("BTCUSDT", "ETHUSDT") and cfg.market == "both"
    sim = tmp_path / "sim.json"
    sim.write_text(json.dumps({"symbols": ["SOLUSDT"], "market": "spot", "seed": 7}))
    cfg = config_from_args(_args("--config", str(bot), "--sim-config", str(sim),
                                 "--market", "futures"))
    assert cfg.symbols == ("SOLUSDT",) and cfg.market == "futures" and cfg.seed == 7


def test_a_data_file_replays_its_own_symbol_and_interval(tmp_path: Path) -> None:
    f = tmp_path / "ETHUSDT-1h-20250101-20250201.csv"
    f.write_text("open_time,open,high,low,close,volume\n")
    cfg = config_from_args(_args("--data", str(f)))
    assert cfg.symbols == ("ETHUSDT",) and cfg.interval == "1h" and cfg.data_file == str(f)
    other = tmp_path / "mine.csv"
    other.write_text("")
    cfg = config_from_args(_args("--data", str(other), "--symbols", "SOLUSDT"))
    assert cfg.symbols == ("SOLUSDT",)


@pytest.mark.parametrize("content", ['{"portfolio": {"leverage_cap": "x"}}', "{not json"])
def test_a_bad_bot_config_is_one_line_and_exit_2(tmp_path: Path, content: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert run_from_args(_args("--config", str(bad))) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("gridbot sim: ") and str(bad) in err


def test_unusable_data_or_start_is_one_line_and_exit_2(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    f = tmp_path / "BTCUSDT-5m-20250101-20250101.csv"
    f.write_text("open_time,open,high,low,close,volume\n" + "".join(
        f"{1_735_689_600_000 + i * 300_000},100,101,99,100.5,10\n" for i in range(3)))
    for argv, says in (
            (["--data", str(f), "--start", "2030-01-01"],
             "start 2030-01-01T00:00:00Z is after the last bar (the data ends at "
             "2025-01-01T00:15:00Z)"),
            (["--data", str(tmp_path / "nowhere")], "does not exist")):
        assert run_from_args(_args("--speed", "0", *argv)) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("gridbot sim: cannot start: ")
        assert says in err
