"""A feed handler in Python with stock clients only: confluent-kafka's Producer and its
Schema Registry AvroSerializer. Ticks as JSON lines on stdin -> the tick topic.

    python producer.py [--topic market.ticks] < ticks.jsonl
    {"symbol": "EURUSD", "ts": 1398920401787000, "bid": 1.38727, "ask": 1.38729}

KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092) and SCHEMA_REGISTRY_URL (default
http://127.0.0.1:8081, what `spark up` serves; `spark status` prints it). The schema is
this feed's own, a subset of Spark's Tick contract; the registry checks it is compatible.
Nothing here imports Spark.
"""

import argparse
import json
import os
import sys

from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

FEED_TICK = {
    "type": "record",
    "name": "Tick",
    "namespace": "io.spark",  # the contract's full name, so Avro resolution matches it
    "fields": [
        {"name": "symbol", "type": "string"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        *(
            {"name": name, "type": ["null", "double"], "default": None}
            for name in ("bid", "ask", "bid_size", "ask_size")
        ),
    ],
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="market.ticks")
    args = parser.parse_args()
    registry = SchemaRegistryClient(
        {"url": os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")}
    )
    serialize = AvroSerializer(registry, json.dumps(FEED_TICK))
    key = StringSerializer()
    producer = Producer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "partitioner": "murmur2_random",  # the Java client's: same partition per symbol
            "enable.idempotence": True,
        }
    )
    context = SerializationContext(args.topic, MessageField.VALUE)
    failed, sent = [], 0
    for line in sys.stdin:
        if not line.strip():
            continue
        tick = json.loads(line)
        value = {name: tick.get(name) for name in ("bid", "ask", "bid_size", "ask_size")}
        value.update(symbol=tick["symbol"], ts=tick["ts"])
        producer.produce(
            args.topic,
            serialize(value, context),
            key(tick["symbol"]),
            on_delivery=lambda err, _msg: failed.append(err) if err else None,
        )
        producer.poll(0)
        sent += 1
    producer.flush(60)
    print(json.dumps({"topic": args.topic, "sent": sent, "failed": len(failed)}))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
