"""Risk and portfolio actors in thespian's simpleSystemBase, wired as the supervisors wire them,
with recording stand-ins for the order (OMS) and strategy actors."""

from __future__ import annotations

import time
from decimal import Decimal as D
from pathlib import Path
from typing import Any

import msgspec
import pytest
from loguru import logger
from thespian.actors import Actor, ActorExitRequest, ActorSystem

from actors.base import pack_address
from actors.portfolio import PortfolioActor
from actors.risk import RiskActor
from exchange_sim.specs import default_specs
from models import messages as m
from models.client_ids import client_order_id
from models.config import Config, config_to_json
from models.enums import Market, Side

SYM = "BTCUSDT"
FILTERS = default_specs(Market.FUTURES)[SYM]


class TRisk(RiskActor):
    multiprocess = False


class TPortfolio(PortfolioActor):
    multiprocess = False


class Recorder(Actor):
    """Records every message; ``"dump"`` answers the list (and clears it)."""

    def __init__(self) -> None:
        super().__init__()
        self.got: list[Any] = []

    def receiveMessage(self, msg: Any, sender: Any) -> None:
        if msg == "dump":
            self.send(sender, list(self.got))
            self.got.clear()
        elif isinstance(msg, m.Message):
            self.got.append(msg)


@pytest.fixture
def asys() -> Any:
    system = ActorSystem("simpleSystemBase", logDefs=False, transientUnique=True)
    yield system
    system.shutdown()


@pytest.fixture
def events() -> Any:
    got: list[dict[str, Any]] = []
    hid = logger.add(lambda msg: got.append(dict(msg.record["extra"])), level="DEBUG")
    yield got
    logger.remove(hid)


def config(timeout_s: float = 2.0) -> bytes:
    cfg = Config()
    return config_to_json(msgspec.structs.replace(
        cfg, risk=msgspec.structs.replace(cfg.risk, reservation_timeout_s=timeout_s)))


class Bot:
    """risk(BTCUSDT) + portfolio + recorders for order and strategy."""

    def __init__(self, asys: Any, state_dir: Path, *, portfolio: bool = True,
                 black_hole_portfolio: bool = False, timeout_s: float = 2.0) -> None:
        self.asys, self.dir, self.cfg = asys, state_dir, config(timeout_s)
        self.order = asys.createActor(Recorder)
        self.strategy = asys.createActor(Recorder)
        self.pf = None
        if black_hole_portfolio:
            self.pf = asys.createActor(Recorder)
        elif portfolio:
            self.pf = self.start(TPortfolio, "portfolio", "")
        self.risk = self.start(TRisk, "risk", SYM)
        self.wire()

    def start(self, cls: type, name: str, symbol: str) -> Any:
        addr = self.asys.createActor(cls)
        ready = self.asys.ask(addr, m.StartActor(symbol=symbol, actor_name=name,
                                                 config_json=self.cfg,
                                                 state_dir=str(self.dir)), 5)
        assert isinstance(ready, m.ActorReady)
        return addr

    def wire(self) -> None:
        peers = {"order": pack_address(self.order), "strategy": pack_address(self.strategy)}
        if self.pf is not None:
            peers["portfolio"] = pack_address(self.pf)
        self.asys.tell(self.risk, m.Wire(symbol=SYM, peers=peers))
        if self.pf is not None:
            self.asys.tell(self.pf, m.Wire(peers={f"{SYM}.risk": pack_address(self.risk),
                                                  f"{SYM}.strategy":
                                                      pack_address(self.strategy)}))
        self.asys.tell(self.risk, m.SymbolFiltersLoaded(symbol=SYM, filters=FILTERS))

    def dump(self, who: Any) -> list[Any]:
        return self.asys.ask(who, "dump", 5)

    def status(self, who: Any) -> dict[str, Any]:
        return self.asys.ask(who, m.StatusRequested(), 5).data

    def restart_risk(self) -> None:
        self.asys.tell(self.risk, ActorExitRequest())
        self.risk = self.start(TRisk, "risk", SYM)
        self.wire()


def of(msgs: list[Any], typ: type) -> list[Any]:
    return [x for x in msgs if isinstance(x, typ)]


