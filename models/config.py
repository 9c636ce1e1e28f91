"""Configuration schema (msgspec Structs, unknown keys forbidden) and semantic validation.

``parse_config(bytes)`` returns the typed config or *every* error it can find, each as
``"$.json.path: message"``, in one pass: structs are decoded field by field (msgspec stops at
the first error inside one struct), so every type error and unknown key of every section is
reported; a field that does not decode takes its default for the semantic rules, which then
run on the whole config. A semantic error that involves a rejected field is left out (its path
is at or below that field, or its message names it: a rule comparing two fields names the
other one, ``"must be < ema_slow"``), so no message is about a value the file does not hold.
Reading files and environment variables happens in ``infra.config_io``; this module
stays pure.

API keys are never part of the config: they come from ``BINANCE_API_KEY`` /
``BINANCE_API_SECRET`` only (the ``sim`` section holds the embedded exchange's own fake keys).
"""

from __future__ import annotations

import enum
import math
import re
from typing import Any, Literal, get_args, get_origin

import msgspec

from models.enums import Market, Venue
from models.risk import RiskParams
from models.simconfig import SimConfig
from models.strategy.params import StrategyParams
from models.timeframes import INTERVAL_MS

#: Symbols the embedded exchange lists with real filters (any USDT pair is allowed on live/testnet).
SIM_SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
#: A USDT-quoted symbol as Binance spells it.
SYMBOL_RE = re.compile(r"^[A-Z0-9]{2,20}USDT\Z")
_STRUCT = {"frozen": True, "kw_only": True, "forbid_unknown_fields": True}


class PortfolioConfig(msgspec.Struct, **_STRUCT):
    """Portfolio level (plan: Key Configuration Parameters)."""

    leverage_cap: float = 6.0
    utilization: float = 0.3
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    weights: dict[str, float] = msgspec.field(
        default_factory=lambda: {"BTCUSDT": 0.45, "ETHUSDT": 0.35, "SOLUSDT": 0.20})
    markets: dict[str, Market] = msgspec.field(
        default_factory=lambda: {"BTCUSDT": Market.FUTURES, "ETHUSDT": Market.FUTURES,
                                 "SOLUSDT": Market.FUTURES})
    quote_asset: str = "USDT"

    def market_of(self, symbol: str) -> Market:
        """The market a symbol trades on."""
        return self.markets[symbol]




def base_interval(cfg: Config) -> tuple[str, int]:
    """The strategy's base bar: (interval, milliseconds)."""
    iv = cfg.gateway.kline_intervals[0]
    return iv, INTERVAL_MS[iv]


class GatewayConfig(msgspec.Struct, **_STRUCT):
    """Exchange connectivity."""

    recv_window_ms: int = 5000
    request_timeout_s: float = 10.0
    time_sync_interval_s: float = 300.0
    heartbeat_timeout_s: float = 30.0
    reconnect_backoff_initial_s: float = 0.2
    reconnect_backoff_max_s: float = 30.0
    rate_limit_safety: float = 0.8
    book_conflation_ms: int = 250
    #: Events are held this long and released in one order per instant (fills before market
    #: data), so the bot does not depend on which socket won a race (0 = no hold).
    event_reorder_ms: int = 50
    #: Kline streams; the first is the strategy's base bar (the embedded exchange replays it).
    #: 5m by default: the recorded futures data has no 1m bars.
    kline_intervals: tuple[str, ...] = ("5m",)
    testnet_urls: dict[str, str] = {}


class OmsConfig(msgspec.Struct, **_STRUCT):
    """Order management."""

    client_id_prefix: str = "gb"
    unknown_open_orders: Literal["adopt", "cancel"] = "cancel"
    query_unknown_after_s: float = 2.0


