"""report.html formatting: money, percentages, dates, 4 significant digits, the monthly table,
the summary's rows and the page's title."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from report import html as rh
from report.build import build_report
from tests.report.test_build import DAY, T0, _hand_log, _write


@pytest.mark.parametrize(("value", "signed", "text"), [
    ("154.04693782", False, "154.05"), ("154.04693782", True, "+154.05"),
    ("-449.1059794", True, "-449.11"), ("1020.46028721", False, "1,020.46"),
    ("3161475.39441", False, "3,161,475"), ("-100000.5", False, "-100,001"),
    ("-0.001", True, "0.00"), ("0", True, "0.00"), (None, False, "–"), ("x", False, "–"),
    (Decimal("99999.994"), False, "99,999.99"), (10000.0, False, "10,000.00"),
])
def test_money_to_the_cent_or_the_unit(value: object, signed: bool, text: str) -> None:
    assert rh.fmt_money(value, signed) == text


@pytest.mark.parametrize(("value", "text"), [
    (0.863607793840352, "0.8636"), (10.764705882352942, "10.76"), (-0.0025633, "-0.002563"),
    (0.2, "0.2"), (1.0, "1"), (10154.04693782, "10,154"), (1234.5, "1,234"),
    (2.5e-9, "0.0000000025"), (0.0, "0"), (None, "–"), (float("nan"), "–"),
])
def test_four_significant_digits(value: object, text: str) -> None:
    assert rh.fmt_sig(value) == text


def test_figures_by_kind() -> None:
    assert rh.fmt_figure("max_drawdown_peak_ms", 1736742900000) == "2025-01-13 04:35"
    assert rh.fmt_figure("end_ms", 1743465600000) == "2025-04-01"
    assert rh.fmt_figure("max_drawdown_duration_s", 6722700.0) == "77.8 d"
    assert rh.fmt_figure("time_in_drawdown_level_s.1", 5400.0) == "1.5 h"
    assert rh.fmt_figure("trades.avg_holding_s", 3195.98) == "53 min"
    assert rh.fmt_figure("pnl.net", "154.04693782") == "154.05"
    assert rh.fmt_figure("orders_placed", 10489) == "10,489"
    assert rh.fmt_figure("sharpe", 0.4856866634496927) == "0.4857"
    assert rh.fmt_pct(0.015404693782) == "1.54 %" and rh.fmt_pct(-0.2, 1, True) == "-20.0 %"
    assert rh.fmt_dur(42) == "42 s" and rh.fmt_date(None) == "–"


def test_monthly_table_one_table_months_touched() -> None:
    head, rows = rh.monthly_table([
        ("Portfolio", {"2025-01": -0.04, "2025-02": 0.03, "2025-03": 0.01}),
        ("BTCUSDT", {"2025-01": 0.1, "2025-02": 0.0, "2025-03": -0.1})])
    assert head == ["Jan", "Feb", "Mar"]
    assert [(r["name"], r["year"]) for r in rows] == [("Portfolio", "2025"), ("BTCUSDT", "2025")]
    assert [c["text"] for c in rows[0]["cells"]] == ["-4.00 %", "3.00 %", "1.00 %"]
    assert rows[0]["total"]["text"] == f"{((0.96 * 1.03 * 1.01) - 1) * 100:.2f} %"
    assert rows[1]["cells"][2]["cls"] == "neg"
    # two years: all twelve months, a row per name and year it has
    head, rows = rh.monthly_table([("Portfolio", {"2025-11": 0.01, "2025-12": 0.02,
                                                   "2026-01": 0.03})])
    assert len(head) == 12 and [r["year"] for r in rows] == ["2025", "2026"]
    assert rows[1]["cells"][0]["text"] == "3.00 %" and rows[1]["cells"][1]["text"] == ""


def _row(page: str, label: str) -> str:
    i = page.index(f'<th class="l">{label}</th>')
    return page[i:page.index("</tr>", i)]


def test_page_title_summary_and_all_figures(tmp_path: Path) -> None:
    rep = build_report(tmp_path, _write(tmp_path / "g.jsonl", _hand_log()), charts=False,
                       meta={"source": "backtest", "strategy": "static_grid",
                             "market": "futures", "initial_equity": 1000})
    page = (tmp_path / "report.html").read_text()
    assert "<title>Backtest: static grid, futures · gridbot</title>" in page
    assert "BTCUSDT · ETHUSDT · 2025-01-01 → 2025-01-01 10:00 UTC" in page
    assert "weights: meta" not in page and "[report]" not in page
    assert "(from the run&#39;s configuration)" in page or "from the log" in page
    assert '"10000"' not in page  # meta values are not printed as JSON
    # summary: money to the cent with a sign, one duration row when they are the same
    assert ">+12.00<" in _row(page, "Net PnL")  # BTC: 10 gross - 1 fee - 2 funding + 5
    assert "Longest drawdown" not in page
    p = rep["portfolio"]
    assert p["longest_drawdown_s"] == p["max_drawdown_duration_s"]
    # all figures: rounded text, exact value kept
    row = _row(page, "trades.win_rate")
    assert 'data-v="1.0"' in row and ">1<" in row
    row = _row(page, "max_drawdown_trough_ms")
    assert f'data-v="{p["max_drawdown_trough_ms"]}"' in row and ">2025-01-01 05:00<" in row
    assert f'data-v="{p["days"]}"' in _row(page, "days")
    assert rep["generated_from"]["end_ms"] - rep["generated_from"]["start_ms"] < DAY


def test_no_meta_gets_a_plain_title(tmp_path: Path) -> None:
    build_report(tmp_path, events=[{"ts_ms": T0, "event": "EQUITY", "equity": "100"},
                                   {"ts_ms": T0 + DAY, "event": "EQUITY", "equity": "101"}],
                 charts=False)
    page = (tmp_path / "report.html").read_text()
    assert "<h1>Performance report</h1>" in page
    assert "No drawdown level recorded" not in page  # level 0 from the start


def test_charts_and_template_come_with_a_plain_install() -> None:
    """The README's first install (`pip install -e '.[test]'`) brings matplotlib and Jinja2,
    pinned; the template ships as package data; the `report` extra still resolves."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    requires = {r.split(">")[0].split("=")[0].strip(): r.strip()
                for r in cfg["options"]["install_requires"].splitlines() if r.strip()}
    assert requires["matplotlib"] == "matplotlib>=3.8,<4"
    assert requires["jinja2"] == "jinja2>=3.1,<4"
    assert "report" in cfg["options.extras_require"]
    assert cfg["options.package_data"]["report"].strip() == "templates/*.j2"
    assert (Path(rh.__file__).parent / "templates" / "report.html.j2").is_file()
