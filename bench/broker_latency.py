"""How long one hop through the embedded broker takes: produce -> acknowledged -> consumed.

    .venv/bin/python -m bench.broker_latency [--rate 5000] [--messages 20000] [--cold] [--json]

The floor under the hot-path bench's tick -> signal figure (two hops: tick topic, worker,
signals topic). A paced idempotent producer (linger 1 ms, the feed handler of
``bench_hotpath``) writes to a fresh 6-partition topic on a broker of its own; a reader
(``fetch.wait.max.ms`` 5, woken by the first message it gets) receives them. Each value is
the wall time it was produced at, so a message's latency needs no bookkeeping.

By default the producer sends one message and waits for its acknowledgement before the
clock starts, as a long-lived feed handler's producer would have. ``--cold`` starts the
clock at once: a new idempotent producer holds what it is given until its producer id
arrives (~0.5 s here), and those messages then dominate the p99. Until session 23 the
hot-path bench measured cold, which put ~450 ms into its "relay floor" (docs/hot-path.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import arrivals  # noqa: E402


def quantiles(seconds: list[float]) -> dict:
    import numpy as np

    if not seconds:
        return {"n": 0}
    a = np.asarray(seconds) * 1000
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"n": len(a), "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": float(a.max())}


def hop(address: str, rate: float, messages: int, cold: bool, plain: bool = False) -> dict:
    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    topic, partitions = f"bench.hop-{int(time.time() * 1000)}", 6
    admin = AdminClient({"bootstrap.servers": address})  # kept until the topic exists
    admin.create_topics([NewTopic(topic, partitions, 1)])[topic].result()
    consumer = Consumer(
        {
            "bootstrap.servers": address,
            "group.id": f"bench-hop-{topic}",
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
    seen: list[float] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            now, messages = arrivals(consumer)
            seen.extend(now - float(m.value()) for m in messages if m.key() != b"warm")

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(1.5)  # assigned before anything is sent
    conf = {"bootstrap.servers": address, "enable.idempotence": True, "linger.ms": 1}
    if plain:  # the tick loop's at_least_once producer (spark/stream/loop.py)
        conf.update({"enable.idempotence": False, "max.in.flight.requests.per.connection": 1,
                     "acks": "all", "message.timeout.ms": 0})  # fmt: skip
    producer = Producer(conf)
    acks: list[float] = []
    if not cold:
        producer.produce(topic, repr(time.time()).encode(), b"warm")
        producer.flush(30)
    start = time.perf_counter()
    for k in range(messages):
        pause = start + k / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        sent = time.time()

        def acked(err, msg, sent=sent) -> None:
            if err is None:
                acks.append(time.time() - sent)

        producer.produce(topic, repr(sent).encode(), str(k % 97).encode(), on_delivery=acked)
        producer.poll(0)
    producer.flush(30)
    time.sleep(2.0)
    stop.set()
    reader.join()
    consumer.close()
    return {"acknowledged": quantiles(acks), "consumed": quantiles(seen)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=5000.0, help="messages a second")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--cold", action="store_true", help="start the clock with a new producer")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--plain",
        action="store_true",
        help="the tick loop's at_least_once producer: not idempotent, one request in flight",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("SPARK_HOME", tempfile.mkdtemp(prefix="spark-hop-"))
    from spark.broker import embedded

    address = embedded.start().address
    results = []
    try:
        for _ in range(args.runs):
            results.append(hop(address, args.rate, args.messages, args.cold, args.plain))
    finally:
        embedded.stop()
    if args.json:
        print(json.dumps(results))
        return
    state = "cold producer" if args.cold else "warm producer"
    state += ", not idempotent, 1 in flight" if args.plain else ""
    for r in results:
        for what in ("acknowledged", "consumed"):
            q = r[what]
            print(
                f"{what:>12}  p50 {q['p50_ms']:6.1f}  p90 {q['p90_ms']:6.1f}  "
                f"p99 {q['p99_ms']:6.1f}  max {q['max_ms']:6.1f} ms  "
                f"({q['n']:,} at {args.rate:,.0f}/s, {state})"
            )


if __name__ == "__main__":
    main()