class SupervisionConfig(msgspec.Struct, **_STRUCT):
    """Supervision trees, heartbeats, shutdown."""

    max_restarts: int = 5
    restart_window_s: float = 60.0
    restart_backoff_s: float = 0.5
    heartbeat_interval_s: float = 2.0
    heartbeat_timeout_s: float = 10.0
    status_interval_s: float = 60.0
    shutdown_mode: Literal["flatten", "cancel-only", "leave"] = "flatten"
    #: what happens to a symbol that exhausts its restarts: its open orders are always
    #: cancelled; ``flatten`` also closes its futures position, ``leave`` keeps it
    give_up_mode: Literal["flatten", "leave"] = "flatten"
    shutdown_timeout_s: float = 30.0
    admin_port: int = 0
    bind_host: str = "127.0.0.1"
    allow_remote: bool = False


class LoggingConfig(msgspec.Struct, **_STRUCT):
    """Logs."""

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    rotation: str = "100 MB"
    retention: int = 10


class Config(msgspec.Struct, **_STRUCT):
    """The whole bot configuration (``conf/default.json``)."""

    venue: Venue = Venue.SIM
    state_dir: str = "state"
    log_dir: str = "logs"
    portfolio: PortfolioConfig = msgspec.field(default_factory=PortfolioConfig)
    strategy: StrategyParams = msgspec.field(default_factory=StrategyParams)
    risk: RiskParams = msgspec.field(default_factory=RiskParams)
    gateway: GatewayConfig = msgspec.field(default_factory=GatewayConfig)
    oms: OmsConfig = msgspec.field(default_factory=OmsConfig)
    supervision: SupervisionConfig = msgspec.field(default_factory=SupervisionConfig)
    logging: LoggingConfig = msgspec.field(default_factory=LoggingConfig)
    sim: SimConfig = msgspec.field(default_factory=SimConfig)


SECTIONS: dict[str, type] = {f.name: f.type for f in msgspec.structs.fields(Config)}


class ConfigError(ValueError):
    """A config failed validation; ``errors`` lists every problem with its JSON path."""

    def __init__(self, errors: list[str], source: str = "config") -> None:
        super().__init__(f"{source}: invalid configuration:\n  " + "\n  ".join(errors))
        self.errors = errors


