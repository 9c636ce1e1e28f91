"""Static grid baseline: fixed spacing and size around the start price, TP one grid step away.

Levels are fixed at the first ``plan`` call: BUY entries at start x (1 - i x spacing_pct) for
i = 1..levels (keys ``L-i``); on futures also SELL entries at start x (1 + i x spacing_pct)
(keys ``S{i}``). A filled level rests a take-profit one step away (keys ``TP-L-i``/``TP-S{i}``)
for the filled quantity and is re-armed when that TP has filled. Sizes are fixed per level from
the quote size at the start (``order_quote``, else ``order_fraction`` x equity, else the side
budget / levels), scaled only by the risk core's ``size_factor``. Futures TPs are not
reduce-only: the baseline is a neutral ladder whose legs net against each other.
"""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Any

import msgspec

from models.enums import Market, Side
from models.filters import SymbolFilters
from models.strategy.features import FEATURE_NAMES, NF
from models.strategy.indicators import ATR
from models.strategy.ordering import diff_orders
from models.strategy.params import StrategyParams
from models.strategy.planner import to_price, to_qty
from models.strategy.snapshot import Stateful
from models.strategy.types import (
    KIND_ENTRY,
    KIND_TP,
    Bar,
    DesiredOrder,
    MarketView,
    OpenOrderView,
    OrderActions,
    PositionView,
    RiskInputs,
    StrategyValues,
)

_ZERO = Decimal(0)
SNAPSHOT_VERSION = 1


