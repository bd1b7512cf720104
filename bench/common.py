"""Shared pieces of the benchmarks: a broker, a prefix, a worker whose counters we can watch."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def bench_broker():
    """KAFKA_BOOTSTRAP_SERVERS if set, else an embedded broker; topics under a fresh prefix."""
    os.environ.setdefault("SPARK_HOME", tempfile.mkdtemp(prefix="spark-bench-"))
    os.environ["SPARK_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    from spark.broker import embedded
    from spark.kafka.topics import create_topics

    started = False
    if not os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        embedded.start(port=embedded.free_port())
        started = True
    try:
        create_topics()
        yield
    finally:
        if started:
            embedded.stop()


def metric(port: int, name: str, label: str | None = None) -> float:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return 0.0
    for line in text.decode().splitlines():
        if line.startswith(name + (("{" + label + "}") if label else " ")):
            return float(line.split()[-1])
    return 0.0


def worker_rate(name: str, label: str, target: float, timeout: float = 600) -> tuple[float, float]:
    """Start a worker, wait until ``name{label}`` reaches ``target``.

    Returns (rate per second, seconds from start to the first counted message).
    The rate is measured from the first counted message, so group join is excluded.
    """
    from spark.broker.embedded import free_port

    port = free_port()
    log = open(Path(os.environ["SPARK_HOME"]) / "bench-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "spark.cli", "worker", "--web-port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    t0 = time.perf_counter()
    first = None
    value = 0.0
    try:
        while value < target and time.perf_counter() - t0 < timeout:
            time.sleep(0.1)
            value = metric(port, name, label)
            if value and first is None:
                first = (time.perf_counter(), value)
        done = time.perf_counter()
    finally:
        worker.terminate()
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(10)
        log.close()
    if first is None or done <= first[0]:
        return 0.0, float("nan")
    return (value - first[1]) / (done - first[0]), first[0] - t0


def drain(topic: str, handle) -> int:
    """Call ``handle(msg)`` for every message of ``topic`` from the start to its end."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    from spark.kafka import clients

    consumer = clients.reader()
    meta = clients.ensure_reachable().topics[topic]
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions])
    n, pending = 0, set(meta.partitions)
    try:
        while pending:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                    continue
                handle(msg)
                n += 1
    finally:
        consumer.close()
    return n


def arrivals(consumer, timeout: float = 0.05) -> tuple[float, list]:
    """(arrival time, messages): woken by the first message, then whatever else is there.
    ``consume(n, timeout)`` alone returns only at n messages or the timeout, which adds up
    to the timeout to every latency measured with it."""
    first = consumer.poll(timeout)
    if first is None:
        return time.time(), []
    now = time.time()
    return now, [m for m in [first, *consumer.consume(1000, 0)] if m.error() is None]
