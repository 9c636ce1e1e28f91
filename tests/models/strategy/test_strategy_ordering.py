"""diff_orders: keep / place / modify / cancel decisions."""

from __future__ import annotations

from decimal import Decimal

from models.enums import OrderType, Side
from models.strategy import DesiredOrder, OpenOrderView, diff_orders

D = Decimal


def want(key, price, qty="0.01", side=Side.BUY, kind="ENTRY", reduce_only=False):
    return DesiredOrder(key=key, side=side, kind=kind, price=D(price), qty=D(qty),
                        reduce_only=reduce_only, reason="grid")


def have(key, price, qty="0.01", side=Side.BUY, kind="ENTRY", reduce_only=False):
    return OpenOrderView(key=key, client_order_id=f"c{key}", side=side, price=D(price),
                         qty=D(qty), kind=kind, reduce_only=reduce_only)


KW = dict(atr=100.0, recenter_atr=4.0, max_modifies=3, price_tolerance_ticks=0,
          tick_size=D("0.01"))


def test_keep_place_cancel():
    acts = diff_orders([want("L-1", "100"), want("L-2", "90")],
                       [have("L-1", "100"), have("L-9", "50")], **KW)
    assert [o.key for o in acts.keep] == ["L-1"]
    assert [d.key for d in acts.place] == ["L-2"]
    assert [(o.key, r) for o, r in acts.cancel] == [("L-9", "not_wanted")]
    assert not acts.modify and not acts.empty


def test_nothing_to_do():
    acts = diff_orders([want("L-1", "100")], [have("L-1", "100")], **KW)
    assert acts.empty and len(acts.keep) == 1


def test_modify_reasons_and_tolerances():
    acts = diff_orders([want("L-1", "600"), want("L-2", "99.99"), want("L-3", "80", "0.02")],
                       [have("L-1", "100"), have("L-2", "100"), have("L-3", "80")], **KW)
    reasons = {o.key: d.reason for o, d in acts.modify}
    assert reasons == {"L-1": "grid;recenter", "L-2": "grid;reprice", "L-3": "grid;resize"}
    tol = dict(KW, price_tolerance_ticks=1)
    acts = diff_orders([want("L-2", "99.99"), want("L-3", "80", "0.0105")],
                       [have("L-2", "100"), have("L-3", "80")], qty_tolerance=0.1, **tol)
    assert acts.empty


def test_too_many_modifies_become_cancel_replace():
    desired = [want(f"L-{i}", str(100 - i)) for i in range(1, 5)]
    opened = [have(f"L-{i}", str(200 - i)) for i in range(1, 5)]
    acts = diff_orders(desired, opened, **KW)
    assert not acts.modify and len(acts.cancel) == 4 and len(acts.place) == 4
    acts = diff_orders(desired[:3], opened[:3], **KW)
    assert len(acts.modify) == 3 and not acts.cancel


def test_unmodifiable_changes_cancel_and_place():
    acts = diff_orders([want("K", "100", side=Side.SELL), want("T", "100", kind="TP",
                                                               reduce_only=True)],
                       [have("K", "100"), have("T", "100", kind="TP")], **KW)
    assert sorted(r for _o, r in acts.cancel) == ["replace", "replace"]
    assert len(acts.place) == 2
    mkt = DesiredOrder(key="SL-L", side=Side.SELL, kind="SL", price=None, qty=D("1"),
                       order_type=OrderType.MARKET)
    acts = diff_orders([mkt], [], **KW)
    assert acts.place == [mkt]


def test_duplicates_and_planner_reasons():
    acts = diff_orders([], [have("L-1", "100"), have("L-1", "100")],
                       cancel_reasons={"L-1": "proximity"}, **KW)
    assert sorted(r for _o, r in acts.cancel) == ["duplicate", "proximity"]
