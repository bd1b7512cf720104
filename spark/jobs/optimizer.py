"""Optimizer jobs: a parameter sweep, run as one backtest per combination over the same ticks.

Parameters: those of a backtest (``spark.jobs.backtest``: data and base strategy) plus

* ``grid``: parameter name -> list of values, over ``BacktestParams`` fields or
  ``limits.<name>`` (e.g. ``{"band": [0.05, 0.1], "limits.max_orders_per_minute": [10, 60]}``);
  at most ``MAX_COMBINATIONS`` combinations;
* ``objective``: ``pnl`` (default), ``sharpe`` or ``neg_max_drawdown`` — larger is better.

Every combination runs the live pipeline (``run_backtest``) over the same ticks,
read once into columns. The result ranks them; the best one's figures are the job's
metrics. Beware of choosing on the data you report: docs/jobs.md.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

from spark.backtest.engine import BacktestParams, InvalidParams, run_backtest
from spark.errors import SparkError
from spark.jobs.backtest import DATA_KEYS, check_request, load_ticks

MAX_COMBINATIONS = 64
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
            elif name in DATA_KEYS or name in ("grid", "objective"):
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
    rest = {k: v for k, v in params.items() if k not in ("grid", "objective")}
    data, base = check_request(rest, restrict)
    return data, base.as_dict(), combinations(base.as_dict(), params.get("grid")), objective


def run_sweep(params: dict, report: Path | None = None, restrict: bool = True, on_combo=None):
    """Run every combination; a dict with ``metrics`` (the best), ``ranking``, ``artifact_uri``."""
    data, _base, combos, objective = check_sweep(params, restrict)
    ticks = load_ticks(data)
    if not len(ticks):
        raise SparkError(f"no valid ticks in the data as {data['format']}: check the format")
    score = OBJECTIVES[objective]
    ranking = []
    for i, combo in enumerate(combos):
        result = run_backtest(ticks, BacktestParams.from_dict(combo), keep_trades=False)
        metrics = result.metrics()
        value = score(metrics)
        ranking.append(
            {"params": combo, "objective": None if value != value else value, "metrics": metrics}
        )
        if on_combo is not None:
            on_combo(i + 1, len(combos))
    ranking.sort(key=lambda r: r["objective"] if r["objective"] is not None else -math.inf)
    ranking.reverse()  # best first; combinations without a figure (NaN) last
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
