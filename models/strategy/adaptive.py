"""The adaptive UP/DOWN/NEUTRAL ensemble strategy (pure: no I/O, no wall clock, no randomness).

``on_bar`` (one closed base bar, O(1)) -> features -> systems -> L/S -> entry filter;
``plan`` -> desired orders (``planner.plan_orders``); ``plan_actions`` adds ``diff_orders``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import msgspec

from models.enums import Market, Side
from models.filters import SymbolFilters
from models.strategy.conviction import ConvictionFilter, conviction
from models.strategy.features import (
    F_ATRPCT,
    F_VOLRATIO,
    F_VOLUME,
    F_WEEKEND,
    FEATURE_NAMES,
    FeatureEngine,
)
from models.strategy.ordering import diff_orders
from models.strategy.params import StrategyParams
from models.strategy.planner import PlannerState, PlanResult, grid_spacing, plan_orders
from models.strategy.snapshot import Stateful
from models.strategy.systems import SystemSpec, bias_share
from models.strategy.types import (
    KIND_ENTRY,
    Bar,
    DesiredOrder,
    MarketView,
    OpenOrderView,
    OrderActions,
    PositionView,
    RiskInputs,
    StrategyValues,
)
from models.strategy.weights import Weights, default_weights

SNAPSHOT_VERSION = 1
_VALUE_FIELDS = tuple(s for s in StrategyValues.__struct_fields__ if s != "feature_names")


class AdaptiveStrategy(Stateful):
    """Adaptive grid driven by the three-system ensemble (see docs/STRATEGY.md)."""

    __slots__ = ("params", "symbol", "base_ms", "seed", "weights", "eng", "filt", "ps", "warm",
                 "last", "last_plan", "_up", "_down", "_neu", "_k")
    _transient = ("params", "weights", "last", "last_plan", "_up", "_down", "_neu", "_k")

    def __init__(self, params: StrategyParams, symbol: str, base_interval_ms: int,
                 seed: int = 0, initial_weights: Weights | None = None) -> None:
        errs = params.validate()
        if errs:
            raise ValueError("; ".join(errs))
        self.params = params
        self.symbol = symbol
        self.base_ms = base_interval_ms
        self.seed = seed  # no randomness is used; kept for the Strategy interface
        self.weights = initial_weights or default_weights()
        self.eng = FeatureEngine(params, base_interval_ms)
        self.filt = ConvictionFilter(params.conviction_filter)
        self.ps = PlannerState()
        self.warm = False
        self.last: StrategyValues | None = None
        self.last_plan: PlanResult | None = None
        self._set_specs()
        p = params
        self._k = (p.bias_gain, p.strength_gain, p.adx_low, p.adx_high - p.adx_low,
                   p.trend_confidence_floor, p.volume_confidence_mult,
                   p.volatility_confidence_mult, p.weekend_confidence_factor)

    def _set_specs(self) -> None:
        w = self.weights
        if tuple(w.feature_names) != FEATURE_NAMES:
            raise ValueError("weights were fitted for a different feature set")
        self._up = SystemSpec(w.up)
        self._down = SystemSpec(w.down)
        self._neu = SystemSpec(w.neu)

    def set_weights(self, weights: Weights) -> None:
        """Replace the feature weights (e.g. weekly adaptation)."""
        self.weights = weights
        self._set_specs()

    # -- inputs ------------------------------------------------------------------------------
    def on_funding(self, rate: float, ts_ms: int = 0) -> None:
        """A futures funding settlement."""
        self.eng.on_funding(rate)

    def on_cme_gap(self, distance_atr: float | None) -> None:
        """Distance to the nearest unfilled CME gap in ATRs (None: no gap)."""
        self.eng.on_cme_gap(distance_atr)

    def on_bar(self, bar: Bar) -> StrategyValues | None:
        """Process one closed base bar; None while warming up."""
        p = self.params
        eng = self.eng
        warm = eng.update(bar.open_time_ms, bar.open, bar.high, bar.low, bar.close, bar.volume)
        if not warm:
            return None
        self.warm = True
        f = eng.feats
        bg, sg, adx_lo, adx_span, fl, vm, vcm, wkf = self._k
        b_up, cu, _ = bias_share(self._up, f, bg, sg)
        b_dn, cd, _ = bias_share(self._down, f, bg, sg)
        b_neu, cn, _ = bias_share(self._neu, f, bg, sg)
        adx = eng.adx.dx.value
        if adx == adx:
            a = (adx - adx_lo) / adx_span
            a = 0.0 if a < 0.0 else (1.0 if a > 1.0 else a)
        else:
            a = 0.0
        trend = fl + (1.0 - fl) * a
        rng = fl + (1.0 - fl) * (1.0 - a)
        volf = (1.0 + vm * f[F_VOLUME]) / (1.0 + vm)
        vr = f[F_VOLRATIO]
        volp = 1.0 - vcm * (vr if vr > 0.0 else 0.0)
        wk = wkf if f[F_WEEKEND] else 1.0
        c_up = cu * trend * volf * wk
        c_dn = cd * trend * volf * wk
        c_neu = cn * rng * volp * wk
        L, S = conviction(b_up, c_up, b_dn, c_dn, b_neu, c_neu, p.system_weights)
        long_ok, short_ok = self.filt.update(L, S)
        self.ps.on_values(L, S, p)
        atr = eng.atr_t.rma.value
        vf = f[F_ATRPCT]
        vf = vf if vf > 0.0 else 0.0
        sp_l = grid_spacing(atr, vf, L, 0.0, p)
        sp_s = grid_spacing(atr, vf, S, 0.0, p)
        v = StrategyValues(bar.close_time_ms, b_up, c_up, b_dn, c_dn, b_neu, c_neu, L, S,
                           tuple(f), FEATURE_NAMES, atr, adx, sp_l, sp_s, long_ok, short_ok,
                           bar.close)
        self.last = v
        return v

    # -- planning ------------------------------------------------------------------------------
    def plan(self, market: MarketView, position: PositionView, open_orders: list[OpenOrderView],
             risk: RiskInputs, filters: SymbolFilters,
             market_type: Market) -> list[DesiredOrder]:
        """Desired orders now (empty while warming up). Details of skipped entries and cancel
        reasons are in ``last_plan``."""
        v = self.last
        if v is None:
            self.last_plan = PlanResult()
            return []
        res = plan_orders(v, self.ps, market, position, open_orders, risk, filters, market_type,
                          self.params)
        self.last_plan = res
        return res.desired

    def plan_actions(self, market: MarketView, position: PositionView,
                     open_orders: list[OpenOrderView], risk: RiskInputs,
                     filters: SymbolFilters, market_type: Market) -> OrderActions:
        """``plan`` followed by ``diff_orders`` with this strategy's parameters."""
        desired = self.plan(market, position, open_orders, risk, filters, market_type)
        p = self.params
        atr = self.last.atr if self.last is not None else float("nan")
        reasons = self.last_plan.cancel_reasons if self.last_plan is not None else {}
        return diff_orders(desired, open_orders, atr=atr, recenter_atr=p.recenter_atr,
                           max_modifies=p.max_modifies,
                           price_tolerance_ticks=p.price_tolerance_ticks,
                           tick_size=filters.tick_size, cancel_reasons=reasons)

    def on_fill(self, side: Side | str, price: Decimal | float, qty: Decimal | float,
                kind: str, ts_ms: int, key: str | None = None) -> None:
        """An own order (partly) filled: entry fills open the position bookkeeping (entry
        conviction) and move the grid; TP/SL fills are seen through the position."""
        if kind != KIND_ENTRY:
            return
        side = Side(side)
        ss = self.ps.long if side is Side.BUY else self.ps.short
        if not ss.in_pos:
            v = self.last
            conv = 0.0 if v is None else (v.L if side is Side.BUY else v.S)
            ss.open_position(conv, ts_ms)
        ss.on_entry_fill(float(price))

    # -- persistence -------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """msgpack of the full state (restores to bit-identical behaviour)."""
        last = None
        if self.last is not None:
            last = [getattr(self.last, k) for k in _VALUE_FIELDS]
            last[_VALUE_FIELDS.index("features")] = list(self.last.features)
        doc: dict[str, Any] = {"v": SNAPSHOT_VERSION, "kind": "adaptive",
                               "weights": self.weights.to_bytes(), "state": self.get_state(),
                               "last": last}
        return msgspec.msgpack.encode(doc)

    @classmethod
    def restore(cls, params: StrategyParams, blob: bytes) -> AdaptiveStrategy:
        """Rebuild from ``snapshot`` output (with the same params)."""
        doc = msgspec.msgpack.decode(blob)
        if doc.get("kind") != "adaptive" or doc.get("v") != SNAPSHOT_VERSION:
            raise ValueError("not an adaptive-strategy snapshot of this version")
        st = doc["state"]
        obj = cls(params, st["symbol"], st["base_ms"], st["seed"],
                  Weights.from_bytes(doc["weights"]))
        obj.set_state(st)
        if doc["last"] is not None:
            vals = dict(zip(_VALUE_FIELDS, doc["last"], strict=True))
            vals["features"] = tuple(vals["features"])
            obj.last = StrategyValues(feature_names=FEATURE_NAMES, **vals)
        return obj
