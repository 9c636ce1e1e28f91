"""Risk's order path for one symbol (base of ``models.risk_service.SymbolRiskCore``): pre-trade
checks, exposure reservations, fail-closed timeouts and flatten orders. Pure.

Order flow for one ``PlaceOrder``:

1. filters known, key not already live, ``models.risk.pre_trade_check`` (round to tick/step or
   deny; halt and safe-mode gates; max order notional; symbol worst-case exposure);
2. reduce-only orders go straight to the OMS (``SubmitOrder`` without reservation), also when
   halted or when the portfolio is unavailable;
3. any other order is held while the portfolio is asked (``ReserveExposure`` with the
   deterministic id ``"<SYMBOL>-<key>-<counter>"``, counter persisted), then submitted on
   ``ExposureReserved`` or denied on ``ExposureDenied``;
4. **fail closed**: no portfolio peer, or no answer within ``reservation_timeout_s`` → denied
   ``"portfolio unavailable"`` (an order that can only shrink the position still goes, as in
   ``models.risk.fail_closed``); a late grant is released again.

``ModifyOrder``: forwarded when the new notional (price x total qty) fits the notional already
reserved for the order; otherwise the difference is reserved first (same hold/timeout path).
"""

from __future__ import annotations

from collections import OrderedDict
from decimal import Decimal
from typing import Any

import msgspec

from models import messages as m
from models.client_ids import client_order_id, generation_of
from models.enums import Market, OrderType, Side, TradingState
from models.pnl import PositionLedger
from models.risk import BrakeState, OrderIntent, RiskParams, limits_for, pre_trade_check
from models.risk_state import (
    FLATTEN_KEY,
    MAX_FLATTEN_ATTEMPTS,
    MAX_SEEN_MSGS,
    NS_PER_S,
    PORTFOLIO_UNAVAILABLE,
    ZERO,
    OrderEntry,
    PendingRequest,
    RiskEffects,
    RiskState,
)


