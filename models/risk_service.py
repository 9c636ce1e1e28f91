"""The risk service core of one symbol: pre-trade checks, reservations, PnL, halt/flatten.

Pure (no thespian, no I/O, no clock): the risk actor passes every message in with ``now_ns``
(from ``infra.clock``), persists the returned state when ``changed`` is set, then logs and
sends the effects (persist before you act). See docs/RISK.md for the behaviour in prose.

``SymbolRiskCore`` = the order path (``models.risk_orders.RiskOrderGate``: orders, modifies,
reservations, flatten) + what this module adds: the dispatch, fills and PnL, the mark price,
the position check against the exchange, the portfolio's broadcasts and the status fields.
The snapshot and the effects are ``models.risk_state``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.client_ids import generation_of
from models.enums import TradingState
from models.pnl import ClosedTrade
from models.risk import BrakeState
from models.risk_orders import RiskOrderGate
from models.risk_state import (
    FLATTEN_KEY,
    MAX_TRADE_IDS,
    MISMATCH_GRACE_NS,
    NS_PER_MS,
    ZERO,
    RiskEffects,
    fmt_money,
)


class SymbolRiskCore(RiskOrderGate):
    """Risk for one symbol (see the module docstring)."""

    # -- dispatch -----------------------------------------------------------------------------
    def handle(self, msg: m.Message, now_ns: int, portfolio_up: bool = True) -> RiskEffects:
        """Apply one message; ``portfolio_up`` = the actor knows a portfolio peer."""
        fx = RiskEffects()
        handler = getattr(self, "_on_" + type(msg).__name__, None)
        if handler is not None:
            handler(fx, msg, now_ns, portfolio_up)
        self._check_mismatch(fx, now_ns)
        return fx

    # -- OMS events -----------------------------------------------------------------------------
    def _ts_ms(self, msg: m.Message, now_ns: int) -> int:
        return (msg.ts_event_ns or now_ns) // NS_PER_MS

    def _seen_trade(self, trade_id: int) -> bool:
        if trade_id <= self.s.trade_floor or trade_id in self._trade_ids:
            return True
        self._trade_ids.add(trade_id)
        self.s.trade_ids.append(trade_id)
        if len(self.s.trade_ids) > MAX_TRADE_IDS:
            self.s.trade_ids.sort()
            drop = self.s.trade_ids[:-MAX_TRADE_IDS]
            self.s.trade_floor = max(self.s.trade_floor, drop[-1])
            del self.s.trade_ids[:-MAX_TRADE_IDS]
            self._trade_ids = set(self.s.trade_ids)
        return False

    def _on_OrderFilled(self, fx: RiskEffects, msg: m.OrderFilled, now_ns: int,
                        portfolio_up: bool) -> None:
        if self._seen_trade(msg.trade_id):
            return
        fx.changed = True
        ts_ms = self._ts_ms(msg, now_ns)
        try:
            closed = self.ledger.apply_fill(msg.side, msg.price, msg.qty, msg.fee,
                                            msg.fee_asset, ts_ms=ts_ms)
        except ValueError as e:  # fee in an asset we cannot price: book it without the fee
            fx.log("FEE_UNCONVERTED", "ERROR", trade_id=msg.trade_id, fee=msg.fee,
                   fee_asset=msg.fee_asset, detail=str(e))
            closed = self.ledger.apply_fill(msg.side, msg.price, msg.qty, ts_ms=ts_ms)
        key = self.key_of(msg.client_order_id)
        if key is not None:
            e = self.s.orders[key]
            e.filled_qty += msg.qty
            e.filled_notional += msg.price * msg.qty
        if self.s.mark_source in ("", "fill"):
            self.s.mark, self.s.mark_source = msg.price, "fill"
        self._report_position(fx, msg, now_ns, force=True)
        for t in closed:
            self._trade_closed(fx, t, msg, now_ns)
        if self._mismatch is not None and self._mismatch[0] == self.ledger.qty:
            self._mismatch = None
        if self.ledger.qty == ZERO:
            self.s.flatten_wanted = False

    def _trade_closed(self, fx: RiskEffects, t: ClosedTrade, src: m.Message,
                      now_ns: int) -> None:
        fx.log("TRADE_CLOSED", "INFO", side=t.side, qty=t.qty, entry_price=t.entry_price,
               exit_price=t.exit_price, gross_pnl=t.gross_pnl, fees=t.fees, funding=t.funding,
               net_pnl=t.net_pnl, opened_ms=t.opened_ms, closed_ms=t.closed_ms,
               holding_s=t.holding_ms / 1000.0)
        fx.send("portfolio", m.TradeClosed(
            **self._hdr(src, now_ns), side=t.side, qty=t.qty, entry_price=t.entry_price,
            exit_price=t.exit_price, gross_pnl=t.gross_pnl, fees=t.fees, funding=t.funding,
            net_pnl=t.net_pnl, opened_ms=t.opened_ms, closed_ms=t.closed_ms))

    def position_report(self, now_ns: int, src: m.Message | None = None) -> m.PositionReported:
        """The symbol's position and PnL (``realized_pnl`` = gross; fees and funding apart)."""
        lg = self.ledger
        return m.PositionReported(**self._hdr(src, now_ns), qty=lg.qty, entry_price=lg.avg_entry,
                                  mark_price=self.s.mark, realized_pnl=lg.realized_gross,
                                  unrealized_pnl=lg.unrealized(self.s.mark), fees=lg.fees,
                                  funding=lg.funding)

    def _report_position(self, fx: RiskEffects, src: m.Message | None, now_ns: int,
                         force: bool = False) -> None:
        rep = self.position_report(now_ns, src)
        sig = (str(rep.qty), str(rep.unrealized_pnl), str(rep.realized_pnl - rep.fees
                                                         + rep.funding))
        if not force and sig == self.s.last_reported:
            return
        self.s.last_reported = sig  # dedupe only: not worth a snapshot write on its own
        fx.send("portfolio", rep)

    def _on_OrderEnded(self, fx: RiskEffects, msg: m.OrderEnded, now_ns: int,
                       portfolio_up: bool) -> None:
        found = self._entry_by_rid(msg.reservation_id) if msg.reservation_id else None
        if found is None and not msg.reservation_id:
            e = self.s.orders.get(msg.key)
            gen = generation_of(msg.client_order_id) if msg.client_order_id else None
            if e is not None and not e.reservation_ids and \
                    (gen is None or gen >= e.min_generation):
                found = (msg.key, e)
        if msg.reservation_id:  # release whatever is left (idempotent at the portfolio)
            rids = found[1].reservation_ids if found else [msg.reservation_id]
            filled = found[1].filled_notional if found else ZERO
            for i, rid in enumerate(rids):
                fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                       reservation_id=rid,
                                                       filled_notional=filled if i == 0
                                                       else ZERO))
        if found is None:
            return
        key, entry = found
        del self.s.orders[key]
        self._cid_keys = {c: k for c, k in self._cid_keys.items() if k != key}
        fx.changed = True
        if key == FLATTEN_KEY and self.s.flatten_wanted and self.ledger.qty != ZERO:
            self._flatten(fx, msg, now_ns, "position still open after flatten order")

    def _on_ReconciliationCompleted(self, fx: RiskEffects, msg: m.ReconciliationCompleted,
                                    now_ns: int, portfolio_up: bool) -> None:
        self._report_position(fx, msg, now_ns, force=True)

    # -- market data and account ----------------------------------------------------------------
    def _set_mark(self, fx: RiskEffects, src: m.Message, now_ns: int, price: Decimal,
                  source: str) -> None:
        if price <= ZERO:
            return
        # a mark alone is not persisted: after a restart the next update replaces it
        self.s.mark = price
        self.s.mark_source = source
        if self.ledger.qty != ZERO:
            self._report_position(fx, src, now_ns)

    def _on_MarkPriceUpdated(self, fx: RiskEffects, msg: m.MarkPriceUpdated, now_ns: int,
                             portfolio_up: bool) -> None:
        self._set_mark(fx, msg, now_ns, msg.mark_price, "mark")

    def _on_KlineClosed(self, fx: RiskEffects, msg: m.KlineClosed, now_ns: int,
                        portfolio_up: bool) -> None:
        if self.s.mark_source != "mark":
            self._set_mark(fx, msg, now_ns, Decimal(repr(msg.close)), "kline")

    def _on_BookUpdated(self, fx: RiskEffects, msg: m.BookUpdated, now_ns: int,
                        portfolio_up: bool) -> None:
        if self.s.mark_source != "mark" and msg.bid > 0 and msg.ask > 0:
            self._set_mark(fx, msg, now_ns,
                           (Decimal(repr(msg.bid)) + Decimal(repr(msg.ask))) / 2, "book")

    def _on_FundingPaid(self, fx: RiskEffects, msg: m.FundingPaid, now_ns: int,
                        portfolio_up: bool) -> None:
        if not self.ledger.apply_funding(msg.funding_id, msg.amount, self._ts_ms(msg, now_ns)):
            return
        fx.changed = True
        fx.log("FUNDING_PAID", "INFO", funding_id=msg.funding_id, amount=msg.amount)
        self._report_position(fx, msg, now_ns, force=True)

    def _on_PositionUpdated(self, fx: RiskEffects, msg: m.PositionUpdated, now_ns: int,
                            portfolio_up: bool) -> None:
        if msg.market is not self.market:
            return
        if msg.qty == self.ledger.qty:
            self._mismatch = None
            self._mismatch_logged = None
        elif self._mismatch is None or self._mismatch[0] != msg.qty:
            self._mismatch = (msg.qty, now_ns)  # fills may still be on their way: wait

    def _check_mismatch(self, fx: RiskEffects, now_ns: int) -> None:
        mm = self._mismatch
        if mm is None or now_ns - mm[1] < MISMATCH_GRACE_NS or self._mismatch_logged == mm[0]:
            return
        self._mismatch_logged = mm[0]
        fx.log("POSITION_MISMATCH", "WARNING", exchange_qty=mm[0], ledger_qty=self.ledger.qty,
               detail="exchange position disagrees with the fills risk has seen")

    def mismatch_pending(self) -> bool:
        """A position disagreement is waiting for its grace period."""
        return self._mismatch is not None and self._mismatch_logged != self._mismatch[0]

    def check(self, now_ns: int) -> RiskEffects:
        """Periodic check (timers): expiries and the position-mismatch grace."""
        fx = self.expire(now_ns)
        self._check_mismatch(fx, now_ns)
        return fx

    def _on_SymbolFiltersLoaded(self, fx: RiskEffects, msg: m.SymbolFiltersLoaded,
                                now_ns: int, portfolio_up: bool) -> None:
        if self.s.filters != msg.filters:
            self.s.filters = msg.filters
            fx.changed = True

    # -- portfolio broadcasts -------------------------------------------------------------------
    def _on_EquityUpdated(self, fx: RiskEffects, msg: m.EquityUpdated, now_ns: int,
                          portfolio_up: bool) -> None:
        if msg.equity != self.s.equity:
            self.s.equity = msg.equity
            fx.changed = True

    def _on_DrawdownLevelChanged(self, fx: RiskEffects, msg: m.DrawdownLevelChanged,
                                 now_ns: int, portfolio_up: bool) -> None:
        self.s.brake = BrakeState(
            level=msg.level, halted=msg.halted, size_factor=msg.size_factor,
            tp_factor=msg.tp_factor, leverage_cap=msg.leverage_cap,
            entries_allowed=not msg.halted, reduce_only=msg.halted,
            min_entry_conviction=msg.min_entry_conviction, safe_mode=msg.safe_mode,
            drawdown=msg.drawdown)
        if msg.halted:
            self.s.trading_state = TradingState.HALTED
        elif self.s.trading_state is TradingState.HALTED:
            self.s.trading_state = TradingState.ACTIVE
            self.s.flatten_wanted = False
        fx.changed = True

    def _on_TradingStateChanged(self, fx: RiskEffects, msg: m.TradingStateChanged,
                                now_ns: int, portfolio_up: bool) -> None:
        self.s.trading_state = msg.state
        if msg.state is not TradingState.HALTED:
            self.s.flatten_wanted = False
            if self.s.brake is not None and self.s.brake.halted:
                self.s.brake = msgspec.structs.replace(self.s.brake, halted=False,
                                                       entries_allowed=True, reduce_only=False)
        fx.changed = True

    def _on_HaltTrading(self, fx: RiskEffects, msg: m.HaltTrading, now_ns: int,
                        portfolio_up: bool) -> None:
        first = self.s.trading_state is not TradingState.HALTED or not self.s.flatten_wanted
        self.s.trading_state = TradingState.HALTED
        fx.changed = True
        fx.log("HALTED", "WARNING", reason=msg.reason, flatten=msg.flatten,
               position_qty=self.ledger.qty)
        if not msg.flatten:
            return
        fx.send("order", m.CancelAllOrders(**self._hdr(msg, now_ns),
                                           reason=f"halt: {msg.reason}"))
        if first:
            self.s.flatten_attempts = 0
        self.s.flatten_wanted = True
        self._flatten(fx, msg, now_ns, f"halt: {msg.reason}")

    def _on_StopTrading(self, fx: RiskEffects, msg: m.StopTrading, now_ns: int,
                        portfolio_up: bool) -> None:
        self.stopping = True

    # -- status -----------------------------------------------------------------------------------
    def _leverage(self) -> float:
        eq = self.s.equity
        return round(float(abs(self.ledger.qty * self.s.mark) / eq), 4) if eq > ZERO else 0.0

    def status_line(self) -> dict[str, Any]:
        """The backtest's periodic STATUS fields (the same values as ``status``)."""
        lg = self.ledger
        b = self.s.brake
        level = b.level if b is not None else 0
        return {"position": fmt_money(lg.qty), "entry_price": fmt_money(lg.avg_entry),
                "unrealized_pnl": fmt_money(lg.unrealized(self.s.mark)),
                "realized_pnl": fmt_money(lg.realized_net), "open_orders": len(self.s.orders),
                "leverage": self._leverage(), "drawdown_level": level}

    def status(self) -> dict[str, Any]:
        """Fields for ``run.py status`` and the supervisor's STATUS line."""
        lg, mark = self.ledger, self.s.mark
        eq = self.s.equity
        b = self.brake()
        return {
            "position": fmt_money(lg.qty), "entry_price": fmt_money(lg.avg_entry),
            "mark_price": fmt_money(mark), "unrealized_pnl": fmt_money(lg.unrealized(mark)),
            "realized_pnl": fmt_money(lg.realized_net), "fees": fmt_money(lg.fees),
            "funding": fmt_money(lg.funding), "equity": fmt_money(eq),
            "leverage": self._leverage(),
            "leverage_cap": b.leverage_cap, "drawdown_level": b.level,
            "drawdown": round(b.drawdown, 6), "trading_state": self.s.trading_state.value,
            "live_orders": len(self.s.orders), "pending_reservations": len(self.s.pending),
            "closed_trades": lg.closed_trades, "halted": b.halted,
        }
