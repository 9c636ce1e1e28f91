"""The order ledger of one symbol and reconciliation with the exchange (OMS core). Pure."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

import msgspec

from models.client_ids import parse_client_order_id
from models.enums import Side
from models.order_states import OrderState, Trigger
from models.orders import (
    ExchangeOrderView,
    ExchangeTradeView,
    OrderRecord,
    OrderView,
    TradeView,
    apply_exchange_status,
    apply_fill,
    apply_trigger,
    new_order,
)

ZERO = Decimal(0)


# ------------------------------------------------------------------------------------------
# Ledger
# ------------------------------------------------------------------------------------------
class LedgerState(msgspec.Struct, kw_only=True):
    """Persistent form of an ``OrderLedger``."""

    prefix: str
    symbol: str
    orders: list[OrderRecord] = msgspec.field(default_factory=list)
    generations: dict[str, int] = msgspec.field(default_factory=dict)


class OrderLedger:
    """The orders of one symbol keyed by clientOrderId, with the next generation per key."""

    def __init__(self, prefix: str, symbol: str) -> None:
        self.prefix = prefix
        self.symbol = symbol
        self._orders: dict[str, OrderRecord] = {}
        self._generations: dict[str, int] = {}
        self._by_intent: dict[str, str] = {}
        self._by_eid: dict[int, str] = {}
        #: the open records in ``_orders`` order (None: rebuild on the next read)
        self._open: dict[str, OrderRecord] | None = {}

    # -- access -------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._orders)

    def __contains__(self, cid: object) -> bool:
        return cid in self._orders

    def get(self, cid: str) -> OrderRecord | None:
        """The record of a client order id."""
        return self._orders.get(cid)

    def by_exchange_id(self, eid: int) -> OrderRecord | None:
        """The record of an exchange order id."""
        cid = self._by_eid.get(eid)
        return self._orders.get(cid) if cid else None

    def open_orders(self) -> list[OrderRecord]:
        """Non-terminal orders, oldest first."""
        return list(self._open_index().values())

    def _open_index(self) -> dict[str, OrderRecord]:
        idx = self._open
        if idx is None:
            idx = self._open = {c: r for c, r in self._orders.items() if r.is_open}
        return idx

    def terminal_orders(self) -> list[OrderRecord]:
        """Terminal orders, oldest first."""
        return [r for r in self._orders.values() if not r.is_open]

    def open_for_key(self, key: str) -> OrderRecord | None:
        """The live order of a grid key, if any."""
        for r in self._open_index().values():
            if r.key == key:
                return r
        return None

    def next_generation(self, key: str) -> int:
        """The generation the next new order for ``key`` would get."""
        return self._generations.get(key, 0)

    # -- mutation -----------------------------------------------------------------------------
    def put(self, rec: OrderRecord) -> None:
        """Store (or replace) a record and keep the indexes and generations in step."""
        cid = rec.client_order_id
        idx = self._open
        if idx is not None:
            if not rec.is_open:
                idx.pop(cid, None)
            elif cid in idx or cid not in self._orders:
                idx[cid] = rec  # same position as in _orders (replaced, or both appended)
            else:
                self._open = None  # a terminal record reopened: rebuild in _orders order
        self._orders[cid] = rec
        if rec.intent_id:
            self._by_intent[rec.intent_id] = rec.client_order_id
        if rec.exchange_order_id is not None:
            self._by_eid[rec.exchange_order_id] = rec.client_order_id
        if rec.key and self._generations.get(rec.key, 0) <= rec.generation:
            self._generations[rec.key] = rec.generation + 1

    def create(self, *, key: str, side: Side, qty: Decimal, ts_ms: int,
               intent_id: str = "", **kw: object) -> tuple[OrderRecord, bool]:
        """Idempotent order creation; returns ``(record, created)``.

        The same ``intent_id`` (e.g. the PlaceOrder msg_id) always returns the same record,
        and a key with a live order returns that order: a re-delivered or retried intent can
        never make a second order. Otherwise the key's next generation is used.
        """
        if intent_id and intent_id in self._by_intent:
            return self._orders[self._by_intent[intent_id]], False
        live = self.open_for_key(key)
        if live is not None:
            return live, False
        rec = new_order(prefix=self.prefix, symbol=self.symbol, key=key,
                        generation=self.next_generation(key), side=side, qty=qty,
                        intent_id=intent_id, ts_ms=ts_ms, **kw)  # type: ignore[arg-type]
        self.put(rec)
        return rec, True

    def trigger(self, cid: str, trigger: Trigger, **kw: object) -> OrderRecord:
        """``apply_trigger`` on a stored record and store the result."""
        rec = apply_trigger(self._require(cid), trigger, **kw)  # type: ignore[arg-type]
        self.put(rec)
        return rec

    def fill(self, cid: str, trade_id: int, price: Decimal, qty: Decimal, fee: Decimal,
             fee_asset: str, ts_ms: int) -> tuple[OrderRecord, bool]:
        """``apply_fill`` on a stored record and store the result."""
        rec, applied = apply_fill(self._require(cid), trade_id, price, qty, fee, fee_asset,
                                  ts_ms)
        if applied:
            self.put(rec)
        return rec, applied

    def status(self, cid: str, view: ExchangeOrderView, ts_ms: int) -> OrderRecord:
        """``apply_exchange_status`` on a stored record and store the result."""
        rec = apply_exchange_status(self._require(cid), view, ts_ms)
        self.put(rec)
        return rec

    def adopt(self, view: ExchangeOrderView, ts_ms: int, kind: str = "ADOPTED") -> OrderRecord:
        """Take over an exchange order we have no record of (state from its status)."""
        if view.client_order_id in self._orders:
            return self._orders[view.client_order_id]
        parsed = parse_client_order_id(view.client_order_id, self.prefix)
        key = parsed.key if parsed else f"adopted:{view.client_order_id}"
        gen = parsed.generation if parsed else 0
        executed = view.filled_qty or ZERO
        state = OrderState.PARTIALLY_FILLED if executed > ZERO else OrderState.NEW
        rec = OrderRecord(
            client_order_id=view.client_order_id, symbol=self.symbol, side=view.side,
            price=view.price, qty=view.qty, state=state,
            exchange_order_id=view.exchange_order_id or None, key=key, generation=gen,
            kind=kind, created_ms=ts_ms, updated_ms=ts_ms, exchange_executed_qty=executed,
            last_trigger="ADOPT")
        self.put(rec)
        return rec

    def prune(self, before_ms: int) -> int:
        """Drop terminal records last updated before ``before_ms``; returns how many."""
        drop = [c for c, r in self._orders.items() if not r.is_open and r.updated_ms < before_ms]
        for c in drop:
            r = self._orders.pop(c)
            if r.intent_id:
                self._by_intent.pop(r.intent_id, None)
            if r.exchange_order_id is not None:
                self._by_eid.pop(r.exchange_order_id, None)
        return len(drop)

    def _require(self, cid: str) -> OrderRecord:
        try:
            return self._orders[cid]
        except KeyError:
            raise KeyError(f"unknown client order id {cid!r}") from None

    # -- persistence --------------------------------------------------------------------------
    def to_state(self) -> LedgerState:
        """Snapshot (msgpack/JSON-encodable)."""
        return LedgerState(prefix=self.prefix, symbol=self.symbol,
                           orders=list(self._orders.values()),
                           generations=dict(self._generations))

    @classmethod
    def from_state(cls, state: LedgerState) -> OrderLedger:
        """Restore a snapshot."""
        led = cls(state.prefix, state.symbol)
        for rec in state.orders:
            led.put(rec)
        for k, g in state.generations.items():
            led._generations[k] = max(g, led._generations.get(k, 0))
        return led


# ------------------------------------------------------------------------------------------
# Reconciliation
# ------------------------------------------------------------------------------------------
class FillToApply(msgspec.Struct, frozen=True, kw_only=True):
    """A trade the store is missing, matched to a local order."""

    client_order_id: str
    trade_id: int
    price: Decimal
    qty: Decimal
    fee: Decimal
    fee_asset: str
    time_ms: int


class StatusToApply(msgspec.Struct, frozen=True, kw_only=True):
    """An exchange open-order row to feed to ``apply_exchange_status``."""

    client_order_id: str
    view: OrderView


class ReconcilePlan(msgspec.Struct, kw_only=True):
    """What the OMS must do to match the exchange (nothing here has been applied yet)."""

    fills: list[FillToApply] = msgspec.field(default_factory=list)
    statuses: list[StatusToApply] = msgspec.field(default_factory=list)
    mark_filled: list[str] = msgspec.field(default_factory=list)
    to_query: list[str] = msgspec.field(default_factory=list)
    to_adopt: list[OrderView] = msgspec.field(default_factory=list)
    to_cancel: list[OrderView] = msgspec.field(default_factory=list)
    unmatched_trades: list[TradeView] = msgspec.field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when local state already matches."""
        return not (self.fills or self.statuses or self.mark_filled or self.to_query
                    or self.to_adopt or self.to_cancel or self.unmatched_trades)


