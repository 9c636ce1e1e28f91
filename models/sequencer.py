"""Event reordering at the gateway: one deterministic order for events of the same instant.

Binance (and the embedded exchange) deliver a bar close's fills on the user-data socket and its
kline/book/mark on market sockets: which arrives first is a race. The strategy and risk must not
depend on that race (a backtest replays one fixed order), so the gateway holds incoming events
for a short window and releases them sorted by event time and then by kind: order events,
account events, mark/funding, book, kline — the order the backtest venue uses.

Pure: receipt times are passed in.
"""

from __future__ import annotations

from models import messages as m

#: Release order of events with the same event time (lower first).
PRIORITY: dict[type, int] = {
    m.OrderAccepted: 0, m.OrderRejected: 0, m.OrderFilled: 0, m.OrderCanceled: 0,
    m.OrderExpired: 0, m.OrderModified: 0, m.OrderModifyRejected: 0,
    m.OrderCancelRejected: 0, m.OrderOutcomeUnknown: 0, m.OrderStatusReported: 0,
    m.PositionUpdated: 1, m.BalanceUpdated: 1, m.FundingPaid: 1, m.AccountReported: 1,
    m.MarkPriceUpdated: 2, m.FundingRateUpdated: 2,
    m.BookUpdated: 3,
    m.KlineClosed: 4,
}
_OTHER = 5


class ReorderBuffer:
    """Hold events until ``hold_s`` passed without a new one (at most ``max_hold_s`` after the
    oldest), then release them sorted by (event time, kind, arrival). ``hold_s`` 0: no hold."""

    def __init__(self, hold_s: float, max_hold_s: float | None = None) -> None:
        if hold_s < 0:
            raise ValueError("hold_s must be >= 0")
        self.hold_s = hold_s
        self.max_hold_s = max(hold_s, max_hold_s if max_hold_s is not None else 5 * hold_s)
        self._held: list[tuple[int, int, int, m.Message]] = []
        self._seq = 0
        self._first = 0.0
        self._last = 0.0

    def __len__(self) -> int:
        return len(self._held)

    def push(self, msg: m.Message, recv_s: float) -> None:
        """An event received at ``recv_s``."""
        if not self._held:
            self._first = recv_s
        self._last = recv_s
        self._seq += 1
        self._held.append((msg.ts_event_ns, PRIORITY.get(type(msg), _OTHER), self._seq, msg))

    def due(self, now_s: float) -> list[m.Message]:
        """Events to release now (sorted), or [] while the window is still open."""
        if not self._held:
            return []
        if now_s - self._last < self.hold_s and now_s - self._first < self.max_hold_s:
            return []
        out = [x[3] for x in sorted(self._held, key=lambda x: x[:3])]
        self._held.clear()
        return out

    def next_check_in(self, now_s: float) -> float | None:
        """Seconds until ``due`` may release something (None when nothing is held)."""
        if not self._held:
            return None
        return max(0.0, min(self._last + self.hold_s, self._first + self.max_hold_s) - now_s)
