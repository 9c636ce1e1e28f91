"""Public market-data REST endpoints, spot (``/api/v3``) and futures (``/fapi/v1|v2``).

Everything is derived from the replay with no look-ahead (see ``exchange_sim.replay``); the
order book is the one synthesized around the last price (``exchange_sim.quotes``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from exchange_sim.auth import ApiError
from exchange_sim.formats import fmt, s8, sf
from exchange_sim.quotes import book, last_price
from exchange_sim.replay import INTERVALS_MS, Feed
from exchange_sim.rest import Req, RouteTable
from exchange_sim.specs import exchange_info_symbol
from models.enums import Market

if TYPE_CHECKING:
    from exchange_sim.server import SimServer

ZERO = Decimal(0)
#: This module's endpoints (the server assembles the tables).
ROUTES = RouteTable()


def feed_of(srv: SimServer, market: str, symbol: str | None) -> Feed:
    """The feed of ``symbol`` (-1121 when unknown)."""
    f = srv.feeds.get((market, (symbol or "").upper()))
    if f is None:
        raise ApiError(400, -1121, "Invalid symbol.")
    return f


def _feeds(srv: SimServer, req: Req) -> tuple[list[Feed], bool]:
    """Feeds addressed by ``symbol`` (or ``symbols`` JSON list, spot); (feeds, single)."""
    sym = req.get("symbol")
    if sym:
        return [feed_of(srv, req.market, sym)], True
    syms = req.get("symbols")
    if syms:
        try:
            names = json.loads(syms)
        except ValueError:
            raise ApiError(400, -1100, "Illegal characters found in parameter 'symbols'.") \
                from None
        return [feed_of(srv, req.market, s) for s in names], False
    return [f for (m, _), f in srv.feeds.items() if m == req.market], False


# -- general ------------------------------------------------------------------------------------
def ping(srv: SimServer, req: Req) -> dict:
    """GET ping."""
    return {}


def server_time(srv: SimServer, req: Req) -> dict:
    """GET time: sim time."""
    return {"serverTime": srv.now_ms()}


def exchange_info(srv: SimServer, req: Req) -> dict:
    """GET exchangeInfo with filters and rate limits."""
    cfg = srv.config
    mk = Market(req.market)
    syms = [exchange_info_symbol(f, mk) for f in srv.specs[req.market].values()]
    want = req.get("symbol")
    if want:
        syms = [s for s in syms if s["symbol"] == want.upper()]
        if not syms:
            raise ApiError(400, -1121, "Invalid symbol.")
    if req.market == "spot":
        limits = [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
             "limit": cfg.spot_weight_per_min},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
             "limit": cfg.spot_orders_per_10s},
            {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
             "limit": cfg.spot_orders_per_day},
            {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
             "limit": 61000},
        ]
        return {"timezone": "UTC", "serverTime": srv.now_ms(), "rateLimits": limits,
                "exchangeFilters": [], "symbols": syms}
    limits = [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
         "limit": cfg.futures_weight_per_min},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1,
         "limit": cfg.futures_orders_per_min},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
         "limit": cfg.futures_orders_per_10s},
    ]
    return {"timezone": "UTC", "serverTime": srv.now_ms(), "futuresType": "U_MARGINED",
            "rateLimits": limits, "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": syms}


def klines(srv: SimServer, req: Req) -> list:
    """GET klines (and uiKlines / continuousKlines / markPriceKlines)."""
    sym = req.get("symbol") or req.get("pair")
    f = feed_of(srv, req.market, sym)
    iv = req.req("interval")
    iv_ms = INTERVALS_MS.get(iv)
    if iv_ms is None or iv_ms < f.interval_ms or iv_ms % f.interval_ms:
        raise ApiError(400, -1120, "Invalid interval.")
    cap = 1000 if req.market == "spot" else 1500
    limit = req.int_("limit", 500) or 500
    if limit <= 0 or limit > cap:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    rows = f.klines(iv_ms, srv.now_ms(), req.int_("startTime"), req.int_("endTime"), limit)
    if req.path == "markPriceKlines":
        rows = [r[:5] + ["0", r[6], "0", 0, "0", "0", "0"] for r in rows]
    return rows


def kline_weight(req: Req) -> int:
    """Binance's limit-dependent kline weight."""
    n = int(req.params.get("limit") or 500)
    if req.market == "spot":
        return 2
    return 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10


