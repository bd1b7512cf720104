"""`spark model train`: fit a model version on recorded ticks and register it.

The ticks go through one SignalPipeline (all symbols into one model: a version is meant
for any partition), test-then-train, so the metrics are honest progressive ones; then the
champion's learned parameters are published, signed, to the registry topic: as champion
if the registry has none, else as a challenger (``spark.ml.registry``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np

from spark.errors import SparkError
from spark.kafka import clients
from spark.kafka.state import latest_records
from spark.ml.evaluate import EvalResult, Scores, scoring
from spark.ml.registry import pack, registry_key_of, sign_record, verified_records
from spark.ml.snapshots import keyring, registry_key
from spark.pipeline import SignalPipeline, TickBatch
from spark.settings import Settings
from spark.ticks.producer import default_serde
from spark.topics import catalog


@dataclass
class Registered:
    model_id: str
    version: int
    role: str
    result: EvalResult


def train(batch: TickBatch, settings: Settings, on_tick=None) -> tuple[SignalPipeline, EvalResult]:
    """One pipeline of ``settings``' model over ``batch``; it and its progressive scores."""
    started = time.monotonic()
    settings = scoring(settings)
    pipeline, scores = SignalPipeline(settings), Scores()
    scores.ticks = len(batch)
    for lo in range(0, len(batch), 20_000):
        result = pipeline.step(batch.take(lo, lo + 20_000))
        scores.add(lo, np.arange(len(result.batch)), result)
        if on_tick is not None:
            on_tick(min(lo + 20_000, len(batch)))
    return pipeline, scores.result(settings, started)


def train_and_register(batch: TickBatch, settings: Settings, on_tick=None) -> Registered:
    clients.ensure_reachable()  # fail before minutes of training, not after
    pipeline, result = train(batch, settings, on_tick)
    spec, events = catalog()["model_versions"], catalog()["model_events"]
    serde = default_serde()
    # numbered after the versions a worker would trust: forged or replayed records count
    # for nothing here either (a forged v99 does not push the next version to v100)
    tombstones: set[str] = set()  # a tombstoned version still counts: its number is not reused
    records, _ = verified_records(latest_records(spec, serde, tombstones), keyring(), tombstones)
    model = settings.models.model
    versions = [r["version"] for r in records.values() if r["model_id"] == model]
    has_champion = any(r["role"] == "champion" for r in records.values())
    version, role = max(versions, default=0) + 1, "challenger" if has_champion else "champion"
    meta, arrays = pipeline.learners.export(pipeline.learners.champion)
    metrics = {
        k: v
        for k, v in (
            ("auc", result.auc),
            ("precision_at_20", result.precision_at_20),
            ("labels", float(result.n)),
        )
        if v == v
    }
    record = sign_record(
        {
            "model_id": model,
            "version": version,
            "role": role,
            "config_json": json.dumps(
                {
                    "model": model,
                    "horizon_s": settings.models.horizon_s,
                    "horizon_moves": settings.models.horizon_moves,
                }
            ),
            "metrics": metrics,
            "snapshot": pack(meta, arrays),
            "created": int(time.time() * 1e6),
        },
        registry_key(),
    )
    producer = clients.producer()
    producer.produce(
        spec.name, serde.encode(spec.name, spec.value, record), registry_key_of(model, version)
    )
    event = {
        "model_id": model,
        "version": version,
        "event": "registered",
        "reason": f"spark model train: n={result.n} auc={result.auc:.4f} as {role}",
        "ts": int(time.time() * 1e6),
    }
    producer.produce(events.name, serde.encode(events.name, events.value, event), model.encode())
    if producer.flush(30):
        raise SparkError("the registry did not acknowledge the new model version")
    return Registered(model, version, role, result)