def place(key: str, price: str = "50000", qty: str = "0.02", **kw: Any) -> m.PlaceOrder:
    return m.PlaceOrder(symbol=SYM, key=key, side=kw.pop("side", Side.BUY), price=D(price),
                        qty=D(qty), **kw)


def test_order_goes_through_reservation_to_the_oms(asys: Any, tmp_path: Path,
                                                   events: list) -> None:
    bot = Bot(asys, tmp_path)
    asys.tell(bot.pf, m.AccountReported(symbol=SYM, wallet_balance=D("10000")))
    assert of(bot.dump(bot.strategy), m.EquityUpdated)[-1].equity == D("10000")
    asys.tell(bot.risk, place("L1", price="50000.04"))
    (sub,) = of(bot.dump(bot.order), m.SubmitOrder)
    assert sub.reservation_id == "BTCUSDT-L1-1" and sub.price == D("50000.0")
    pst = bot.status(bot.pf)
    assert pst["open_reservations"] == 1 and pst["worst_case_leverage"] == 0.1
    # a fill and the end: position reported, reservation released
    cid = client_order_id("gb", SYM, "L1", 0)
    asys.tell(bot.risk, m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=1,
                                      side=Side.BUY, price=D("50000"), qty=D("0.02"),
                                      fee=D("0.4"), fee_asset="USDT"))
    asys.tell(bot.risk, m.OrderEnded(symbol=SYM, client_order_id=cid, key="L1",
                                     status="FILLED", filled_qty=D("0.02"),
                                     reservation_id=sub.reservation_id))
    pst = bot.status(bot.pf)
    assert pst["open_reservations"] == 0 and D(pst["equity"]) == D("9999.6")
    assert pst["positions"][SYM]["qty"] == "0.02" and pst["leverage"] == 0.1
    rst = bot.status(bot.risk)
    assert rst["position"] == "0.02" and rst["fees"] == "0.4"
    assert any(e.get("event") == "EQUITY" for e in events)


def test_portfolio_denial_reaches_the_strategy(asys: Any, tmp_path: Path,
                                               events: list) -> None:
    bot = Bot(asys, tmp_path)
    asys.tell(bot.pf, m.AccountReported(symbol=SYM, wallet_balance=D("10000")))
    bot.dump(bot.strategy)
    # 9000 resting buys > the 8100 utilization budget of BTC (10000 x 0.45 x 6 x 0.3)
    asys.tell(bot.risk, place("L1", price="45000", qty="0.2"))
    assert of(bot.dump(bot.order), m.SubmitOrder) == []
    (den,) = of(bot.dump(bot.strategy), m.OrderDenied)
    assert den.reason == "UTILIZATION" and den.key == "L1"
    blocked = [e for e in events if e.get("event") == "RISK_BLOCKED"]
    assert {e.get("stage") for e in blocked} == {"portfolio"}


def test_fail_closed_without_portfolio_or_answer(asys: Any, tmp_path: Path) -> None:
    bot = Bot(asys, tmp_path, portfolio=False)
    asys.tell(bot.risk, m.EquityUpdated(symbol=SYM, equity=D("10000"), peak_equity=D("10000"),
                                        drawdown=0.0, leverage=0.0, leverage_cap=6.0))
    asys.tell(bot.risk, place("L1"))
    assert of(bot.dump(bot.strategy), m.OrderDenied)[0].reason == "portfolio unavailable"
    assert bot.dump(bot.order) == []
    # a portfolio that never answers: denied after the timeout, reservation released
    bot2 = Bot(asys, tmp_path / "b", black_hole_portfolio=True, timeout_s=0.2)
    asys.tell(bot2.risk, m.EquityUpdated(symbol=SYM, equity=D("10000"),
                                         peak_equity=D("10000"), drawdown=0.0, leverage=0.0,
                                         leverage_cap=6.0))
    asys.tell(bot2.risk, place("L1"))
    assert of(bot2.dump(bot2.pf), m.ReserveExposure)
    deadline = time.monotonic() + 5
    denied: list[Any] = []
    while not denied and time.monotonic() < deadline:
        asys.listen(0.1)  # lets simpleSystemBase deliver due wakeups
        denied = of(bot2.dump(bot2.strategy), m.OrderDenied)
    assert denied and denied[0].reason == "portfolio unavailable"
    assert of(bot2.dump(bot2.pf), m.ReleaseExposure)[0].reservation_id == "BTCUSDT-L1-1"
    assert bot2.dump(bot2.order) == []


