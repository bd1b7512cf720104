"""The hot path, measured: a worker's full pipeline beside the raw client ceiling and Faust,
in one run, on real ticks (docs/hot-path.md, issue 12's targets).

Prints, on one broker in one run:
  raw        ticks/s of a bare confluent-kafka loop: consume(1000) -> fastavro decode ->
             encode a 48-double record -> produce (nothing else): the ceiling
  faust      ticks/s of a Faust per-event agent doing decode -> encode -> send_soon
  worker     ticks/s of a fresh `spark worker` with the ticks already on the topic, from its
             first prediction to its last (every tick predicted): the full pipeline with
             the default gbm champion and a logreg challenger, drift, gates, signals and
             the paper executor; and the same with logreg alone
  workers=2  two workers sharing the partitions (gbm + logreg)
  latency    tick -> signal, at a paced 5,000 ticks/s offered, as a read_committed consumer
             of the signals topic sees it (p50 / p99 / max)
  backtest   ticks/s of `spark backtest run`'s engine on a real day (logreg, gbm), file
             reading included, after a 2,000-tick warm-up run (the first run of an
             install compiles the kernels; its seconds are printed in the JSON)
and the ratios to raw. Behaviour is tested in tests/; this prints figures.

Usage (from the repository root):
    python -m bench.bench_hotpath [--quick] [--balanced | --even-cost] [--trace]
        [--skip NAME ...] [DATA_DIR]
DATA_DIR: the shared real data (default ../shared/data; the bundled sample without it).
Uses KAFKA_BOOTSTRAP_SERVERS if set, else an embedded broker in a temporary SPARK_HOME.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# three instruments on three tick partitions: EURUSD 5, NZDUSD 3, AIG 0. Two workers split the
# six partitions {0, 1, 2} | {3, 4, 5} (the range assignor), so one runs AIG and the other
# both FX files. By default AIG is cut to 100,000 ticks (299,034 in all, the figures of
# sessions 17-19): one of two workers then has two thirds of the ticks, and two workers can
# reach at most 1.5x one. --balanced cuts AIG to as many ticks as the FX files hold
# together (398,068 in all), so each of two workers has half the ticks. Not half the work:
# an FX tick costs a pipeline ~2.7x an AIG tick (more labels, refits and signals; session 21).
# --even-cost cuts AIG where one pipeline has spent as long on it as on the FX files
# (timed in this process before the run), so each of two workers has half the work.
PART_FILES = (
    "fxcm/eurusd/20140506_quote.zip",
    "fxcm/nzdusd/20140506_quote.zip",
    "equity/aig/20131007_quote.zip",
)
AIG_TICKS = 100_000
FULL = {"SPARK_MODEL": "gbm", "SPARK_CHALLENGERS": "logreg"}  # issue 12's worker configuration


def even_cost_ticks(fx: list, aig) -> int:
    """How many of ``aig``'s ticks cost one SignalPipeline (the workers' model settings) as
    long as the ``fx`` batches do, each in a pipeline of its own (as on its partition)."""
    from spark.pipeline import SignalPipeline
    from spark.settings import Settings

    settings = Settings.from_env(dict(os.environ, **FULL))
    SignalPipeline(settings).step(aig.take(0, 2_000))  # compiled kernels loaded, not timed

    def spend(batch, budget: float | None = None) -> tuple[float, int]:
        pipeline, started = SignalPipeline(settings), time.perf_counter()
        for k, part in enumerate(batch.chunks(5_000)):
            pipeline.step(part)
            if budget is not None and time.perf_counter() - started >= budget:
                return budget, (k + 1) * 5_000
        return time.perf_counter() - started, len(batch)

    target = sum(spend(b)[0] for b in fx)
    spent, ticks = spend(aig, target)
    print(
        f"even cost: the FX files take a pipeline {target:.1f}s; AIG's first {ticks:,} ticks "
        f"{spent:.1f}s",
        file=sys.stderr,
    )
    return ticks


def load(data: Path | None, quick: bool, balanced: bool = False, even: bool = False):
    """[(symbol, ts, wire value)] of the benchmark's real ticks, merged in time order."""
    from spark.ticks.columns import read_batch

    if data is None or not data.is_dir():
        from spark.demo import bundled_files

        files = list(bundled_files())
    else:
        files = [data / f for f in PART_FILES]
    batches = []
    for k, path in enumerate(files):
        batch, _ = read_batch([path], "lean-quote")
        limit = 20_000 if quick else None
        if k == 2 and data is not None and data.is_dir():  # AIG
            if even:
                limit = even_cost_ticks(batches, batch)
            else:
                limit = sum(len(b) for b in batches) if balanced else limit or AIG_TICKS
        batches.append(batch.take(0, limit) if limit else batch)
    from spark.pipeline.batch import TickBatch

    merged = TickBatch.concat(batches)
    order = np.argsort(merged.ts, kind="stable")
    return merged, order, [str(p) for p in files]


