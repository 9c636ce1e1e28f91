"""Market-data events of the embedded exchange's WebSocket streams.

Stream names (``parse_stream``), whether this replay can serve one (``MarketPayloads
.stream_problem``), and the events: on each bar close the closed kline (then the new bar's
opening kline and the aggregated candles of coarser intervals so far), book ticker, depth
(partial, and diff: new levels plus removed ones at quantity 0), trade / aggTrade and mark
price; between closes the candle in progress (``current_kline``). The connections and the
fan-out are ``exchange_sim.ws``.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from exchange_sim.formats import fmt
from exchange_sim.quotes import book
from exchange_sim.replay import INTERVALS_MS, Feed, group_open, interval_problem

if TYPE_CHECKING:
    from exchange_sim.server import SimServer

KLINE_KINDS = ("kline", "continuousKline")


@functools.lru_cache(maxsize=4096)
def parse_stream(name: str) -> tuple[str, str, str] | None:
    """``btcusdt@kline_1m`` -> ("BTCUSDT", "kline", "1m"); None if not understood."""
    if "@" not in name:
        return None
    sym, rest = name.split("@", 1)
    sym = sym.upper()
    if sym.endswith("_PERPETUAL"):
        sym = sym[: -len("_PERPETUAL")]
        if rest.startswith("continuousKline_"):
            return sym, "continuousKline", rest[len("continuousKline_"):]
        return None
    base = rest.split("@", 1)[0]
    if base.startswith("kline_"):
        return sym, "kline", base[len("kline_"):]
    if base in ("bookTicker", "aggTrade", "trade", "markPrice"):
        return sym, base, ""
    if base == "depth":
        return sym, "depth", ""
    if base.startswith("depth") and base[5:].isdigit():
        return sym, "depthN", base[5:]
    return None


class MarketPayloads:
    """Builds the market events of one ``SimServer``'s streams (keeps the depth-diff state and
    the trade ids)."""

    def __init__(self, srv: SimServer) -> None:
        self.srv = srv
        self._agg_id = 1
        self._books: dict[tuple[str, str], dict[str, set[str]]] = {}

    def stream_problem(self, market: str, name: str) -> str | None:
        """Why this venue cannot serve the (well-formed) stream ``name`` on ``market`` (None:
        it can)."""
        parsed = parse_stream(name)
        if parsed is None:
            return "not a stream name this exchange knows"
        sym, kind, arg = parsed
        if kind == "continuousKline" and market != "futures":
            return "continuous klines are a futures stream"
        if kind == "markPrice" and market != "futures":
            return "mark price is a futures stream"
        f = self.srv.feeds.get((market, sym))
        if f is None:
            served = " ".join(s for m, s in self.srv.feeds if m == market)
            return f"{sym} is not replayed on {market} (symbols: {served})"
        if kind in KLINE_KINDS:
            return interval_problem(arg, f.interval_ms)
        return None

    def on_bar(self, f: Feed, i: int, parsed: tuple[str, str, str]) -> list[dict[str, Any]]:
        """The events of stream ``parsed`` (``parse_stream``) for bar ``i`` of ``f`` that just
        closed."""
        srv = self.srv
        sym, kind, arg = parsed
        now = int(f.open_time[i]) + f.interval_ms
        m = f.market
        if kind in KLINE_KINDS:
            iv_ms = INTERVALS_MS.get(arg)
            if iv_ms is None or iv_ms < f.interval_ms or iv_ms % f.interval_ms:
                return []  # refused at subscription (stream_problem)
            out = []
            g = int(group_open(int(f.open_time[i]), iv_ms))
            out.append(self.kline(f, g, iv_ms, arg, now, kind))
            if i + 1 < len(f) and int(f.open_time[i + 1]) == now \
                    and group_open(now, iv_ms) == now:
                out.append(self.kline(f, now, iv_ms, arg, now, kind))
            return out
        bids_asks = None
        if kind in ("bookTicker", "depth", "depthN"):
            bids_asks = book(f, srv.now_ms(), 1 if kind == "bookTicker" else
                             (int(arg) if arg else 20))
        if kind == "bookTicker":
            bids, asks = bids_asks  # type: ignore[misc]
            d: dict[str, Any] = {"u": srv.update_id, "s": sym,
                                 "b": bids[0][0] if bids else "0",
                                 "B": bids[0][1] if bids else "0",
                                 "a": asks[0][0], "A": asks[0][1]}
            if m == "futures":
                d = {"e": "bookTicker", **d, "T": now - 1, "E": now}
            return [d]
        if kind == "depthN":
            bids, asks = bids_asks  # type: ignore[misc]
            if m == "spot":
                return [{"lastUpdateId": srv.update_id, "bids": bids, "asks": asks}]
            return [{"e": "depthUpdate", "E": now, "T": now - 1, "s": sym,
                     "U": srv.update_id, "u": srv.update_id, "pu": srv.update_id - 1,
                     "b": bids, "a": asks}]
        if kind == "depth":
            bids, asks = bids_asks  # type: ignore[misc]
            prev = self._books.get((m, sym), {"b": set(), "a": set()})
            nb, na = {p for p, _ in bids}, {p for p, _ in asks}
            zero = fmt(Decimal(0), m)
            b = bids + [[p, zero] for p in sorted(prev["b"] - nb)]
            a = asks + [[p, zero] for p in sorted(prev["a"] - na)]
            self._books[(m, sym)] = {"b": nb, "a": na}
            d = {"e": "depthUpdate", "E": now, "s": sym, "U": srv.update_id,
                 "u": srv.update_id, "b": b, "a": a}
            if m == "futures":
                d.update({"T": now - 1, "pu": srv.update_id - 1})
            return [d]
        close = f.price(f.close[i])
        if kind in ("aggTrade", "trade"):
            self._agg_id += 1
            qty = fmt(f.filters.round_qty(Decimal(repr(float(f.volume[i])))), m)
            up = f.close[i] >= f.open[i]
            if kind == "trade":
                return [{"e": "trade", "E": now, "s": sym, "t": self._agg_id,
                         "p": fmt(close, m), "q": qty, "T": now - 1, "m": not up, "M": True}]
            d = {"e": "aggTrade", "E": now, "s": sym, "a": self._agg_id, "p": fmt(close, m),
                 "q": qty, "f": self._agg_id, "l": self._agg_id, "T": now - 1, "m": not up}
            if m == "spot":
                d["M"] = True
            return [d]
        if kind == "markPrice" and m == "futures":
            eng = srv.engines["futures"]
            mark = eng.mark_price(sym) or close
            nxt = srv.replay.next_funding(sym)
            return [{"e": "markPriceUpdate", "E": now, "s": sym, "p": fmt(mark, m),
                     "i": fmt(mark, m), "P": fmt(mark, m),
                     "r": fmt(nxt.rate if nxt else Decimal(0), m),
                     "T": nxt.ts_ms if nxt else 0}]
        return []

    def kline(self, f: Feed, g: int, iv_ms: int, iv: str, now: int, kind: str,
              row: list[Any] | None = None) -> dict[str, Any]:
        """The ``kline`` / ``continuous_kline`` event of the ``iv`` candle opening at ``g`` as
        of ``now`` (``row``: its REST kline row, when already built)."""
        r = row if row is not None else f.kline_row(g, iv_ms, now)
        if r is None:
            a = int(f.open_time.searchsorted(g, side="left"))
            p = str(f.price(f.open[min(a, len(f) - 1)]))
            r = [g, p, p, p, p, "0", g + iv_ms - 1, "0", 0, "0", "0", "0"]
        k = {"t": g, "T": g + iv_ms - 1, "s": f.symbol, "i": iv, "f": 0, "L": 0, "o": r[1],
             "c": r[4], "h": r[2], "l": r[3], "v": r[5], "n": r[8], "x": g + iv_ms <= now,
             "q": r[7], "V": r[9], "Q": r[10], "B": "0"}
        if kind == "continuousKline":
            k.pop("s")
            return {"e": "continuous_kline", "E": now, "ps": f.symbol, "ct": "PERPETUAL",
                    "k": k}
        return {"e": "kline", "E": now, "s": f.symbol, "k": k}

    def current_kline(self, market: str, name: str, now: int
                      ) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
        """(identity, payload) of the candle in progress of kline stream ``name`` (None: not a
        kline stream, or no replayed bar of the current candle has opened: a data gap, or the
        replay is over)."""
        parsed = parse_stream(name)
        if parsed is None or parsed[1] not in KLINE_KINDS:
            return None
        sym, kind, arg = parsed
        f = self.srv.feeds.get((market, sym))
        iv_ms = INTERVALS_MS.get(arg)
        if f is None or iv_ms is None or iv_ms < f.interval_ms or iv_ms % f.interval_ms:
            return None
        g = int(group_open(now, iv_ms))
        row = f.kline_row(g, iv_ms, now)
        if row is None:
            return None
        ident = (row[0], row[1], row[2], row[3], row[4], row[5])
        return ident, self.kline(f, g, iv_ms, arg, now, kind, row)
