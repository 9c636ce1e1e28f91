"""Config schema: defaults match the plan, every error is reported with its JSON path."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest

from models.config import Config, parse_config
from models.enums import Venue

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = ROOT / "conf" / "default.json"


def _default() -> dict:
    return json.loads(DEFAULT.read_text())


def _errors(doc: dict) -> list[str]:
    cfg, errs = parse_config(json.dumps(doc))
    assert cfg is None
    return errs


def test_default_file_is_valid_and_has_plan_values() -> None:
    cfg, errs = parse_config(DEFAULT.read_bytes())
    assert errs == [] and cfg is not None
    p, s, r = cfg.portfolio, cfg.strategy, cfg.risk
    assert p.leverage_cap == 6.0 and p.utilization == 0.3
    assert p.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert p.weights == {"BTCUSDT": 0.45, "ETHUSDT": 0.35, "SOLUSDT": 0.20}
    assert s.atr_period == 14 and s.baseline_spacing_multiplier == 0.75
    assert s.conviction_filter.percentile_threshold == 80 and s.softmax_temperature == 0.25
    assert list(r.drawdown_levels) == [-0.05, -0.10, -0.15]
    assert r.tp_reduction_factor_level_1 == 0.7
    assert r.leverage_reduction_factor_level_2 == 0.6
    assert r.safe_mode_conviction_threshold == 0.8
    assert cfg.venue is Venue.SIM


def test_default_file_equals_code_defaults() -> None:
    """conf/default.json is the code's defaults, written out (so neither drifts)."""
    assert msgspec.json.decode(DEFAULT.read_bytes(), type=Config) == Config()


def test_unknown_key_named() -> None:
    doc = _default()
    doc["portfolio"]["leverage_kap"] = 3
    assert "$.portfolio.leverage_kap: unknown key" in _errors(doc)
    doc = _default()
    doc["strategy"]["conviction_filter"]["percentile"] = 3
    assert any(e.startswith("$.strategy.conviction_filter.percentile") for e in _errors(doc))
    doc = _default()
    doc["api_key"] = "x"
    assert "$.api_key: unknown key" in _errors(doc)


def test_wrong_type_named() -> None:
    doc = _default()
    doc["portfolio"]["leverage_cap"] = "six"
    (err,) = _errors(doc)
    assert err.startswith("$.portfolio.leverage_cap: ") and "float" in err


def test_negative_leverage_cap() -> None:
    doc = _default()
    doc["portfolio"]["leverage_cap"] = -1.0
    assert "$.portfolio.leverage_cap: must be > 0" in _errors(doc)


def test_weights_must_sum_to_one() -> None:
    doc = _default()
    doc["portfolio"]["weights"]["SOLUSDT"] = 0.10
    assert any(e.startswith("$.portfolio.weights: must sum to 1") for e in _errors(doc))


def test_drawdown_levels_strictly_decreasing() -> None:
    doc = _default()
    doc["risk"]["drawdown_levels"] = [-0.05, -0.04, -0.15]
    assert "$.risk.drawdown_levels[1]: must be below -0.05" in _errors(doc)


def test_symbol_with_a_trailing_newline_rejected() -> None:
    doc = _default()
    doc["venue"] = "live"  # any USDT pair is allowed there: only the pattern can catch it
    doc["portfolio"]["symbols"][0] += "\n"
    assert any(e.startswith("$.portfolio.symbols[0]: 'BTCUSDT\\n' is not a USDT symbol")
               for e in _errors(doc))


def test_every_error_reported_at_once() -> None:
    doc = _default()
    doc["portfolio"]["leverage_cap"] = 0
    doc["portfolio"]["utilization"] = 2
    doc["portfolio"]["symbols"] = ["BTCUSDT", "DOGEUSDT", "SOLUSDT"]
    doc["risk"]["drawdown_levels"] = [-0.05, -0.04, -0.15]
    errs = _errors(doc)
    assert "$.portfolio.leverage_cap: must be > 0" in errs
    assert "$.portfolio.utilization: must be in (0, 1]" in errs
    assert any(e.startswith("$.portfolio.symbols[1]:") for e in errs)
    assert "$.risk.drawdown_levels[1]: must be below -0.05" in errs


