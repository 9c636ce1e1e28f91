"""Walk-forward backtests: fit the strategy's initial feature weights on each train window,
trade the next test window on a fresh account, report only the test windows."""

from __future__ import annotations

import json
from typing import Any

from backtest.driver import run_backtest
from backtest.feeds import load_bars
from backtest.options import BacktestError, BacktestOptions
from exchange_sim import marketdata as md
from models.config import base_interval
from models.strategy import fit_initial_weights
from models.timeframes import fmt_ms
from models.walkforward import WalkForwardError, chain_equity, parse_spec, windows
from report.build import build_report, write_equity_csv, write_trades_csv


def fit_weights(opts: BacktestOptions, train_start: int, train_end: int,
                notes: list[str]) -> dict[str, Any]:
    """Initial feature weights per symbol fitted on ``[train_start, train_end)`` base bars."""
    cfg = opts.config
    if cfg.strategy.kind != "adaptive":
        notes.append(f"{cfg.strategy.kind}: no feature weights to fit")
        return {}
    base_iv, base_ms = base_interval(cfg)
    out: dict[str, Any] = {}
    for sym in opts.symbols:
        try:
            bars = load_bars(opts, sym, base_iv, train_start, train_end, train_start, notes)
            bars = bars.slice_time(train_start, train_end)
            out[sym] = fit_initial_weights(bars, cfg.strategy, base_ms)
        except (BacktestError, md.DataError, ValueError) as e:
            notes.append(f"{sym}: weights not fitted on {fmt_ms(train_start)[:10]}.."
                         f"{fmt_ms(train_end)[:10]} ({e}); default weights")
    return out


def run_walk_forward(opts: BacktestOptions, spec: str) -> dict[str, Any]:
    """Fit initial weights on each train window, trade each test window (a fresh account per
    fold), report only the test windows: ``fold_NN/`` per fold, and at the top level
    trades.csv (all folds), equity.csv (fold curves compounded), walkforward.json and the
    report built from those. ``opts.out_dir`` must be set."""
    try:
        train_days, test_days = parse_spec(spec)
        folds = windows(opts.start_ms, opts.end_ms, train_days, test_days)
    except WalkForwardError as e:
        raise BacktestError(str(e)) from e
    if opts.out_dir is None:
        raise BacktestError("a walk-forward run needs an output directory")
    out = opts.out_dir
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    trades: list[dict[str, Any]] = []
    curves: list[list[tuple[int, float]]] = []
    events: list[dict[str, Any]] = []
    gaps: list[str] = []
    data_issues: list[str] = []
    errors: list[str] = []
    initial = None
    for w in folds:
        notes: list[str] = []
        weights = fit_weights(opts, w.train_start, w.train_end, notes)
        fo = BacktestOptions(**{**opts.__dict__, "start_ms": w.test_start, "end_ms": w.test_end,
                                "out_dir": out / f"fold_{w.index:02d}",
                                "initial_weights": weights or None, "charts": False})
        res = run_backtest(fo)
        initial = initial if initial is not None else float(res.initial_equity or 0)
        rep = (res.report or {}).get("summary") if res.report else None
        rows.append({"fold": w.index, "train": [fmt_ms(w.train_start), fmt_ms(w.train_end)],
                     "test": [fmt_ms(w.test_start), fmt_ms(w.test_end)],
                     "weights": {s: getattr(x, "source", "") for s, x in weights.items()},
                     "initial_equity": res.initial_equity, "final_equity": res.final_equity,
                     "trades": len(res.trades), "fills": res.fills, "report": rep,
                     "notes": notes + res.notes})
        trades += [{**t, "fold": w.index} for t in res.trades]
        curves.append([(int(e["ts_ms"]), float(e["equity"])) for e in res.equity])
        events += [e for e in res.trades] + res.fills_log
        gaps += res.gaps
        data_issues += [d for d in res.data_issues if d not in data_issues]
        errors += res.actor_errors
    chained = chain_equity(curves, initial or 0.0)
    peak = 0.0
    eq_rows: list[dict[str, Any]] = []
    for t, v in chained:
        peak = max(peak, v)
        eq_rows.append({"event": "EQUITY", "ts_ms": t, "equity": f"{v:.8f}",
                        "peak_equity": f"{peak:.8f}",
                        "drawdown": round(v / peak - 1.0, 6) if peak else 0.0,
                        "leverage": 0.0, "worst_case_leverage": 0.0, "drawdown_level": "",
                        "state": ""})
    write_trades_csv(out / "trades.csv", trades)
    write_equity_csv(out / "equity.csv", eq_rows)
    summary = {"start": fmt_ms(opts.start_ms), "end": fmt_ms(opts.end_ms),
               "walk_forward": {"train_days": train_days, "test_days": test_days},
               "folds": rows, "trades": len(trades), "initial_equity": initial,
               "final_equity": chained[-1][1] if chained else initial, "gaps": gaps,
               "data_issues": data_issues,
               "actor_errors": errors, "out_dir": str(out)}
    (out / "walkforward.json").write_text(json.dumps(summary, indent=2, default=str))
    if opts.report:
        try:
            evs = sorted(events + eq_rows, key=lambda e: int(e.get("ts_ms") or 0))
            build_report(out, None, events=evs, meta={
                "initial_equity": initial, "market": opts.market.value,
                "strategy": opts.config.strategy.kind, "source": "walk-forward",
                "weights": dict(opts.config.portfolio.weights)}, charts=opts.charts)
        except Exception as e:  # noqa: BLE001 - the folds' outputs stay valid
            summary["report_error"] = f"{type(e).__name__}: {e}"
    return summary
