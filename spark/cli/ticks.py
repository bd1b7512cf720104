"""``spark ticks replay``: recorded tick files onto the tick topic."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import expand_paths, format_option, paths_option
from spark.errors import SparkError


@cli.group(context_settings=CONTEXT)
def ticks() -> None:
    """Put ticks on the tick topic."""


@ticks.command("replay")
@click.argument("files", nargs=-1, metavar="[PATHS]...", type=click.Path(path_type=Path))
@paths_option(
    "--data",
    "data",
    "The same as the PATHS arguments, as the other commands take them: several after one "
    "--data, repeated, or glob patterns.",
    required=False,
)
@format_option(required=True)
@click.option("--symbol", help="Symbol to use (LEAN files default to their folder's name).")
@click.option(
    "--tz",
    help="Time zone of LEAN times (default: the market folder's in the path: oanda, "
    "crypto UTC, fxcm UTC-05:00; else UTC-05:00 for 3-column FX quotes, New York for "
    "equities).",
)
@click.option(
    "--max-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Ticks per second at most; 0 = as fast as possible.",
)
@click.option(
    "--speed",
    type=float,
    help="Pace by recorded event time: 1 = real time, 60 = a minute a second.",
)
@click.option("--limit", type=click.IntRange(min=0), help="Stop after N input rows.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as one JSON object.")
def ticks_replay(files, data, fmt, symbol, tz, max_rate, speed, limit, progress, as_json) -> None:
    """Replay recorded tick files (PATHS, or --data; globs welcome) onto the tick topic in
    event-time order.

    Rows that cannot be valid ticks (unparsable, price <= 0, bid > ask, flagged
    suspicious, time going back) go to the dead-letter topic with the reason in
    headers. Lines that are no tick by design (Binance depth updates and other kinds)
    are skipped and counted by kind. The summary accounts for every row:
    read = produced + dead-lettered + skipped.
    """
    from spark.progress import replay_with_progress

    paths = expand_paths(files) + tuple(data)
    if not paths:
        raise click.UsageError("give the tick files: spark ticks replay FILE... --format F")
    if max_rate and speed:
        raise click.UsageError("use --max-rate or --speed, not both")
    if symbol:
        symbol = symbol.upper()
    show = sys.stderr.isatty() if progress is None else progress
    result = replay_with_progress(
        list(paths),
        fmt,
        symbol=symbol,
        tz=tz,
        max_rate=max_rate,
        speed=speed,
        limit=limit,
        show=show,
    )
    from spark.topics import catalog

    ticks_spec = catalog()["ticks"]
    if as_json:
        print_json(
            {
                "rows": result.rows,
                "produced": result.produced,
                "dead_lettered": result.dead_lettered,
                "reasons": dict(result.reasons),
                "skipped": sum(result.skipped.values()),
                "skipped_kinds": dict(result.skipped),
                "seconds": round(result.seconds, 3),
                "topic": ticks_spec.name,
                "dlq": catalog()[ticks_spec.dlq].name,
            }
        )
    else:
        rate = result.rows / result.seconds if result.seconds else 0
        reasons = ", ".join(f"{r} {n}" for r, n in result.reasons.most_common())
        kinds = ", ".join(f"{k} {n}" for k, n in result.skipped.most_common())
        click.echo(
            f"read {result.rows} rows in {result.seconds:.1f}s ({rate:,.0f}/s): "
            f"{result.produced} produced to {ticks_spec.name}, {result.dead_lettered} "
            f"dead-lettered to {catalog()[ticks_spec.dlq].name}"
            + (f" ({reasons})" if reasons else "")
            + (f", {sum(result.skipped.values())} skipped ({kinds})" if kinds else "")
        )
    if not result.accounted:
        raise SparkError("produced + dead-lettered + skipped does not equal rows read")
