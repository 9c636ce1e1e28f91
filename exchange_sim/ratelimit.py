"""Request-weight and order-count limits, Binance style, on WALL time (they protect the server).

Fixed windows aligned to the wall clock (as Binance's are), counted by the bot's own
``models.ratelimit.FixedWindowCounter`` (one counter per IP or account and window). Exceeding a
limit answers 429 with ``Retry-After``; an IP that keeps sending while limited
(``ban_after_429`` more 429s) is banned: 418 with ``Retry-After`` until the ban ends.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from exchange_sim.auth import ApiError
from models.ratelimit import FixedWindowCounter


@dataclass
class _Window:
    """One limit: ``limit`` units per ``seconds``-window per key, reported in ``header``."""

    seconds: float
    limit: int
    header: str
    label: str
    counters: dict[str, FixedWindowCounter] = field(default_factory=dict)

    def used(self, key: str, now: float) -> int:
        c = self.counters.get(key)
        return c.used(now) if c is not None else 0

    def add(self, key: str, n: int, now: float) -> int:
        c = self.counters.get(key)
        if c is None:
            c = self.counters[key] = FixedWindowCounter(self.seconds)
        return c.add(n, now)

    def retry_after(self, key: str, now: float) -> int:
        """Whole seconds until ``key``'s window ends (at least 1)."""
        return max(1, math.ceil(self.counters[key].end(now) - now))


class RateLimiter:
    """Weight per IP and order counts per account for one market (spot or futures)."""

    def __init__(
        self,
        *,
        market: str,
        weight_per_min: int,
        order_windows: list[tuple[float, int, str, str]],
        ban_after_429: int = 5,
        ban_seconds: float = 120.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``order_windows``: (seconds, limit, header, label) e.g. (10, 100, "X-MBX-ORDER-COUNT-10S",
        "10 SECOND")."""
        self.market = market
        hdr = "X-MBX-USED-WEIGHT-1m" if market == "spot" else "X-MBX-USED-WEIGHT-1M"
        self.weight = _Window(60.0, weight_per_min, hdr, "1 MINUTE")
        self.orders = [_Window(s, n, h, lbl) for s, n, h, lbl in order_windows]
        self.ban_after_429 = ban_after_429
        self.ban_seconds = ban_seconds
        self.clock = clock
        self._strikes: dict[str, int] = {}
        self._banned_until: dict[str, float] = {}

    def ban(self, ip: str, seconds: float | None = None) -> None:
        """Ban ``ip`` now (used by the fault injector and by repeated 429s)."""
        self._banned_until[ip] = self.clock() + (self.ban_seconds if seconds is None else seconds)

    def _banned(self, ip: str, now: float) -> ApiError | None:
        until = self._banned_until.get(ip)
        if until is None:
            return None
        if now >= until:
            del self._banned_until[ip]
            self._strikes.pop(ip, None)
            return None
        until_ms = int(until * 1000)
        return ApiError(
            418, -1003,
            f"Way too much request weight used; IP banned until {until_ms}. Please use WebSocket"
            " Streams for live updates to avoid bans.",
            {"Retry-After": str(max(1, math.ceil(until - now)))},
        )

    def _strike(self, ip: str, now: float, err: ApiError) -> ApiError:
        n = self._strikes.get(ip, 0) + 1
        self._strikes[ip] = n
        if n > self.ban_after_429:
            self.ban(ip)
            banned = self._banned(ip, now)
            assert banned is not None
            return banned
        return err

    def admit(self, ip: str, weight: int, account: str | None = None,
              is_order: bool = False) -> dict[str, str]:
        """Count one request; return the usage headers or raise 429/418 ``ApiError``."""
        now = self.clock()
        banned = self._banned(ip, now)
        if banned is not None:
            raise banned
        used = self.weight.add(ip, weight, now)
        headers = {self.weight.header: str(used)}
        if self.market == "spot":
            headers["X-MBX-USED-WEIGHT"] = str(used)
        if used > self.weight.limit:
            raise self._strike(ip, now, ApiError(
                429, -1003,
                f"Too much request weight used; current limit is {self.weight.limit} request "
                "weight per 1 MINUTE. Please use WebSocket Streams for live updates to avoid "
                "polling the API.",
                {**headers, "Retry-After": str(self.weight.retry_after(ip, now))},
            ))
        if account is not None:
            for w in self.orders:
                n = w.add(account, 1, now) if is_order else w.used(account, now)
                headers[w.header] = str(n)
            if is_order:
                for w in self.orders:
                    if w.used(account, now) > w.limit:
                        raise self._strike(ip, now, ApiError(
                            429, -1015,
                            f"Too many new orders; current limit is {w.limit} orders per "
                            f"{w.label}.",
                            {**headers, "Retry-After": str(w.retry_after(account, now))},
                        ))
        self._strikes.pop(ip, None)
        return headers
