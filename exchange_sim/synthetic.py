"""Seeded synthetic klines for the embedded exchange and backtests when no real data is at hand,
and for named stress scenarios.

Model (``scenario="gbm"``): geometric Brownian motion whose drift and volatility follow a Markov
chain over four regimes: calm, trending-up, trending-down, volatile. Each regime lasts a
geometrically distributed number of bars (mean ``SyntheticParams.mean_regime_hours``) and then
moves to another one by ``SyntheticParams.transition``. Poisson jumps (normal log sizes) are added,
three times as often in the volatile regime. Every bar is built from ``substeps`` intrabar
points of the same path, so O is the previous close, C the last point, H/L the extremes of the
points: ``H >= max(O, C)`` and ``L <= min(O, C)`` always, also after prices are rounded to the
tick (0.01 by default). Volumes are log-normal around a per-symbol hourly base, scaled up in
volatile/trending regimes and with the size of the bar's move.

Named scenarios are layered on the same random draws (same seed = same background noise):

* ``pump5``: after a one-day warm-up (so indicators are ready) the price rises exactly +5 % over
  one hour: bars ``[pump_start, pump_start + bars_per_hour)`` with ``pump_start = bars per
  day`` (bar 1440 at 1m, 288 at 5m). Noise inside the hour is bridged, so the close of the
  last pump bar is the open of the first times 1.05 (to the tick); volume x3; then the
  trending-up regime for ``post_event_hours`` and the normal chain after that.
* ``crash12``: after the warm-up, exactly -12 % over ``crash_hours`` (4) with the volatile
  regime's noise (bridged), volume x5, then volatile for ``post_event_hours``.
* ``chop``: a mean-reverting range (Ornstein-Uhlenbeck on log price around the start price,
  half-life ``chop_halflife_hours``), calm volatility, no jumps, no trend.
* ``weekend``: the regime chain with Saturday/Sunday (UTC calendar of ``start_ms``) volatility
  times ``weekend_vol_mult`` and volume times ``weekend_volume_mult``.
* ``cme_gap``: the weekend scenario plus a drift of exactly ``cme_gap_pct`` (+4 %) between the
  first Friday 21:00 UTC (CME close) after the warm-up and the following Sunday 23:00 UTC (CME
  reopen). Binance trades through it, so its bars stay continuous; the CME Friday close and
  Sunday open would differ by that drift, leaving a "CME gap" to be filled.

``scenario_window`` gives the bar indexes of each scenario's event. Everything is a pure function
of the arguments: the random generator is seeded from ``seed`` and the symbol (CRC32), and no
clock is read. Same arguments give byte-identical arrays.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from exchange_sim.bars import Bars
from exchange_sim.marketdata import default_data_dir, interval_ms_of, load_klines, market_of
from models.enums import Market
from models.timeframes import INTERVAL_MS

SCENARIOS: tuple[str, ...] = ("gbm", "pump5", "crash12", "chop", "weekend", "cme_gap")
REGIMES: tuple[str, ...] = ("calm", "up", "down", "volatile")

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
_YEAR_MS = 365.0 * DAY_MS


@dataclass(frozen=True)
class SymbolProfile:
    """Per-symbol defaults: realistic price level, calm annual volatility, volume and rounding."""

    start_price: float
    calm_vol: float
    volume_per_hour: float
    price_decimals: int = 2
    qty_decimals: int = 5


PROFILES: dict[str, SymbolProfile] = {
    "BTC": SymbolProfile(60_000.0, 0.35, 500.0, 2, 5),
    "ETH": SymbolProfile(3_000.0, 0.55, 14_000.0, 2, 4),
    "SOL": SymbolProfile(150.0, 0.70, 100_000.0, 2, 3),
}
DEFAULT_PROFILE = SymbolProfile(100.0, 0.60, 10_000.0, 2, 3)


def profile(symbol: str) -> SymbolProfile:
    """The profile of the symbol's base asset (``BTCUSDT`` -> BTC), or a generic one."""
    for base, p in PROFILES.items():
        if symbol.upper().startswith(base):
            return p
    return DEFAULT_PROFILE