_AT_RE = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.S)
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<field>[^`]*)`$")


def _format_validation(err: msgspec.ValidationError, base: str) -> str:
    m = _AT_RE.match(str(err))
    msg, path = (m.group("msg"), m.group("path")) if m else (str(err), None)
    path = base + (path[1:] if path else "")
    u = _UNKNOWN_RE.match(msg)
    if u:
        return f"{path}.{u.group('field')}: unknown key"
    return f"{path}: {msg[0].lower() + msg[1:] if msg else msg}"


def _is_finite(x: float) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def validate_portfolio(p: PortfolioConfig, venue: Venue, path: str = "$.portfolio") -> list[str]:
    """Semantic rules of the portfolio section."""
    errs: list[str] = []
    if not _is_finite(p.leverage_cap) or p.leverage_cap <= 0:
        errs.append(f"{path}.leverage_cap: must be > 0")
    elif p.leverage_cap > 125:
        errs.append(f"{path}.leverage_cap: must be <= 125 (Binance maximum)")
    if not _is_finite(p.utilization) or not 0 < p.utilization <= 1:
        errs.append(f"{path}.utilization: must be in (0, 1]")
    if not p.symbols:
        errs.append(f"{path}.symbols: at least one symbol is required")
    if len(set(p.symbols)) != len(p.symbols):
        errs.append(f"{path}.symbols: duplicate symbols")
    for i, s in enumerate(p.symbols):
        if not SYMBOL_RE.match(s):
            errs.append(f"{path}.symbols[{i}]: {s!r} is not a USDT symbol like 'BTCUSDT'")
        elif venue is Venue.SIM and s not in SIM_SYMBOLS:
            errs.append(f"{path}.symbols[{i}]: {s!r} is not listed on the embedded exchange "
                        f"(venue 'sim' lists {', '.join(SIM_SYMBOLS)})")
        if s not in p.weights:
            errs.append(f"{path}.weights: missing weight for {s} (listed in symbols)")
        if s not in p.markets:
            errs.append(f"{path}.markets: missing market for {s} (listed in symbols)")
    for s, w in p.weights.items():
        if s not in p.symbols:
            errs.append(f"{path}.weights.{s}: not in symbols")
        elif not _is_finite(w) or not 0 < w <= 1:
            errs.append(f"{path}.weights.{s}: must be in (0, 1]")
    for s in p.markets:
        if s not in p.symbols:
            errs.append(f"{path}.markets.{s}: not in symbols")
    total = sum(w for w in p.weights.values() if _is_finite(w))
    if p.weights and abs(total - 1.0) > 1e-9:
        errs.append(f"{path}.weights: must sum to 1 (sum is {total:.6g})")
    if p.quote_asset != "USDT":
        errs.append(f"{path}.quote_asset: only USDT-quoted trading is supported")
    return errs


def _positive(obj: Any, path: str, names: tuple[str, ...]) -> list[str]:
    return [f"{path}.{n}: must be > 0" for n in names
            if not _is_finite(getattr(obj, n)) or getattr(obj, n) <= 0]


def validate_sim(sim: SimConfig, venue: Venue, path: str = "$.sim") -> list[str]:
    """The embedded exchange's settings as the bot uses them (``venue: sim``)."""
    errs: list[str] = []
    sp = sim.speed
    if venue is Venue.SIM:
        if sp == "max" or not _is_finite(sp) or sp <= 0:
            errs.append(f"{path}.speed: {sp!r}: the bot's embedded exchange needs a finite speed "
                        "> 0 (sim seconds per wall second; 'max' and 0 are for the standalone "
                        "sim)")
    elif sp != "max" and (not _is_finite(sp) or sp < 0):
        errs.append(f"{path}.speed: must be >= 0 or 'max'")
    for n in ("spot_maker_fee", "spot_taker_fee", "futures_maker_fee", "futures_taker_fee"):
        v = getattr(sim, n)
        if not v.is_finite() or not 0 <= v < 1:
            errs.append(f"{path}.{n}: must be in [0, 1) (a fraction: 0.0002 = 0.02 %)")
    bps = sim.market_slippage_bps
    if not bps.is_finite() or not 0 <= bps <= 1000:
        errs.append(f"{path}.market_slippage_bps: must be in [0, 1000]")
    for n in ("spot_balances", "futures_balances"):
        for asset, amt in getattr(sim, n).items():
            if not amt.is_finite() or amt < 0:
                errs.append(f"{path}.{n}.{asset}: must be >= 0")
    if not 0 <= sim.port <= 65535:
        errs.append(f"{path}.port: must be in [0, 65535]")
    if sim.max_volume_share is not None and not 0 < sim.max_volume_share <= 1:
        errs.append(f"{path}.max_volume_share: must be in (0, 1] or null")
    return errs


def validate_config(cfg: Config) -> list[str]:
    """Every semantic error of a typed config."""
    errs = validate_portfolio(cfg.portfolio, cfg.venue)
    errs += validate_sim(cfg.sim, cfg.venue)
    errs += cfg.strategy.validate("$.strategy")
    errs += cfg.risk.validate("$.risk")
    g = cfg.gateway
    errs += _positive(g, "$.gateway", ("recv_window_ms", "request_timeout_s",
                                       "time_sync_interval_s", "heartbeat_timeout_s",
                                       "reconnect_backoff_initial_s", "reconnect_backoff_max_s"))
    if g.recv_window_ms > 60000:
        errs.append("$.gateway.recv_window_ms: must be <= 60000 (Binance maximum)")
    if g.reconnect_backoff_initial_s > g.reconnect_backoff_max_s:
        errs.append("$.gateway.reconnect_backoff_initial_s: must not exceed "
                    "reconnect_backoff_max_s")
    if g.book_conflation_ms < 0:
        errs.append("$.gateway.book_conflation_ms: must be >= 0")
    if g.kline_intervals and g.kline_intervals[0] in INTERVAL_MS:
        base_min = INTERVAL_MS[g.kline_intervals[0]] // 60_000
        st = cfg.strategy
        for name in ("trend_interval_minutes", "warmup_minutes", "rv_short_minutes",
                     "rv_long_minutes", "volume_window_minutes", "normalisation_window_minutes"):
            v = getattr(st, name)
            if isinstance(v, int) and v % base_min:
                errs.append(f"$.strategy.{name}: must be a multiple of the base bar "
                            f"($.gateway.kline_intervals[0] = {g.kline_intervals[0]} = "
                            f"{base_min} min)")
    if not 0 <= g.event_reorder_ms <= 1000:
        errs.append("$.gateway.event_reorder_ms: must be in [0, 1000]")
    if not g.kline_intervals:
        errs.append("$.gateway.kline_intervals: at least one interval (the strategy's base bar)")
    for i, iv in enumerate(g.kline_intervals):
        if iv not in INTERVAL_MS:
            errs.append(f"$.gateway.kline_intervals[{i}]: {iv!r} is not a Binance kline interval "
                        f"({', '.join(INTERVAL_MS)})")
    if not 0 < g.rate_limit_safety <= 1:
        errs.append("$.gateway.rate_limit_safety: must be in (0, 1]")
    if not re.fullmatch(r"[A-Za-z0-9]{1,6}", cfg.oms.client_id_prefix):
        errs.append("$.oms.client_id_prefix: 1-6 letters or digits")
    s = cfg.supervision
    if s.max_restarts < 0:
        errs.append("$.supervision.max_restarts: must be >= 0")
    errs += _positive(s, "$.supervision", ("restart_window_s", "heartbeat_interval_s",
                                           "heartbeat_timeout_s", "status_interval_s",
                                           "shutdown_timeout_s"))
    if s.heartbeat_timeout_s <= s.heartbeat_interval_s:
        errs.append("$.supervision.heartbeat_timeout_s: must exceed heartbeat_interval_s")
    if s.bind_host in ("0.0.0.0", "", "::", "*"):
        errs.append(f"$.supervision.bind_host: {s.bind_host!r} binds every interface; name the "
                    "one private address to bind (allow_remote never allows a wildcard)")
    elif s.bind_host not in ("127.0.0.1", "localhost", "::1") and not s.allow_remote:
        errs.append("$.supervision.bind_host: binding beyond loopback exposes the actor system "
                    "(it unpickles what it receives); set allow_remote=true only on a private, "
                    "firewalled network")
    if cfg.oms.query_unknown_after_s <= 0:
        errs.append("$.oms.query_unknown_after_s: must be > 0")
    if s.restart_backoff_s < 0:
        errs.append("$.supervision.restart_backoff_s: must be >= 0")
    if not 0 <= s.admin_port <= 65535:
        errs.append("$.supervision.admin_port: must be a TCP port (0 = any free one)")
    if cfg.logging.retention < 1:
        errs.append("$.logging.retention: must be >= 1")
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB)", cfg.logging.rotation.strip(), re.I):
        errs.append("$.logging.rotation: a size like '100 MB'")
    if not cfg.state_dir:
        errs.append("$.state_dir: must not be empty")
    if not cfg.log_dir:
        errs.append("$.log_dir: must not be empty")
    return errs


