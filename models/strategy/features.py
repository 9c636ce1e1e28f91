"""Feature engine: raw features from closed base bars, normalised online (no look-ahead).

Every raw feature is updated when its timeframe's bar closes and normalised by its own ``EWZ``
(window = ``normalisation_window_minutes`` of that timeframe); between updates the last
normalised value is held. Funding and CME-gap inputs are optional: absent, they stay 0.
"""

from __future__ import annotations

import math

from models.strategy.indicators import ADX, ATR, EMA, EWZ, RSI, BarAggregator, Lag, RollingMeanStd, RollingSum
from models.strategy.params import StrategyParams
from models.strategy.snapshot import Stateful

FEATURE_NAMES: tuple[str, ...] = (
    "mom_short", "mom_mid", "mom_long",      # log return / realized vol over the 3 spans
    "trend_gap", "trend_slope",              # (EMAf - EMAs)/ATR, EMAf slope/ATR (trend bars)
    "stretch", "rsi",                        # Bollinger z, RSI - 50 (base bars)
    "atr_pct", "vol_ratio", "volume",        # ATR/close, short/long realized vol, volume z
    "funding", "funding_grad",               # futures funding and its gradient
    "cme_gap",                               # signed distance to nearest unfilled CME gap
    "weekend",                               # 1.0 on Saturday/Sunday UTC (not normalised)
)
F_MOM_S, F_MOM_M, F_MOM_L, F_TGAP, F_TSLOPE, F_STRETCH, F_RSI, F_ATRPCT, F_VOLRATIO, \
    F_VOLUME, F_FUND, F_FUNDG, F_CME, F_WEEKEND = range(len(FEATURE_NAMES))
NF = len(FEATURE_NAMES)
MINUTE_MS = 60_000
DAY_MS = 86_400_000
FUNDING_NORM_SPAN = 21  # settlements (one week at 8 h)


def bars_for(minutes: int, interval_ms: int) -> int:
    """Number of ``interval_ms`` bars covering ``minutes`` (at least 1)."""
    return max(1, round(minutes * MINUTE_MS / interval_ms))


