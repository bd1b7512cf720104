"""Benchmark of the walking pipeline: replay and ingest throughput, each against a raw ceiling.

Prints, on one broker in one run:
  read      rows/s of the LEAN reader alone (no Kafka)
  replay    rows/s of `replay` (read + validate + encode + produce + acks)
  ceiling   msg/s of a plain confluent-kafka producer sending the same encoded bytes
  ingest    msg/s of the Faust worker's ingest agent (consume + decode + validate)
  raw       msg/s of a plain confluent-kafka consume + decode + validate loop

Usage: python bench/bench_ingest.py [FILE ...]   (default: the bundled EURUSD day)
Uses KAFKA_BOOTSTRAP_SERVERS if set, else starts an embedded broker in a temp SPARK_HOME.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path


def main() -> None:
    os.environ.setdefault("SPARK_HOME", tempfile.mkdtemp(prefix="spark-bench-"))
    os.environ["SPARK_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    from spark.broker import embedded
    from spark.demo import bundled_files
    from spark.kafka import clients
    from spark.kafka.topics import create_topics
    from spark.serde.avro import AvroSerde
    from spark.serde.registry import EmbeddedRegistry
    from spark.ticks.check import check_tick_message
    from spark.ticks.readers import read
    from spark.ticks.replay import replay
    from spark.topics import catalog

    started_broker = False
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        embedded.start(port=embedded.free_port())
        started_broker = True
    try:
        create_topics()
        paths = [Path(p) for p in sys.argv[1:]] or bundled_files()[:1]
        ticks = catalog()["ticks"]
        serde = AvroSerde(EmbeddedRegistry())

        t = time.perf_counter()
        rows = [r for p in paths for r in read(p, "lean-quote")]
        read_s = time.perf_counter() - t
        print(f"read      {len(rows) / read_s:>10,.0f} rows/s  ({len(rows):,} rows)")

        result = replay(paths, "lean-quote")
        print(
            f"replay    {result.rows / result.seconds:>10,.0f} rows/s  "
            f"({result.produced:,} produced, {result.dead_lettered:,} dead-lettered)"
        )

        encoded = [
            (r.tick.symbol.encode(), serde.encode(ticks.name, "Tick", r.tick.to_record()))
            for r in rows
            if r.tick
        ]
        producer = clients.producer()
        t = time.perf_counter()
        for key, value in encoded:
            while True:
                try:
                    producer.produce(ticks.name + ".bench", value, key)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(60)
        ceiling_s = time.perf_counter() - t
        print(
            f"ceiling   {len(encoded) / ceiling_s:>10,.0f} msg/s   (plain produce, to an "
            "auto-created topic)"
        )

        # raw consume + decode + validate of the replayed ticks
        consumer = clients.reader()
        meta = clients.ensure_reachable().topics[ticks.name]
        consumer.assign([TopicPartition(ticks.name, p, OFFSET_BEGINNING) for p in meta.partitions])
        n, pending = 0, set(meta.partitions)
        t = time.perf_counter()
        while pending:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                check_tick_message(serde, msg.key(), msg.value())
                n += 1
        raw_s = time.perf_counter() - t
        consumer.close()

        port = embedded.free_port()
        log = open(Path(os.environ["SPARK_HOME"]) / "bench-worker.log", "wb")  # noqa: SIM115
        worker = subprocess.Popen(
            [sys.executable, "-m", "spark.cli", "worker", "--web-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        t0 = time.perf_counter()
        first = None
        consumed = 0.0
        try:
            while consumed < result.produced and time.perf_counter() - t0 < 300:
                time.sleep(0.1)
                try:
                    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read()
                except OSError:
                    continue
                for line in text.decode().splitlines():
                    if line.startswith('spark_events_in_total{topic="ticks"}'):
                        consumed = float(line.split()[-1])
                if consumed and first is None:
                    first = (time.perf_counter(), consumed)
            done = time.perf_counter()
        finally:
            worker.terminate()
            worker.wait(30)
        rate = (consumed - first[1]) / (done - first[0]) if first and done > first[0] else 0
        print(
            f"ingest    {rate:>10,.0f} msg/s   (Faust worker; first message "
            f"{first[0] - t0:.1f}s after start, incl. group join)"
        )
        print(
            f"raw       {n / raw_s:>10,.0f} msg/s   (confluent-kafka consume + decode + validate)"
        )
    finally:
        if started_broker:
            embedded.stop()


if __name__ == "__main__":
    main()