def encoded(batch, order) -> list[tuple[bytes, bytes]]:
    from spark.ticks.model import Tick
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    serde, name = default_serde(), catalog()["ticks"].name
    out = []
    nan = lambda v: None if v != v else float(v)  # noqa: E731
    for i in order.tolist():
        symbol = batch.symbol_at(i)
        tick = Tick(
            symbol,
            int(batch.ts[i]),
            nan(batch.bid[i]),
            nan(batch.ask[i]),
            nan(batch.bid_size[i]),
            nan(batch.ask_size[i]),
            nan(batch.last[i]),
            nan(batch.last_size[i]),
        )
        out.append((symbol.encode(), serde.encode(name, "Tick", tick.to_record())))
    return out


def fresh_topics(extra: tuple[str, ...] = ()) -> None:
    """A new topic prefix (so a new worker group), its catalog topics, and the topics named
    by ``extra`` (catalog ids + a suffix, e.g. "ticks.raw-bench")."""
    from confluent_kafka.admin import NewTopic

    from spark.kafka import clients
    from spark.kafka.topics import create_topics
    from spark.topics import catalog

    os.environ["SPARK_TOPIC_PREFIX"] = f"bench{uuid.uuid4().hex[:6]}."
    create_topics()
    names = [catalog()[e.split(".")[0]].name + e[e.index(".") :] for e in extra]
    if names:
        admin = clients.admin()  # held until the futures resolve
        for f in admin.create_topics([NewTopic(t, 6, 1) for t in names]).values():
            f.result(30)


