"""``spark model``: evaluate and train the learners on recorded ticks."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import learner_settings, ml_data_options, read_ticks


@cli.group(context_settings=CONTEXT)
def model() -> None:
    """Online models: evaluate on recorded ticks with the live feature and model code."""


@model.command("eval")
@ml_data_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: n, auc, precision_at_20 (and details).",
)
@click.option(
    "--per-file",
    is_flag=True,
    help="Score each file on its own (files in name order, i.e. by day for LEAN files), the "
    "model and features carried from one to the next as a live worker carries them.",
)
def model_eval(paths, fmt, symbol, tz, horizon, model_name, progress, as_json, per_file) -> None:
    """Progressive test-then-train evaluation with delayed labels: every tick is predicted
    before its label is known, and learned from only once its horizon has passed.

    Prints n (scored predictions), AUC and precision@20 (share correct among the 20
    most confident of each block of 1,000 predictions, averaged over blocks).
    """
    from spark.ml.evaluate import evaluate
    from spark.progress import tick_progress

    show = sys.stderr.isatty() if progress is None else progress
    settings = learner_settings(model_name, horizon)
    if per_file:
        _model_eval_per_file(paths, fmt, symbol, tz, settings, show, as_json)
        return
    batch = read_ticks(paths, fmt, symbol, tz)
    with tick_progress(len(batch), show, label="eval") as advance:
        result = evaluate(batch, settings, on_tick=advance)
    if as_json:
        print_json(result.as_dict())
    else:
        click.echo(
            f"{result.model}, H={result.horizon_s:g}s: n={result.n:,} AUC={result.auc:.4f} "
            f"precision@20={result.precision_at_20:.4f} ({result.ticks:,} ticks, "
            f"{result.ties:,} ties skipped, {result.seconds:.1f}s)"
        )


def _model_eval_per_file(paths, fmt, symbol, tz, settings, show, as_json) -> None:
    from spark.ml.evaluate import evaluate_per_file
    from spark.progress import tick_progress

    ordered = sorted(paths, key=lambda p: Path(p).name)  # LEAN names start with the date
    files = [(str(p), read_ticks([p], fmt, symbol, tz)) for p in ordered]
    with tick_progress(sum(len(b) for _, b in files), show, label="eval") as advance:
        rows, total = evaluate_per_file(files, settings, on_tick=advance)
    if as_json:
        out = total.as_dict()
        out["files"] = [{"file": name, **r.as_dict()} for name, r in rows]
        print_json(out)
        return
    for name, r in rows:
        click.echo(
            f"{Path(name).name}: n={r.n:,} AUC={r.auc:.4f} precision@20={r.precision_at_20:.4f}"
        )
    click.echo(
        f"{total.model}, H={total.horizon_s:g}s, all files: n={total.n:,} AUC={total.auc:.4f} "
        f"precision@20={total.precision_at_20:.4f} ({total.seconds:.1f}s)"
    )


@model.command("train")
@ml_data_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def model_train(paths, fmt, symbol, tz, horizon, model_name, progress, as_json) -> None:
    """Fit a model version on recorded ticks and publish it to the registry: champion if
    there is none yet, else a challenger that workers run in shadow from their next start.

    The metrics printed are progressive (each tick predicted before it was learned).
    """
    from spark.ml_jobs import train_and_register
    from spark.progress import tick_progress

    show = sys.stderr.isatty() if progress is None else progress
    batch = read_ticks(paths, fmt, symbol, tz)
    with tick_progress(len(batch), show, label="train") as advance:
        done = train_and_register(batch, learner_settings(model_name, horizon), on_tick=advance)
    r = done.result
    if as_json:
        print_json(
            {"model_id": done.model_id, "version": done.version, "role": done.role, **r.as_dict()}
        )
    else:
        click.echo(
            f"registered {done.model_id} v{done.version} as {done.role}: n={r.n:,} "
            f"AUC={r.auc:.4f} precision@20={r.precision_at_20:.4f} ({r.ticks:,} ticks)"
        )
