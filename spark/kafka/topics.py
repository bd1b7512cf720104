"""Create, list and describe the catalog's topics; find true end offsets and group lag."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import (
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka.admin import NewTopic

from spark.kafka import clients
from spark.topics import Catalog, TopicSpec, catalog


@dataclass
class TopicInfo:
    spec: TopicSpec | None
    name: str
    exists: bool
    partitions: int = 0
    end_offsets: dict[int, int] | None = None

    @property
    def messages(self) -> int:
        return sum((self.end_offsets or {}).values())


def create_topics(specs: list[TopicSpec] | None = None, timeout: float = 30.0) -> dict[str, str]:
    """Create catalog topics; idempotent. Returns name -> ``created`` or ``exists``."""
    specs = list(catalog().values()) if specs is None else specs
    client = clients.admin()
    metadata = clients.ensure_reachable(client)
    outcome = {s.name: "exists" for s in specs if s.name in metadata.topics}
    missing = [s for s in specs if s.name not in metadata.topics]
    if not missing:
        return outcome
    futures = client.create_topics(
        [
            NewTopic(s.name, s.partitions, replication_factor=-1, config=s.kafka_config())
            for s in missing
        ],
        request_timeout=timeout,
    )
    for name, future in futures.items():
        try:
            future.result()
            outcome[name] = "created"
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
            outcome[name] = "exists"
    return outcome


def end_offsets(topic: str, partitions: int, timeout: float = 5.0) -> dict[int, int]:
    """The offset after the last message of each partition, measured, not trusted.

    The embedded broker reports a high watermark of "base offset of the last
    batch + 1" (docs/broker.md), so the watermark alone undercounts. We read
    from the reported watermark - 1 to the partition's end and take the last
    offset seen; on Apache Kafka that reads one message per partition.
    """
    consumer = clients.reader()
    try:
        reported = {}
        for p in range(partitions):
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=timeout, cached=False
            )
            reported[p] = high
        ends = dict(reported)
        start = [TopicPartition(topic, p, max(h - 1, 0)) for p, h in reported.items() if h > 0]
        if not start:
            return ends
        consumer.assign(start)
        pending = {tp.partition for tp in start}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for msg in consumer.consume(10_000, timeout=0.2):
                err = msg.error()
                if err is None:
                    ends[msg.partition()] = max(ends[msg.partition()], msg.offset() + 1)
                elif err.code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
        return ends
    finally:
        consumer.close()


def describe(cat: Catalog | None = None, with_offsets: bool = True) -> list[TopicInfo]:
    """Every catalog topic with whether it exists, its partitions and end offsets."""
    cat = cat or catalog()
    metadata = clients.ensure_reachable()
    infos = []
    for spec in cat.values():
        meta = metadata.topics.get(spec.name)
        if meta is None or meta.error is not None:
            infos.append(TopicInfo(spec, spec.name, False))
            continue
        n = len(meta.partitions)
        offsets = end_offsets(spec.name, n) if with_offsets else None
        infos.append(TopicInfo(spec, spec.name, True, n, offsets))
    return infos


def group_offsets(
    topic_ends: dict[str, dict[int, int]], always: dict[str, list[str]]
) -> list[dict]:
    """Committed offsets and lag of every consumer group on the given topics.

    ``topic_ends`` maps topic name -> partition -> true end offset. ``always``
    names groups to report on some topics even before they commit anything
    (the worker group on the tick topic: its lag is everything produced).
    """
    admin = clients.admin()
    listed = admin.list_consumer_groups(request_timeout=10).result().valid
    groups = {g.group_id for g in listed if not g.group_id.startswith(clients.READER_GROUP_PREFIX)}
    groups |= set(always)
    report = []
    for group in sorted(groups):
        future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
        committed: dict[str, dict[int, int]] = {}
        for tp in future.result().topic_partitions:
            if tp.topic in topic_ends and tp.offset >= 0:
                committed.setdefault(tp.topic, {})[tp.partition] = tp.offset
        for topic in always.get(group, []):
            committed.setdefault(topic, {})
        for topic in sorted(committed):
            ends = topic_ends[topic]
            parts = {
                p: (committed[topic].get(p, 0), max(end - committed[topic].get(p, 0), 0))
                for p, end in ends.items()
            }
            report.append(
                {
                    "group": group,
                    "topic": topic,
                    "committed": sum(c for c, _ in parts.values()),
                    "lag": sum(lag for _, lag in parts.values()),
                    "partitions": {
                        p: {"committed": c, "lag": lag} for p, (c, lag) in parts.items()
                    },
                }
            )
    return report


def committed_offsets(group: str, topics: dict[str, int]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> ``group``'s committed offset (0 if none); topics: name -> partitions.

    Reading committed offsets with the group's id does not join the group.
    """
    consumer = clients.reader(**{"group.id": group})
    try:
        wanted = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
        return {
            (tp.topic, tp.partition): max(tp.offset, 0)
            for tp in consumer.committed(wanted, timeout=10)
        }
    finally:
        consumer.close()


def group_lag(group: str, topics: dict[str, int]) -> dict[tuple[str, int], int]:
    """(topic, partition) -> messages not yet committed by ``group``; topics: name -> partitions."""
    committed = committed_offsets(group, topics)
    lag = {}
    for topic, partitions in topics.items():
        for partition, end in end_offsets(topic, partitions).items():
            lag[(topic, partition)] = max(end - committed.get((topic, partition), 0), 0)
    return lag