def test_restart_from_snapshot_keeps_reservations_and_pnl(asys: Any, tmp_path: Path) -> None:
    bot = Bot(asys, tmp_path)
    asys.tell(bot.pf, m.AccountReported(symbol=SYM, wallet_balance=D("10000")))
    asys.tell(bot.risk, place("L1"))
    (sub,) = of(bot.dump(bot.order), m.SubmitOrder)
    cid = client_order_id("gb", SYM, "L1", 0)
    asys.tell(bot.risk, m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=1,
                                      side=Side.BUY, price=D("50000"), qty=D("0.01"),
                                      fee=D("0.2"), fee_asset="USDT"))
    before = bot.status(bot.risk)
    bot.restart_risk()
    after = bot.status(bot.risk)
    for k in ("position", "entry_price", "fees", "live_orders"):
        assert after[k] == before[k], k
    assert D(after["equity"]) == D("9999.8")  # re-wiring made the portfolio re-announce
    # the trade id is remembered: a re-delivered fill is not booked twice
    asys.tell(bot.risk, m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=1,
                                      side=Side.BUY, price=D("50000"), qty=D("0.01")))
    assert bot.status(bot.risk)["position"] == "0.01"
    # the restored order still owns its reservation: its end releases it at the portfolio
    assert bot.status(bot.pf)["open_reservations"] == 1
    asys.tell(bot.risk, m.OrderEnded(symbol=SYM, client_order_id=cid, key="L1",
                                     status="CANCELED", filled_qty=D("0.01"),
                                     reservation_id=sub.reservation_id))
    assert bot.status(bot.pf)["open_reservations"] == 0
    # the portfolio restarts too: reservations, equity and positions come back
    asys.tell(bot.risk, place("L2", price="49000", qty="0.01"))
    assert of(bot.dump(bot.order), m.SubmitOrder)[0].reservation_id == "BTCUSDT-L2-2"
    pst = bot.status(bot.pf)
    asys.tell(bot.pf, ActorExitRequest())
    bot.pf = bot.start(TPortfolio, "portfolio", "")
    bot.wire()
    pst2 = bot.status(bot.pf)
    for k in ("equity", "open_reservations", "positions", "drawdown_level", "trading_state"):
        assert pst2[k] == pst[k], k


def test_hard_stop_halts_cancels_and_flattens(asys: Any, tmp_path: Path, events: list) -> None:
    bot = Bot(asys, tmp_path)
    asys.tell(bot.pf, m.AccountReported(symbol=SYM, wallet_balance=D("10000")))
    cid = client_order_id("gb", SYM, "L1", 0)
    asys.tell(bot.risk, m.OrderFilled(symbol=SYM, client_order_id=cid, trade_id=1,
                                      side=Side.BUY, price=D("50000"), qty=D("0.1")))
    bot.dump(bot.order)
    bot.dump(bot.strategy)
    asys.tell(bot.risk, m.MarkPriceUpdated(symbol=SYM, mark_price=D("34000")))  # -1600: -16 %
    got = bot.dump(bot.order)
    assert isinstance(got[0], m.CancelAllOrders)
    (flat,) = of(got, m.SubmitOrder)
    assert (flat.key, flat.side, flat.qty, flat.reduce_only) == ("flatten", Side.SELL,
                                                                 D("0.100"), True)
    lv = of(bot.dump(bot.strategy), m.DrawdownLevelChanged)
    assert lv and lv[-1].halted and lv[-1].kind == "HALT"
    assert bot.status(bot.pf)["trading_state"] == "HALTED"
    asys.tell(bot.risk, place("L2", price="30000", qty="0.01"))
    assert of(bot.dump(bot.strategy), m.OrderDenied)[0].reason == "HALTED"
    # operator resume: answered to the sender (the root supervisor in the bot)
    reply = asys.ask(bot.pf, m.ResumeTrading(reason="operator"), 5)
    assert isinstance(reply, m.TradingStateChanged) and reply.state.value == "ACTIVE"
    assert bot.status(bot.risk)["trading_state"] == "ACTIVE"
    assert [e.get("kind") for e in events if e.get("event") == "DRAWDOWN_LEVEL"][-1] == "RESUME"
