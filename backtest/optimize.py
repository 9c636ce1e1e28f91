"""``python run.py optimize``: an Optuna study over the strategy's parameters, every trial scored
on walk-forward test folds only, run on the research fast path (``research_options``).

One study per ``--study`` name, persisted in ``<out>/study.db`` (SQLite): re-running the same
command resumes it (trials done count toward ``--trials``; trials a crash or Ctrl-C left
running are marked failed). ``--jobs`` worker processes (default: every core) pull trials from
that storage. TPE (seeded) by default; ``--objectives return,max_drawdown`` runs NSGA-II on
(mean fold return, worst fold drawdown). Single-objective trials report each fold so that
Optuna's median pruner stops hopeless ones early.

Discipline: a span reaching 2026-01-01 (the out-of-sample period) is refused unless
``--allow-out-of-sample``, and then every output says OUT-OF-SAMPLE. Outputs: ``trials.csv``,
``best_config.json`` (a ready ``--config``), ``optimize.json`` (span, git commit, config hash,
search space, the best trials' folds, neighbours, deflated Sharpe) and ``optimize.html``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import multiprocessing as mp
import os
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import optuna
from tqdm import tqdm

from backtest.driver import run_backtest
from backtest.feeds import check_symbols
from backtest.options import BacktestError, BacktestOptions, backtest_config, research_options
from backtest.walkforward import fit_weights
from infra.cli_args import CliError, make_output_dir
from infra.config_io import config_error_lines, load_config
from models import optimize as mo
from models.config import ConfigError, config_to_json, parse_config
from models.enums import Market
from models.timeframes import fmt_ms, parse_time
from models.walkforward import WalkForwardError, parse_spec, windows
from report.optimize_html import write_html

OUT_OF_SAMPLE_MS = parse_time("2026-01-01")
DAY_MS = 86_400_000
REPO = Path(__file__).resolve().parents[1]
DEFAULT_SPACE = REPO / "conf" / "search_space.json"


@dataclass
class StudySpec:
    """Everything a worker process needs (picklable)."""

    study: str
    storage: str
    config_doc: dict[str, Any]
    space: list[dict[str, Any]]
    symbols: tuple[str, ...]
    market: str
    start_ms: int
    end_ms: int
    walk_forward: str
    trials: int
    objectives: tuple[str, ...]
    seed: int
    max_dd_pct: float = -15.0
    min_trades: int = 10
    data_dir: str | None = None
    folds: list[tuple[int, int, int, int]] = field(default_factory=list)


def _load_space(path: Path, doc: dict[str, Any]) -> list[mo.Param]:
    try:
        raw = json.loads(path.read_text())
    except OSError as e:
        raise CliError(f"--space {path}: cannot read: {e.strerror or e}") from None
    except ValueError as e:
        raise CliError(f"--space {path}: not JSON ({e})") from None
    try:
        return mo.parse_space(raw, doc)
    except mo.SearchSpaceError as e:
        raise CliError(*[f"--space {path}: {x}" for x in e.errors]) from None


def _git_commit() -> str:
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def spec_from_args(args: argparse.Namespace) -> StudySpec:
    """Validate the arguments into a ``StudySpec`` (``CliError``: one line per problem)."""
    cfg = load_config(args.config)
    doc = msgspec.to_builtins(cfg)
    space = _load_space(Path(args.space) if args.space else DEFAULT_SPACE, doc)
    raw = args.symbols
    symbols = tuple(s.strip().upper() for s in (raw.split(",") if isinstance(raw, str) else raw)
                    if s.strip())
    market = Market(args.market)
    try:
        check_symbols(symbols, market)
    except BacktestError as e:
        raise CliError(str(e)) from None
    start, end = parse_time(args.start), parse_time(args.end)
    if end <= start:
        raise CliError(f"empty range: --to {args.end} is not after --from {args.start}")
    if end > OUT_OF_SAMPLE_MS and not args.allow_out_of_sample:
        raise CliError(f"--to {fmt_ms(end)[:10]} reaches into 2026, the out-of-sample period: "
                       "tune on data before 2026-01-01 (or pass --allow-out-of-sample, and "
                       "the outputs are marked OUT-OF-SAMPLE)")
    try:
        train, test = parse_spec(args.walk_forward)
        folds = windows(start, end, train, test)
    except WalkForwardError as e:
        raise CliError(f"--walk-forward {args.walk_forward}: {e}") from None
    objectives = tuple(x.strip() for x in args.objectives.split(",") if x.strip())
    bad = [x for x in objectives if x not in ("score", "return", "max_drawdown")]
    if bad or not objectives or (len(objectives) > 1 and "score" in objectives):
        raise CliError(f"--objectives {args.objectives}: 'score' alone, or any of return, "
                       "max_drawdown")
    out = Path(args.out)
    return StudySpec(
        study=args.study, storage=f"sqlite:///{(out / 'study.db').resolve()}",
        config_doc=doc, space=[p.to_dict() for p in space], symbols=symbols,
        market=market.value, start_ms=start, end_ms=end, walk_forward=args.walk_forward,
        trials=args.trials, objectives=objectives, seed=args.seed,
        data_dir=str(args.data) if args.data else None,
        folds=[(w.train_start, w.train_end, w.test_start, w.test_end) for w in folds])


# -- one trial ---------------------------------------------------------------------------------
def _suggest(trial: Any, space: list[mo.Param]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in space:
        if p.choices:
            out[p.name] = trial.suggest_categorical(p.name, list(p.choices))
        elif p.integer:
            out[p.name] = trial.suggest_int(p.name, int(p.low or 0), int(p.high or 0),
                                            log=p.log)
        else:
            out[p.name] = trial.suggest_float(p.name, float(p.low or 0), float(p.high or 0),
                                              log=p.log)
    return out


def _fold(spec: StudySpec, cfg: Any, fold: tuple[int, int, int, int],
          cache: dict[str, Any]) -> tuple[mo.FoldFigures, list[tuple[int, float]]]:
    """Fit on the train window, trade the test window on a fresh account (research path)."""
    tr0, tr1, te0, te1 = fold
    market = Market(spec.market)
    opts = BacktestOptions(config=cfg, symbols=spec.symbols, market=market, start_ms=te0,
                           end_ms=te1, data_dir=Path(spec.data_dir) if spec.data_dir else None)
    # the fit depends on the strategy's parameters and the train window only: cached per both
    key = hashlib.sha256(msgspec.json.encode(cfg.strategy) + f"{tr0}:{tr1}".encode()).hexdigest()
    if key not in cache:
        cache[key] = fit_weights(opts, tr0, tr1, [])
    opts.initial_weights = cache[key] or None
    res = run_backtest(research_options(opts))
    curve = [(int(e["ts_ms"]), float(e["equity"])) for e in res.equity]
    if not curve or curve[0][0] > te0:
        curve.insert(0, (te0, float(res.initial_equity or 0)))
    curve.append((te1, float(res.final_equity or curve[-1][1])))
    fees = sum(float(t.get("fees") or 0) for t in res.trades)
    return mo.fold_figures([v for _, v in curve], len(res.trades), fees), curve


def _daily_returns(curves: list[list[tuple[int, float]]]) -> list[float]:
    """Daily returns of the folds' equity curves (each fold starts afresh)."""
    out: list[float] = []
    for curve in curves:
        last_day, last_v = None, None
        closes: list[float] = []
        for t, v in curve:
            d = t // DAY_MS
            if last_day is not None and d != last_day and last_v is not None:
                closes.append(last_v)
            last_day, last_v = d, v
        if last_v is not None:
            closes.append(last_v)
        out += [b / a - 1.0 for a, b in zip(closes, closes[1:], strict=False) if a > 0]
    return out


