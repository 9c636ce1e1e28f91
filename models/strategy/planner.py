"""Order planning: (values, market, position, open orders, risk) -> desired orders.

Per side (long = BUY entries below the market, short = SELL entries above it) the planner keeps
a price lattice ``origin + idx * spacing`` frozen between re-anchors, so resting orders do not
churn every bar. Entry levels are the ``grid_levels`` lattice points from ``top`` away from the
market; an entry fill at index i moves ``top`` to i -/+ 1 (the filled level is not re-bought
until the grid is re-centred). The lattice is re-anchored at the market when the nearest level is
more than ``recenter_atr`` x ATR away (orders are then modified: reason ``recenter``), or when the
wanted spacing drifted more than ``respace_tolerance`` while flat.

Formulas (plan Appendix A; vf = volatility factor = max(0, normalised ATR/close)):
- spacing = baseline_spacing_multiplier*ATR * (1 + vol_mult*vf) / (1 + spacing_conviction_mult*C
  + spacing_imbalance_mult*imb), clamped to [spacing_clamp_min*ATR, spacing_clamp_max*ATR]
- size (quote) = base * (1 + size_mult*C + imb_mult*imb) / (1 + vol_mult*vf) * risk.size_factor,
  base = side budget / (grid_levels * (1 + size_mult)), so a full grid at L = 1 fits the budget
- TP distance = spacing * (1 + tp_conviction_mult*C), trailing outwards while C holds, capped at
  tp_cap_multiplier x the first distance; x risk.tp_factor; spot: / (1 + tighten*S)
with C = L, imb = imbalance for the long side and C = S, imb = -imbalance for the short side.
"""

from __future__ import annotations

from decimal import Decimal

from models.enums import Market, OrderType, Side
from models.filters import SymbolFilters
from models.strategy.features import F_ATRPCT
from models.strategy.params import StrategyParams
from models.strategy.snapshot import Stateful
from models.strategy.types import (
    KIND_ENTRY,
    KIND_SL,
    KIND_TP,
    DesiredOrder,
    MarketView,
    OpenOrderView,
    PositionView,
    RiskInputs,
    StrategyValues,
)

_ZERO = Decimal(0)


# -- formulas ------------------------------------------------------------------------------------
def grid_spacing(atr: float, vol_factor: float, conv: float, imb: float,
                 p: StrategyParams) -> float:
    """Spacing between grid levels in price units."""
    raw = p.baseline_spacing_multiplier * atr * (1.0 + p.vol_mult * vol_factor) / (
        1.0 + p.spacing_conviction_mult * conv + p.spacing_imbalance_mult * imb)
    lo, hi = p.spacing_clamp_min * atr, p.spacing_clamp_max * atr
    return lo if raw < lo else (hi if raw > hi else raw)


def order_quote(base_quote: float, conv: float, imb: float, vol_factor: float,
                size_factor: float, p: StrategyParams) -> float:
    """Quote notional of one entry level."""
    return base_quote * (1.0 + p.size_mult * conv + p.imb_mult * imb) / (
        1.0 + p.vol_mult * vol_factor) * size_factor


def tp_distance(spacing: float, conv: float, p: StrategyParams) -> float:
    """Take-profit distance before trailing/caps."""
    return spacing * (1.0 + p.tp_conviction_mult * conv)


def to_price(x: float, side: Side, filters: SymbolFilters) -> Decimal:
    """Float price -> tick-rounded Decimal in the passive direction (BUY down, SELL up)."""
    return filters.round_price(Decimal(repr(x)), side)


def to_qty(qty: float, price: Decimal | None, filters: SymbolFilters,
           market: bool = False) -> Decimal | None:
    """Float base quantity -> step-rounded (down) Decimal; None when below min qty or notional."""
    if not qty > 0.0:
        return None
    q = filters.round_qty(Decimal(repr(qty)), market)
    lo = filters.market_min_qty if market else filters.min_qty
    if q <= _ZERO or q < lo:
        return None
    if price is not None and price * q < filters.min_notional:
        return None
    return q