def produce_all(messages) -> None:
    from spark.kafka import clients
    from spark.topics import catalog

    name = catalog()["ticks"].name
    producer = clients.producer(**{"queue.buffering.max.messages": 2_000_000})
    for key, value in messages:
        while True:
            try:
                producer.produce(name, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    if producer.flush(120):
        raise RuntimeError("the benchmark's ticks were not acknowledged")


def raw_ceiling(n: int) -> float:
    """consume(1000) -> fastavro decode -> encode a 48-double record -> produce; ticks/s."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition
    from fastavro import parse_schema, schemaless_reader, schemaless_writer

    from spark.kafka import clients
    from spark.serde.registry import EmbeddedRegistry
    from spark.topics import catalog

    ticks = catalog()["ticks"]
    registry = EmbeddedRegistry()
    out_schema = parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [{"name": f"f{k}", "type": "double"} for k in range(48)],
        }
    )
    consumer = clients.reader(**{"fetch.wait.max.ms": 10})
    consumer.assign(
        [TopicPartition(ticks.name, p, OFFSET_BEGINNING) for p in range(ticks.partitions)]
    )
    producer = clients.producer()
    sink = ticks.name + ".raw-bench"
    seen, started = 0, None
    while seen < n:
        for msg in consumer.consume(1000, 0.5):
            if msg.error() is not None:
                continue
            started = started or time.perf_counter()
            value = msg.value()
            record = schemaless_reader(
                io.BytesIO(value[5:]), registry.schema_for(int.from_bytes(value[1:5], "big")), None
            )
            body = io.BytesIO()
            schemaless_writer(body, out_schema, {f"f{k}": record["bid"] or 0.0 for k in range(48)})
            while True:
                try:
                    producer.produce(sink, value[:5] + body.getvalue(), msg.key())
                    break
                except BufferError:
                    producer.poll(0.01)
            seen += 1
        producer.poll(0)
    producer.flush(60)
    consumer.close()
    return n / (time.perf_counter() - started)


def faust_rate(n: int, timeout: float = 300) -> float:
    result = Path(tempfile.mkdtemp()) / "faust.json"
    env = dict(os.environ, BENCH_TARGET=str(n), BENCH_RESULT=str(result))
    log = open(Path(os.environ["SPARK_HOME"]) / "faust-bench.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_passthrough", "worker", "-l", "warn"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + timeout
    try:
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
    if not result.exists():
        return float("nan")
    r = json.loads(result.read_text())
    return r["n"] / (r["last"] - r["first"])


def worker_rates(n: int, workers: int, env: dict, trace: bool = False) -> tuple[float, float]:
    """(ticks/s from the first prediction to the last, seconds from start to the first) of
    ``workers`` fresh `spark worker` processes with every tick already on the topic
    (``trace``: print each scrape's predictions per worker to stderr)."""
    from bench.common import metric
    from spark.broker.embedded import free_port

    models = 1 + len([c for c in env.get("SPARK_CHALLENGERS", "").split(",") if c])
    ports = [free_port() for _ in range(workers)]
    logs = [open(Path(os.environ["SPARK_HOME"]) / f"bench-worker-{p}.log", "wb") for p in ports]  # noqa: SIM115
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "spark.cli",
                "worker",
                "--agent",
                "pipeline",
                "--web-port",
                str(p),
                "--loglevel",  # rebalances and restores, a few lines a run
                "info",
            ],
            env=dict(os.environ, **env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        for p, log in zip(ports, logs, strict=True)
    ]
    t0 = time.perf_counter()
    first = None
    done = 0.0
    pause = 0.05
    samples = []
    waited: list[float] = []
    try:
        while done < n * models and time.perf_counter() - t0 < 900:
            time.sleep(pause)
            counts = [metric(p, "spark_events_out_total", 'topic="predictions"') for p in ports]
            done = sum(counts)
            now = time.perf_counter()
            samples.append((now - t0, counts))
            if done and first is None:
                first = (now, done)
            elif first is not None and done > first[1]:
                # a scrape of /metrics holds the worker's GIL (10-25 ms as seen here): every
                # 50 ms only for the first prediction and the last second, else twice a second
                left = (n * models - done) / ((done - first[1]) / (now - first[0]))
                pause = 0.05 if left < 1.0 else 0.5
        end = time.perf_counter()
        # time each worker's tick loop waited for a refit's trees at their swap point
        waited = [metric(p, "spark_refit_wait_seconds_total") for p in ports]
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        for log in logs:
            log.close()
    if trace:
        for t, counts in samples:
            print(f"  {t:7.2f}s " + " ".join(f"{c:>9,.0f}" for c in counts), file=sys.stderr)
        print("  waited for trees: " + ", ".join(f"{w:.2f}s" for w in waited), file=sys.stderr)
    if first is None or done < n * models:
        return float("nan"), float("nan")
    return (done - first[1]) / models / (end - first[0]), first[0] - t0


def paced(messages, rate: float, topic: str, on_sent=None) -> None:
    """Produce ``messages`` at ``rate`` a second, as a feed handler would (linger 1 ms)."""
    from spark.kafka import clients

    producer = clients.producer(**{"linger.ms": 1})
    # A feed handler's producer is long-lived. A new idempotent one holds what it is given
    # until its producer id arrives (~0.5 s on the embedded broker), which put ~450 ms into
    # the first 0.5 s of ticks and so into every p99 measured before session 23. The first
    # message is sent and acknowledged before the clock starts; it is not timed.
    key, value = messages[0]
    producer.produce(topic, value, key)
    producer.flush(30)
    messages = messages[1:]
    start = time.perf_counter()
    for k, (key, value) in enumerate(messages):
        pause = start + k / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        stamp = time.time()

        def done(err, msg, stamp=stamp) -> None:
            if err is None and on_sent is not None:
                on_sent(msg.partition(), msg.offset(), stamp)

        producer.produce(topic, value, key, on_delivery=done)
        producer.poll(0)
    producer.flush(30)


def follow(
    topic: str,
    partitions: int,
    stop: threading.Event,
    seen: list,
    isolation: str = "read_uncommitted",
) -> threading.Thread:
    """A consumer of ``topic`` from its end: (receive time, message) of each."""
    from confluent_kafka import OFFSET_END, TopicPartition

    from bench.common import arrivals
    from spark.kafka import clients

    def run() -> None:
        consumer = clients.reader(
            **{
                "isolation.level": isolation,  # read_committed where the worker commits
                "fetch.wait.max.ms": 1,  # transactions (exactly_once), as main() chooses
                "enable.partition.eof": False,
            }
        )
        consumer.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
        while not stop.is_set():
            now, messages = arrivals(consumer)
            seen.extend((now, msg) for msg in messages)
        consumer.close()

    thread = threading.Thread(target=run)
    thread.start()
    time.sleep(1.0)  # assigned before anything is sent
    return thread


def quantiles(values_ms) -> dict:
    a = np.asarray(values_ms)
    if not len(a):
        return {}
    return {
        "n": len(a),
        "p50_ms": float(np.percentile(a, 50)),
        "p99_ms": float(np.percentile(a, 99)),
        "max_ms": float(a.max()),
    }


def relay_latency(messages, rate: float, isolation: str) -> dict:
    """The baseline for tick -> signal: a bare confluent-kafka relay (consume a tick, produce
    it on with its spark.source header; the worker's consumer and producer settings), the
    same paced producer, the same reader: two hops and no work."""
    from confluent_kafka import OFFSET_END, TopicPartition

    from spark.kafka import clients
    from spark.stream.outputs import SOURCE
    from spark.topics import catalog

    ticks = catalog()["ticks"]
    relayed = ticks.name + ".relay-bench"
    stop, seen = threading.Event(), []
    reader = follow(relayed, 6, stop, seen, isolation)

    def relay() -> None:
        consumer = clients.reader(
            **{"isolation.level": isolation, "fetch.wait.max.ms": 5, "enable.partition.eof": False}
        )
        consumer.assign(
            [TopicPartition(ticks.name, p, OFFSET_END) for p in range(ticks.partitions)]
        )
        producer = clients.producer(**{"linger.ms": 1})
        while not stop.is_set():
            for msg in consumer.consume(5000, 0.005):
                if msg.error() is None:
                    source = f"{ticks.name}/{msg.partition()}@{msg.offset()}".encode()
                    producer.produce(relayed, msg.value(), msg.key(), headers=[(SOURCE, source)])
            producer.poll(0)
        producer.flush(10)
        consumer.close()

    relay_thread = threading.Thread(target=relay)
    relay_thread.start()
    time.sleep(1.0)
    sent: dict[tuple[int, int], float] = {}
    paced(messages, rate, ticks.name, lambda p, o, t: sent.__setitem__((p, o), t))
    time.sleep(3.0)
    stop.set()
    relay_thread.join()
    reader.join()
    return quantiles(_waits(seen, sent))


def _waits(seen, sent) -> list[float]:
    """Milliseconds from each tick's produce to the arrival of what it led to."""
    from spark.stream.outputs import SOURCE

    waits = []
    for now, msg in seen:
        source = dict(msg.headers() or []).get(SOURCE, b"").split(b"#")[0]
        partition, offset = (int(v) for v in source.rsplit(b"/", 1)[-1].split(b"@"))
        if (partition, offset) in sent:
            waits.append((now - sent[(partition, offset)]) * 1000)
    return waits


def latency(messages, rate: float, seconds: float, env: dict, isolation: str) -> dict:
    """Tick -> signal at ``rate`` ticks/s offered to a warm worker, as a consumer of the
    signals topic sees it; and the worker's batch time meanwhile."""
    from bench.common import metric
    from spark.broker.embedded import free_port
    from spark.topics import catalog

    ticks, signals = catalog()["ticks"], catalog()["signals"]
    port = free_port()
    log = open(Path(os.environ["SPARK_HOME"]) / "bench-latency.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "spark.cli",
            "worker",
            "--agent",
            "pipeline",
            "--web-port",
            str(port),
        ],
        env=dict(os.environ, **env),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sent: dict[tuple[int, int], float] = {}
    stop, seen = threading.Event(), []
    try:
        warm = messages[:20_000]
        produce_all(warm)  # the worker has learned and is assigned before the clock starts
        deadline = time.monotonic() + 120
        while metric(port, "spark_events_out_total", 'topic="predictions"') < len(warm):
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.2)
        reader = follow(signals.name, signals.partitions, stop, seen, isolation)
        before = batch_buckets(port)
        offered = messages[20_000 : 20_000 + int(rate * seconds)]
        paced(offered, rate, ticks.name, lambda p, o, t: sent.__setitem__((p, o), t))
        time.sleep(3.0)
        after = batch_buckets(port)
    finally:
        stop.set()
        worker.terminate()
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
    reader.join()
    out = quantiles(_waits(seen, sent))
    out["batch_p99_ms"] = bucket_quantile(before, after, 0.99) * 1000
    out["offered"], out["rate"] = len(offered), rate
    return out


