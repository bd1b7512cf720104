"""The Faust application factory: one worker image runs the tick pipeline, the jobs, or both.

Roles: ``pipeline`` (the tick loop, ``agents/pipeline.py``: ticks to features,
predictions, signals, drift alerts, gates and paper orders, plus the operator command
topics and the HTTP API) and ``jobs`` (backtest, optimizer and export requests).

Settings that work on the embedded broker and on Apache Kafka (reasons in
docs/broker.md):

* the session timeout (``SPARK_SESSION_TIMEOUT_MS``, spark.settings): the
  embedded broker takes about half of it to form a group (23 s with librdkafka's
  45 s default), so 2 s there; Apache Kafka refuses less than 6 s, so 10 s there.
* no ``exactly_once``: aiokafka's InitProducerId fails on the embedded broker.
  At-least-once plus idempotent downstream state is the contract.
* agents read in batches (``take_events``): a per-event agent stalled for good
  after a rejoin in 3 of 10 runs on the embedded broker; batch agents did not.
  The tick path does not go through Faust at all (docs/hot-path.md).
* ``consumer_auto_offset_reset="earliest"``: a new worker group starts at the
  first tick, so ticks produced before the worker started are not skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl

import faust
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from spark.agents import app_id, ticks_group
from spark.config import bootstrap_servers, security_config, spark_home
from spark.settings import Settings

AGENTS = ("pipeline", "jobs")
LAG_INTERVAL_S = 15.0
log = logging.getLogger("spark.agents.app")


def _credentials() -> faust.types.auth.CredentialsT | None:
    sec = security_config()
    protocol = sec.get("security.protocol", "PLAINTEXT").upper()
    context = None
    if "SSL" in protocol:
        context = ssl.create_default_context(cafile=sec.get("ssl.ca.location"))
        if sec.get("ssl.certificate.location"):
            context.load_cert_chain(
                sec["ssl.certificate.location"],
                sec.get("ssl.key.location"),
                sec.get("ssl.key.password"),
            )
    if "SASL" in protocol:
        return faust.SASLCredentials(
            username=sec.get("sasl.username"),
            password=sec.get("sasl.password"),
            mechanism=sec.get("sasl.mechanism", "PLAIN"),
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def create_app(
    agents: tuple[str, ...] = AGENTS, web_port: int = 6066, settings: Settings | None = None
) -> faust.App:
    """A Faust app with the roles ``agents`` and ``/metrics`` served on ``web_port``."""
    unknown = set(agents) - set(AGENTS)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; known: {', '.join(AGENTS)}")
    settings = settings or Settings.from_env()
    brokers = ";".join(f"kafka://{b}" for b in bootstrap_servers().split(","))
    app = faust.App(
        app_id(),
        broker=brokers,
        broker_credentials=_credentials(),
        store="memory://",
        datadir=str(spark_home() / "worker-data"),
        web_enabled=True,
        web_host="127.0.0.1",
        web_port=web_port,
        web_bind=os.environ.get("SPARK_WORKER_BIND", "127.0.0.1"),
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(settings.session_timeout_ms / 4000, 0.25),
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        topic_replication_factor=int(os.environ.get("SPARK_REPLICATION_FACTOR", "1")),
        topic_partitions=6,
        producer_linger_ms=5,
        topic_allow_declare=False,
        # Faust's own pages (router, tables, graph, stats) are off: the worker serves
        # /metrics, /health and the /ml views only
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
    )

    from spark.kafka.dlq import KNOWN_REASONS
    from spark.metrics import DEAD_LETTERS

    for (topic_id, stage), reasons in KNOWN_REASONS.items():
        for reason in reasons:
            DEAD_LETTERS.labels(topic_id, stage, reason)  # exists at 0 from the start

    @app.page("/metrics")
    async def metrics(web, request):  # noqa: ARG001 - Faust view signature
        return web.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.timer(interval=LAG_INTERVAL_S)
    async def measure_lag() -> None:
        """Consumer lag of this worker group on the topics its agents read."""
        from spark.kafka.topics import group_lag
        from spark.metrics import CONSUMER_LAG
        from spark.topics import catalog

        inputs = {"pipeline": ["ticks"], "jobs": ["backtest_requests"]}
        groups = {"pipeline": ticks_group(), "jobs": app_id()}
        loop = asyncio.get_running_loop()
        for role in agents:
            topics = {catalog()[i].name: catalog()[i].partitions for i in inputs[role]}
            try:
                lag = await loop.run_in_executor(None, group_lag, groups[role], topics)
            except Exception as exc:  # noqa: BLE001 - a failed measurement must not stop the worker
                log.warning("could not measure consumer lag: %s", exc)
                return
            for (topic, partition), messages in lag.items():
                CONSUMER_LAG.labels(topic, str(partition)).set(messages)

    if "pipeline" in agents:
        from spark.agents.pipeline import register as register_pipeline

        register_pipeline(app, settings)
    if "jobs" in agents:
        from spark.agents.jobs import register as register_jobs

        register_jobs(app)
    return app
