"""REST side of the embedded exchange: parsed requests, route tables and the dispatch.

Endpoint modules (``rest_market``, ``rest_spot``, ``rest_futures``) each fill a ``RouteTable``
with their handlers (``@ROUTES.route(method, market, path, ...)``); the server assembles the
tables at construction and ``RestApi.handle`` serves a request: market and path, injected
faults (forced 429/418, latency, order 5xx), API key, request weight and order counts,
signature and timestamp, then the handler ``handler(server, req)``. Errors are Binance's
``{"code", "msg"}`` bodies.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import web
from loguru import logger

from exchange_sim.auth import ApiError, check_api_key, check_timestamp, verify
from models.filters import FilterViolation

if TYPE_CHECKING:
    from exchange_sim.server import SimServer

NONE, USER_STREAM, SIGNED = 0, 1, 2
"""Route security: public, API key only (listen keys), signed."""


@dataclass
class Req:
    """One parsed REST request."""

    method: str
    market: str
    path: str
    params: dict[str, str]
    ip: str
    now: int
    account: str | None = None
    api_key: str | None = None

    def get(self, name: str, default: str | None = None) -> str | None:
        """Optional parameter."""
        v = self.params.get(name)
        return default if v is None or v == "" else v

    def req(self, name: str) -> str:
        """Mandatory parameter (-1102 when missing)."""
        v = self.params.get(name)
        if v is None or v == "":
            raise ApiError(400, -1102, f"Mandatory parameter '{name}' was not sent, was "
                                       "empty/null, or malformed.")
        return v

    def dec(self, name: str, required: bool = False) -> Decimal | None:
        """Decimal parameter."""
        v = self.req(name) if required else self.get(name)
        if v is None:
            return None
        try:
            d = Decimal(v)
        except InvalidOperation:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^([0-9]{1,20})(\\.[0-9]{1,20})?$'."
                           ) from None
        if not d.is_finite():
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'.")
        return d

    def int_(self, name: str, default: int | None = None) -> int | None:
        """Integer parameter."""
        v = self.get(name)
        if v is None:
            return default
        try:
            return int(v)
        except ValueError:
            raise ApiError(400, -1100, f"Illegal characters found in parameter '{name}'; "
                                       "legal range is '^[0-9]{1,20}$'.") from None

    def bool_(self, name: str) -> bool:
        """'true'/'false' parameter."""
        return (self.get(name) or "false").lower() == "true"


Handler = Callable[["SimServer", Req], Any]


@dataclass
class Route:
    """A REST endpoint: handler, request weight, security, whether it counts as an order."""

    handler: Handler
    weight: int | Callable[[Req], int] = 1
    security: int = NONE
    is_order: bool = False
    order_request: bool = False
    """Subject to the order_5xx fault (new/cancel/modify/cancel-replace)."""



class RouteTable:
    """REST routes by (method, market, path): an endpoint module's, or the server's union."""

    def __init__(self, *tables: RouteTable) -> None:
        self._routes: dict[tuple[str, str, str], Route] = {}
        for t in tables:
            self._routes.update(t._routes)

    def route(self, method: str, market: str, path: str,
              weight: int | Callable[[Req], int] = 1, security: int = NONE,
              is_order: bool = False, order_request: bool = False
              ) -> Callable[[Handler], Handler]:
        """Register a REST handler for ``market`` ("spot"/"futures") and ``path`` (after the
        version segment, e.g. "order")."""
        def deco(fn: Handler) -> Handler:
            self._routes[(method, market, path)] = Route(fn, weight, security, is_order,
                                                         order_request or is_order)
            return fn
        return deco

    def get(self, key: tuple[str, str, str]) -> Route | None:
        """The route of (method, market, path), or None."""
        return self._routes.get(key)

    def __len__(self) -> int:
        return len(self._routes)


def error_response(status: int, code: int, msg: str, headers: dict[str, str],
                   data: Any = None) -> web.Response:
    """A Binance error body ``{"code", "msg"[, "data"]}`` with ``status``."""
    body: dict[str, Any] = {"code": code, "msg": msg}
    if data is not None:
        body["data"] = data
    return web.Response(status=status, body=msgspec.json.encode(body),
                        headers=headers, content_type="application/json")


class RestApi:
    """Serves the REST endpoints of ``srv`` from ``routes``."""

    def __init__(self, srv: SimServer, routes: RouteTable) -> None:
        self.srv = srv
        self.routes = routes

    @staticmethod
    def _market_of(request: web.Request) -> tuple[str, str]:
        p = request.path
        if p.startswith("/api/v3/"):
            return "spot", p[len("/api/v3/"):]
        return "futures", request.match_info["tail"]

    async def handle(self, request: web.Request) -> web.Response:
        """Serve one REST request (``/api/v3/...`` or ``/fapi/v1|v2|v3/...``)."""
        srv = self.srv
        market, path = self._market_of(request)
        method = request.method
        headers: dict[str, str] = {}
        try:
            if market not in srv.markets and path not in ("ping", "time"):
                raise ApiError(404, -1, f"{market} is not served by this sim")
            forced = srv.faults.take_forced()
            if forced == 429:
                raise ApiError(429, -1003, "Too many requests; current limit is exceeded "
                               "(injected fault).", {"Retry-After": "1"})
            if forced == 418:
                raise ApiError(418, -1003, "Way too much request weight used; IP banned "
                               "(injected fault).", {"Retry-After": "1"})
            delay = srv.faults.take_latency()
            if delay > 0:
                await asyncio.sleep(delay)
            rt = self.routes.get((method, market, path))
            if rt is None:
                raise ApiError(404, -1, f"Unknown endpoint {method} {request.path}")
            raw_query = request.query_string
            raw_body = (await request.text()) if request.can_read_body else ""
            params: dict[str, str] = dict(request.query)
            if raw_body:
                form = await request.post()
                for k, v in form.items():
                    params.setdefault(k, str(v))
            if srv.clock.running:
                srv.process_due()
            req = Req(method, market, path, params, request.remote or "?", srv.now_ms())
            if rt.security >= USER_STREAM:
                api_key = request.headers.get("X-MBX-APIKEY")
                secret = check_api_key(srv.keys, api_key)
                req.api_key, req.account = api_key, srv.account_of[api_key]  # type: ignore
            weight = rt.weight(req) if callable(rt.weight) else rt.weight
            headers = srv.limiters[market].admit(req.ip, weight, req.account, rt.is_order)
            if rt.security == SIGNED:
                verify(secret, raw_query, raw_body)
                spd = srv.clock.speed
                check_timestamp(params, req.now, srv.config.max_recv_window_ms,
                                None if spd == "max" else float(spd))
            fault = srv.faults.take_order_5xx() if rt.order_request else None
            if fault is not None and fault[0] == "before":
                self._log_fault_hit("order_5xx_before", request)
                raise ApiError(fault[1], -1008, "Server is currently overloaded with other "
                               "requests. Please try again in a few minutes.")
            result = rt.handler(srv, req)
            if asyncio.iscoroutine(result):
                result = await result
            if fault is not None:
                self._log_fault_hit("order_5xx_after", request)
                raise ApiError(fault[1], -1007, "Timeout waiting for response from backend "
                               "server. Send status unknown; execution status unknown.")
            return web.Response(body=msgspec.json.encode(result), headers=headers,
                                content_type="application/json")
        except ApiError as e:
            return error_response(e.http_status, e.code, e.msg, {**headers, **e.headers},
                                  e.data)
        except FilterViolation as e:
            return error_response(400, e.code, e.msg, headers)
        except Exception as e:  # noqa: BLE001 - engine errors and bugs become Binance errors
            code = getattr(e, "code", None)
            if isinstance(code, int) and hasattr(e, "http_status"):
                return error_response(int(e.http_status), code, str(getattr(e, "msg", e)),
                                      headers)
            logger.bind(event="SIM_INTERNAL_ERROR", method=method, path=request.path).exception(
                "internal error on {} {}", method, request.path)
            return error_response(500, -1000, "An unknown error occurred while processing the "
                                  f"request. ({type(e).__name__}: {e})", headers)

    def _log_fault_hit(self, what: str, request: web.Request) -> None:
        logger.bind(event="FAULT_HIT").warning(
            json.dumps({"event": "FAULT_HIT", "fault": what, "path": request.path}))
