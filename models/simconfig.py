"""Configuration of the embedded Binance-compatible exchange (``SimConfig``).

Every field has a default so that ``SimConfig()`` starts a working venue. The bot's main
configuration embeds this struct as its ``sim`` section; ``replay_for_bot`` says what an
exchange must replay for a bot config.
"""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Literal

import msgspec


def _derive(seed: str, n: int) -> str:
    """A deterministic, obviously-fake key: hex of a SHA-256 chain, ``n`` characters."""
    out = ""
    h = seed.encode()
    while len(out) < n:
        h = hashlib.sha256(h).digest()
        out += h.hex()
    return out[:n]


#: Default sim API key and secret: deterministic, never valid on any real venue.
DEFAULT_API_KEY = "sim" + _derive("gridbot-sim-key", 61)
DEFAULT_API_SECRET = "sim" + _derive("gridbot-sim-secret", 61)


class SimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings of the embedded exchange. Money fields are exact ``Decimal``s."""

    # -- network ------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    """Bind address; anything but loopback is logged as a warning (the admin API is open)."""
    port: int = 0
    """TCP port; 0 picks a free one (the URLs line tells which)."""

    # -- accounts -----------------------------------------------------------------------------
    api_key: str = DEFAULT_API_KEY
    api_secret: str = DEFAULT_API_SECRET
    extra_keys: dict[str, str] = {}
    """More accounts: api key -> secret (each key is its own account on both markets)."""
    spot_balances: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"USDT": Decimal("10000")}
    )
    """Initial spot balances of every account (base assets start at 0)."""
    futures_balances: dict[str, Decimal] = msgspec.field(
        default_factory=lambda: {"USDT": Decimal("10000")}
    )
    """Initial USDT-M futures wallet of every account."""

    # -- fees and fills -----------------------------------------------------------------------
    spot_maker_fee: Decimal = Decimal("0.001")
    spot_taker_fee: Decimal = Decimal("0.001")
    futures_maker_fee: Decimal = Decimal("0.0002")
    futures_taker_fee: Decimal = Decimal("0.0005")
    bnb_discount: bool = False
    fill_on_touch: bool = False
    """False: a resting limit fills only when the bar trades through its price (pessimistic)."""
    max_volume_share: float | None = 0.1
    """Largest share of a bar's volume one order may take (None: unlimited)."""
    market_slippage_bps: Decimal = Decimal("1")

    # -- replay -------------------------------------------------------------------------------
    data_dir: str | None = None
    """Kline directory (layout of /work/shared/data); None: marketdata.default_data_dir()."""
    data_file: str | None = None
    """One kline CSV(.gz) to replay instead of a directory (single symbol)."""
    scenario: str | None = None
    """Synthetic scenario name (exchange_sim.synthetic.SCENARIOS) instead of real data."""
    symbols: tuple[str, ...] = ("BTCUSDT",)
    market: Literal["spot", "futures", "both"] = "both"
    interval: str = "5m"
    """Replay bar interval; REST klines may ask for whole multiples of it."""
    start: str | None = None
    """Sim start (ISO date/time or epoch ms); None: first common bar + ``warmup_bars``."""
    warmup_bars: int = 500
    """Bars before the start that are already history (served by REST klines)."""
    synthetic_bars: int = 20000
    seed: int = 0
    speed: float | Literal["max"] = 60.0
    """Sim seconds per wall second; 0 = paused (advance via POST /_sim/advance); "max"."""
    funding_rate_default: Decimal = Decimal("0.0001")
    """Funding rate applied every ``funding_interval_h`` when no funding data is loaded."""
    funding_interval_h: int = 8

    # -- guards -------------------------------------------------------------------------------
    spot_weight_per_min: int = 6000
    futures_weight_per_min: int = 2400
    spot_orders_per_10s: int = 100
    spot_orders_per_day: int = 200000
    futures_orders_per_10s: int = 300
    futures_orders_per_min: int = 1200
    ban_after_429: int = 5
    """Requests answered 429 in a row (same limiter window) before the IP is banned (418)."""
    ban_seconds: float = 120.0
    max_recv_window_ms: int = 60000
    ws_max_age_s: float = 86400.0
    """WebSocket connections are closed after this age (Binance: 24 h)."""
    listen_key_validity_s: float = 3600.0
    ws_ping_interval_s: float = 20.0
    state_file: str | None = None
    """Persist accounts, orders and clock here (periodically and at exit)."""
    state_save_interval_s: float = 30.0

    def accounts(self) -> dict[str, str]:
        """All api key -> secret pairs."""
        return {self.api_key: self.api_secret, **self.extra_keys}

    def markets(self) -> tuple[str, ...]:
        """The markets served: ('spot',), ('futures',) or both."""
        return ("spot", "futures") if self.market == "both" else (self.market,)