# -- state -----------------------------------------------------------------------------------
class SideState(Stateful):
    """Planner state of one side (lattice, position bookkeeping, TP trailing, SL decay)."""

    __slots__ = ("sign", "origin", "spacing", "top", "in_pos", "entry_conv", "opened_ms",
                 "tp_init", "tp_dist", "decay", "cooldown_until", "exit_bar", "sticky", "_cache",
                 "_hold")
    _transient = ("_cache", "_hold")

    def __init__(self, sign: int) -> None:
        self.sign = sign
        self.origin = 0.0
        self.spacing = 0.0
        self.top = -sign
        self.in_pos = False
        self.entry_conv = 0.0
        self.opened_ms = 0
        self.tp_init = 0.0
        self.tp_dist = 0.0
        self.decay = 0
        self.cooldown_until = -1
        self.exit_bar = -1
        self.sticky: dict[str, float] = {}
        self._cache: dict[str, tuple[float, float, DesiredOrder]] = {}
        # "hold" orders by key, reused while the OpenOrderView is the same object
        self._hold: dict[str, tuple[OpenOrderView, DesiredOrder]] = {}

    def _after_restore(self) -> None:
        self._cache = {}
        self._hold = {}

    def anchor(self, price: float, spacing: float) -> None:
        """Re-anchor the lattice at ``price`` with ``spacing``."""
        self.origin = price
        self.spacing = spacing
        self.top = -self.sign

    def level_price(self, idx: int) -> float:
        """Price of lattice index ``idx``."""
        return self.origin + idx * self.spacing

    def open_position(self, conv: float, ts_ms: int) -> None:
        """Start position bookkeeping (entry conviction, TP trail, decay counter)."""
        self.in_pos = True
        self.entry_conv = conv
        self.opened_ms = ts_ms
        self.tp_init = 0.0
        self.tp_dist = 0.0
        self.decay = 0
        self.exit_bar = -1

    def close_position(self) -> None:
        """Position gone: reset its bookkeeping."""
        self.in_pos = False
        self.entry_conv = 0.0
        self.tp_init = 0.0
        self.tp_dist = 0.0
        self.decay = 0
        self.exit_bar = -1

    def on_entry_fill(self, price: float) -> None:
        """Move the grid's top below (long) / above (short) the filled level."""
        if self.spacing > 0.0:
            idx = round((price - self.origin) / self.spacing)
            t = idx - self.sign
            self.top = min(self.top, t) if self.sign > 0 else max(self.top, t)


class PlannerState(Stateful):
    """State of the planner for one symbol."""

    __slots__ = ("long", "short", "bar_index")

    def __init__(self) -> None:
        self.long = SideState(1)
        self.short = SideState(-1)
        self.bar_index = 0

    def on_values(self, L: float, S: float, p: StrategyParams) -> None:
        """Once per bar: advance the bar counter and the conviction-decay counters."""
        self.bar_index += 1
        ss = self.long
        if ss.in_pos:
            ss.decay = ss.decay + 1 if L < p.sl_decay_fraction * ss.entry_conv else 0
        ss = self.short
        if ss.in_pos:
            ss.decay = ss.decay + 1 if S < p.sl_decay_fraction * ss.entry_conv else 0


class PlanResult:
    """Desired orders plus the planner's cancel reasons and skipped-entry notes."""

    __slots__ = ("desired", "cancel_reasons", "skipped")

    def __init__(self) -> None:
        self.desired: list[DesiredOrder] = []
        self.cancel_reasons: dict[str, str] = {}
        self.skipped: list[tuple[str, str]] = []


def _ctx(v: StrategyValues, **extra: float) -> dict[str, float]:
    d = {"b_up": v.b_up, "c_up": v.c_up, "b_down": v.b_down, "c_down": v.c_down,
         "b_neu": v.b_neu, "c_neu": v.c_neu, "L": v.L, "S": v.S, "atr": v.atr}
    d.update(extra)
    return d


