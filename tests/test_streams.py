"""The tick path end to end on a real broker: a worker's records equal `spark backtest run`'s
record for record, and a worker killed with -9 continues exactly."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from spark.broker.embedded import free_port
from spark.consume import messages
from spark.features import FEATURE_SET
from spark.stream.outputs import SOURCE
from spark.ticks import TickProducer
from spark.ticks.producer import default_serde
from spark.ticks.readers import read
from spark.topics import catalog
from tests.conftest import WorkerProcess, wait_for

pytestmark = pytest.mark.broker
BUNDLED = Path(__file__).resolve().parent.parent / "spark/data"
EURUSD = BUNDLED / "fxcm/eurusd/20140501_quote.zip"
COMPARED = (
    "predictions",
    "signals",
    "orders",
    "fills",
    "positions",
    "order_rejections",
    "drift_alerts",
    "gate_state",
)


def ticks_of(path: Path, n: int):
    return list(itertools.islice((r.tick for r in read(path, "lean-quote") if r.tick), n))


def produce(ticks) -> None:
    with TickProducer(source="test") as feed:
        for tick in ticks:
            assert feed.send(tick)


def topic_records(topic_id: str) -> list[tuple[bytes, dict, bytes]]:
    """(spark.source, record, raw value) of every message on a topic, in offset order."""
    spec = catalog()[topic_id]
    serde = default_serde()
    out = []
    for m in messages(spec, from_beginning=True):
        source = dict(m.headers() or []).get(SOURCE, b"")
        out.append((source, serde.decode(m.value(), spec.value), m.value()))
    return out


def deduplicated(items: list[tuple[bytes, dict, bytes]]) -> list[dict]:
    """Records with the duplicates a re-processed batch leaves on the embedded broker removed:
    a duplicate has the same source and, as the pipeline is deterministic, the same bytes."""
    seen: dict[tuple[bytes, bytes], bytes] = {}
    out = []
    for source, record, raw in items:
        identity = (source, raw)
        if identity in seen:
            continue
        seen[identity] = raw
        out.append(record)
    return out


# the band policy (SPARK_MIN_EDGE=0): the cost-aware default trades too rarely on these ticks
# for the records this test compares
@pytest.mark.worker_env(SPARK_MIN_EDGE="0")
def test_a_worker_and_spark_backtest_run_produce_the_same_records(worker, tmp_path):
    from spark.cli import cli

    day = [r.tick for r in read(EURUSD, "lean-quote") if r.tick]  # the whole bundled day
    produce(day)
    records = tmp_path / "records.jsonl"
    out = CliRunner().invoke(
        cli,
        [
            "backtest",
            "run",
            "--data",
            str(EURUSD),
            "--records",
            str(records),
            "--json",
            "--min-edge",
            "0",
        ],  # fmt: skip
    )
    assert out.exit_code == 0, out.output
    expected: dict[str, list] = defaultdict(list)
    for line in records.read_text().splitlines():
        item = json.loads(line)
        expected[item["topic"]].append(item["record"])
    wait_for(
        lambda: worker.metric("spark_events_out_total", topic="predictions") >= len(day),
        timeout=240,
        what="a prediction per tick",
    )
    wait_for(
        lambda: all(
            worker.metric("spark_events_out_total", topic=t) >= len(expected[t]) for t in COMPARED
        ),
        what="every record the backtest made",
    )
    assert len(expected["predictions"]) == len(day) == 47_062
    assert len(expected["signals"]) > 1000 and len(expected["fills"]) > 100
    assert expected["drift_alerts"] and expected["order_rejections"]
    for topic_id in COMPARED:
        live = [record for _, record, _ in topic_records(topic_id)]
        assert live == expected[topic_id], f"{topic_id}: the worker and the backtest differ"
    vectors = topic_records("features")
    assert len(vectors) == len(day) and {v["feature_set"] for _, v, _ in vectors} == {FEATURE_SET}
    assert all(v["computed_at"] is None for _, v, _ in vectors)  # deterministic records


def test_after_a_kill_every_tick_gets_exactly_its_records(broker, tmp_path, monkeypatch):
    """On the embedded broker (at-least-once) a re-processed tick's records are byte-identical
    duplicates; on Apache Kafka (exactly-once transactions, read_committed) there are none."""
    from spark.agents import ticks_group
    from spark.kafka.topics import committed_offsets
    from spark.pipeline import TickBatch
    from spark.pipeline.offline import OfflineRun
    from spark.pipeline.records import all_records
    from spark.settings import Settings

    monkeypatch.setenv("SPARK_MODEL", "logreg")
    monkeypatch.setenv("SPARK_SNAPSHOT_S", "2")
    fx = ticks_of(EURUSD, 6000)
    equity = ticks_of(BUNDLED / "equity/ibm/20131007_quote.zip", 2000)  # one-sided quotes
    parts = [fx[:2000] + equity[:600], fx[2000:4000] + equity[600:1300], fx[4000:] + equity[1300:]]
    ticks = [t for part in parts for t in part]
    spec = catalog()["ticks"]

    w1 = WorkerProcess(free_port(), tmp_path / "w1.log")
    w1.wait_ready()
    produce(parts[0])
    wait_for(
        lambda: (
            w1.metric("spark_pipeline_checkpoints_total", outcome="written") >= 1
            and w1.metric("spark_events_out_total", topic="predictions") >= len(parts[0])
        ),
        what="the first part's records and a checkpoint",
    )
    produce(parts[1])
    wait_for(  # processed and committed: the restarted worker must not produce these again
        lambda: (
            sum(committed_offsets(ticks_group(), {spec.name: spec.partitions}).values())
            >= len(parts[0]) + len(parts[1])
        ),
        what="the second part committed",
    )
    w1.kill()
    produce(parts[2])
    w2 = WorkerProcess(free_port(), tmp_path / "w2.log")
    try:
        w2.wait_ready()
        wait_for(
            lambda: len(deduplicated(topic_records("predictions"))) >= len(ticks),
            what="a prediction for every tick",
        )
    finally:
        w2.stop()
    log = (tmp_path / "w2.log").read_text()
    assert "restored from the checkpoint" in log
    # what an uninterrupted run computes: the pipelines run offline on the same ticks
    run = OfflineRun(Settings.from_env())
    offline: dict[str, list] = defaultdict(list)
    for _, _positions, result in run.run(TickBatch.from_ticks(ticks), chunk=len(ticks)):
        symbols = next(
            p for p in run.pipelines.values() if result.batch.symbols[0] in p.slot_of
        ).symbols
        for _, topic_id, record in all_records(result, symbols, run.settings.models.horizon_ms):
            offline[topic_id].append(record)
    for topic_id in ("predictions", "signals", "fills"):
        items = topic_records(topic_id)
        by_source: dict[bytes, set] = defaultdict(set)
        for source, _, raw in items:
            by_source[source].add(raw)
        assert all(len(values) == 1 for values in by_source.values() if values), (
            f"{topic_id}: a re-processed tick gave different bytes"
        )
        if Settings.from_env().delivery == "exactly_once":  # Apache Kafka: transactions
            assert len(deduplicated(items)) == len(items), f"{topic_id}: duplicates"
        live = sorted(deduplicated(items), key=lambda r: (r["symbol"], r["ts"]))
        assert live == sorted(offline[topic_id], key=lambda r: (r["symbol"], r["ts"])), topic_id
    vectors = deduplicated(topic_records("features"))
    assert len(vectors) == len(ticks)  # one vector per tick, none lost, none twice