def depth(srv: SimServer, req: Req) -> dict:
    """GET depth (synthetic book)."""
    f = feed_of(srv, req.market, req.req("symbol"))
    limit = req.int_("limit", 100) or 100
    if limit <= 0 or limit > 5000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    bids, asks = book(f, srv.now_ms(), min(limit, 100))
    d: dict[str, Any] = {"lastUpdateId": srv.update_id}
    if req.market == "futures":
        d.update({"E": srv.now_ms(), "T": srv.now_ms()})
    d.update({"bids": bids, "asks": asks})
    return d


def depth_weight(req: Req) -> int:
    """Binance's limit-dependent depth weight."""
    n = int(req.params.get("limit") or 100)
    if req.market == "spot":
        return 5 if n <= 100 else 25 if n <= 500 else 50 if n <= 1000 else 250
    return 2 if n <= 50 else 5 if n <= 100 else 10 if n <= 500 else 20


def _one_or_list(rows: list[dict], single: bool) -> Any:
    return rows[0] if single else rows


def ticker_price(srv: SimServer, req: Req) -> Any:
    """GET ticker/price."""
    feeds, single = _feeds(srv, req)
    rows = []
    for f in feeds:
        r: dict[str, Any] = {"symbol": f.symbol, "price": fmt(last_price(f, srv.now_ms()), req.market)}
        if req.market == "futures":
            r["time"] = srv.now_ms()
        rows.append(r)
    return _one_or_list(rows, single)


def book_ticker(srv: SimServer, req: Req) -> Any:
    """GET ticker/bookTicker."""
    feeds, single = _feeds(srv, req)
    rows = []
    for f in feeds:
        bids, asks = book(f, srv.now_ms(), 1)
        r: dict[str, Any] = {"symbol": f.symbol, "bidPrice": bids[0][0] if bids else "0",
                             "bidQty": bids[0][1] if bids else "0", "askPrice": asks[0][0],
                             "askQty": asks[0][1]}
        if req.market == "futures":
            r.update({"time": srv.now_ms(), "lastUpdateId": srv.update_id})
        rows.append(r)
    return _one_or_list(rows, single)


def ticker_24hr(srv: SimServer, req: Req) -> Any:
    """GET ticker/24hr over the last 24 h of visible bars (cheap version)."""
    feeds, single = _feeds(srv, req)
    now = srv.now_ms()
    rows = []
    for f in feeds:
        ks = f.klines(f.interval_ms, now, now - 86_400_000, None, 100000)
        last = last_price(f, srv.now_ms())
        if ks:
            o = Decimal(ks[0][1])
            h = max(Decimal(k[2]) for k in ks)
            lo = min(Decimal(k[3]) for k in ks)
            v = sum((Decimal(k[5]) for k in ks), ZERO)
            qv = sum((Decimal(k[7]) for k in ks), ZERO)
            t0 = ks[0][0]
        else:
            o = h = lo = last
            v = qv = ZERO
            t0 = now
        m = req.market
        chg = last - o
        pct = (chg / o * 100).quantize(Decimal("0.001")) if o else ZERO
        r: dict[str, Any] = {
            "symbol": f.symbol, "priceChange": fmt(chg, m), "priceChangePercent": str(pct),
            "weightedAvgPrice": fmt((qv / v) if v else last, m), "lastPrice": fmt(last, m),
            "lastQty": fmt(ZERO, m), "openPrice": fmt(o, m), "highPrice": fmt(h, m),
            "lowPrice": fmt(lo, m), "volume": fmt(v, m), "quoteVolume": fmt(qv, m),
            "openTime": t0, "closeTime": now, "firstId": 0, "lastId": 0, "count": 0,
        }
        if m == "spot":
            bids, asks = book(f, srv.now_ms(), 1)
            r.update({"prevClosePrice": s8(o), "bidPrice": bids[0][0] if bids else s8(ZERO),
                      "bidQty": bids[0][1] if bids else s8(ZERO), "askPrice": asks[0][0],
                      "askQty": asks[0][1]})
        rows.append(r)
    return _one_or_list(rows, single)


