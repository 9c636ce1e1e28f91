"""The sim's own log records carry an event name and their context (the bot's JSON log shows
them as fields); the message stays the readable line the standalone sim prints."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from loguru import logger

from exchange_sim.server import SimServer
from models.simconfig import SimConfig


def test_start_and_refused_stream_are_events_with_context() -> None:
    records: list[dict[str, Any]] = []
    sink = logger.add(lambda m: records.append(m.record), level="INFO")
    srv = SimServer(SimConfig(scenario="chop", synthetic_bars=300, symbols=("BTCUSDT",),
                              market="spot", interval="5m", speed=0))
    try:
        urls = srv.start_in_thread()

        async def refused() -> int | None:
            async with aiohttp.ClientSession() as s, \
                    s.ws_connect(urls.ws + "ws/btcusdt@kline_1m") as ws:
                await ws.receive(timeout=5)
                return ws.close_code

        assert asyncio.run(refused()) == 1008
    finally:
        srv.stop()
        logger.remove(sink)
    by_event = {r["extra"].get("event"): r for r in records}
    listening = by_event["SIM_LISTENING"]
    assert listening["message"].startswith(f"sim listening on {urls.rest[:-4]}: spot BTCUSDT")
    ctx = listening["extra"]
    assert ctx["url"] == urls.rest[:-4] and ctx["symbols"] == ["BTCUSDT"]
    assert ctx["markets"] == ["spot"] and ctx["interval"] == "5m" and ctx["speed"] == 0.0
    assert ctx["sim_time"].endswith("Z") and ctx["replay_first_bar"] < ctx["replay_last_bar"]
    ref = by_event["SIM_STREAM_REFUSED"]
    assert ref["level"].name == "WARNING"
    assert ref["message"] == ("WebSocket stream btcusdt@kline_1m refused (connect): 1m klines "
                              "are finer than the replayed 5m bars [spot market]")
    assert {k: ref["extra"][k] for k in ("stream", "how", "market")} == {
        "stream": "btcusdt@kline_1m", "how": "connect", "market": "spot"}
    assert all(r["extra"].get("event") for r in records)  # no plain line without an event
