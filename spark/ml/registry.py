"""The model registry: trained model versions, signed, on a compacted topic.

A version (``schemas/ModelVersion.avsc``) holds the model's learned parameters — the
logistic regression's numbers, gbm's trees as arrays — as ``numpy.savez`` bytes with a
JSON header: nothing is unpickled, so writing the registry topic cannot run code in a
worker. Its signature (HMAC-SHA256 under the registry key, ``spark.ml.snapshots``) covers
every field that matters — model id, version, role, configuration, creation time and the
parameters — so no field can be changed (say, an old version relabelled as newer) without
the key.

``spark model train`` registers versions. A worker's partition pipeline adopts them when
it is created without a checkpoint: the newest version of its configured champion
replaces the untrained one; any other registered model joins as a challenger. Pipelines
restored from a checkpoint keep their own models and add registered models they do not
run yet as challengers.

Promotion rule (``spark.pipeline.pipeline``): once the champion and a challenger each have
at least ``min_labels`` labels, the challenger is promoted when its rolling AUC beats the
champion's by ``margin`` or more.

>>> key = bytes(32)
>>> record = sign_record({"model_id": "logreg", "version": 1, "role": "champion",
...     "config_json": "{}", "metrics": {}, "snapshot": b"x", "created": 1}, key)
>>> verify_record(record, key)
>>> verify_record(dict(record, version=2), key)
Traceback (most recent call last):
...
spark.ml.snapshots.SnapshotRejected: the signature does not cover this record: version, role, ...
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import struct

import numpy as np

from spark.ml.snapshots import Keyring, SnapshotRejected, as_keyring

SIGNED = ("model_id", "version", "role", "config_json", "created")


def _digest(record: dict, key: bytes, kid: str | None) -> str:
    """HMAC over the signed fields, the key id (None: the signatures before session 8,
    which named no key) and the parameters."""
    named = [record[f] for f in SIGNED] + ([kid] if kid is not None else [])
    fields = json.dumps(named).encode()
    body = struct.pack(">Q", len(fields)) + fields + (record.get("snapshot") or b"")
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign_record(record: dict, key: bytes | Keyring) -> dict:
    """``record`` signed with the current key: ``snapshot_hmac`` = ``<key id>:<hmac>``."""
    ring = as_keyring(key)
    return dict(record, snapshot_hmac=f"{ring.key_id}:{_digest(record, ring.current, ring.key_id)}")


def verify_record(record: dict, key: bytes | Keyring) -> None:
    """SnapshotRejected unless ``record`` is signed, with a key of the ring, as it is."""
    ring = as_keyring(key)
    mac = record.get("snapshot_hmac")
    if not record.get("snapshot") or not mac:
        raise SnapshotRejected("snapshot or signature missing")
    kid, sep, digest = str(mac).rpartition(":")
    if sep:
        signer = ring.find(kid)
        if signer is None:
            raise SnapshotRejected(
                f"signed with key {kid}, which this worker does not hold (its key is "
                f"{ring.key_id}; during a rotation list the old key in SPARK_MODEL_KEYS_OLD)"
            )
        expected = _digest(record, signer, kid)
    else:  # signed before key ids: only the current key
        expected = _digest(record, ring.current, None)
    if not hmac.compare_digest(expected, digest):
        raise SnapshotRejected(
            "the signature does not cover this record: version, role, configuration or "
            "parameters changed, or another registry key signed it"
        )


def pack(meta: dict, arrays: dict[str, np.ndarray]) -> bytes:
    """JSON header and arrays as bytes (no pickle)."""
    text = json.dumps(meta).encode()
    packed = io.BytesIO()
    np.savez(packed, **arrays)
    return struct.pack(">Q", len(text)) + text + packed.getvalue()


def unpack(data: bytes) -> tuple[dict, dict[str, np.ndarray]]:
    (size,) = struct.unpack(">Q", data[:8])
    meta = json.loads(data[8 : 8 + size])
    with np.load(io.BytesIO(data[8 + size :]), allow_pickle=False) as npz:
        return meta, {name: npz[name] for name in npz.files}


def registry_key_of(model_id: str, version: int) -> bytes:
    """Message key of a model version on the compacted registry topic."""
    return f"{model_id}:{version}".encode()


def verified_records(
    records: dict[str, dict], key: bytes | Keyring, tombstones: set[str] | frozenset = frozenset()
) -> tuple[dict[str, dict], dict[str, str]]:
    """(the registry records that may be trusted, refused message key -> why), from
    ``latest_records`` of the registry topic read with tombstones kept apart: each
    correctly signed (``verify_record``) and under its own message key
    (``registry_key_of``). Whoever reads the registry — a worker adopting versions,
    ``spark model train`` numbering the next one — reads it through this, so a forged
    record, or a signed one replayed under a newer version's key, counts for nothing
    anywhere. A tombstone deletes nothing (it carries no signature, and nothing here
    deletes versions): it is refused, and the version it named stays."""
    good: dict[str, dict] = {}
    refused = {
        k: "a tombstone, which deletes nothing: registry versions are never deleted "
        "(a tombstone carries no signature)"
        for k in sorted(tombstones)
    }
    for message_key, record in records.items():
        try:
            verify_record(record, key)
        except SnapshotRejected as exc:
            refused[message_key] = str(exc)
            continue
        if message_key.encode() != registry_key_of(record["model_id"], record["version"]):
            # an older version's signed record sent again under a newer one's key would
            # replace that version on the compacted topic
            refused[message_key] = (
                f"a record of {record['model_id']} v{record['version']} under the key {message_key}"
            )
            continue
        good[message_key] = record
    return good, refused


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
