"""Command-line validators (pure) and the file-system checks of the commands."""

from __future__ import annotations

import argparse
import re
from decimal import Decimal
from pathlib import Path

import pytest

from infra import cli_args as ca


@pytest.mark.parametrize("text, value", [("60", 60.0), ("0.5", 0.5), (" 2 ", 2.0)])
def test_speed_ok(text: str, value: object) -> None:
    assert ca.speed(text) == value


@pytest.mark.parametrize("text", ["0", "-3", "fast", "nan", "inf", "", "1e999", "max"])
def test_speed_rejected_naming_the_value(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
        ca.speed(text)


def test_parse_speed_is_the_one_rule() -> None:
    from supervision import launcher

    assert launcher.duration_wall_seconds("6h", "60") == 360.0
    with pytest.raises(ValueError, match="replay speed 'max'"):
        launcher.duration_wall_seconds("1h", "max")
    assert launcher.duration_wall_seconds("1h", None) == 3600.0
    with pytest.raises(ValueError, match="replay speed 0"):
        launcher.duration_wall_seconds("1h", 0)


@pytest.mark.parametrize("text, secs", [("90s", 90), ("30m", 1800), ("6h", 21600),
                                        ("2d", 172800), ("15", 15), ("1.5h", 5400)])
def test_duration_ok(text: str, secs: float) -> None:
    assert ca.duration(text) == text and ca.parse_duration(text) == secs


@pytest.mark.parametrize("text", ["abc", "-1h", "0", "0m", "6 hours", "1w", ""])
def test_duration_rejected(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(text))):
        ca.duration(text)


def test_times() -> None:
    assert ca.utc_time("2025-01-01") == "2025-01-01"
    assert ca.utc_time("2025-01-01T12:00Z") == "2025-01-01T12:00Z"
    for bad in ("2025-13-01", "2025-02-30", "yesterday", "01/02/2025", ""):
        with pytest.raises(argparse.ArgumentTypeError, match="is not a date"):
            ca.utc_time(bad)


def test_symbols() -> None:
    assert ca.symbol_list("BTCUSDT,ethusdt, SOLUSDT,") == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    for bad, msg in (("FOO", "'FOO' is not a USDT symbol"), ("BTC-USDT", "'BTC-USDT'"),
                     (",", "expected symbols"), ("BTCUSDT,btcusdt", "BTCUSDT is given twice")):
        with pytest.raises(argparse.ArgumentTypeError, match=msg):
            ca.symbol_list(bad)


def test_walk_forward_uses_the_models_rule() -> None:
    assert ca.walk_forward("30:7") == "30:7"
    for bad, msg in (("30", "expected TRAIN_DAYS:TEST_DAYS"), ("0:7", ">= 1 day"),
                     ("a:b", "whole numbers"), ("30:7:1", "expected")):
        with pytest.raises(argparse.ArgumentTypeError, match=msg) as e:
            ca.walk_forward(bad)
        assert not str(e.value).startswith("walk-forward")  # the option is named by run.py


def test_numbers() -> None:
    assert ca.positive_decimal("10000.5") == Decimal("10000.5")
    for bad in ("-5", "0", "abc", "inf", "NaN"):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(bad))):
            ca.positive_decimal(bad)
    assert ca.positive_seconds("45") == 45.0
    for bad in ("-1", "0", "x", "inf"):
        with pytest.raises(argparse.ArgumentTypeError):
            ca.positive_seconds(bad)
    assert ca.kline_interval("1m") == "1m"
    with pytest.raises(argparse.ArgumentTypeError, match="'7x' is not a kline interval"):
        ca.kline_interval("7x")
    with pytest.raises(argparse.ArgumentTypeError, match="empty path"):
        ca.path(" ")


def test_file_checks(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_text("x")
    ca.check_input_file(f, "--x")
    with pytest.raises(ca.CliError, match="no such file"):
        ca.check_input_file(tmp_path / "nope", "--x")
    with pytest.raises(ca.CliError, match="is a directory"):
        ca.check_input_file(tmp_path, "--x")
    ca.check_output_dir(tmp_path, "--out")
    ca.check_output_dir(tmp_path / "new", "--out")
    with pytest.raises(ca.CliError, match="exists and is not a directory") as e:
        ca.make_output_dir(f, "--out")
    assert e.value.lines == [f"--out {f}: exists and is not a directory"] and e.value.code == 2
    with pytest.raises(ca.CliError, match="cannot create the directory"):
        ca.make_output_dir(f / "sub", "--out")
    assert ca.make_output_dir(tmp_path / "a" / "b", "--out").is_dir()
