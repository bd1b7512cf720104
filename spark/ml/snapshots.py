"""The registry key: what signs model versions and pipeline checkpoints.

``SPARK_MODEL_KEY`` (hex, at least 16 bytes), which every worker of a deployment must
share; without it, a key file in ``$SPARK_HOME/model.key`` made on first use (enough for
workers on one machine), created atomically with mode 0600 and never overwritten. Anything signed
is checked in constant time before it is read (``spark.ml.registry``,
``spark.stream.checkpoint``, ``spark.commands``).

Every signature names its key by id (the first 16 hex digits of the key's SHA-256) and the
MAC covers that id too. Rotation (docs/reliability.md): ``SPARK_MODEL_KEYS_OLD`` (hex keys,
comma-separated) are keys still accepted to verify, never used to sign; new signatures
are always made with ``SPARK_MODEL_KEY``.

>>> ring = Keyring(bytes(16), (bytes([1]) * 16,))
>>> ring.key_id, ring.find(key_id(bytes([1]) * 16)) == bytes([1]) * 16, ring.find("0" * 16)
('374708fff7719dd5', True, None)
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

from spark.config import spark_home
from spark.errors import SparkError


class SnapshotRejected(SparkError):
    """A model version whose signature is missing or wrong; it is never loaded."""


def key_id(key: bytes) -> str:
    """What a signature names its key by (not secret: a hash of it)."""
    return hashlib.sha256(key).hexdigest()[:16]


@dataclass(frozen=True)
class Keyring:
    """The key that signs (``current``) and older ones still accepted to verify."""

    current: bytes
    old: tuple[bytes, ...] = ()

    @property
    def key_id(self) -> str:
        return key_id(self.current)

    def find(self, kid: str) -> bytes | None:
        """The key with id ``kid``, or None."""
        for key in (self.current, *self.old):
            if key_id(key) == kid:
                return key
        return None


def as_keyring(key: bytes | Keyring) -> Keyring:
    return key if isinstance(key, Keyring) else Keyring(key)


def _hex_key(name: str, text: str) -> bytes:
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        raise SparkError(f"{name} must be hex (e.g. 64 hex digits)") from None
    if len(key) < 16:
        raise SparkError(f"{name} must be at least 16 bytes (32 hex digits)")
    return key


def registry_key() -> bytes:
    env = os.environ.get("SPARK_MODEL_KEY")
    if env:
        return _hex_key("SPARK_MODEL_KEY", env)
    return bytes.fromhex(secret_file("model.key"))


def keyring() -> Keyring:
    """``registry_key()`` to sign, and ``SPARK_MODEL_KEYS_OLD`` also accepted to verify."""
    raw = os.environ.get("SPARK_MODEL_KEYS_OLD", "")
    old = tuple(_hex_key("SPARK_MODEL_KEYS_OLD", k) for k in raw.split(",") if k.strip())
    return Keyring(registry_key(), old)


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
