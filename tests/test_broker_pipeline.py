"""The walking pipeline against a real broker: topics, schemas, replay, producer API, consume."""

from __future__ import annotations

import base64
import json
import shutil
import zipfile

import pytest
from click.testing import CliRunner

from spark import schemas
from spark.cli import cli
from spark.consume import messages, render
from spark.kafka import clients
from spark.kafka.dlq import decode_headers
from spark.kafka.topics import create_topics, end_offsets
from spark.ticks import Tick, TickProducer
from spark.ticks.producer import default_serde
from spark.ticks.replay import replay
from spark.topics import catalog
from tests.helpers import sample_value

pytestmark = pytest.mark.broker


def read_all(topic_id: str) -> list:
    return list(messages(catalog()[topic_id], from_beginning=True))


def test_topics_create_is_idempotent_and_listed(broker):
    assert set(create_topics().values()) == {"exists"}  # the fixture created them all
    result = CliRunner().invoke(cli, ["topics", "list", "--json"])
    assert result.exit_code == 0, result.output
    listed = [json.loads(line) for line in result.output.splitlines()]
    assert {t["id"] for t in listed} == set(catalog())
    assert all(t["exists"] for t in listed)
    result = CliRunner().invoke(cli, ["topics", "describe", "ticks", "--json"])
    described = json.loads(result.output)
    assert described["partitions"] == catalog()["ticks"].partitions
    assert described["dlq"] == catalog()["ticks_dlq"].name
    assert described["messages"] == 0


def test_every_schema_round_trips_through_the_broker(broker):
    serde = default_serde()
    producer = clients.producer()
    sent = {}
    for spec in catalog().values():
        if spec.is_raw or spec.is_json:
            continue
        record = sample_value(schemas.load_current(spec.value))
        producer.produce(spec.name, serde.encode(spec.name, spec.value, record), b"key")
        sent[spec.id] = record
    assert producer.flush(30) == 0
    by_name = {catalog()[topic_id].name: topic_id for topic_id in sent}
    got = read_topics(list(by_name))
    assert sorted(by_name[m.topic()] for m in got) == sorted(sent)
    for msg in got:
        spec = catalog()[by_name[msg.topic()]]
        assert serde.decode(msg.value(), spec.value) == sent[spec.id]


