"""Risk rules: parameters, drawdown brakes and the pre-trade check.

Pure code: the risk actor feeds equity updates into a ``DrawdownBrake``, runs every order
through ``pre_trade_check`` and then asks the portfolio (``models.portfolio``) for a
reservation. A denial is a ``CheckResult`` with a reason code (the actor turns it into an
``OrderDenied`` event), never an exception.

Drawdown brake table (defaults; ``dd`` = equity / peak equity - 1, ``h`` = hysteresis 0.01,
``cap`` = the portfolio leverage cap, 6.0 by default)::

    level       entered when      left when                  size  TP   leverage cap           entries
    0 NORMAL    -                 -                          1.0   1.0  cap                    yes
    1           dd <= -5 %        dd > -4 %  (-5 % + h)      0.5   0.7  cap                    yes
    2           dd <= -10 %       dd > -9 %  (-10 % + h)     0.5   0.7  min(cap x 0.6, 3.0)    yes
    3 HALTED    dd <= -15 %       dd > -5 % (halt_resume_    0     0.7  as level 2             no: cancel
                                  drawdown) or operator                                        all, flatten
                                  resume()                                                     reduce-only
    ALERT       dd <= -6 %        re-armed when dd > -5 %    (informational DRAWDOWN_LEVEL event only)

* Factors do not compound: from -5 % the order size is x0.5 and it stays x0.5 at level 2 (the
  plan's KPIs: "-7 % halves the order size", "-12 % reduces orders by 50 % and leverage to 3x").
* Level-2 leverage cap = ``min(cap x leverage_reduction_factor_level_2, level_2_max_leverage)``:
  with the defaults min(6 x 0.6, 3.0) = 3.0, which reconciles the plan's 0.6 factor with its
  "-12 % -> 3x" KPI.
* A level is entered as soon as ``dd`` reaches it and left only once ``dd`` recovers
  ``hysteresis`` above it, so a level does not flap around its threshold.
* HALTED (hard stop): the event carries the actions ``CANCEL_ALL`` and ``FLATTEN``; only
  reduce-only orders pass until the drawdown recovers above ``halt_resume_drawdown`` or an
  operator calls ``resume()``. After an operator resume the hard stop re-arms
  ``resume_rearm_margin`` below the drawdown at the resume (so it does not fire again at
  once); the override lapses once ``dd`` recovers above the configured hard-stop level + h.
* Safe mode (``safe_mode``, or ``resume(safe_mode=True)``): after a halt ends, entries are
  admitted only with conviction >= ``safe_mode_conviction_threshold`` (0.8) until the
  brake is back at level 0.
"""

from __future__ import annotations

import math
from decimal import Decimal

import msgspec

from models.enums import Market, OrderType, Side
from models.filters import FilterViolation, SymbolFilters

ZERO = Decimal(0)

#: Level number of the hard stop.
HALT_LEVEL = 3


