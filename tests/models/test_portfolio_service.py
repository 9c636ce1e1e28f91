"""PortfolioCore: initial equity, brake levels from the plan's KPIs, halt/resume, throttled
EquityUpdated/EQUITY, venue ban, stop, snapshot; the global cap under interleaved requests
from three symbols' risk cores (hypothesis)."""

from __future__ import annotations

from collections import deque
from decimal import Decimal as D
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchange_sim.specs import default_specs
from models import messages as m
from models.client_ids import client_order_id
from models.enums import Market, Side, TradingState
from models.portfolio_service import (
    REPLY,
    PortfolioCore,
    PortfolioEffects,
    decode_portfolio_state,
    encode_portfolio_state,
)
from models.risk import RiskParams
from models.risk_service import SymbolRiskCore

SYMS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
W = {"BTCUSDT": 0.45, "ETHUSDT": 0.35, "SOLUSDT": 0.20}
FUTS = {s: Market.FUTURES for s in SYMS}
BUY, SELL = Side.BUY, Side.SELL
T = 1_700_000_000_000  # ms


def pf(markets: dict[str, Market] | None = None, equity: str | None = "10000",
       **kw: Any) -> PortfolioCore:
    p = PortfolioCore(SYMS, W, markets or FUTS, 6.0, 0.3, RiskParams(), **kw)
    if equity is not None:
        p.handle(m.AccountReported(symbol="BTCUSDT", wallet_balance=D(equity)), T)
    return p


def sent(fx: PortfolioEffects, role: str | None = None, typ: type | None = None) -> list[Any]:
    return [msg for r, msg in fx.sends
            if (role is None or r == role) and (typ is None or isinstance(msg, typ))]


def logs(fx: PortfolioEffects, event: str) -> list[dict[str, Any]]:
    return [ctx for ev, _, ctx in fx.logs if ev == event]


def loss(p: PortfolioCore, amount: str, now: int = T, sym: str = "BTCUSDT") -> PortfolioEffects:
    """Report an unrealized loss on a tiny position (drawdown driver)."""
    return p.handle(m.PositionReported(symbol=sym, qty=D("0.001"), entry_price=D("50000"),
                                       mark_price=D("50000"), unrealized_pnl=-D(amount)), now)


def reserve(p: PortfolioCore, rid: str, sym: str, side: Side, notional: str,
            reduce_only: bool = False) -> Any:
    fx = p.handle(m.ReserveExposure(symbol=sym, reservation_id=rid, side=side,
                                    notional=D(notional), reduce_only=reduce_only), T)
    (ans,) = sent(fx, REPLY)
    return ans


# -- equity ---------------------------------------------------------------------------------------
def test_initial_equity_counts_each_market_account_once() -> None:
    markets = {"BTCUSDT": Market.FUTURES, "ETHUSDT": Market.FUTURES, "SOLUSDT": Market.SPOT}
    p = pf(markets, equity=None)
    p.handle(m.AccountReported(symbol="BTCUSDT", wallet_balance=D("7000")), T)
    p.handle(m.AccountReported(symbol="ETHUSDT", wallet_balance=D("7000")), T)  # same account
    assert p.equity() == 0  # spot not reported yet: no equity, no exposure
    assert isinstance(reserve(p, "r0", "BTCUSDT", BUY, "100"), m.ExposureDenied)
    fx = p.handle(m.AccountReported(symbol="SOLUSDT", wallet_balance=D("3000"),
                                    market=Market.SPOT), T)
    assert p.equity() == D("10000") and logs(fx, "EQUITY_INITIALIZED")
    assert logs(fx, "EQUITY")[0]["equity"] == D("10000")
    p.handle(m.AccountReported(symbol="SOLUSDT", wallet_balance=D("9999"),
                               market=Market.SPOT), T)
    assert p.equity() == D("10000")
    assert isinstance(reserve(p, "r1", "BTCUSDT", BUY, "100"), m.ExposureReserved)


