"""The Schema Registry's event log on Kafka: read into a State, appended to, seeded.

One partition, so every reader sees the events in one order and derives the same
version numbers. A write is answered only once its event has been read back, so what
a client is told is what every other server and worker replays.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
import time
import uuid

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from spark import schemas
from spark.errors import SparkError
from spark.kafka import clients
from spark.schema_registry.state import RegistryError, State
from spark.serde.registry import schema_id
from spark.topics import catalog

log = logging.getLogger("spark.schema_registry")


def registry_topic() -> str:
    return catalog()["schema_registry"].name


class RegistryLog:
    """A State kept up to date with the registry topic; thread-safe."""

    def __init__(self, topic: str | None = None, timeout: float = 30.0) -> None:
        self.topic = topic or registry_topic()
        self.timeout = timeout
        self.state = State()
        self.lock = threading.RLock()
        self._consumer = clients.reader()
        self._consumer.assign([TopicPartition(self.topic, 0, OFFSET_BEGINNING)])
        self._producer = clients.producer(**{"linger.ms": 0})
        self._at_end = False

    def close(self) -> None:
        self._consumer.close()
        self._producer.flush(5)

    def _read(self, timeout: float, until_nonce: str | None = None, until_end: bool = False):
        """Apply events until ``until_nonce`` is read, or the end of the partition, or
        ``timeout``; returns whether the condition was met. A fetched batch is always
        applied whole, so no event is skipped."""
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while True:
            # consume() returns when it has 500 messages or its timeout passed: short
            # rounds, so an event is applied within ~20 ms of its arrival
            batch = self._consumer.consume(500, timeout=0.02 if timeout > 0 else 0.0)
            now = time.monotonic()
            if batch:
                quiet_since = now
            elif until_end and self._at_end and now - quiet_since >= 0.06:
                # at the end before, and nothing new for longer than one fetch round
                # (fetch.wait.max.ms is 50): no second EOF comes, so this is the end
                return True
            seen = False
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        self._at_end = True
                        continue
                    raise RegistryError(500, 50001, f"reading {self.topic}: {err.str()}")
                self._at_end = False
                try:
                    event = json.loads(msg.value())
                except (TypeError, ValueError):
                    log.warning("skipped an undecodable event at offset %d", msg.offset())
                    continue
                self.state.apply(event)
                seen = seen or (until_nonce is not None and event.get("nonce") == until_nonce)
            if seen or (until_end and self._at_end and batch):
                return True
            if now >= deadline:
                return until_nonce is None and not until_end

    def catch_up(self, timeout: float | None = None) -> State:
        """Everything appended so far (by any process) applied; the state."""
        with self.lock:
            if not self._read(timeout or self.timeout, until_end=True):
                raise RegistryError(500, 50001, f"{self.topic}: no end of partition in time")
            return self.state

    def refresh(self) -> State:
        """Apply what is already fetched, without waiting (before answering a read)."""
        with self.lock:
            self._read(0.0)
            return self.state

    def append(self, *events: dict) -> State:
        """Append ``events`` (in order), wait until the last is read back; the state after."""
        with self.lock:
            failures: list[str] = []
            nonce = ""
            for event in events:
                nonce = uuid.uuid4().hex
                self._producer.produce(
                    self.topic,
                    json.dumps({**event, "nonce": nonce}).encode(),
                    (event.get("subject") or "").encode(),
                    on_delivery=lambda err, _m: failures.append(str(err)) if err else None,
                )
            if self._producer.flush(self.timeout) or failures:
                raise RegistryError(500, 50001, f"the registry topic did not take it: {failures}")
            if nonce and not self._read(self.timeout, until_nonce=nonce):
                raise RegistryError(500, 50001, "the registry's own write was not read back")
            return self.state

    def seed_contracts(self) -> int:
        """Register every contract (released versions, then current) under ``<topic>-value``
        of each catalog topic whose value is Avro; returns how many events were appended."""
        pending: list[dict] = []
        with self.lock:
            scratch = copy.deepcopy(self.catch_up())  # the state as if pending were applied
            for spec in catalog().values():
                if spec.is_raw or spec.is_json:
                    continue
                subject = f"{spec.name}-value"
                texts = [json.dumps(old) for _v, old in schemas.released_versions(spec.value)]
                texts.append(json.dumps(schemas.load_current(spec.value)))
                ids = {schema_id(json.loads(t)) for t in texts}
                self.state.protect(subject, ids)
                scratch.protect(subject, ids)
                for text in texts:
                    try:
                        event = scratch.register_event(subject, text)
                    except RegistryError as exc:  # e.g. an operator set a stricter level
                        log.warning("not seeding %s: %s", subject, exc.message)
                        break
                    if event is not None:
                        scratch.apply(event)
                        pending.append(event)
            self.append(*pending)
        return len(pending)


def registered_schemas(timeout: float = 30.0) -> dict[int, str]:
    """Every schema text in the registry topic by id (one full read); {} if unreadable."""
    from spark.kafka.state import _read_to_end

    try:
        state = State()
        for msg in _read_to_end(registry_topic(), {0: 0}, timeout=timeout):
            try:
                state.apply(json.loads(msg.value()))
            except (TypeError, ValueError):
                continue
        return dict(state.schemas)
    except SparkError:
        return {}
