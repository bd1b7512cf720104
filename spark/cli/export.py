"""``spark export``: backtest reports written by the workers."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import backtest_options, backtest_params
from spark.errors import SparkError


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
    from spark.jobs.client import submit

    params = backtest_params(**options) | {"output": output}
    result = submit("export", params, wait=wait, timeout=timeout)
    if result is None:
        return
    if as_json:
        print_json(result)
        return
    if result["status"] != "ok":
        raise SparkError(f"export {result['job_id']} failed: {result['error']}")
    click.echo(f"report on the worker: {result['artifact_uri']}")
