"""The errors ``VenueClient`` raises, named by what the caller must do.

The class is decided from the HTTP status and Binance code by ``models.orders.classify_error``:

* ``OrderRejectedError`` — definitive refusal, never retried in a loop; ``OrderNotFoundError``
  (-2011/-2013) is one;
* ``UnknownOutcomeError`` — timeouts, 5xx, -1006/-1007: query the order, never resend it;
* ``NotSentError`` and its ``RateLimitedError`` / ``BannedError`` — raised *before* sending, or
  when no connection could be made: provably not sent;
* ``TimeSyncError`` — the exchange's clock could not be read.
"""

from __future__ import annotations

from typing import Any


class VenueError(Exception):
    """Base class of every error ``VenueClient`` raises."""


class OrderRejectedError(VenueError):
    """Definitive refusal (4xx with a Binance code): the request had no effect."""

    def __init__(self, code: int, msg: str, http_status: int | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(f"{code}: {msg}")
        self.code = code
        self.msg = msg
        self.http_status = http_status
        self.data = data


class OrderNotFoundError(OrderRejectedError):
    """The exchange does not know the order (-2011 on cancel, -2013 on query)."""


class UnknownOutcomeError(VenueError):
    """Timeout / 5xx / -1006 / -1007: the request may or may not have been executed."""

    def __init__(self, detail: str, code: int | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.code = code
        self.http_status = http_status


class NotSentError(VenueError):
    """The request was provably never sent (paused, banned, or no connection could be made):
    nothing happened on the exchange."""


class RateLimitedError(NotSentError):
    """Paused by a 429 (or the local limiter) for longer than the caller may wait; the
    request was NOT sent. ``until`` is in ``clock`` seconds."""

    def __init__(self, until: float, detail: str = "rate limited") -> None:
        super().__init__(f"{detail} until {until:.3f}")
        self.until = until


class BannedError(NotSentError):
    """418: all REST stopped until ``until`` (``clock`` seconds); the request was NOT sent."""

    def __init__(self, until: float) -> None:
        super().__init__(f"IP banned until {until:.3f}")
        self.until = until


class TimeSyncError(VenueError):
    """Server time could not be read (or the round trip was too long to trust)."""
