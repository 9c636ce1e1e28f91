"""Turn a desired order list plus the open orders into place / modify / cancel actions.

Orders are matched by ``key``. A matched order is kept when its price is within
``price_tolerance_ticks`` ticks and its quantity within ``qty_tolerance`` (relative) of the
desired one; otherwise it is modified (reason ``recenter`` when it moves more than
``recenter_atr`` x ATR, else ``reprice``/``resize``). Side, kind, type or reduce-only changes
cannot be modified: cancel + place. When more than ``max_modifies`` orders would be modified at
once, all of them become cancel + place instead (strategy.md: "cancel + replace ... when more
than a few orders move"). Open orders no longer desired are cancelled, with the planner's reason
from ``cancel_reasons`` (e.g. ``proximity``) or ``not_wanted``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from models.enums import OrderType
from models.strategy.types import DesiredOrder, OpenOrderView, OrderActions

_ZERO = Decimal(0)
_QTOL0 = Decimal(repr(0.0))
_MARKET = OrderType.MARKET


def diff_orders(desired: list[DesiredOrder], open_orders: list[OpenOrderView], *, atr: float,
                recenter_atr: float, max_modifies: int, price_tolerance_ticks: int,
                tick_size: Decimal | None = None, qty_tolerance: float = 0.0,
                cancel_reasons: Mapping[str, str] | None = None) -> OrderActions:
    """Compute the actions that make ``open_orders`` match ``desired`` (see module doc)."""
    acts = OrderActions()
    place = acts.place
    cancel = acts.cancel
    keep = acts.keep
    by_key: dict[str, OpenOrderView] = {}
    for o in open_orders:
        if o.key in by_key:
            cancel.append((o, "duplicate"))
        else:
            by_key[o.key] = o
    ptol = (tick_size * price_tolerance_ticks) if tick_size is not None else _ZERO
    qtol = _QTOL0 if qty_tolerance == 0.0 else Decimal(repr(qty_tolerance))
    # With a zero tolerance |a - b| <= 0 is a == b (an inexact Decimal difference of unequal
    # values is never 0): compare instead of subtracting (the common "keep" case).
    p_exact = ptol == _ZERO
    q_exact = qtol == _ZERO
    far: Decimal | None = None
    far_known = False
    wanted: set[str] = set()
    modifies: list[tuple[OpenOrderView, DesiredOrder, str]] = []
    for d in desired:
        wanted.add(d.key)
        o = by_key.get(d.key)
        if o is None:
            place.append(d)
            continue
        if (o.side != d.side or o.kind != d.kind or o.order_type != d.order_type
                or o.reduce_only != d.reduce_only or d.order_type is _MARKET
                or d.price is None):
            cancel.append((o, "replace"))
            place.append(d)
            continue
        if p_exact:
            price_ok = o.price == d.price
        else:
            price_ok = abs(o.price - d.price) <= ptol
        if q_exact:
            qty_ok = o.qty == d.qty
        else:
            qty_ok = abs(o.qty - d.qty) <= qtol * o.qty
        if price_ok and qty_ok:
            keep.append(o)
            continue
        if not far_known:
            far = Decimal(repr(recenter_atr * atr)) if atr == atr else None
            far_known = True
        if not price_ok and far is not None and abs(o.price - d.price) > far:
            reason = "recenter"
        else:
            reason = "reprice" if not price_ok else "resize"
        modifies.append((o, _with_reason(d, reason), reason))
    if len(modifies) > max_modifies:
        for o, d, reason in modifies:
            cancel.append((o, f"{reason}_replace"))
            place.append(d)
    else:
        acts.modify.extend((o, d) for o, d, _r in modifies)
    reasons = cancel_reasons or {}
    for o in open_orders:
        if o.key not in wanted and by_key.get(o.key) is o:
            cancel.append((o, reasons.get(o.key, "not_wanted")))
    return acts


def _with_reason(d: DesiredOrder, reason: str) -> DesiredOrder:
    if d.reason == reason:
        return d
    return DesiredOrder(key=d.key, side=d.side, kind=d.kind, price=d.price, qty=d.qty,
                        reduce_only=d.reduce_only, order_type=d.order_type,
                        reason=reason if not d.reason else f"{d.reason};{reason}",
                        context=d.context)
