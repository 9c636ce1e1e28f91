"""WS JSON -> typed messages, on payloads shaped as Binance documents them (spot and futures)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from models import messages as m
from models.enums import Market, Side
from models.stream_parse import (
    KlineOpen,
    StreamEnded,
    funding_id,
    parse_account_update,
    parse_market,
    parse_user,
    unwrap,
)

SYM = "BTCUSDT"
RECV = 123_000_000


def kline(closed: bool, *, e: str = "kline", sym: str = SYM) -> dict:
    k = {"t": 1_700_000_040_000, "T": 1_700_000_099_999, "i": "1m", "f": 100, "L": 200,
         "o": "50000.10", "c": "50010.20", "h": "50020.30", "l": "49990.40", "v": "12.345",
         "n": 100, "x": closed, "q": "617000.1", "V": "6.1", "Q": "305000.0", "B": "0"}
    if e == "continuous_kline":
        return {"e": e, "E": 1_700_000_100_001, "ps": sym, "ct": "PERPETUAL", "k": k}
    return {"e": e, "E": 1_700_000_100_001, "s": sym, "k": {**k, "s": sym}}


def exec_report(**kw: object) -> dict:
    d = {"e": "executionReport", "E": 1_499_405_658_658, "s": SYM,
         "c": "gb-1-abc", "S": "BUY", "o": "LIMIT", "f": "GTC", "q": "1.00000000",
         "p": "0.10264410", "P": "0.00000000", "F": "0.00000000", "g": -1, "C": "",
         "x": "NEW", "X": "NEW", "r": "NONE", "i": 4293153, "l": "0.00000000",
         "z": "0.00000000", "L": "0.00000000", "n": "0", "N": None, "T": 1_499_405_658_657,
         "t": -1, "v": 3, "I": 8641984, "w": True, "m": False, "M": False,
         "O": 1_499_405_658_657, "Z": "0.00000000", "Y": "0.00000000", "Q": "0.00000000",
         "W": 1_499_405_658_657, "V": "NONE"}
    d.update(kw)
    return d


def otu(**kw: object) -> dict:
    o = {"s": SYM, "c": "gb-2-xyz", "S": "SELL", "o": "LIMIT", "f": "GTC", "q": "0.001",
         "p": "51000.1", "ap": "0", "sp": "0", "x": "NEW", "X": "NEW", "i": 8886774,
         "l": "0", "z": "0", "L": "0", "N": "USDT", "n": "0", "T": 1_568_879_465_650,
         "t": 0, "b": "0", "a": "0", "m": False, "R": False, "wt": "CONTRACT_PRICE",
         "ot": "LIMIT", "ps": "BOTH", "cp": False, "rp": "0", "pP": False, "si": 0, "ss": 0,
         "V": "EXPIRE_TAKER", "pm": "NONE", "gtd": 0}
    o.update(kw)
    return {"e": "ORDER_TRADE_UPDATE", "E": 1_568_879_465_651, "T": 1_568_879_465_650, "o": o}


# -- market data ---------------------------------------------------------------------------------
@pytest.mark.parametrize("e", ["kline", "continuous_kline"])
def test_closed_kline_becomes_kline_closed(e: str) -> None:
    (k,) = parse_market(kline(True, e=e), SYM, RECV)
    assert isinstance(k, m.KlineClosed)
    assert (k.interval, k.open_time_ms, k.close_time_ms) == ("1m", 1_700_000_040_000,
                                                              1_700_000_099_999)
    assert (k.open, k.high, k.low, k.close, k.volume) == (50000.10, 50020.30, 49990.40,
                                                          50010.20, 12.345)
    assert k.ts_event_ns == 1_700_000_100_001 * 1_000_000 and k.symbol == SYM


def test_unclosed_kline_is_never_a_kline_closed() -> None:
    out = parse_market(kline(False), SYM, RECV)
    assert out == [KlineOpen("1m", 1_700_000_040_000)]
    assert not any(isinstance(x, m.KlineClosed) for x in out)


def test_combined_envelope_and_other_symbol() -> None:
    wrapped = {"stream": "btcusdt@kline_1m", "data": kline(True)}
    assert isinstance(parse_market(wrapped, SYM, RECV)[0], m.KlineClosed)
    assert parse_market(kline(True, sym="ETHUSDT"), SYM, RECV) == []
    assert parse_market({"result": None, "id": 1}, SYM, RECV) == []  # SUBSCRIBE reply
    assert parse_market([1, 2], SYM, RECV) == []


def test_spot_book_ticker_uses_receive_time() -> None:
    d = {"u": 400900217, "s": SYM, "b": "25.35190000", "B": "31.21000000",
         "a": "25.36520000", "A": "40.66000000"}
    (b,) = parse_market(d, SYM, RECV)
    assert isinstance(b, m.BookUpdated)
    assert (b.bid, b.bid_qty, b.ask, b.ask_qty) == (25.3519, 31.21, 25.3652, 40.66)
    assert b.ts_event_ns == RECV


def test_futures_book_ticker_uses_event_time() -> None:
    d = {"e": "bookTicker", "u": 400900217, "E": 1_568_014_460_893, "T": 1_568_014_460_891,
         "s": SYM, "b": "25.35190000", "B": "31.21000000", "a": "25.36520000",
         "A": "40.66000000"}
    (b,) = parse_market(d, SYM, RECV)
    assert b.ts_event_ns == 1_568_014_460_893 * 1_000_000


def test_mark_price_and_funding() -> None:
    d = {"e": "markPriceUpdate", "E": 1_562_305_380_000, "s": SYM, "p": "11794.15000000",
         "i": "11784.62659091", "P": "11784.25641265", "r": "0.00038167",
         "T": 1_562_306_400_000}
    mark, fund = parse_market(d, SYM, RECV)
    assert isinstance(mark, m.MarkPriceUpdated) and isinstance(fund, m.FundingRateUpdated)
    assert mark.mark_price == Decimal("11794.15000000")
    assert mark.index_price == Decimal("11784.62659091")
    assert fund.funding_rate == Decimal("0.00038167")
    assert fund.next_funding_time_ms == 1_562_306_400_000


# -- spot executionReport -----------------------------------------------------------------------
def test_spot_new_is_accepted() -> None:
    (a,) = parse_user(exec_report(), Market.SPOT, SYM)
    assert isinstance(a, m.OrderAccepted)
    assert (a.client_order_id, a.exchange_order_id, a.side) == ("gb-1-abc", 4293153, Side.BUY)
    assert a.price == Decimal("0.10264410") and a.qty == Decimal("1.00000000")
    assert a.ts_event_ns == 1_499_405_658_658 * 1_000_000


def test_spot_market_order_has_no_price() -> None:
    (a,) = parse_user(exec_report(o="MARKET", p="0.00000000"), Market.SPOT, SYM)
    assert a.price is None


def test_spot_trade_is_a_fill_with_exact_decimals() -> None:
    ev = exec_report(x="TRADE", X="PARTIALLY_FILLED", l="0.40000000", z="0.40000000",
                     L="0.10264400", n="0.00040000", N="BNB", t=77, m=True)
    (f,) = parse_user(ev, Market.SPOT, SYM)
    assert isinstance(f, m.OrderFilled)
    assert (f.trade_id, f.price, f.qty, f.fee, f.fee_asset, f.maker) == (
        77, Decimal("0.10264400"), Decimal("0.40000000"), Decimal("0.00040000"), "BNB", True)
    assert (f.cum_qty, f.order_status, f.exchange_order_id) == (Decimal("0.4"),
                                                                "PARTIALLY_FILLED", 4293153)
    assert f.realized_pnl == 0


def test_spot_duplicate_and_out_of_order_reports_pass_through() -> None:
    t1 = exec_report(x="TRADE", X="PARTIALLY_FILLED", l="0.4", z="0.4", L="0.1", t=10)
    t2 = exec_report(x="TRADE", X="FILLED", l="0.6", z="1.0", L="0.1", t=11)
    out = [parse_user(e, Market.SPOT, SYM)[0] for e in (t2, t1, t1)]
    assert [f.trade_id for f in out] == [11, 10, 10]  # the OMS dedupes by trade id
    assert [f.cum_qty for f in out] == [Decimal("1.0"), Decimal("0.4"), Decimal("0.4")]


def test_spot_cancel_uses_original_client_id() -> None:
    ev = exec_report(x="CANCELED", X="CANCELED", c="cancel-req-9", C="gb-1-abc")
    (c,) = parse_user(ev, Market.SPOT, SYM)
    assert isinstance(c, m.OrderCanceled) and c.client_order_id == "gb-1-abc"


def test_spot_expired_rejected_replaced() -> None:
    (e,) = parse_user(exec_report(x="EXPIRED", X="EXPIRED"), Market.SPOT, SYM)
    assert isinstance(e, m.OrderExpired) and e.client_order_id == "gb-1-abc"
    (e2,) = parse_user(exec_report(x="TRADE_PREVENTION", X="EXPIRED"), Market.SPOT, SYM)
    assert isinstance(e2, m.OrderExpired) and e2.reason == "TRADE_PREVENTION"
    (r,) = parse_user(exec_report(x="REJECTED", X="REJECTED", r="INSUFFICIENT_BALANCES"),
                      Market.SPOT, SYM)
    assert isinstance(r, m.OrderRejected) and r.reason == "INSUFFICIENT_BALANCES"
    (md,) = parse_user(exec_report(x="REPLACED", q="0.50000000"), Market.SPOT, SYM)
    assert isinstance(md, m.OrderModified) and md.qty == Decimal("0.5")


def test_spot_other_symbol_and_unknown_events_ignored() -> None:
    assert parse_user(exec_report(s="ETHUSDT"), Market.SPOT, SYM) == []
    assert parse_user({"e": "balanceUpdate", "E": 1, "a": "BTC", "d": "1"},
                      Market.SPOT, SYM) == []


def test_spot_ws_api_envelope_and_account_position() -> None:
    ev = {"subscriptionId": 0, "event": {
        "e": "outboundAccountPosition", "E": 1_564_034_571_105, "u": 1_564_034_571_073,
        "B": [{"a": "ETH", "f": "10000.000000", "l": "0.000000"},
              {"a": "USDT", "f": "9.5", "l": "0.5"}]}}
    (b,) = parse_user(ev, Market.SPOT, SYM)
    assert isinstance(b, m.BalanceUpdated)
    assert b.balances == {"ETH": Decimal("10000.000000"), "USDT": Decimal("9.5")}
    assert b.locked["USDT"] == Decimal("0.5")
    assert unwrap(ev)["e"] == "outboundAccountPosition"


def test_stream_end_markers() -> None:
    assert parse_user({"e": "listenKeyExpired", "E": 5, "listenKey": "k"},
                      Market.FUTURES, SYM) == [StreamEnded("listenKeyExpired", 5)]
    ended = parse_user({"subscriptionId": 1, "event": {"e": "eventStreamTerminated", "E": 7}},
                       Market.SPOT, SYM)
    assert ended == [StreamEnded("eventStreamTerminated", 7)]


# -- futures ORDER_TRADE_UPDATE / ACCOUNT_UPDATE --------------------------------------------------
def test_futures_new_trade_cancel_expire_amend() -> None:
    (a,) = parse_user(otu(), Market.FUTURES, SYM)
    assert isinstance(a, m.OrderAccepted) and a.side is Side.SELL
    assert a.price == Decimal("51000.1") and a.ts_event_ns == 1_568_879_465_651 * 1_000_000
    (f,) = parse_user(otu(x="TRADE", X="FILLED", l="0.001", z="0.001", L="51000.1",
                          n="0.0102", N="USDT", t=5001, m=True, rp="1.25"), Market.FUTURES, SYM)
    assert isinstance(f, m.OrderFilled)
    assert (f.trade_id, f.qty, f.price, f.fee, f.maker, f.realized_pnl, f.order_status) == (
        5001, Decimal("0.001"), Decimal("51000.1"), Decimal("0.0102"), True, Decimal("1.25"),
        "FILLED")
    (c,) = parse_user(otu(x="CANCELED", X="CANCELED"), Market.FUTURES, SYM)
    assert isinstance(c, m.OrderCanceled) and c.client_order_id == "gb-2-xyz"
    (e,) = parse_user(otu(x="EXPIRED", X="EXPIRED"), Market.FUTURES, SYM)
    assert isinstance(e, m.OrderExpired)
    (md,) = parse_user(otu(x="AMENDMENT", p="50900.5", q="0.002"), Market.FUTURES, SYM)
    assert isinstance(md, m.OrderModified)
    assert (md.price, md.qty) == (Decimal("50900.5"), Decimal("0.002"))
    (liq,) = parse_user(otu(x="CALCULATED", X="FILLED", c="autoclose-1", l="0.001",
                            L="40000", t=9), Market.FUTURES, SYM)
    assert isinstance(liq, m.OrderFilled) and liq.trade_id == 9
    assert parse_user(otu(s="ETHUSDT"), Market.FUTURES, SYM) == []


def _acct(reason: str, positions: list[dict]) -> dict:
    return {"e": "ACCOUNT_UPDATE", "E": 1_564_745_798_939, "T": 1_564_745_798_938,
            "a": {"m": reason,
                  "B": [{"a": "USDT", "wb": "122624.12345678", "cw": "100.12345678",
                         "bc": "-3.5"}],
                  "P": positions}}


POS = {"s": SYM, "pa": "-0.020", "ep": "51000.5", "bep": "0", "cr": "200", "up": "-1.2",
       "mt": "cross", "iw": "0", "ps": "BOTH"}


def test_futures_account_update_position_and_balance() -> None:
    out = parse_user(_acct("ORDER", [POS, {**POS, "s": "ETHUSDT", "pa": "3"}]),
                     Market.FUTURES, SYM)
    bal, pos = out
    assert isinstance(bal, m.BalanceUpdated)
    assert bal.balances == {"USDT": Decimal("122624.12345678")}
    assert isinstance(pos, m.PositionUpdated)
    assert (pos.qty, pos.entry_price, pos.unrealized_pnl) == (
        Decimal("-0.020"), Decimal("51000.5"), Decimal("-1.2"))


def test_futures_funding_fee_is_paid_once_by_id() -> None:
    ev = _acct("FUNDING_FEE", [POS])
    out = parse_account_update(ev, SYM)
    (fp,) = [x for x in out if isinstance(x, m.FundingPaid)]
    assert fp.amount == Decimal("-3.5") and fp.asset == "USDT"
    assert fp.funding_id == funding_id(SYM, 1_564_745_798_939)
    again = [x for x in parse_account_update(ev, SYM) if isinstance(x, m.FundingPaid)]
    assert again[0].funding_id == fp.funding_id  # deterministic: risk counts it once
    # cross margin: no P -> not attributable to this symbol, no FundingPaid
    assert not any(isinstance(x, m.FundingPaid)
                   for x in parse_account_update(_acct("FUNDING_FEE", []), SYM))
    # an order-driven update is never funding
    assert not any(isinstance(x, m.FundingPaid)
                   for x in parse_account_update(_acct("ORDER", [POS]), SYM))
