"""The admin API writes only inside the sim's own state dir."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from exchange_sim.admin import AdminApi, save_target
from exchange_sim.auth import ApiError
from exchange_sim.server import SimServer
from models.simconfig import SimConfig


def test_save_target_stays_in_the_state_dir(tmp_path: Path) -> None:
    home = tmp_path / "state" / "exchange_sim.json"
    assert save_target(None, str(home)) == home.resolve()
    assert save_target("", str(home)) == home.resolve()
    assert save_target("copy.json", str(home)) == (home.parent / "copy.json").resolve()
    for bad in ("../evil.json", str(tmp_path / "evil.json"), "/etc/cron.d/x.json",
                "sub/x.json", "copy.txt", "copy"):
        with pytest.raises(ApiError) as e:
            save_target(bad, str(home))
        assert e.value.http_status == 403, bad
    with pytest.raises(ApiError):
        save_target(["x.json"], str(home))
    with pytest.raises(ApiError):
        save_target("x.json", None)


class _Req:
    """What AdminApi.handle reads of an aiohttp request."""

    def __init__(self, tail: str, body: dict) -> None:
        self.remote, self.method, self.match_info = "127.0.0.1", "POST", {"tail": tail}
        self.can_read_body, self._raw = True, json.dumps(body)

    async def text(self) -> str:
        return self._raw


def _post(api: AdminApi, tail: str, body: dict) -> tuple[int, dict]:
    resp = asyncio.run(api.handle(_Req(tail, body)))  # type: ignore[arg-type]
    return resp.status, json.loads(resp.body)


def test_post_save_refuses_a_path_outside_and_writes_inside(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    srv = SimServer(SimConfig(scenario="chop", synthetic_bars=50, symbols=("BTCUSDT",),
                              market="both", state_file=str(state / "exchange_sim.json")))
    api = AdminApi(srv)
    outside = tmp_path / "outside.json"
    status, body = _post(api, "save", {"path": str(outside)})
    assert status == 403 and not outside.exists() and "refused" in body["msg"]
    status, body = _post(api, "save", {"path": "../outside.json"})
    assert status == 403 and not outside.exists()
    status, body = _post(api, "save", {})
    assert status == 200 and (state / "exchange_sim.json").exists()
