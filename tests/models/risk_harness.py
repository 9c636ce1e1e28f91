"""Shared set-up of the risk-core tests (test_risk_orders.py, test_risk_service.py): a
``SymbolRiskCore`` with filters and equity loaded, message builders and effect filters."""

from __future__ import annotations

from decimal import Decimal as D
from typing import Any

from exchange_sim.specs import default_specs
from models import messages as m
from models.client_ids import client_order_id
from models.enums import Market, Side
from models.risk import RiskParams
from models.risk_service import SymbolRiskCore
from models.risk_state import RiskEffects

SYM = "BTCUSDT"
FUT = default_specs(Market.FUTURES)
SPOT = default_specs(Market.SPOT)
BUY, SELL = Side.BUY, Side.SELL
S = 1_000_000_000  # ns per second
T0 = 1_700_000_000 * S


def core(market: Market = Market.FUTURES, equity: str = "10000", filters: bool = True,
         **kw: Any) -> SymbolRiskCore:
    c = SymbolRiskCore(SYM, market, 0.45, 6.0, RiskParams(), "gb", **kw)
    if filters:
        f = (FUT if market is Market.FUTURES else SPOT)[SYM]
        c.handle(m.SymbolFiltersLoaded(symbol=SYM, filters=f, market=market), T0)
    if equity:
        c.handle(m.EquityUpdated(symbol=SYM, equity=D(equity), peak_equity=D(equity),
                                 drawdown=0.0, leverage=0.0, leverage_cap=6.0), T0)
    return c


def place(key: str = "L1", side: Side = BUY, price: str | None = "50000",
          qty: str = "0.01", **kw: Any) -> m.PlaceOrder:
    return m.PlaceOrder(symbol=SYM, key=key, side=side, price=D(price) if price else None,
                        qty=D(qty), **kw)


def sent(fx: RiskEffects, role: str, typ: type | None = None) -> list[Any]:
    return [msg for r, msg in fx.sends if r == role and (typ is None or isinstance(msg, typ))]


def logs(fx: RiskEffects, event: str) -> list[dict[str, Any]]:
    return [ctx for ev, _, ctx in fx.logs if ev == event]


def cid(key: str, gen: int = 0) -> str:
    return client_order_id("gb", SYM, key, gen)


def fill(key: str, side: Side, price: str, qty: str, trade_id: int, fee: str = "0",
         ts_s: int = 0) -> m.OrderFilled:
    return m.OrderFilled(symbol=SYM, client_order_id=cid(key), trade_id=trade_id, side=side,
                         price=D(price), qty=D(qty), fee=D(fee), fee_asset="USDT",
                         ts_event_ns=T0 + ts_s * S)


def reserve_and_submit(c: SymbolRiskCore, msg: m.PlaceOrder, now: int = T0) -> m.SubmitOrder:
    fx = c.handle(msg, now)
    (req,) = sent(fx, "portfolio", m.ReserveExposure)
    fx = c.handle(m.ExposureReserved(symbol=SYM, reservation_id=req.reservation_id,
                                     notional=req.notional), now)
    (sub,) = sent(fx, "order", m.SubmitOrder)
    return sub