def test_type_errors_in_several_sections_all_reported() -> None:
    doc = _default()
    doc["portfolio"]["utilization"] = "high"
    doc["gateway"]["recv_window_ms"] = "5s"
    errs = _errors(doc)
    assert len(errs) == 2
    assert errs[0].startswith("$.portfolio.utilization:")
    assert errs[1].startswith("$.gateway.recv_window_ms:")


def test_type_errors_and_semantic_errors_in_one_pass() -> None:
    # a type error no longer hides the other sections' errors nor the semantic ones
    doc = _default()
    doc["portfolio"]["utilization"] = "high"                  # type
    doc["portfolio"]["leverage_cap"] = -1                     # semantic, same section
    doc["risk"]["drawdown_levels"] = [-0.05, -0.04, -0.15]   # semantic
    doc["risk"]["safe_mode"] = "yes"                          # type
    doc["strategy"]["conviction_filter"]["window_bars"] = 1.5  # type, nested struct
    doc["strategy"]["ema_fast"] = 0                           # semantic
    doc["gateway"]["recv_window_ms"] = "5s"                   # type
    doc["oms"]["prefix"] = "x"                                # unknown key
    doc["supervision"] = []                                   # not an object
    errs = _errors(doc)
    for path in ("$.portfolio.utilization", "$.risk.safe_mode",
                 "$.strategy.conviction_filter.window_bars", "$.gateway.recv_window_ms",
                 "$.supervision"):
        assert any(e.startswith(path + ": expected") for e in errs), (path, errs)
    assert "$.oms.prefix: unknown key" in errs
    assert "$.portfolio.leverage_cap: must be > 0" in errs
    assert "$.risk.drawdown_levels[1]: must be below -0.05" in errs
    assert "$.strategy.ema_fast: must be >= 1" in errs
    # and one consequence of the bad drawdown levels (their gap is now negative)
    assert any(e.startswith("$.risk.hysteresis: must be smaller") for e in errs)
    assert len(errs) == 10, errs
    # type errors first, in file order, then the semantic rules
    assert [e.split(":")[0] for e in errs[:6]] == [
        "$.portfolio.utilization", "$.strategy.conviction_filter.window_bars",
        "$.risk.safe_mode", "$.gateway.recv_window_ms", "$.oms.prefix", "$.supervision"]


def test_no_semantic_error_about_a_rejected_value() -> None:
    # the rejected field takes its default only to check the others: no rule may then report
    # a value (the default) the file does not hold
    doc = _default()
    doc["portfolio"]["symbols"] = "BTCUSDT"  # a string, not a list
    doc["portfolio"]["weights"] = {"BTCUSDT": 1.0}
    doc["portfolio"]["markets"] = {"BTCUSDT": "futures"}
    errs = _errors(doc)
    assert len(errs) == 1 and errs[0].startswith("$.portfolio.symbols: expected"), errs
    doc = _default()
    doc["strategy"]["ema_slow"] = "slow"
    doc["strategy"]["ema_fast"] = 200  # > the default ema_slow: not reported
    doc["gateway"]["kline_intervals"] = [15]
    doc["strategy"]["warmup_minutes"] = 1445  # multiple of 5m, not of the file's base bar
    errs = _errors(doc)
    assert [e.split(":")[0] for e in errs] == ["$.strategy.ema_slow",
                                               "$.gateway.kline_intervals[0]"], errs
    doc = _default()
    doc["venue"] = "paper"
    doc["portfolio"]["symbols"] = ["BTCUSDT", "XRPUSDT"]  # fine on live, not on sim
    doc["portfolio"]["weights"] = {"BTCUSDT": 0.5, "XRPUSDT": 0.5}
    doc["portfolio"]["markets"] = {"BTCUSDT": "futures", "XRPUSDT": "futures"}
    errs = _errors(doc)
    assert errs == ["$.venue: invalid enum value 'paper' (one of: sim, testnet, live)"]
    doc["venue"] = "live"
    doc["portfolio"]["markets"]["XRPUSDT"] = "perp"
    assert _errors(doc) == ["$.portfolio.markets.XRPUSDT: invalid enum value 'perp' "
                            "(one of: spot, futures)"]


