"""``BacktestGatewayActor``: the gateway role of one symbol in a backtest. It answers the OMS's
``SendOrder``/``SendCancel``/``SendModify``/``QueryOrder``/``RequestReconciliation`` and the
strategy's ``RequestHistory`` from the in-process ``BacktestVenue`` with the event types the
live gateway emits, routed like the live gateway (``actors.routes.ROUTES``), and on
``BacktestAdvance(until_ms)`` replays its symbol's bars that close by then."""

from __future__ import annotations

from typing import Any

import msgspec
from thespian.actors import ActorAddress

from actors.base import GridActor
from actors.routes import ROUTES
from backtest.venue import NS, BacktestVenue, get_venue
from infra.clock import now_ms
from models import messages as m
from models.enums import Market

_KLINE_ROLES_FUTURES = ("strategy",)


class BacktestGatewayActor(GridActor):
    """Gateway role of one symbol in a backtest (in-process venue, no I/O)."""

    role = "gateway"
    multiprocess = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.venue: BacktestVenue | None = None
        self.market = Market.FUTURES

    def on_start(self) -> None:
        assert self.config is not None
        self.market = self.config.portfolio.market_of(self.symbol)

    def receiveMsg_BacktestAttach(self, msg: m.BacktestAttach, sender: ActorAddress) -> None:
        self.venue = get_venue(msg.venue_id)

    def on_wired(self) -> None:
        if self.venue is None:
            return
        f = self.venue.feeds[self.symbol]
        self._route(m.SymbolFiltersLoaded(symbol=self.symbol, ts_event_ns=now_ms() * NS,
                                          filters=f.filters, market=f.market))

    def _route(self, ev: m.Message) -> None:
        roles = ROUTES.get(type(ev), ())
        if self.market is Market.FUTURES and type(ev) is m.KlineClosed:
            # futures risk marks from MarkPriceUpdated, which this venue always sends before
            # the same instant's kline: the kline would be a no-op there (live keeps it as a
            # fallback for the seconds before the first mark arrives)
            roles = _KLINE_ROLES_FUTURES
        for role in roles:
            self.tell_peer(role, ev)

    def _emit(self, events: list[m.Message], cmd: m.Message | None = None) -> None:
        corr = (cmd.correlation_id or cmd.msg_id) if cmd is not None else ""
        for ev in events:
            if corr:
                ev = msgspec.structs.replace(ev, correlation_id=corr)
            self._route(ev)

    # -- driver ---------------------------------------------------------------------------------
    def receiveMsg_BacktestAdvance(self, msg: m.BacktestAdvance, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.advance(self.symbol, msg.until_ms))

    def receiveMsg_BacktestDrain(self, msg: m.BacktestDrain, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.take(self.symbol))

    # -- commands from the OMS and the strategy ---------------------------------------------------
    def receiveMsg_SendOrder(self, msg: m.SendOrder, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.send_order(msg), msg)

    def receiveMsg_SendCancel(self, msg: m.SendCancel, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.cancel_order(msg), msg)

    def receiveMsg_SendModify(self, msg: m.SendModify, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.modify_order(msg), msg)

    def receiveMsg_QueryOrder(self, msg: m.QueryOrder, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.query_order(msg), msg)

    def receiveMsg_RequestReconciliation(self, msg: m.RequestReconciliation,
                                         sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit(self.venue.reconcile(msg), msg)

    def receiveMsg_RequestHistory(self, msg: m.RequestHistory, sender: ActorAddress) -> None:
        assert self.venue is not None
        self._emit([self.venue.history(self.symbol, msg)], msg)

    def status(self) -> dict[str, Any]:
        base = super().status()
        base.update({"market": self.market.value, "connected": self.venue is not None})
        return base
