"""``spark broker``: the embedded Kafka-protocol broker (Tansu)."""

from __future__ import annotations

import sys

import click

from spark.cli.app import CONTEXT, cli


@cli.group(context_settings=CONTEXT)
def broker() -> None:
    """The embedded Kafka-compatible broker (Tansu), for machines without a cluster.

    When KAFKA_BOOTSTRAP_SERVERS is set, Spark uses that cluster and these
    commands start nothing.
    """


@broker.command("start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9092,
    show_default=True,
    help="Port on 127.0.0.1; a free one is taken if it is busy.",
)
@click.option(
    "--storage",
    default="memory://tansu/",
    show_default=True,
    help="Storage engine: memory:// (lost on stop) or s3://BUCKET/ (durable; "
    "needs AWS_ENDPOINT and keys in the environment).",
)
def broker_start(port: int, storage: str) -> None:
    """Start the embedded broker in the background and record where it runs."""
    from spark.broker import embedded
    from spark.config import external_bootstrap

    if external_bootstrap():
        click.echo(
            f"KAFKA_BOOTSTRAP_SERVERS={external_bootstrap()} is set: Spark uses that "
            "cluster and starts no broker"
        )
        return
    if not storage.startswith(("memory://", "s3://")):
        raise click.BadParameter(
            "this Tansu build stores in memory:// or s3:// only", param_hint="--storage"
        )
    st = embedded.start(port, storage)
    click.echo(
        f"embedded broker answering at {st.address} (pid {st.pid}, storage {st.storage}, "
        f"log {st.log})"
    )


@broker.command("stop")
def broker_stop() -> None:
    """Stop the embedded broker (its in-memory data is gone)."""
    from spark.broker import embedded

    click.echo("embedded broker stopped" if embedded.stop() else "no embedded broker was running")


@broker.command("status")
def broker_status() -> None:
    """Say whether the broker answers; exit 1 if it does not."""
    from spark.status import broker_info

    info = broker_info()
    if info["kind"] == "external":
        from spark.kafka import clients

        clients.ensure_reachable()
        click.echo(f"external cluster {info['address']}: answering")
        return
    if not info["running"]:
        click.echo(f"embedded broker: {info['detail']} (start it with `spark broker start`)")
        sys.exit(1)
    click.echo(
        f"embedded broker at {info['address']}: answering (pid {info['pid']}, "
        f"storage {info['storage']}, log {info['log']})"
    )
