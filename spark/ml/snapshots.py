"""Model snapshots that only load when signed with the registry key.

A snapshot is a pickle of the model; unpickling runs code, so anyone who can
write the registry topic could otherwise run code in the worker. Every
snapshot carries an HMAC-SHA256 under a secret key, checked in constant time
*before* unpickling.

The key: ``SPARK_MODEL_KEY`` (hex), which every worker of a deployment must
share; without it, a key file in ``$SPARK_HOME/model.key`` made on first use
(enough for workers on one machine).

>>> key = bytes(32)
>>> blob, mac = dump_signed({"w": 1.0}, key)
>>> load_signed(blob, mac, key)
{'w': 1.0}
>>> load_signed(blob, "00" * 32, key)
Traceback (most recent call last):
...
spark.ml.snapshots.SnapshotRejected: snapshot signature does not match the registry key
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import secrets
from typing import Any

from spark.config import spark_home
from spark.errors import SparkError


class SnapshotRejected(SparkError):
    """A snapshot whose signature is missing or wrong; it is never unpickled."""


def registry_key() -> bytes:
    env = os.environ.get("SPARK_MODEL_KEY")
    if env:
        try:
            key = bytes.fromhex(env)
        except ValueError:
            raise SparkError("SPARK_MODEL_KEY must be hex (e.g. 64 hex digits)") from None
        if len(key) < 16:
            raise SparkError("SPARK_MODEL_KEY must be at least 16 bytes (32 hex digits)")
        return key
    path = spark_home() / "model.key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return bytes.fromhex(path.read_text().strip())


def sign(blob: bytes, key: bytes) -> str:
    return hmac.new(key, blob, hashlib.sha256).hexdigest()


def dump_signed(obj: Any, key: bytes) -> tuple[bytes, str]:
    blob = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return blob, sign(blob, key)


def load_signed(blob: bytes | None, mac: str | None, key: bytes) -> Any:
    if not blob or not mac:
        raise SnapshotRejected("snapshot or signature missing")
    if not hmac.compare_digest(sign(blob, key), mac):
        raise SnapshotRejected("snapshot signature does not match the registry key")
    return pickle.loads(blob)  # noqa: S301 - verified above
