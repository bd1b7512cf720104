"""Interoperability with clients nobody here wrote, in both directions.

* The served registry (``spark schemas serve``, what `spark up` runs): confluent-kafka's
  ``AvroSerializer`` and a Node feed handler (kafkajs + @kafkajs/confluent-schema-registry,
  ``examples/node``) register their own Tick schema and produce ticks that a real worker
  turns into predictions; ``AvroDeserializer`` and the Node reader decode its outputs.
* With SCHEMA_REGISTRY_URL set, Spark registers and looks up schemas through
  confluent-kafka's SchemaRegistryClient; here its in-process ``mock://`` registry.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

from spark import schemas
from spark.consume import messages
from spark.kafka import clients
from spark.serde.registry import ConfluentRegistry, default_registry
from spark.ticks import Tick, TickProducer
from spark.ticks.producer import default_serde
from spark.topics import catalog
from tests.conftest import wait_for

pytestmark = pytest.mark.broker


@pytest.fixture
def registry_url(broker, monkeypatch):
    url = "mock://spark-interop"
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", url)
    default_registry.cache_clear()
    yield url
    default_registry.cache_clear()


def test_spark_writes_what_confluent_reads(registry_url):
    ticks = catalog()["ticks"]
    with TickProducer(source="spark") as feed:
        feed.send(Tick("EURUSD", 1_398_920_401_787_000, bid=1.38727, ask=1.38729))
    registry = default_serde().registry
    assert isinstance(registry, ConfluentRegistry)
    client = registry._client
    assert f"{ticks.name}-value" in client.get_subjects()
    deserialize = AvroDeserializer(client)
    msg = next(iter(messages(ticks, from_beginning=True)))
    record = deserialize(msg.value(), SerializationContext(ticks.name, MessageField.VALUE))
    assert record["symbol"] == "EURUSD" and record["ask"] == 1.38729
    assert record["ts"].year == 2014  # stock readers see the timestamp-micros logical type


def test_confluent_writes_what_spark_reads(registry_url):
    ticks = catalog()["ticks"]
    client = default_serde().registry._client
    serialize = AvroSerializer(client, json.dumps(schemas.load_current("Tick")))
    value = serialize(
        {"symbol": "GBPUSD", "ts": 1_398_920_401_787_000, "bid": 1.69, "ask": 1.7},
        SerializationContext(ticks.name, MessageField.VALUE),
    )
    producer = clients.producer()
    producer.produce(ticks.name, value, b"GBPUSD")
    producer.flush(10)
    msg = next(iter(messages(ticks, from_beginning=True)))
    assert default_serde().decode(msg.value(), "Tick")["bid"] == 1.69


# --- the served registry, stock clients, a real worker ----------------------------------------

BUNDLED_DAY = Path(__file__).resolve().parent.parent / "spark/data/fxcm/eurusd/20140501_quote.zip"
# A feed handler's own schema: the contract's name, a subset of its fields (no last price,
# venue or source). Registering it is a new version the registry checks for compatibility.
FEED_TICK = {
    "type": "record",
    "name": "Tick",
    "namespace": "io.spark",
    "fields": [
        {"name": "symbol", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        *(
            {"name": n, "type": ["null", "double"], "default": None}
            for n in ("bid", "ask", "bid_size", "ask_size")
        ),
    ],
}


def first_ticks(n: int) -> list[dict]:
    from spark.ticks.readers import read

    rows = (r.tick for r in read(BUNDLED_DAY, "lean-quote") if r.tick)
    return [
        {k: getattr(t, k) for k in ("symbol", "ts", "bid", "ask", "bid_size", "ask_size")}
        for t in itertools.islice(rows, n)
    ]


def wait_predicted(worker, n: int) -> None:
    wait_for(
        lambda: worker.metric("spark_events_out_total", topic="predictions") >= n,
        timeout=120,
        what=f"{n} predictions",
    )
    assert worker.metric("spark_ticks_accepted_total") == n
    assert worker.metric("spark_dead_letters_total", stage="ingest") == 0


# the band policy (SPARK_MIN_EDGE=0): the cost-aware default trades too rarely on these ticks
# for the records this test compares
@pytest.mark.worker_env(SPARK_MIN_EDGE="0")
def test_stock_python_clients_feed_the_worker_and_read_its_outputs(registry, worker):
    client = SchemaRegistryClient({"url": registry.url})
    ticks = catalog()["ticks"]
    serialize = AvroSerializer(client, json.dumps(FEED_TICK))
    keys = StringSerializer()
    sent = first_ticks(3000)
    producer = Producer({"bootstrap.servers": clients.base_config()["bootstrap.servers"]})
    for tick in sent:
        context = SerializationContext(ticks.name, MessageField.VALUE)
        producer.produce(ticks.name, serialize(tick, context), keys(tick["symbol"]))
    assert producer.flush(30) == 0
    # the feed's schema is a second version of the tick subject, with an id of its own
    assert client.get_versions(f"{ticks.name}-value") == [1, 2]
    wait_predicted(worker, len(sent))

    deserialize = AvroDeserializer(client)
    decoded = {}
    for topic_id in ("features", "predictions", "signals"):
        spec = catalog()[topic_id]
        context = SerializationContext(spec.name, MessageField.VALUE)
        decoded[topic_id] = [
            deserialize(m.value(), context) for m in messages(spec, from_beginning=True)
        ]
    assert len(decoded["features"]) == len(decoded["predictions"]) == len(sent)
    assert {p["symbol"] for p in decoded["predictions"]} == {"EURUSD"}
    assert all(0.0 <= p["prob_up"] <= 1.0 for p in decoded["predictions"])
    # stock readers see the logical type: the first prediction is for the first tick
    first = decoded["predictions"][0]["ts"]
    assert int(first.timestamp() * 1_000_000) == sent[0]["ts"]
    assert decoded["signals"], "3,000 real ticks give signals (948 in the run that wrote this)"
    assert all(s["symbol"] == "EURUSD" for s in decoded["signals"])


def npm_installed() -> None:
    """examples/node with its locked packages installed (from the npm registry)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not (node and npm):
        if os.environ.get("CI"):
            pytest.fail("node and npm are missing in CI: scripts/test.sh installs them")
        pytest.skip("node/npm not installed (apt-get install nodejs npm)")
    root = Path(__file__).resolve().parent.parent / "examples/node"
    if not (root / "node_modules/kafkajs").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=root,
            check=True,
            timeout=300,
        )