@dataclass(frozen=True)
class SyntheticParams:
    """Model parameters. Drifts and vols are annualised; vols are multiples of the symbol's
    calm volatility so one set of parameters fits BTC and SOL alike."""

    regime_drift: tuple[float, float, float, float] = (0.0, 2.0, -2.0, 0.0)
    regime_vol_mult: tuple[float, float, float, float] = (1.0, 1.4, 1.6, 3.0)
    regime_volume_mult: tuple[float, float, float, float] = (1.0, 1.4, 1.7, 2.8)
    mean_regime_hours: tuple[float, float, float, float] = (36.0, 12.0, 10.0, 6.0)
    # row r: probabilities of the next regime after r (diagonal ignored)
    transition: tuple[tuple[float, ...], ...] = (
        (0.0, 0.35, 0.35, 0.30),
        (0.6, 0.0, 0.1, 0.3),
        (0.6, 0.1, 0.0, 0.3),
        (0.7, 0.15, 0.15, 0.0),
    )
    jumps_per_day: float = 0.5
    jump_std: float = 0.012
    substeps: int = 12
    volume_sigma: float = 0.45
    volume_move_coeff: float = 0.5
    warmup_hours: float = 24.0
    post_event_hours: float = 6.0
    pump_pct: float = 5.0
    pump_hours: float = 1.0
    crash_pct: float = -12.0
    crash_hours: float = 4.0
    chop_halflife_hours: float = 6.0
    weekend_vol_mult: float = 0.6
    weekend_volume_mult: float = 0.5
    cme_gap_pct: float = 4.0
    price_decimals: int | None = None  # None: the symbol profile's
    qty_decimals: int | None = None
    calm_vol: float | None = None
    volume_per_hour: float | None = None


def _seedseq(seed: int, symbol: str, salt: str = "") -> np.random.SeedSequence:
    if seed < 0:
        raise ValueError("seed must be >= 0")
    key = [int(seed) & 0xFFFFFFFF, int(seed) >> 32 & 0xFFFFFFFF,
           zlib.crc32(symbol.upper().encode()), zlib.crc32(salt.encode())]
    return np.random.SeedSequence(key)


def _streams(seed: int, symbol: str, n: int) -> list[np.random.Generator]:
    """Independent generators, one per random quantity, so each is drawn bar by bar in order:
    the first k bars of a longer run equal a run of k bars, and scenarios share the draws."""
    return [np.random.default_rng(s) for s in _seedseq(seed, symbol).spawn(n)]


