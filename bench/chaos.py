"""The long form of the chaos suite (docs/reliability.md): one command.

    .venv/bin/python bench/chaos.py [DATA] [--ticks 1000000] [--corrupt 0.01] [--kills 3]
                                    [--broker-restart [--s3rver PATH | --s3-endpoint URL]]
                                    [--max-backlog N]

Real ticks from ``../shared/data`` (EURUSD and NZDUSD quote days from 2014-05-01 on, as
many as ``--ticks`` needs, merged in time order)
go to the tick topic with one bad record per hundred mixed in, of 15 kinds (undecodable
bytes and contract-valid poison). A worker runs while they are produced and is killed
with SIGKILL ``--kills`` times mid-stream (at even shares of the messages committed), a
new one started each time;
``--broker-restart`` runs the embedded broker on S3 storage (moto's S3 server, or npm's
s3rver with ``--s3rver PATH``: faster, but it ignores conditional PUTs, so the broker
loses acked records on it when writes race; the run warns and its loss figures measure
s3rver, see bench/s3_probe.py; or a server already running with ``--s3-endpoint URL``:
``bench/ceph_s3.sh`` starts Ceph's RADOS Gateway, which honours them) and restarts it once
mid-stream, after the kills. A worker that exits on its own (its tick
loop stops the worker when the broker is gone), or whose /health fails 6 probes 20 s apart
(the liveness probe of deploy/k8s/spark-worker.yaml; the worker's watchdog fails it when
its tick loop takes nothing while messages wait), is started again, as a supervisor would.
At the end every output is read back and counted:

* sent: good ticks and bad records produced;
* processed: good ticks with a feature vector (told apart by their ``spark.source``);
* duplicated: feature vectors beyond one per tick (re-processing after a kill on the
  embedded broker, at-least-once; byte-identical, so consumers dedupe by key);
* dead-lettered: bad records on the tick DLQ (by origin), and whether each kind has its
  reason;
* lost: good ticks with no feature vector, bad records with no dead letter (must be 0);
* recovery: seconds from each kill to the new worker's first output.

The short form runs in CI: tests/test_worker.py (poison) and tests/test_streams.py
(kill -9), tests/test_durable_storage.py (broker restart on S3).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import metric  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DAYS = ("01", "02", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14", "15")
FILES = [f"fxcm/{s}/201405{d}_quote.zip" for d in DAYS for s in ("eurusd", "nzdusd")]
KINDS = (
    "garbage", "empty", "truncated", "bad_magic", "unknown_schema", "nan_bid", "inf_ask",
    "negative_bid", "huge_price", "crossed", "no_key", "wrong_key", "bad_ts", "huge_size",
    "shifted_price",
)  # fmt: skip


def good_ticks(data: Path, n: int):
    from spark.pipeline.batch import TickBatch
    from spark.ticks.columns import read_batch

    batches = []
    for name in FILES:
        batch, _ = read_batch([data / name], "lean-quote")
        batches.append(batch)
        if sum(len(b) for b in batches) >= n * 1.01:
            break
    merged = TickBatch.concat(batches)
    order = np.argsort(merged.ts, kind="stable")[:n]
    return merged, order


def messages(data: Path, n: int, corrupt: float, seed: int = 7):
    """[(key, value, kind)] in send order: n good ticks, bad ones mixed in."""
    from spark.ticks.model import Tick
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    serde, name = default_serde(), catalog()["ticks"].name
    batch, order = good_ticks(data, n)
    rng = random.Random(seed)
    nan = lambda v: None if v != v else float(v)  # noqa: E731
    out, kinds = [], 0
    for i in order.tolist():
        symbol = batch.symbol_at(i)
        tick = Tick(symbol, int(batch.ts[i]), nan(batch.bid[i]), nan(batch.ask[i]))
        record = tick.to_record()
        value = serde.encode(name, "Tick", record)
        out.append((symbol.encode(), value, "good"))
        if rng.random() < corrupt:
            kind = KINDS[kinds % len(KINDS)]
            kinds += 1
            out.append((*poison(serde, name, kind, record, value), kind))
    return out


def poison(serde, name: str, kind: str, record: dict, value: bytes) -> tuple[bytes | None, bytes]:
    key = record["symbol"].encode()
    encode = lambda r: serde.encode(name, "Tick", r)  # noqa: E731
    return {
        "garbage": (key, b"\x07not avro at all"),
        "empty": (key, b""),
        "truncated": (key, value[:-4]),
        "bad_magic": (key, b"\x01" + value[1:]),
        "unknown_schema": (key, b"\x00" + struct.pack(">I", 0x7FFFFFF0) + value[5:]),
        "nan_bid": (key, encode(dict(record, bid=float("nan")))),
        "inf_ask": (key, encode(dict(record, ask=float("inf")))),
        "negative_bid": (key, encode(dict(record, bid=-1.0))),
        "huge_price": (key, encode(dict(record, bid=1.7e308, ask=1.7e308))),
        "crossed": (key, encode(dict(record, bid=record["ask"] + 1.0))),
        "no_key": (None, value),
        "wrong_key": (b"XXXYYY", value),
        "bad_ts": (key, encode(dict(record, ts=-1))),
        "huge_size": (key, encode(dict(record, bid_size=1e300))),
        # contract-valid, a decimal shifted: refused by the pipeline's price screen
        "shifted_price": (
            key,
            encode(dict(record, bid=record["bid"] * 100, ask=record["ask"] * 100)),
        ),
    }[kind]


LIVENESS_PERIOD_S, LIVENESS_FAILURES = 20, 6  # deploy/k8s/spark-worker.yaml's livenessProbe
RESTARTS: Counter = Counter()  # workers started again by the supervisor, by why


WORKER_ENV: dict[str, str] = {}  # only the workers' environment (--kafka-debug)


class Worker:
    def __init__(self, home: Path, n: int) -> None:
        from spark.broker.embedded import free_port

        self.port = free_port()
        self.log = open(home / f"chaos-worker-{n}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "spark.cli", "worker", "--web-port", str(self.port)]
            + ["--loglevel", "info"],  # restores and commits, to read after a run
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **WORKER_ENV},
        )
        self.started = self.probed = time.monotonic()
        self.failures, self.answer = 0, ""

    def alive(self) -> bool:
        """The liveness probe of deploy/k8s/spark-worker.yaml: GET /health every 20 s, and
        False after 6 failures in a row (the worker's own watchdog answers 503 when its tick
        loop is dead or has taken nothing for SPARK_STALL_S while messages wait)."""
        now = time.monotonic()
        if now - self.probed < LIVENESS_PERIOD_S:
            return True
        self.probed = now
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=5) as r:
                ok, self.answer = r.status == 200, r.read(300).decode(errors="replace")
        except urllib.error.HTTPError as exc:
            ok, self.answer = False, exc.read(300).decode(errors="replace")
        except OSError as exc:
            ok, self.answer = False, str(exc)
        self.failures = 0 if ok else self.failures + 1
        return self.failures < LIVENESS_FAILURES

    def outputs(self) -> float:
        return metric(self.port, "spark_events_out_total", 'topic="features"')

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def produce(msgs, progress: list, stop: threading.Event, max_backlog: int = 0) -> None:
    """Every message to the tick topic; with ``max_backlog``, never more than that many
    ahead of what the workers committed (a feed at the rate the pipeline keeps up with).

    Like a feed handler, it survives its producer's fatal errors (Tansu on S3 storage once
    answered OUT_OF_ORDER_SEQUENCE_NUMBER to an idempotent producer; a flush across the
    broker restart raised SystemError from inside the client): a new producer sends again
    from the last flushed message, so nothing is lost and a few are sent twice."""
    from confluent_kafka import KafkaException

    from spark.kafka import clients
    from spark.topics import catalog

    name = catalog()["ticks"].name
    new = lambda: clients.producer(**{"queue.buffering.max.messages": 2_000_000})  # noqa: E731
    producer, i, flushed = new(), 0, 0
    while i < len(msgs) and not stop.is_set():
        key, value, _kind = msgs[i]
        try:
            try:
                producer.produce(name, value, key)
            except BufferError:
                producer.poll(0.05)
                continue
            i += 1
            if i % 10_000 == 0:
                if producer.flush(300):
                    raise KafkaException("messages left after a flush")
                flushed = progress[0] = i
                while max_backlog and not stop.is_set() and i - committed() > max_backlog:
                    time.sleep(0.5)
        except Exception as exc:  # noqa: BLE001 - a fatal error can surface as SystemError
            print(f"the feed's producer failed ({exc!r}); a new one resends from {flushed:,}")
            progress[1] += 1
            progress[2] += i - flushed
            producer, i = new(), flushed
    remaining = producer.flush(300)
    progress[0] = len(msgs) if not remaining else len(msgs) - remaining


def lost(msgs, features: Counter, dead: Counter, where: dict | None = None, dead_reasons=None):
    """(good, bad) messages sent with no feature vector / no dead letter, and how many of
    those lost messages are not on the tick topic at all (the broker lost them, not the
    workers). Told apart by content, (key, value), read back from the tick topic by offset:
    a message the feed sent twice (after its producer failed) sits at two offsets, and one
    output for either counts. ``where``, if given, gets the tick partitions and offset runs
    of the lost good messages ({partition: [[first, last], ...]}) and, for those the workers
    dead-lettered, the reasons (``dead_reasons``: origin -> reason)."""
    dead_reasons = dead_reasons or {}
    from spark.consume import messages as read
    from spark.topics import catalog

    spec = catalog()["ticks"]
    done_good: Counter = Counter()
    done_bad: Counter = Counter()
    on_topic: Counter = Counter()
    no_features = []  # (partition, offset, content, origin): where to look if they are lost
    for m in read(spec, from_beginning=True):
        origin = f"{spec.name}/{m.partition()}@{m.offset()}".encode()
        content = (m.key(), m.value() or b"")
        on_topic[content] += 1
        if origin in features:
            done_good[content] += 1
        else:
            no_features.append((m.partition(), m.offset(), content, origin))
        if origin in dead:
            done_bad[content] += 1
    good = Counter((k, v) for k, v, kind in msgs if kind == "good")
    bad = Counter((k, v) for k, v, kind in msgs if kind != "good")
    sent = good + bad
    if where is not None:
        for p, offset, content, origin in sorted(no_features, key=lambda x: x[:2]):
            if not good.get(content) or done_good[content]:
                continue
            if origin in dead:  # a good tick the worker dead-lettered: say why
                reasons = where.setdefault("dead_lettered_as", Counter())
                reasons[dead_reasons.get(origin, b"?").decode()] += 1
            runs = where.setdefault(p, [])
            if runs and runs[-1][1] == offset - 1:
                runs[-1][1] = offset
            else:
                runs.append([offset, offset])
    return (
        sum(max(0, n - done_good[c]) for c, n in good.items()),
        sum(max(0, n - done_bad[c]) for c, n in bad.items()),
        sum(max(0, n - on_topic[c]) for c, n in sent.items()),
    )


def dead_letter_reasons_by_origin() -> dict[bytes, bytes]:
    from spark.consume import messages as read
    from spark.topics import catalog

    out = {}
    for m in read(catalog()["ticks_dlq"], from_beginning=True):
        headers = dict(m.headers() or [])
        out[headers.get("spark.dlq.origin", b"").split(b"#")[0]] = headers.get(
            "spark.dlq.reason", b""
        )
    return out


def read_back(topic_id: str, header: str) -> Counter:
    """How many records of each ``header`` value (spark.source or spark.dlq.origin)."""
    from spark.consume import messages as read
    from spark.topics import catalog

    seen: Counter = Counter()
    for m in read(catalog()[topic_id], from_beginning=True):
        value = dict(m.headers() or []).get(header, b"")
        seen[value.split(b"#")[0]] += 1
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--ticks", type=int, default=1_000_000)
    parser.add_argument("--corrupt", type=float, default=0.01)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--broker-restart", action="store_true")
    parser.add_argument(
        "--s3rver",
        metavar="PATH",
        help="S3 storage by npm's s3rver (data on disk; `npm i s3rver`, then "
        "node_modules/.bin/s3rver) instead of moto_server, whose Python S3 slowed the "
        "broker to ~40 ticks/s at a 200k backlog",
    )
    parser.add_argument(
        "--s3-endpoint",
        metavar="URL",
        help="S3 storage by a server already running at URL that takes anonymous requests to "
        "its bucket spark (bench/ceph_s3.sh starts a one-node Ceph, whose RADOS Gateway "
        "honours conditional PUTs); the bucket is emptied first",
    )
    parser.add_argument(
        "--max-backlog",
        type=int,
        default=0,
        metavar="N",
        help="produce at most N messages ahead of the committed ones (0: all at once); on S3 "
        "storage a 470k backlog stalled the worker's fetches",
    )
    parser.add_argument(
        "--kafka-debug",
        metavar="CONTEXTS",
        help="librdkafka debug contexts for the workers (e.g. cgrp); their lines go to the "
        "worker logs chaos-worker-N.log in the run's SPARK_HOME",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.kafka_debug:
        WORKER_ENV["SPARK_KAFKA_DEBUG"] = args.kafka_debug
    home = Path(tempfile.mkdtemp(prefix="spark-chaos-"))
    os.environ["SPARK_HOME"] = str(home)
    os.environ["SPARK_TOPIC_PREFIX"] = f"chaos{uuid.uuid4().hex[:6]}."
    os.environ.setdefault("SPARK_MODEL", "logreg")  # the gbm refits would dominate the run
    from spark.broker import embedded
    from spark.kafka.topics import create_topics

    s3 = start_s3(home, args.s3rver, args.s3_endpoint) if args.broker_restart else None
    storage = "s3://spark/" if s3 else "memory://tansu/"
    port = embedded.free_port()
    embedded.start(port=port, storage=storage)
    figures: dict = {"ticks_asked": args.ticks, "storage": storage}
    if s3 is not None:
        from s3_probe import conditional_puts_refused

        figures["s3_refuses_conditional_puts"] = conditional_puts_refused()
        if not figures["s3_refuses_conditional_puts"]:
            print("warning: this S3 server ignores conditional PUTs, so the broker loses acked "
                  "records when writes race (bench/s3_probe.py); loss figures measure the S3 "
                  "server, not Spark", flush=True)  # fmt: skip
    figures["max_backlog"] = args.max_backlog or None
    try:
        create_topics()
        t0 = time.monotonic()
        msgs = messages(args.data, args.ticks, args.corrupt)
        bad = [m for m in msgs if m[2] != "good"]
        figures["load_seconds"] = round(time.monotonic() - t0, 1)
        print(f"{len(msgs) - len(bad):,} real ticks, {len(bad):,} bad records", flush=True)

        progress, stop = [0, 0, 0], threading.Event()
        feeder = threading.Thread(
            target=produce, args=(msgs, progress, stop, args.max_backlog), daemon=True
        )
        worker = Worker(home, 0)
        started = time.monotonic()
        feeder.start()
        recoveries, n, supervised = [], 0, 0
        marks = [len(msgs) * (k + 1) // (args.kills + 2) for k in range(args.kills)]
        restart_at = len(msgs) * (args.kills + 1) // (args.kills + 2) if s3 else None
        while n < args.kills or (restart_at is not None):
            time.sleep(0.5)
            # exited, or stalled past its liveness probe: a supervisor (k8s) restarts it
            worker, restarted = supervise(worker, home, supervised)
            if restarted != supervised:
                supervised = restarted
                continue
            done = committed()
            if n < args.kills and done >= marks[n] and worker.outputs() > 0:
                worker.kill()
                killed = time.monotonic()
                n += 1
                print(f"kill -9 number {n} with {done:,} of {len(msgs):,} committed", flush=True)
                figures.setdefault("offsets_at_kills", []).append(positions())
                worker = Worker(home, n)
                while worker.outputs() == 0 and time.monotonic() - killed < 300:
                    time.sleep(0.2)
                recoveries.append(round(time.monotonic() - killed, 1))
            if restart_at is not None and n == args.kills and done >= restart_at:
                print(f"restarting the broker (S3 storage) with {done:,} committed", flush=True)
                figures["offsets_before_restart"] = positions()
                figures["output_ends_before_restart"] = output_ends()
                stopped = time.monotonic()
                embedded.stop()
                embedded.start(port=port, storage=storage)
                restart_at = None
                figures["broker_restart_seconds"] = round(time.monotonic() - stopped, 1)
                figures["offsets_after_restart"] = positions()
                figures["output_ends_after_restart"] = output_ends()
                print(f"offsets before and after: {figures['offsets_before_restart']} "
                      f"{figures['offsets_after_restart']}", flush=True)  # fmt: skip
        while feeder.is_alive():  # the feed may wait for commits: keep a worker running
            feeder.join(1)
            worker, supervised = supervise(worker, home, supervised)
        figures["produce_seconds"] = round(time.monotonic() - started, 1)
        figures["feed_producer_restarts"] = progress[1]
        expected = len(msgs) - len(bad)
        deadline = time.monotonic() + 900
        shown = time.monotonic()
        while time.monotonic() < deadline and not caught_up():
            worker, supervised = supervise(worker, home, supervised)
            time.sleep(1)
            if time.monotonic() - shown > 30:
                print(f"waiting for the workers to catch up: {positions()}", flush=True)
                shown = time.monotonic()
        figures["offsets_at_the_end"] = positions()
        figures["supervisor_restarts"] = supervised
        figures["supervisor_restarts_by_why"] = dict(RESTARTS)
        figures["seconds_to_caught_up"] = round(time.monotonic() - started, 1)
        worker.stop()

        features = read_back("features", "spark.source")
        dead = read_back("ticks_dlq", "spark.dlq.origin")
        reasons = read_back("ticks_dlq", "spark.dlq.reason")
        lost_where: dict = {}
        lost_good, lost_bad, not_on_topic = lost(
            msgs, features, dead, lost_where, dead_letter_reasons_by_origin()
        )
        figures.update(
            sent=len(msgs),
            sent_good=expected,
            sent_bad=len(bad),
            resent_by_the_feed=progress[2],
            processed=len(features),
            duplicated=sum(features.values()) - len(features),
            dead_lettered=len(dead),
            dead_letter_duplicates=sum(dead.values()) - len(dead),
            lost_good=lost_good,
            lost_bad=lost_bad,
            not_on_the_tick_topic=not_on_topic,
            lost_good_offsets=lost_where or None,
            kills=args.kills,
            recovery_seconds=recoveries,
            bad_kinds=dict(Counter(m[2] for m in bad)),
            dead_letter_reasons={k.decode(): v for k, v in reasons.most_common()},
        )
    finally:
        embedded.stop()
        if s3 is not None:
            s3.terminate()
    print(json.dumps(figures, indent=None if args.json else 2))
    if figures.get("lost_good") or figures.get("lost_bad"):
        sys.exit(1)


def supervise(worker: Worker, home: Path, supervised: int) -> tuple[Worker, int]:
    """A worker that exited on its own, or failed its liveness probe 6 times in a row, is
    started again, as k8s (or compose with a health check) would."""
    if worker.proc.poll() is None:
        if worker.alive():
            return worker, supervised
        why = worker.answer.strip()
        print(f"the worker failed its liveness probe {LIVENESS_FAILURES} times in a row "
              f"({why}); killing it and starting another", flush=True)  # fmt: skip
        worker.kill()
        RESTARTS["liveness"] += 1
    else:
        print(f"the worker exited ({worker.proc.returncode}); starting another", flush=True)
        worker.log.close()
        RESTARTS["exited"] += 1
    return Worker(home, 101 + supervised), supervised + 1


def committed() -> int:
    """Tick messages the worker group has committed (processed or dead-lettered)."""
    from spark.agents import ticks_group
    from spark.kafka.topics import committed_offsets
    from spark.topics import catalog

    spec = catalog()["ticks"]
    try:
        return sum(committed_offsets(ticks_group(), {spec.name: spec.partitions}).values())
    except Exception:  # noqa: BLE001 - the broker may be restarting
        return 0


def positions() -> dict:
    """Per tick partition: the group's committed offset and the partition's end, as
    "committed/end" (diagnostics around the broker restart and the catch-up)."""
    from spark.agents import ticks_group
    from spark.kafka.topics import committed_offsets, end_offsets
    from spark.topics import catalog

    spec = catalog()["ticks"]
    try:
        done = committed_offsets(ticks_group(), {spec.name: spec.partitions})
        ends = end_offsets(spec.name, spec.partitions)
    except Exception as exc:  # noqa: BLE001 - the broker may be restarting
        return {"error": repr(exc)}
    return {p: f"{done.get((spec.name, p), 0)}/{end}" for p, end in ends.items()}


def output_ends() -> dict:
    """End offsets of the features and dead-letter topics (around the broker restart: an
    end that went back would be acked records the broker lost)."""
    from spark.kafka.topics import end_offsets
    from spark.topics import catalog

    try:
        return {
            t: end_offsets(catalog()[t].name, catalog()[t].partitions)
            for t in ("features", "ticks_dlq")
        }
    except Exception as exc:  # noqa: BLE001 - the broker may be restarting
        return {"error": repr(exc)}


def caught_up() -> bool:
    from spark.agents import ticks_group
    from spark.kafka.topics import group_lag
    from spark.topics import catalog

    spec = catalog()["ticks"]
    try:
        lag = group_lag(ticks_group(), {spec.name: spec.partitions})
    except Exception:  # noqa: BLE001 - the broker may be restarting
        return False
    return bool(lag) and sum(lag.values()) == 0


class External:
    """An S3 server this script did not start (``--s3-endpoint``): nothing to stop."""

    def terminate(self) -> None:
        pass

    def wait(self, timeout: float | None = None) -> None:
        pass


def s3_client():
    """A boto3 client for the S3 server the broker is given (AWS_* variables)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    anonymous = os.environ.get("AWS_SKIP_SIGNATURE") == "true"
    return boto3.client(
        "s3",
        endpoint_url=os.environ["AWS_ENDPOINT"],
        region_name="us-east-1",
        aws_access_key_id=None if anonymous else os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=None if anonymous else os.environ["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version=UNSIGNED) if anonymous else None,
    )


def start_s3(home: Path, s3rver: str | None = None, endpoint: str | None = None):
    """S3 storage for the broker: moto, npm's s3rver, or a server already running.

    ``endpoint`` is an S3 server started by someone else that takes anonymous requests
    to the bucket ``spark`` (``bench/ceph_s3.sh``: the RADOS Gateway of a one-node Ceph
    behind its header fix); the broker and this script send unsigned requests to it. What
    the bucket holds is deleted first (an earlier run's cluster would be read back).
    """
    import shutil

    from spark.broker.embedded import free_port, port_open

    if endpoint:
        os.environ.update(
            {
                "AWS_ENDPOINT": endpoint,
                "AWS_ALLOW_HTTP": "true",
                "AWS_SKIP_SIGNATURE": "true",
                "AWS_ACCESS_KEY_ID": "anonymous",
                "AWS_SECRET_ACCESS_KEY": "anonymous",
                "AWS_DEFAULT_REGION": "us-east-1",
            }
        )
        s3 = s3_client()
        old = [
            {"Key": o["Key"]}
            for page in s3.get_paginator("list_objects_v2").paginate(Bucket="spark")
            for o in page.get("Contents", [])
        ]
        for i in range(0, len(old), 1000):
            s3.delete_objects(Bucket="spark", Delete={"Objects": old[i : i + 1000]})
        if old:
            print(f"emptied bucket spark at {endpoint} ({len(old):,} objects)", flush=True)
        return External()
    port = free_port()
    if s3rver:  # npm's s3rver, data on disk
        command = [s3rver, "-d", str(home / "s3"), "-a", "127.0.0.1", "-p", str(port), "-s",
                   "--allow-mismatched-signatures", "--configure-bucket", "spark"]  # fmt: skip
        (home / "s3").mkdir(exist_ok=True)
    else:
        exe = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        if exe is None:
            sys.exit("--broker-restart needs moto_server: pip install -e '.[test]'")
        command = [exe, "-H", "127.0.0.1", "-p", str(port)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not port_open("127.0.0.1", port):
        time.sleep(0.1)
    env = {
        "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ALLOW_HTTP": "true",
        "AWS_ACCESS_KEY_ID": "S3RVER" if s3rver else "spark",  # s3rver's own pair
        "AWS_SECRET_ACCESS_KEY": "S3RVER" if s3rver else "spark",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    os.environ.update(env)
    os.environ.pop("AWS_SKIP_SIGNATURE", None)  # signed: an --s3-endpoint server before it set this
    if s3rver:
        return proc
    s3_client().create_bucket(Bucket="spark")
    return proc


if __name__ == "__main__":
    main()