def avg_price(srv: SimServer, req: Req) -> dict:
    """GET avgPrice (spot): mean close of the last 5 visible minutes of bars."""
    f = feed_of(srv, req.market, req.req("symbol"))
    return {"mins": 5, "price": s8(last_price(f, srv.now_ms())), "closeTime": srv.now_ms()}


for _m in ("spot", "futures"):
    ROUTES.route("GET", _m, "ping")(ping)
    ROUTES.route("GET", _m, "time")(server_time)
    ROUTES.route("GET", _m, "exchangeInfo", weight=20 if _m == "spot" else 1)(exchange_info)
    ROUTES.route("GET", _m, "klines", weight=kline_weight)(klines)
    ROUTES.route("GET", _m, "depth", weight=depth_weight)(depth)
    ROUTES.route("GET", _m, "ticker/price", weight=2 if _m == "spot" else 1)(ticker_price)
    ROUTES.route("GET", _m, "ticker/bookTicker", weight=2)(book_ticker)
    ROUTES.route("GET", _m, "ticker/24hr", weight=2 if _m == "spot" else 1)(ticker_24hr)
ROUTES.route("GET", "spot", "uiKlines", weight=2)(klines)
ROUTES.route("GET", "spot", "avgPrice", weight=2)(avg_price)
ROUTES.route("GET", "futures", "continuousKlines", weight=kline_weight)(klines)
ROUTES.route("GET", "futures", "markPriceKlines", weight=kline_weight)(klines)
ROUTES.route("GET", "futures", "indexPriceKlines", weight=kline_weight)(klines)


# -- futures-only ---------------------------------------------------------------------------------
@ROUTES.route("GET", "futures", "premiumIndex")
def premium_index(srv: SimServer, req: Req) -> Any:
    """GET premiumIndex: mark = index = last close (no basis modelled)."""
    feeds, single = _feeds(srv, req)
    rows = []
    for f in feeds:
        eng = srv.engines["futures"]
        mark = eng.mark_price(f.symbol) or last_price(f, srv.now_ms())
        last = srv.replay.last_funding.get(f.symbol)
        nxt = srv.replay.next_funding(f.symbol)
        rows.append({
            "symbol": f.symbol, "markPrice": sf(mark), "indexPrice": sf(mark),
            "estimatedSettlePrice": sf(mark),
            "lastFundingRate": sf(nxt.rate if nxt else (last.rate if last else ZERO)),
            "interestRate": "0.00010000", "nextFundingTime": nxt.ts_ms if nxt else 0,
            "time": srv.now_ms(),
        })
    return _one_or_list(rows, single)


@ROUTES.route("GET", "futures", "fundingRate")
def funding_rate(srv: SimServer, req: Req) -> list:
    """GET fundingRate history up to now."""
    sym = (req.get("symbol") or "").upper()
    start, end = req.int_("startTime"), req.int_("endTime")
    limit = req.int_("limit", 100) or 100
    if limit <= 0 or limit > 1000:
        raise ApiError(400, -1130, "Invalid data sent for a parameter.")
    past = srv.replay.funding[: srv.replay.funding_idx]
    rows = [e for e in past if (not sym or e.symbol == sym)
            and (start is None or e.ts_ms >= start) and (end is None or e.ts_ms <= end)]
    rows = rows[:limit] if start is not None else rows[-limit:]
    out = []
    for e in rows:
        f = srv.feeds.get(("futures", e.symbol))
        mark = ""
        if f is not None:
            i = int(f.open_time.searchsorted(e.ts_ms, side="right")) - 1
            if i >= 0:
                mark = sf(f.price(f.close[max(0, i - 1)] if i > 0 else f.open[i]))
        out.append({"symbol": e.symbol, "fundingRate": sf(e.rate), "fundingTime": e.ts_ms,
                    "markPrice": mark})
    return out


@ROUTES.route("GET", "futures", "fundingInfo")
def funding_info(srv: SimServer, req: Req) -> list:
    """GET fundingInfo."""
    return [{"symbol": s, "adjustedFundingRateCap": "0.03000000",
             "adjustedFundingRateFloor": "-0.03000000",
             "fundingIntervalHours": srv.config.funding_interval_h, "disclaimer": False}
            for s in srv.config.symbols]