def _as_order_view(v: ExchangeOrderView) -> OrderView:
    if isinstance(v, OrderView):
        return v
    return OrderView(client_order_id=v.client_order_id,
                     exchange_order_id=v.exchange_order_id or 0, side=v.side, price=v.price,
                     qty=v.qty, filled_qty=v.filled_qty, status=v.status)


def _as_trade_view(t: ExchangeTradeView) -> TradeView:
    if isinstance(t, TradeView):
        return t
    return TradeView(trade_id=t.trade_id, client_order_id=t.client_order_id,
                     exchange_order_id=t.exchange_order_id, side=t.side, price=t.price,
                     qty=t.qty, fee=t.fee, fee_asset=t.fee_asset, time_ms=t.time_ms)


def reconcile(local: OrderLedger, exchange_open: Sequence[ExchangeOrderView],
              exchange_trades: Sequence[ExchangeTradeView], *,
              adopt_unknown: bool) -> ReconcilePlan:
    """Compare the store with the exchange (start-up and after every reconnect).

    * trades of local orders not yet booked -> ``fills`` (deduplicated, in trade-id order);
      trades matching no local order -> ``unmatched_trades`` (the position check covers them);
    * local open orders found open on the exchange -> ``statuses`` (ack/partial updates);
    * local open orders not open on the exchange: fully filled by the known trades ->
      ``mark_filled``; otherwise -> ``to_query`` (resolved by clientOrderId, never guessed);
    * exchange open orders unknown locally -> ``to_adopt`` or ``to_cancel`` (config);
      ones the store has as terminal (a contradiction) -> ``to_query``.
    """
    plan = ReconcilePlan()
    seen_trades: set[int] = set()
    planned_qty: dict[str, Decimal] = {}
    for raw in sorted(exchange_trades, key=lambda t: t.trade_id):
        if raw.trade_id in seen_trades:
            continue
        seen_trades.add(raw.trade_id)
        t = _as_trade_view(raw)
        rec = local.get(t.client_order_id) if t.client_order_id else None
        if rec is None and t.exchange_order_id:
            rec = local.by_exchange_id(t.exchange_order_id)
        if rec is None:
            plan.unmatched_trades.append(t)
            continue
        if t.trade_id in rec.seen_trade_ids:
            continue
        plan.fills.append(FillToApply(client_order_id=rec.client_order_id, trade_id=t.trade_id,
                                      price=t.price, qty=t.qty, fee=t.fee,
                                      fee_asset=t.fee_asset, time_ms=t.time_ms))
        planned_qty[rec.client_order_id] = planned_qty.get(rec.client_order_id, ZERO) + t.qty
    open_by_cid: dict[str, OrderView] = {}
    for raw in exchange_open:
        v = _as_order_view(raw)
        rec = local.get(v.client_order_id)
        if rec is None and v.exchange_order_id:
            rec = local.by_exchange_id(v.exchange_order_id)
        if rec is None:
            (plan.to_adopt if adopt_unknown else plan.to_cancel).append(v)
        elif not rec.is_open:
            plan.to_query.append(rec.client_order_id)
        else:
            open_by_cid[rec.client_order_id] = v
    for rec in local.open_orders():
        cid = rec.client_order_id
        v = open_by_cid.get(cid)
        if v is not None:
            plan.statuses.append(StatusToApply(client_order_id=cid, view=v))
        elif rec.filled_qty + planned_qty.get(cid, ZERO) >= rec.qty:
            plan.mark_filled.append(cid)
        else:
            plan.to_query.append(cid)
    return plan


def apply_plan_fills(ledger: OrderLedger, plan: ReconcilePlan) -> list[OrderRecord]:
    """Book the plan's missing fills (idempotent); returns the records that changed."""
    changed: list[OrderRecord] = []
    for f in plan.fills:
        rec, applied = ledger.fill(f.client_order_id, f.trade_id, f.price, f.qty, f.fee,
                                   f.fee_asset, f.time_ms)
        if applied:
            changed.append(rec)
    return changed
