"""``spark topics``: create, list and describe the catalog's topics."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import resolve_topic


@cli.group(context_settings=CONTEXT)
def topics() -> None:
    """The topic catalog (topics/catalog.toml) and the topics on the broker."""


@topics.command("create")
def topics_create() -> None:
    """Create every catalog topic that does not exist yet (idempotent)."""
    from spark.kafka.topics import create_topics

    outcome = create_topics()
    created = [n for n, s in outcome.items() if s == "created"]
    for name in sorted(outcome):
        click.echo(f"{outcome[name]:8} {name}")
    click.echo(f"{len(created)} created, {len(outcome) - len(created)} already there")


@topics.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
def topics_list(as_json: bool) -> None:
    """Every catalog topic, and whether it exists on the broker."""
    from spark.kafka import clients
    from spark.topics import catalog

    existing = clients.ensure_reachable().topics
    for spec in catalog().values():
        exists = spec.name in existing
        if as_json:
            print_json(
                {
                    "id": spec.id,
                    "name": spec.name,
                    "exists": exists,
                    "partitions": spec.partitions,
                    "cleanup": spec.cleanup,
                    "value": spec.value,
                }
            )
        else:
            mark = "yes" if exists else "MISSING"
            click.echo(
                f"{spec.name:28} {spec.partitions:>2}p {spec.cleanup:8} {spec.value:16} {mark}"
            )


@topics.command("describe")
@click.argument("topic", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
def topics_describe(topic: str | None, as_json: bool) -> None:
    """Catalog entry, partitions and end offsets of TOPIC (id or name), or of all."""
    from spark.kafka import clients
    from spark.kafka.topics import end_offsets
    from spark.topics import catalog

    cat = catalog()
    specs = [resolve_topic(topic)] if topic else list(cat.values())
    existing = clients.ensure_reachable().topics
    for spec in specs:
        meta = existing.get(spec.name)
        ends = end_offsets(spec.name, len(meta.partitions)) if meta else {}
        record = {
            "id": spec.id,
            "name": spec.name,
            "exists": meta is not None,
            "partitions": len(meta.partitions) if meta else 0,
            "catalog_partitions": spec.partitions,
            "config": spec.kafka_config(),
            "key": spec.key,
            "value": spec.value,
            "dlq": cat[spec.dlq].name if spec.dlq else None,
            "doc": spec.doc,
            "end_offsets": ends,
            "messages": sum(ends.values()),
        }
        if as_json:
            print_json(record)
            continue
        click.echo(f"{spec.name}  ({spec.id}) — {spec.doc}")
        click.echo(
            f"  key {spec.key}, value {spec.value}, {spec.cleanup}, "
            f"config {spec.kafka_config()}, dead letters -> {record['dlq'] or 'none'}"
        )
        if meta is None:
            click.echo("  not created on the broker (spark topics create)")
        else:
            offsets = " ".join(f"p{p}:{o}" for p, o in sorted(ends.items()))
            click.echo(
                f"  {len(meta.partitions)} partitions, {record['messages']} messages ({offsets})"
            )