class StaticGridStrategy(Stateful):
    """Fixed grid around the start price (the baseline the adaptive strategy is measured
    against)."""

    __slots__ = ("params", "symbol", "base_ms", "seed", "warm", "start", "base_quote", "held",
                 "fill_px", "atr", "last_close", "last_ts", "skipped", "ver", "_sig", "_out",
                 "_levels")
    _transient = ("params", "skipped", "_sig", "_out", "_levels")

    def __init__(self, params: StrategyParams, symbol: str, base_interval_ms: int,
                 seed: int = 0, initial_weights: Any = None) -> None:
        errs = params.validate()
        if errs:
            raise ValueError("; ".join(errs))
        self.params = params
        self.symbol = symbol
        self.base_ms = base_interval_ms
        self.seed = seed
        self.warm = False
        self.start = 0.0
        self.base_quote = 0.0
        self.held: dict[str, Decimal] = {}
        self.fill_px: dict[str, float] = {}
        self.atr = ATR(params.atr_period)
        self.last_close = math.nan
        self.last_ts = 0
        self.skipped: list[tuple[str, str]] = []
        self.ver = 0  # bumped by every fill: part of the plan memo key
        self._after_restore()

    def _after_restore(self) -> None:
        self._sig: tuple | None = None
        self._out: list[DesiredOrder] = []
        self._levels: dict[Market, list[tuple[str, Side, float]]] = {}

    # -- Strategy interface ------------------------------------------------------------------
    def on_bar(self, bar: Bar) -> StrategyValues | None:
        """Record the bar (the grid ignores signals); values are all zero."""
        atr = self.atr.update(bar.high, bar.low, bar.close)
        self.last_close = bar.close
        self.last_ts = bar.close_time_ms
        self.warm = True
        sp = self.start * self.params.static_grid.spacing_pct
        return StrategyValues(bar.close_time_ms, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
                              (0.0,) * NF, FEATURE_NAMES, atr, math.nan, sp, sp, True, True,
                              bar.close)

    def levels(self, market_type: Market) -> list[tuple[str, Side, float]]:
        """(key, entry side, price) of every level; empty before the start price is set."""
        if self.start <= 0.0:
            return []
        hit = self._levels.get(market_type)
        if hit is None:
            hit = self._levels[market_type] = self._make_levels(market_type)
        return hit

    def _make_levels(self, market_type: Market) -> list[tuple[str, Side, float]]:
        g = self.params.static_grid
        out = [(f"L-{i}", Side.BUY, self.start * (1.0 - i * g.spacing_pct))
               for i in range(1, g.levels + 1)]
        if market_type is Market.FUTURES:
            out += [(f"S{i}", Side.SELL, self.start * (1.0 + i * g.spacing_pct))
                    for i in range(1, g.levels + 1)]
        return out

    def plan(self, market: MarketView, position: PositionView, open_orders: list[OpenOrderView],
             risk: RiskInputs, filters: SymbolFilters,
             market_type: Market) -> list[DesiredOrder]:
        """Entries on idle levels, a TP on each filled level."""
        g = self.params.static_grid
        P = market.last_price
        if not P > 0.0:
            self.skipped = []
            return []
        if self.start > 0.0:
            # the plan only depends on which levels the market is through, the fills and risk
            through = 0
            for _k, side, lp in self.levels(market_type):
                if (lp - P) * side.sign >= 0.0:
                    through += 1 if side is Side.BUY else 1000
            sig = (through, self.ver, market_type, risk.size_factor, risk.entries_allowed,
                   risk.max_long_notional, risk.max_short_notional, filters)
            if sig == self._sig:
                return list(self._out)
        else:
            self.start = P
            if g.order_quote > 0.0:
                self.base_quote = g.order_quote
            elif g.order_fraction > 0.0:
                self.base_quote = g.order_fraction * risk.equity
            else:
                self.base_quote = max(risk.max_long_notional, risk.max_short_notional) / g.levels
            sig = None
        self.skipped = []
        out: list[DesiredOrder] = []
        used = {Side.BUY: 0.0, Side.SELL: 0.0}
        for key, side, lp in self.levels(market_type):
            h = self.held.get(key, _ZERO)
            if h > _ZERO:
                used[side] += float(h) * lp
        for key, side, lp in self.levels(market_type):
            h = self.held.get(key, _ZERO)
            ctx = {"level_price": lp, "start": self.start, "spacing_pct": g.spacing_pct}
            if h > _ZERO:
                fp = self.fill_px.get(key, lp)
                tp = fp * (1.0 + g.spacing_pct) if side is Side.BUY else \
                    fp * (1.0 - g.spacing_pct)
                tside = side.opposite()
                price = to_price(tp, tside, filters)
                qty = filters.round_qty(h)
                if qty > _ZERO and price * qty >= filters.min_notional:
                    out.append(DesiredOrder(key=f"TP-{key}", side=tside, kind=KIND_TP,
                                            price=price, qty=qty, reduce_only=False,
                                            reason="take_profit", context=ctx))
                continue
            if not risk.entries_allowed:
                self.skipped.append((key, "risk_halt"))
                continue
            if (lp - P) * side.sign >= 0.0:
                continue  # the market is through this level: wait for it to come back
            budget = risk.max_long_notional if side is Side.BUY else risk.max_short_notional
            quote = self.base_quote * risk.size_factor
            if used[side] + quote > budget * (1.0 + 1e-9):
                self.skipped.append((key, "budget"))
                continue
            price = to_price(lp, side, filters)
            qty = to_qty(quote / lp, price, filters)
            if qty is None:
                self.skipped.append((key, "below_min_notional"))
                continue
            used[side] += float(price * qty)
            out.append(DesiredOrder(key=key, side=side, kind=KIND_ENTRY, price=price, qty=qty,
                                    reduce_only=False, reason="grid", context=ctx))
        if sig is None:  # first plan: the levels exist only now
            through = sum((1 if sd is Side.BUY else 1000)
                          for _k, sd, lp in self.levels(market_type) if (lp - P) * sd.sign >= 0.0)
            sig = (through, self.ver, market_type, risk.size_factor, risk.entries_allowed,
                   risk.max_long_notional, risk.max_short_notional, filters)
        self._sig, self._out = sig, list(out)
        return out

    def plan_actions(self, market: MarketView, position: PositionView,
                     open_orders: list[OpenOrderView], risk: RiskInputs,
                     filters: SymbolFilters, market_type: Market) -> OrderActions:
        """``plan`` followed by ``diff_orders``."""
        desired = self.plan(market, position, open_orders, risk, filters, market_type)
        p = self.params
        return diff_orders(desired, open_orders, atr=self.atr.value, recenter_atr=p.recenter_atr,
                           max_modifies=p.max_modifies,
                           price_tolerance_ticks=p.price_tolerance_ticks,
                           tick_size=filters.tick_size)

    def on_fill(self, side: Side | str, price: Decimal | float, qty: Decimal | float,
                kind: str, ts_ms: int, key: str | None = None) -> None:
        """Book a fill against its level (by ``key`` when given, else the nearest level)."""
        side = Side(side)
        q = qty if isinstance(qty, Decimal) else Decimal(repr(float(qty)))
        px = float(price)
        lvl = self._level_for(side, px, kind, key)
        if lvl is None:
            return
        h = self.held.get(lvl, _ZERO)
        self.ver += 1
        if kind == KIND_ENTRY:
            old = float(h)
            self.fill_px[lvl] = (self.fill_px.get(lvl, px) * old + px * float(q)) / (
                old + float(q)) if old > 0 else px
            self.held[lvl] = h + q
        elif kind == KIND_TP:
            rest = h - q
            if rest <= _ZERO:
                self.held.pop(lvl, None)
                self.fill_px.pop(lvl, None)
            else:
                self.held[lvl] = rest

    def _level_for(self, side: Side, px: float, kind: str, key: str | None) -> str | None:
        if key:
            k = key[3:] if key.startswith("TP-") else key
            if any(k == lk for lk, _s, _p in self._all_levels()):
                return k
        entry_side = side if kind == KIND_ENTRY else side.opposite()
        g = self.params.static_grid.spacing_pct
        best, bd = None, math.inf
        for lk, s, lp in self._all_levels():
            if s is not entry_side:
                continue
            if kind != KIND_ENTRY:  # a TP: match the TP price of a level that holds a fill
                if self.held.get(lk, _ZERO) <= _ZERO:
                    continue
                fp = self.fill_px.get(lk, lp)
                lp = fp * (1.0 + g) if s is Side.BUY else fp * (1.0 - g)
            if abs(lp - px) < bd:
                best, bd = lk, abs(lp - px)
        return best

    def _all_levels(self) -> list[tuple[str, Side, float]]:
        return self.levels(Market.FUTURES)

    # -- persistence -------------------------------------------------------------------------
    def snapshot(self) -> bytes:
        """msgpack of the full state."""
        return msgspec.msgpack.encode({"v": SNAPSHOT_VERSION, "kind": "static_grid",
                                       "state": self.get_state()})

    @classmethod
    def restore(cls, params: StrategyParams, blob: bytes) -> StaticGridStrategy:
        """Rebuild from ``snapshot`` output."""
        doc = msgspec.msgpack.decode(blob)
        if doc.get("kind") != "static_grid" or doc.get("v") != SNAPSHOT_VERSION:
            raise ValueError("not a static-grid snapshot of this version")
        st = doc["state"]
        obj = cls(params, st["symbol"], st["base_ms"], st["seed"])
        obj.set_state(st)
        return obj
