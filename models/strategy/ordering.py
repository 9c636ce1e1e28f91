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


def diff_orders(desired: list[DesiredOrder], open_orders: list[OpenOrderView], *, atr: float,
                recenter_atr: float, max_modifies: int, price_tolerance_ticks: int,
                tick_size: Decimal | None = None, qty_tolerance: float = 0.0,
                cancel_reasons: Mapping[str, str] | None = None) -> OrderActions:
    """Compute the actions that make ``open_orders`` match ``desired`` (see module doc)."""
    acts = OrderActions()
    by_key: dict[str, OpenOrderView] = {}
    for o in open_orders:
        if o.key in by_key:
            acts.cancel.append((o, "duplicate"))
        else:
            by_key[o.key] = o
    ptol = (tick_size * price_tolerance_ticks) if tick_size is not None else _ZERO
    qtol = Decimal(repr(qty_tolerance))
    far = Decimal(repr(recenter_atr * atr)) if atr == atr else None
    wanted: set[str] = set()
    modifies: list[tuple[OpenOrderView, DesiredOrder, str]] = []
    for d in desired:
        wanted.add(d.key)
        o = by_key.get(d.key)
        if o is None:
            acts.place.append(d)
            continue
        if (o.side != d.side or o.kind != d.kind or o.order_type != d.order_type
                or o.reduce_only != d.reduce_only or d.order_type is OrderType.MARKET
                or d.price is None):
            acts.cancel.append((o, "replace"))
            acts.place.append(d)
            continue
        dp = abs(o.price - d.price)
        price_ok = dp <= ptol
        qty_ok = abs(o.qty - d.qty) <= qtol * o.qty
        if price_ok and qty_ok:
            acts.keep.append(o)
            continue
        if not price_ok and far is not None and dp > far:
            reason = "recenter"
        else:
            reason = "reprice" if not price_ok else "resize"
        modifies.append((o, _with_reason(d, reason), reason))
    if len(modifies) > max_modifies:
        for o, d, reason in modifies:
            acts.cancel.append((o, f"{reason}_replace"))
            acts.place.append(d)
    else:
        acts.modify.extend((o, d) for o, d, _r in modifies)
    reasons = cancel_reasons or {}
    for o in open_orders:
        if o.key not in wanted and by_key.get(o.key) is o:
            acts.cancel.append((o, reasons.get(o.key, "not_wanted")))
    return acts


def _with_reason(d: DesiredOrder, reason: str) -> DesiredOrder:
    if d.reason == reason:
        return d
    return DesiredOrder(key=d.key, side=d.side, kind=d.kind, price=d.price, qty=d.qty,
                        reduce_only=d.reduce_only, order_type=d.order_type,
                        reason=reason if not d.reason else f"{d.reason};{reason}",
                        context=d.context)