def make_objective(spec: StudySpec) -> Any:
    """The Optuna objective of ``spec`` (runs in a worker process)."""
    space = [mo.Param(**{("integer" if k == "int" else k): (tuple(v) if k == "choices" else v)
                         for k, v in p.items()}) for p in spec.space]
    cache: dict[str, Any] = {}
    market = Market(spec.market)

    def objective(trial: Any) -> Any:
        params = _suggest(trial, space)
        cfg, errs = parse_config(json.dumps(mo.apply_params(spec.config_doc, params)))
        if cfg is None or errs:
            trial.set_user_attr("error", "; ".join(errs)[:500])
            raise optuna.TrialPruned(f"config rejected: {'; '.join(errs)[:200]}")
        cfg = backtest_config(cfg, spec.symbols, market)
        folds: list[mo.FoldFigures] = []
        curves: list[list[tuple[int, float]]] = []
        for k, fold in enumerate(spec.folds):
            fig, curve = _fold(spec, cfg, fold, cache)
            folds.append(fig)
            curves.append(curve)
            trial.set_user_attr("folds", [f.__dict__ for f in folds])
            if spec.objectives == ("score",):
                trial.report(sum(f.ret_pct for f in folds) / len(folds), k)
                if trial.should_prune():
                    raise optuna.TrialPruned()
        score, feasible = mo.trial_score(folds, spec.max_dd_pct, spec.min_trades)
        daily = _daily_returns(curves)
        trial.set_user_attr("score", score)
        trial.set_user_attr("feasible", feasible)
        trial.set_user_attr("daily_returns", [round(r, 8) for r in daily])
        trial.set_user_attr("sharpe_daily", mo.sharpe(daily))
        if spec.objectives == ("score",):
            return score
        values = {"return": sum(f.ret_pct for f in folds) / len(folds),
                  "max_drawdown": min(f.max_dd_pct for f in folds)}
        return tuple(values[o] for o in spec.objectives)

    return objective