def test_field_by_field_decode_equals_msgspec() -> None:
    doc = _default()
    doc["_comment"] = "ignored"
    doc["sim"]["spot_maker_fee"] = 0.002  # money: JSON numbers are accepted
    doc["strategy"]["static_grid"] = {"levels": 7}
    cfg, errs = parse_config(json.dumps(doc))
    assert errs == [] and cfg is not None
    del doc["_comment"]
    assert cfg == msgspec.convert(doc, Config, strict=True)
    doc["portfolio"]["_comment"] = "x"  # only top-level "_" keys are ignored
    assert _errors(doc) == ["$.portfolio._comment: unknown key"]


def test_remote_bind_is_opt_in_and_never_a_wildcard() -> None:
    doc = _default()
    doc["supervision"]["bind_host"] = "10.0.0.5"
    assert any(e.startswith("$.supervision.bind_host") for e in _errors(doc))
    doc["supervision"]["allow_remote"] = True
    cfg, errs = parse_config(json.dumps(doc))
    assert errs == []
    doc["supervision"]["bind_host"] = "0.0.0.0"
    assert any("every interface" in e for e in _errors(doc))


def test_invalid_json() -> None:
    cfg, errs = parse_config(b"{not json")
    assert cfg is None and errs[0].startswith("$: invalid JSON")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "run.py", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_cli_config_check_ok() -> None:
    proc = _cli("config", "check", "conf/default.json")
    assert proc.returncode == 0 and proc.stdout.strip() == "ok"


@pytest.mark.parametrize("mutate, expect", [
    (lambda d: d["portfolio"].__setitem__("bogus", 1), "$.portfolio.bogus: unknown key"),
    (lambda d: d["portfolio"].__setitem__("leverage_cap", "x"), "$.portfolio.leverage_cap:"),
    (lambda d: d["portfolio"].__setitem__("leverage_cap", -6.0),
     "$.portfolio.leverage_cap: must be > 0"),
    (lambda d: d["portfolio"]["weights"].__setitem__("SOLUSDT", 0.1),
     "$.portfolio.weights: must sum to 1"),
])
def test_cli_config_check_rejects(tmp_path: Path, mutate, expect: str) -> None:
    doc = _default()
    mutate(doc)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(doc))
    proc = _cli("config", "check", str(f))
    assert proc.returncode == 2
    assert any(line.startswith(expect) for line in proc.stdout.splitlines()), proc.stdout


def test_cli_config_check_missing_file(tmp_path: Path) -> None:
    proc = _cli("config", "check", str(tmp_path / "nope.json"))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (f"gridbot config check: cannot read {tmp_path / 'nope.json'}: "
                                   "No such file or directory")


@pytest.mark.parametrize("sim, says", [
    ({"speed": "max"}, "$.sim.speed: 'max': the bot's embedded exchange needs a finite speed"),
    ({"speed": 0}, "$.sim.speed: 0"),
    ({"futures_maker_fee": "1.5", "spot_taker_fee": "-0.001"},
     "$.sim.futures_maker_fee: must be in [0, 1)"),
    ({"futures_balances": {"USDT": "-5"}}, "$.sim.futures_balances.USDT: must be >= 0"),
    ({"port": 70000}, "$.sim.port: must be in [0, 65535]"),
    ({"market_slippage_bps": "5000"}, "$.sim.market_slippage_bps: must be in [0, 1000]"),
    ({"max_volume_share": 0}, "$.sim.max_volume_share: must be in (0, 1] or null"),
])
def test_sim_section_is_checked(sim: dict, says: str) -> None:
    doc = _default()
    doc["sim"].update(sim)
    errs = _errors(doc)
    assert any(e.startswith(says) for e in errs), errs


def test_sim_speed_max_is_fine_off_the_sim_venue() -> None:
    from models.config import validate_sim
    from models.simconfig import SimConfig

    assert validate_sim(SimConfig(speed="max"), Venue.TESTNET) == []
    assert validate_sim(SimConfig(speed=0), Venue.TESTNET) == []
    assert validate_sim(SimConfig(speed=60.0), Venue.SIM) == []
