"""Optimizer jobs: a parameter sweep, run as one backtest per combination over the same ticks.

Parameters: those of a backtest (``spark.jobs.backtest``: data and base strategy) plus

* ``grid``: parameter name -> list of values, over ``BacktestParams`` fields or
  ``limits.<name>`` (e.g. ``{"band": [0.05, 0.1], "limits.max_orders_per_minute": [10, 60]}``);
  at most ``MAX_COMBINATIONS`` combinations;
* ``objective``: ``pnl`` (default), ``sharpe`` or ``neg_max_drawdown`` — larger is better.

* ``fan_out`` (default true): on a worker, the sweep becomes one child backtest job per
  model run (the combinations that share it as the child's ``variants``) on
  ``backtest.requests`` that the whole worker group shares (``spark.jobs.fanout``); false
  runs it in the taking worker's job process;
* ``walk_forward`` (optional): ``{"folds": K, "mode": "rolling" | "anchored",
  "train_folds": T}``. The ticks are cut into T + K consecutive windows of equal tick
  count; for each of the last K (the test windows) every combination runs on its train
  window (rolling: the T windows before it; anchored: every window before it), the best by
  the objective is chosen there, and scored on the test window, which nothing of the
  choice has read. The result shows in-sample against out-of-sample per window, where the
  chosen combination ranked among all of them on the test window, and the out-of-sample
  totals: the honest figure of the sweep (docs/jobs.md).

Every combination runs the live pipeline over the same ticks, read once into columns;
each window starts fresh (model, features, executor). In one process, combinations that
share the model (model, horizon, gate) step it once, each with its own policy, costs and
executor (``run_backtests``): the same figures as one backtest each, faster. The result
ranks them; the best one's figures are the job's metrics. Runs are deterministic: the same
request gives the same result. Beware of choosing on the data you report: docs/jobs.md.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from spark.backtest.engine import BacktestParams, InvalidParams, run_grouped
from spark.errors import SparkError
from spark.jobs.backtest import (
    DATA_KEYS,
    MIN_WINDOW_TICKS,
    VARIANTS,
    check_request,
    cut,
    job_max_bytes,
    job_max_rows,
    load_ticks,
)

MAX_COMBINATIONS = 64
MAX_FOLDS = 20
WALK_MODES = ("rolling", "anchored")
OBJECTIVES = {
    "pnl": lambda m: m["pnl"],
    "sharpe": lambda m: m["sharpe"],
    "neg_max_drawdown": lambda m: -m["max_drawdown"],
}


def combinations(base: dict, grid: dict) -> list[dict]:
    """Every strategy parameter set of ``grid`` over ``base``; InvalidParams when bad."""
    if not isinstance(grid, dict) or not grid:
        raise InvalidParams('"grid" must be an object of parameter name -> list of values')
    names = sorted(grid)
    for name in names:
        values = grid[name]
        if not isinstance(values, list) or not values:
            raise InvalidParams(f"grid {name!r} must be a non-empty list of values")
    count = math.prod(len(grid[n]) for n in names)
    if count > MAX_COMBINATIONS:
        raise InvalidParams(f"{count} combinations is over the limit of {MAX_COMBINATIONS}")
    out = []
    for values in itertools.product(*(grid[n] for n in names)):
        params = dict(base, limits=dict(base.get("limits") or {}))
        for name, value in zip(names, values, strict=True):
            if name.startswith("limits."):
                params["limits"][name.removeprefix("limits.")] = value
            elif name in (*DATA_KEYS, "grid", "objective", "walk_forward", "fan_out", VARIANTS):
                raise InvalidParams(f"{name!r} cannot be swept")
            else:
                params[name] = value
        BacktestParams.from_dict(params)  # each combination is checked before any runs
        out.append(params)
    return out


def check_sweep(params: dict, restrict: bool = True):
    """(data spec, base params dict, combinations, objective name)."""
    if not isinstance(params, dict):
        raise InvalidParams("parameters must be a JSON object")
    objective = params.get("objective", "pnl")
    if not isinstance(objective, str) or objective not in OBJECTIVES:
        raise InvalidParams(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
    check_walk(params.get("walk_forward"))
    if not isinstance(params.get("fan_out", True), bool):
        raise InvalidParams("fan_out must be true or false")
    if "window" in params:
        raise InvalidParams('"window" names a child backtest\'s ticks; a sweep takes "limit"')
    if VARIANTS in params:
        raise InvalidParams(f'"{VARIANTS}" is a child backtest\'s; a sweep takes "grid"')
    sweep_keys = ("grid", "objective", "walk_forward", "fan_out")
    rest = {k: v for k, v in params.items() if k not in sweep_keys}
    data, base = check_request(rest, restrict)
    return data, base.as_dict(), combinations(base.as_dict(), params.get("grid")), objective


def check_walk(walk) -> dict | None:
    """The walk-forward settings with defaults; InvalidParams names what is wrong."""
    if walk is None:
        return None
    if not isinstance(walk, dict):
        raise InvalidParams('"walk_forward" must be an object like {"folds": 4}')
    unknown = sorted(set(walk) - {"folds", "mode", "train_folds"})
    if unknown:
        raise InvalidParams(f"walk_forward: unknown {unknown}; known: folds, mode, train_folds")
    folds, train = walk.get("folds", 4), walk.get("train_folds", 1)
    mode = walk.get("mode", "rolling")
    for name, value in (("folds", folds), ("train_folds", train)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_FOLDS:
            raise InvalidParams(f"walk_forward {name} must be a whole number 1..{MAX_FOLDS}")
    if mode not in WALK_MODES:
        raise InvalidParams(f"walk_forward mode must be one of {', '.join(WALK_MODES)}")
    return {"folds": folds, "mode": mode, "train_folds": train}


def fold_cuts(walk: dict) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(train, test) of each fold as cuts [a, b) of the T + K windows.

    >>> fold_cuts({"folds": 2, "mode": "rolling", "train_folds": 1})
    [((0, 1), (1, 2)), ((1, 2), (2, 3))]
    >>> fold_cuts({"folds": 2, "mode": "anchored", "train_folds": 2})
    [((0, 2), (2, 3)), ((0, 3), (3, 4))]

    Cut i of m windows of n ticks is at ``cut(n, i, m)``: 100 ticks, 5 windows of 20.

    >>> [cut(100, i, 5) for i in range(6)]
    [0, 20, 40, 60, 80, 100]
    """
    k, t = walk["folds"], walk["train_folds"]
    out = []
    for f in range(k):
        lo = 0 if walk["mode"] == "anchored" else f
        out.append(((lo, t + f), (t + f, t + f + 1)))
    return out


