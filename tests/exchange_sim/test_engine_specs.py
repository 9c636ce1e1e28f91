"""Symbol specs of the embedded exchange: real filter values, exchangeInfo shape, brackets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_sim.specs import (
    bracket_for,
    default_specs,
    exchange_info_symbol,
    maintenance_brackets,
)
from models.enums import Market
from models.filters import SymbolFilters

D = Decimal


@pytest.mark.parametrize("market", list(Market))
def test_exchange_info_round_trips(market: Market) -> None:
    for f in default_specs(market).values():
        info = exchange_info_symbol(f, market)
        assert SymbolFilters.from_exchange_info(info) == f
        kinds = [x["filterType"] for x in info["filters"]]
        assert kinds[:3] == ["PRICE_FILTER", "LOT_SIZE", "MARKET_LOT_SIZE"]
        assert ("NOTIONAL" in kinds) == (market is Market.SPOT)
        assert ("MIN_NOTIONAL" in kinds) == (market is Market.FUTURES)


def test_exchange_info_numbers_are_plain_strings() -> None:
    f = default_specs(Market.SPOT)["BTCUSDT"]
    info = exchange_info_symbol(f, Market.SPOT)
    lot = next(x for x in info["filters"] if x["filterType"] == "LOT_SIZE")
    assert lot["stepSize"] == "0.00001" and "E" not in lot["minQty"]
    fut = exchange_info_symbol(default_specs(Market.FUTURES)["BTCUSDT"], Market.FUTURES)
    mn = next(x for x in fut["filters"] if x["filterType"] == "MIN_NOTIONAL")
    assert mn["notional"] == "100"


@pytest.mark.parametrize("market,sym,tick,step,notional", [
    (Market.SPOT, "BTCUSDT", "0.01", "0.00001", "5"),
    (Market.SPOT, "ETHUSDT", "0.01", "0.0001", "5"),
    (Market.SPOT, "SOLUSDT", "0.01", "0.001", "5"),
    (Market.FUTURES, "BTCUSDT", "0.1", "0.001", "100"),
    (Market.FUTURES, "ETHUSDT", "0.01", "0.001", "20"),
    (Market.FUTURES, "SOLUSDT", "0.01", "1", "5"),
])
def test_real_filter_values(market: Market, sym: str, tick: str, step: str,
                            notional: str) -> None:
    f = default_specs(market)[sym]
    assert (f.tick_size, f.step_size, f.min_notional) == (D(tick), D(step), D(notional))
    assert f.min_qty == f.step_size


@pytest.mark.parametrize("sym", ["BTCUSDT", "ETHUSDT", "SOLUSDT"])
def test_maintenance_brackets_are_continuous(sym: str) -> None:
    bs = maintenance_brackets(sym)
    assert bs[0].floor == 0 and all(a.cap == b.floor for a, b in zip(bs, bs[1:], strict=False))
    for a, b in zip(bs, bs[1:], strict=False):
        n = b.floor
        assert n * a.mmr - a.cum == n * b.mmr - b.cum  # no jump in maintenance margin
        assert a.mmr < b.mmr and a.max_leverage >= b.max_leverage
    assert bracket_for(sym, D(0)) is bs[0]
    assert bracket_for(sym, bs[1].floor) is bs[1]
    assert maintenance_brackets("BTCUSDT")[0].mmr == D("0.004")