def test_equity_from_position_reports_and_throttled_broadcast() -> None:
    p = pf()
    fx = p.handle(m.PositionReported(symbol="ETHUSDT", qty=D("1"), entry_price=D("3000"),
                                     mark_price=D("3010"), realized_pnl=D("20"), fees=D("1.5"),
                                     funding=D("-0.5"), unrealized_pnl=D("10")), T + 1000)
    assert p.equity() == D("10028.0")  # 10000 + 20 - 1.5 - 0.5 + 10
    eq = sent(fx, "ETHUSDT.risk", m.EquityUpdated)
    assert eq and eq[0].equity == D("10028.0") and len(sent(fx, None, m.EquityUpdated)) == 6
    assert eq[0].leverage == pytest.approx(3010 / 10028)
    fx = loss(p, "5", T + 1300)  # within 1 s: held back, timer requested
    assert sent(fx, None, m.EquityUpdated) == [] and fx.wake_after_s == pytest.approx(0.7)
    assert p.tick(T + 1900).sends == []
    fx = p.tick(T + 2000)
    assert sent(fx, "SOLUSDT.strategy", m.EquityUpdated)[0].equity == p.equity()
    assert p.tick(T + 5000).sends == []  # nothing new


def test_equity_log_at_most_every_15_min_and_after_each_trade() -> None:
    p = pf()
    assert logs(loss(p, "1", T + 1000), "EQUITY") == []  # the initial line was at T
    fx = loss(p, "2", T + 2000)
    assert logs(fx, "EQUITY") == [] and fx.wake_after_s is not None
    assert logs(p.tick(T + 15 * 60_000), "EQUITY")[0]["equity"] == D("9998")
    fx = p.handle(m.TradeClosed(symbol="BTCUSDT", side=BUY, qty=D("1"), entry_price=D("1"),
                                exit_price=D("2"), gross_pnl=D("1"), fees=D("0"),
                                funding=D("0"), net_pnl=D("1"), opened_ms=0, closed_ms=1),
                  T + 15 * 60_000 + 5)
    (line,) = logs(fx, "EQUITY")
    assert set(line) >= {"equity", "peak_equity", "drawdown", "leverage", "worst_case_leverage",
                         "leverage_cap", "drawdown_level", "state", "positions"}
    assert line["positions"]["BTCUSDT"]["trades"] == "1"


# -- drawdown brake -------------------------------------------------------------------------------
def test_brake_levels_follow_the_plan_kpis() -> None:
    p = pf()
    fx = loss(p, "500")  # -5 %: level 1
    (ev,) = logs(fx, "DRAWDOWN_LEVEL")
    assert (ev["drawdown_level"], ev["size_factor"], ev["tp_factor"]) == (1, 0.5, 0.7)
    msgs = sent(fx, None, m.DrawdownLevelChanged)
    assert {r for r, _ in fx.sends if isinstance(_, m.DrawdownLevelChanged)} == {
        f"{s}.{r}" for s in SYMS for r in ("risk", "strategy")}
    assert msgs[0].size_factor == 0.5 and msgs[0].leverage_cap == 6.0
    fx = loss(p, "600")  # -6 %: the informational alert is logged, not broadcast
    assert [e["kind"] for e in logs(fx, "DRAWDOWN_LEVEL")] == ["ALERT"]
    assert sent(fx, None, m.DrawdownLevelChanged) == []
    fx = loss(p, "700")  # -7 %: size still halved, nothing new
    assert logs(fx, "DRAWDOWN_LEVEL") == [] and p.brake.state().size_factor == 0.5
    fx = loss(p, "1200")  # -12 %: orders x0.5 and leverage 3x
    (ev,) = logs(fx, "DRAWDOWN_LEVEL")
    assert (ev["drawdown_level"], ev["size_factor"], ev["leverage_cap"]) == (2, 0.5, 3.0)
    assert p.book.leverage_cap == D("3.0") and p.status()["leverage_cap"] == 3.0
    assert isinstance(reserve(p, "a", "BTCUSDT", BUY, "13501"), m.ExposureDenied)  # > 8800*.45*3
    fx = loss(p, "1500")  # -15 %: hard stop, cancel all and flatten
    (ev,) = logs(fx, "DRAWDOWN_LEVEL")
    assert ev["kind"] == "HALT" and ev["halted"] and ev["actions"] == ["CANCEL_ALL", "FLATTEN"]
    halts = sent(fx, None, m.HaltTrading)
    assert [h.symbol for h in halts] == list(SYMS) and all(h.flatten for h in halts)
    assert {r for r, msg in fx.sends if isinstance(msg, m.HaltTrading)} == {
        f"{s}.risk" for s in SYMS}
    assert sent(fx, "BTCUSDT.strategy", m.TradingStateChanged)[0].state is TradingState.HALTED
    den = reserve(p, "b", "ETHUSDT", BUY, "100")
    assert isinstance(den, m.ExposureDenied) and den.reason == "HALTED"
    assert isinstance(reserve(p, "c", "ETHUSDT", SELL, "100", reduce_only=True),
                      m.ExposureReserved)
    # operator resume in safe mode
    fx = p.handle(m.ResumeTrading(reason="operator", safe_mode=True), T)
    (reply,) = sent(fx, REPLY)
    assert isinstance(reply, m.TradingStateChanged) and reply.state is TradingState.ACTIVE
    lv = sent(fx, "SOLUSDT.strategy", m.DrawdownLevelChanged)[0]
    assert lv.kind == "RESUME" and not lv.halted and lv.safe_mode
    assert lv.min_entry_conviction == 0.8 and lv.level == 2
    assert isinstance(reserve(p, "d", "ETHUSDT", BUY, "100"), m.ExposureReserved)


