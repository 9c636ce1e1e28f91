"""Backoff: exponential growth, cap, jitter bounds, reset, determinism."""

from __future__ import annotations

import random

import pytest

from models.backoff import Backoff


def test_nominal_grows_geometrically_and_caps() -> None:
    b = Backoff(0.5, 10.0, factor=2.0, jitter=0.0)
    assert [b.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert b.nominal(10_000) == 10.0  # no overflow for huge attempt counts


def test_jitter_stays_within_bounds_and_varies() -> None:
    b = Backoff(1.0, 60.0, factor=2.0, jitter=0.5, rng=random.Random(7))
    seen = []
    for attempt in range(12):
        d = b.next()
        nominal = min(60.0, 2.0 ** attempt)
        assert nominal * 0.5 <= d <= nominal
        seen.append(d / nominal)
    assert len({round(x, 6) for x in seen}) > 5  # really jittered, not a constant factor


def test_reset_starts_over() -> None:
    b = Backoff(0.2, 5.0, jitter=0.0)
    for _ in range(4):
        b.next()
    assert b.attempts == 4
    b.reset()
    assert b.attempts == 0 and b.next() == 0.2


def test_same_seed_same_delays() -> None:
    a = Backoff(0.1, 30.0, rng=random.Random(42))
    b = Backoff(0.1, 30.0, rng=random.Random(42))
    assert [a.next() for _ in range(10)] == [b.next() for _ in range(10)]


@pytest.mark.parametrize("kw", [dict(initial_s=0, max_s=1), dict(initial_s=2, max_s=1),
                                dict(initial_s=1, max_s=2, factor=0.5),
                                dict(initial_s=1, max_s=2, jitter=1.0),
                                dict(initial_s=1, max_s=2, jitter=-0.1)])
def test_invalid_parameters_raise(kw: dict) -> None:
    with pytest.raises(ValueError):
        Backoff(**kw)
