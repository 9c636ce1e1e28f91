"""Walk-forward windows (pure): split a date range into rolling train/test windows.

``--walk-forward TRAIN_DAYS:TEST_DAYS`` over ``[start, end)``: the first train window is
``[start, start + TRAIN)``, its test window ``[start + TRAIN, start + TRAIN + TEST)``; both roll
forward by TEST until a test window would pass ``end`` (the last one is cut at ``end`` when at
least one day long). Only test windows are traded and reported; the train windows fit the
strategy's initial weights. Windows are UTC-day aligned when ``start`` is.
"""

from __future__ import annotations

from dataclasses import dataclass

DAY_MS = 86_400_000


class WalkForwardError(ValueError):
    """A walk-forward specification or range that cannot be split."""


@dataclass(frozen=True)
class Window:
    """One fold: fit on ``[train_start, train_end)``, trade on ``[test_start, test_end)``."""

    index: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int


def parse_spec(spec: str) -> tuple[int, int]:
    """``"TRAIN:TEST"`` in days -> ``(train_days, test_days)``; both must be >= 1."""
    parts = str(spec).strip().split(":")
    if len(parts) != 2:
        raise WalkForwardError(f"walk-forward {spec!r}: expected TRAIN_DAYS:TEST_DAYS, e.g. 30:7")
    try:
        train, test = int(parts[0]), int(parts[1])
    except ValueError:
        raise WalkForwardError(f"walk-forward {spec!r}: days must be whole numbers") from None
    if train < 1 or test < 1:
        raise WalkForwardError(f"walk-forward {spec!r}: both windows must be >= 1 day")
    return train, test


def windows(start_ms: int, end_ms: int, train_days: int, test_days: int) -> list[Window]:
    """Rolling folds over ``[start_ms, end_ms)`` (see module doc); raises when none fits."""
    if end_ms <= start_ms:
        raise WalkForwardError("walk-forward: empty range")
    train, test = train_days * DAY_MS, test_days * DAY_MS
    out: list[Window] = []
    t0 = start_ms + train
    while t0 < end_ms:
        t1 = min(t0 + test, end_ms)
        if t1 - t0 < DAY_MS:
            break
        out.append(Window(len(out), t0 - train, t0, t0, t1))
        t0 += test
    if not out:
        days = (end_ms - start_ms) / DAY_MS
        raise WalkForwardError(
            f"walk-forward {train_days}:{test_days}: the range has {days:.1f} days; it needs "
            f"at least {train_days} train days + 1 test day")
    return out


def chain_equity(folds: list[list[tuple[int, float]]], initial: float
                 ) -> list[tuple[int, float]]:
    """Compound the equity curves of independent folds (each starting from its own first
    value) into one curve starting at ``initial``: fold k is scaled by the growth of folds
    0..k-1."""
    out: list[tuple[int, float]] = []
    level = initial
    for curve in folds:
        if not curve:
            continue
        base = curve[0][1]
        if base <= 0:
            continue
        k = level / base
        out.extend((t, v * k) for t, v in curve)
        level = curve[-1][1] * k
    return out
