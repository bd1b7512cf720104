"""Read the latest value per key of some partitions of a compacted state topic.

The workers keep per-symbol state in such topics (a changelog). Reading with
``assign()`` up to each partition's end-of-partition signal works on the
embedded broker, whose high watermarks are unreliable (docs/broker.md).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from spark.errors import SparkError
from spark.kafka import clients


def latest_json(topic: str, partitions: list[int], timeout: float = 60.0) -> dict[str, dict]:
    """Key (UTF-8) -> last JSON value on ``partitions`` of ``topic``; a null value deletes."""
    return latest_values(topic, partitions, json.loads, timeout)


def _read_to_end(
    topic: str, starts: dict[int, int], ends: dict[int, int] | None = None, timeout: float = 60.0
) -> Iterator[Message]:
    """Messages of ``topic`` from ``starts`` (partition -> offset) to each partition's end:
    its end-of-partition signal, or the offset before ``ends[partition]`` if given."""
    if not starts:
        return
    ends = ends or {}
    consumer = clients.reader()
    try:
        consumer.assign([TopicPartition(topic, p, offset) for p, offset in starts.items()])
        pending = set(starts)
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
                end = ends.get(partition)
                if partition not in pending or (end is not None and msg.offset() >= end):
                    pending.discard(partition)
                    continue
                yield msg
                if end is not None and msg.offset() == end - 1:
                    pending.discard(partition)
    finally:
        consumer.close()


def latest_values(
    topic: str,
    partitions: list[int],
    decode: Callable[[bytes], Any],
    timeout: float = 60.0,
    tombstones: set[str] | None = None,
) -> dict[str, Any]:
    """Key (UTF-8) -> last decoded value on ``partitions`` of ``topic``; a null value
    deletes, unless ``tombstones`` (a set) is given: then it deletes nothing and its key is
    added to the set (append-only state such as the model registry, where a tombstone
    carries no signature)."""
    latest: dict[str, Any] = {}
    for msg in _read_to_end(topic, dict.fromkeys(partitions, OFFSET_BEGINNING), timeout=timeout):
        key = (msg.key() or b"").decode()
        if msg.value() is None and tombstones is not None:
            tombstones.add(key)
        elif msg.value() is None:
            latest.pop(key, None)
        else:
            latest[key] = decode(msg.value())
    return latest


def latest_records(spec, serde, tombstones: set[str] | None = None) -> dict[str, dict]:
    """Key -> last Avro record on every partition of catalog topic ``spec`` (compacted
    state); ``tombstones`` as in ``latest_values``."""
    return latest_values(
        spec.name,
        list(range(spec.partitions)),
        lambda value: serde.decode(value, spec.value),
        tombstones=tombstones,
    )


def read_ranges(
    topic: str, ranges: dict[int, tuple[int, int]], timeout: float = 60.0
) -> dict[int, list[tuple[int, bytes | None, bytes | None]]]:
    """partition -> [(offset, key, value)] of the offsets [start, end) of each partition,
    in offset order (``ranges``: partition -> (start, end)); stops early at a partition's end."""
    wanted = {p: r for p, r in ranges.items() if r[0] < r[1]}
    out: dict[int, list[tuple[int, bytes | None, bytes | None]]] = {p: [] for p in wanted}
    starts = {p: start for p, (start, _) in wanted.items()}
    ends = {p: end for p, (_, end) in wanted.items()}
    for msg in _read_to_end(topic, starts, ends, timeout):
        out[msg.partition()].append((msg.offset(), msg.key(), msg.value()))
    return out
