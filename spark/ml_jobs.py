"""`spark model train`: fit a model version on recorded ticks and register it.

Uses the live feature, label and model code (test-then-train over the files,
so the metrics are honest progressive ones), then publishes the version with a
signed snapshot to the registry topic: as champion if the registry has none,
else as a challenger that workers run in shadow after their next start.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from spark.kafka import clients
from spark.kafka.state import latest_records
from spark.ml.evaluate import EvalResult, run_progressive
from spark.ml.registry import Slot, registry_key_of
from spark.ml.snapshots import registry_key
from spark.ticks.producer import default_serde
from spark.topics import catalog


@dataclass
class Registered:
    model_id: str
    version: int
    role: str
    result: EvalResult


def train_and_register(ticks, model: str, horizon_s: float) -> Registered:
    clients.ensure_reachable()  # fail before minutes of training, not after
    run, result = run_progressive(ticks, horizon_s, model)

    spec, events = catalog()["model_versions"], catalog()["model_events"]
    serde = default_serde()
    records = latest_records(spec, serde)
    versions = [r["version"] for r in records.values() if r["model_id"] == model]
    has_champion = any(r["role"] == "champion" for r in records.values())
    slot = Slot(
        run.learner, "challenger" if has_champion else "champion", max(versions, default=0) + 1
    )
    producer = clients.producer()
    producer.produce(
        spec.name,
        serde.encode(spec.name, spec.value, slot.to_record(registry_key())),
        registry_key_of(model, slot.version),
    )
    event = {
        "model_id": model,
        "version": slot.version,
        "event": "registered",
        "reason": f"spark model train: n={result.n} auc={result.auc:.4f} as {slot.role}",
        "ts": int(time.time() * 1e6),
    }
    producer.produce(events.name, serde.encode(events.name, events.value, event), model.encode())
    if producer.flush(30):
        from spark.errors import SparkError

        raise SparkError("the registry did not acknowledge the new model version")
    return Registered(model, slot.version, slot.role, result)
