"""Kline intervals and UTC timestamps: the one table of Binance's kline intervals and the
epoch-ms <-> ISO-8601 text conversions every layer uses."""

from __future__ import annotations

from datetime import datetime, timezone

#: Binance kline interval -> milliseconds (months are not fixed-length and not served).
INTERVAL_MS: dict[str, int] = {
    "1s": 1_000, "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000,
    "30m": 1_800_000, "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "6h": 21_600_000,
    "8h": 28_800_000, "12h": 43_200_000, "1d": 86_400_000, "3d": 259_200_000,
    "1w": 604_800_000,
}


def fmt_ms(ms: int) -> str:
    """UTC ISO-8601 text of an epoch-ms timestamp (``2021-09-29T12:00:00Z``)."""
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    if ms % 1000:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str) -> int:
    """``"2025-01-01"`` or an ISO datetime (UTC unless it carries an offset) -> epoch ms."""
    text = s.strip()
    if not text:
        raise ValueError("empty time: expected YYYY-MM-DD or an ISO datetime such as "
                         "2025-01-01T12:00")
    iso = text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        raise ValueError(
            f"cannot parse time {s!r}: expected YYYY-MM-DD or an ISO datetime "
            "such as 2025-01-01T12:00 (UTC)"
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=timezone.utc)
    return int(round(dt.timestamp() * 1000))
