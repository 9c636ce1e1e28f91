"""Client-side request-weight and order-count limiting (pure: ``now`` is always passed in).

Binance counts request weight per IP and orders per account in fixed windows aligned to the
wall clock (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S`` ...). ``RateLimiter`` keeps the
bot under ``safety * limit`` in every window with two mechanisms per limit:

- a fixed-window counter aligned like the exchange's (``FixedWindowCounter``, the same class the
  embedded exchange counts with), corrected upwards by the usage headers the exchange returns (so
  other processes sharing the IP/account are accounted for);
- a token bucket (capacity = the window budget, refilled at budget/window) that paces bursts
  smoothly instead of sending a whole window's budget and then stalling.

``acquire`` never rejects: it answers how long to wait (0 = admitted and counted). A 429 pauses
everything until ``Retry-After``; a 418 (IP ban) pauses until the ban ends and marks it banned.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

_UNIT_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400,
           "S": 1, "M": 60, "H": 3600, "D": 86400}


class FixedWindowCounter:
    """Units counted in fixed windows of ``window_s`` seconds aligned to the clock, as Binance
    counts request weight and orders: the window holding ``now`` is number ``now // window_s``
    and runs from ``number × window_s`` to the next multiple; the count restarts at 0 when a
    new window begins. One counter counts one key (an IP, an account)."""

    __slots__ = ("window_s", "slot", "count")

    def __init__(self, window_s: float) -> None:
        if window_s <= 0:
            raise ValueError("window_s must be positive")
        self.window_s = window_s
        self.slot: int | None = None
        """Number of the window ``count`` belongs to (None before the first use)."""
        self.count = 0

    def _roll(self, now: float) -> None:
        slot = int(now // self.window_s)
        if slot != self.slot:
            self.slot, self.count = slot, 0

    def used(self, now: float) -> int:
        """Units counted in the window holding ``now``."""
        self._roll(now)
        return self.count

    def add(self, n: int, now: float) -> int:
        """Count ``n`` units now; returns the window's count."""
        self._roll(now)
        self.count += n
        return self.count

    def raise_to(self, used: int, now: float) -> None:
        """At least ``used`` units are spent in the window holding ``now`` (e.g. the exchange
        said so)."""
        self._roll(now)
        if used > self.count:
            self.count = used

    def start(self, now: float) -> float:
        """Start of the window holding ``now``."""
        self._roll(now)
        return self.slot * self.window_s  # type: ignore[operator]

    def end(self, now: float) -> float:
        """End of the window holding ``now`` (the start of the next one)."""
        return self.start(now) + self.window_s


class TokenBucket:
    """A token bucket: ``capacity`` tokens, refilled continuously at ``refill_per_s``."""

    def __init__(self, capacity: float, refill_per_s: float, now: float = 0.0) -> None:
        if capacity <= 0 or refill_per_s <= 0:
            raise ValueError("capacity and refill_per_s must be positive")
        self.capacity = float(capacity)
        self.refill_per_s = float(refill_per_s)
        self.tokens = float(capacity)
        self.updated = now

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.refill_per_s)
            self.updated = now

    def wait_for(self, n: float, now: float) -> float:
        """Seconds until ``n`` tokens are available (0 = available now); takes nothing.
        A request larger than the capacity waits for a full bucket."""
        self._refill(now)
        need = min(float(n), self.capacity)
        if self.tokens >= need:
            return 0.0
        return (need - self.tokens) / self.refill_per_s

    def take(self, n: float, now: float) -> None:
        """Take ``n`` tokens unconditionally (the balance may go negative: debt is repaid by
        refill before anything else is admitted)."""
        self._refill(now)
        self.tokens -= float(n)

    def try_take(self, n: float, now: float) -> float:
        """Take ``n`` tokens if available and return 0.0; else take nothing and return the
        seconds to wait."""
        w = self.wait_for(n, now)
        if w == 0.0:
            self.take(n, now)
        return w

    def cap_available(self, available: float, now: float) -> None:
        """Lower the balance to at most ``available`` (tightening from observed usage)."""
        self._refill(now)
        self.tokens = min(self.tokens, float(available))


@dataclass
class Limit:
    """One exchange limit: ``kind`` is REQUEST_WEIGHT, ORDERS or RAW_REQUESTS."""

    kind: str
    window_s: int
    limit: int
    safety: float = 0.8
    window: FixedWindowCounter = field(init=False, repr=False)
    bucket: TokenBucket | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.window = FixedWindowCounter(self.window_s)

    @property
    def count(self) -> int:
        """Units counted in the current window (as of the last use)."""
        return self.window.count

    @property
    def budget(self) -> int:
        """Usable part of the limit per window (at least 1)."""
        return max(1, int(self.limit * self.safety))

    def key(self) -> tuple[str, int]:
        """(kind, window seconds), e.g. ("ORDERS", 10)."""
        return self.kind, self.window_s

    def _bucket(self, now: float) -> TokenBucket:
        if self.bucket is None:
            self.bucket = TokenBucket(self.budget, self.budget / self.window_s, now)
        return self.bucket

    def wait_for(self, n: int, now: float) -> float:
        """Seconds until ``n`` more units fit in this limit (0 = now)."""
        used = self.window.used(now)
        bucket = self._bucket(now)
        if used > 0 and used + n > self.budget:
            return self.window.end(now) - now
        return bucket.wait_for(n, now)

    def take(self, n: int, now: float) -> None:
        """Count ``n`` units."""
        self.window.add(n, now)
        self._bucket(now).take(n, now)

    def observe(self, used: int, now: float) -> None:
        """The exchange says ``used`` units are spent in its current window."""
        self.window.raise_to(used, now)
        self._bucket(now).cap_available(self.budget - used, now)