class RiskOrderGate:
    """The order path of one symbol's risk core: its state, pre-trade checks, reservations and
    flatten orders (see the module docstring). ``models.risk_service.SymbolRiskCore`` adds
    the dispatch, fills and PnL, marks, the portfolio's broadcasts and status."""

    def __init__(self, symbol: str, market: Market, weight: float, leverage_cap: float,
                 params: RiskParams, prefix: str = "gb", *,
                 reservation_timeout_s: float | None = None,
                 state: RiskState | None = None) -> None:
        self.symbol = symbol
        self.market = market
        self.weight = weight
        self.params = params
        self.prefix = prefix
        self.leverage_cap = leverage_cap
        #: RiskParams has ``reservation_timeout_s``; the argument overrides it (tests)
        self.timeout_s = (params.reservation_timeout_s if reservation_timeout_s is None
                          else reservation_timeout_s)
        if state is None:
            quote = "USDT"
            base = symbol[:-len(quote)] if symbol.endswith(quote) else ""
            state = RiskState(ledger=PositionLedger(symbol=symbol, market=market,
                                                    base_asset=base, quote_asset=quote))
        self.s = state
        self.s.ledger.market = market
        self.stopping = False  # graceful stop in progress (not persisted: a restart trades)
        self._seen: OrderedDict[str, str] = OrderedDict(state.seen_msgs)
        self._trade_ids = set(state.trade_ids)
        self._cid_keys: dict[str, str] = {}
        self._mismatch: tuple[Decimal, int] | None = None  # (exchange qty, since ns)
        self._mismatch_logged: Decimal | None = None

    # -- state --------------------------------------------------------------------------------
    def to_state(self) -> RiskState:
        """Snapshot (shares the ledger object; encode it right away)."""
        self.s.seen_msgs = list(self._seen.items())
        return self.s

    @property
    def ledger(self) -> PositionLedger:
        return self.s.ledger

    def brake(self) -> BrakeState:
        """The brake limits in force (the portfolio's last ``DrawdownLevelChanged``)."""
        b = self.s.brake or BrakeState(leverage_cap=self.leverage_cap)
        if self.s.trading_state is TradingState.HALTED and not b.halted:
            b = msgspec.structs.replace(b, halted=True, entries_allowed=False, reduce_only=True)
        return b

    def halted(self) -> bool:
        return self.brake().halted

    def resting(self, side: Side, exclude: str = "") -> Decimal:
        """Reserved, unfilled notional of live non-reduce-only orders on one side."""
        return sum((e.remaining_notional() for k, e in self.s.orders.items()
                    if e.side is side and not e.reduce_only and k != exclude), ZERO) + \
            sum((p.notional for p in self.s.pending.values()
                 if p.side is side and p.submit is not None and p.key != exclude), ZERO)

    def position_notional(self) -> Decimal:
        return self.ledger.qty * self.s.mark

    # -- helpers ------------------------------------------------------------------------------
    def _hdr(self, src: m.Message | None, now_ns: int) -> dict[str, Any]:
        corr = (src.correlation_id or src.msg_id) if src is not None else ""
        return {"symbol": self.symbol, "ts_event_ns": now_ns, "correlation_id": corr}

    def _deny(self, fx: RiskEffects, src: m.Message, now_ns: int, key: str, side: Side,
              reason: str, detail: str = "", stage: str = "risk") -> None:
        fx.send("strategy", m.OrderDenied(**self._hdr(src, now_ns), key=key, side=side,
                                          reason=reason, detail=detail))
        fx.log("RISK_BLOCKED", "WARNING", key=key, side=side, reason=reason, detail=detail,
               stage=stage)

    def _remember(self, msg_id: str, outcome: str) -> None:
        self._seen[msg_id] = outcome
        while len(self._seen) > MAX_SEEN_MSGS:
            self._seen.popitem(last=False)

    def _next_rid(self, key: str) -> str:
        self.s.counter += 1
        return f"{self.symbol}-{key}-{self.s.counter}"

    def key_of(self, cid: str) -> str | None:
        """The key of a live order from one of its client order ids (any generation)."""
        if cid in self._cid_keys:
            return self._cid_keys[cid]
        gen = generation_of(cid)
        if gen is None:
            return None
        for key in self.s.orders:
            try:
                if client_order_id(self.prefix, self.symbol, key, gen) == cid:
                    self._cid_keys[cid] = key
                    return key
            except ValueError:
                continue
        return None

    def _entry_by_rid(self, rid: str) -> tuple[str, OrderEntry] | None:
        for k, e in self.s.orders.items():
            if rid in e.reservation_ids:
                return k, e
        return None

    # -- strategy commands --------------------------------------------------------------------
    def _on_PlaceOrder(self, fx: RiskEffects, msg: m.PlaceOrder, now_ns: int,
                       portfolio_up: bool) -> None:
        if msg.msg_id in self._seen:
            return  # re-delivery: already decided
        self._remember(msg.msg_id, "seen")
        fx.changed = True
        if self.s.filters is None:
            self._deny(fx, msg, now_ns, msg.key, msg.side, "NO_FILTERS",
                       "symbol filters not loaded yet")
            return
        if msg.key in self.s.orders or any(p.key == msg.key for p in self.s.pending.values()):
            self._deny(fx, msg, now_ns, msg.key, msg.side, "KEY_HAS_LIVE_ORDER")
            return
        brake = self.brake()
        limits = limits_for(self.params, self.s.equity, self.weight, brake,
                            self.resting(Side.BUY), self.resting(Side.SELL))
        intent = OrderIntent(symbol=self.symbol, side=msg.side, price=msg.price, qty=msg.qty,
                             reduce_only=msg.reduce_only, conviction=msg.conviction,
                             order_type=msg.order_type, key=msg.key)
        res = pre_trade_check(intent, self.s.filters, brake, self.ledger.qty, limits,
                              market=self.market, ref_price=self.s.mark or None)
        if res.approved and self.stopping and not res.reduces:
            res = msgspec.structs.replace(res, approved=False, reason="STOPPING",
                                          detail="graceful stop in progress")
        if not res.approved:
            reason = res.reason
            if reason in ("MAX_ORDER_NOTIONAL", "SYMBOL_EXPOSURE") and self.s.equity <= ZERO:
                reason = "NO_EQUITY"
            self._deny(fx, msg, now_ns, msg.key, msg.side, reason, res.detail)
            return
        sub = m.SubmitOrder(**self._hdr(msg, now_ns), key=msg.key, side=msg.side,
                            order_type=msg.order_type, price=res.price, qty=res.qty,
                            tif=msg.tif, reduce_only=msg.reduce_only, kind=msg.kind,
                            strategy_context=msg.strategy_context)
        if res.adjusted:
            fx.log("ORDER_ADJUSTED", "DEBUG", key=msg.key, side=msg.side, price=msg.price,
                   qty=msg.qty, new_price=res.price, new_qty=res.qty)
        if msg.reduce_only or (res.reduces and self.halted()):
            # reduce-only (and, while halted, any order that can only shrink the position,
            # e.g. a spot take-profit sell) needs no reservation
            self._submit(fx, sub, "", ZERO, f"risk-{self.symbol}-{msg.key}-{msg.msg_id}")
            return
        if not portfolio_up:
            self._fail_closed(fx, msg, now_ns, sub, res.reduces)
            return
        rid = self._next_rid(msg.key)
        self.s.pending[rid] = PendingRequest(
            reservation_id=rid, key=msg.key, side=msg.side, notional=res.notional,
            deadline_ns=now_ns + int(self.timeout_s * NS_PER_S), reduces=res.reduces,
            submit=sub, conviction=msg.conviction)
        fx.send("portfolio", m.ReserveExposure(**self._hdr(msg, now_ns), reservation_id=rid,
                                               side=msg.side, notional=res.notional))
        fx.timers.append((self.timeout_s, rid))

    def _fail_closed(self, fx: RiskEffects, src: m.Message, now_ns: int,
                     sub: m.SubmitOrder, reduces: bool) -> None:
        if reduces:  # can only shrink the position: allowed without a reservation
            self._submit(fx, sub, "", ZERO, f"risk-{self.symbol}-{sub.key}-{src.msg_id}")
            return
        self._deny(fx, src, now_ns, sub.key, sub.side, PORTFOLIO_UNAVAILABLE,
                   "no reservation answer: failing closed")

    def _submit(self, fx: RiskEffects, sub: m.SubmitOrder, rid: str, notional: Decimal,
                msg_id: str) -> None:
        sub = msgspec.structs.replace(sub, reservation_id=rid, msg_id=msg_id)
        self.s.orders[sub.key] = OrderEntry(
            key=sub.key, side=sub.side, order_type=sub.order_type, price=sub.price, qty=sub.qty,
            reduce_only=sub.reduce_only, kind=sub.kind,
            reservation_ids=[rid] if rid else [], reserved=notional)
        fx.changed = True
        fx.send("order", sub)

    def _on_ModifyOrder(self, fx: RiskEffects, msg: m.ModifyOrder, now_ns: int,
                        portfolio_up: bool) -> None:
        if msg.msg_id in self._seen:
            return
        self._remember(msg.msg_id, "seen")
        fx.changed = True
        key = self.key_of(msg.client_order_id)
        entry = self.s.orders.get(key) if key else None
        if entry is None:
            self._deny(fx, msg, now_ns, key or msg.client_order_id, msg.side, "UNKNOWN_ORDER",
                       "modify of an order risk does not hold")
            return
        if self.s.filters is None:
            self._deny(fx, msg, now_ns, entry.key, entry.side, "NO_FILTERS")
            return
        if any(p.key == entry.key for p in self.s.pending.values()):
            self._deny(fx, msg, now_ns, entry.key, entry.side, "KEY_PENDING",
                       "a reservation for this order is still pending")
            return
        brake = self.brake()
        limits = limits_for(self.params, self.s.equity, self.weight, brake,
                            self.resting(Side.BUY, exclude=entry.key),
                            self.resting(Side.SELL, exclude=entry.key))
        # no conviction on a modify: the safe-mode gate applies to new entries only
        intent = OrderIntent(symbol=self.symbol, side=entry.side, price=msg.price, qty=msg.qty,
                             reduce_only=entry.reduce_only, conviction=1.0,
                             order_type=OrderType.LIMIT, key=entry.key)
        res = pre_trade_check(intent, self.s.filters, brake, self.ledger.qty, limits,
                              market=self.market, ref_price=self.s.mark or None)
        if not res.approved:
            self._deny(fx, msg, now_ns, entry.key, entry.side, res.reason, res.detail)
            return
        assert res.price is not None
        fwd = msgspec.structs.replace(msg, price=res.price, qty=res.qty, side=entry.side,
                                      symbol=self.symbol)
        new_notional = res.price * res.qty
        if entry.reduce_only or not entry.reservation_ids or new_notional <= entry.reserved:
            self._forward_modify(fx, entry, fwd)
            return
        delta = new_notional - entry.reserved
        if not portfolio_up:
            self._deny(fx, msg, now_ns, entry.key, entry.side, PORTFOLIO_UNAVAILABLE,
                       "modify needs more exposure: failing closed")
            return
        rid = self._next_rid(entry.key)
        self.s.pending[rid] = PendingRequest(
            reservation_id=rid, key=entry.key, side=entry.side, notional=delta,
            deadline_ns=now_ns + int(self.timeout_s * NS_PER_S), modify=fwd)
        fx.send("portfolio", m.ReserveExposure(**self._hdr(msg, now_ns), reservation_id=rid,
                                               side=entry.side, notional=delta))
        fx.timers.append((self.timeout_s, rid))

    def _forward_modify(self, fx: RiskEffects, entry: OrderEntry, fwd: m.ModifyOrder) -> None:
        entry.price, entry.qty = fwd.price, fwd.qty
        if self.market is Market.SPOT:  # cancel-replace: the next generation carries the order
            gen = generation_of(fwd.client_order_id)
            if gen is not None:
                entry.min_generation = max(entry.min_generation, gen + 1)
        fx.changed = True
        fx.send("order", fwd)

    def _on_CancelOrder(self, fx: RiskEffects, msg: m.CancelOrder, now_ns: int,
                        portfolio_up: bool) -> None:
        fx.send("order", msg)

    def _on_CancelAllOrders(self, fx: RiskEffects, msg: m.CancelAllOrders, now_ns: int,
                            portfolio_up: bool) -> None:
        fx.send("order", msg)

    def _on_FlattenPosition(self, fx: RiskEffects, msg: m.FlattenPosition, now_ns: int,
                            portfolio_up: bool) -> None:
        fx.send("order", m.CancelAllOrders(**self._hdr(msg, now_ns),
                                           reason=msg.reason or "flatten"))
        self.s.flatten_attempts = 0
        self._flatten(fx, msg, now_ns, msg.reason or "flatten requested")

    def _flatten(self, fx: RiskEffects, src: m.Message, now_ns: int, reason: str) -> None:
        """Close the position with one reduce-only MARKET order (key ``flatten``)."""
        qty = abs(self.ledger.qty)
        f = self.s.filters
        if f is not None:
            qty = f.round_qty(qty, market=True)
            if qty < f.market_min_qty:
                qty = ZERO
        if qty <= ZERO or FLATTEN_KEY in self.s.orders:
            return
        if self.s.flatten_attempts >= MAX_FLATTEN_ATTEMPTS:
            fx.log("FLATTEN_FAILED", "ERROR", position_qty=self.ledger.qty,
                   detail=f"{MAX_FLATTEN_ATTEMPTS} flatten orders did not close the position")
            return
        self.s.flatten_attempts += 1
        self.s.flatten_counter += 1
        side = Side.SELL if self.ledger.qty > ZERO else Side.BUY
        sub = m.SubmitOrder(**self._hdr(src, now_ns), key=FLATTEN_KEY, side=side,
                            order_type=OrderType.MARKET, qty=qty,
                            # spot has no reduceOnly flag; a sell of the inventory only reduces
                            reduce_only=self.market is Market.FUTURES, kind="FLATTEN",
                            strategy_context={"reason": reason})
        fx.log("FLATTEN", "WARNING", side=side, qty=qty, reason=reason,
               attempt=self.s.flatten_attempts)
        self._submit(fx, sub, "", ZERO, f"risk-{self.symbol}-flatten-{self.s.flatten_counter}")

    # -- portfolio answers ----------------------------------------------------------------------
    def _on_ExposureReserved(self, fx: RiskEffects, msg: m.ExposureReserved, now_ns: int,
                             portfolio_up: bool) -> None:
        p = self.s.pending.pop(msg.reservation_id, None)
        if p is None:
            if self._entry_by_rid(msg.reservation_id) is None:  # late answer after a timeout
                fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                       reservation_id=msg.reservation_id))
            return
        fx.changed = True
        if p.submit is not None:
            if (self.halted() or self.stopping) and not p.reduces:
                fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                       reservation_id=p.reservation_id))
                self._deny(fx, p.submit, now_ns, p.key, p.side,
                           "HALTED" if self.halted() else "STOPPING", "after reservation")
                return
            self._submit(fx, p.submit, p.reservation_id, p.notional,
                         f"risk-{p.reservation_id}")
            return
        entry = self.s.orders.get(p.key)
        if p.modify is None or entry is None:  # the order ended meanwhile
            fx.send("portfolio", m.ReleaseExposure(**self._hdr(msg, now_ns),
                                                   reservation_id=p.reservation_id))
            return
        entry.reservation_ids.append(p.reservation_id)
        entry.reserved += p.notional
        self._forward_modify(fx, entry, p.modify)

    def _on_ExposureDenied(self, fx: RiskEffects, msg: m.ExposureDenied, now_ns: int,
                           portfolio_up: bool) -> None:
        p = self.s.pending.pop(msg.reservation_id, None)
        if p is None:
            return
        fx.changed = True
        self._deny(fx, msg, now_ns, p.key, p.side, msg.reason, "portfolio", stage="portfolio")

    def expire(self, now_ns: int, only: str | None = None, force: bool = False) -> RiskEffects:
        """Fail closed on every held request whose deadline passed (``only``: that id;
        ``force``: its timer fired, whatever the clock says)."""
        fx = RiskEffects()
        for rid in [r for r, p in self.s.pending.items()
                    if (force or p.deadline_ns <= now_ns) and (only is None or r == only)]:
            p = self.s.pending.pop(rid)
            fx.changed = True
            fx.send("portfolio", m.ReleaseExposure(symbol=self.symbol, ts_event_ns=now_ns,
                                                   reservation_id=rid))
            if p.submit is not None:
                self._fail_closed(fx, p.submit, now_ns, p.submit, p.reduces)
            else:
                self._deny(fx, p.modify or p.submit, now_ns, p.key, p.side,
                           PORTFOLIO_UNAVAILABLE, "modify: no reservation answer")
        return fx

    def abort_pending(self, now_ns: int, reason: str = "risk restarted") -> RiskEffects:
        """After a restart: held requests can get no answer any more (the portfolio replies to
        the old address): deny them and release whatever the portfolio may have granted."""
        fx = RiskEffects()
        for rid, p in list(self.s.pending.items()):
            del self.s.pending[rid]
            fx.changed = True
            fx.send("portfolio", m.ReleaseExposure(symbol=self.symbol, ts_event_ns=now_ns,
                                                   reservation_id=rid))
            fx.send("strategy", m.OrderDenied(symbol=self.symbol, ts_event_ns=now_ns,
                                              key=p.key, side=p.side,
                                              reason=PORTFOLIO_UNAVAILABLE, detail=reason))
            fx.log("RISK_BLOCKED", "WARNING", key=p.key, side=p.side,
                   reason=PORTFOLIO_UNAVAILABLE, detail=reason, stage="restart")
        return fx