def test_halt_lifts_itself_when_drawdown_recovers() -> None:
    p = pf()
    loss(p, "1500")
    assert p.book.trading_state is TradingState.HALTED
    assert logs(loss(p, "1000"), "DRAWDOWN_LEVEL") == []  # -10 %: still halted
    fx = loss(p, "400")  # -4 %: above the -5 % resume level
    kinds = [e["kind"] for e in logs(fx, "DRAWDOWN_LEVEL")]
    assert "RESUME" in kinds and p.book.trading_state is TradingState.ACTIVE
    assert sent(fx, "ETHUSDT.risk", m.TradingStateChanged)[0].state is TradingState.ACTIVE


def test_venue_ban_halts_without_flatten_and_stop_denies_entries() -> None:
    p = pf()
    fx = p.handle(m.VenueBanned(symbol="BTCUSDT", host="fapi", until_ms=T + 60_000), T)
    halts = sent(fx, None, m.HaltTrading)
    assert len(halts) == 3 and not any(h.flatten for h in halts)
    assert logs(fx, "DRAWDOWN_LEVEL")[0]["actions"] == []
    assert loss(p, "0").sends is not None and p.book.trading_state is TradingState.HALTED
    p.handle(m.ResumeTrading(), T)
    assert p.book.trading_state is TradingState.ACTIVE
    p.handle(m.StopTrading(mode="flatten"), T)
    den = reserve(p, "s1", "BTCUSDT", BUY, "100")
    assert isinstance(den, m.ExposureDenied) and den.reason == "STOPPING"
    assert isinstance(reserve(p, "s2", "BTCUSDT", SELL, "100", reduce_only=True),
                      m.ExposureReserved)


def test_reservations_idempotent_release_and_snapshot_round_trip() -> None:
    p = pf()
    assert isinstance(reserve(p, "BTCUSDT-L1-1", "BTCUSDT", BUY, "8000"), m.ExposureReserved)
    assert isinstance(reserve(p, "BTCUSDT-L1-1", "BTCUSDT", BUY, "8000"), m.ExposureReserved)
    assert p.book.gross_exposure() == D("8000")  # the re-delivery reserved nothing more
    den = reserve(p, "BTCUSDT-L2-2", "BTCUSDT", BUY, "200")
    assert isinstance(den, m.ExposureDenied) and den.reason == "UTILIZATION"  # 8100 per side
    loss(p, "800")  # level 1
    p.handle(m.TradeClosed(symbol="ETHUSDT", side=BUY, qty=D("1"), entry_price=D("1"),
                           exit_price=D("2"), gross_pnl=D("1"), fees=D("0"), funding=D("0"),
                           net_pnl=D("1"), opened_ms=0, closed_ms=1), T)
    q = PortfolioCore(SYMS, W, FUTS, 6.0, 0.3, RiskParams(),
                      state=decode_portfolio_state(encode_portfolio_state(p.to_state())))
    assert q.equity() == D("9200") and q.peak() == D("10000") and q.brake.level == 1
    assert q.book.gross_exposure() == p.book.gross_exposure()
    assert q.status()["positions"]["BTCUSDT"]["unrealized_pnl"] == "-800"
    assert q.s.trades == {"ETHUSDT": 1}
    assert isinstance(reserve(q, "BTCUSDT-L1-1", "BTCUSDT", BUY, "8000"), m.ExposureReserved)
    q.handle(m.ReleaseExposure(symbol="BTCUSDT", reservation_id="BTCUSDT-L1-1"), T)
    assert q.book.gross_exposure() == D("1000") * D("0.001") * 50  # only the position left
    fx = q.announce(T)
    assert len(sent(fx, None, m.DrawdownLevelChanged)) == 6
    assert sent(fx, "BTCUSDT.risk", m.EquityUpdated)[0].equity == D("9200")