def _is_struct(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, msgspec.Struct)


def _decode_struct(value: Any, typ: type, path: str, errors: list[str], failed: list[str],
                   *, top: bool = False) -> Any:
    """``value`` as a ``typ`` Struct, field by field. Every type error and unknown key goes to
    ``errors``; a field that does not decode keeps its default and its path goes to ``failed``.
    Returns None only when ``value`` is not an object at all."""
    if not isinstance(value, dict):
        try:
            return msgspec.convert(value, typ, strict=True)  # raises "Expected `object`..."
        except msgspec.ValidationError as e:
            errors.append(_format_validation(e, path))
            failed.append(path)
            return None
    fields = {f.encode_name: f for f in msgspec.structs.fields(typ)}
    kwargs: dict[str, Any] = {}
    for key, v in value.items():
        f = fields.get(key)
        if f is None:
            if not (top and key.startswith("_")):  # top-level "_comment" keys are ignored
                errors.append(f"{path}.{key}: unknown key")
            continue
        fpath = f"{path}.{key}"
        if _is_struct(f.type):
            sub = _decode_struct(v, f.type, fpath, errors, failed)
            if sub is not None:
                kwargs[f.name] = sub
            continue
        try:
            kwargs[f.name] = msgspec.convert(v, f.type, strict=True)
        except msgspec.ValidationError as e:
            errors += _field_errors(e, v, f.type, fpath)
            failed.append(fpath)
    return typ(**kwargs)


