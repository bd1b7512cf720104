"""Submit a job request and (optionally) wait for its result: what `spark backtest submit` does.

The results topic's end offsets are taken before the request is sent, so the
wait reads only what arrives after it, on every partition (the result's key
is the job id, so it lands on the same partition number as the request, but
reading all partitions does not depend on that).
"""

from __future__ import annotations

import getpass
import json
import time
import uuid

from confluent_kafka import KafkaError, TopicPartition

from spark.errors import SparkError
from spark.kafka import clients
from spark.kafka.topics import end_offsets
from spark.progress import spinner
from spark.ticks.producer import default_serde
from spark.topics import catalog

TOPICS = {
    "backtest": ("backtest_requests", "backtest_results"),
    "optimizer": ("optimizer_requests", "optimizer_results"),
    "export": ("export_requests", "export_results"),
}


def submit(kind: str, params: dict, wait: bool = True, timeout: float = 600.0) -> dict | None:
    """Send a ``kind`` job with ``params``; its JobResult as a dict if ``wait``."""
    if kind not in TOPICS:
        raise SparkError(f"unknown job kind {kind!r}; kinds: {', '.join(TOPICS)}")
    requests, results = (catalog()[t] for t in TOPICS[kind])
    clients.ensure_reachable()
    serde = default_serde()
    job_id = f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}"
    start = end_offsets(results.name, results.partitions) if wait else {}
    # a sweep fans out as child backtests: their results say how far it got
    children = catalog()["backtest_results"] if kind == "optimizer" and wait else None
    child_start = end_offsets(children.name, children.partitions) if children else {}
    record = {
        "job_id": job_id,
        "kind": kind,
        "params_json": json.dumps(params),
        "requested_by": getpass.getuser(),
        "parent_job_id": None,
        "ts": int(time.time() * 1e6),
    }
    producer = clients.producer_for(requests.name)
    producer.produce(
        requests.name, serde.encode(requests.name, requests.value, record), job_id.encode()
    )
    if producer.flush(10):
        raise SparkError("the job request was not acknowledged by Kafka")
    print(f"submitted {job_id} to {requests.name}", flush=True)
    if not wait:
        return None
    return wait_for_result(results, start, job_id, timeout, children, child_start)


def wait_for_result(
    results,
    start: dict[int, int],
    job_id: str,
    timeout: float,
    children=None,
    child_start: dict[int, int] | None = None,
) -> dict:
    """The JobResult of ``job_id``; while waiting, the count of its children's results
    (``children``: their results topic) is shown beside the spinner."""
    serde = default_serde()
    consumer = clients.reader(**{"enable.partition.eof": False, "fetch.wait.max.ms": 200})
    done: set[str] = set()
    try:
        assignment = [
            TopicPartition(results.name, p, start.get(p, 0)) for p in range(results.partitions)
        ]
        if children is not None:
            assignment += [
                TopicPartition(children.name, p, (child_start or {}).get(p, 0))
                for p in range(children.partitions)
            ]
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout
        with spinner(f"waiting for {job_id}") as tick:
            while time.monotonic() < deadline:
                tick(f"{len(done)} child backtests done" if done else None)
                for msg in consumer.consume(100, timeout=0.5):
                    if msg.error() is not None:
                        if msg.error().code() == KafkaError._PARTITION_EOF:
                            continue
                        raise SparkError(f"reading {msg.topic()}: {msg.error().str()}")
                    key = (msg.key() or b"").decode(errors="replace")
                    if children is not None and msg.topic() == children.name:
                        if key.startswith(f"{job_id}-c"):
                            done.add(key)
                        continue
                    if key == job_id:
                        return serde.decode(msg.value(), results.value)
    finally:
        consumer.close()
    raise SparkError(
        f"no result for {job_id} within {timeout:.0f}s: is a worker running the jobs agent? "
        "(spark status shows the request topic's lag)"
    )