# -- the cap under interleaved requests from three risk cores ---------------------------------------
PRICES = {"BTCUSDT": D("50000"), "ETHUSDT": D("3000"), "SOLUSDT": D("100")}
FILTERS = default_specs(Market.FUTURES)


class Bot:
    """Three risk cores and one portfolio core; the portfolio mailbox is one FIFO (as the actor's),
    the risk → portfolio traffic is interleaved by the test."""

    def __init__(self, overlap: bool) -> None:
        w = {"BTCUSDT": 0.6, "ETHUSDT": 0.5, "SOLUSDT": 0.4} if overlap else W
        self.pf = PortfolioCore(SYMS, w, FUTS, 6.0, 1.0 if overlap else 0.3, RiskParams())
        self.pf.handle(m.AccountReported(symbol="BTCUSDT", wallet_balance=D("10000")), T)
        # risk's own symbol limit (equity x weight x cap) is opened up to the whole cap here:
        # only the portfolio stands between the three symbols and the global cap
        self.risk = {s: SymbolRiskCore(s, Market.FUTURES, 1.0, 6.0, RiskParams(), "gb")
                     for s in SYMS}
        self.mailbox: deque[m.Message] = deque()
        self.live: dict[tuple[str, str], list[Any]] = {}  # (sym, key) -> [side, qty, filled]
        self.pos = {s: D(0) for s in SYMS}
        self.trade = 0
        for s, r in self.risk.items():
            r.handle(m.SymbolFiltersLoaded(symbol=s, filters=FILTERS[s]), 0)
            self._route(s, r.handle(m.EquityUpdated(symbol=s, equity=D("10000"),
                                                    peak_equity=D("10000"), drawdown=0.0,
                                                    leverage=0.0, leverage_cap=6.0), 0))

    def _route(self, sym: str, fx: Any) -> None:
        for role, msg in fx.sends:
            if role == "portfolio":
                self.mailbox.append(msg)
            elif role == "order" and isinstance(msg, m.SubmitOrder):
                self.live[(sym, msg.key)] = [msg.side, msg.qty, D(0)]

    def place(self, sym: str, key: str, side: Side, notional: int) -> None:
        qty = FILTERS[sym].round_qty(D(notional) / PRICES[sym])
        self._route(sym, self.risk[sym].handle(m.PlaceOrder(
            symbol=sym, key=key, side=side, price=PRICES[sym], qty=qty), 0))

    def deliver(self) -> None:
        msg = self.mailbox.popleft()
        fx = self.pf.handle(msg, T)
        for role, out in fx.sends:
            if role == REPLY:
                self._route(msg.symbol, self.risk[msg.symbol].handle(out, 0))

    def fill(self, idx: int, full: bool) -> None:
        (sym, key), (side, qty, filled) = sorted(self.live.items())[idx % len(self.live)]
        q = qty - filled if full else FILTERS[sym].round_qty((qty - filled) / 2)
        if q <= 0:
            return
        self.trade += 1
        r = self.risk[sym]
        self._route(sym, r.handle(m.OrderFilled(
            symbol=sym, client_order_id=client_order_id("gb", sym, key, 0), trade_id=self.trade,
            side=side, price=PRICES[sym], qty=q), 0))
        self.pos[sym] += q if side is BUY else -q
        self.live[(sym, key)][2] += q
        if full:
            self.end(sym, key, "FILLED")

    def end(self, sym: str, key: str, status: str) -> None:
        side, qty, filled = self.live.pop((sym, key))
        e = self.risk[sym].s.orders[key]
        self._route(sym, self.risk[sym].handle(m.OrderEnded(
            symbol=sym, client_order_id=client_order_id("gb", sym, key, 0), key=key,
            status=status, filled_qty=filled, reservation_id=e.reservation_ids[0]), 0))

    def true_gross(self) -> D:
        """What the exchange could really hold: positions plus every live order filling."""
        total = D(0)
        for s in SYMS:
            p = self.pos[s] * PRICES[s]
            b = sum(((q - f) * PRICES[s] for (sy, _), (sd, q, f) in self.live.items()
                     if sy == s and sd is BUY), D(0))
            sl = sum(((q - f) * PRICES[s] for (sy, _), (sd, q, f) in self.live.items()
                      if sy == s and sd is SELL), D(0))
            total += max(abs(p + b), abs(p - sl))
        return total


