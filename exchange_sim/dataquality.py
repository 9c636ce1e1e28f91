"""Data validation of a kline file as it is parsed: what was repaired or is suspicious, with
the file, the line and the values.

* ``conflicting_duplicate``: two rows with the same open time and different values; the first
  row is kept (as before), the other dropped. Exact repeats are dropped silently (archives
  overlap by design).
* ``out_of_order``: a row whose open time is earlier than the row before it; the file is
  sorted.
* ``outlier``: a bar that is almost certainly a bad print rather than a market move — its
  close jumps more than ``MAD_MULTIPLE`` robust deviations of the local returns *and* at least
  ``SPIKE_MIN_MOVE`` away, and the next close comes back (a one-bar spike); or a wick more than
  ``MAD_MULTIPLE`` deviations and at least ``WICK_MIN_MOVE`` beyond both neighbouring closes
  (Binance's futures 1h ETHUSDT of 2020-03-13 02:00 has a high of 323 at a price of ~100).
  Kept, reported. Real crashes (2020-03-12, 2025-10-10) move far in MADs but do not come back
  within a bar, and are not flagged (measured on every file of ``shared/data``).

``strict`` callers turn any of them into an error; the others log and report them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from models.timeframes import fmt_ms

#: robust multiple of the local absolute-return scale beyond which a move is an outlier
MAD_MULTIPLE = 20.0
#: a one-bar spike must also move the close by at least this much (log: ln 1.5) and come back
SPIKE_MIN_MOVE = math.log(1.5)
#: a wick must also reach this far beyond both neighbouring closes (log: ln 2, ×2 or ÷2)
WICK_MIN_MOVE = math.log(2.0)
#: bars per block over which the local scale (1.4826 × median |log return|) is measured
SCALE_BLOCK = 512
#: issues reported per kind and file (the count says how many more)
MAX_PER_KIND = 50


@dataclass(frozen=True)
class DataIssue:
    """One finding in one file."""

    kind: str
    file: str
    line: int
    open_time: int
    detail: str
    action: str

    def __str__(self) -> str:
        return (f"{self.file}: line {self.line}: {self.kind.replace('_', ' ')} at "
                f"{fmt_ms(self.open_time)}: {self.detail} ({self.action})")

    def to_dict(self) -> dict[str, object]:
        """JSON-able form (report, logs)."""
        return {"kind": self.kind, "file": self.file, "line": self.line,
                "open_time": fmt_ms(self.open_time), "detail": self.detail,
                "action": self.action}


def _row(arr: np.ndarray, i: int) -> str:
    return ",".join(f"{x:.10g}" for x in arr[i, :6].tolist())


def row_issues(path: str, ot: np.ndarray, arr: np.ndarray, lines: np.ndarray
               ) -> list[DataIssue]:
    """Out-of-order rows and conflicting duplicates of a parsed file (``ot`` its open times
    in ms in file order, ``arr`` its rows, ``lines`` each row's line number)."""
    out: list[DataIssue] = []
    back = np.flatnonzero(ot[1:] < ot[:-1]) + 1
    for i in back[:MAX_PER_KIND].tolist():
        out.append(DataIssue("out_of_order", path, int(lines[i]), int(ot[i]),
                             f"open time earlier than line {int(lines[i - 1])}'s "
                             f"({fmt_ms(int(ot[i - 1]))})", "file sorted"))
    order = np.argsort(ot, kind="stable")
    so = ot[order]
    dup = np.flatnonzero(so[1:] == so[:-1]) + 1
    if not len(dup):
        return out
    # the first row of each run of equal open times is kept; compare every later row with it
    first = np.maximum.accumulate(np.where(np.r_[True, so[1:] != so[:-1]],
                                           np.arange(len(so)), 0))
    n = 0
    for k in dup.tolist():
        i, j = int(order[first[k]]), int(order[k])
        if np.array_equal(arr[i], arr[j]):
            continue
        n += 1
        if n <= MAX_PER_KIND:
            out.append(DataIssue("conflicting_duplicate", path, int(lines[j]), int(ot[j]),
                                 f"{_row(arr, j)} differs from line {int(lines[i])}: "
                                 f"{_row(arr, i)}", f"line {int(lines[i])} kept"))
    return out


def _local_scale(r: np.ndarray) -> np.ndarray:
    """1.4826 × median |r| per block of ``SCALE_BLOCK`` returns, per return."""
    a = np.abs(r)
    n = len(a)
    nb = -(-n // SCALE_BLOCK)
    pad = np.full(nb * SCALE_BLOCK, np.nan)
    pad[:n] = a
    med = np.nanmedian(pad.reshape(nb, SCALE_BLOCK), axis=1) * 1.4826
    return np.maximum(np.repeat(med, SCALE_BLOCK)[:n], 1e-12)


def outlier_issues(path: str, ot: np.ndarray, high: np.ndarray, low: np.ndarray,
                   close: np.ndarray, lines: np.ndarray) -> list[DataIssue]:
    """One-bar spikes and impossible wicks of sorted, de-duplicated bars (see the module)."""
    if len(close) < 3:
        return []
    lc = np.log(close)
    r = np.diff(lc)
    scale = _local_scale(r)
    lim = MAD_MULTIPLE * scale[:-1]
    rin, rout = r[:-1], r[1:]  # into and out of bars 1..n-2
    spike = ((np.abs(rin) > lim) & (np.abs(rin) > SPIKE_MIN_MOVE) & (np.abs(rout) > lim)
             & (np.sign(rin) != np.sign(rout)) & (np.abs(lc[2:] - lc[:-2]) < 0.5 * np.abs(rin)))
    hi_ref = np.maximum(close[:-2], close[2:])
    lo_ref = np.minimum(close[:-2], close[2:])
    up = np.log(high[1:-1] / hi_ref)
    down = np.log(lo_ref / low[1:-1])
    wick = (((up > lim) & (up > WICK_MIN_MOVE)) | ((down > lim) & (down > WICK_MIN_MOVE)))
    out: list[DataIssue] = []
    for k in np.flatnonzero(spike | wick)[:MAX_PER_KIND].tolist():
        i = k + 1
        move = (f"close {close[i]:.10g} after {close[i - 1]:.10g}, then {close[i + 1]:.10g}"
                if spike[k] else
                f"high {high[i]:.10g} / low {low[i]:.10g} around closes {close[i - 1]:.10g} "
                f"and {close[i + 1]:.10g}")
        z = max(abs(rin[k]), up[k], down[k]) / scale[k]
        out.append(DataIssue("outlier", path, int(lines[i]), int(ot[i]),
                             f"{move} ({z:.0f} robust deviations)", "kept"))
    return out


def in_range(issues: tuple[DataIssue, ...] | list[DataIssue], start_ms: int | None,
             end_ms: int | None) -> list[DataIssue]:
    """The issues whose open time lies in ``[start_ms, end_ms)`` (None: unbounded)."""
    return [x for x in issues if (start_ms is None or x.open_time >= start_ms)
            and (end_ms is None or x.open_time < end_ms)]
