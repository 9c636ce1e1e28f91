"""Text for people on the terminal (``infra.termfmt``): money rounded to the cent, prices and
quantities as given, percentages, leverage, durations, long decimals in free text."""

from __future__ import annotations

from infra import termfmt as con


def test_money_is_rounded_for_people() -> None:
    assert con.money("10012.3456") == "10,012.35"
    assert con.money("-0.209204", signed=True) == "-0.21"
    assert con.money("2.01206116", signed=True) == "+2.01"
    assert con.money("0.0023") == "0.0023"  # below a cent: two significant digits, not 0.00
    assert con.money("0") == "0.00" and con.money("-0.004") == "-0.004"
    assert con.money("-0.006") == "-0.01" and con.money("0.001", signed=True) == "+0.001"
    assert con.money(None) == con.money("NaN") == con.money("junk") == "?"


def test_numbers_percentages_and_durations() -> None:
    assert con.number("94210.50") == "94,210.5"
    assert con.number("-2", signed=True) == "-2" and con.number("0.3", signed=True) == "+0.3"
    assert con.number("192.9466666666666666666666667", like="194.2") == "192.95"
    assert con.number("96107.17941176", like="96392.9") == "96,107.18"
    assert con.pct(0.0012) == "+0.12%" and con.pct(-0.000012) == "0.00%"
    assert con.pct(-0.0512, signed=False, digits=1) == "-5.1%"
    assert con.times(6.0) == "6x" and con.times(0.0384) == "0.04x"
    assert [con.duration(s) for s in (45, 300.125, 1626, 7680, 200_000)] == [
        "45s", "5m", "27m", "2h08m", "2d07h"]
    assert con.tidy("UTILIZATION (8303.2464 > 8048.836713455100000000000000)") == \
        "UTILIZATION (8303.2464 > 8,048.84)"
