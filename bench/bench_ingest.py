"""Benchmark of the walking pipeline: replay and ingest throughput, each against a raw ceiling.

Prints, on one broker in one run:
  read      rows/s of the LEAN reader alone (no Kafka)
  replay    rows/s of `replay` (read + validate + encode + produce + acks)
  ceiling   msg/s of a plain confluent-kafka producer sending the same encoded bytes
  worker    msg/s of ticks consumed by a Faust worker running all agents
  raw       msg/s of a plain confluent-kafka consume + decode + validate loop

Usage: python -m bench.bench_ingest [FILE ...]   (from the repository root; default: the
bundled EURUSD day)
Uses KAFKA_BOOTSTRAP_SERVERS if set, else starts an embedded broker in a temp SPARK_HOME.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def main() -> None:
    from bench.common import bench_broker, drain, worker_rate
    from spark.demo import bundled_files
    from spark.kafka import clients
    from spark.serde.avro import AvroSerde
    from spark.serde.registry import EmbeddedRegistry
    from spark.ticks.check import check_tick_message
    from spark.ticks.readers import read
    from spark.ticks.replay import replay
    from spark.topics import catalog

    with bench_broker():
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
        print(f"ceiling   {len(encoded) / ceiling_s:>10,.0f} msg/s   (plain produce)")

        t = time.perf_counter()
        n = drain(ticks.name, lambda msg: check_tick_message(serde, msg.key(), msg.value()))
        raw_s = time.perf_counter() - t

        rate, delay = worker_rate("spark_events_in_total", 'topic="ticks"', result.produced)
        print(
            f"worker    {rate:>10,.0f} msg/s   (Faust worker, all agents, ticks consumed; "
            f"first after {delay:.1f}s incl. group join)"
        )
        print(
            f"raw       {n / raw_s:>10,.0f} msg/s   (confluent-kafka consume + decode + validate)"
        )


if __name__ == "__main__":
    main()
