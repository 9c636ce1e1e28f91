"""Fault injection state for the embedded exchange (driven by ``POST /_sim/fault``).

A fault is a JSON object with a ``type``:

- ``drop_ws``: close every WebSocket now (the server acts on it at once);
- ``stall_ws`` ``{"seconds": S}``: connections stay open but receive nothing for S wall seconds;
- ``order_5xx`` ``{"count": N, "when": "before"|"after", "status": 503}``: the next N order
  requests (new/cancel/modify/cancel-replace) answer 5xx; ``after`` = the request WAS executed
  (unknown outcome for the client), ``before`` = nothing happened;
- ``latency`` ``{"ms": M, "count": N}`` or ``{"ms": M, "seconds": S}``: delay REST answers;
- ``clock_jump`` ``{"ms": +-N}``: shift the exchange clock (server time and sim time);
- ``expire_listen_keys``: send ``listenKeyExpired`` (futures) / ``eventStreamTerminated``
  (spot WS-API subscription) and close those user streams;
- ``force_429`` / ``force_418`` ``{"count": N}``: answer the next N REST requests so;
- ``clear``: remove every pending fault.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from exchange_sim.auth import ApiError

FAULT_TYPES = (
    "drop_ws", "stall_ws", "order_5xx", "latency", "clock_jump", "expire_listen_keys",
    "force_429", "force_418", "clear",
)


def _pos_int(spec: dict[str, Any], key: str, default: int | None = None) -> int:
    v = spec.get(key, default)
    if v is None or isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise ApiError(400, -1100, f"fault field {key!r} must be a non-negative number")
    return int(v)


class FaultState:
    """Pending faults; the server consults it on every request / stream message."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.order_5xx: list[tuple[str, int]] = []  # one entry per affected request
        self.forced: list[int] = []  # HTTP statuses to force, in order
        self.latency_ms = 0
        self.latency_count = 0
        self.latency_until = 0.0
        self.stall_until = 0.0
        self.history: list[dict[str, Any]] = []

    def validate(self, spec: dict[str, Any]) -> str:
        """Check a fault spec; return its type or raise ``ApiError`` 400."""
        kind = spec.get("type")
        if kind not in FAULT_TYPES:
            raise ApiError(400, -1100, f"unknown fault type {kind!r}; one of {list(FAULT_TYPES)}")
        if kind == "order_5xx" and spec.get("when", "after") not in ("before", "after"):
            raise ApiError(400, -1100, "order_5xx 'when' must be 'before' or 'after'")
        if kind == "latency" and "count" not in spec and "seconds" not in spec:
            raise ApiError(400, -1100, "latency needs 'count' or 'seconds'")
        if kind == "clock_jump" and not isinstance(spec.get("ms"), int):
            raise ApiError(400, -1100, "clock_jump needs integer 'ms'")
        return kind

    def apply(self, spec: dict[str, Any]) -> str:
        """Record a fault (the stateful kinds); return its type. ``drop_ws``, ``clock_jump`` and
        ``expire_listen_keys`` are executed by the server itself."""
        kind = self.validate(spec)
        now = self.clock()
        if kind == "stall_ws":
            self.stall_until = max(self.stall_until, now + float(spec.get("seconds", 0)))
        elif kind == "order_5xx":
            status = _pos_int(spec, "status", 503)
            if not 500 <= status <= 599:
                raise ApiError(400, -1100, "order_5xx status must be 5xx")
            self.order_5xx += [(spec.get("when", "after"), status)] * _pos_int(spec, "count", 1)
        elif kind == "latency":
            self.latency_ms = _pos_int(spec, "ms")
            self.latency_count = _pos_int(spec, "count", 0)
            self.latency_until = now + float(spec.get("seconds", 0)) if "seconds" in spec else 0.0
        elif kind in ("force_429", "force_418"):
            self.forced += [429 if kind == "force_429" else 418] * _pos_int(spec, "count", 1)
        elif kind == "clear":
            self.__init__(self.clock)  # type: ignore[misc]
        self.history.append({"type": kind, **{k: v for k, v in spec.items() if k != "type"}})
        return kind

    def take_forced(self) -> int | None:
        """The forced status for this request, if any."""
        return self.forced.pop(0) if self.forced else None

    def take_order_5xx(self) -> tuple[str, int] | None:
        """("before"|"after", status) for this order request, if any."""
        return self.order_5xx.pop(0) if self.order_5xx else None

    def take_latency(self) -> float:
        """Seconds to delay this request."""
        if self.latency_ms <= 0:
            return 0.0
        if self.latency_count > 0:
            self.latency_count -= 1
            ms = self.latency_ms
            if self.latency_count == 0 and self.latency_until == 0.0:
                self.latency_ms = 0
            return ms / 1000
        if self.clock() < self.latency_until:
            return self.latency_ms / 1000
        self.latency_ms = 0
        return 0.0

    def stalled(self) -> bool:
        """True while streams are stalled."""
        return self.clock() < self.stall_until

    def active(self) -> dict[str, Any]:
        """Summary for ``GET /_sim/status``."""
        now = self.clock()
        return {
            "order_5xx_pending": len(self.order_5xx),
            "forced_pending": list(self.forced),
            "latency_ms": self.latency_ms if (self.latency_count or now < self.latency_until)
            else 0,
            "latency_requests_left": self.latency_count,
            "stall_seconds_left": max(0.0, round(self.stall_until - now, 3)),
        }
