"""``spark export``: backtest reports written by the workers."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli
from spark.cli.common import backtest_options, backtest_params, submit_job


@cli.group(context_settings=CONTEXT)
def export() -> None:
    """Backtest reports as CSV/XLSX/PDF files, made by the workers (Export@Scale).
    Locally, `spark backtest run --report FILE.xlsx` does the same."""


@export.command("submit")
@backtest_options
@click.option(
    "--output",
    type=click.Choice(["csv", "xlsx", "pdf", "json"]),
    default="xlsx",
    show_default=True,
    help="Report format.",
)
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as one JSON object.")
def export_submit(output, wait, timeout, as_json, **options) -> None:
    """Send an export job: the backtest runs on a worker, which writes the report file
    under its $SPARK_HOME/jobs and answers with its location (artifact_uri)."""
    params = backtest_params(**options) | {"output": output}
    result = submit_job("export", "export", params, wait, timeout, as_json)
    if result is None:
        return
    click.echo(f"report on the worker: {result['artifact_uri']}")
