"""The registry key: what signs model versions and pipeline checkpoints.

``SPARK_MODEL_KEY`` (hex, at least 16 bytes), which every worker of a deployment must
share; without it, a key file in ``$SPARK_HOME/model.key`` made on first use (enough for
workers on one machine), created atomically with mode 0600 and never overwritten. Anything signed
is checked in constant time before it is read (``spark.ml.registry``,
``spark.stream.checkpoint``).
"""

from __future__ import annotations

import os
import secrets

from spark.config import spark_home
from spark.errors import SparkError


class SnapshotRejected(SparkError):
    """A model version whose signature is missing or wrong; it is never loaded."""


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
    return bytes.fromhex(secret_file("model.key"))


def secret_file(name: str) -> str:
    """The hex secret in ``$SPARK_HOME/name``, made on first use: 32 random bytes, written
    in full under another name (mode 0600), then linked into place, so a process that
    reads it never sees a half-written file and the first one made wins."""
    path = spark_home() / name
    if not path.exists():
        tmp = path.with_name(f".{name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def api_token() -> str:
    """The bearer token of the worker's HTTP API (``/ml/predict``): ``SPARK_API_TOKEN``, or
    ``$SPARK_HOME/api.token`` made on first use. ``spark token`` prints it."""
    env = os.environ.get("SPARK_API_TOKEN", "").strip()
    if env:
        if len(env) < 16:
            raise SparkError("SPARK_API_TOKEN must be at least 16 characters")
        return env
    return secret_file("api.token")
