"""Deterministic client order ids: unique, short, injective, parseable."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.client_ids import client_order_id, generation_of, parse_client_order_id

# -- client order ids ------------------------------------------------------------------------------
ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,36}$")
SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BTC", "BTCUSDC", "BTCUSDCUSDT", "1000PEPEUSDT",
           "VERYLONGSYMBOLNAMEXUSDT"]
KEYS = ["L1", "L-1", "L+1", "S2", "TP-L", "SL-S", "L-10", "x" * 40, "a.b", "a-b-c", "ü",
        "L 1", "1", "-", "--", "TP:L"]


def test_ids_unique_short_and_deterministic_over_grid() -> None:
    seen: dict[str, tuple] = {}
    for sym in SYMBOLS:
        for key in KEYS:
            for gen in [0, 1, 2, 35, 36, 1295, 10**6, 2**31]:
                cid = client_order_id("gb", sym, key, gen)
                assert ID_RE.match(cid), cid
                assert cid == client_order_id("gb", sym, key, gen)
                assert seen.setdefault(cid, (sym, key, gen)) == (sym, key, gen), cid
                assert generation_of(cid) == gen
    assert len(seen) == len(SYMBOLS) * len(KEYS) * 8


@settings(max_examples=300, deadline=None)
@given(sym=st.sampled_from(SYMBOLS), k1=st.text(min_size=1, max_size=50),
       k2=st.text(min_size=1, max_size=50), g1=st.integers(0, 10**9), g2=st.integers(0, 10**9))
def test_ids_injective_property(sym: str, k1: str, k2: str, g1: int, g2: int) -> None:
    a = client_order_id("gb", sym, k1, g1)
    b = client_order_id("gb", sym, k2, g2)
    assert ID_RE.match(a) and ID_RE.match(b)
    assert (a == b) == ((k1, g1) == (k2, g2))


def test_id_rejects_bad_inputs_and_parses_back() -> None:
    for bad in [("g-b", "BTCUSDT", "L1", 0), ("gb", "btcusdt", "L1", 0),
                ("gb", "BTCUSDT", "", 0), ("gb", "BTCUSDT", "L1", -1)]:
        with pytest.raises(ValueError):
            client_order_id(*bad)
    # a trailing newline is not a plain character ("$" would have let it through)
    for bad in [("gb\n", "BTCUSDT", "L1", 0), ("gb", "BTCUSDT\n", "L1", 0)]:
        with pytest.raises(ValueError):
            client_order_id(*bad)
    nl = client_order_id("gb", "BTCUSDT", "0\n", 0)
    assert ID_RE.fullmatch(nl) and nl != client_order_id("gb", "BTCUSDT", "0", 0)
    cid = client_order_id("gb", "ETHUSDT", "L-3", 40)
    assert cid == "gb-ETH-L-3-14"
    p = parse_client_order_id(cid, "gb")
    assert p is not None and (p.symbol_code, p.key, p.generation) == ("ETH", "L-3", 40)
    assert parse_client_order_id("web_abc", "gb") is None