PLACE = st.tuples(st.just("place"), st.sampled_from(SYMS), st.sampled_from([BUY, SELL]),
                  st.one_of(st.integers(100, 9900), st.just(9900)))
OPS = st.lists(st.one_of(
    PLACE, PLACE, PLACE,
    st.tuples(st.just("deliver")), st.tuples(st.just("deliver")), st.tuples(st.just("deliver")),
    st.tuples(st.just("fill"), st.integers(0, 50), st.booleans()),
    st.tuples(st.just("cancel"), st.integers(0, 50)),
), min_size=30, max_size=100)


@settings(max_examples=60, deadline=None)
@given(ops=OPS, overlap=st.booleans())
def test_cap_holds_under_interleaved_requests_from_three_symbols(ops: list, overlap: bool
                                                                 ) -> None:
    bot = Bot(overlap)
    cap = D("60000")
    for n, op in enumerate(ops):
        if op[0] == "place":
            bot.place(op[1], f"k{n}", op[2], op[3])
        elif op[0] == "deliver" and bot.mailbox:
            bot.deliver()
        elif op[0] == "fill" and bot.live:
            bot.fill(op[1], op[2])
        elif op[0] == "cancel" and bot.live:
            sym, key = sorted(bot.live)[op[1] % len(bot.live)]
            bot.end(sym, key, "CANCELED")
        assert bot.true_gross() <= cap
        assert bot.pf.book.gross_exposure() >= bot.true_gross() or bot.mailbox
    while bot.mailbox:
        bot.deliver()
        assert bot.true_gross() <= cap
    # the portfolio never under-counts once it has seen every message
    assert bot.pf.book.gross_exposure() >= bot.true_gross()


def test_snapshot_keeps_open_answers_and_only_recent_closed_ones() -> None:
    from models.portfolio_service import SNAPSHOT_ANSWERS

    p = pf()
    assert isinstance(reserve(p, "open-1", "BTCUSDT", BUY, "100"), m.ExposureReserved)
    for i in range(SNAPSHOT_ANSWERS + 50):
        p.handle(m.ReserveExposure(symbol="ETHUSDT", reservation_id=f"c{i}", side=BUY,
                                   notional=D("10")), T)
        p.handle(m.ReleaseExposure(symbol="ETHUSDT", reservation_id=f"c{i}"), T)
    st = decode_portfolio_state(encode_portfolio_state(p.to_state()))
    ids = {a.reservation_id for a in st.book.answers}
    assert "open-1" in ids and f"c{SNAPSHOT_ANSWERS + 49}" in ids and "c0" not in ids
    assert len(ids) == SNAPSHOT_ANSWERS + 1
    q = PortfolioCore(SYMS, W, FUTS, 6.0, 0.3, RiskParams(), state=st)
    assert q.open_reservations() == 1
    # a late repeat of a recent request gets its original answer and reserves nothing
    assert isinstance(reserve(q, f"c{SNAPSHOT_ANSWERS + 49}", "ETHUSDT", BUY, "10"),
                      m.ExposureReserved)
    assert q.open_reservations() == 1
