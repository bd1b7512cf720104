"""``spark optimize``: parameter sweeps, here or on the workers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import backtest_options, backtest_params, print_backtest, submit_job


@cli.group(context_settings=CONTEXT)
def optimize() -> None:
    """Parameter sweeps: one backtest per combination over the same ticks, ranked by an
    objective (docs/jobs.md). `run` works here; `submit` asks the workers."""


def _sweep_options(command):
    options = [
        click.option(
            "--grid",
            "grid",
            multiple=True,
            required=True,
            metavar="NAME=V1,V2,...",
            help="Values to try for a backtest parameter (band, fee_bp, model, gate, "
            "latency_ms, order_notional, horizon_s, horizon_moves, limits.<limit>); repeat for "
            "more.",
        ),
        click.option(
            "--objective",
            type=click.Choice(["pnl", "sharpe", "neg_max_drawdown"]),
            default="pnl",
            show_default=True,
            help="What the ranking maximises.",
        ),
        click.option(
            "--walk-forward",
            "folds",
            type=click.IntRange(1, 20),
            help="Walk-forward: choose on each train window, score on the next of K test "
            "windows (out of sample); K = this.",
        ),
        click.option(
            "--anchored/--rolling",
            default=False,
            show_default=True,
            help="Walk-forward train windows: everything before the test window, or the "
            "--train-folds windows just before it.",
        ),
        click.option(
            "--train-folds",
            type=click.IntRange(1, 20),
            default=1,
            show_default=True,
            help="Walk-forward: windows of the first train window (each window holds "
            "1/(K + this) of the ticks).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return backtest_options(command)


def _sweep_params(grid, objective, folds, anchored, train_folds, **options) -> dict:
    params = backtest_params(**options)
    if folds:
        mode = "anchored" if anchored else "rolling"
        params["walk_forward"] = {"folds": folds, "mode": mode, "train_folds": train_folds}
    sweep = {}
    for item in grid:
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise click.BadParameter(f"{item!r} is not NAME=V1,V2,...", param_hint="--grid")
        parsed = []
        for raw in values.split(","):
            try:
                parsed.append(json.loads(raw))
            except json.JSONDecodeError:
                parsed.append(raw.strip())
        sweep[name.strip()] = parsed
    params.update(grid=sweep, objective=objective)
    from spark.backtest.engine import InvalidParams
    from spark.jobs.optimizer import check_sweep

    try:
        check_sweep(params, restrict=False)
    except InvalidParams as exc:
        raise click.UsageError(str(exc)) from None
    return params


def _value_of(params: dict, name: str):
    if name.startswith("limits."):
        return params["limits"].get(name.removeprefix("limits."))
    return params[name]


def _print_ranking(ranking: list[dict], objective: str, grid: dict) -> None:

    click.echo(f"{len(ranking)} combinations, best first by {objective}:")
    for row in ranking[:10]:
        chosen = ", ".join(f"{n}={_value_of(row['params'], n)}" for n in sorted(grid))
        m = row["metrics"]
        value = "n/a" if row["objective"] is None else f"{row['objective']:,.2f}"
        click.echo(
            f"  {objective} {value:>12}  [{chosen}]  orders {m['orders']:,.0f}, "
            f"PnL {m['pnl']:,.2f}, max DD {m['max_drawdown']:,.2f}"
        )


def _print_walk(walk: dict, grid: dict) -> None:
    from datetime import UTC, datetime

    def when(us: int) -> str:
        return datetime.fromtimestamp(us / 1e6, UTC).strftime("%m-%d %H:%M")

    def fmt(v) -> str:
        return "n/a" if v is None else f"{v:,.2f}"

    w, objective = walk["walk"], walk["objective"]
    combos = int(walk["summary"]["combinations"])
    click.echo(
        f"walk-forward, {w['mode']}, {w['folds']} test windows, {objective}: chosen on each "
        "train window, scored on the next (out of sample)"
    )
    click.echo(
        f"  {'fold':>4}  {'test window (UTC)':<25} {'in-sample':>12} {'out-of-sample':>14} "
        f"{'rank':>5}  chosen"
    )
    for row in walk["windows"]:
        test = f"{when(row['test'][0])} .. {when(row['test'][1])}"
        chosen = ", ".join(f"{n}={_value_of(row['params'], n)}" for n in sorted(grid))
        click.echo(
            f"  {row['fold']:>4}  {test:<25} {fmt(row['in_sample']):>12} "
            f"{fmt(row['out_of_sample']):>14} {row['oos_rank']:>3}/{combos:<3} {chosen}"
        )
    s = walk["summary"]
    click.echo(
        f"out of sample: PnL {s['oos_pnl']:,.2f} over {s['folds']:.0f} windows (in sample "
        f"{s['is_pnl']:,.2f}); {objective} mean {fmt(s['oos_objective_mean'])} vs "
        f"{fmt(s['is_objective_mean'])} in sample; the chosen ranked {s['oos_rank_mean']:.1f} "
        f"of {s['combinations']:.0f} on average out of sample"
    )


@optimize.command("run")
@_sweep_options
@click.option("--report", type=click.Path(path_type=Path), help="Also write the ranking as JSON.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the ranking and the best.")
def optimize_run(report, as_json, **options) -> None:
    """Run a sweep here, on files on this machine; prints the ranking (progress on stderr)."""
    from spark.jobs.optimizer import run_sweep

    params = _sweep_params(**options)
    show = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            click.echo(f"\r{done}/{total} backtests", nl=False, err=True)

    out = run_sweep(params, report, restrict=False, on_combo=progress)
    if show:
        click.echo("", err=True)
    if "walk" in out:
        if as_json:
            print_json({"walk_forward": out["walk"], "artifact_uri": out["artifact_uri"]})
        else:
            _print_walk(out["walk"], params["grid"])
        return
    if as_json:
        print_json({k: out[k] for k in ("objective", "best", "ranking", "artifact_uri")})
        return
    _print_ranking(out["ranking"], out["objective"], params["grid"])


@optimize.command("submit")
@_sweep_options
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=1800.0, show_default=True)
@click.option(
    "--fan-out/--one-process",
    default=True,
    show_default=True,
    help="One child backtest job per model run (the combinations that share the model, "
    "horizon and gate, at most 16; and per walk-forward window) shared by every worker, or "
    "the whole sweep in one job process of one worker (docs/jobs.md has the figures).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as one JSON object.")
def optimize_submit(wait, timeout, fan_out, as_json, **options) -> None:
    """Send the sweep to the workers (a JobRequest on the optimizer requests topic); the
    ranking is in the JSON report on the worker (artifact_uri)."""
    params = _sweep_params(**options)
    if not fan_out:
        params["fan_out"] = False
    result = submit_job("optimizer", "sweep", params, wait, timeout, as_json)
    if result is None:
        return
    if "walk_forward" in params:
        m = result["metrics"]
        click.echo(
            f"walk-forward over {m['folds']:.0f} test windows, {m['combinations']:.0f} "
            f"combinations: out-of-sample PnL {m['oos_pnl']:,.2f} (in sample "
            f"{m['is_pnl']:,.2f}), the chosen ranked {m['oos_rank_mean']:.1f} on average"
        )
        click.echo(f"every window on the worker: {result['artifact_uri']}")
        return
    click.echo(f"{result['metrics'].get('combinations', 0):.0f} combinations; the best:")
    print_backtest(result["metrics"])
    click.echo(f"ranking on the worker: {result['artifact_uri']}")
