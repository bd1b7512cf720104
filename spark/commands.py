"""Operator commands (drift gates, risk): signed by who sends them, checked by every worker.

A command record carries who sent it (``operator``), when (``ts``), a random ``nonce``,
the ``key_id`` of the registry key and an HMAC-SHA256 ``signature`` under that key over
every other field. Workers (``spark.stream.commands``) refuse, with a dead letter and its
reason, a command that is

* ``invalid_command``: an action or limit that does not exist,
* ``unsigned_command``, ``unknown_key`` or ``bad_signature``,
* ``stale_command``: its ``ts`` is more than ``SPARK_COMMAND_MAX_AGE_S`` (300) from when
  the broker took it (a signed command copied and produced again later), or
* ``replayed_command``: its nonce was seen before.

The broker's time, not the worker's clock, judges staleness, so a worker that reads the
command topic again after a restart decides exactly as before.

>>> key = bytes(32)
>>> cmd = sign({"action": "kill", "reason": "test", "ts": 5_000_000}, key)
>>> verify(cmd, key, broker_ts_us=6_000_000, max_age_s=300, seen=set())
>>> verify(dict(cmd, action="clear"), key, 6_000_000, 300, set())
Traceback (most recent call last):
...
spark.commands.CommandRejected: bad_signature: the signature does not cover this command
"""

from __future__ import annotations

import getpass
import hashlib
import hmac
import json
import secrets
import time

from spark.errors import SparkError
from spark.ml.snapshots import Keyring, as_keyring, key_id

SIGNATURE = "signature"


class CommandRejected(SparkError):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _payload(record: dict) -> bytes:
    fields = {k: v for k, v in record.items() if k != SIGNATURE}
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def sign(record: dict, key: bytes) -> dict:
    """``record`` with a fresh nonce, the key's id and the signature over all of it."""
    signed = {**record, "nonce": secrets.token_hex(16), "key_id": key_id(key)}
    return {**signed, SIGNATURE: hmac.new(key, _payload(signed), hashlib.sha256).hexdigest()}


def verify(
    record: dict, key: bytes | Keyring, broker_ts_us: int, max_age_s: float, seen: set
) -> None:
    """CommandRejected unless ``record`` is signed with a key of the ring, fresh and new;
    remembers its nonce in ``seen``. ``broker_ts_us``: when the broker took it (0: unknown)."""
    ring = as_keyring(key)
    if not record.get(SIGNATURE) or not record.get("nonce") or not record.get("key_id"):
        raise CommandRejected("unsigned_command", "send commands with `spark gate|risk ...`")
    signer = ring.find(str(record["key_id"]))
    if signer is None:
        raise CommandRejected(
            "unknown_key", f"signed with key {record['key_id']}, this worker has {ring.key_id}"
        )
    expected = hmac.new(signer, _payload(record), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, str(record[SIGNATURE])):
        raise CommandRejected("bad_signature", "the signature does not cover this command")
    if broker_ts_us and abs(broker_ts_us - record["ts"]) > max_age_s * 1e6:
        age = (broker_ts_us - record["ts"]) / 1e6
        raise CommandRejected(
            "stale_command", f"issued {age:,.0f} s from when the broker took it (max {max_age_s:g})"
        )
    if record["nonce"] in seen:
        raise CommandRejected("replayed_command", f"nonce {record['nonce']} was seen before")
    seen.add(record["nonce"])


def check_command(kind: str, command: dict) -> None:
    """CommandRejected ``invalid_command`` unless the action (and limit) exists."""
    from spark.execution.risk import LIMIT_NAMES, Limits

    action = command.get("action")
    if kind == "gate" and action not in ("open", "close"):
        raise CommandRejected("invalid_command", f"action must be open or close, not {action!r}")
    if kind == "job":
        if action != "cancel":
            raise CommandRejected("invalid_command", f"action must be cancel, not {action!r}")
        job_id = command.get("job_id")
        if not isinstance(job_id, str) or not 0 < len(job_id) <= 200:
            raise CommandRejected("invalid_command", "job_id must be a job's id")
    if kind == "risk":
        if action not in ("kill", "clear", "set_limit"):
            raise CommandRejected(
                "invalid_command", f"action must be kill, clear or set_limit, not {action!r}"
            )
        if action == "set_limit":
            if command.get("limit_name") is None or command.get("value") is None:
                raise CommandRejected(
                    "invalid_command",
                    f"set_limit needs limit_name (one of {', '.join(LIMIT_NAMES)}) and value",
                )
            try:
                Limits().set(command["limit_name"], command["value"])
            except (ValueError, KeyError, TypeError) as exc:
                raise CommandRejected("invalid_command", str(exc)) from None


def send_command(topic_id: str, fields: dict, operator: str | None, key: bytes | None = None):
    """Produce a signed command record of catalog topic ``topic_id``; fail unless Kafka
    acks it."""
    from spark import schemas
    from spark.kafka import clients
    from spark.ml.snapshots import registry_key
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    spec = catalog()[topic_id]
    clients.ensure_reachable()
    names = [f["name"] for f in schemas.load_current(spec.value)["fields"]]
    record = dict.fromkeys(names) | fields
    record |= {"operator": operator or getpass.getuser(), "ts": int(time.time() * 1e6)}
    record = sign({k: v for k, v in record.items() if k != SIGNATURE}, registry_key())
    producer = clients.producer_for(spec.name)
    producer.produce(spec.name, default_serde().encode(spec.name, spec.value, record), key)
    if producer.flush(10):
        raise SparkError(f"the command was not acknowledged by Kafka ({spec.name})")
