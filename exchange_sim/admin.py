"""The embedded exchange's admin and fault API, ``/_sim/...`` (loopback clients only).

``GET status``; ``POST advance {"bars", "ms"}``, ``speed {"speed"}``, ``deposit {"market",
"asset", "amount", "api_key"?}``, ``save {"path"?}`` (a ``.json`` file in the sim's state dir)
and ``fault {...}`` (see ``exchange_sim.faults``; every fault is logged as FAULT_INJECTED).
"""

from __future__ import annotations

import ipaddress
import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web
from loguru import logger

from exchange_sim.auth import ApiError
from exchange_sim.replay import iso
from exchange_sim.rest import error_response

if TYPE_CHECKING:
    from exchange_sim.server import SimServer


def is_loopback(host: str) -> bool:
    """True for a loopback address (or ``localhost``)."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def save_target(requested: Any, state_file: str | None) -> Path:
    """Where ``POST /_sim/save`` may write: the configured state file, or a ``.json`` file in
    its directory (a caller never names a path outside the sim's own state dir)."""
    if not state_file:
        raise ApiError(400, -1102, "no state file configured")
    home = Path(state_file).resolve()
    if requested in (None, ""):
        return home
    if not isinstance(requested, str):
        raise ApiError(400, -1102, "path must be a string")
    target = (home.parent / requested).resolve()
    if target.parent != home.parent or target.suffix != ".json":
        raise ApiError(403, -1102, f"save path {requested!r} refused: only a .json file in "
                       f"{home.parent} may be written")
    return target


class AdminApi:
    """Serves ``/_sim/...`` for ``srv``."""

    def __init__(self, srv: SimServer) -> None:
        self.srv = srv

    async def handle(self, request: web.Request) -> web.Response:
        """One admin request (403 unless it comes from loopback)."""
        srv = self.srv
        if not is_loopback(request.remote or ""):
            return error_response(403, -2015, "admin API is loopback only", {})
        tail = request.match_info["tail"]
        try:
            body: dict[str, Any] = {}
            if request.can_read_body:
                txt = await request.text()
                body = json.loads(txt) if txt.strip() else {}
            if tail == "status" and request.method == "GET":
                return web.json_response(self.status())
            if tail == "fault" and request.method == "POST":
                return web.json_response(await self.inject_fault(body))
            if tail == "advance" and request.method == "POST":
                t = srv.advance(bars=int(body.get("bars", 0)), ms=int(body.get("ms", 0)))
                return web.json_response({"sim_time": t})
            if tail == "speed" and request.method == "POST":
                sp = body.get("speed")
                srv.set_speed(sp if sp == "max" else float(sp))
                return web.json_response({"speed": srv.clock.speed})
            if tail == "deposit" and request.method == "POST":
                eng = srv.engines[body.get("market", "spot")]
                acct = srv.account_of.get(body.get("api_key", srv.config.api_key), "main")
                eng.deposit(acct, body["asset"], Decimal(str(body["amount"])))
                return web.json_response({"ok": True})
            if tail == "save" and request.method == "POST":
                target = save_target(body.get("path"), srv.config.state_file)
                srv.save_state(target)
                return web.json_response({"saved": str(target)})
            return error_response(404, -1, f"unknown admin endpoint {request.method} "
                                  f"/_sim/{tail}", {})
        except ApiError as e:
            return error_response(e.http_status, e.code, e.msg, {})
        except (ValueError, KeyError, TypeError) as e:
            return error_response(400, -1100, f"bad admin request: {e}", {})

    async def inject_fault(self, spec: dict[str, Any]) -> dict[str, Any]:
        """Apply one fault (see ``exchange_sim.faults``) and log FAULT_INJECTED."""
        srv = self.srv
        kind = srv.faults.validate(spec)
        logger.bind(event="FAULT_INJECTED").warning(
            json.dumps({"event": "FAULT_INJECTED", "sim_time": srv.now_ms(), **spec}))
        if kind == "drop_ws":
            n = await srv.hub.drop_all()
            srv.faults.history.append(dict(spec))
            return {"ok": True, "dropped": n}
        if kind == "clock_jump":
            srv.clock.jump(int(spec["ms"]))
            srv.faults.history.append(dict(spec))
            srv.wake_replay()
            return {"ok": True, "sim_time": srv.now_ms()}
        if kind == "expire_listen_keys":
            n = await srv.hub.expire_user_streams()
            srv.listen_keys.clear()
            srv.faults.history.append(dict(spec))
            return {"ok": True, "expired": n}
        srv.faults.apply(spec)
        return {"ok": True, "faults": srv.faults.active()}

    def status(self) -> dict[str, Any]:
        """``GET /_sim/status`` body."""
        srv = self.srv
        first, last = srv.replay_span()
        return {
            "sim_time": srv.now_ms(), "sim_time_utc": iso(srv.now_ms()),
            "speed": srv.clock.speed, "clock_offset_ms": srv.clock.offset_ms,
            "replay_first_bar_utc": iso(first),
            "replay_last_bar_utc": iso(last),
            "markets": list(srv.markets), "symbols": list(srv.config.symbols),
            "interval": srv.config.interval,
            "bars_replayed": {f"{m}:{s}": f.bars_done for (m, s), f in srv.feeds.items()},
            "next_bar_close": srv.replay.next_bar_time(), "finished": srv.replay.finished(),
            "connections": srv.hub.counts(), "faults": srv.faults.active(),
            "fault_history": srv.faults.history[-50:], "notes": srv.notes,
        }
