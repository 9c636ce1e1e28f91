"""Blocking Binance REST access for one gateway: the endpoints it uses, on ``VenueTransport``.

``VenueClient`` is what the gateway (``actors.gateway_ops``) calls: exchange info and filters,
orders (spot and futures, futures conditional orders on ``/fapi/v1/algoOrder``), account,
positions and trades, the reconciliation snapshot, and the user stream's listen keys and WS-API
signatures. How a request is sent — time sync, pacing by the rate limiter, 429/418 handling,
retries of idempotent reads — is ``actors.venue_rest.VenueTransport``; what a failure means
is the error class it raises (``actors.venue_errors``).

The same code serves the embedded exchange, the testnet and live: only ``VenueEndpoints``
(``actors.venue_endpoints``) and keys differ.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from actors.venue_errors import OrderNotFoundError, OrderRejectedError, UnknownOutcomeError
from actors.venue_rest import VenueTransport
from models import binance_parse as bp
from models import messages as m
from models.enums import Market, OrderType, Side, TimeInForce
from models.filters import SymbolFilters
from models.ratelimit import RateLimiter

ALGO_TYPES = frozenset({OrderType.STOP_MARKET, OrderType.TAKE_PROFIT_MARKET})
_KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY")


def fmt_dec(d: Decimal) -> str:
    """A Decimal as Binance wants it: plain notation, never an exponent."""
    return format(d, "f")


class VenueClient(VenueTransport):
    """Blocking REST access to one market (spot or USDT-M futures) of one venue.

    Constructed like ``VenueTransport`` (market, endpoints, keys and the pacing knobs); keeps
    the symbols' filters from ``exchange_info`` and which client order ids are conditional
    (algo) orders."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters: dict[str, SymbolFilters] = {}
        self._algo_cids: set[str] = set()

    # -- reference data -----------------------------------------------------------------------
    def exchange_info(self, symbol: str) -> SymbolFilters:
        """The symbol's filters; also loads the venue's rate limits into the limiter."""
        if self.market is Market.SPOT:
            info = self._request(lambda c: c._get("exchangeInfo", data={"symbol": symbol}),
                                 weight=20, idempotent=True)
        else:
            info = self._request(lambda c: c.futures_exchange_info(), weight=1,
                                 idempotent=True)
        limits = info.get("rateLimits")
        if limits:
            with self._lock:
                self.limiter.adopt(RateLimiter.from_exchange_info(limits, self._safety))
        for s in info.get("symbols", []):
            if s.get("symbol") == symbol:
                f = SymbolFilters.from_exchange_info(s)
                self.filters[symbol] = f
                return f
        raise OrderRejectedError(-1121, f"Invalid symbol {symbol!r}")

    def assets(self, symbol: str) -> tuple[str, str]:
        """(base, quote) of the symbol (from exchange_info, else a known quote suffix)."""
        f = self.filters.get(symbol)
        if f is not None:
            return f.base_asset, f.quote_asset
        for q in _KNOWN_QUOTES:
            if symbol.endswith(q) and len(symbol) > len(q):
                return symbol[: -len(q)], q
        raise ValueError(f"cannot split {symbol!r} into base/quote: load exchange_info first")

    # -- orders -------------------------------------------------------------------------------
    def place_order(self, symbol: str, client_order_id: str, side: Side, order_type: OrderType,
                    qty: Decimal, price: Decimal | None, tif: TimeInForce | None,
                    reduce_only: bool = False, stop_price: Decimal | None = None) -> dict:
        """POST a new order (spot FULL response; futures RESULT; futures STOP/TP go to
        ``/fapi/v1/algoOrder`` with ``clientAlgoId`` = our id)."""
        p: dict[str, Any] = {"symbol": symbol, "side": side.value, "type": order_type.value,
                             "quantity": fmt_dec(qty)}
        if price is not None and order_type not in (OrderType.MARKET, *ALGO_TYPES):
            p["price"] = fmt_dec(price)
        if tif is not None and order_type in (OrderType.LIMIT,):
            p["timeInForce"] = tif.value
        if stop_price is not None:
            p["stopPrice"] = fmt_dec(stop_price)
        if self.market is Market.SPOT:
            # no reduceOnly on spot: a sell can never exceed the base balance anyway
            p.update(newClientOrderId=client_order_id, newOrderRespType="FULL")
            return self._request(lambda c: c.create_order(**p), is_order=True,
                                 idempotent=False)
        if reduce_only:
            p["reduceOnly"] = "true"
        if order_type in ALGO_TYPES:
            p["clientAlgoId"] = client_order_id
            with self._lock:
                self._algo_cids.add(client_order_id)
        else:
            p.update(newClientOrderId=client_order_id, newOrderRespType="RESULT")
        return self._request(lambda c: c.futures_create_order(**p), is_order=True,
                             idempotent=False)

    def _is_algo(self, client_order_id: str) -> bool:
        with self._lock:
            return client_order_id in self._algo_cids

    def cancel_order(self, symbol: str, client_order_id: str) -> dict:
        """DELETE one order by our client order id (``OrderNotFoundError`` on -2011)."""
        if self.market is Market.SPOT:
            return self._request(lambda c: c.cancel_order(symbol=symbol,
                                                          origClientOrderId=client_order_id),
                                 idempotent=False)
        def cancel_algo() -> dict:
            return self._request(lambda c: c.futures_cancel_algo_order(
                symbol=symbol, clientAlgoId=client_order_id), idempotent=False)
        if self._is_algo(client_order_id):
            return cancel_algo()
        try:
            return self._request(lambda c: c.futures_cancel_order(
                symbol=symbol, origClientOrderId=client_order_id), idempotent=False)
        except OrderNotFoundError as first:
            # after a restart we may not remember that it was a conditional (algo) order
            try:
                res = cancel_algo()
            except OrderRejectedError:
                raise first from None
            with self._lock:
                self._algo_cids.discard(client_order_id)
            return res

    def modify_order(self, symbol: str, client_order_id: str, side: Side, qty: Decimal,
                     price: Decimal, new_client_order_id: str | None = None, *,
                     order_type: OrderType = OrderType.LIMIT,
                     tif: TimeInForce | None = TimeInForce.GTC) -> dict:
        """Futures: PUT /fapi/v1/order (same id). Spot: POST /api/v3/order/cancelReplace with
        STOP_ON_FAILURE (``new_client_order_id`` required; the new order is ``order_type``).
        A failed cancel-replace raises ``OrderRejectedError`` with the exchange's ``data``."""
        if self.market is Market.FUTURES:
            return self._request(lambda c: c.futures_modify_order(
                symbol=symbol, origClientOrderId=client_order_id, side=side.value,
                quantity=fmt_dec(qty), price=fmt_dec(price)), is_order=True, idempotent=False)
        if not new_client_order_id:
            raise ValueError("spot cancel-replace needs new_client_order_id")
        p: dict[str, Any] = {
            "symbol": symbol, "side": side.value, "type": order_type.value,
            "cancelReplaceMode": "STOP_ON_FAILURE", "cancelOrigClientOrderId": client_order_id,
            "newClientOrderId": new_client_order_id, "quantity": fmt_dec(qty),
            "price": fmt_dec(price), "newOrderRespType": "FULL"}
        if order_type is OrderType.LIMIT and tif is not None:
            p["timeInForce"] = tif.value
        return self._request(lambda c: c.cancel_replace_order(**p), is_order=True,
                             idempotent=False)

    def query_order(self, symbol: str, client_order_id: str) -> dict | None:
        """GET the order by our client order id; ``None`` when the exchange does not know it
        (-2013). Futures: falls back to the algo endpoint, and a triggered algo order is
        answered by the regular order it became."""
        try:
            if self.market is Market.SPOT:
                return self._request(lambda c: c.get_order(
                    symbol=symbol, origClientOrderId=client_order_id), weight=4, idempotent=True)
            if not self._is_algo(client_order_id):
                return self._request(lambda c: c.futures_get_order(
                    symbol=symbol, origClientOrderId=client_order_id), idempotent=True)
        except OrderNotFoundError:
            if self.market is Market.SPOT:
                return None
        try:
            algo = self._request(lambda c: c.futures_get_algo_order(
                symbol=symbol, clientAlgoId=client_order_id), idempotent=True)
        except OrderNotFoundError:
            return None
        except OrderRejectedError:
            return None  # venues without the algo service answer 4xx: nothing to find there
        with self._lock:
            self._algo_cids.add(client_order_id)
        if str(algo.get("algoStatus")) in ("TRIGGERED", "FINISHED"):
            actual = algo.get("actualOrderId")
            try:
                if actual:
                    return self._request(lambda c: c.futures_get_order(
                        symbol=symbol, orderId=int(actual)), idempotent=True)
                return self._request(lambda c: c.futures_get_order(
                    symbol=symbol, origClientOrderId=client_order_id), idempotent=True)
            except OrderNotFoundError:
                pass
        return algo

    def order_by_id(self, symbol: str, order_id: int) -> dict | None:
        """GET an order by exchange order id (None when unknown)."""
        try:
            if self.market is Market.SPOT:
                return self._request(lambda c: c.get_order(symbol=symbol, orderId=order_id),
                                     weight=4, idempotent=True)
            return self._request(lambda c: c.futures_get_order(symbol=symbol, orderId=order_id),
                                 idempotent=True)
        except OrderNotFoundError:
            return None

    def open_orders(self, symbol: str) -> list[dict]:
        """Open orders of the symbol (futures: regular and conditional/algo)."""
        if self.market is Market.SPOT:
            return self._request(lambda c: c.get_open_orders(symbol=symbol), weight=6,
                                 idempotent=True)
        rows = self._request(lambda c: c.futures_get_open_orders(symbol=symbol),
                             idempotent=True)
        try:
            algos = self._request(lambda c: c.futures_get_open_orders(symbol=symbol,
                                                                      conditional=True),
                                  idempotent=True)
        except OrderRejectedError:
            algos = []
        with self._lock:
            self._algo_cids.update(bp._cid(a) for a in algos)
        return list(rows) + list(algos)

    def cancel_all(self, symbol: str) -> None:
        """Cancel every open order of the symbol (no error when there is none)."""
        if self.market is Market.SPOT:
            try:
                self._request(lambda c: c.cancel_all_open_orders(symbol=symbol),
                              idempotent=False)
            except OrderNotFoundError:
                pass  # spot answers -2011 when nothing is open
            return
        self._request(lambda c: c.futures_cancel_all_open_orders(symbol=symbol),
                      idempotent=False)
        with self._lock:
            algos = list(self._algo_cids)
        for cid in algos:
            try:
                self._request(lambda c, cid=cid: c.futures_cancel_algo_order(
                    symbol=symbol, clientAlgoId=cid), idempotent=False)
            except OrderRejectedError:
                pass  # already finished
            with self._lock:
                self._algo_cids.discard(cid)

    # -- account ------------------------------------------------------------------------------
    def trades_since(self, symbol: str, from_id: int, max_pages: int = 20) -> list[dict]:
        """Account trades with id >= ``from_id`` (paginated, oldest first); ``from_id <= 0``:
        the most recent page (1000 trades)."""
        def page(fid: int | None) -> list[dict]:
            kw: dict[str, Any] = {"symbol": symbol, "limit": 1000}
            if fid is not None:
                kw["fromId"] = fid
            if self.market is Market.SPOT:
                return self._request(lambda c: c.get_my_trades(**kw), weight=20,
                                     idempotent=True)
            return self._request(lambda c: c.futures_account_trades(**kw), weight=5,
                                 idempotent=True)
        if from_id <= 0:
            return sorted(page(None), key=lambda t: int(t["id"]))
        out: list[dict] = []
        fid = from_id
        for _ in range(max_pages):
            rows = page(fid)
            out += rows
            if len(rows) < 1000:
                break
            fid = max(int(t["id"]) for t in rows) + 1
        return sorted({int(t["id"]): t for t in out}.values(), key=lambda t: int(t["id"]))

    def klines(self, symbol: str, interval: str, start_ms: int | None,
               end_ms: int | None = None, limit: int = 1000) -> list[list]:
        """Raw REST klines (one request; ``start_ms`` None/0: the latest ``limit``)."""
        cap = 1000 if self.market is Market.SPOT else 1500
        kw: dict[str, Any] = {"symbol": symbol, "interval": interval, "limit": min(limit, cap)}
        if start_ms:
            kw["startTime"] = int(start_ms)
        if end_ms:
            kw["endTime"] = int(end_ms)
        if self.market is Market.SPOT:
            return self._request(lambda c: c.get_klines(**kw), weight=2, idempotent=True)
        n = kw["limit"]
        w = 1 if n < 100 else 2 if n < 500 else 5 if n <= 1000 else 10
        return self._request(lambda c: c.futures_klines(**kw), weight=w, idempotent=True)

    def _spot_account(self) -> dict:
        return self._request(lambda c: c.get_account(omitZeroBalances="true"), weight=20,
                             idempotent=True)

    def _futures_account(self) -> dict:
        return self._request(lambda c: c.futures_account(), weight=5, idempotent=True)

    def position(self, symbol: str) -> dict:
        """{qty, entry_price, unrealized_pnl, mark_price} (spot: qty = base free + locked)."""
        if self.market is Market.FUTURES:
            rows = self._request(lambda c: c.futures_position_information(symbol=symbol),
                                 weight=5, idempotent=True)
            return bp.parse_futures_position(rows, symbol)
        base, _ = self.assets(symbol)
        free, locked = self.balances().get(base, (bp.ZERO, bp.ZERO))
        return {"qty": free + locked, "entry_price": bp.ZERO, "unrealized_pnl": bp.ZERO,
                "mark_price": bp.ZERO}

    def balances(self) -> dict[str, tuple[Decimal, Decimal]]:
        """{asset: (free, locked)} (futures: (available, wallet - available))."""
        if self.market is Market.SPOT:
            return bp.parse_spot_balances(self._spot_account())
        return bp.parse_futures_balances(self._futures_account())

    def wallet_balance(self, asset: str = "USDT") -> Decimal:
        """Futures: ``totalWalletBalance`` (USDT); spot: ``asset`` free + locked only."""
        if self.market is Market.FUTURES:
            acct = self._futures_account()
            if asset == "USDT":
                return bp.dec(acct.get("totalWalletBalance"))
            free, locked = bp.parse_futures_balances(acct).get(asset, (bp.ZERO, bp.ZERO))
            return free + locked
        free, locked = self.balances().get(asset, (bp.ZERO, bp.ZERO))
        return free + locked

    def futures_account(self) -> dict:
        """Raw futures GET account (wallet, assets, positions) in one request."""
        return self._futures_account()

    def spot_account(self) -> dict:
        """Raw spot GET account."""
        return self._spot_account()

    def set_leverage(self, symbol: str, lev: int) -> None:
        """Futures initial leverage of the symbol (spot: nothing to do)."""
        if self.market is Market.FUTURES:
            self._request(lambda c: c.futures_change_leverage(symbol=symbol, leverage=int(lev)),
                          idempotent=True)

    # -- reconciliation -------------------------------------------------------------------------
    def snapshot_for_reconciliation(self, symbol: str, since_trade_id: int,
                                    max_order_lookups: int = 20) -> m.ExchangeSnapshotReceived:
        """Open orders, trades after ``since_trade_id``, position and balances, parsed.

        Trade rows carry no client order id on Binance: they get it from the open orders and,
        for other orders, from up to ``max_order_lookups`` GET-order-by-id lookups (so the OMS
        can match fills of orders whose acknowledgement it never saw)."""
        ts = self.server_time_ms() * bp.NS_PER_MS
        raw_open = self.open_orders(symbol)
        open_rows = [bp.parse_open_order(o, symbol) for o in raw_open]
        raw_trades = self.trades_since(symbol, since_trade_id + 1 if since_trade_id > 0 else 0)
        if since_trade_id > 0:
            raw_trades = [t for t in raw_trades if int(t["id"]) > since_trade_id]
        cids = {r.exchange_order_id: r.client_order_id for r in open_rows}
        trades = [bp.parse_rest_trade(t, self.market) for t in raw_trades]
        for oid in sorted({t.exchange_order_id for t in trades} - set(cids))[:max_order_lookups]:
            try:
                o = self.order_by_id(symbol, oid)
            except UnknownOutcomeError:
                o = None
            if o is not None:
                cids[oid] = bp._cid(o)
        trades = [bp.with_client_id(t, cids.get(t.exchange_order_id, "")) for t in trades]
        if self.market is Market.FUTURES:
            acct = self._futures_account()
            rows = self._request(lambda c: c.futures_position_information(symbol=symbol),
                                 weight=5, idempotent=True)
            pos = bp.parse_futures_position(rows, symbol)
            bals = {a: f + lk for a, (f, lk) in bp.parse_futures_balances(acct).items()}
        else:
            sb = bp.parse_spot_balances(self._spot_account())
            base, _ = self.assets(symbol)
            free, locked = sb.get(base, (bp.ZERO, bp.ZERO))
            pos = {"qty": free + locked, "entry_price": bp.ZERO}
            bals = {a: f + lk for a, (f, lk) in sb.items()}
        return m.ExchangeSnapshotReceived(
            symbol=symbol, ts_event_ns=ts, open_orders=open_rows, trades=trades,
            position_qty=pos["qty"], entry_price=pos["entry_price"], balances=bals)

    # -- user-stream auth (called from the stream thread) ----------------------------------------
    def new_listen_key(self) -> str:
        """A user-data listen key (futures POST /fapi/v1/listenKey; spot legacy
        POST /api/v3/userDataStream where the venue still has it)."""
        if self.market is Market.FUTURES:
            return self._request(lambda c: c.futures_stream_get_listen_key(), aux=True,
                                 idempotent=True, sync=False)
        return self._request(lambda c: c.stream_get_listen_key(), weight=2, aux=True,
                             idempotent=True, sync=False)

    def keepalive_listen_key(self, key: str) -> None:
        """Extend a listen key's validity (60 min on Binance)."""
        if self.market is Market.FUTURES:
            self._request(lambda c: c.futures_stream_keepalive(key), aux=True, idempotent=True,
                          sync=False)
        else:
            self._request(lambda c: c.stream_keepalive(key), weight=2, aux=True,
                          idempotent=True, sync=False)

    def close_listen_key(self, key: str) -> None:
        """Delete a listen key (its streams close)."""
        if self.market is Market.FUTURES:
            self._request(lambda c: c.futures_stream_close(key), aux=True, idempotent=True,
                          sync=False)
        else:
            self._request(lambda c: c.stream_close(key), weight=2, aux=True, idempotent=True,
                          sync=False)

    def signed_ws_params(self, params: dict) -> dict:
        """``params`` + apiKey, server-synced timestamp and HMAC signature, as python-binance
        signs WS-API requests (spot ``userDataStream.subscribe.signature``)."""
        c = self._aux
        with self._client_locks[id(c)]:
            c.timestamp_offset = self.offset_ms
            return c._sign_ws_params(dict(params), c._generate_ws_api_signature)
