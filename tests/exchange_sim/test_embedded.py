"""The embedded exchange as the bot's default venue (``exchange_sim.embedded``)."""

from __future__ import annotations

import argparse
import json
import stat
import time
from pathlib import Path

import pytest

from exchange_sim.client import client_classes
from exchange_sim.embedded import SIM_URLS_FILE, sim_config_for_bot, start_for_bot
from models.config import Config, GatewayConfig, PortfolioConfig, base_interval, replay_for_bot
from models.enums import Market, Venue
from models.simconfig import SimConfig


def test_sim_config_follows_the_bot_config(tmp_path: Path) -> None:
    cfg = Config()
    s = sim_config_for_bot(cfg, argparse.Namespace(speed=None), tmp_path)
    assert s.symbols == ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    assert s.market == "futures" and s.interval == "5m" and s.speed == 60.0
    assert s.warmup_bars * 5 >= cfg.strategy.warmup_minutes
    assert s.state_file == str(tmp_path / "exchange_sim.json")
    assert sim_config_for_bot(cfg, argparse.Namespace(speed="600"), tmp_path).speed == 600.0
    mixed = Config(portfolio=PortfolioConfig(markets={"BTCUSDT": Market.SPOT,
                                                      "ETHUSDT": Market.FUTURES,
                                                      "SOLUSDT": Market.FUTURES}))
    assert sim_config_for_bot(mixed, None, tmp_path).market == "both"


def test_replay_for_bot_replays_the_strategys_base_bar() -> None:
    """``replay_for_bot`` (models.simconfig) reads the base bar the way models.config does."""
    cfg = Config(gateway=GatewayConfig(kline_intervals=("15m", "1h")))
    r = replay_for_bot(cfg)
    assert r["interval"] == base_interval(cfg)[0] == "15m"
    assert r["warmup_bars"] == max(cfg.sim.warmup_bars,
                                   cfg.strategy.history_bars(base_interval(cfg)[1]) + 50)
    assert r["symbols"] == list(cfg.portfolio.symbols) and r["market"] == "futures"


def test_not_started_for_other_venues(tmp_path: Path) -> None:
    assert start_for_bot(Config(venue=Venue.TESTNET), None, tmp_path) is None
    assert not (tmp_path / SIM_URLS_FILE).exists()


def test_start_writes_private_urls_file_and_stop_saves_state(tmp_path: Path) -> None:
    cfg = Config(portfolio=PortfolioConfig(symbols=("BTCUSDT",), weights={"BTCUSDT": 1.0},
                                           markets={"BTCUSDT": Market.FUTURES}),
                 sim=SimConfig(scenario="chop", synthetic_bars=600))
    stop = start_for_bot(cfg, argparse.Namespace(speed="0"), tmp_path)
    assert stop is not None
    try:
        path = tmp_path / SIM_URLS_FILE
        urls = json.loads(path.read_text())
        assert urls["rest"].startswith("http://127.0.0.1:")
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        client = client_classes(urls)[0](urls["api_key"], urls["api_secret"])
        syms = {x["symbol"] for x in client.futures_exchange_info()["symbols"]}
        assert "BTCUSDT" in syms
        # paused (speed 0): the sim time of any recent wall time is the current sim time
        now = client.futures_time()["serverTime"]
        assert abs(stop.sim_time_at(time.time() - 30) - now) < 5_000
    finally:
        stop()
    assert not (tmp_path / SIM_URLS_FILE).exists()
    assert (tmp_path / "exchange_sim.json").exists()


def test_bad_speed_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        sim_config_for_bot(Config(), argparse.Namespace(speed="fast"), tmp_path)


def test_sim_time_at_maps_wall_time_through_the_replay_speed(tmp_path: Path) -> None:
    """At speed 600 a record logged 2 s ago happened 20 sim minutes ago; nothing maps to
    before the replay began."""
    from models.simconfig import SimConfig

    cfg = Config(portfolio=PortfolioConfig(symbols=("BTCUSDT",), weights={"BTCUSDT": 1.0},
                                           markets={"BTCUSDT": Market.FUTURES}),
                 sim=SimConfig(scenario="chop", synthetic_bars=600))
    stop = start_for_bot(cfg, argparse.Namespace(speed="600"), tmp_path)
    assert stop is not None
    try:
        time.sleep(2.5)
        t = time.time()
        now, ago = stop.sim_time_at(t), stop.sim_time_at(t - 2.0)
        assert abs((now - ago) - 1_200_000) < 30_000
        assert abs(stop.sim_time_at(t - 3600) - stop.sim_time_at(t - 7200)) < 5_000
    finally:
        stop()
