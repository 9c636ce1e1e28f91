"""Persistence of the matching engine: ``to_state`` / ``from_state`` (plain JSON-able data).

The state holds everything (specs, fees, fill settings, id counters, last and mark prices,
accounts, every order, fill and income record); an engine rebuilt from it behaves identically.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

from exchange_sim.accounts import FuturesAccount, IncomeRecord, SpotAccount
from exchange_sim.engine_base import EngineBase
from exchange_sim.engine_types import FeeSchedule, Fill, FillConfig, Order
from exchange_sim.specs import exchange_info_symbol
from models.enums import Market
from models.filters import SymbolFilters

_E = TypeVar("_E", bound="Persistence")


class Persistence(EngineBase):
    """Saving and restoring an engine."""

    def to_state(self) -> dict[str, Any]:
        """Everything, as plain JSON/msgpack-able data (Decimals as str)."""
        share = self.fill.max_volume_share
        return {
            "version": 1,
            "market": self.market.value,
            "specs": [exchange_info_symbol(f, self.market) for f in self.specs.values()],
            "fees": {"maker": str(self.fees.maker), "taker": str(self.fees.taker),
                     "bnb_discount": self.fees.bnb_discount},
            "fill": {"fill_on_touch": self.fill.fill_on_touch,
                     "max_volume_share": share,
                     "market_slippage_bps": str(self.fill.market_slippage_bps)},
            "next_order_id": self._next_order_id,
            "next_trade_id": self._next_trade_id,
            "next_tran_id": self._next_tran_id,
            "books": {s: {"last": None if b.last() is None else str(b.last()),
                          "mark": None if b.mark_ext is None else str(b.mark_ext)}
                      for s, b in self._books.items()},
            "accounts": [a.to_state() for a in self._accounts.values()],
            "orders": [o.to_state() for o in self._orders.values()],
            "fills": [f.to_state() for fs in self._fills.values() for f in fs],
            "income": {a: [r.to_state() for r in rs] for a, rs in self._income.items()},
        }

    @classmethod
    def from_state(cls: type[_E], state: dict[str, Any]) -> _E:
        """Rebuild an engine saved by ``to_state``; it behaves identically."""
        if state.get("version") != 1:
            raise ValueError(f"unsupported engine state version {state.get('version')!r}")
        market = Market(state["market"])
        specs = {s["symbol"]: SymbolFilters.from_exchange_info(s) for s in state["specs"]}
        fe, fi = state["fees"], state["fill"]
        eng = cls(market, specs,
                  FeeSchedule(Decimal(fe["maker"]), Decimal(fe["taker"]), fe["bnb_discount"]),
                  FillConfig(fi["fill_on_touch"], fi["max_volume_share"],
                             Decimal(fi["market_slippage_bps"])))
        eng._next_order_id = state["next_order_id"]
        eng._next_trade_id = state["next_trade_id"]
        eng._next_tran_id = state["next_tran_id"]
        for s, b in state["books"].items():
            book = eng._books[s]
            if b["last"] is not None:
                book.last_d = Decimal(b["last"])
                book.last_f = float(book.last_d)
            book.mark_ext = Decimal(b["mark"]) if b["mark"] is not None else None
        for a in state["accounts"]:
            if a["kind"] == "futures":
                fa = FuturesAccount.from_state(a)
                eng._accounts[fa.name] = fa
                eng._income[fa.name] = []
                syms = {s for s, p in fa.positions.items() if p.qty}
                eng._pos_syms[fa.name] = syms
                for s in syms:
                    eng._books[s].pos_accounts.add(fa.name)
                eng._multi += len(syms) >= 2
            else:
                sa = SpotAccount.from_state(a)
                eng._accounts[sa.name] = sa
        for od in state["orders"]:
            o = Order.from_state(od)
            eng._orders[o.order_id] = o
            eng._acct_orders.setdefault((o.account, o.symbol), []).append(o.order_id)
            eng._coid_any[(o.account, o.client_order_id)] = o.order_id
            if o.is_open:
                eng._open_coid[(o.account, o.client_order_id)] = o.order_id
                eng._rest(eng._books[o.symbol], o)
        for fd in state["fills"]:
            f = Fill.from_state(fd)
            eng._fills.setdefault((f.account, f.symbol), []).append(f)
        for name, rs in state["income"].items():
            eng._income[name] = [IncomeRecord.from_state(r) for r in rs]
        return eng