def _emit(ss: SideState, res: PlanResult, key: str, side: Side, kind: str, price_f: float,
          qty_f: float, reduce_only: bool, filters: SymbolFilters, reason: str,
          ctx: dict[str, float] | None, v: StrategyValues,
          order_type: OrderType = OrderType.LIMIT) -> DesiredOrder | None:
    """Build (or reuse) the DesiredOrder for a key; None when below the filters' minimums.
    ``ctx`` (extra context) is only used when the order is (re)built."""
    hit = ss._cache.get(key)
    if hit is not None and hit[0] == price_f and hit[1] == qty_f:
        d = hit[2]
    else:
        market = order_type is OrderType.MARKET
        price = None if market else to_price(price_f, side, filters)
        qty = to_qty(qty_f, price, filters, market)
        if qty is None or (price is not None and price <= _ZERO):
            ss._cache.pop(key, None)
            return None
        d = DesiredOrder(key=key, side=side, kind=kind, price=price, qty=qty,
                         reduce_only=reduce_only, order_type=order_type, reason=reason,
                         context=_ctx(v, **ctx) if ctx is not None else _ctx(v))
        ss._cache[key] = (price_f, qty_f, d)
    res.desired.append(d)
    return d


def plan_orders(v: StrategyValues, st: PlannerState, market: MarketView,
                position: PositionView, open_orders: list[OpenOrderView], risk: RiskInputs,
                filters: SymbolFilters, market_type: Market, p: StrategyParams) -> PlanResult:
    """The desired orders for this moment (see module doc). Mutates ``st`` (lattice, TP trail,
    exit bookkeeping) deterministically."""
    res = PlanResult()
    P = market.last_price
    if market.bid > 0.0 and market.ask > 0.0:
        P = 0.5 * (market.bid + market.ask)
    atr = v.atr
    if not (P > 0.0 and atr == atr and atr > 0.0):
        res.skipped.append(("both", "no_price_or_atr"))
        return res
    imb = market.imbalance
    vf = v.features[F_ATRPCT]
    vf = vf if vf > 0.0 else 0.0
    pos = float(position.qty)
    spot = market_type is Market.SPOT
    for ss, conv, side_imb, budget in ((st.long, v.L, imb, risk.max_long_notional),
                                       (st.short, v.S, -imb, risk.max_short_notional)):
        sgn = ss.sign
        if spot and sgn < 0:
            continue
        q = pos * sgn
        q = q if q > 0.0 else 0.0
        if q > 0.0 and q * P < float(filters.min_notional):
            q = 0.0  # dust cannot be traded: treat as flat
        if q > 0.0 and not ss.in_pos:
            ss.open_position(conv, market.ts_ms)
        elif q == 0.0 and ss.in_pos:
            ss.close_position()
        spacing = grid_spacing(atr, vf, conv, side_imb, p)
        entry_side = Side.BUY if sgn > 0 else Side.SELL
        exit_side = entry_side.opposite()
        tag = "L" if sgn > 0 else "S"
        exiting = False
        # -- stop-loss (conviction decay or hard k*ATR) -------------------------------------
        if q > 0.0:
            entry = float(position.entry_price) or P
            hard = (P - entry) * sgn <= -p.sl_hard_atr * atr
            decayed = ss.decay >= p.sl_decay_bars
            if hard or decayed:
                exiting = True
                if ss.exit_bar < 0 or st.bar_index - ss.exit_bar >= p.exit_retry_bars:
                    ss.exit_bar = st.bar_index
                    ss.cooldown_until = st.bar_index + p.sl_cooldown_bars
                    _emit(ss, res, f"SL-{tag}", exit_side, KIND_SL, 0.0, q, not spot, filters,
                          "hard_stop" if hard else "conviction_decay",
                          {"entry_conv": ss.entry_conv, "decay_bars": ss.decay}, v,
                          OrderType.MARKET)
        # -- take-profit -----------------------------------------------------------------
        if q > 0.0 and not exiting:
            cand = tp_distance(spacing, conv, p)
            if ss.tp_init <= 0.0:
                ss.tp_init = ss.tp_dist = cand
            elif conv >= p.tp_trail_fraction * ss.entry_conv and cand > ss.tp_dist:
                ss.tp_dist = min(cand, p.tp_cap_multiplier * ss.tp_init)
            dist = ss.tp_dist * risk.tp_factor
            if spot:
                dist /= 1.0 + p.spot_short_tp_tighten * v.S
            entry = float(position.entry_price) or P
            _emit(ss, res, f"TP-{tag}", exit_side, KIND_TP, entry + sgn * dist, q, not spot,
                  filters, "take_profit", None, v)
        # -- entries -------------------------------------------------------------------------
        why = ""
        if exiting or (ss.exit_bar >= 0 and ss.in_pos):
            why = "stop_loss"
        elif not risk.entries_allowed:
            why = "risk_halt"
        elif st.bar_index < ss.cooldown_until:
            why = "cooldown"
        elif budget <= 0.0:
            why = "no_budget"
        elif not spot and pos * sgn < 0.0:
            why = "opposite_position"
        elif spot and v.S > v.L:
            why = "short_dominates"
        elif not (v.long_ok if sgn > 0 else v.short_ok):
            why = "below_percentile"
        elif conv < p.conviction_filter.min_conviction:
            why = "low_conviction"
        elif conv < risk.min_entry_conviction:
            why = "safe_mode"
        if why:
            res.skipped.append((tag, why))
            prox = p.proximity_atr * atr
            hold_old = ss._hold
            hold: dict[str, tuple[OpenOrderView, DesiredOrder]] = {}
            for o in open_orders:
                if o.kind != KIND_ENTRY or o.side != entry_side:
                    continue
                if why in ("stop_loss", "risk_halt") or abs(float(o.price) - P) <= prox:
                    res.cancel_reasons[o.key] = "proximity" if why in (
                        "below_percentile", "low_conviction") else why
                else:
                    h = hold_old.get(o.key)
                    if h is not None and h[0] is o:
                        d = h[1]
                    else:
                        d = DesiredOrder(key=o.key, side=o.side, kind=KIND_ENTRY, price=o.price,
                                         qty=o.qty, reduce_only=o.reduce_only, reason="hold")
                    hold[o.key] = (o, d)
                    res.desired.append(d)
            ss._hold = hold
            continue
        # lattice maintenance
        if ss.spacing <= 0.0:
            ss.anchor(P, spacing)
        else:
            near = ss.level_price(ss.top)
            if abs(P - near) > p.recenter_atr * atr or (
                    q == 0.0 and abs(spacing / ss.spacing - 1.0) > p.respace_tolerance):
                ss.anchor(P, spacing)
        base = budget / (p.grid_levels * (1.0 + p.size_mult))
        quote = order_quote(base, conv, side_imb, vf, risk.size_factor, p)
        used = q * P
        sticky_old = ss.sticky
        sticky: dict[str, float] = {}
        tol = p.qty_tolerance
        n_placed = 0
        idx = ss.top
        origin = ss.origin
        step = ss.spacing
        cap = budget * (1.0 + 1e-9)
        cache = ss._cache
        for _j in range(p.grid_levels):
            lp = origin + idx * step  # ss.level_price(idx)
            key = f"{tag}{idx}"
            idx -= sgn
            if (lp - P) * sgn >= 0.0 or lp <= 0.0:
                continue  # not passive (market already through it) or nonsense
            qty = quote / lp
            old = sticky_old.get(key)
            if old is not None and abs(qty - old) <= tol * old:
                qty = old
            notional = qty * lp
            if used + notional > cap:
                res.skipped.append((tag, "budget"))
                break
            hit = cache.get(key)
            if hit is not None and hit[0] == lp and hit[1] == qty:
                d = hit[2]
                res.desired.append(d)
            else:
                d = _emit(ss, res, key, entry_side, KIND_ENTRY, lp, qty, False, filters, "grid",
                          {"spacing": ss.spacing, "size_quote": quote, "imbalance": side_imb,
                           "level": idx + sgn}, v)
            if d is None:
                res.skipped.append((tag, "below_min_notional"))
                continue
            sticky[key] = qty
            used += notional
            n_placed += 1
        ss.sticky = sticky
        if len(ss._cache) > 4 * p.grid_levels + 8:
            keep = set(sticky) | {f"TP-{tag}", f"SL-{tag}"}
            ss._cache = {k: x for k, x in ss._cache.items() if k in keep}
    return res