def read_topics(names: list[str]) -> list:
    """Every message of several topics with one consumer (assign, no group)."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

    meta = clients.ensure_reachable().topics
    parts = [TopicPartition(n, p, OFFSET_BEGINNING) for n in names for p in meta[n].partitions]
    consumer = clients.reader()
    consumer.assign(parts)
    pending, out = {(tp.topic, tp.partition) for tp in parts}, []
    while pending:
        for msg in consumer.consume(1000, timeout=0.5):
            if msg.error() is None:
                out.append(msg)
            elif msg.error().code() == KafkaError._PARTITION_EOF:
                pending.discard((msg.topic(), msg.partition()))
    consumer.close()
    return out


def test_replay_of_a_real_day_counts_back_exactly(broker, shared_data):
    day = shared_data / "fxcm/eurusd/20140501_quote.zip"
    result = replay([day], "lean-quote")
    assert result.rows == 51_053
    assert result.accounted
    assert result.reasons == {"crossed_book": result.dead_lettered}
    ticks = read_all("ticks")
    dead = read_all("ticks_dlq")
    assert len(ticks) == result.produced and len(dead) == result.dead_lettered
    ends = end_offsets(catalog()["ticks"].name, catalog()["ticks"].partitions)
    assert sum(ends.values()) == result.produced
    serde = default_serde()
    # keyed by symbol, one partition, in time order
    decoded = [serde.decode(m.value(), "Tick") for m in ticks]
    assert {m.key() for m in ticks} == {b"EURUSD"} and len({m.partition() for m in ticks}) == 1
    stamps = [d["ts"] for d in decoded]
    assert stamps == sorted(stamps)
    assert decoded[0] == {
        "symbol": "EURUSD",
        "ts": 1_398_920_401_787_000,
        "bid": 1.38727,
        "ask": 1.38729,
        "bid_size": None,
        "ask_size": None,
        "last": None,
        "last_size": None,
        "venue": None,
        "source": "replay:20140501_quote.zip",
    }


def test_multi_file_replay_is_merged_in_time_order(broker, shared_data):
    files = [
        shared_data / "equity/bac/20131007_trade.zip",
        shared_data / "equity/aig/20131007_trade.zip",
    ]
    result = replay(files, "lean-trade", limit=20_000)
    assert result.rows == 20_000 and result.accounted
    serde = default_serde()
    stamps = sorted(
        (m.partition(), m.offset(), serde.decode(m.value(), "Tick")) for m in read_all("ticks")
    )
    symbols = {t["symbol"] for _, _, t in stamps}
    assert symbols == {"BAC", "AIG"}
    last_bac = max(t["ts"] for _, _, t in stamps if t["symbol"] == "BAC")
    first_aig = min(t["ts"] for _, _, t in stamps if t["symbol"] == "AIG")
    assert first_aig < last_bac  # interleaved, not file after file


def test_corrupted_file_dead_letters_bad_rows_with_reasons(broker, shared_data, tmp_path):
    folder = tmp_path / "ibm"
    folder.mkdir()
    with zipfile.ZipFile(shared_data / "equity/ibm/20131007_quote.zip") as zf:
        lines = zf.read(zf.namelist()[0]).decode().splitlines(keepends=True)[:2000]
    lines[10] = "garbage line\n"
    lines[20] = lines[20].replace(",", ";")
    cols = lines[30].split(",")
    cols[1], cols[3] = "-1000", "0"  # negative bid
    lines[30] = ",".join(cols)
    cols = lines[40].split(",")
    cols[7] = "1\n"  # vendor-flagged
    lines[40] = ",".join(cols)
    lines[50] = "\n"
    path = folder / "20131007_quote.csv"
    path.write_text("".join(lines))
    result = CliRunner().invoke(
        cli, ["ticks", "replay", str(path), "--format", "lean-quote", "--json", "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["rows"] == 2000
    assert summary["produced"] + summary["dead_lettered"] == 2000
    dead = {
        int(decode_headers(m.headers())["spark.dlq.origin"].rsplit(":", 1)[1]): (
            decode_headers(m.headers()),
            m.value(),
        )
        for m in read_all("ticks_dlq")
    }
    assert dead[11][0]["spark.dlq.reason"] == "unparsable"
    assert dead[11][1] == b"garbage line\n"
    assert dead[21][0]["spark.dlq.reason"] == "unparsable"
    assert dead[31][0]["spark.dlq.reason"] == "non_positive_price"
    assert dead[41][0]["spark.dlq.reason"] == "suspicious"
    assert dead[51][0]["spark.dlq.reason"] == "unparsable"
    assert all(
        h["spark.dlq.stage"] == "replay" and h["spark.dlq.topic"] == catalog()["ticks"].name
        for h, _ in dead.values()
    )
    assert len(dead) == summary["dead_lettered"]
    assert sum(summary["reasons"].values()) == summary["dead_lettered"]


def test_producer_api_validates_like_replay(broker):
    with TickProducer(source="test-feed") as feed:
        assert feed.send(Tick("EURUSD", 1_398_920_401_787_000, bid=1.38727, ask=1.38729))
        assert feed.send({"symbol": "GBPUSD", "ts": 1_398_920_401_900_000, "last": 1.69})
        assert not feed.send(Tick("EURUSD", 1_398_920_402_000_000, bid=1.5, ask=1.4))
        assert not feed.send(Tick("EURUSD", 1_398_920_402_000_000))
    assert (feed.counts.produced, feed.counts.dead_lettered, feed.counts.failed) == (2, 2, 0)
    assert dict(feed.reasons) == {"crossed_book": 1, "no_price": 1}
    serde = default_serde()
    got = [serde.decode(m.value(), "Tick") for m in read_all("ticks")]
    assert {t["symbol"] for t in got} == {"EURUSD", "GBPUSD"}
    assert {t["source"] for t in got} == {"test-feed"}
    reasons = sorted(decode_headers(m.headers())["spark.dlq.stage"] for m in read_all("ticks_dlq"))
    assert reasons == ["producer", "producer"]


def test_consume_cli_prints_json_and_dead_letters(broker):
    with TickProducer() as feed:
        feed.send(Tick("EURUSD", 1_398_920_401_787_000, bid=1.1, ask=1.2))
        feed.send(Tick("EURUSD", 1_398_920_401_787_000, bid=1.3, ask=1.2), raw=b"raw row")
    runner = CliRunner()
    out = runner.invoke(cli, ["consume", "market.ticks", "--from-beginning", "--json"])
    assert out.exit_code == 0, out.output
    record = json.loads(out.output.strip())
    assert record["key"] == "EURUSD" and record["value"]["ask"] == 1.2
    out = runner.invoke(cli, ["consume", "ticks_dlq", "--from-beginning", "--json", "--limit", "1"])
    record = json.loads(out.output.strip())
    assert record["headers"]["spark.dlq.reason"] == "crossed_book"
    assert base64.b64decode(record["raw_base64"]) == b"raw row"
    out = runner.invoke(cli, ["consume", "market.ticks"])
    assert out.exit_code == 0 and "no new messages" in out.output


def test_consume_marks_undecodable_messages_and_goes_on(broker):
    spec = catalog()["ticks"]
    producer = clients.producer()
    producer.produce(spec.name, b"junk bytes", b"EURUSD")
    producer.flush(10)
    got = [render(spec, default_serde(), m) for m in read_all("ticks")]
    assert got[0]["error"]["reason"] == "bad_magic_byte"


def test_status_reports_end_offsets_and_lag(broker):
    with TickProducer() as feed:
        for i in range(25):
            feed.send(Tick("EURUSD", 1_398_920_401_787_000 + i, bid=1.1, ask=1.2))
    result = CliRunner().invoke(cli, ["status", "--json"])
    assert result.exit_code == 0, result.output
    st = json.loads(result.output)
    ticks = next(t for t in st["topics"] if t["id"] == "ticks")
    assert ticks["messages"] == 25
    group = st["groups"][0]
    assert group["lag"] == 25 and group["committed"] == 0


def test_replay_cli_speed_and_limit(broker, shared_data, tmp_path):
    src = shared_data / "fxcm/eurusd/20140501_quote.zip"
    local = tmp_path / "eurusd" / src.name
    local.parent.mkdir()
    shutil.copy(src, local)
    result = CliRunner().invoke(
        cli,
        [
            "ticks",
            "replay",
            str(local),
            "--format",
            "lean-quote",
            "--limit",
            "300",
            "--max-rate",
            "2000",
            "--json",
        ],
    )
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["rows"] == 300 and summary["produced"] + summary["dead_lettered"] == 300
    assert summary["seconds"] >= 0.1  # 300 rows at <= 2000/s cannot take less than 0.15 s


def test_backtests_group_symbols_by_the_partition_the_broker_puts_them_in(broker):
    """``spark backtest run`` runs one pipeline per partition of murmur2(symbol): check it
    against where the messages land when produced by librdkafka's murmur2_random (Spark's
    producers; the Java client's default), for keys of every length modulo 4 and bytes
    >= 0x80 (murmur2's tail and sign cases)."""
    from spark.kafka.partitioner import partition_of

    spec = catalog()["ticks"]
    keys = [f"S{k}".encode() * (1 + k % 3) for k in range(60)] + [b"\xff\x80\x00", b"EURUSD"]
    producer = clients.producer()
    for key in keys:
        producer.produce(spec.name, b"x", key)  # raw bytes: read back, never decoded here
    assert producer.flush(30) == 0
    got = {m.key(): m.partition() for m in read_topics([spec.name])}
    assert got == {k: partition_of(k, spec.partitions) for k in keys}
    assert len(set(got.values())) == spec.partitions  # every partition was used
