"""Operator commands (drift gates, risk) onto their control topics, with who and when."""

from __future__ import annotations

import getpass
import time

from spark.errors import SparkError


def send_command(topic_id: str, fields: dict, operator: str | None, key: bytes | None = None):
    """Produce a command record of catalog topic ``topic_id``; fail unless Kafka acks it."""
    from spark.kafka import clients
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    spec = catalog()[topic_id]
    clients.ensure_reachable()
    record = fields | {"operator": operator or getpass.getuser(), "ts": int(time.time() * 1e6)}
    producer = clients.producer()
    producer.produce(spec.name, default_serde().encode(spec.name, spec.value, record), key)
    if producer.flush(10):
        raise SparkError(f"the command was not acknowledged by Kafka ({spec.name})")
