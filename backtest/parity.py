"""Parity of the research fast path with the full backtest: what a run decided and earned
(every fill, closed trade and equity point, the order and fill counts, the final equity) as
one comparable record, and the differences between two such records.

The research path (``options.research_options``) runs the same actors on the same runtime as
``run.py backtest`` and only skips writing (snapshots, JSON log, report); this module is how the
tests and ``bench/parity_bench.py`` prove that skipping the writes changes no decision."""

from __future__ import annotations

from typing import Any

from backtest.options import BacktestResult

#: fields of a kept log event that describe the writing, not the trading (wall time, process)
_VOLATILE = frozenset({"ts", "pid", "msg", "level"})


def _events(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.items() if k not in _VOLATILE} for e in rows]


def fingerprint(res: BacktestResult) -> dict[str, Any]:
    """The decisions and results of a run, free of wall-clock and process fields."""
    return {"fills": _events(res.fills_log), "trades": _events(res.trades),
            "equity": _events(res.equity), "orders": res.orders, "fill_count": res.fills,
            "bars": res.bars, "initial_equity": res.initial_equity,
            "final_equity": res.final_equity, "actor_errors": list(res.actor_errors)}


def differences(a: dict[str, Any], b: dict[str, Any], limit: int = 5) -> list[str]:
    """Human-readable differences between two fingerprints (empty: identical)."""
    out: list[str] = []
    for key in a.keys() | b.keys():
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if isinstance(va, list) and isinstance(vb, list):
            if len(va) != len(vb):
                out.append(f"{key}: {len(va)} vs {len(vb)} rows")
            for i, (x, y) in enumerate(zip(va, vb, strict=False)):
                if x != y:
                    out.append(f"{key}[{i}]: {x} != {y}")
                    break
        else:
            out.append(f"{key}: {va!r} != {vb!r}")
    return sorted(out)[:limit]