def _sampler(spec: StudySpec, worker: int) -> Any:
    seed = spec.seed + 1000 * worker
    if len(spec.objectives) > 1:
        return optuna.samplers.NSGAIISampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=8)


def open_study(spec: StudySpec, worker: int = 0) -> Any:
    """Create or load the study (its storage in the output directory)."""
    storage = optuna.storages.RDBStorage(spec.storage,
                                         engine_kwargs={"connect_args": {"timeout": 120}})
    directions = (["maximize"] * len(spec.objectives))
    pruner = (optuna.pruners.MedianPruner(n_startup_trials=6, n_warmup_steps=1)
              if spec.objectives == ("score",) else optuna.pruners.NopPruner())
    return optuna.create_study(study_name=spec.study, storage=storage, load_if_exists=True,
                               directions=directions, sampler=_sampler(spec, worker),
                               pruner=pruner)


def _done(study: Any) -> int:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def worker_main(spec: StudySpec, worker: int) -> None:
    """One worker process: take trials until the study has ``spec.trials`` done."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(spec, worker)
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    try:
        study.optimize(make_objective(spec), n_trials=max(0, spec.trials - _done(study)),
                       callbacks=[optuna.study.MaxTrialsCallback(spec.trials, states=states)],
                       catch=(BacktestError, ValueError, ArithmeticError))
    except KeyboardInterrupt:
        pass


# -- the command -------------------------------------------------------------------------------
def _check_meta(out: Path, meta: dict[str, Any]) -> None:
    """A resumed study must be the same study: same span, folds, space and config."""
    f = out / "study.json"
    if f.exists():
        old = json.loads(f.read_text())
        keys = ("study", "start", "end", "walk_forward", "symbols", "market", "space",
                "config_hash", "objectives")
        diff = [k for k in keys if old.get(k) != meta.get(k)]
        if diff:
            raise CliError(f"--out {out} holds study {old.get('study')!r} with different "
                           f"{', '.join(diff)}: use another --out or --study")
    else:
        f.write_text(json.dumps(meta, indent=2))


def optimize_command(args: argparse.Namespace) -> int:
    """``python run.py optimize``: 0 ok, 2 bad input, 130 interrupted (resumable)."""
    def say(line: str) -> None:
        print(f"gridbot optimize: {line}", file=sys.stderr, flush=True)

    try:
        spec = spec_from_args(args)
    except ConfigError as e:
        raise CliError(*config_error_lines(e, args.config)) from None
    out = make_output_dir(Path(args.out), "--out")
    oos = spec.end_ms > OUT_OF_SAMPLE_MS
    cfg_hash = hashlib.sha256(config_to_json(load_config(args.config))).hexdigest()[:16]
    meta = {"study": spec.study, "start": fmt_ms(spec.start_ms), "end": fmt_ms(spec.end_ms),
            "walk_forward": spec.walk_forward, "symbols": list(spec.symbols),
            "market": spec.market, "space": spec.space, "config_hash": cfg_hash,
            "objectives": list(spec.objectives), "out_of_sample": oos}
    _check_meta(out, meta)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = open_study(spec)
    stale = [t for t in study.get_trials(deepcopy=False)
             if t.state == optuna.trial.TrialState.RUNNING]
    for t in stale:  # left running by a crash or an interrupt: they never finished
        study._storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
    done = _done(study)
    jobs = args.jobs or os.cpu_count() or 1
    say(f"study {spec.study!r}: {done}/{spec.trials} trials done, {len(spec.folds)} walk-"
        f"forward test folds {fmt_ms(spec.folds[0][2])[:10]}..{fmt_ms(spec.folds[-1][3])[:10]}, "
        f"{jobs} worker(s), outputs in {out}" + ("; OUT-OF-SAMPLE span" if oos else ""))
    interrupted = False
    if done < spec.trials:
        interrupted = _run_workers(spec, jobs, study, done, say)
    _write_outputs(out, spec, meta, study, _git_commit(), say)
    if interrupted:
        say(f"interrupted after {_done(study)} trials; run the same command again to resume")
        return 130
    return 0


def _run_workers(spec: StudySpec, jobs: int, study: Any, done: int, say: Any) -> bool:
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=worker_main, args=(spec, w), daemon=True) for w in range(jobs)]
    for p in procs:
        p.start()
    bar = tqdm(total=spec.trials, initial=done, unit="trial", file=sys.stderr,
               dynamic_ncols=True, disable=None, mininterval=1.0)
    last_line = 0.0
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            n = _done(study)
            best = _best_text(study, spec)
            if n > bar.n:
                bar.update(n - bar.n)
            bar.set_postfix_str(best, refresh=False)
            if bar.disable and time.monotonic() - last_line > 30:
                last_line = time.monotonic()
                say(f"{n}/{spec.trials} trials, {best}")
        return False
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join(10)
        return True
    finally:
        bar.close()


def _best_text(study: Any, spec: StudySpec) -> str:
    try:
        if len(spec.objectives) > 1:
            return f"pareto front {len(study.best_trials)}"
        return f"best {study.best_value:+.2f}"
    except ValueError:
        return "no trial complete yet"


def _write_outputs(out: Path, spec: StudySpec, meta: dict[str, Any], study: Any, commit: str,
                   say: Any) -> None:
    trials = [t for t in study.get_trials(deepcopy=False)
              if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
    names = [p["name"] for p in spec.space]
    with open(out / "trials.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["number", "state", "score", "values", "feasible", *names, "fold_returns_pct",
                    "fold_max_dd_pct", "fold_trades", "duration_s"])
        for t in trials:
            folds = t.user_attrs.get("folds") or []
            dur = (t.datetime_complete - t.datetime_start).total_seconds() \
                if t.datetime_complete and t.datetime_start else ""
            w.writerow([t.number, t.state.name, t.user_attrs.get("score", ""),
                        json.dumps(t.values) if t.values else "", t.user_attrs.get("feasible", ""),
                        *[t.params.get(n, "") for n in names],
                        json.dumps([round(f["ret_pct"], 3) for f in folds]),
                        json.dumps([round(f["max_dd_pct"], 3) for f in folds]),
                        json.dumps([f["trades"] for f in folds]), dur])
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    summary: dict[str, Any] = {**meta, "git_commit": commit, "trials_complete": len(complete),
                               "trials_pruned": len(trials) - len(complete),
                               "folds": [[fmt_ms(f[2]), fmt_ms(f[3])] for f in spec.folds],
                               "score": "mean(fold return %) - sd(fold return %); -100 if a "
                                        f"fold's max drawdown < {spec.max_dd_pct} %; "
                                        f"-10 x share of folds with < {spec.min_trades} trades"}
    if not complete:
        (out / "optimize.json").write_text(json.dumps(summary, indent=2))
        say("no complete trial yet: nothing to report")
        return
    if len(spec.objectives) > 1:
        front = sorted(study.best_trials, key=lambda t: -t.values[0])
        best = front[0]
        summary["pareto_front"] = [{"number": t.number, "values": t.values, "params": t.params}
                                   for t in front]
    else:
        best = study.best_trial
    sharpes = [float(t.user_attrs.get("sharpe_daily", 0.0)) for t in complete]
    dsr = mo.deflated_sharpe(best.user_attrs.get("daily_returns") or [], sharpes)
    space = [mo.Param(**{("integer" if k == "int" else k): (tuple(v) if k == "choices" else v)
                         for k, v in p.items()}) for p in spec.space]
    near = mo.neighbours(best.params, [(t.params, float(t.user_attrs.get("score", 0.0)))
                                       for t in complete], space)
    top = sorted(complete, key=lambda t: -float(t.user_attrs.get("score", -1e9)))[:5]
    summary.update({
        "best": {"number": best.number, "params": best.params, "values": best.values,
                 "score": best.user_attrs.get("score"), "folds": best.user_attrs.get("folds"),
                 "sharpe_daily": best.user_attrs.get("sharpe_daily"),
                 "deflated_sharpe": None if math.isnan(dsr) else round(dsr, 4)},
        "top_trials": [{"number": t.number, "score": t.user_attrs.get("score"),
                        "params": t.params, "folds": t.user_attrs.get("folds")} for t in top],
        "neighbours": [{"distance": round(d, 4), "score": s} for d, s in near],
    })
    best_doc = mo.apply_params(spec.config_doc, best.params)
    if meta.get("out_of_sample"):
        best_doc = {"_comment": "OUT-OF-SAMPLE: tuned on data reaching 2026", **best_doc}
        summary["WARNING"] = "OUT-OF-SAMPLE: the span reaches 2026-01-01"
    cfg, errs = parse_config(json.dumps({k: v for k, v in best_doc.items() if k != "_comment"}))
    if cfg is None or errs:
        say(f"best parameters do not make a valid config: {'; '.join(errs)}")
    else:
        (out / "best_config.json").write_text(json.dumps(
            {k: v for k, v in best_doc.items() if k != "_comment"} if not meta.get(
                "out_of_sample") else best_doc, indent=2))
    (out / "optimize.json").write_text(json.dumps(summary, indent=2, default=str))
    try:
        with warnings.catch_warnings():  # PED-ANOVA: no scikit-learn needed (fANOVA needs it)
            warnings.simplefilter("ignore")
            importances = dict(optuna.importance.get_param_importances(
                study, evaluator=optuna.importance.PedAnovaImportanceEvaluator())) \
                if len(spec.objectives) == 1 and len(complete) >= 4 else {}
    except (RuntimeError, ValueError, ImportError):
        importances = {}
    summary["importances"] = importances
    rows = [{"number": t.number, "score": t.user_attrs.get("score")} for t in complete]
    try:
        write_html(out, {**summary, "best": {**summary["best"], "daily_returns":
                                             best.user_attrs.get("daily_returns") or []}},
                   rows, importances)
    except Exception as e:  # noqa: BLE001 - the CSV and JSON outputs stand
        say(f"optimize.html failed: {type(e).__name__}: {e}")
    (out / "optimize.json").write_text(json.dumps(summary, indent=2, default=str))
    b = summary["best"]
    folds_txt = ", ".join(f"{f['ret_pct']:+.2f} %" for f in b["folds"] or [])
    say(f"best trial #{b['number']}: score {b['score']:+.2f} (folds {folds_txt}), deflated "
        f"Sharpe {b['deflated_sharpe']}; best_config.json, trials.csv, optimize.html in {out}")
