"""The CLI: every subcommand and option has help; every bad argument is one line on stderr
(``gridbot CMD: ...``), never a traceback, exit 2 (1 when the input is fine but there is
nothing to act on, e.g. no bot running)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import run
from infra.cli_parser import subparser_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("cmd", [c for c in run.SUBCOMMANDS])
def test_help_for_every_subcommand(cmd: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main([cmd, "--help"]) == 0
    assert "usage:" in capsys.readouterr().out


def test_config_check_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert run.main(["config", "check", "--help"]) == 0
    assert "FILE" in capsys.readouterr().out.upper()


def _parsers() -> list[tuple[str, object]]:
    import argparse

    out: list[tuple[str, object]] = []

    def walk(name: str, p: argparse.ArgumentParser) -> None:
        out.append((name, p))
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for sub_name, sp in a.choices.items():
                    walk(f"{name} {sub_name}".strip(), sp)

    walk("", run.build_parser())
    return out


@pytest.mark.parametrize("name, parser", _parsers(), ids=lambda x: x if isinstance(x, str)
                         else "")
def test_every_option_has_help(name: str, parser: object) -> None:
    missing = [a.dest for a in parser._actions  # type: ignore[attr-defined]
               if not a.help and a.dest not in ("help", "command", "config_command")]
    assert not missing, f"gridbot {name}: options without help text: {missing}"


def test_default_subcommand_is_run() -> None:
    parser = run.build_parser()
    args = parser.parse_args(["run", "--duration", "6h"])
    assert args.command == "run" and args.duration == "6h"


def test_console_script_entry_point() -> None:
    proc = subprocess.run([sys.executable, "-c", "import run; raise SystemExit(run.main(['--help']))"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "gridbot" in proc.stdout


def test_run_on_live_without_keys_exits_2(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    cfg = tmp_path / "live.json"
    cfg.write_text(json.dumps({"venue": "live"}))
    assert run.main(["run", "--config", str(cfg), "--state-dir", str(tmp_path / "s")]) == 2
    assert not (tmp_path / "s").exists()


# -- every bad argument: one line, no traceback --------------------------------------------------
@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "bad.json").write_text("{")
    (tmp_path / "array.json").write_text("[1]")
    (tmp_path / "semantic.json").write_text(json.dumps({"portfolio": {"leverage_cap": -1}}))
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "empty.jsonl").write_text("")
    return {"tmp": str(tmp_path), "bad": str(tmp_path / "bad.json"),
            "array": str(tmp_path / "array.json"), "semantic": str(tmp_path / "semantic.json"),
            "dir": str(tmp_path / "dir"), "file": str(tmp_path / "file"),
            "nope": str(tmp_path / "nope.json"), "empty": str(tmp_path / "empty.jsonl"),
            "state": str(tmp_path / "state")}


#: (argv, expected exit code, text the one stderr line must contain). ``{name}`` are files.
CASES: list[tuple[list[str], int, str]] = [
    # top level
    (["nosuch"], 2, "'nosuch' is not a command"),
    (["--bogus"], 2, "gridbot run: unrecognized arguments: --bogus"),
    # run
    (["run", "--speed", "-3"], 2, "--speed '-3': must be a finite number > 0"),
    (["run", "--speed", "0"], 2, "--speed '0': must be"),
    (["run", "--speed", "fast"], 2, "--speed 'fast' is not a number"),
    (["run", "--speed", "nan"], 2, "--speed 'nan'"),
    (["run", "--speed", "max"], 2, "--speed 'max': the embedded exchange would replay faster "
                                   "than the bot can trade"),
    (["run", "--duration", "abc"], 2, "--duration 'abc' is not a duration"),
    (["run", "--duration", "-1h"], 2, "--duration '-1h' is not a duration"),
    (["run", "--duration", "0"], 2, "--duration '0': must be > 0"),
    (["--duration", "abc"], 2, "gridbot run: --duration 'abc'"),
    (["run", "--config", "{nope}"], 2, "cannot read {nope}: No such file"),
    (["run", "--config", "{dir}"], 2, "cannot read {dir}: Is a directory"),
    (["run", "--config", "{bad}"], 2, "{bad}: $: invalid JSON"),
    (["run", "--config", "{array}"], 2, "{array}: $: must be a JSON object"),
    (["run", "--config", "{semantic}"], 2, "{semantic}: $.portfolio.leverage_cap: must be > 0"),
    (["run", "--config", ""], 2, "--config: empty path"),
    (["run", "--sim-urls", "{nope}"], 2, "--sim-urls {nope}: no such file"),
    (["run", "--sim-urls", "{dir}"], 2, "--sim-urls {dir}: is a directory"),
    (["run", "--sim-urls", "{bad}"], 2, "--sim-urls {bad}: not the JSON object"),
    (["run", "--log-dir", "{file}"], 2, "--log-dir {file}: exists and is not a directory"),
    (["run", "--state-dir", "{file}"], 2, "--state-dir {file}: exists and is not a directory"),
    (["run", "extra"], 2, "unrecognized arguments: extra"),
    # status / stop / resume
    (["status", "--state-dir", "{state}"], 1, "no gridbot is running (state dir {state})"),
    (["stop", "--state-dir", "{state}"], 1, "gridbot stop: no gridbot is running"),
    (["resume", "--state-dir", "{state}"], 1, "gridbot resume: no gridbot is running"),
    (["status", "--config", "{bad}"], 2, "gridbot status: {bad}: $: invalid JSON"),
    (["status", "--config", "{nope}"], 2, "gridbot status: cannot read {nope}"),
    (["stop", "--mode", "sideways"], 2, "--mode 'sideways': invalid choice (choose from "
                                        "flatten, cancel-only, leave)"),
    (["resume", "--safe-mode=yes"], 2, "--safe-mode: ignored explicit argument 'yes'"),
    # sim (argparse level; its own config errors belong to exchange_sim/cli.py)
    (["sim", "--port", "abc"], 2, "--port 'abc': expected a whole number"),
    (["sim", "--market", "options"], 2, "--market 'options': invalid choice"),
    (["sim", "--speed", "fast"], 2, "--speed 'fast': not a number"),
    (["sim", "--speed", "nan"], 2, "--speed 'nan': must be a finite number"),
    (["sim", "--speed", "-3"], 2, "--speed '-3': must be a finite number >= 0"),
    # backtest
    (["backtest", "--from", "2025-13-01"], 2, "--from '2025-13-01' is not a date"),
    (["backtest", "--from", "yesterday"], 2, "--from 'yesterday' is not a date"),
    (["backtest", "--to", "2025-02-30"], 2, "--to '2025-02-30' is not a date"),
    (["backtest", "--from", "2025-01-05", "--to", "2025-01-04"], 2,
     "empty range: --to 2025-01-04 is not after --from 2025-01-05"),
    (["backtest", "--to", "2024-06-01"], 2,
     "--to 2024-06-01 is not after --from 2025-01-01 (the default)"),
    (["backtest", "--symbols", "FOO"], 2, "--symbols 'FOO' is not a USDT symbol"),
    (["backtest", "--symbols", "BTCUSDT,btc"], 2, "--symbols 'btc' is not a USDT symbol"),
    (["backtest", "--symbols", ","], 2, "--symbols ','"),
    (["backtest", "--symbols", "BTCUSDT,btcusdt"], 2, "BTCUSDT is given twice"),
    (["backtest", "--symbols", "XRPUSDT"], 2, "XRPUSDT: no futures symbol filters"),
    (["backtest", "--market", "options"], 2, "--market 'options': invalid choice"),
    (["backtest", "--strategy", "martingale"], 2, "--strategy 'martingale': invalid choice"),
    (["backtest", "--walk-forward", "30"], 2, "--walk-forward '30': expected TRAIN_DAYS:TEST"),
    (["backtest", "--walk-forward", "0:7"], 2, "--walk-forward '0:7': both windows"),
    (["backtest", "--walk-forward", "a:b"], 2, "--walk-forward 'a:b': days must be whole"),
    (["backtest", "--balance", "-5"], 2, "--balance '-5': must be > 0"),
    (["backtest", "--balance", "0"], 2, "--balance '0': must be > 0"),
    (["backtest", "--balance", "abc"], 2, "--balance 'abc' is not a number"),
    (["backtest", "--fill-interval", "7x"], 2, "--fill-interval '7x' is not a kline interval"),
    (["backtest", "--out", "{file}"], 2, "--out {file}: exists and is not a directory"),
    (["backtest", "--data", "{nope}"], 2, "--data {nope}: no such file or directory"),
    (["backtest", "--config", "{bad}"], 2, "gridbot backtest: {bad}: $: invalid JSON"),
    (["backtest", "--config", "{nope}"], 2, "gridbot backtest: cannot read {nope}"),
    (["backtest", "--persist", "--no-persist"], 2, "--no-persist: not allowed with"),
    (["backtest", "--speed", "3"], 2, "unrecognized arguments: --speed 3"),
    # report
    (["report", "{nope}", "--out", "{tmp}/r"], 2, "log file not found"),
    (["report", "{bad}", "--out", "{tmp}/r"], 2, "not a JSON-lines log"),
    (["report", "{empty}", "--out", "{tmp}/r"], 2, "no EQUITY events"),
    (["report", "{dir}", "--out", "{tmp}/r"], 2, "no gridbot*.jsonl"),
    (["report", "{empty}", "--out", "{file}"], 2, "--out {file}: exists and is not a dir"),
    (["report", "{empty}"], 2, "required: --out"),
    # acceptance
    (["acceptance", "--stable-seconds", "-1"], 2, "--stable-seconds '-1': must be > 0"),
    (["acceptance", "--stable-seconds", "abc"], 2, "--stable-seconds 'abc' is not a number"),
    (["acceptance", "--venue", "live"], 2, "--venue 'live': invalid choice"),
    (["acceptance", "--config", "{bad}"], 2, "gridbot acceptance: {bad}: $: invalid JSON"),
    (["acceptance", "--venue", "testnet"], 2, "needs BINANCE_API_KEY and BINANCE_API_SECRET"),
    # config
    (["config"], 2, "gridbot config: the following arguments are required: ACTION"),
    (["config", "lint"], 2, "'lint' is not a config action (choose from check)"),
    (["config", "check"], 2, "gridbot config check: the following arguments are required"),
    (["config", "check", "{nope}"], 2, "gridbot config check: cannot read {nope}: No such"),
    (["config", "check", "{dir}"], 2, "gridbot config check: cannot read {dir}: Is a dir"),
]


def _fill(text: str, files: dict[str, str]) -> str:
    for k, v in files.items():
        text = text.replace("{" + k + "}", v)
    return text


def _cmd_of(argv: list[str]) -> str:
    if not argv or argv[0].startswith("-"):
        return "run"
    if argv[0] == "config" and len(argv) > 1 and argv[1] == "check":
        return "config check"
    return argv[0] if argv[0] in run.SUBCOMMANDS else ""


def _assert_one_line(err: str, argv: list[str], expect: str) -> None:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, f"{argv}: expected one stderr line, got:\n{err}"
    assert "Traceback" not in err
    cmd = _cmd_of(argv)
    assert lines[0].startswith(f"gridbot {cmd}:".replace(" :", ":")), lines[0]
    assert expect in lines[0], f"{argv}: {expect!r} not in {lines[0]!r}"


@pytest.mark.parametrize("argv, code, expect", CASES, ids=lambda x: " ".join(x)
                         if isinstance(x, list) else None)
def test_bad_argument_is_one_line(argv: list[str], code: int, expect: str,
                                  files: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("BINANCE_API_KEY", raising=False)
    monkeypatch.delenv("BINANCE_API_SECRET", raising=False)
    monkeypatch.setenv("HOME", files["tmp"])  # a default backtest --out would land here
    monkeypatch.chdir(files["tmp"])
    argv = [_fill(a, files) for a in argv]
    assert run.main(argv) == code
    out, err = capsys.readouterr()
    _assert_one_line(err, argv, _fill(expect, files))
    assert not (Path(files["tmp"]) / "gridbot-backtests").exists()
    assert not (Path(files["tmp"]) / "r").exists()


def _cli(*argv: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
         timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


@pytest.mark.parametrize("argv, expect", [
    (["run", "--speed", "fast"], "--speed 'fast'"),
    (["--duration", "-1h"], "--duration '-1h'"),
    (["backtest", "--from", "yesterday"], "--from 'yesterday'"),
    (["config", "check", "{nope}"], "cannot read"),
    (["report", "{nope}", "--out", "{tmp}/r"], "log file not found"),
    (["sim", "--market", "x"], "--market 'x'"),
], ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_no_traceback_reaches_stderr(argv: list[str], expect: str,
                                     files: dict[str, str]) -> None:
    argv = [_fill(a, files) for a in argv]
    p = _cli(*argv)
    assert p.returncode == 2, p.stderr
    _assert_one_line(p.stderr, argv, expect)
    assert p.stdout == ""


def test_status_json_without_a_bot(files: dict[str, str]) -> None:
    p = _cli("status", "--json", "--state-dir", files["state"])
    assert p.returncode == 1
    assert json.loads(p.stdout) == {"running": False, "state_dir": files["state"]}
    _assert_one_line(p.stderr, ["status"], "no gridbot is running")


def test_config_check_reports_every_error_on_stdout(files: dict[str, str]) -> None:
    cfg = Path(files["tmp"]) / "many.json"
    cfg.write_text(json.dumps({"portfolio": {"utilization": "high", "leverage_cap": -1},
                               "gateway": {"recv_window_ms": "5s"}, "oms": {"prefix": "x"}}))
    p = _cli("config", "check", str(cfg))
    assert p.returncode == 2 and p.stderr == ""
    assert p.stdout.splitlines() == [
        "$.portfolio.utilization: expected `float`, got `str`",
        "$.gateway.recv_window_ms: expected `int`, got `str`",
        "$.oms.prefix: unknown key",
        "$.portfolio.leverage_cap: must be > 0"]
    assert _cli("config", "check", files["bad"]).stdout.startswith("$: invalid JSON")


def _closed_pipe() -> int:
    r, w = os.pipe()
    os.close(r)
    return w


@pytest.mark.parametrize("unbuffered", ["", "1"])
@pytest.mark.parametrize("argv", [["--help"], ["backtest", "--help"],
                                  ["status", "--json", "--state-dir", "{state}"]])
def test_closed_stdout_exits_quietly(argv: list[str], unbuffered: str,
                                     files: dict[str, str]) -> None:
    # `gridbot status | head -1`: the reader goes away; no BrokenPipeError on stderr
    w = _closed_pipe()
    try:
        p = subprocess.run([sys.executable, str(ROOT / "run.py"),
                            *[_fill(a, files) for a in argv]],
                           stdout=w, stderr=subprocess.PIPE, text=True, timeout=60, cwd=ROOT,
                           env={**os.environ, "PYTHONUNBUFFERED": unbuffered})
    finally:
        os.close(w)
    assert "Traceback" not in p.stderr and "BrokenPipe" not in p.stderr, p.stderr
    code = 1 if argv[0] == "status" else 0
    if unbuffered:  # the write inside the command fails: its exit code is not known
        assert p.returncode in (0, code)
    else:  # buffered: the command finished, the final flush fails: its own exit code
        assert p.returncode == code


def test_help_piped_into_head() -> None:
    p = subprocess.run(f"{sys.executable} {ROOT / 'run.py'} --help | head -1", shell=True,
                       capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert p.stdout.startswith("usage: gridbot") and p.stderr == ""


def test_dash_value_is_glued_to_its_option() -> None:
    parser = run.build_parser()
    sub = subparser_for(parser, ["run"])
    assert sub is not None
    assert sub.glue_dash_values(["--duration", "-1h", "--speed", "-3", "--config", "c.json"]) \
        == ["--duration=-1h", "--speed=-3", "--config", "c.json"]
    # an option after a value-taking option is left alone (argparse: "expected one argument")
    assert sub.glue_dash_values(["--duration", "--speed", "3"]) == ["--duration", "--speed", "3"]


def test_bare_import_error_surfaces(monkeypatch: pytest.MonkeyPatch) -> None:
    # no "not available yet" fallback any more: a missing module is a bug and says so
    monkeypatch.setitem(sys.modules, "supervision.status", None)  # import raises
    with pytest.raises(ModuleNotFoundError):
        run.main(["status", "--state-dir", "/nonexistent"])
