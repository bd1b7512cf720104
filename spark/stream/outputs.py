"""A StepResult as Kafka messages: every output of a pipeline step, tied to its input.

Dense outputs (a FeatureVector per tick, a Prediction per tick and model) are written
by the compiled writers; the rest (signals, alerts, gate states, orders, fills,
rejections, positions, model events) by fastavro. Every message carries
``spark.source`` = ``<tick topic>/<partition>@<offset>`` of the tick that produced it, with
``#k`` for the k-th (k ≥ 1) record of that tick on the same topic (a prediction per model,
several fills at one quote), and ``spark.processed_at`` (µs). Its value holds no wall-clock
time, so the same input gives the same bytes every time it is processed: (topic,
``spark.source``) identifies a record, and a duplicate is byte for byte the same
(docs/hot-path.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from spark.features.kernel import FEATURE_NAMES, FEATURE_SET
from spark.kafka.dlq import dlq_headers
from spark.pipeline.pipeline import StepResult
from spark.pipeline.records import sparse
from spark.serde.avro import AvroSerde
from spark.serde.fast import FeatureWriter, PredictionWriter
from spark.topics import catalog

SOURCE = "spark.source"
PROCESSED_AT = "spark.processed_at"


@dataclass
class Outgoing:
    """Messages to produce, per catalog topic id: (key, value, headers), or (key, value,
    headers, partition) for one that goes to a given partition rather than its key's."""

    messages: dict[str, list[tuple]] = field(default_factory=dict)

    def add(self, topic_id: str, key: bytes | None, value: bytes, headers: list) -> None:
        self.messages.setdefault(topic_id, []).append((key, value, headers))

    def extend(self, topic_id: str, items: list) -> None:
        self.messages.setdefault(topic_id, []).extend(items)

    def count(self, topic_id: str) -> int:
        return len(self.messages.get(topic_id, ()))


def _nth(headers: list, k: int) -> list:
    """The headers of the k-th record of a tick on one topic (the first keeps them)."""
    if not k:
        return headers
    return [(SOURCE, headers[0][1].split(b"#")[0] + b"#%d" % k), *headers[1:]]


class OutputWriter:
    def __init__(self, serde: AvroSerde) -> None:
        self.serde = serde
        topics = self.topics = catalog()
        ids = serde.registry.id_for
        self.features = FeatureWriter(
            ids(topics["features"].name, "FeatureVector"), FEATURE_NAMES, FEATURE_SET
        )
        self.predictions = PredictionWriter(ids(topics["predictions"].name, "Prediction"))
        self.source_prefix = f"{topics['ticks'].name}/"

    def _encode(self, topic_id: str, record: dict) -> bytes:
        spec = self.topics[topic_id]
        return self.serde.encode(spec.name, spec.value, record)

    def write(
        self,
        result: StepResult,
        partition: int,
        symbols: list[str],
        horizon_ms: int,
        first_offset: int,
        out: Outgoing,
    ) -> None:
        """Every output of ``result`` whose input offset is ``first_offset`` or later (an
        earlier one was produced before a restart) into ``out``."""
        batch = result.batch
        offsets = batch.offset
        now = str(int(time.time() * 1e6)).encode()
        prefix = f"{self.source_prefix}{partition}@"
        sources = [f"{prefix}{o}".encode() for o in offsets.tolist()]
        stamp = (PROCESSED_AT, now)  # one tuple shared by every record of the turn
        headers = [[(SOURCE, source), stamp] for source in sources]
        keys = [s.encode() for s in symbols]
        rows = np.flatnonzero(result.valid & (offsets >= first_offset))
        if len(rows):
            slot = result.slot
            row_keys = [keys[s] for s in slot[rows].tolist()]
            row_headers = [headers[i] for i in rows.tolist()]
            values = self.features.encode(
                symbols, rows, slot, batch.ts, result.quotes, result.features, batch.received
            )
            out.extend("features", list(zip(row_keys, values, row_headers, strict=True)))
            for m, (model_id, version) in enumerate(result.models):
                values = self.predictions.encode(
                    symbols,
                    rows,
                    slot,
                    batch.ts,
                    result.probs,
                    m,
                    model_id,
                    version,
                    result.champion,
                    horizon_ms,
                )
                if m:  # the m-th record of each tick on the topic
                    nth = b"#%d" % m
                    row_headers = [[(SOURCE, sources[i] + nth), stamp] for i in rows.tolist()]
                out.extend("predictions", list(zip(row_keys, values, row_headers, strict=True)))
        seen: dict[tuple[int, str], int] = {}
        for i, topic_id, record in sparse(result):
            k = seen[(i, topic_id)] = seen.get((i, topic_id), -1) + 1
            if offsets[i] >= first_offset:
                key = (record.get("symbol") or record.get("model_id") or "").encode()
                out.add(topic_id, key, self._encode(topic_id, record), _nth(headers[i], k))

    def dead_letter(
        self,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        detail: str,
        partition: int,
        offset: int,
        out: Outgoing,
    ) -> None:
        ticks = self.topics["ticks"]
        origin = f"{ticks.name}/{partition}@{offset}"
        out.add(
            ticks.dlq, key, value or b"", dlq_headers(reason, detail, ticks.name, "ingest", origin)
        )