def test_example_clients_feed_the_worker_and_read_its_predictions(registry, worker):
    """examples/python and examples/node: a feed handler and a reader with stock clients,
    run as users do, against one worker: each feeds 500 real ticks, each reads back the
    predictions of all 1,000."""
    npm_installed()
    examples = Path(__file__).resolve().parent.parent / "examples"
    languages = {
        "python": (
            [sys.executable, "producer.py"],
            [sys.executable, "consumer.py", "--idle", "10"],
        ),
        "node": (["node", "producer.js"], ["node", "consumer.js"]),
    }
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": clients.base_config()["bootstrap.servers"],
        "SCHEMA_REGISTRY_URL": registry.url,
    }
    ticks = first_ticks(1000)
    for n, (language, (producer, _)) in enumerate(languages.items()):
        sent = ticks[n * 500 : (n + 1) * 500]
        fed = subprocess.run(
            [*producer, "--topic", catalog()["ticks"].name],
            input="".join(json.dumps(t) + "\n" for t in sent),
            capture_output=True,
            text=True,
            cwd=examples / language,
            env=env,
            timeout=120,
        )
        assert fed.returncode == 0, (language, fed.stderr)
        assert json.loads(fed.stdout)["sent"] == len(sent)
    wait_predicted(worker, len(ticks))

    for language, (_, consumer) in languages.items():
        read = subprocess.run(
            [*consumer, "--topic", catalog()["predictions"].name, "--limit", str(len(ticks))],
            capture_output=True,
            text=True,
            cwd=examples / language,
            env=env,
            timeout=180,
        )
        assert read.returncode == 0, (language, read.stderr)
        records = [json.loads(line) for line in read.stdout.splitlines()]
        assert len(records) == len(ticks), language
        assert sorted(r["ts"] for r in records) == [t["ts"] for t in ticks], language
        assert all(r["symbol"] == "EURUSD" and 0 <= r["prob_up"] <= 1 for r in records)
