"""``spark schemas``: check, release and list the Avro contracts."""

from __future__ import annotations

import sys

import click

from spark.cli.app import CONTEXT, cli
from spark.errors import SparkError


@cli.group(context_settings=CONTEXT)
def schemas() -> None:
    """The Avro contracts in schemas/ and their compatibility."""


@schemas.command("check")
def schemas_check() -> None:
    """Every schema parses, the catalog names only existing schemas, and every schema is
    BACKWARD compatible with each released version in schemas/history. Exit 1 if not."""
    from spark.serde.schema_check import check_all

    problems, summary = check_all()
    for line in summary:
        click.echo(line)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    click.echo("all schemas parse and are BACKWARD compatible with their released versions")


@schemas.command("release")
def schemas_release() -> None:
    """Record each schema that changed since its last released version as the next version
    (schemas/history/NAME/vN.avsc). Run it in a checkout, then commit the new files."""
    from spark.serde.schema_check import check_all, release

    problems, _ = check_all()
    if problems:
        raise SparkError(f"fix these first ({len(problems)}): {problems[0]}")
    written = release()
    for path in written:
        click.echo(f"released {path}")
    click.echo(
        f"{len(written)} schemas released" if written else "nothing changed since the last release"
    )


@schemas.command("ids")
def schemas_ids() -> None:
    """Schema ids of the embedded registry (for producers in other languages)."""
    from spark.serde.registry import EmbeddedRegistry

    for name, sid in sorted(EmbeddedRegistry().ids().items()):
        click.echo(f"{name:16} {sid}")


@schemas.command("serve")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=8081,
    show_default=True,
    help="HTTP port of the Schema Registry API.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
def schemas_serve(port: int, host: str) -> None:
    """Serve Confluent's Schema Registry REST API in the foreground (`spark up` starts one
    in the background). Stock serializers in any language take its URL; the ids it serves
    are the ids Spark writes and reads. State lives in the spark-schemas topic, so
    restarts and several servers agree. Ctrl-C stops it."""
    import logging

    from spark.broker.embedded import port_open
    from spark.kafka import clients
    from spark.kafka.topics import create_topics
    from spark.schema_registry.server import serve

    if port_open(host if host != "0.0.0.0" else "127.0.0.1", port):
        raise SparkError(f"port {port} is taken; pass --port with a free one")
    clients.ensure_reachable()
    create_topics()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    serve(port, host, ready=lambda line: click.echo(f"schema registry on http://{host}:{port}"))
