"""Does the embedded broker keep every acked record on a given S3 server? One command.

    .venv/bin/python bench/s3_probe.py [--s3rver PATH] [--s3-endpoint URL]
                                       [--writers 3] [--batches 30] [--json]

Tansu's S3 storage keeps each partition's watermark (and producer sequence state) in an
object that it rewrites with a conditional PUT (If-Match / If-None-Match). An S3 server
that ignores those headers lets concurrent produce requests overwrite each other's
updates. This probe shows what that costs, on each storage in turn (memory, moto's S3
server, and npm's s3rver when ``--s3rver PATH`` is given):

* whether the S3 server refuses a PUT with ``If-None-Match: *`` on an existing key and a
  PUT with a wrong ``If-Match`` (it must, with 412 PreconditionFailed);
* ``--writers`` idempotent producers write ``--batches`` batches of 20 unique records each
  to one partition at the same time, each batch flushed before the next;
* every record is read back from offset 0: acked, read, and acked but not readable
  (must be 0), plus the delivery errors by code and the reported high watermark.

Measured figures and what they mean for the chaos runs: docs/broker.md, docs/reliability.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

TOPIC = "s3probe.records"


def conditional_puts_refused() -> bool:
    """True when the S3 server at AWS_ENDPOINT refuses both conditional PUTs it must."""
    from botocore.exceptions import ClientError

    from bench.chaos import s3_client

    s3 = s3_client()
    s3.put_object(Bucket="spark", Key="s3probe/conditional", Body=b"1")
    refused = 0
    for condition in ({"IfNoneMatch": "*"}, {"IfMatch": '"0123456789abcdef"'}):
        try:
            s3.put_object(Bucket="spark", Key="s3probe/conditional", Body=b"2", **condition)
        except ClientError as exc:
            refused += exc.response["Error"]["Code"] == "PreconditionFailed"
    s3.delete_object(Bucket="spark", Key="s3probe/conditional")
    return refused == 2


def probe(storage: str, writers: int, batches: int) -> dict:
    """Concurrent writers to one partition of a fresh broker on ``storage``, read back."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    from spark.broker import embedded

    port = embedded.free_port()
    embedded.start(port=port, storage=storage)
    bootstrap = f"127.0.0.1:{port}"
    try:
        admin = AdminClient({"bootstrap.servers": bootstrap})
        admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(30)
        # per writer, no locks: a producer's callbacks run on the thread that flushes it,
        # and after a fatal error the client may call a callback with its exception still
        # set, which broke a shared lock's __enter__ (left held: the probe hung)
        acked: list[list[bytes]] = [[] for _ in range(writers)]
        errors: list[Counter] = [Counter() for _ in range(writers)]
        fatal = [False] * writers

        def write(w: int) -> None:
            def delivered(err, msg) -> None:
                if err is None:
                    acked[w].append(msg.value())
                else:
                    errors[w][err.name()] += 1
                    fatal[w] = fatal[w] or err.fatal()

            def on_error(err) -> None:
                fatal[w] = fatal[w] or err.fatal()

            producer = Producer(
                {
                    "bootstrap.servers": bootstrap,
                    "enable.idempotence": True,
                    "linger.ms": 0,
                    "error_cb": on_error,
                }
            )
            for b in range(batches):
                if any(fatal):  # a fatal error stops every writer (the probe has its answer)
                    break
                for i in range(20):
                    producer.produce(TOPIC, f"{w}-{b}-{i}".encode(), on_delivery=delivered)
                try:
                    producer.flush(10)
                except Exception as exc:  # noqa: BLE001 - the client raises fatal errors here
                    errors[w][type(exc).__name__] += 1
                    fatal[w] = True
            if any(fatal):  # drop what a fatal producer still holds, or closing it waits
                producer.purge()
                with contextlib.suppress(Exception):  # already counted above
                    producer.flush(0)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        all_acked = [v for values in acked for v in values]
        all_errors = sum(errors, Counter())
        reader = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": "s3probe-reader",
                "enable.auto.commit": False,
            }
        )
        try:
            _low, high = reader.get_watermark_offsets(
                TopicPartition(TOPIC, 0), timeout=60, cached=False
            )
            reader.assign([TopicPartition(TOPIC, 0, 0)])
            read: set[bytes] = set()
            # 15 s without a new record is all there is; a broker that hands out the same
            # offsets twice can replay old batches forever, so duplicates do not count as
            # progress and the whole read stops after 120 s
            quiet = start = time.monotonic()
            while time.monotonic() - quiet < 15 and time.monotonic() - start < 120:
                for m in reader.consume(500, timeout=0.5):
                    if m.error() is None and m.value() not in read:
                        read.add(m.value())
                        quiet = time.monotonic()
        finally:
            reader.close()
        return {
            "sent": writers * batches * 20,
            "writers_stopped_by_a_fatal_error": any(fatal),
            "acked": len(all_acked),
            "delivery_errors": dict(all_errors),
            "reported_high_watermark": high,
            "read": len(read),
            "acked_but_not_readable": len(set(all_acked) - read),
        }
    finally:
        embedded.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--s3rver", metavar="PATH", help="also probe npm's s3rver")
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="also probe an S3 server already running at URL that takes anonymous requests "
        "to its bucket spark (bench/ceph_s3.sh: Ceph's RADOS Gateway); emptied first",
    )
    parser.add_argument("--writers", type=int, default=3, help="concurrent producers (3)")
    parser.add_argument("--batches", type=int, default=30, help="batches per producer (30)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.writers < 1 or args.batches < 1:
        parser.error("--writers and --batches must be at least 1")
    os.environ["SPARK_HOME"] = tempfile.mkdtemp(prefix="spark-s3probe-")
    from bench.chaos import start_s3

    servers = (
        [("memory", None), ("moto", None)]
        + ([("s3rver", args.s3rver)] if args.s3rver else [])
        + ([("endpoint", args.s3_endpoint)] if args.s3_endpoint else [])
    )
    results = {}
    for name, path in servers:
        server = None
        if name != "memory":
            home = Path(tempfile.mkdtemp(prefix=f"spark-s3probe-{name}-"))
            endpoint = path if name == "endpoint" else None
            server = start_s3(home, None if endpoint else path, endpoint)
        try:
            row = {"conditional_puts_refused": conditional_puts_refused()} if server else {}
            row.update(probe("s3://spark/" if server else "memory://tansu/",
                             args.writers, args.batches))  # fmt: skip
        finally:
            if server is not None:
                server.terminate()
                server.wait(10)
        results[name] = row
        if not args.json:
            print(f"{name}: {row}", flush=True)
    if args.json:
        print(json.dumps(results))


if __name__ == "__main__":
    main()