def _field_errors(e: msgspec.ValidationError, value: Any, t: Any, path: str) -> list[str]:
    """The errors of one field that did not convert: per key for a dict (msgspec says only
    ``[...]``), with the allowed values of an enum."""
    if get_origin(t) is dict and isinstance(value, dict):
        vt = get_args(t)[1]
        out: list[str] = []
        for k, x in value.items():
            try:
                msgspec.convert(x, vt, strict=True)
            except msgspec.ValidationError as ex:
                out += _field_errors(ex, x, vt, f"{path}.{k}")
        if out:
            return out
    err = _format_validation(e, path)
    choices = _choices(t)
    if choices and "invalid enum value" in err:
        err += f" (one of: {', '.join(choices)})"
    return [err]


def _choices(t: Any) -> list[str]:
    """The allowed values of an Enum or Literal type (or of one inside a container)."""
    if isinstance(t, type) and issubclass(t, enum.Enum):
        return [str(m.value) for m in t]
    if get_origin(t) is Literal:
        return [str(a) for a in get_args(t)]
    for a in get_args(t):
        found = _choices(a)
        if found:
            return found
    return []


_WORD = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"


def _involves(err: str, field_path: str) -> bool:
    """Whether semantic error ``err`` is about (or compares against) the field at
    ``field_path``: its path is at or below it, or its message names it (by full path, or by
    bare name inside the same struct)."""
    path, _, msg = err.partition(": ")
    if path == field_path or path.startswith((field_path + ".", field_path + "[")):
        return True
    if field_path in msg:
        return True
    parent, _, leaf = field_path.rpartition(".")
    return (path.startswith(parent + ".")
            and re.search(_WORD.format(re.escape(leaf)), msg) is not None)


def parse_config(data: bytes | str) -> tuple[Config | None, list[str]]:
    """Decode and validate. Returns ``(config, [])`` or ``(None, errors)`` with every type
    error, unknown key and semantic error (see the module docstring)."""
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        return None, [f"$: invalid JSON: {e}"]
    if not isinstance(raw, dict):
        return None, ["$: must be a JSON object"]
    errors: list[str] = []
    failed: list[str] = []
    cfg = _decode_struct(raw, Config, "$", errors, failed, top=True)
    errors += [e for e in validate_config(cfg) if not any(_involves(e, f) for f in failed)]
    return (None, errors) if errors else (cfg, [])


def config_to_json(cfg: Config) -> bytes:
    """Canonical JSON of a config (what actors receive in ``StartActor``)."""
    return msgspec.json.encode(cfg)


def config_from_json(data: bytes) -> Config:
    """Inverse of ``config_to_json`` for an already-validated config."""
    return msgspec.json.decode(data, type=Config)


def replay_for_bot(cfg: Config) -> dict[str, Any]:
    """What an exchange must replay for this bot: ``SimConfig`` fields ``symbols``, ``market``
    (the portfolio's; "both" when it mixes them), ``interval`` (the strategy's base bar) and
    ``warmup_bars`` (enough history before the start for the strategy's warm-up)."""
    pf = cfg.portfolio
    markets = {pf.market_of(s).value for s in pf.symbols}
    market = markets.pop() if len(markets) == 1 else "both"
    interval, iv_ms = base_interval(cfg)
    warmup_bars = max(cfg.sim.warmup_bars, cfg.strategy.history_bars(iv_ms) + 50)
    return {"symbols": list(pf.symbols), "market": market, "interval": interval,
            "warmup_bars": warmup_bars}
