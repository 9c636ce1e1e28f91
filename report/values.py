"""How the report reads a value of the JSON log and writes money: numbers that are absent,
unreadable or not finite count as zero (the report sums what it can read), times are epoch ms,
money is an exact decimal string."""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

ZERO = Decimal(0)


def to_decimal(v: Any) -> Decimal:
    """A log value as an exact Decimal (0 when absent, unreadable or not finite)."""
    if v is None or v == "":
        return ZERO
    try:
        d = Decimal(str(v))
    except (InvalidOperation, ValueError):
        return ZERO
    return d if d.is_finite() else ZERO


def to_float(v: Any) -> float:
    """A log value as a float (0.0 when absent, unreadable or not finite)."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return 0.0
    return x if math.isfinite(x) else 0.0


def record_ms(ev: Mapping[str, Any]) -> int | None:
    """A record's event time in epoch ms: ``ts_ms``, else its ISO ``ts``/``time``."""
    v = ev.get("ts_ms")
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return int(v)
    for key in ("ts", "time"):
        s = ev.get(key)
        if isinstance(s, str):
            try:
                t = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
            except ValueError:
                continue
            if t.tzinfo is None:
                t = t.replace(tzinfo=_dt.timezone.utc)
            return int(t.timestamp() * 1000)
    return None


def iso_utc(ts_ms: int | None) -> str | None:
    """Epoch ms as ``YYYY-MM-DD HH:MM:SS`` (UTC)."""
    if ts_ms is None:
        return None
    return _dt.datetime.fromtimestamp(ts_ms / 1000, _dt.timezone.utc).strftime(
        "%Y-%m-%d %H:%M:%S")


def money_text(d: Decimal | None) -> str | None:
    """Money as report.json writes it: an exact decimal string to 1e-8, ``0`` for zero."""
    if d is None:
        return None
    q = d.quantize(Decimal("0.00000001")).normalize()
    return format(q, "f") if q != ZERO else "0"


__all__ = ["ZERO", "iso_utc", "money_text", "record_ms", "to_decimal", "to_float"]
