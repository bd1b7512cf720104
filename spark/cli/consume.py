"""``spark consume``: read a topic, decoded."""

from __future__ import annotations

import json

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import resolve_topic


@cli.command(context_settings=CONTEXT)
@click.argument("topic")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the oldest message (default: the end)."
)
@click.option("--limit", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new messages (Ctrl-C stops).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Full JSON per line: topic, partition, offset, timestamp, key, value.",
)
def consume(
    topic: str, from_beginning: bool, limit: int | None, follow: bool, as_json: bool
) -> None:
    """Print messages of TOPIC (catalog id or name) decoded as JSON lines.

    For a dead-letter topic it prints the spark.dlq.* reason headers and the raw
    payload in base64. Without --follow it stops at the end of the topic.
    """
    from spark.consume import messages, render
    from spark.ticks.producer import default_serde

    spec = resolve_topic(topic)
    serde = default_serde()
    count = 0
    for msg in messages(spec, from_beginning=from_beginning, follow=follow, limit=limit):
        record = render(spec, serde, msg)
        count += 1
        if as_json:
            print_json(record)
        else:
            body = {
                k: record[k] for k in ("value", "headers", "raw_base64", "error") if k in record
            }
            click.echo(
                f"{record['partition']}@{record['offset']} {record['key']} "
                f"{json.dumps(body.get('value', body), default=str)}"
            )
    if count == 0 and not from_beginning:
        click.echo(f"no new messages on {spec.name} (use --from-beginning or --follow)", err=True)