class FeatureEngine(Stateful):
    """Incremental feature computation for one symbol."""

    __slots__ = ("base_ms", "trend_ms", "count", "warmup", "prev_close", "close", "spans",
                 "lags", "rv_span", "rv_short", "rv_long", "n_rv_short", "n_rv_long", "atr",
                 "rsi", "bb", "vol", "agg", "ema_f", "ema_s", "ema_f_prev", "atr_t", "adx",
                 "norms", "feats", "fund_hist", "weekend", "last_open_ms")

    def __init__(self, params: StrategyParams, base_interval_ms: int) -> None:
        p = params
        self.base_ms = base_interval_ms
        self.trend_ms = p.trend_interval_minutes * MINUTE_MS
        if self.trend_ms % base_interval_ms:
            raise ValueError("trend_interval_minutes must be a multiple of the base interval")
        self.count = 0
        self.warmup = bars_for(p.warmup_minutes, base_interval_ms) if p.warmup_minutes else 0
        self.prev_close = math.nan
        self.close = math.nan
        self.spans = [bars_for(m, base_interval_ms) for m in p.momentum_spans_minutes]
        self.lags = [Lag(n) for n in self.spans]
        self.rv_span = [RollingSum(n) for n in self.spans]
        self.n_rv_short = bars_for(p.rv_short_minutes, base_interval_ms)
        self.n_rv_long = bars_for(p.rv_long_minutes, base_interval_ms)
        self.rv_short = RollingSum(self.n_rv_short)
        self.rv_long = RollingSum(self.n_rv_long)
        self.atr = ATR(p.atr_period)
        self.rsi = RSI(p.rsi_period)
        self.bb = RollingMeanStd(p.bb_window)
        self.vol = RollingMeanStd(bars_for(p.volume_window_minutes, base_interval_ms))
        self.agg = BarAggregator(self.trend_ms, base_interval_ms)
        self.ema_f = EMA(p.ema_fast)
        self.ema_s = EMA(p.ema_slow)
        self.ema_f_prev = math.nan
        self.atr_t = ATR(p.atr_period)
        self.adx = ADX(p.adx_period)
        span_base = bars_for(p.normalisation_window_minutes, base_interval_ms)
        span_trend = bars_for(p.normalisation_window_minutes, self.trend_ms)
        clip = p.normalisation_clip
        spans = [span_base] * NF
        spans[F_TGAP] = spans[F_TSLOPE] = span_trend
        spans[F_FUND] = spans[F_FUNDG] = FUNDING_NORM_SPAN
        self.norms = [EWZ(s, clip) for s in spans]
        self.feats = [0.0] * NF
        self.fund_hist: list[float] = []
        self.weekend = 0.0
        self.last_open_ms = -1

    # -- optional external inputs -------------------------------------------------------------
    def on_funding(self, rate: float) -> None:
        """A funding settlement (futures): updates the funding and gradient features."""
        h = self.fund_hist
        h.append(float(rate))
        if len(h) > 3:
            del h[0]
        self.feats[F_FUND] = self.norms[F_FUND].update(h[-1])
        if len(h) == 3:
            self.feats[F_FUNDG] = self.norms[F_FUNDG].update((h[-1] - h[0]) / 2.0)

    def on_cme_gap(self, distance_atr: float | None) -> None:
        """Signed distance (in ATRs, + when the gap is above) to the nearest unfilled CME gap,
        or None when there is none."""
        self.feats[F_CME] = 0.0 if distance_atr is None else math.tanh(distance_atr / 4.0)

    # -- per bar --------------------------------------------------------------------------------
    def update(self, open_time_ms: int, o: float, h: float, lo: float, c: float,
               v: float) -> bool:
        """Add one closed base bar; return True when warm (features usable)."""
        if open_time_ms <= self.last_open_ms:
            raise ValueError(f"bar {open_time_ms} is not after {self.last_open_ms}")
        self.last_open_ms = open_time_ms
        feats = self.feats
        norms = self.norms
        pc = self.prev_close
        self.prev_close = c
        self.close = c
        r = math.log(c / pc) if pc == pc else 0.0
        r2 = r * r
        for j in range(3):
            old = self.lags[j].update(c)
            rv = self.rv_span[j].update(r2)
            if old == old and rv > 0.0:
                feats[j] = norms[j].update(math.log(c / old) / math.sqrt(rv))
        rs = self.rv_short.update(r2)
        rl = self.rv_long.update(r2)
        if rl > 0.0 and self.count >= self.n_rv_short:
            ratio = math.sqrt((rs / self.rv_short.count) / (rl / self.rv_long.count))
            feats[F_VOLRATIO] = norms[F_VOLRATIO].update(ratio)
        atr = self.atr.update(h, lo, c)
        if atr == atr:
            feats[F_ATRPCT] = norms[F_ATRPCT].update(atr / c)
        rsi = self.rsi.update(c)
        if rsi == rsi:
            feats[F_RSI] = norms[F_RSI].update(rsi - 50.0)
        bb = self.bb
        bb.update(c)
        if bb.full:
            sd = bb.std
            if sd > 0.0:
                feats[F_STRETCH] = norms[F_STRETCH].update((c - bb.mean) / sd)
        vol = self.vol
        vol.update(v)
        if vol.count >= 2:
            sd = vol.std
            if sd > 0.0:
                feats[F_VOLUME] = norms[F_VOLUME].update((v - vol.mean) / sd)
        for (to, th, tl, tc, _tv) in self.agg.update(open_time_ms, o, h, lo, c, v):
            self._trend_bar(to, th, tl, tc)
        day = open_time_ms // DAY_MS
        feats[F_WEEKEND] = 1.0 if (day + 3) % 7 >= 5 else 0.0
        self.count += 1
        return self.count >= self.warmup and atr == atr and self.atr_t.value == self.atr_t.value

    def _trend_bar(self, o: float, h: float, lo: float, c: float) -> None:
        ef = self.ema_f.update(c)
        es = self.ema_s.update(c)
        atr = self.atr_t.update(h, lo, c)
        self.adx.update(h, lo, c)
        efp = self.ema_f_prev
        self.ema_f_prev = ef
        if atr == atr and atr > 0.0:
            self.feats[F_TGAP] = self.norms[F_TGAP].update((ef - es) / atr)
            if efp == efp:
                self.feats[F_TSLOPE] = self.norms[F_TSLOPE].update((ef - efp) / atr)

    @property
    def grid_atr(self) -> float:
        """ATR(atr_period) on the trend interval: the unit of grid spacing and stops."""
        return self.atr_t.value

    @property
    def adx_value(self) -> float:
        """ADX on the trend interval (nan until ready)."""
        return self.adx.value
