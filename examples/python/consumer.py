"""An execution system's reader in Python with stock clients only: Spark's signals (or any
output topic) decoded by confluent-kafka's AvroDeserializer; one JSON line per record.

    python consumer.py [--topic trading.signals] [--limit 100] [--idle 5]

Reads from the beginning without joining a group and stops after --limit records, or when
nothing arrived for --idle seconds. Same environment as producer.py. Nothing here imports
Spark.
"""

import argparse
import datetime
import json
import os
import sys
import time

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def micros(value):
    """timestamp-micros fields arrive as datetimes; print them as the integers on the wire."""
    if isinstance(value, datetime.datetime):
        return (value - EPOCH) // datetime.timedelta(microseconds=1)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topic", default="trading.signals")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many (0 = all)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds without a record")
    args = parser.parse_args()
    registry = SchemaRegistryClient(
        {"url": os.environ.get("SCHEMA_REGISTRY_URL", "http://127.0.0.1:8081")}
    )
    deserialize = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
            "group.id": f"python-reader-{os.getpid()}",
            "enable.auto.commit": False,
        }
    )
    meta = consumer.list_topics(args.topic, timeout=10).topics[args.topic]
    consumer.assign([TopicPartition(args.topic, p, 0) for p in meta.partitions])
    context = SerializationContext(args.topic, MessageField.VALUE)
    seen, last = 0, time.monotonic()
    while time.monotonic() - last < args.idle and not (args.limit and seen >= args.limit):
        msg = consumer.poll(0.2)
        if msg is None or msg.error():
            continue
        record = deserialize(msg.value(), context)
        print(json.dumps(record, default=micros))
        seen, last = seen + 1, time.monotonic()
    consumer.close()
    print(json.dumps({"topic": args.topic, "records": seen}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
