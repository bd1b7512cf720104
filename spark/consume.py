"""Read any catalog topic and turn its messages into JSON-ready dicts."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, KafkaError, TopicPartition

from spark.errors import SerializationError, SparkError
from spark.kafka import clients
from spark.kafka.dlq import decode_headers
from spark.serde.avro import AvroSerde
from spark.topics import TopicSpec


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    return value


def render(spec: TopicSpec, serde: AvroSerde, msg) -> dict:
    """One message as a dict: position, key, and the decoded value (or raw + reason)."""
    key = msg.key()
    out: dict[str, Any] = {
        "topic": msg.topic(),
        "partition": msg.partition(),
        "offset": msg.offset(),
        "timestamp_ms": msg.timestamp()[1],
        "key": key.decode("utf-8", "replace") if key is not None else None,
    }
    if spec.is_raw:
        out["headers"] = decode_headers(msg.headers())
        out["raw_base64"] = base64.b64encode(msg.value() or b"").decode()
        return out
    try:
        if spec.is_json:
            out["value"] = json.loads(msg.value()) if msg.value() is not None else None
            return out
        out["value"] = _jsonable(serde.decode(msg.value(), spec.value))
    except (SerializationError, ValueError) as exc:
        reason = getattr(exc, "reason", "undecodable")
        out["error"] = {"reason": reason, "detail": str(exc)}
        out["raw_base64"] = base64.b64encode(msg.value() or b"").decode()
    return out


def messages(
    spec: TopicSpec,
    *,
    from_beginning: bool = False,
    follow: bool = False,
    limit: int | None = None,
    idle_exit_s: float = 10.0,
    **consumer_config,
) -> Iterator:
    """Messages of ``spec`` across all partitions, without joining a consumer group.

    Without ``follow`` it stops when every partition reported its end (or
    after ``idle_exit_s`` with nothing new, in case a broker never says so).
    """
    if limit is not None and limit <= 0:
        return
    consumer = clients.reader(**consumer_config)
    try:
        meta = clients.ensure_reachable().topics.get(spec.name)
        if meta is None or meta.error is not None:
            raise SparkError(
                f"topic {spec.name} does not exist on the broker: run `spark topics create`"
            )
        start = OFFSET_BEGINNING if from_beginning else OFFSET_END
        parts = sorted(meta.partitions)
        consumer.assign([TopicPartition(spec.name, p, start) for p in parts])
        at_end: set[int] = set()
        seen = 0
        last_activity = time.monotonic()
        while True:
            batch = consumer.consume(500, timeout=0.25)
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        at_end.add(msg.partition())
                        continue
                    raise SparkError(f"reading {spec.name}: {err.str()}")
                at_end.discard(msg.partition())
                last_activity = time.monotonic()
                yield msg
                seen += 1
                if limit is not None and seen >= limit:
                    return
            if follow:
                continue
            if len(at_end) == len(parts) and not batch:
                return
            if time.monotonic() - last_activity > idle_exit_s:
                return
    finally:
        consumer.close()
