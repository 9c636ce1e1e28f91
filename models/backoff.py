"""Exponential backoff with bounded jitter (pure: the RNG is passed in, no wall clock)."""

from __future__ import annotations

import random


class Backoff:
    """Delays ``initial_s * factor**n`` capped at ``max_s``, each scaled by a jitter factor.

    With ``jitter=j`` a delay ``d`` becomes a uniform draw in ``[d * (1 - j), d]`` ("equal"
    style jitter: never longer than the nominal delay, never shorter than ``(1 - j) * d``), so
    many clients reconnecting at once spread out. ``reset()`` after a success.
    """

    def __init__(self, initial_s: float, max_s: float, factor: float = 2.0, jitter: float = 0.5,
                 rng: random.Random | None = None) -> None:
        if initial_s <= 0 or max_s < initial_s:
            raise ValueError("need 0 < initial_s <= max_s")
        if factor < 1.0:
            raise ValueError("factor must be >= 1")
        if not 0.0 <= jitter < 1.0:
            raise ValueError("jitter must be in [0, 1)")
        self.initial_s = initial_s
        self.max_s = max_s
        self.factor = factor
        self.jitter = jitter
        # Seeded by default so behaviour is reproducible; pass your own RNG to vary it.
        self.rng = rng if rng is not None else random.Random(0)
        self.attempts = 0

    def nominal(self, attempt: int) -> float:
        """The un-jittered delay of attempt ``attempt`` (0-based)."""
        # min() before the power would overflow for large attempt counts.
        d = self.initial_s
        for _ in range(attempt):
            d *= self.factor
            if d >= self.max_s:
                return self.max_s
        return min(d, self.max_s)

    def next(self) -> float:
        """The next delay in seconds (and count the attempt)."""
        d = self.nominal(self.attempts)
        self.attempts += 1
        if self.jitter == 0.0:
            return d
        return d * (1.0 - self.jitter * self.rng.random())

    def reset(self) -> None:
        """Start again from ``initial_s`` (call after a successful (re)connect)."""
        self.attempts = 0
