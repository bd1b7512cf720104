"""Fuzzing the command topics through a live worker: whatever arrives on gate.commands,
risk.commands or job.commands (bytes, or records that fit the contract with any values),
the worker dead-letters each once with a reason, applies none, keeps running, and still
takes the next good command. (The checks alone are fuzzed in tests/test_commands.py.)"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import pytest

from spark.consume import messages
from spark.kafka import clients
from spark.kafka.dlq import decode_headers
from spark.ticks.producer import default_serde
from spark.topics import catalog
from tests.conftest import wait_for
from tests.test_executor_worker import executor_view, invoke
from tests.test_model_registry import http

pytestmark = pytest.mark.broker
SCHEMAS = Path(__file__).resolve().parent.parent / "schemas"
# values a command's strings may plausibly hold, among random text
WORDS = ["kill", "clear", "set_limit", "open", "close", "cancel", "EURUSD", "",
         "max_gross_notional", "max_daily_drawdown", "k1", "0" * 64, "x" * 300, "é∂ƒ",
         "\x00", "None"]  # fmt: skip


ACTIONS = {"gate_commands": ["open", "close"], "risk_commands": ["kill", "clear", "set_limit"],
           "job_commands": ["cancel"]}  # fmt: skip


def datum(schema, rnd: random.Random):
    """A random value that fits Avro ``schema`` (the types our command contracts use)."""
    if isinstance(schema, list):
        return datum(rnd.choice(schema), rnd)
    if isinstance(schema, dict):
        if schema["type"] == "record":
            return {f["name"]: datum(f["type"], rnd) for f in schema["fields"]}
        if schema.get("logicalType") == "timestamp-micros":
            return rnd.choice([0, 1, -1, 2**62, -(2**62), rnd.randrange(-(2**63), 2**63)])
        return datum(schema["type"], rnd)
    if schema == "null":
        return None
    if schema == "string":
        if rnd.random() < 0.6:
            return rnd.choice(WORDS)
        return "".join(chr(rnd.randrange(1, 0x3000)) for _ in range(rnd.randrange(0, 20)))
    if schema == "double":
        return rnd.choice([0.0, -1.0, 1e308, float("nan"), float("inf"), rnd.uniform(-1e9, 1e9)])
    if schema in ("long", "int"):
        return rnd.randrange(-(2**31), 2**31)
    if schema == "boolean":
        return rnd.random() < 0.5
    raise AssertionError(f"no generator for {schema!r}")


KEY_IDS = ["k1", "", "None", "0" * 16]


def junk(rnd: random.Random, schema_id: int) -> bytes:
    """Bytes that are not a record: empty, random, or the wire format's header then garbage."""
    body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40)))
    return rnd.choice([b"", body, b"\x00" + struct.pack(">I", schema_id) + body, b"\x00" + body])


@pytest.mark.parametrize("seed", [7])
def test_random_commands_are_dead_lettered_and_change_nothing(worker, seed):
    from spark.ml.snapshots import key_id, registry_key

    rnd = random.Random(seed)
    key_ids = [*KEY_IDS, key_id(registry_key())]  # the worker's own key id, a wrong MAC
    serde, producer = default_serde(), clients.producer()
    sent = {}
    for topic_id in ("gate_commands", "risk_commands", "job_commands"):
        spec = catalog()[topic_id]
        schema = json.loads((SCHEMAS / f"{spec.value}.avsc").read_text())
        good = serde.encode(spec.name, spec.value, datum(schema, rnd))
        schema_id = struct.unpack(">I", good[1:5])[0]
        values = []
        for _ in range(60):
            record = datum(schema, rnd)
            if rnd.random() < 0.7:  # an action the topic knows, so the checks go further
                record["action"] = rnd.choice(ACTIONS[topic_id])
            if rnd.random() < 0.5:  # a record that looks signed
                record |= {"nonce": "n", "key_id": rnd.choice(key_ids), "signature": "ab" * 32}
            values.append(serde.encode(spec.name, spec.value, record))
        values += [junk(rnd, schema_id) for _ in range(20)]
        for value in values:
            producer.produce(spec.name, value, key=rnd.choice([None, b"k", b"EURUSD"]))
        sent[topic_id] = len(values)
    assert producer.flush(10) == 0

    def all_dead():
        got = {t: list(messages(catalog()[catalog()[t].dlq], from_beginning=True)) for t in sent}
        return got if all(len(got[t]) >= n for t, n in sent.items()) else None

    dead = wait_for(all_dead, 120, "every fuzzed command dead-lettered")
    for topic_id, got in dead.items():
        assert len(got) == sent[topic_id], topic_id  # each once
        headers = [decode_headers(m.headers()) for m in got]
        assert all(h["spark.dlq.topic"] == catalog()[topic_id].name for h in headers)
        reasons = {h["spark.dlq.reason"] for h in headers}
        # refused at every step: the bytes, the contract, the command, its signature
        assert {"bad_magic_byte", "invalid_command"} <= reasons, (topic_id, reasons)
        assert reasons & {"undecodable", "unknown_schema_id"}, (topic_id, reasons)
        assert {"unknown_key", "bad_signature"} <= reasons, (topic_id, reasons)
    # none was applied, and the worker still runs and takes a good command
    assert http(worker.web_port, "/health")[0] == 200
    assert executor_view(worker).get("kill_switch") is None
    assert not executor_view(worker).get("limit_overrides")
    invoke("risk", "kill", "--reason", "after the fuzz")
    wait_for(lambda: executor_view(worker).get("kill_switch"), 60, "the good command applied")