#: Binance's published defaults, used until exchangeInfo has been read.
DEFAULT_LIMITS: dict[str, list[dict]] = {
    "spot": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": 6000},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1, "limit": 200000},
    ],
    "futures": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
    ],
}


def _parse_window(suffix: str) -> int | None:
    """'1M' -> 60, '10S' -> 10, '1D' -> 86400 (case-insensitive); None if not understood."""
    s = suffix.strip().upper()
    if len(s) < 2 or not s[:-1].isdigit() or s[-1] not in "SMHD":
        return None
    return int(s[:-1]) * _UNIT_S[s[-1]]


class RateLimiter:
    """Weight and order-count limits of one host (spot REST or futures REST)."""

    def __init__(self, limits: Iterable[Limit], safety: float = 0.8) -> None:
        if not 0 < safety <= 1:
            raise ValueError("safety must be in (0, 1]")
        self.safety = safety
        self.limits: list[Limit] = []
        for lim in limits:
            lim.safety = safety
            self.limits.append(lim)
        self._paused_until = 0.0
        self.banned_until = 0.0
        self.used_weight = 0
        self.order_counts: dict[int, int] = {}

    @classmethod
    def from_exchange_info(cls, rate_limits: list[dict], safety: float = 0.8) -> RateLimiter:
        """Build from ``exchangeInfo['rateLimits']``."""
        out = []
        for r in rate_limits:
            kind = str(r.get("rateLimitType", "")).upper()
            unit = _UNIT_S.get(str(r.get("interval", "")).upper())
            if kind not in ("REQUEST_WEIGHT", "ORDERS", "RAW_REQUESTS") or unit is None:
                continue
            out.append(Limit(kind, unit * int(r.get("intervalNum", 1)), int(r["limit"])))
        return cls(out, safety)

    @classmethod
    def default(cls, market: str, safety: float = 0.8) -> RateLimiter:
        """Binance's default limits for ``market`` ("spot"/"futures")."""
        return cls.from_exchange_info(DEFAULT_LIMITS[market], safety)

    def adopt(self, other: RateLimiter) -> None:
        """Take ``other``'s limits (new exchangeInfo) keeping current usage and pauses."""
        old = {lim.key(): lim for lim in self.limits}
        for lim in other.limits:
            prev = old.get(lim.key())
            if prev is not None:
                lim.window = prev.window
        self.limits = other.limits

    def _applies(self, lim: Limit, is_order: bool) -> bool:
        return lim.kind != "ORDERS" or is_order

    def _units(self, lim: Limit, weight: int) -> int:
        return weight if lim.kind == "REQUEST_WEIGHT" else 1

    def acquire(self, weight: int, is_order: bool, now: float) -> float:
        """Admit a request of ``weight`` (an order when ``is_order``): 0.0 = admitted and
        counted; otherwise nothing is counted and the caller retries after that many seconds."""
        paused = self.paused_until(now)
        if paused > now:
            return paused - now
        wait = 0.0
        for lim in self.limits:
            if self._applies(lim, is_order):
                wait = max(wait, lim.wait_for(self._units(lim, weight), now))
        if wait > 0.0:
            return wait
        for lim in self.limits:
            if self._applies(lim, is_order):
                lim.take(self._units(lim, weight), now)
        return 0.0

    def observe_headers(self, headers: Mapping[str, str], now: float) -> None:
        """Tighten local counters from ``X-MBX-USED-WEIGHT-<n><u>`` and
        ``X-MBX-ORDER-COUNT-<n><u>`` response headers (any case)."""
        for k, v in headers.items():
            ku = k.upper()
            if ku.startswith("X-MBX-USED-WEIGHT-"):
                kind, suffix = "REQUEST_WEIGHT", ku[len("X-MBX-USED-WEIGHT-"):]
            elif ku.startswith("X-MBX-ORDER-COUNT-"):
                kind, suffix = "ORDERS", ku[len("X-MBX-ORDER-COUNT-"):]
            else:
                continue
            window = _parse_window(suffix)
            try:
                used = int(v)
            except (TypeError, ValueError):
                continue
            if window is None:
                continue
            if kind == "REQUEST_WEIGHT" and window == 60:
                self.used_weight = used
            if kind == "ORDERS":
                self.order_counts[window] = used
            for lim in self.limits:
                if lim.kind == kind and lim.window_s == window:
                    lim.observe(used, now)

    def on_429(self, retry_after_s: float | None, now: float) -> float:
        """HTTP 429: stop every request to this host until Retry-After (default: the end of
        the current minute). Returns the pause end."""
        ra = retry_after_s if retry_after_s is not None and retry_after_s > 0 else (
            60.0 - now % 60.0)
        self._paused_until = max(self._paused_until, now + ra)
        return self._paused_until

    def on_418(self, retry_after_s: float | None, now: float) -> float:
        """HTTP 418 (IP banned): stop everything until the ban ends (default 2 minutes)."""
        ra = retry_after_s if retry_after_s is not None and retry_after_s > 0 else 120.0
        self.banned_until = max(self.banned_until, now + ra)
        return self.banned_until

    def paused_until(self, now: float) -> float:
        """When requests may resume (a time <= ``now`` means: not paused)."""
        return max(self._paused_until, self.banned_until)

    def banned(self, now: float) -> bool:
        """True while a 418 ban is in force."""
        return self.banned_until > now
