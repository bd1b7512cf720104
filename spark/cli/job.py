"""``spark job``: what happens to a submitted job (backtest, sweep or export)."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli
from spark.commands import send_command


@cli.group(context_settings=CONTEXT)
def job() -> None:
    """Submitted jobs (`spark backtest|optimize|export submit` print their ids)."""


@job.command("cancel")
@click.argument("job_id")
@click.option("--reason", default="cancelled by the operator", show_default=True, help="Why.")
@click.option("--operator", help="Who (default: your user name).")
def job_cancel(job_id: str, reason: str, operator: str | None) -> None:
    """Cancel JOB_ID, queued or running, on whichever worker has it (a signed command on
    job.commands, read by every worker): it ends as a failed JobResult saying who cancelled
    it and why; a sweep's child backtests end with it. A job already finished keeps its
    result."""
    send_command(
        "job_commands",
        {"job_id": job_id, "action": "cancel", "reason": reason},
        operator,
        job_id.encode(),
    )
    click.echo(f"sent: cancel {job_id} ({reason}); its result will say so")
