"""The intrabar path: the candle in progress follows the path the engine fills along, never
shows more of the bar than that path has reached, and ends as the bar itself."""

from __future__ import annotations

import random
from decimal import Decimal

from exchange_sim.engine import Engine, OrderEvent
from exchange_sim.intrabar import path_points, progress
from models.enums import Market, OrderType, Side, TimeInForce

D = Decimal
TICK = D("0.01")


def test_path_corners_bullish_dips_first_bearish_rallies_first() -> None:
    assert path_points(100, 104, 98, 103) == (100, 98, 104, 103)
    assert path_points(100, 104, 98, 99) == (100, 104, 98, 99)
    assert path_points(100, 104, 98, 100) == (100, 98, 104, 100)  # doji: as bullish
    # the direction can be decided on the data's numbers before rounding (as the engine does)
    assert path_points(D(100), D(104), D(98), D(100), bullish=False) == (100, 104, 98, 100)


def test_progress_walks_the_corners_at_the_path_pace() -> None:
    # O 100 -> L 98 (2) -> H 104 (6) -> C 103 (1): path length 9 over 9 000 ms
    pts = (D(100), D(98), D(104), D(103))
    at = {ms: progress(pts, D(90), ms, 9_000, TICK) for ms in (0, 1_000, 2_000, 5_000, 8_000,
                                                               8_500, 9_000, 20_000)}
    row = {ms: (p.open, p.high, p.low, p.close) for ms, p in at.items()}
    assert row[0] == (100, 100, 100, 100) and at[0].volume == 0
    assert row[1_000] == (100, 100, 99, 99)
    assert row[2_000] == (100, 100, 98, 98)  # at the low
    assert row[5_000] == (100, 101, 98, 101)  # on the way up, above the open
    assert row[8_000] == (100, 104, 98, 104)  # at the high
    assert row[8_500] == (100, 104, 98, D("103.5"))
    assert row[9_000] == row[20_000] == (100, 104, 98, 103)  # the whole bar
    assert at[5_000].volume == 50 and at[9_000].volume == 90


def test_a_price_on_the_way_is_rounded_back_toward_where_the_path_came_from() -> None:
    pts = (D(100), D(98), D(104), D(103))
    down = progress(pts, D(1), 500, 9_000, D(1))  # 99.5 on the way down: shows 100
    assert (down.low, down.close) == (100, 100)
    up = progress(pts, D(1), 2_500, 9_000, D(1))  # 98.5 on the way up: shows 98
    assert up.close == 98
    vol = progress(pts, D("0.999"), 3_000, 9_000, TICK, volume_step=D("0.001"))
    assert vol.volume == D("0.333")  # pro rata, rounded down to the step


def test_never_more_than_the_path_reached_and_monotone() -> None:
    rng = random.Random(7)
    for _ in range(300):
        o = D(rng.randint(9_000, 11_000)) * TICK
        c = D(rng.randint(9_000, 11_000)) * TICK
        h = max(o, c) + D(rng.randint(0, 300)) * TICK
        low = min(o, c) - D(rng.randint(0, 300)) * TICK
        pts = path_points(o, h, low, c)
        dur = rng.choice((59_999, 299_999, 3_599_999))
        last = None
        for ms in sorted(rng.sample(range(dur), 25)) + [dur]:
            p = progress(pts, D("12.5"), ms, dur, TICK)
            assert low <= p.low <= p.close <= p.high <= h and p.low <= o <= p.high
            assert p.close % TICK == 0 and 0 <= p.volume <= D("12.5")
            if last is not None:
                assert p.high >= last.high and p.low <= last.low and p.volume >= last.volume
            last = p
        assert last is not None and (last.high, last.low, last.close) == (h, low, c)


def test_the_candle_reaches_a_limit_price_when_the_engine_fills_it() -> None:
    """The engine timestamps a fill when its path reaches the order's price: the candle in
    progress shows that price reached from that millisecond on, and not before."""
    t0, dur = 60_000, 59_999
    o, h, low, c = 30_000.0, 30_120.0, 29_850.0, 30_100.0  # bullish: O -> L -> H -> C
    for price in ("29950.00", "29900.00", "29860.55"):
        e = Engine(Market.SPOT)
        e.create_account("a", {"USDT": D(100_000)})
        e.set_last_price("BTCUSDT", D(o), 0)
        e.place_order("a", "BTCUSDT", Side.BUY, OrderType.LIMIT, qty=D("0.01"), price=D(price),
                      tif=TimeInForce.GTC, ts_ms=1)
        (fill,) = [x for x in e.on_bar("BTCUSDT", t0, t0 + dur, o, h, low, c, 1_000.0)
                   if isinstance(x, OrderEvent) and x.exec_type == "TRADE"]
        ts = fill.fill.time_ms  # type: ignore[union-attr]
        pts = tuple(D(repr(x)).quantize(TICK) for x in path_points(o, h, low, c))
        before = progress(pts, D(1_000), ts - t0 - 1, dur, TICK)  # type: ignore[arg-type]
        after = progress(pts, D(1_000), ts - t0 + 1, dur, TICK)  # type: ignore[arg-type]
        assert before.low > D(price) >= after.low, (price, ts, before, after)
