"""Symbol specifications of the embedded exchange: filters and maintenance-margin brackets.

Filter values are Binance's real ones for BTCUSDT / ETHUSDT / SOLUSDT (as published by
``GET /api/v3/exchangeInfo`` and ``GET /fapi/v1/exchangeInfo``; min/max price and the market
max quantity drift over time on Binance, the values here are representative):

=========  =======  ==========  ========  ========  ===========  =============
market     symbol   tick        step      min qty   min notional  price / qty precision
=========  =======  ==========  ========  ========  ===========  =============
spot       BTCUSDT  0.01        0.00001   0.00001   5            2 / 5
spot       ETHUSDT  0.01        0.0001    0.0001    5            2 / 4
spot       SOLUSDT  0.01        0.001     0.001     5            2 / 3
futures    BTCUSDT  0.10        0.001     0.001     100          2 / 3
futures    ETHUSDT  0.01        0.001     0.001     20           2 / 3
futures    SOLUSDT  0.0100      1         1         5            4 / 0
=========  =======  ==========  ========  ========  ===========  =============

Maintenance-margin brackets (USDT-M, notional floor → maintenance margin rate; the maintenance
amount ``cum`` is derived so that the margin is continuous at every floor, as Binance does):

* BTCUSDT: 0 → 0.40 %, 50 k → 0.50 %, 600 k → 1 %, 3 M → 2.5 %, 12 M → 5 %, 70 M → 10 %
* ETHUSDT: 0 → 0.50 %, 10 k → 0.65 %, 100 k → 1 %, 500 k → 2 %, 1 M → 5 %, 2 M → 10 %
* SOLUSDT and anything else: 0 → 1 %, 5 k → 2.5 %, 50 k → 5 %, 250 k → 10 %, 1 M → 12.5 %
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from models.enums import Market
from models.filters import SymbolFilters

D = Decimal


def _f(symbol: str, base: str, tick: str, min_p: str, max_p: str, step: str, min_q: str,
       max_q: str, mkt_max_q: str, notional: str, pp: int, qp: int) -> SymbolFilters:
    return SymbolFilters(
        symbol=symbol, base_asset=base, quote_asset="USDT",
        tick_size=D(tick).normalize(), min_price=D(min_p), max_price=D(max_p),
        step_size=D(step).normalize(), min_qty=D(min_q), max_qty=D(max_q),
        market_step_size=D(step).normalize(), market_min_qty=D(min_q),
        market_max_qty=D(mkt_max_q), min_notional=D(notional),
        price_precision=pp, qty_precision=qp,
    )


_SPOT = (
    _f("BTCUSDT", "BTC", "0.01", "0.01", "1000000", "0.00001", "0.00001", "9000", "100", "5",
       2, 5),
    _f("ETHUSDT", "ETH", "0.01", "0.01", "1000000", "0.0001", "0.0001", "9000", "2000", "5",
       2, 4),
    _f("SOLUSDT", "SOL", "0.01", "0.01", "10000", "0.001", "0.001", "9000000", "50000", "5",
       2, 3),
)
_FUTURES = (
    _f("BTCUSDT", "BTC", "0.10", "556.80", "4529764", "0.001", "0.001", "1000", "120", "100",
       2, 3),
    _f("ETHUSDT", "ETH", "0.01", "39.86", "306177", "0.001", "0.001", "10000", "2000", "20",
       2, 3),
    _f("SOLUSDT", "SOL", "0.0100", "0.4200", "6857", "1", "1", "1000000", "5000", "5", 4, 0),
)


def default_specs(market: Market) -> dict[str, SymbolFilters]:
    """Real Binance filters of BTCUSDT, ETHUSDT and SOLUSDT on ``market``."""
    return {f.symbol: f for f in (_SPOT if market is Market.SPOT else _FUTURES)}


def _s(x: Decimal) -> str:
    """Plain (non-exponent) decimal string, as Binance prints numbers."""
    return format(x, "f")


def exchange_info_symbol(f: SymbolFilters, market: Market) -> dict[str, Any]:
    """One ``exchangeInfo['symbols']`` entry in Binance's shape for ``market``.

    ``SymbolFilters.from_exchange_info(exchange_info_symbol(f, m)) == f`` holds."""
    price = {"filterType": "PRICE_FILTER", "minPrice": _s(f.min_price),
             "maxPrice": _s(f.max_price), "tickSize": _s(f.tick_size)}
    lot = {"filterType": "LOT_SIZE", "minQty": _s(f.min_qty), "maxQty": _s(f.max_qty),
           "stepSize": _s(f.step_size)}
    mlot = {"filterType": "MARKET_LOT_SIZE", "minQty": _s(f.market_min_qty),
            "maxQty": _s(f.market_max_qty), "stepSize": _s(f.market_step_size)}
    common: dict[str, Any] = {
        "symbol": f.symbol, "status": "TRADING", "baseAsset": f.base_asset,
        "quoteAsset": f.quote_asset, "pricePrecision": f.price_precision,
        "quantityPrecision": f.qty_precision,
    }
    if market is Market.SPOT:
        return {
            **common,
            "baseAssetPrecision": 8, "quotePrecision": 8, "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8, "quoteCommissionPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
            "icebergAllowed": False, "ocoAllowed": False, "otoAllowed": False,
            "quoteOrderQtyMarketAllowed": True, "allowTrailingStop": False,
            "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False, "permissions": [], "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "NONE", "allowedSelfTradePreventionModes": ["NONE"],
            "filters": [
                price, lot, mlot,
                {"filterType": "NOTIONAL", "minNotional": _s(f.min_notional),
                 "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                 "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
            ],
        }
    return {
        **common,
        "pair": f.symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000, "marginAsset": f.quote_asset,
        "baseAssetPrecision": 8, "quotePrecision": 8, "underlyingType": "COIN",
        "underlyingSubType": [], "settlePlan": 0, "triggerProtect": "0.0500",
        "liquidationFee": "0.012500", "marketTakeBound": "0.05", "maxMoveOrderLimit": 10000,
        "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT",
                       "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET"],
        "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
        "filters": [
            price, lot, mlot,
            {"filterType": "MAX_NUM_ORDERS", "limit": 200},
            {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
            {"filterType": "MIN_NOTIONAL", "notional": _s(f.min_notional)},
            {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
             "multiplierDown": "0.9500", "multiplierDecimal": "4"},
        ],
    }


@dataclass(frozen=True)
class Bracket:
    """One maintenance-margin bracket: applies to notional in [floor, cap)."""

    floor: Decimal
    cap: Decimal
    mmr: Decimal
    cum: Decimal
    max_leverage: int


def _brackets(rows: tuple[tuple[str, str, int], ...]) -> tuple[Bracket, ...]:
    out: list[Bracket] = []
    cum = D(0)
    prev_rate = D(0)
    for i, (floor, rate, lev) in enumerate(rows):
        fl, r = D(floor), D(rate)
        cum += fl * (r - prev_rate)
        cap = D(rows[i + 1][0]) if i + 1 < len(rows) else D("1E15")
        out.append(Bracket(fl, cap, r, cum, lev))
        prev_rate = r
    return tuple(out)


_BRACKETS: dict[str, tuple[Bracket, ...]] = {
    "BTCUSDT": _brackets((("0", "0.004", 125), ("50000", "0.005", 100), ("600000", "0.01", 50),
                          ("3000000", "0.025", 20), ("12000000", "0.05", 10),
                          ("70000000", "0.1", 5))),
    "ETHUSDT": _brackets((("0", "0.005", 100), ("10000", "0.0065", 75), ("100000", "0.01", 50),
                          ("500000", "0.02", 25), ("1000000", "0.05", 10),
                          ("2000000", "0.1", 5))),
}
_DEFAULT_BRACKETS = _brackets((("0", "0.01", 75), ("5000", "0.025", 50), ("50000", "0.05", 20),
                               ("250000", "0.1", 10), ("1000000", "0.125", 5)))


def maintenance_brackets(symbol: str) -> tuple[Bracket, ...]:
    """Maintenance-margin brackets of a USDT-M symbol (a default table for unknown symbols)."""
    return _BRACKETS.get(symbol, _DEFAULT_BRACKETS)


def bracket_for(symbol: str, notional: Decimal) -> Bracket:
    """The bracket an absolute position notional falls in."""
    bs = maintenance_brackets(symbol)
    for b in bs:
        if notional < b.cap:
            return b
    return bs[-1]
