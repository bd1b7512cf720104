"""Interoperability with stock Confluent serializers, in both directions.

With SCHEMA_REGISTRY_URL set, Spark registers and looks up schemas through
confluent-kafka's SchemaRegistryClient. No registry server can be installed on
this machine (no Docker, no Maven), so the registry here is confluent-kafka's
own in-process client for ``mock://`` URLs; the broker is real. What this proves:
our bytes are what Confluent's AvroDeserializer expects and vice versa, and the
ConfluentRegistry code path registers under ``<topic>-value``.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from spark import schemas
from spark.consume import messages
from spark.kafka import clients
from spark.serde.registry import ConfluentRegistry, default_registry
from spark.ticks import Tick, TickProducer
from spark.ticks.producer import default_serde
from spark.topics import catalog

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
