"""``spark backtest``: run a backtest here or submit it to the workers."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import backtest_options, backtest_params, print_backtest, submit_job


@cli.group(context_settings=CONTEXT)
def backtest() -> None:
    """Backtests: recorded ticks through the live features, model, drift gate, signal policy
    and paper executor (docs/jobs.md). `run` works here; `submit` asks the workers."""


@backtest.command("run")
@backtest_options
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="Also write a JSON report with the equity curve and every fill.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every figure.")
@click.option(
    "--records",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write every record the pipeline produced (predictions, signals, orders, fills, "
    "positions, alerts, gate states) as JSON lines: what a worker would put on its topics.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def backtest_run(report, as_json, records, progress, **options) -> None:
    """Run a backtest here, on files on this machine; prints PnL, drawdown, Sharpe, counts."""
    from spark.export.reports import format_of
    from spark.jobs.backtest import run_request
    from spark.progress import progress_once_known

    params = backtest_params(**options)
    if report is not None:
        try:
            format_of(report)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--report") from None
    show = sys.stderr.isatty() if progress is None else progress
    with progress_once_known(show, "backtest") as advance:
        out = run_request(params, report, restrict=False, on_tick=advance, records=records)
    if as_json:
        print_json(out["summary"] | {"artifact_uri": out["artifact_uri"]})
        return
    print_backtest(out["summary"], out["summary"]["rejections"])
    if report:
        click.echo(f"report: {report}")


@backtest.command("submit")
@backtest_options
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the result on the results topic.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the result.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as one JSON object.")
def backtest_submit(wait, timeout, as_json, **options) -> None:
    """Send the backtest to the workers (a JobRequest on the backtest requests topic).

    File paths are read by the worker: they must exist there, inside its data folders
    (SPARK_DATA_DIRS; default the bundled sample data and $SPARK_HOME/data).
    """
    params = backtest_params(**options)
    result = submit_job("backtest", "backtest", params, wait, timeout, as_json)
    if result is None:
        return
    print_backtest(result["metrics"])
    if result.get("artifact_uri"):
        click.echo(f"report on the worker: {result['artifact_uri']}")
