"""The Python API for feed handlers: validate, encode and produce ticks; dead-letter the rest.

Example (needs a broker; tests/test_producer_api.py runs it)::

    from spark.ticks import Tick, TickProducer

    with TickProducer(source="my-feed") as feed:
        feed.send(Tick("EURUSD", ts=1_398_920_401_787_000, bid=1.38727, ask=1.38729))
    feed.counts  # Counts(produced=1, dead_lettered=0, failed=0)

Every tick handed to :meth:`TickProducer.send` ends in exactly one place: the
tick topic (valid) or its dead-letter topic (invalid, reason in headers).
Delivery is confirmed by the broker; :meth:`flush` raises if any message was
not acknowledged, so nothing is lost silently.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Producer

from spark.config import schema_registry_auth, schema_registry_url
from spark.errors import SerializationError, SparkError
from spark.kafka import clients
from spark.kafka.dlq import dlq_headers
from spark.metrics import DEAD_LETTERS, EVENTS_OUT
from spark.serde.avro import AvroSerde
from spark.serde.registry import default_registry
from spark.ticks.model import InvalidTick, Tick, validate
from spark.topics import catalog


@dataclass
class Counts:
    produced: int = 0
    dead_lettered: int = 0
    failed: int = 0


@dataclass
class _Pending:
    counts: Counts = field(default_factory=Counts)
    reasons: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)


def default_serde() -> AvroSerde:
    return AvroSerde(default_registry(schema_registry_url(), schema_registry_auth()))


class TickProducer:
    """Produce ticks keyed by symbol to the catalog's tick topic, after validation.

    ``stage`` names who validated (``producer`` for feed handlers, ``replay``
    for file replays) in dead-letter headers.
    """

    def __init__(
        self,
        source: str | None = None,
        stage: str = "producer",
        serde: AvroSerde | None = None,
        producer: Producer | None = None,
    ) -> None:
        topics = catalog()
        self.topic = topics["ticks"]
        self.dlq = topics[self.topic.dlq]
        self.source = source
        self.stage = stage
        self.serde = serde or default_serde()
        if producer is None:
            clients.ensure_reachable()
            producer = clients.producer()
        self._producer = producer
        self._state = _Pending()
        self._tick_done = self._on_delivery("tick")
        self._events_out = EVENTS_OUT.labels(self.topic.id)
        self._dlq_done = self._on_delivery("dlq")

    @property
    def counts(self) -> Counts:
        """Acknowledged outcomes so far (call :meth:`flush` for a final figure)."""
        return self._state.counts

    @property
    def reasons(self) -> Counter:
        """Dead-letter reason code -> count."""
        return self._state.reasons

    def _on_delivery(self, kind: str):
        state = self._state

        def done(err: KafkaError | None, _msg) -> None:
            if err is not None:
                state.counts.failed += 1
                if len(state.errors) < 5:
                    state.errors.append(err.str())
            elif kind == "tick":
                state.counts.produced += 1
            else:
                state.counts.dead_lettered += 1

        return done

    def _produce(self, topic: str, key: bytes | None, value: bytes, headers, callback) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, headers=headers, on_delivery=callback)
                return
            except BufferError:  # local queue full: let deliveries drain
                self._producer.poll(0.05)

    def send(
        self, tick: Tick | dict, *, raw: bytes | None = None, origin: str | None = None
    ) -> bool:
        """Validate and produce one tick. Returns True if it went to the tick topic."""
        if isinstance(tick, dict):
            tick = Tick.from_record(tick)
        if tick.source is None:
            tick.source = self.source
        try:
            validate(tick)
        except InvalidTick as exc:
            payload = raw if raw is not None else repr(tick.to_record()).encode()
            self.dead_letter(str(tick.symbol).encode(), payload, exc.reason, exc.detail, origin)
            return False
        return self.send_validated(tick, raw, origin)

    def send_validated(self, tick: Tick, raw: bytes | None, origin: str | None) -> bool:
        """Encode and produce a tick the caller already ran through ``validate``.

        Replay's readers validate every row; validating twice cost ~15 % of replay time.
        """
        try:
            value = self.serde.encode(self.topic.name, self.topic.value, tick.to_record())
        except SerializationError as exc:
            payload = raw if raw is not None else repr(tick.to_record()).encode()
            self.dead_letter(str(tick.symbol).encode(), payload, exc.reason, str(exc), origin)
            return False
        self._produce(self.topic.name, tick.symbol.encode(), value, None, self._tick_done)
        self._events_out.inc()
        return True

    def dead_letter(
        self, key: bytes | None, raw: bytes, reason: str, detail: str, origin: str | None = None
    ) -> None:
        """Send ``raw`` to the tick dead-letter topic with the reason in headers."""
        headers = dlq_headers(reason, detail, self.topic.name, self.stage, origin)
        self._state.reasons[reason] += 1
        self._produce(self.dlq.name, key, raw, headers, self._dlq_done)
        DEAD_LETTERS.labels(self.topic.id, self.stage, reason).inc()

    def poll(self) -> None:
        """Serve delivery reports; call now and then in long loops."""
        self._producer.poll(0)

    def flush(self, timeout: float = 60.0) -> Counts:
        """Wait for every message to be acknowledged; SparkError if any was not."""
        deadline = time.monotonic() + timeout
        remaining = self._producer.flush(timeout)
        while remaining and time.monotonic() < deadline:
            remaining = self._producer.flush(max(deadline - time.monotonic(), 0.1))
        state = self._state
        if remaining or state.counts.failed:
            why = (
                "; ".join(state.errors) or f"{remaining} messages still queued after {timeout:.0f}s"
            )
            raise SparkError(
                f"{state.counts.failed + remaining} messages were not acknowledged by Kafka ({why})"
            )
        return state.counts

    def __enter__(self) -> TickProducer:
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.flush()
        else:
            self._producer.flush(5)
