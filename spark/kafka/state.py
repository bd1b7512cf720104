"""Read the latest value per key of some partitions of a compacted state topic.

The workers keep per-symbol state in such topics (a changelog). Reading with
``assign()`` up to each partition's end-of-partition signal works on the
embedded broker, whose high watermarks are unreliable (docs/broker.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from spark.errors import SparkError
from spark.kafka import clients


def latest_json(topic: str, partitions: list[int], timeout: float = 60.0) -> dict[str, dict]:
    """Key (UTF-8) -> last JSON value on ``partitions`` of ``topic``; a null value deletes."""
    return latest_values(topic, partitions, json.loads, timeout)


def latest_values(
    topic: str, partitions: list[int], decode: Callable[[bytes], Any], timeout: float = 60.0
) -> dict[str, Any]:
    """Key (UTF-8) -> last decoded value on ``partitions`` of ``topic``; a null value deletes."""
    if not partitions:
        return {}
    consumer = clients.reader()
    latest: dict[str, Any] = {}
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise SparkError(f"reading state from {topic} took over {timeout:.0f}s")
            for msg in consumer.consume(5000, timeout=0.2):
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise SparkError(f"reading state from {topic}: {err.str()}")
                key = (msg.key() or b"").decode()
                if msg.value() is None:
                    latest.pop(key, None)
                else:
                    latest[key] = decode(msg.value())
    finally:
        consumer.close()
    return latest


def latest_records(spec, serde) -> dict[str, dict]:
    """Key -> last Avro record on every partition of catalog topic ``spec`` (compacted state)."""
    return latest_values(
        spec.name, list(range(spec.partitions)), lambda value: serde.decode(value, spec.value)
    )


def read_ranges(
    topic: str, ranges: dict[int, tuple[int, int]], timeout: float = 60.0
) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """partition -> [(offset, key, value)] of the offsets [start, end) of each partition,
    in offset order (``ranges``: partition -> (start, end)); stops early at a partition's end."""
    wanted = {p: r for p, r in ranges.items() if r[0] < r[1]}
    out: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {p: [] for p in wanted}
    if not wanted:
        return out
    consumer = clients.reader()
    try:
        consumer.assign([TopicPartition(topic, p, start) for p, (start, _) in wanted.items()])
        pending = set(wanted)
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise SparkError(f"reading {topic} took over {timeout:.0f}s")
            for msg in consumer.consume(5000, timeout=0.2):
                partition, err = msg.partition(), msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(partition)
                        continue
                    raise SparkError(f"reading {topic}: {err.str()}")
                if partition not in pending:
                    continue
                if msg.offset() >= wanted[partition][1]:
                    pending.discard(partition)
                    continue
                out[partition].append((msg.offset(), msg.key(), msg.value()))
                if msg.offset() == wanted[partition][1] - 1:
                    pending.discard(partition)
    finally:
        consumer.close()
    return out