def batch_buckets(port: int) -> dict[float, float]:
    """The worker's spark_agent_batch_seconds buckets (upper bound -> count) for the loop."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("spark_agent_batch_seconds_bucket") and 'agent="ticks"' in line:
            bound = line.split('le="')[1].split('"')[0]
            out[float("inf") if bound == "+Inf" else float(bound)] = float(line.split()[-1])
    return out


def bucket_quantile(before: dict, after: dict, q: float) -> float:
    """The upper bound of the bucket holding quantile ``q`` of the batches in between."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1]
    for bound, count in zip(bounds, counts, strict=True):
        if total and count >= q * total:
            return bound
    return float("nan")


def backtest_rates(files: list[str]) -> dict[str, float]:
    from spark.backtest.engine import BacktestParams, run_backtest
    from spark.ticks.columns import read_batch

    path = Path(files[0])
    out = {}
    runs = {
        "logreg": {"model": "logreg", "min_edge": 0.0},  # the band policy
        "gbm": {"model": "gbm", "min_edge": 0.0},
        "logreg_default_policy": {"model": "logreg"},  # the cost-aware default
        "gbm_default_policy": {"model": "gbm"},
    }
    for name, params in runs.items():
        # the first run of an install compiles the pipeline's kernels (numba caches them in
        # the install): a short warm-up run keeps that one-off cost out of the rate
        started = time.perf_counter()
        warm, _ = read_batch([path], "lean-quote")
        run_backtest(warm.take(0, 2_000), BacktestParams.from_dict(params))
        out[f"{name}_warmup_seconds"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        batch, _ = read_batch([path], "lean-quote")
        result = run_backtest(batch, BacktestParams.from_dict(params))
        out[name] = len(batch) / (time.perf_counter() - started)
        out[f"{name}_signals"] = result.signals
    out["ticks"] = len(batch)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--quick", action="store_true", help="20,000 ticks a file")
    parser.add_argument(
        "--balanced",
        action="store_true",
        help="as many AIG ticks as EURUSD and NZDUSD together, so that each of two workers "
        "has half the ticks (by default one has two thirds)",
    )
    parser.add_argument(
        "--even-cost",
        action="store_true",
        help="as many AIG ticks as cost a pipeline as long as EURUSD and NZDUSD together "
        "(timed before the run), so that each of two workers has half the work",
    )
    parser.add_argument(
        "--trace",
        action="store_true",
        help="print the workers' prediction counts at each scrape (stderr); their logs are "
        "in SPARK_HOME/bench-worker-<port>.log",
    )
    parser.add_argument(
        "--skip",
        nargs="*",
        default=[],
        choices=[
            "raw",
            "faust",
            "worker",
            "logreg",
            "two",
            "latency",
            "latency-logreg",
            "backtest",
        ],
    )
    args = parser.parse_args()
    from bench.common import bench_broker

    os.environ.setdefault("SPARK_HOME", tempfile.mkdtemp(prefix="spark-bench-"))
    # the band policy: it signals and trades on every band crossing, so the figures carry the
    # signal and executor work (the cost-aware default trades on none of the shared data,
    # and a tick -> signal latency needs signals); the policy's own cost is the same either way
    os.environ.setdefault("SPARK_MIN_EDGE", "0")
    print(f"policy: SPARK_MIN_EDGE={os.environ['SPARK_MIN_EDGE']} (0: the band policy)")
    batch, order, files = load(args.data, args.quick, args.balanced, args.even_cost)
    n = len(batch)
    names = ", ".join(Path(f).name for f in files)
    print(f"data: {n:,} real ticks of {', '.join(batch.symbols)} ({names})")
    figures: dict[str, object] = {}
    if "backtest" not in args.skip:
        figures["backtest"] = rates = backtest_rates(files)
        print(
            f"backtest   {rates['logreg']:>9,.0f} ticks/s logreg, {rates['gbm']:>9,.0f} ticks/s "
            f"gbm ({rates['ticks']:,} ticks of {Path(files[0]).name}, reading included; band "
            f"policy: {rates['logreg_signals']:,} / {rates['gbm_signals']:,} signals)"
        )
        print(
            f"           {rates['logreg_default_policy']:>9,.0f} ticks/s logreg, "
            f"{rates['gbm_default_policy']:>9,.0f} ticks/s gbm with the cost-aware default "
            f"policy ({rates['logreg_default_policy_signals']:,} / "
            f"{rates['gbm_default_policy_signals']:,} signals: no executor work)"
        )
    full = FULL
    logreg = {"SPARK_MODEL": "logreg", "SPARK_CHALLENGERS": ""}
    with bench_broker():
        messages = encoded(batch, order)
        runs = [
            ("raw", None),
            ("faust", None),
            ("worker", full),
            ("logreg", logreg),
            ("two", full),
        ]
        for name, env in runs:
            if name in args.skip:
                continue
            extra = {"raw": ("ticks.raw-bench",), "faust": ("features.faust-bench",)}
            fresh_topics(extra.get(name, ()))
            produce_all(messages)
            if name == "raw":
                figures["raw"] = rate = raw_ceiling(n)
                print(f"raw        {rate:>9,.0f} ticks/s  (consume, decode, encode, produce)")
            elif name == "faust":
                figures["faust"] = rate = faust_rate(n)
                print(f"faust      {rate:>9,.0f} ticks/s  (per-event agent, send_soon)")
            else:
                workers = 2 if name == "two" else 1
                rate, start = worker_rates(n, workers, env, args.trace)
                figures[name] = rate
                label = {"worker": "worker", "logreg": "worker", "two": "workers=2"}[name]
                what = "gbm + logreg challenger" if env is full else "logreg alone"
                print(
                    f"{label:10} {rate:>9,.0f} ticks/s  ({what}: first to last prediction, "
                    f"first after {start:.1f}s)"
                )
        # exactly_once (Apache Kafka): consumers read committed records; at_least_once (the
        # embedded broker, whose read_committed reads lag ~0.5 s and hide nothing): uncommitted
        from spark.settings import Settings

        delivery = Settings.from_env().delivery
        isolation = "read_committed" if delivery == "exactly_once" else "read_uncommitted"
        if "latency" not in args.skip:
            fresh_topics(("ticks.relay-bench",))
            figures["relay"] = hop = relay_latency(messages[:100_000], 5000.0, isolation)
            print(
                f"relay      p50 {hop['p50_ms']:.1f} ms, p99 {hop['p99_ms']:.1f} ms  (baseline: a "
                f"bare client relays each tick, two hops, {isolation}, 5,000 ticks/s)"
            )
        for name, env in (("latency", full), ("latency-logreg", logreg)):
            if name in args.skip or "latency" in args.skip:
                continue
            fresh_topics()
            figures[name] = lat = latency(messages, 5000.0, 20.0, env, isolation)
            what = "gbm + logreg challenger" if env is full else "logreg alone"
            if lat:
                print(
                    f"latency    p50 {lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max "
                    f"{lat['max_ms']:.0f} ms  (tick -> signal over two hops, {lat['n']:,} signals "
                    f"at 5,000 ticks/s offered, {isolation}; {what}); worker batch p99 <= "
                    f"{lat['batch_p99_ms']:.0f} ms"
                )
    raw = figures.get("raw")
    if isinstance(raw, float):
        for name in ("faust", "worker", "logreg", "two"):
            value = figures.get(name)
            if isinstance(value, float):
                print(f"ratio      {name:8} / raw = {value / raw:.2f}")
    if isinstance(figures.get("two"), float) and isinstance(figures.get("worker"), float):
        print(f"ratio      two workers / one = {figures['two'] / figures['worker']:.2f}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
