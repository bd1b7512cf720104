"""Operator commands as every worker reads them: a broadcast read, not a shared group.

Each worker's tick loop reads the gate and risk command topics with ``assign()`` from
their beginning (no consumer group: with a group, a command on a one-partition topic
reached one worker of several). Every command is checked (``spark.commands``: action,
signature, staleness, replay) once, in log order, so every worker decides the same way.

Each tick partition's pipeline remembers the last command offset it has taken per
command topic partition (``SignalPipeline.commands_applied``, saved in its checkpoint),
so after a restart or a rebalance a partition takes exactly the commands it has not
taken yet: a risk command applies to every partition, a gate command to the partition
of its symbol. A refused command is dead-lettered once, by whichever worker holds tick
partition 0, and counted by every worker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from spark.commands import CommandRejected, check_command, verify
from spark.errors import SerializationError
from spark.kafka import clients
from spark.serde.avro import AvroSerde
from spark.topics import catalog

log = logging.getLogger("spark.stream.commands")
TOPICS = {"gate_commands": "gate", "risk_commands": "risk"}


@dataclass
class Entry:
    """One message of a command topic, in log order: a command, or why it was refused."""

    source: str  # "<topic id>/<partition>": the key of SignalPipeline.commands_applied
    offset: int
    kind: str  # gate | risk
    command: dict | None
    reason: str | None = None
    detail: str = ""
    key: bytes | None = None
    value: bytes | None = None


class CommandFeed:
    def __init__(self, serde: AvroSerde, key: bytes, max_age_s: float) -> None:
        self.serde, self.key, self.max_age_s = serde, key, max_age_s
        topics = catalog()
        self.specs = {topics[t].name: (t, topics[t]) for t in TOPICS}
        self.entries: list[Entry] = []
        self.nonces: set[str] = set()
        self.consumer: Consumer | None = None

    def open(self) -> None:
        self.consumer = clients.reader(**{"enable.partition.eof": False})
        self.consumer.assign(
            [
                TopicPartition(name, p, OFFSET_BEGINNING)
                for name, (_t, spec) in self.specs.items()
                for p in range(spec.partitions)
            ]
        )

    def close(self) -> None:
        if self.consumer is not None:
            self.consumer.close()

    def poll(self) -> list[Entry]:
        """Commands that arrived since the last call (none waits for more)."""
        if self.consumer is None:
            return []
        new = []
        for msg in self.consumer.consume(500, timeout=0):
            err = msg.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("reading commands: %s", err.str())
                continue
            topic_id, spec = self.specs[msg.topic()]
            entry = Entry(
                f"{topic_id}/{msg.partition()}",
                msg.offset(),
                TOPICS[topic_id],
                None,
                key=msg.key(),
                value=msg.value(),
            )
            try:
                command = self.serde.decode(msg.value(), spec.value)
                check_command(entry.kind, command)
                stamp_type, stamp_ms = msg.timestamp()
                broker_us = stamp_ms * 1000 if stamp_type and stamp_ms > 0 else 0
                verify(command, self.key, broker_us, self.max_age_s, self.nonces)
                entry.command = command
            except (CommandRejected, SerializationError) as exc:
                entry.reason, entry.detail = exc.reason, getattr(exc, "detail", str(exc))
            except Exception as exc:  # noqa: BLE001 - a command never stops the loop
                entry.reason, entry.detail = "invalid_command", f"{type(exc).__name__}: {exc}"
            if entry.reason:
                log.warning("command %s@%d refused: %s", entry.source, entry.offset, entry.detail)
            new.append(entry)
        self.entries.extend(new)
        return new

    def pending(self, applied: dict[str, int], since: int = 0) -> list[Entry]:
        """Entries from the ``since``-th on that a pipeline which took up to ``applied`` has
        not taken, in log order."""
        return [e for e in self.entries[since:] if e.offset > applied.get(e.source, -1)]
