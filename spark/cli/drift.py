"""``spark drift eval``: the drift detectors on recorded ticks."""

from __future__ import annotations

from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import (
    HORIZON_HELP,
    HorizonType,
    format_option,
    learner_settings,
    paths_option,
    read_ticks,
)


@cli.group(context_settings=CONTEXT)
def drift() -> None:
    """Drift detection: measure detectors on a real regime change."""


@drift.command("eval")
@paths_option("--data", "paths", "Ticks before the switch (several files, or a glob).")
@paths_option("--then", "then_paths", "Ticks after the switch: another instrument, venue or day.")
@format_option(required=True)
@click.option("--horizon", type=HorizonType(), default=None, help=HORIZON_HELP)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="Detectors to run (repeat; default: all). See docs/drift.md.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: delay_ticks and false_alarms_per_100k of the default "
    "detector, and the same per detector under detectors.",
)
@click.option(
    "--pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PDF: delay and false alarms per detector as bar charts, with targets.",
)
def drift_eval_command(paths, then_paths, fmt, horizon, detectors, as_json, pdf) -> None:
    """Stream --data, then --then, through the live feature, model and drift code and report,
    per detector, the delay to the first alarm after the switch (ticks and seconds) and the
    false alarms per 100,000 ticks before it."""
    from spark.drift.evaluate import drift_eval

    settings = learner_settings("logreg", horizon)
    try:
        result = drift_eval(
            read_ticks(paths, fmt, None, None),
            read_ticks(then_paths, fmt, None, None),
            settings,
            detectors=list(detectors) or None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--detector") from None
    if pdf is not None:
        from spark.drift.evaluate import write_eval_pdf

        def names(ps) -> str:
            shown = ", ".join(Path(p).name for p in ps[:2])
            return shown + (f" and {len(ps) - 2} more" if len(ps) > 2 else "")

        write_eval_pdf(result, pdf, f"Drift: {names(paths)} then {names(then_paths)}")
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{result['ticks_before']:,} ticks before the switch, {result['ticks_after']:,} after"
    )
    for name, d in result["detectors"].items():
        delay = (
            "no alarm after the switch"
            if d["delay_ticks"] is None
            else f"delay {d['delay_ticks']:,} ticks ({d['delay_s']:.0f}s)"
        )
        mark = " (default)" if name == result["detector"] else ""
        if name == "gate":
            mark += f": the gate rule {d['watches']}"
        click.echo(
            f"  {name:14} {delay}, {d['false_alarms_per_100k']:.1f} false alarms "
            f"per 100k ticks{mark}"
        )
