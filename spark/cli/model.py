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
@click.option(
    "--fresh",
    is_flag=True,
    help="With --per-file: start each file from a new model and feature state, as if it "
    "were evaluated alone (each day on its own, as the offline targets are checked), "
    "instead of carrying them across files.",
)
@click.option(
    "--pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --per-file: also write a PDF with AUC and precision@20 per file as charts.",
)
def model_eval(
    paths, fmt, symbol, tz, horizon, model_name, progress, as_json, per_file, fresh, pdf
) -> None:
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
        _model_eval_per_file(paths, fmt, symbol, tz, settings, show, as_json, pdf, fresh)
        return
    if pdf is not None:
        raise click.UsageError("--pdf charts the files of --per-file; add --per-file")
    if fresh:
        raise click.UsageError("--fresh starts each file of --per-file anew; add --per-file")
    batch = read_ticks(paths, fmt, symbol, tz)
    with tick_progress(len(batch), show, label="eval") as advance:
        result = evaluate(batch, settings, on_tick=advance)
    if as_json:
        print_json(result.as_dict())
    else:
        click.echo(
            f"{result.model}, H={result.horizon}: n={result.n:,} AUC={result.auc:.4f} "
            f"precision@20={result.precision_at_20:.4f} ({result.ticks:,} ticks, "
            f"{result.ties:,} ties skipped, {result.seconds:.1f}s)"
        )


AUC_TARGET, P20_TARGET = 0.62, 0.58  # the offline SLO of docs/ml.md


def per_file_summary(rows) -> dict:
    """Mean, worst and spread of AUC and precision@20 over files, and files meeting the
    targets (AUC >= 0.62 and precision@20 >= 0.58)."""
    out: dict = {"files": len(rows)}
    for key in ("auc", "precision_at_20"):
        values = [getattr(r, key) for _, r in rows if getattr(r, key) == getattr(r, key)]
        out[key] = {
            "mean": sum(values) / len(values) if values else None,
            "worst": min(values) if values else None,
            "spread": max(values) - min(values) if values else None,
        }
    out["meeting_targets"] = sum(
        1 for _, r in rows if r.auc >= AUC_TARGET and r.precision_at_20 >= P20_TARGET
    )
    return out


def shown_names(names: list[str]) -> list[str]:
    """Each file's name as the tables show it: the name alone, or folder/name where two
    files share a name (one day of two instruments)."""
    bare = [Path(n).name for n in names]
    if len(set(bare)) == len(bare):
        return bare
    return [f"{Path(n).parent.name}/{Path(n).name}" for n in names]


def _model_eval_per_file(paths, fmt, symbol, tz, settings, show, as_json, pdf, fresh) -> None:
    from spark.ml.evaluate import evaluate_per_file
    from spark.progress import tick_progress

    ordered = sorted(paths, key=lambda p: Path(p).name)  # LEAN names start with the date
    files = [(str(p), read_ticks([p], fmt, symbol, tz)) for p in ordered]
    with tick_progress(sum(len(b) for _, b in files), show, label="eval") as advance:
        rows, total = evaluate_per_file(files, settings, on_tick=advance, fresh=fresh)
    summary = per_file_summary(rows)
    if pdf is not None:
        from spark.research.charts import bar_chart, write_pdf

        labels = [n.split("_")[0] for n in shown_names([name for name, _ in rows])]
        write_pdf(
            pdf,
            f"{total.model}, H={total.horizon}: progressive AUC per file"
            f"{', each from a fresh model' if fresh else ''}",
            [
                bar_chart("AUC (red: 0.62)", labels, [r.auc for _, r in rows], AUC_TARGET),
                bar_chart(
                    "precision@20 (red: 0.58)",
                    labels,
                    [r.precision_at_20 for _, r in rows],
                    P20_TARGET,
                ),
            ],
        )
    if as_json:
        out = total.as_dict()
        out["files"] = [{"file": name, **r.as_dict()} for name, r in rows]
        out["summary"] = summary
        out["fresh_per_file"] = fresh
        print_json(out)
        return
    shown = shown_names([name for name, _ in rows])
    width = max(len(n) for n in shown)
    click.echo(f"{'file':<{width}}  {'n':>9}  {'AUC':>6}  {'P@20':>6}  targets")
    for n, (_, r) in zip(shown, rows, strict=True):
        ok = "yes" if r.auc >= AUC_TARGET and r.precision_at_20 >= P20_TARGET else "no"
        click.echo(f"{n:<{width}}  {r.n:>9,}  {r.auc:>6.4f}  {r.precision_at_20:>6.4f}  {ok}")
    a, p = summary["auc"], summary["precision_at_20"]
    click.echo(
        f"per file: AUC mean {a['mean']:.4f}, worst {a['worst']:.4f}, spread {a['spread']:.4f}; "
        f"precision@20 mean {p['mean']:.4f}, worst {p['worst']:.4f}; "
        f"{summary['meeting_targets']}/{summary['files']} files meet AUC >= {AUC_TARGET} and "
        f"precision@20 >= {P20_TARGET}"
    )
    click.echo(
        f"{total.model}, H={total.horizon}, all files"
        f"{' (each from a fresh model)' if fresh else ''}: n={total.n:,} AUC={total.auc:.4f} "
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
