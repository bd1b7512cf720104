"""Signing keys named by id and rotated (docs/reliability.md, "Key rotation"): model
versions, pipeline checkpoints and commands carry the id of the key that signed them, inside
what the MAC covers; old keys listed in SPARK_MODEL_KEYS_OLD still verify, never sign."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from spark.commands import CommandRejected, sign, verify
from spark.errors import SparkError
from spark.ml.registry import sign_record, verify_record
from spark.ml.snapshots import Keyring, SnapshotRejected, key_id, keyring
from spark.pipeline import SignalPipeline, TickBatch
from spark.settings import Settings
from spark.stream import checkpoint
from tests.test_policy import EURUSD, ticks_of

OLD, NEW = bytes([1]) * 32, bytes([2]) * 32
RECORD = {
    "model_id": "logreg", "version": 3, "role": "champion", "config_json": "{}",
    "metrics": {}, "snapshot": b"params", "created": 1,
}  # fmt: skip


def test_a_model_version_names_its_key_and_old_keys_verify_during_a_rotation():
    old = sign_record(RECORD, OLD)
    assert old["snapshot_hmac"].startswith(key_id(OLD) + ":")
    verify_record(old, Keyring(NEW, (OLD,)))  # rotation: the old key still verifies
    with pytest.raises(SnapshotRejected, match="does not hold"):
        verify_record(old, Keyring(NEW))  # after it: refused, naming the key
    # the key id is covered: relabelled as signed by another key, it no longer verifies
    kid, _, mac = old["snapshot_hmac"].partition(":")
    with pytest.raises(SnapshotRejected, match="does not cover"):
        verify_record(dict(old, snapshot_hmac=f"{key_id(NEW)}:{mac}"), Keyring(NEW, (OLD,)))
    with pytest.raises(SnapshotRejected, match="does not cover"):
        verify_record(dict(old, version=4), Keyring(NEW, (OLD,)))
    assert sign_record(RECORD, Keyring(NEW, (OLD,)))["snapshot_hmac"].startswith(key_id(NEW))


def test_model_versions_signed_before_key_ids_verify_with_the_current_key_only():
    import json
    import struct

    fields = json.dumps(
        [RECORD[f] for f in ("model_id", "version", "role", "config_json", "created")]
    )
    body = struct.pack(">Q", len(fields)) + fields.encode() + RECORD["snapshot"]
    legacy = dict(RECORD, snapshot_hmac=hmac.new(OLD, body, hashlib.sha256).hexdigest())
    verify_record(legacy, Keyring(OLD))
    with pytest.raises(SnapshotRejected):
        verify_record(legacy, Keyring(NEW, (OLD,)))


def test_checkpoints_name_their_key_and_rotate():
    pipeline = SignalPipeline(Settings().with_models(model="logreg"))
    pipeline.step(TickBatch.from_ticks(ticks_of(EURUSD, 500)))
    blob = checkpoint.encode(pipeline, 0, 499, Keyring(OLD))
    assert blob[5:21] == key_id(OLD).encode()
    restored, offset = checkpoint.decode(blob, Keyring(NEW, (OLD,)), 0)
    assert offset == 499 and restored.seq == pipeline.seq
    with pytest.raises(checkpoint.CheckpointRejected, match="does not hold"):
        checkpoint.decode(blob, Keyring(NEW), 0)
    forged = blob[:5] + key_id(NEW).encode() + blob[21:]  # another key's id, same MAC
    with pytest.raises(checkpoint.CheckpointRejected, match="does not match"):
        checkpoint.decode(forged, Keyring(NEW, (OLD,)), 0)
    # format 1 (no key id) is still read, with the current key
    body = blob[53:]
    legacy = b"SPKC\x01" + hmac.new(OLD, b"\x01" + body, hashlib.sha256).digest() + body
    assert checkpoint.decode(legacy, Keyring(OLD), 0)[1] == 499


def test_commands_signed_with_an_old_key_are_taken_during_a_rotation():
    command = sign({"action": "kill", "reason": "test", "ts": 1_000_000}, OLD)
    verify(command, Keyring(NEW, (OLD,)), 0, 300.0, set())
    with pytest.raises(CommandRejected, match="unknown_key"):
        verify(command, Keyring(NEW), 0, 300.0, set())


def test_the_keyring_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPARK_MODEL_KEY", NEW.hex())
    monkeypatch.setenv("SPARK_MODEL_KEYS_OLD", f"{OLD.hex()}, {bytes([3] * 16).hex()}")
    ring = keyring()
    assert ring.current == NEW and ring.old == (OLD, bytes([3] * 16))
    monkeypatch.setenv("SPARK_MODEL_KEYS_OLD", "abc")
    with pytest.raises(SparkError, match="SPARK_MODEL_KEYS_OLD"):
        keyring()