def _bars_for(ms: float, interval_ms: int) -> int:
    return max(1, int(-(-ms // interval_ms)))


def _weekday(open_time: np.ndarray) -> np.ndarray:
    """Monday = 0 .. Sunday = 6 (1970-01-01 was a Thursday)."""
    return (open_time // DAY_MS + 3) % 7


def scenario_window(
    scenario: str, start_ms: int, n_bars: int, interval: str = "1m",
    params: SyntheticParams | None = None,
) -> tuple[int, int] | None:
    """Bar index range ``[i0, i1)`` of the scenario's event (None for gbm/chop/weekend).

    ``pump5``/``crash12``: starts after the warm-up; ``cme_gap``: bars with open time from the
    first Friday 21:00 UTC at or after the warm-up to the following Sunday 23:00 UTC. Raises
    ``ValueError`` when ``n_bars`` is too short to hold the event."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    p = params or SyntheticParams()
    iv = _interval(interval)
    warm = _bars_for(p.warmup_hours * HOUR_MS, iv)
    if scenario in ("pump5", "crash12"):
        hours = p.pump_hours if scenario == "pump5" else p.crash_hours
        i0, i1 = warm, warm + _bars_for(hours * HOUR_MS, iv)
    elif scenario == "cme_gap":
        t_warm = start_ms + warm * iv
        day0 = t_warm - t_warm % DAY_MS
        days_to_fri = (4 - int(_weekday(np.array([day0]))[0])) % 7
        fri21 = day0 + days_to_fri * DAY_MS + 21 * HOUR_MS
        if fri21 < t_warm:
            fri21 += 7 * DAY_MS
        sun23 = fri21 + 2 * DAY_MS + 2 * HOUR_MS
        i0 = _bars_for(fri21 - start_ms, iv) if fri21 > start_ms else 0
        i1 = _bars_for(sun23 - start_ms, iv)
    else:
        return None
    if i1 > n_bars:
        raise ValueError(
            f"scenario {scenario!r} needs at least {i1} {interval} bars from the start "
            f"(event at bars {i0}..{i1}); got n_bars={n_bars}"
        )
    return i0, i1


def _interval(interval: str) -> int:
    try:
        return INTERVAL_MS[interval]
    except KeyError:
        raise ValueError(
            f"unknown interval {interval!r}: expected one of {', '.join(INTERVAL_MS)}"
        ) from None


def _regime_path(rng: np.random.Generator, n: int, iv: int, p: SyntheticParams) -> np.ndarray:
    """Per-bar regime index from the Markov chain (segments of geometric length)."""
    out = np.empty(n, dtype=np.int8)
    trans = np.asarray(p.transition, dtype=float)
    i, r = 0, 0
    while i < n:
        mean_bars = max(1.0, p.mean_regime_hours[r] * HOUR_MS / iv)
        length = int(rng.geometric(1.0 / mean_bars))
        out[i:i + length] = r
        i += length
        row = trans[r].copy()
        row[r] = 0.0
        r = int(rng.choice(4, p=row / row.sum()))
    return out


def _bridge(inc: np.ndarray, total: float) -> np.ndarray:
    """Increments with the same shape of noise but summing exactly to ``total``."""
    return inc - inc.mean() + total / inc.size


def generate(
    symbol: str,
    scenario: str = "gbm",
    *,
    start_ms: int,
    n_bars: int,
    interval: str = "1m",
    seed: int = 0,
    start_price: float | None = None,
    market: Market | str = Market.SPOT,
    params: SyntheticParams | None = None,
) -> Bars:
    """``n_bars`` synthetic bars of ``symbol`` from ``start_ms`` (aligned to the interval) under
    ``scenario`` (see the module docstring). Deterministic in all arguments."""
    if scenario not in SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    iv = _interval(interval)
    if start_ms % iv:
        raise ValueError(f"start_ms {start_ms} is not aligned to the {interval} interval")
    if n_bars < 0:
        raise ValueError("n_bars must be >= 0")
    p = params or SyntheticParams()
    prof = profile(symbol)
    price_dec = prof.price_decimals if p.price_decimals is None else p.price_decimals
    qty_dec = prof.qty_decimals if p.qty_decimals is None else p.qty_decimals
    calm_vol = prof.calm_vol if p.calm_vol is None else p.calm_vol
    vol_per_hour = prof.volume_per_hour if p.volume_per_hour is None else p.volume_per_hour
    p0 = float(start_price if start_price is not None else prof.start_price)
    if p0 <= 0:
        raise ValueError("start_price must be positive")
    window = scenario_window(scenario, start_ms, n_bars, interval, p)
    open_time = start_ms + iv * np.arange(n_bars, dtype=np.int64)
    if n_bars == 0:
        e = np.empty(0)
        return Bars(symbol, market, interval, open_time, e, e, e, e, e)

    S = p.substeps
    dt = iv / S / _YEAR_MS  # years per substep
    r_regime, r_z, r_nj, r_js, r_ja, r_vol = _streams(seed, symbol, 6)
    regime = _regime_path(r_regime, n_bars, iv, p)
    z = r_z.standard_normal((n_bars, S))
    lam = p.jumps_per_day * iv / DAY_MS
    # the volatile regime jumps three times as often: three Poisson draws per bar, all used there
    nj = r_nj.poisson(lam, (n_bars, 3))
    n_jumps = np.where(regime == 3, nj.sum(axis=1), nj[:, 0])
    jump_size = r_js.standard_normal(n_bars) * p.jump_std * np.sqrt(n_jumps)
    jump_at = r_ja.integers(0, S, n_bars)
    vol_noise = r_vol.standard_normal(n_bars)

    weekend = _weekday(open_time) >= 5
    vol_mult = np.ones(n_bars)
    volume_mult = np.ones(n_bars)
    if scenario in ("weekend", "cme_gap"):
        vol_mult[weekend] *= p.weekend_vol_mult
        volume_mult[weekend] *= p.weekend_volume_mult
    if scenario in ("pump5", "crash12") and window is not None:
        i0, i1 = window
        post = min(n_bars, i1 + _bars_for(p.post_event_hours * HOUR_MS, iv))
        regime = regime.copy()
        regime[i0:post] = 1 if scenario == "pump5" else 3
        volume_mult[i0:i1] *= 3.0 if scenario == "pump5" else 5.0
    if scenario == "chop":
        regime = np.zeros(n_bars, dtype=np.int8)

    drift = np.asarray(p.regime_drift)[regime]
    sigma = calm_vol * np.asarray(p.regime_vol_mult)[regime] * vol_mult  # annual, per bar
    if scenario == "chop":
        # OU on log price: x_k = a x_{k-1} + eps_k, centred on the start price
        a = float(np.exp(-np.log(2.0) * (iv / S) / (p.chop_halflife_hours * HOUR_MS)))
        eps = (sigma[:, None] * np.sqrt(dt) * z).ravel()
        x = lfilter([1.0], [1.0, -a], eps)
        inc = np.diff(np.concatenate(([0.0], x))).reshape(n_bars, S)
    else:
        inc = (drift - 0.5 * sigma**2)[:, None] * dt + sigma[:, None] * np.sqrt(dt) * z
        jumps = np.zeros((n_bars, S))
        jumps[np.arange(n_bars), jump_at] = jump_size
        if window is not None:
            jumps[window[0]:window[1]] = 0.0
        inc = inc + jumps
        if window is not None:
            i0, i1 = window
            pct = {"pump5": p.pump_pct, "crash12": p.crash_pct, "cme_gap": p.cme_gap_pct}[scenario]
            inc[i0:i1] = _bridge(inc[i0:i1], float(np.log1p(pct / 100.0)))

    logp = np.concatenate(([0.0], np.cumsum(inc.ravel())))
    pts = p0 * np.exp(logp)
    tick = 10.0 ** -price_dec
    pts = np.maximum(np.round(pts, price_dec), tick)
    body = pts[:-1].reshape(n_bars, S)
    o = body[:, 0].copy()
    c = pts[S::S].copy()
    h = np.maximum(body.max(axis=1), c)
    low = np.minimum(body.min(axis=1), c)

    bar_ret = np.abs(np.log(c / o))
    calm_bar_sigma = calm_vol * np.sqrt(iv / _YEAR_MS)
    base = vol_per_hour * iv / HOUR_MS
    volume = (
        base
        * np.asarray(p.regime_volume_mult)[regime]
        * volume_mult
        * np.exp(p.volume_sigma * vol_noise - 0.5 * p.volume_sigma**2)
        * (1.0 + p.volume_move_coeff * bar_ret / calm_bar_sigma)
    )
    volume = np.maximum(np.round(volume, qty_dec), 10.0 ** -qty_dec)
    return Bars(symbol, market, interval, open_time, o, h, low, c, volume)


def generate_funding(
    symbol: str,
    start_ms: int,
    end_ms: int,
    seed: int = 0,
    rate: Decimal = Decimal("0.0001"),
    every_h: int = 8,
) -> list[tuple[int, Decimal]]:
    """Funding settlements at multiples of ``every_h`` hours (UTC; 00:00/08:00/16:00 for 8)
    in ``[start_ms, end_ms)``: ``rate`` plus seeded noise (std half of ``|rate|``), as exact
    ``Decimal``s with 8 decimals like Binance's."""
    if every_h <= 0:
        raise ValueError("every_h must be positive")
    step = every_h * HOUR_MS
    first = start_ms + (-start_ms) % step
    times = list(range(first, end_ms, step))
    rng = np.random.default_rng(_seedseq(seed, symbol, "funding"))
    units = Decimal(rate) * 10**8
    noise = rng.standard_normal(len(times)) * float(abs(units)) * 0.5
    q = Decimal("0.00000001")
    return [
        (t, (units + int(round(float(e)))).scaleb(-8).quantize(q))
        for t, e in zip(times, noise.tolist(), strict=True)
    ]


# -- real data or synthetic ----------------------------------------------------------------------
def resolve_bars(
    symbol: str,
    market: Market | str,
    interval: str,
    start_ms: int,
    end_ms: int,
    data_dir: Path | None = None,
    seed: int = 0,
    scenario: str = "gbm",
) -> tuple[Bars, str]:
    """Real bars from the data directory, or, when there is no data directory at all, seeded
    synthetic bars (``exchange_sim.synthetic``). Returns ``(bars, note)``; ``note`` says where
    the bars came from so the caller can tell the user. Data that exists but does not cover the
    range still raises ``DataError``: it is never silently replaced."""
    d = Path(data_dir) if data_dir is not None else default_data_dir()
    if d is not None and d.is_dir():
        bars = load_klines(symbol, market, interval, start_ms, end_ms, d)
        return bars, f"real {market_of(market).value} {symbol} {interval} klines from {d}"
    ms = interval_ms_of(interval)
    n = max(0, -(-(end_ms - start_ms) // ms))
    first = start_ms + (-start_ms) % ms
    bars = generate(symbol, scenario, start_ms=first, n_bars=n, interval=interval, seed=seed,
                    market=market_of(market))
    where = "no market data directory found (set GRIDBOT_DATA or provide ../shared/data)"
    return bars, f"synthetic {scenario} {symbol} {interval} bars (seed {seed}): {where}"


__all__ = [
    "PROFILES", "REGIMES", "SCENARIOS", "SymbolProfile", "SyntheticParams", "generate",
    "generate_funding", "profile", "resolve_bars", "scenario_window",
]