def unique_windows(walk: dict) -> list[tuple[int, int]]:
    """Every window a walk-forward runs the combinations on, once (rolling with one train
    window: fold f's test window is fold f + 1's train window)."""
    return list(dict.fromkeys(w for fold in fold_cuts(walk) for w in fold))


def _rank(ticks, combos, score, on_combo=None, done: int = 0, total: int = 0) -> list[dict]:
    """Every combination on ``ticks``, best first (NaN objectives last). Combinations that
    share the model (model, horizon, gate) run as one model run with a policy each
    (``run_grouped``; the figures are each one's own backtest's); each one's ``seconds``
    is its share of that run."""
    ran = [done]

    def progress(n: int) -> None:
        ran[0] += n
        if on_combo is not None:
            on_combo(ran[0], total or len(combos))

    params = [BacktestParams.from_dict(combo) for combo in combos]
    ranking = []
    for i, result in enumerate(run_grouped(ticks, params, keep_trades=False, on_group=progress)):
        metrics = result.metrics()
        value = score(metrics)
        ranking.append(
            {
                "index": i,
                "params": combos[i],
                "objective": None if value != value else value,
                "metrics": metrics,
            }
        )
    return best_first(ranking)


def best_first(ranking: list[dict]) -> list[dict]:
    """Entries by objective, best first; without a figure (None) last; ties by index."""
    ranking.sort(key=lambda r: (r["objective"] is not None, r["objective"] or 0.0, -r["index"]))
    ranking.reverse()
    return ranking


def _better(a: float | None, b: float | None) -> bool:
    return a is not None and (b is None or a > b)


def walk_forward(ticks, combos, objective: str, walk: dict, on_combo=None) -> dict:
    """Choose on each train window, score on the next test window (module docstring), in
    this process: every window's ranking once."""
    score = OBJECTIVES[objective]
    m = walk["folds"] + walk["train_folds"]
    spans = unique_windows(walk)
    total, ranked = len(spans) * len(combos), {}
    for w, (a, b) in enumerate(spans):
        lo, hi = cut(len(ticks), a, m), cut(len(ticks), b, m)
        ranking = _rank(ticks.take(lo, hi), combos, score, on_combo, w * len(combos), total)
        ranked[a, b] = (ranking, [int(ticks.ts[lo]), int(ticks.ts[hi - 1]), hi - lo])
    return walk_report(ranked, combos, objective, walk)


