"""The tick loop in a real worker process against the real broker: validation, dead letters,
commits."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import replace

import pytest

from spark.consume import messages
from spark.kafka import clients
from spark.kafka.dlq import decode_headers
from spark.ticks import Tick, TickProducer
from spark.ticks.producer import default_serde
from spark.topics import catalog
from tests.conftest import wait_for

pytestmark = pytest.mark.broker


POISON = [  # contract-valid poison and undecodable bytes (tests/test_hotpath_parts.py)
    "nan", "inf", "negative", "zero", "huge", "huge_size", "bad_size", "nan_size", "no_price",
    "bad_ts", "far_ts", "lower_symbol", "truncated", "trailing", "garbage", "empty",
    "unknown_schema", "bad_magic", "utf8", "shifted",
]  # fmt: skip


def test_worker_accepts_valid_ticks_and_dead_letters_third_party_garbage(worker):
    """Real ticks with one bad record in every hundred, of many kinds, produced straight to
    the tick topic: every good tick is predicted, every bad record dead-lettered with its
    reason, the batch goes on and nothing crashes."""
    from tests.test_hotpath_parts import _message
    from tests.test_streams import EURUSD, ticks_of

    ticks = catalog()["ticks"]
    serde = default_serde()
    real = ticks_of(EURUSD, 3000)
    raw = clients.producer()
    poisoned = 0
    for i, tick in enumerate(real):
        raw.produce(ticks.name, serde.encode(ticks.name, "Tick", tick.to_record()), b"EURUSD")
        if i % 100 == 50:
            key, value = _message(serde, 0, POISON[poisoned % len(POISON)], 1.3866, "EURUSD")
            raw.produce(ticks.name, value, key)
            poisoned += 1
    assert raw.flush(30) == 0
    crossed = Tick("EURUSD", 1_398_920_500_000_000, bid=1.5, ask=1.4)
    fine = Tick("EURUSD", 1_398_920_500_000_000, bid=1.3, ask=1.4)
    garbage = [
        (b"EURUSD", b"\x00\x00\x00"),  # too short
        (b"EURUSD", b"plain text, not avro"),  # bad magic byte
        (b"EURUSD", b"\x00\x00\x00\x00\x07rest"),  # unknown schema id
        (b"EURUSD", serde.encode(ticks.name, "Tick", crossed.to_record())),  # bid > ask
        (b"GBPUSD", serde.encode(ticks.name, "Tick", fine.to_record())),  # key mismatch
        (None, serde.encode(ticks.name, "Tick", fine.to_record())),  # no key
    ]
    producer = clients.producer()
    for key, value in garbage:
        producer.produce(ticks.name, value, key)
    assert producer.flush(10) == 0

    total = len(real) + poisoned + len(garbage)
    # consumed is counted when a batch is taken, accepted per piece as the batch is stepped
    # (a piece can wait for a refit's trees): wait for both
    wait_for(
        lambda: (
            worker.metric("spark_events_in_total", topic="ticks") >= total
            and worker.metric("spark_ticks_accepted_total") >= len(real)
        ),
        what=f"the worker to consume {total} messages and accept {len(real)}",
    )
    assert worker.metric("spark_ticks_accepted_total") == len(real)
    assert worker.metric("spark_dead_letters_total", stage="ingest") == poisoned + len(garbage)
    wait_for(
        lambda: worker.metric("spark_events_out_total", topic="predictions") >= len(real),
        what="a prediction for every good tick",
    )
    assert worker.metric("spark_events_out_total", topic="features") == len(real)

    def dead_letters():
        got = [
            decode_headers(m.headers())
            for m in messages(catalog()["ticks_dlq"], from_beginning=True)
        ]
        return got if len(got) == poisoned + len(garbage) else None

    headers = wait_for(dead_letters, what="every bad record dead-lettered")
    reasons = Counter(h["spark.dlq.reason"] for h in headers)
    assert len(reasons) >= 10, reasons  # many kinds, each with its own reason
    assert reasons["absurd_price"] >= 1 and reasons["unknown_schema_id"] >= 1
    assert reasons["price_jump"] >= 1  # refused by the pipeline's price screen
    assert all(h["spark.dlq.stage"] == "ingest" for h in headers)
    assert all(h["spark.dlq.origin"].startswith(ticks.name + "/") for h in headers)
    assert worker.proc.poll() is None, "the worker keeps running after bad input"
    # every reason counted is one the worker declares (and so shows at 0 from the start)
    from prometheus_client.parser import text_string_to_metric_families

    from spark.kafka.dlq import KNOWN_REASONS

    counted = {
        (s.labels["topic"], s.labels["stage"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(worker.metrics_text())
        for s in family.samples
        if s.name == "spark_dead_letters_total"
    }
    declared = {(t, st, r) for (t, st), reasons in KNOWN_REASONS.items() for r in reasons}
    assert set(counted) == declared
    assert counted[("ticks", "ingest", "crossed_book")] == 1
    assert counted[("risk_commands", "risk", "invalid_command")] == 0
    # and it says it is healthy, apart from /metrics
    import json
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/health", timeout=5) as r:
        health = json.loads(r.read())
    assert r.status == 200 and health["status"] == "ok"
    assert health["stages"]["tick_loop"]["status"] == "ok"
    assert worker.metric("spark_stage_healthy", stage="tick_loop") == 1

    def worker_group_caught_up():
        from spark.agents import ticks_group
        from spark.status import collect

        groups = [
            g for g in collect().groups if g["group"] == ticks_group() and g["topic"] == ticks.name
        ]
        return groups and groups[0]["lag"] == 0 and groups[0]["committed"] == total

    wait_for(worker_group_caught_up, what="spark status to show the worker group caught up")


def test_worker_commits_so_nothing_is_processed_twice_or_skipped(broker, tmp_path):
    """Stop a worker mid-stream, start another: consumed counts add up to what was produced."""
    from spark.broker.embedded import free_port
    from tests.conftest import WorkerProcess

    def produce(n: int, start: int) -> None:
        with TickProducer() as feed:
            for i in range(start, start + n):
                feed.send(Tick("EURUSD", 1_398_920_401_787_000 + i, bid=1.1, ask=1.2))

    first = WorkerProcess(free_port(), tmp_path / "w1.log")
    first.wait_ready()
    produce(300, 0)
    wait_for(lambda: first.metric("spark_ticks_accepted_total") >= 300, what="first worker")
    assert first.stop() == 0  # a batch's offsets commit with its outputs
    produce(200, 300)
    second = WorkerProcess(free_port(), tmp_path / "w2.log")
    try:
        second.wait_ready()
        wait_for(lambda: second.metric("spark_ticks_accepted_total") >= 200, what="second worker")
        time.sleep(1.0)
        assert second.metric("spark_ticks_accepted_total") == 200
        assert "restored from the checkpoint" in (tmp_path / "w2.log").read_text()
    finally:
        second.stop()


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_the_tick_loop_counts_its_waits_for_trees_in_the_metric(broker, delivery):
    """The loop, in this process against the broker, with gbm refitting every 400 labels
    while the trainer threads are held for a while: the time its steps wait for trees at
    their swap points reaches ``spark_refit_wait_seconds_total`` (and the loop's totals);
    every tick is still processed. The records of the ticks before a swap point that waits
    are produced while it waits (in a transaction: its turn's transaction begins there and
    commits with the rest)."""
    import threading
    from itertools import islice
    from pathlib import Path

    from prometheus_client import REGISTRY

    from spark.kafka.topics import committed_offsets
    from spark.pipeline import learners
    from spark.settings import Settings
    from spark.stream.loop import TickLoop
    from spark.ticks.replay import valid_ticks

    bundled = Path(__file__).resolve().parent.parent / "spark/data/fxcm/eurusd/20140501_quote.zip"
    ticks = list(islice(valid_ticks([bundled], "lean-quote"), 3000))
    with TickProducer() as feed:
        for t in ticks:
            feed.send(t)
    settings = replace(
        Settings().with_models(model="gbm", gbm_window=1000, gbm_refit=400), delivery=delivery
    )
    loop = TickLoop(settings, f"refit-wait-test-{delivery}", default_serde())

    def counted() -> float:
        return REGISTRY.get_sample_value("spark_refit_wait_seconds_total") or 0.0

    before = counted()
    held = threading.Event()
    busy = [learners._trainer().submit(held.wait) for _ in range(learners.TRAINERS)]
    stop = threading.Event()
    runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
    runner.start()
    try:

        def training() -> bool:  # a refit submitted (queued behind the held threads)
            parts = list(loop.partitions.values())
            return any(s.training is not None for p in parts for s in p.pipeline.learners.slots)

        wait_for(training, what="the first refit")
        # the ticks before its swap point, sent while held
        wait_for(lambda: loop.stats.totals["produced_early"] > 0, what="records sent early")
        if delivery == "exactly_once":  # in the open transaction: not visible committed
            wait_for(lambda: _visible("features", "read_uncommitted") > 0, what="sent early")
            assert _visible("features", "read_committed") == 0
        time.sleep(1.0)  # its swap point comes 400 labels later, in the same batch
        held.set()
        wait_for(lambda: loop.stats.totals["accepted"] == len(ticks), what="every tick")
    finally:
        held.set()
        stop.set()
        runner.join(60)
    for f in busy:
        f.result()
    waited = loop.stats.totals["refit_wait_s"]
    assert waited >= 0.5
    assert counted() - before == pytest.approx(waited)
    # the records of the ticks before that swap point were sent while it waited, and
    # every tick's records went out once, its offset committed after them
    totals = loop.stats.totals
    produced = sum(v for k, v in totals.items() if k.startswith("out:"))
    assert 0 < totals["produced_early"] < produced
    assert totals["out:features"] == totals["out:predictions"] == len(ticks)
    assert _visible("features", "read_committed") == len(ticks)
    spec = catalog()["ticks"]
    committed = committed_offsets(loop.group, {spec.name: spec.partitions})
    assert sum(committed.values()) == len(ticks)


def _visible(topic: str, isolation: str) -> int:
    """How many records of ``topic`` a reader with ``isolation`` gets, read to the end."""
    spec = catalog()[topic]
    return sum(1 for _ in messages(spec, from_beginning=True, **{"isolation.level": isolation}))


def test_a_checkpoint_past_the_committed_offset_is_not_restored(broker):
    """A worker that dies after its checkpoint reached the broker but before the offsets of
    that batch were committed (its records not all acknowledged): the next worker must not
    resume after that checkpoint, whose last ticks' outputs may never have reached the
    broker. It restores the newest checkpoint that the commit covers and processes every
    tick after it (the old restore resumed after the newer one: 150 of these 300 ticks)."""
    import threading

    from spark.settings import Settings
    from spark.stream.loop import TickLoop
    from spark.stream.outputs import Outgoing

    settings = replace(Settings(), delivery="at_least_once")
    group = "checkpoint-past-commit-test"

    def run(loop: TickLoop, until) -> None:
        stop = threading.Event()
        runner = threading.Thread(target=loop.run, args=(stop,), daemon=True)
        runner.start()
        try:
            wait_for(until, what="the loop to take the ticks")
        finally:
            stop.set()
            runner.join(60)
        assert not runner.is_alive()

    def produce(n: int, start: int) -> None:
        with TickProducer() as feed:
            for i in range(start, start + n):
                feed.send(Tick("GBPJPY", 1_398_920_401_787_000 + i * 1000, bid=150.1, ask=150.2))

    produce(500, 0)
    first = TickLoop(settings, group, default_serde())
    run(first, lambda: first.stats.totals["accepted"] >= 500)  # stops: checkpoint + commit
    (p,) = [p for p, part in first.parked.items() if "GBPJPY" in part.pipeline.symbols]
    committed_at = first.parked[p].applied
    produce(300, 500)
    # the dying worker's last turn: its checkpoint, 150 ticks further, reaches the broker;
    # its offsets are never committed
    part = first.parked[p]
    part.applied = committed_at + 150
    out = Outgoing()
    first._checkpoint(p, part, out)
    first._produce_all(out)
    assert first._producer.flush(30) == 0

    second = TickLoop(settings, group, default_serde())

    def through() -> bool:
        part = second.partitions.get(p)
        return part is not None and part.applied >= committed_at + 300

    run(second, through)
    # every new tick processed and produced, none skipped
    assert second.stats.totals["accepted"] == 300
    assert second.stats.totals["out:features"] == 300
