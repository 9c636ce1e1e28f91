"""Feature engine: raw features from closed base bars, normalised online (no look-ahead).

Every raw feature is updated when its timeframe's bar closes and normalised by its own ``EWZ``
(window = ``normalisation_window_minutes`` of that timeframe); between updates the last
normalised value is held. Funding and CME-gap inputs are optional: absent, they stay 0.
"""

from __future__ import annotations

import math
from math import log, sqrt

from models.strategy.indicators import (
    ADX,
    ATR,
    EMA,
    EWZ,
    RSI,
    BarAggregator,
    RollingMeanStd,
    ewz_update,
    roll_window_sums,
)
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
# base-timeframe features normalised in FeatureEngine.update, in the order of its raw list
_BASE_IDX = (F_MOM_S, F_MOM_M, F_MOM_L, F_VOLRATIO, F_ATRPCT, F_RSI, F_STRETCH, F_VOLUME)
MINUTE_MS = 60_000
DAY_MS = 86_400_000
FUNDING_NORM_SPAN = 21  # settlements (one week at 8 h)
_NAN = math.nan


def bars_for(minutes: int, interval_ms: int) -> int:
    """Number of ``interval_ms`` bars covering ``minutes`` (at least 1)."""
    return max(1, round(minutes * MINUTE_MS / interval_ms))


class FeatureEngine(Stateful):
    """Incremental feature computation for one symbol."""

    __slots__ = ("base_ms", "trend_ms", "count", "warmup", "prev_close", "close", "spans",
                 "n_rv_short", "n_rv_long", "wins", "cbuf", "rbuf", "rpos", "wsum", "since",
                 "atr", "rsi", "bb", "vol", "agg", "ema_f", "ema_s", "ema_f_prev", "atr_t",
                 "adx", "norms", "nmean", "nvar", "ncount", "alpha", "clip", "feats",
                 "fund_hist", "last_open_ms", "_dims", "_a8")
    # constants derived from the params (rebuilt by __init__, never part of the state)
    _transient = ("_dims", "_a8")

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
        self.n_rv_short = bars_for(p.rv_short_minutes, base_interval_ms)
        self.n_rv_long = bars_for(p.rv_long_minutes, base_interval_ms)
        # one ring of closes and one of squared log returns; windows: 3 spans, rv short, long
        self.wins = [*self.spans, self.n_rv_short, self.n_rv_long]
        self.cbuf = [math.nan] * (max(self.spans) + 1)
        self.rbuf = [0.0] * max(self.wins)
        self.rpos = 0
        self.wsum = [0.0] * 5
        self.since = 0
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
        # normaliser state: an EWZ per feature for the trend and funding features; the
        # base-bar features keep theirs in nmean/nvar/ncount (ewz_update on them; snapshot v1)
        self.norms = [EWZ(s, clip) for s in spans]
        self.alpha = [2.0 / (x + 1.0) for x in spans]
        self.nmean = [0.0] * NF
        self.nvar = [0.0] * NF
        self.ncount = [0] * NF
        self.clip = clip
        self.feats = [0.0] * NF
        self.fund_hist: list[float] = []
        self.last_open_ms = -1
        self._dims = (*self.wins, len(self.rbuf), len(self.cbuf))
        self._a8 = tuple(self.alpha[i] for i in _BASE_IDX)

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
        """Add one closed base bar; return True when warm (features usable).

        Every formula is its indicator's own definition, called on this engine's state
        (``roll_window_sums``, ``RollingMeanStd.z``, ``ewz_update``): the state layout is the
        snapshot format (version 1), so it stays in these slots."""
        if open_time_ms <= self.last_open_ms:
            raise ValueError(f"bar {open_time_ms} is not after {self.last_open_ms}")
        self.last_open_ms = open_time_ms
        feats = self.feats
        pc = self.prev_close
        self.prev_close = c
        self.close = c
        r = log(c / pc) if pc == pc else 0.0
        cnt = self.count + 1  # bars seen including this one
        # rolling sums of r^2 over the five windows (one ring of the last max-window values)
        rbuf = self.rbuf
        wsum = self.wsum
        n0, n1, n2, n3, n4, R, M = self._dims
        self.rpos, self.since = roll_window_sums(rbuf, self.rpos, self.since, wsum, self.wins,
                                                 cnt if cnt < R else R, r * r)
        w0, w1, w2, w3, w4 = wsum
        cbuf = self.cbuf
        cpos = (cnt - 1) % M
        cbuf[cpos] = c
        # base-timeframe raw features (nan: not available), in _BASE_IDX order
        nan = _NAN
        x0 = x1 = x2 = x3 = x4 = x5 = x6 = x7 = nan
        if cnt > n0 and w0 > 0.0:
            x0 = log(c / cbuf[cpos - n0]) / sqrt(w0)
        if cnt > n1 and w1 > 0.0:
            x1 = log(c / cbuf[cpos - n1]) / sqrt(w1)
        if cnt > n2 and w2 > 0.0:
            x2 = log(c / cbuf[cpos - n2]) / sqrt(w2)
        if cnt > n3 and w4 > 0.0:
            x3 = sqrt((w3 / n3) / (w4 / (n4 if cnt > n4 else cnt)))
        atr = self.atr.update(h, lo, c)
        if atr == atr:
            x4 = atr / c
        rsi = self.rsi.update(c)
        if rsi == rsi:
            x5 = rsi - 50.0
        # Bollinger z (full window) and volume z of the newest value
        ind = self.bb
        ind.update(c)
        if ind.count == ind.n:
            x6 = ind.z(c)
        ind = self.vol
        ind.update(v)
        if ind.count >= 2:
            x7 = ind.z(v)
        # normalise: the EWZ step of each feature, its state in nmean/nvar/ncount (nan: held)
        ewz_update(_BASE_IDX, (x0, x1, x2, x3, x4, x5, x6, x7), self._a8, self.clip,
                   self.nmean, self.nvar, self.ncount, feats)
        for (to, th, tl, tc, _tv) in self.agg.update(open_time_ms, o, h, lo, c, v):
            self._trend_bar(to, th, tl, tc)
        feats[F_WEEKEND] = 1.0 if (open_time_ms // DAY_MS + 3) % 7 >= 5 else 0.0
        self.count = cnt
        if cnt >= self.warmup and atr == atr:
            ta = self.atr_t.rma.value
            return ta == ta
        return False

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
