"""Where each venue event goes: the roles of one symbol tree that receive it.

One table for the live gateway (``actors.gateway``) and the backtest venue, so both deliver an
event to the same actors in the same order.
"""

from __future__ import annotations

from models import messages as m

#: Where each event type goes (roles); everything else is logged and dropped.
ROUTES: dict[type, tuple[str, ...]] = {
    # fills also go straight to risk and strategy (they apply each trade id once; the OMS
    # forwards them again): one sender, so they arrive before the same instant's kline
    m.OrderAccepted: ("order",), m.OrderRejected: ("order",),
    m.OrderFilled: ("order", "risk", "strategy"),
    m.OrderCanceled: ("order",), m.OrderExpired: ("order",), m.OrderModified: ("order",),
    m.OrderModifyRejected: ("order",), m.OrderCancelRejected: ("order",),
    m.OrderOutcomeUnknown: ("order",), m.OrderStatusReported: ("order",),
    m.ExchangeSnapshotReceived: ("order",), m.Reconnected: ("order",),
    m.KlineClosed: ("strategy", "risk"), m.BookUpdated: ("strategy",),
    m.HistoryLoaded: ("strategy",),
    m.MarkPriceUpdated: ("risk",), m.FundingRateUpdated: ("strategy",),
    m.FundingPaid: ("risk",), m.PositionUpdated: ("risk",),
    m.SymbolFiltersLoaded: ("risk", "strategy", "order"),
    m.AccountReported: ("portfolio",), m.VenueBanned: ("portfolio",),
    m.BalanceUpdated: (), m.TimeSynced: (), m.StreamDisconnected: (), m.RateLimited: (),
    m.SymbolWoundDown: ("supervisor",),
}
