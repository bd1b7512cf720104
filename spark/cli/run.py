"""``spark worker | up | down | status | demo``: run the platform."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import paths_option

AGENT_CHOICE = click.Choice(["pipeline", "jobs"])


@cli.command(context_settings=CONTEXT)
@click.option(
    "--agent",
    "agents",
    multiple=True,
    type=AGENT_CHOICE,
    help="Roles to run (repeat; default: both): pipeline (ticks to signals and paper orders, "
    "commands, HTTP API) or jobs (backtest, optimizer and export requests).",
)
@click.option(
    "--web-port",
    type=click.IntRange(1, 65535),
    default=6066,
    show_default=True,
    help="Port of /metrics; a free one is taken if it is busy.",
)
@click.option(
    "--loglevel",
    type=click.Choice(["crit", "error", "warn", "info", "debug"]),
    default="warn",
    show_default=True,
)
def worker(agents, web_port, loglevel) -> None:
    """Run a Faust worker in the foreground (Ctrl-C stops it cleanly).

    Start more workers, on this machine or others, to share the partitions.
    """
    from spark.agents.app import AGENTS
    from spark.agents.worker import run_foreground, worker_settings
    from spark.kafka import clients

    settings = worker_settings()  # a bad setting or profile file: one line, before the broker
    clients.ensure_reachable()
    run_foreground(tuple(agents) or AGENTS, web_port, loglevel, settings)


def _ensure_broker(port: int = 9092, storage: str = "memory://tansu/") -> str:
    """Use KAFKA_BOOTSTRAP_SERVERS, or start the embedded broker; return a line saying which."""
    from spark.broker import embedded
    from spark.config import external_bootstrap
    from spark.kafka import clients

    if external_bootstrap():
        clients.ensure_reachable()
        return f"using Kafka at {external_bootstrap()}"
    st = embedded.start(port, storage)
    return f"embedded broker at {st.address}"


def _ensure_schema_registry(port: int) -> str:
    """Serve the Schema Registry API unless SCHEMA_REGISTRY_URL names one; its URL."""
    from spark.config import schema_registry_url
    from spark.schema_registry.process import start_detached

    return schema_registry_url() or start_detached(port)["url"]


@cli.command(context_settings=CONTEXT)
@click.option("--detach", "-d", is_flag=True, help="Run the worker in the background.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9092,
    show_default=True,
    help="Embedded broker port (ignored with KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option(
    "--storage", default="memory://tansu/", show_default=True, help="Embedded broker storage."
)
@click.option(
    "--web-port",
    type=click.IntRange(1, 65535),
    default=6066,
    show_default=True,
    help="Worker /metrics port.",
)
@click.option(
    "--registry-port",
    type=click.IntRange(1, 65535),
    default=8081,
    show_default=True,
    help="Port of the Schema Registry API (not served when SCHEMA_REGISTRY_URL is set); "
    "a free one is taken if it is busy.",
)
def up(detach: bool, port: int, storage: str, web_port: int, registry_port: int) -> None:
    """Start the broker (when embedded), create the topics, serve the Schema Registry API
    (unless SCHEMA_REGISTRY_URL names one) and run the worker."""
    from spark.agents.app import AGENTS
    from spark.agents.worker import run_foreground, start_detached, wait_ready
    from spark.broker import embedded
    from spark.config import external_bootstrap, schema_registry_url
    from spark.kafka.topics import create_topics
    from spark.schema_registry import process as registry

    started_broker = not external_bootstrap() and not embedded.status().running
    click.echo(_ensure_broker(port, storage))
    outcome = create_topics()
    click.echo(
        f"topics: {sum(s == 'created' for s in outcome.values())} created, "
        f"{len(outcome)} in the catalog"
    )
    started_registry = not schema_registry_url() and not registry.served_url()
    click.echo(f"schema registry at {_ensure_schema_registry(registry_port)}")
    if detach:
        record = start_detached(AGENTS, web_port)
        wait_ready(record)
        click.echo(
            f"worker running (pid {record['pid']}, metrics on "
            f"http://127.0.0.1:{record['web_port']}/metrics, log {record['log']}); "
            "`spark down` stops everything"
        )
        return
    click.echo("worker starting; Ctrl-C stops it" + (" and the broker" if started_broker else ""))
    try:
        run_foreground(AGENTS, web_port)
    finally:
        if started_registry and registry.stop_detached():
            click.echo("schema registry stopped")
        if started_broker:
            embedded.stop()
            click.echo("embedded broker stopped")


@cli.command(context_settings=CONTEXT)
def down() -> None:
    """Stop the background worker, the schema registry and the embedded broker that
    `spark up` started."""
    from spark.agents.worker import stop_detached
    from spark.broker import embedded
    from spark.schema_registry import process as registry

    click.echo("worker stopped" if stop_detached() else "no worker was running")
    if registry.stop_detached():
        click.echo("schema registry stopped")
    click.echo("embedded broker stopped" if embedded.stop() else "no embedded broker was running")


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
def status(as_json: bool) -> None:
    """Broker, worker, topics with end offsets, consumer groups with lag."""
    from spark.status import collect

    st = collect()
    if as_json:
        print_json(
            {
                "broker": st.broker,
                "schema_registry_url": st.schema_registry_url,
                "schema_registry": st.schema_registry,
                "worker": st.worker,
                "topics": st.topics,
                "groups": st.groups,
            }
        )
        return
    b = st.broker
    where = b["address"] if b["kind"] == "external" else f"{b['address']} ({b['detail']})"
    click.echo(f"broker   {b['kind']} {where}")
    if st.schema_registry_url:
        click.echo(f"registry {st.schema_registry_url}")
    else:
        click.echo("registry not running (`spark up` serves one, or set SCHEMA_REGISTRY_URL)")
    w = st.worker
    if w:
        state = "running" if w["running"] else "not running"
        click.echo(f"worker   {state} (pid {w['pid']}, metrics :{w['web_port']}, log {w['log']})")
    else:
        click.echo("worker   none started by `spark up --detach` (others may run elsewhere)")
    click.echo("topics")
    for t in st.topics:
        if t["exists"]:
            click.echo(f"  {t['name']:28} {t['partitions']:>2}p {t['messages']:>10} messages")
        else:
            click.echo(f"  {t['name']:28} missing (spark topics create)")
    click.echo("groups")
    for g in st.groups:
        click.echo(f"  {g['group']} on {g['topic']}: committed {g['committed']}, lag {g['lag']}")


@cli.command(context_settings=CONTEXT)
@click.option(
    "--rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Replay rate in ticks/s (0 = as fast as the broker takes them).",
)
@click.option("--keep", is_flag=True, help="Leave broker and worker running afterwards.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="Rows to replay (0 = all 61,053 bundled rows).",
)
@paths_option(
    "--data",
    "paths",
    "Replay these LEAN quote files instead of the bundled slice (several, or a glob).",
    required=False,
)
@click.option("--json", "as_json", is_flag=True, help="Also print the summary as one JSON line.")
def demo(rate: float, keep: bool, limit: int, paths, as_json: bool) -> None:
    """The whole pipeline on a bundled slice of real ticks: broker, topics, worker, replay,
    live status, then a summary that accounts for every row."""
    from spark.demo import run_demo

    summary = run_demo(rate=rate, keep=keep, paths=list(paths) or None, limit=limit or None)
    if as_json:
        print_json(summary)


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="The token as one JSON object.")
def token(as_json: bool) -> None:
    """The bearer token of the workers' HTTP API: POST /ml/predict needs the header
    `Authorization: Bearer <token>`. It is SPARK_API_TOKEN, or a file in SPARK_HOME made on
    first use (workers on other machines need the same SPARK_API_TOKEN)."""
    from spark.ml.snapshots import api_token

    value = api_token()
    if as_json:
        print_json({"token": value, "header": f"Authorization: Bearer {value}"})
        return
    click.echo(value)
    click.echo(
        f"curl -H 'Authorization: Bearer {value}' -H 'Content-Type: application/json' "
        "-d '{\"tick\": {...}}' http://127.0.0.1:6066/ml/predict",
        err=True,
    )
