"""Dead-lettering a message an agent cannot use: original bytes, reason headers, a count."""

from __future__ import annotations

from spark.kafka.dlq import dlq_headers
from spark.metrics import DEAD_LETTERS
from spark.topics import TopicSpec


def dead_letter(channel, message, source: TopicSpec, stage: str, reason: str, detail: str) -> None:
    """Send ``message`` (as read from ``source``) to ``channel``, the source's DLQ topic."""
    origin = f"{message.topic}/{message.partition}@{message.offset}"
    channel.send_soon(
        key=message.key,
        value=message.value,
        headers=dlq_headers(reason, detail, source.name, stage, origin),
    )
    DEAD_LETTERS.labels(source.id, stage, reason).inc()
