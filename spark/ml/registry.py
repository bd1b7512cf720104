"""Champion and challengers: model slots, their registry records, and the promotion rule.

The champion's predictions become signals; challengers run in shadow on the
same stream, scored the same way, and never trade. Promotion rule: once the
champion and a challenger each have at least ``min_labels`` labels in their
rolling window, the challenger is promoted when its rolling AUC beats the
champion's by ``margin`` or more.

>>> rule = PromotionRule(margin=0.01, min_labels=100)
>>> rule.better({"auc": 0.60, "labels": 500}, {"auc": 0.615, "labels": 500})
True
>>> rule.better({"auc": 0.60, "labels": 500}, {"auc": 0.605, "labels": 500})
False
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field

from spark.ml.evaluate import Learner
from spark.ml.models import OnlineModel
from spark.ml.snapshots import dump_signed, load_signed


@dataclass
class PromotionRule:
    margin: float = 0.01
    min_labels: int = 2000

    def better(self, champion: dict, challenger: dict) -> bool:
        if min(champion["labels"], challenger["labels"]) < self.min_labels:
            return False
        if champion["auc"] != champion["auc"] or challenger["auc"] != challenger["auc"]:
            return False  # nan: one class only so far
        return challenger["auc"] >= champion["auc"] + self.margin


LIVE_SNAPSHOT = "live-v1"  # a worker's snapshot: model, pending labels, scores, position


@dataclass
class Slot:
    """One model version running in the predictor."""

    learner: Learner
    role: str  # champion | challenger
    version: int = 1
    # features partition -> offset of the last vector the restored snapshot includes
    # (empty unless restored from a worker's snapshot)
    position: dict[int, int] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.learner.model.name

    def metrics(self) -> dict:
        recent = self.learner.recent
        return {
            "auc": recent.auc(),
            "precision_at_20": recent.precision_at_20(),
            "labels": float(recent.labels),
        }

    def to_record(self, key: bytes, position: dict[int, int] | None = None) -> dict:
        """A ModelVersion record with a signed snapshot of the model.

        With ``position`` (a live worker: features partition -> offset of the last
        vector stepped on), the snapshot also holds the pending labels and rolling
        scores, so a restarted worker continues exactly where this one was.
        """
        estimator = self.learner.model.estimator
        payload = estimator
        if position is not None:
            payload = {
                "format": LIVE_SNAPSHOT,
                "estimator": estimator,
                "progress": self.learner.progress(),
                "position": dict(position),
            }
        snapshot, mac = dump_signed(payload, key)
        metrics = {k: v for k, v in self.metrics().items() if v == v}  # drop nan
        return {
            "model_id": self.model_id,
            "version": self.version,
            "role": self.role,
            "config_json": json.dumps(
                {"model": self.model_id, "horizon_s": self.learner.horizon_us / 1e6}
            ),
            "metrics": metrics,
            "snapshot": snapshot,
            "snapshot_hmac": mac,
            "created": int(time.time() * 1e6),
        }

    def restore(self, record: dict, key: bytes) -> None:
        """Load a registry record's snapshot (SnapshotRejected if its signature is wrong).

        A worker's snapshot also brings back the pending labels and rolling scores,
        unless it was made for another horizon, and the position it includes.
        """
        payload = load_signed(record.get("snapshot"), record.get("snapshot_hmac"), key)
        self.position = {}
        if isinstance(payload, dict) and payload.get("format") == LIVE_SNAPSHOT:
            estimator = payload["estimator"]
            horizon_s = json.loads(record.get("config_json") or "{}").get("horizon_s")
            if horizon_s is not None and round(horizon_s * 1e6) == self.learner.horizon_us:
                self.learner.resume(payload["progress"])
                self.position = {int(p): o for p, o in payload["position"].items()}
        else:
            estimator = payload
        self.learner.model = OnlineModel(record["model_id"], estimator)
        self.version = record["version"]
        self.role = record["role"]


def registry_key_of(model_id: str, version: int) -> bytes:
    """Message key of a model version on the compacted registry topic."""
    return f"{model_id}:{version}".encode()


def newest_versions(records: dict[str, dict]) -> dict[str, dict]:
    """model_id -> its newest record, from registry records keyed ``model_id:version``."""
    newest: dict[str, dict] = {}
    for record in records.values():
        current = newest.get(record["model_id"])
        if current is None or (record["version"], record["created"]) > (
            current["version"],
            current["created"],
        ):
            newest[record["model_id"]] = record
    return newest
