"""confluent-kafka clients configured the same way for Tansu, Apache Kafka and managed Kafka.

Settings chosen for both (see docs/broker.md for the measurements behind them):

* ``partitioner=murmur2_random``: the Java client's partitioner, so a feed
  handler in any language puts a symbol on the same partition as we do.
* ``enable.idempotence``: works on both; no transactions (their abort is
  broken on the embedded broker).
* consumers use ``assign()`` without a group where they only read (``spark
  consume``, status): the embedded broker takes seconds to form a group.
* librdkafka's own log lines go to the ``spark.kafka`` logger, not stderr, so
  an unreachable broker gives one clear line instead of a stream of retries.
"""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from spark.config import bootstrap_servers, connect_timeout, security_config
from spark.errors import BrokerUnreachable

log = logging.getLogger("spark.kafka")
# librdkafka retries loudly; its lines reach stderr only with `spark --debug`.
log.addHandler(logging.NullHandler())
log.propagate = False


def base_config() -> dict[str, Any]:
    conf: dict[str, Any] = {"bootstrap.servers": bootstrap_servers(), "logger": log}
    conf.update(security_config())
    contexts = os.environ.get("SPARK_KAFKA_DEBUG", "").strip()
    if contexts:
        # librdkafka's debug contexts (e.g. ``cgrp,fetch``): its lines go to stderr, so a
        # worker's log shows why its consumer left a group (docs/reliability.md)
        conf["debug"] = contexts
        _debug_to_stderr()
    return conf


def _debug_to_stderr() -> None:
    if not any(getattr(h, "_spark_debug", False) for h in log.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s librdkafka %(message)s"))
        handler._spark_debug = True  # type: ignore[attr-defined]
        log.addHandler(handler)
        log.setLevel(logging.DEBUG)


def producer(**overrides: Any) -> Producer:
    conf = base_config()
    conf.update(
        {
            "partitioner": "murmur2_random",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10_000,
            "message.max.bytes": 20 * 1024 * 1024,
        }
    )
    conf.update(overrides)
    return Producer(conf)


def producer_for(*topics: str, **overrides: Any) -> Producer:
    """A producer that has ``topics``' metadata before its first message: for one-shot
    sends (a job request, a sweep's children, an operator command). A fresh producer holds
    a message to a topic it has no metadata of until a later metadata refresh: its first
    send took 0.50-1.00 s on the embedded broker, against 0.001 s after this 0.05 s fetch
    (session 33). If the fetch fails the producer is returned as it is; its send then says
    what is wrong, as before."""
    made = producer(**overrides)
    for topic in topics:
        try:
            made.list_topics(topic, timeout=connect_timeout())
        except KafkaException:
            break
    return made


READER_GROUP_PREFIX = "spark-reader-"


def reader(**overrides: Any) -> Consumer:
    """A consumer for ``assign()``-style reads: no group membership, no commits."""
    conf = base_config()
    conf.update(
        {
            "group.id": f"{READER_GROUP_PREFIX}{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "auto.offset.reset": "earliest",
            # Short fetch waits: readers are interactive (CLI, status) and want the
            # end-of-partition signal quickly (1.5 s -> 0.6 s per topic on Tansu).
            "fetch.wait.max.ms": 50,
        }
    )
    conf.update(overrides)
    return Consumer(conf)


def admin() -> AdminClient:
    return AdminClient(base_config())


def ensure_reachable(client: AdminClient | None = None, timeout: float | None = None):
    """Cluster metadata, or BrokerUnreachable with what to do about it."""
    client = client or admin()
    timeout = connect_timeout() if timeout is None else timeout
    try:
        return client.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"cannot reach Kafka at {bootstrap_servers()} ({exc.args[0].str()}): start the "
            "embedded broker with `spark broker start` or check KAFKA_BOOTSTRAP_SERVERS"
        ) from None
