"""``spark export``: backtest reports written by the workers."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli
from spark.cli.common import backtest_options, backtest_params, submit_job
from spark.errors import SparkError


@cli.group(context_settings=CONTEXT)
def export() -> None:
    """Export@Scale: any topic to CSV/XLSX/Parquet (`topic`), and backtest reports as
    CSV/XLSX/PDF made by the workers (`submit`; locally `spark backtest run --report`)."""


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


@contextmanager
def record_progress(spec, show: bool):
    """A progress bar over the records on ``spec``'s partitions now (stderr); yields
    ``report(result)`` for ``export_topic``'s ``on_progress``."""
    if not show:
        yield lambda _result: None
        return
    from confluent_kafka import TopicPartition
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from spark.kafka import clients
    from spark.kafka.topics import end_offsets

    ends = end_offsets(spec.name, spec.partitions)
    consumer = clients.reader()
    try:
        lows = {
            p: consumer.get_watermark_offsets(TopicPartition(spec.name, p), timeout=5)[0]
            for p in ends
        }
    finally:
        consumer.close()
    total = sum(max(end - lows[p], 0) for p, end in ends.items())
    bar = Progress(
        TextColumn("[bold]export[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    )
    with bar:
        task = bar.add_task("export", total=total or None, counts="")

        def report(result) -> None:
            counts = f"{result.read:,} read, {result.exported:,} exported"
            bar.update(task, completed=result.read, total=max(total, result.read), counts=counts)

        yield report


@export.command("topic")
@click.argument("topic")
@click.option(
    "--output",
    "-o",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write: .csv, .xlsx, .parquet, or .pdf (summary table and charts; by extension).",
)
@click.option(
    "--from", "start", help="Only records at or after this event time (ISO-8601 or epoch ms)."
)
@click.option("--to", "end", help="Only records before this event time (ISO-8601 or epoch ms).")
@click.option("--symbol", "symbols", multiple=True, help="Only these symbols (repeat).")
@click.option("--fields", help="Comma-separated fields to export, in this order (default: all).")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr (default: on a terminal).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the accounting as one JSON object.")
def export_topic_command(topic, output, start, end, symbols, fields, progress, as_json) -> None:
    """Stream TOPIC (a catalog id like `predictions`, or its name) to a CSV, XLSX or Parquet
    file in flat memory; the summary accounts for every record: read = exported + skipped
    (with the reason of each skip)."""
    import sys

    from spark.cli.app import print_json
    from spark.cli.common import resolve_topic
    from spark.export.topic import export_topic, parse_time, peak_rss_mb

    spec = resolve_topic(topic)
    start_us = parse_time(start) if start else None
    end_us = parse_time(end) if end else None
    wanted = tuple(f.strip() for f in fields.split(",") if f.strip()) if fields else ()
    show = sys.stderr.isatty() if progress is None else progress
    with record_progress(spec, show) as report:
        result = export_topic(
            spec, output, start_us=start_us, end_us=end_us, symbols=symbols, fields=wanted,
            on_progress=report,
        )  # fmt: skip
        report(result)
    summary = result.as_dict() | {"topic": spec.name, "peak_rss_mb": round(peak_rss_mb())}
    if as_json:
        print_json(summary)
    else:
        skipped = ", ".join(f"{k} {v:,}" for k, v in result.skipped.most_common()) or "none"
        click.echo(
            f"{spec.name} -> {output}: {result.read:,} read, {result.exported:,} exported, "
            f"skipped: {skipped}; {result.bytes:,} bytes in {result.seconds:.1f}s"
            + (f", {result.sheets} sheets" if result.sheets > 1 else "")
        )
    if not result.accounted:
        raise SparkError("exported + skipped does not equal records read")