def walk_report(ranked: dict, combos, objective: str, walk: dict) -> dict:
    """The walk-forward result from every window's ranking: ``ranked`` maps a window's cuts
    (a, b) to (its ranking, best first, [first ts, last ts, ticks])."""
    rows = []
    for f, (train_cuts, test_cuts) in enumerate(fold_cuts(walk)):
        (train, train_span), (test, test_span) = ranked[train_cuts], ranked[test_cuts]
        chosen = train[0]
        scored = next(r for r in test if r["index"] == chosen["index"])
        rows.append(
            {
                "fold": f + 1,
                "train": train_span,
                "test": test_span,
                "params": chosen["params"],
                "in_sample": chosen["objective"],
                "out_of_sample": scored["objective"],
                # 1 + how many did strictly better on the test window (ties do not flatter)
                "oos_rank": 1 + sum(_better(r["objective"], scored["objective"]) for r in test),
                "oos_best": test[0]["objective"],  # hindsight, for comparison only
                "in_sample_metrics": chosen["metrics"],
                "out_of_sample_metrics": scored["metrics"],
            }
        )

    def total_of(key: str, figure: str) -> float:
        return float(sum(r[key][figure] for r in rows))

    def mean_of(key: str) -> float:
        values = [r[key] for r in rows if r[key] is not None]
        return float(sum(values) / len(values)) if values else math.nan

    summary = {
        "folds": float(len(rows)),
        "combinations": float(len(combos)),
        "is_objective_mean": mean_of("in_sample"),
        "oos_objective_mean": mean_of("out_of_sample"),
        "is_pnl": total_of("in_sample_metrics", "pnl"),
        "oos_pnl": total_of("out_of_sample_metrics", "pnl"),
        "oos_fees": total_of("out_of_sample_metrics", "fees"),
        "oos_fills": total_of("out_of_sample_metrics", "fills"),
        "oos_rank_mean": float(sum(r["oos_rank"] for r in rows) / len(rows)),
    }
    return {"walk": walk, "objective": objective, "windows": rows, "summary": summary}


def run_sweep(params: dict, report: Path | None = None, restrict: bool = True, on_combo=None):
    """Run every combination; a dict with ``metrics`` (the best), ``ranking``, ``artifact_uri``;
    with ``walk_forward``, ``metrics`` are the out-of-sample totals and ``walk`` the windows."""
    data, _base, combos, objective = check_sweep(params, restrict)
    ticks = load_ticks(data, *((job_max_rows(), job_max_bytes()) if restrict else ()))
    if not len(ticks):
        raise SparkError(f"no valid ticks in the data as {data['format']}: check the format")
    walk = check_walk(params.get("walk_forward"))
    if walk is not None:
        if len(ticks) < MIN_WINDOW_TICKS * (walk["folds"] + walk["train_folds"]):
            raise SparkError(
                f"{len(ticks):,} ticks are too few for {walk['folds'] + walk['train_folds']} "
                "windows (at least 100 each): fewer folds or more data"
            )
        out = walk_forward(ticks, combos, objective, walk, on_combo)
        artifact = None
        if report is not None:
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text(json.dumps(out | {"data": data}, default=str) + "\n")
            artifact = report.resolve().as_uri()
        return {
            "metrics": out["summary"],
            "walk": out,
            "objective": objective,
            "artifact_uri": artifact,
        }
    score = OBJECTIVES[objective]
    ranking = _rank(ticks, combos, score, on_combo)  # best first, without a figure (NaN) last
    for row in ranking:
        del row["index"]
    best = ranking[0]
    metrics = dict(best["metrics"], combinations=float(len(combos)))
    artifact = None
    if report is not None:
        report.parent.mkdir(parents=True, exist_ok=True)
        body = {"objective": objective, "data": data, "ranking": ranking}
        report.write_text(json.dumps(body, default=str) + "\n")
        artifact = report.resolve().as_uri()
    return {
        "metrics": metrics,
        "best": best,
        "ranking": ranking,
        "objective": objective,
        "artifact_uri": artifact,
    }