class RiskParams(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Risk section of the config (``$.risk``); defaults are the plan's KPIs."""

    #: Drawdown (fraction, negative) of brake levels 1, 2 and the hard stop.
    drawdown_levels: tuple[float, float, float] = (-0.05, -0.10, -0.15)
    #: Informational drawdown alerts (a DRAWDOWN_LEVEL event, no behaviour change).
    alert_drawdowns: tuple[float, ...] = (-0.06,)
    #: Take-profit distance multiplier from level 1 on.
    tp_reduction_factor_level_1: float = 0.7
    #: Order size multiplier from level 1 on (not compounded at level 2).
    size_reduction_factor: float = 0.5
    #: Level-2 leverage cap = min(leverage_cap x this, level_2_max_leverage).
    leverage_reduction_factor_level_2: float = 0.6
    level_2_max_leverage: float = 3.0
    #: After a halt ends, admit only entries with conviction >= the threshold (until level 0).
    safe_mode: bool = False
    safe_mode_conviction_threshold: float = 0.8
    #: A level is left only once the drawdown recovers this much above its threshold.
    hysteresis: float = 0.01
    #: The hard stop lifts by itself once the drawdown recovers above this.
    halt_resume_drawdown: float = -0.05
    #: After an operator resume, the hard stop re-arms this far below the drawdown at resume.
    resume_rearm_margin: float = 0.05
    #: Absolute cap on one order's notional in quote (0 = none) ...
    max_order_notional: float = 0.0
    #: ... and relative cap: one order's notional <= equity x this.
    max_order_equity_fraction: float = 1.0
    #: Symbol worst-case exposure <= equity x weight x brake leverage cap x this.
    max_symbol_exposure_fraction: float = 1.0
    #: Seconds the risk actor waits for the portfolio's answer before failing closed.
    reservation_timeout_s: float = 2.0

    def validate(self, path: str = "$.risk") -> list[str]:
        """Semantic errors, each ``"JSONPATH: message"``; empty when valid."""
        errs: list[str] = []

        def fin(x: float) -> bool:
            return isinstance(x, (int, float)) and math.isfinite(x)

        lv = self.drawdown_levels
        for i, x in enumerate(lv):
            if not fin(x) or not -1.0 < x < 0.0:
                errs.append(f"{path}.drawdown_levels[{i}]: must be in (-1, 0)")
            elif i > 0 and fin(lv[i - 1]) and x >= lv[i - 1]:
                errs.append(f"{path}.drawdown_levels[{i}]: must be below {lv[i - 1]:g}")
        for i, x in enumerate(self.alert_drawdowns):
            if not fin(x) or not -1.0 < x < 0.0:
                errs.append(f"{path}.alert_drawdowns[{i}]: must be in (-1, 0)")
        for name in ("tp_reduction_factor_level_1", "size_reduction_factor",
                     "leverage_reduction_factor_level_2", "max_symbol_exposure_fraction"):
            x = getattr(self, name)
            if not fin(x) or not 0.0 < x <= 1.0:
                errs.append(f"{path}.{name}: must be in (0, 1]")
        for name in ("level_2_max_leverage", "max_order_equity_fraction",
                     "resume_rearm_margin", "reservation_timeout_s"):
            x = getattr(self, name)
            if not fin(x) or x <= 0:
                errs.append(f"{path}.{name}: must be > 0")
        if not fin(self.max_order_notional) or self.max_order_notional < 0:
            errs.append(f"{path}.max_order_notional: must be >= 0 (0 = no absolute cap)")
        t = self.safe_mode_conviction_threshold
        if not fin(t) or not 0.0 <= t <= 1.0:
            errs.append(f"{path}.safe_mode_conviction_threshold: must be in [0, 1]")
        gaps = [lv[i] - lv[i + 1] for i in range(len(lv) - 1)
                if fin(lv[i]) and fin(lv[i + 1])]
        h = self.hysteresis
        if not fin(h) or h < 0:
            errs.append(f"{path}.hysteresis: must be >= 0")
        elif gaps and h >= min(gaps):
            errs.append(f"{path}.hysteresis: must be smaller than the gap between "
                        f"drawdown_levels ({min(gaps):g})")
        elif fin(lv[0]) and lv[0] + h >= 0:
            errs.append(f"{path}.hysteresis: drawdown_levels[0] + hysteresis must stay below 0")
        r = self.halt_resume_drawdown
        if not fin(r) or not lv[-1] < r <= 0.0:
            errs.append(f"{path}.halt_resume_drawdown: must be in ({lv[-1]:g}, 0] (above "
                        "drawdown_levels[2])")
        return errs

    def level_2_cap(self, leverage_cap: float) -> float:
        """Effective leverage cap from level 2 on."""
        return min(leverage_cap * self.leverage_reduction_factor_level_2,
                   self.level_2_max_leverage)


# ------------------------------------------------------------------------------------------
# Drawdown brake
# ------------------------------------------------------------------------------------------
class BrakeState(msgspec.Struct, frozen=True, kw_only=True):
    """What the brake allows right now (fed to the pre-trade check and the strategy)."""

    level: int = 0
    halted: bool = False
    size_factor: float = 1.0
    tp_factor: float = 1.0
    leverage_cap: float = 6.0
    entries_allowed: bool = True
    reduce_only: bool = False
    min_entry_conviction: float = 0.0
    safe_mode: bool = False
    drawdown: float = 0.0


class BrakeEvent(msgspec.Struct, frozen=True, kw_only=True):
    """A brake change to log as DRAWDOWN_LEVEL. ``kind``: LEVEL, ALERT, HALT or RESUME;
    ``actions`` lists what the actors must do (``CANCEL_ALL``, ``FLATTEN``)."""

    kind: str
    level: int
    previous_level: int
    drawdown: float
    size_factor: float
    tp_factor: float
    leverage_cap: float
    halted: bool
    safe_mode: bool
    reason: str = ""
    actions: tuple[str, ...] = ()


class BrakeSnapshot(msgspec.Struct, kw_only=True):
    """Persistent state of a ``DrawdownBrake`` (msgpack-able)."""

    level: int = 0
    halted: bool = False
    safe_active: bool = False
    halt_override: float | None = None
    manual_halt: bool = False
    alerts_fired: list[float] = msgspec.field(default_factory=list)
    drawdown: float = 0.0


class DrawdownBrake:
    """Drawdown brake state machine (see the module docstring for the table)."""

    def __init__(self, params: RiskParams, leverage_cap: float,
                 snapshot: BrakeSnapshot | None = None) -> None:
        self.params = params
        self.base_cap = leverage_cap
        self._s = msgspec.structs.replace(snapshot) if snapshot else BrakeSnapshot()

    # -- state ------------------------------------------------------------------------------
    def to_state(self) -> BrakeSnapshot:
        """Snapshot to persist."""
        return msgspec.structs.replace(self._s, alerts_fired=list(self._s.alerts_fired))

    @classmethod
    def from_state(cls, params: RiskParams, leverage_cap: float,
                   snapshot: BrakeSnapshot) -> DrawdownBrake:
        """Restore from a snapshot."""
        return cls(params, leverage_cap, snapshot)

    @property
    def level(self) -> int:
        """Current level 0..3 (3 = HALTED)."""
        return self._s.level

    def leverage_cap(self) -> float:
        """``state().leverage_cap`` without building the whole state."""
        if self._s.level < 2:
            return self.base_cap
        return min(self.base_cap, self.params.level_2_cap(self.base_cap))

    def state(self) -> BrakeState:
        """The limits implied by the current level."""
        p, s = self.params, self._s
        lvl = s.level
        cap = self.leverage_cap()
        safe = s.safe_active and not s.halted
        return BrakeState(
            level=lvl,
            halted=s.halted,
            size_factor=0.0 if s.halted else (p.size_reduction_factor if lvl >= 1 else 1.0),
            tp_factor=p.tp_reduction_factor_level_1 if lvl >= 1 else 1.0,
            leverage_cap=cap,
            entries_allowed=not s.halted,
            reduce_only=s.halted,
            min_entry_conviction=p.safe_mode_conviction_threshold if safe else 0.0,
            safe_mode=safe,
            drawdown=s.drawdown,
        )

    # -- transitions ------------------------------------------------------------------------
    def _soft_level(self, dd: float, current: int) -> int:
        """Level 0..2 with hysteresis: enter at the threshold, leave above threshold + h."""
        lv, h = self.params.drawdown_levels, self.params.hysteresis
        entered = sum(1 for t in lv[:2] if dd <= t)
        held = sum(1 for t in lv[:2] if dd <= t + h)
        return max(entered, min(current, held))

    def _event(self, kind: str, prev: int, reason: str,
               actions: tuple[str, ...] = ()) -> BrakeEvent:
        st = self.state()
        return BrakeEvent(kind=kind, level=st.level, previous_level=prev, drawdown=st.drawdown,
                          size_factor=st.size_factor, tp_factor=st.tp_factor,
                          leverage_cap=st.leverage_cap, halted=st.halted,
                          safe_mode=st.safe_mode, reason=reason, actions=actions)

    def update(self, drawdown: float) -> list[BrakeEvent]:
        """Evaluate the levels on an equity update; returns the events to log (maybe none)."""
        p, s = self.params, self._s
        dd = min(0.0, float(drawdown))
        s.drawdown = dd
        events: list[BrakeEvent] = []
        prev = s.level
        # informational alerts (fire once per crossing, re-arm above threshold + h)
        for a in p.alert_drawdowns:
            if a in s.alerts_fired:
                if dd > a + p.hysteresis:
                    s.alerts_fired.remove(a)
            elif dd <= a:
                s.alerts_fired.append(a)
                events.append(self._event("ALERT", prev, f"drawdown reached {a:.2%}"))
        hard = p.drawdown_levels[2]
        if s.halt_override is not None and dd > hard + p.hysteresis:
            s.halt_override = None
        if s.halted:
            if not s.manual_halt and dd > p.halt_resume_drawdown:
                s.halted = False
                s.safe_active = p.safe_mode
                s.level = self._soft_level(dd, 2)
                events.append(self._event("RESUME", prev, "drawdown recovered"))
            return events
        threshold = hard if s.halt_override is None else min(hard, s.halt_override)
        if dd <= threshold:
            s.halted = True
            s.level = HALT_LEVEL
            events.append(self._event("HALT", prev, f"hard stop at {dd:.2%}",
                                      ("CANCEL_ALL", "FLATTEN")))
            return events
        s.level = self._soft_level(dd, s.level)
        if s.level == 0:
            s.safe_active = False
        if s.level != prev:
            events.append(self._event("LEVEL", prev, f"drawdown {dd:.2%}"))
        return events

    def halt(self, reason: str = "operator") -> list[BrakeEvent]:
        """Operator (or ban) hard stop, regardless of the drawdown; lifted only by
        ``resume()``."""
        if self._s.halted:
            return []
        prev = self._s.level
        self._s.halted = True
        self._s.manual_halt = True
        self._s.level = HALT_LEVEL
        return [self._event("HALT", prev, reason, ("CANCEL_ALL", "FLATTEN"))]

    def resume(self, safe_mode: bool | None = None, reason: str = "operator") -> list[BrakeEvent]:
        """Operator resume after a halt; ``safe_mode`` None = the configured default."""
        s, p = self._s, self.params
        if not s.halted:
            return []
        prev = s.level
        s.halted = False
        s.manual_halt = False
        s.safe_active = p.safe_mode if safe_mode is None else safe_mode
        if s.drawdown <= p.drawdown_levels[2]:
            s.halt_override = round(s.drawdown - p.resume_rearm_margin, 12)
        s.level = self._soft_level(s.drawdown, 2)
        return [self._event("RESUME", prev, reason)]


# ------------------------------------------------------------------------------------------
# Pre-trade check
# ------------------------------------------------------------------------------------------
class OrderIntent(msgspec.Struct, frozen=True, kw_only=True):
    """An order as the strategy asks for it (before rounding)."""

    symbol: str
    side: Side
    price: Decimal | None
    qty: Decimal
    reduce_only: bool = False
    conviction: float = 0.0
    order_type: OrderType = OrderType.LIMIT
    key: str = ""


class RiskLimits(msgspec.Struct, frozen=True, kw_only=True):
    """Notional limits for one symbol, plus the resting orders already counted against it."""

    max_order_notional: Decimal
    max_symbol_notional: Decimal
    resting_buy_notional: Decimal = ZERO
    resting_sell_notional: Decimal = ZERO


class CheckResult(msgspec.Struct, frozen=True, kw_only=True):
    """Outcome of ``pre_trade_check``: approved with the (possibly rounded) price/qty, or
    denied with a reason code. ``reduces`` = the order can only shrink the position."""

    approved: bool
    reason: str = ""
    detail: str = ""
    price: Decimal | None = None
    qty: Decimal = ZERO
    notional: Decimal = ZERO
    reduces: bool = False
    adjusted: bool = False


def _deny(reason: str, detail: str = "", reduces: bool = False) -> CheckResult:
    return CheckResult(approved=False, reason=reason, detail=detail, reduces=reduces)


def limits_for(params: RiskParams, equity: Decimal, weight: float, brake: BrakeState,
               resting_buy_notional: Decimal = ZERO,
               resting_sell_notional: Decimal = ZERO) -> RiskLimits:
    """Limits of one symbol: order notional <= min(max_order_notional, equity x
    max_order_equity_fraction); worst-case symbol exposure <= equity x weight x brake cap x
    max_symbol_exposure_fraction."""
    eq = max(equity, ZERO)
    order_cap = eq * Decimal(str(params.max_order_equity_fraction))
    if params.max_order_notional > 0:
        order_cap = min(order_cap, Decimal(str(params.max_order_notional)))
    sym_cap = (eq * Decimal(str(weight)) * Decimal(str(brake.leverage_cap))
               * Decimal(str(params.max_symbol_exposure_fraction)))
    return RiskLimits(max_order_notional=order_cap, max_symbol_notional=sym_cap,
                      resting_buy_notional=resting_buy_notional,
                      resting_sell_notional=resting_sell_notional)


_FILTER_REASON = {"PRICE_FILTER": "PRICE_FILTER", "LOT_SIZE": "LOT_SIZE",
                  "NOTIONAL": "MIN_NOTIONAL"}


def pre_trade_check(order: OrderIntent, filters: SymbolFilters, brake: BrakeState,
                    position_qty: Decimal, limits: RiskLimits, *,
                    market: Market = Market.FUTURES,
                    ref_price: Decimal | None = None) -> CheckResult:
    """Check (and round) one order. Never raises for a bad order: returns a denial.

    Reason codes: INVALID_ORDER, NO_PRICE, NOTHING_TO_REDUCE, INSUFFICIENT_INVENTORY (spot
    sell beyond inventory), HALTED, ENTRY_BLOCKED_SAFE_MODE, PRICE_FILTER, LOT_SIZE,
    MIN_NOTIONAL, MAX_ORDER_NOTIONAL, SYMBOL_EXPOSURE.

    Orders that can only shrink the position (reduce-only, or an opposite-side order no
    larger than the position) pass the halt/entry gates and the exposure limits; they are
    still rounded and filter-checked (futures reduce-only orders are exempt from
    MIN_NOTIONAL, as on Binance). A reduce-only order larger than the position is clipped.
    Prices round away from the market (BUY down, SELL up); quantities round down.
    """
    side, qty = order.side, order.qty
    is_market = order.order_type is OrderType.MARKET or order.price is None
    price = None if is_market else order.price
    if qty <= ZERO or (price is not None and price <= ZERO):
        return _deny("INVALID_ORDER", "qty and price must be > 0")
    pos = position_qty
    opposite = pos != ZERO and (pos > ZERO) != (side is Side.BUY)
    adjusted = False
    if order.reduce_only:
        if not opposite:
            return _deny("NOTHING_TO_REDUCE", f"position {pos}", reduces=True)
        if qty > abs(pos):
            qty, adjusted = abs(pos), True
    reduces = order.reduce_only or (opposite and qty <= abs(pos))
    if market is Market.SPOT and side is Side.SELL and qty > max(pos, ZERO):
        return _deny("INSUFFICIENT_INVENTORY", f"sell {qty} > inventory {pos}", reduces)
    if not reduces:
        if brake.halted or not brake.entries_allowed or brake.reduce_only:
            return _deny("HALTED", "drawdown hard stop: reduce-only")
        if order.conviction < brake.min_entry_conviction:
            return _deny("ENTRY_BLOCKED_SAFE_MODE",
                         f"conviction {order.conviction:.3f} < {brake.min_entry_conviction}")
    # -- rounding and exchange filters --------------------------------------------------------
    if price is not None:
        rp = filters.round_price(price, side)
        if rp != price:
            price, adjusted = rp, True
    rq = filters.round_qty(qty, market=is_market)
    if rq != qty:
        qty, adjusted = rq, True
    ref = price if price is not None else ref_price
    if ref is None or ref <= ZERO:
        return _deny("NO_PRICE", "market order needs a reference price", reduces)
    exempt_notional = reduces and order.reduce_only and market is Market.FUTURES
    try:
        filters.check(price, qty, market=is_market)
    except FilterViolation as e:
        kind = e.msg.rsplit(":", 1)[-1].strip()
        if not (kind == "NOTIONAL" and exempt_notional):
            return _deny(_FILTER_REASON.get(kind, kind), e.msg, reduces)
    notional = ref * qty
    if is_market and not exempt_notional and notional < filters.min_notional:
        return _deny("MIN_NOTIONAL", f"notional {notional} < {filters.min_notional}", reduces)
    if not reduces:
        if notional > limits.max_order_notional:
            return _deny("MAX_ORDER_NOTIONAL",
                         f"notional {notional} > {limits.max_order_notional}")
        pos_notional = pos * ref
        if side is Side.BUY:
            after = abs(pos_notional + limits.resting_buy_notional + notional)
        else:
            after = abs(pos_notional - limits.resting_sell_notional - notional)
        if after > limits.max_symbol_notional:
            return _deny("SYMBOL_EXPOSURE",
                         f"worst-case exposure {after} > {limits.max_symbol_notional}")
    return CheckResult(approved=True, price=price, qty=qty, notional=notional,
                       reduces=reduces, adjusted=adjusted)


def fail_closed(result: CheckResult) -> CheckResult:
    """The portfolio did not answer in time: keep reducing orders, deny new exposure."""
    if not result.approved or result.reduces:
        return result
    return _deny("PORTFOLIO_UNAVAILABLE", "no reservation answer: failing closed")
