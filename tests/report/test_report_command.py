"""``python run.py report`` (``report.cli``): bad input exits 2 naming the problem; CSVs derived
afresh elsewhere, kept next to the backtest's own log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import run
from tests.report.test_build import T0, _hand_log, _write


@pytest.mark.parametrize(("content", "needle"), [
    (None, "not found"),
    ("open_time,open,high,low,close,volume\n1,2,3,4,5,6\n", "not a JSON-lines log"),
    ("", "no EQUITY events"),
    (json.dumps({"ts_ms": T0, "event": "STATUS", "symbol": "BTCUSDT"}) + "\n",
     "no EQUITY events"),
])
def test_bad_input_exits_2_naming_the_problem(tmp_path: Path, content: str | None,
                                              needle: str,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "gridbot.jsonl"
    if content is not None:
        log.write_text(content)
    assert run.main(["report", str(log), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert needle in err and "error" in err
    assert not (tmp_path / "out" / "report.json").exists()


def test_cli_csvs_fresh_elsewhere_kept_next_to_the_log(tmp_path: Path) -> None:
    log = _write(tmp_path / "gridbot.jsonl", _hand_log())
    (tmp_path / "trades.csv").write_text("the backtest's own\n")
    out = tmp_path / "elsewhere"
    out.mkdir()
    (out / "trades.csv").write_text("stale, from another run\n")
    assert run.main(["report", str(log), "--out", str(out)]) == 0
    assert (out / "trades.csv").read_text().startswith("symbol,side,qty")
    assert run.main(["report", str(log), "--out", str(tmp_path)]) == 0
    assert (tmp_path / "trades.csv").read_text() == "the backtest's own\n"
