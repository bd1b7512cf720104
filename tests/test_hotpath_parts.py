"""The live path's parts against the definitions they replace, without a broker.

* the compiled Avro writers produce fastavro's bytes, and the compiled tick decoder gives
  exactly what ``check_tick_message`` gives, message by message, poison included;
* the columnar file reader gives what the row reader gives;
* bulk histogram observations equal one ``observe`` per value;
* checkpoints are refused unless signed with our key for this partition, and a restored
  pipeline carries on exactly as the one that wrote it;
* a pipeline fed an endless churn of symbols holds a bounded state.
"""

from __future__ import annotations

import io
import itertools
import math
import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from fastavro import parse_schema, schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark import schemas
from spark.pipeline import SignalPipeline, TickBatch
from spark.serde.avro import AvroSerde
from spark.serde.registry import EmbeddedRegistry
from spark.settings import Settings
from spark.ticks.check import check_tick_message, rejection
from spark.ticks.replay import valid_ticks

BUNDLED = Path(__file__).resolve().parent.parent / "spark/data"
EURUSD = BUNDLED / "fxcm/eurusd/20140501_quote.zip"
IBM = BUNDLED / "equity/ibm/20131007_quote.zip"
PRICES = ("bid", "ask", "bid_size", "ask_size", "last", "last_size")
LOGREG = Settings(gate=False).with_models(model="logreg")


@pytest.fixture(scope="module")
def serde():
    return AvroSerde(EmbeddedRegistry())


def real_batch(n: int) -> TickBatch:
    fx = list(itertools.islice(valid_ticks([EURUSD], "lean-quote"), n))
    equity = list(itertools.islice(valid_ticks([IBM], "lean-quote"), n // 2))
    return TickBatch.from_ticks(sorted(fx + equity, key=lambda t: t.ts))


# --- compiled writers ------------------------------------------------------------------------
def test_compiled_writers_write_fastavros_bytes(serde):
    from spark.stream.outputs import Outgoing, OutputWriter

    settings = Settings(gate=False).with_models(model="logreg", challengers=("gbm",))
    batch = real_batch(3000)
    pipeline = SignalPipeline(settings)
    writer, out = OutputWriter(serde), Outgoing()
    for part in batch.chunks(700):
        writer.write(pipeline.step(part), 2, pipeline.symbols, 1000, 0, out)
    topics = writer.topics
    checked = Counter()
    for topic_id in ("features", "predictions"):
        spec = topics[topic_id]
        for key, value, headers in out.messages[topic_id]:
            assert headers[0][0] == "spark.source"  # tied to the tick it came from
            record = serde.decode(value, spec.value)
            assert serde.encode(spec.name, spec.value, record) == value
            assert key == record["symbol"].encode()
            checked[topic_id] += 1
    assert checked["features"] == len(batch)  # every real tick has its features
    assert checked["predictions"] == 2 * len(batch)  # one per model
    roles = Counter(
        serde.decode(v, "Prediction")["role"] for _, v, _ in out.messages["predictions"]
    )
    assert roles == {"champion": len(batch), "challenger": len(batch)}
    # each tick's source once on features; on predictions once plain, once as its 2nd record
    plain = [h[0][1] for _, _, h in out.messages["features"]]
    assert len(set(plain)) == len(batch) and all(b"#" not in x for x in plain)
    sources = sorted(h[0][1] for _, _, h in out.messages["predictions"])
    assert sources == sorted(plain + [x + b"#1" for x in plain])
    assert {tuple(n for n, _ in h) for _, _, h in out.messages["predictions"]} == {
        ("spark.source", "spark.processed_at")
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    names=st.lists(st.text(min_size=1, max_size=70), min_size=1, max_size=4, unique=True),
    n=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_feature_writer_writes_fastavros_bytes_on_any_columns(serde, names, n, seed):
    from spark.features.kernel import FEATURE_NAMES, FEATURE_SET
    from spark.serde.fast import FeatureWriter
    from spark.serde.registry import parse

    rng = np.random.default_rng(seed)
    writer = FeatureWriter(7, FEATURE_NAMES, FEATURE_SET)
    slot = rng.integers(0, len(names), n)
    ts = rng.integers(-(2**62), 2**62, n)
    quotes = rng.normal(size=(n, 3)) * 10.0 ** rng.integers(-300, 300, (n, 3))
    quotes[rng.random((n, 3)) < 0.3] = np.nan
    x = rng.normal(size=(n, len(FEATURE_NAMES)))
    received = np.where(rng.random(n) < 0.5, 0, rng.integers(1, 2**62, n))
    rows = np.flatnonzero(rng.random(n) < 0.8)
    values = writer.encode(names, rows, slot, ts, quotes, x, received)
    parsed = parse(schemas.load_current("FeatureVector"))
    nan = lambda v: None if v != v else float(v)  # noqa: E731
    for i, value in zip(rows.tolist(), values, strict=True):
        record = {
            "symbol": names[slot[i]],
            "ts": int(ts[i]),
            "mid": float(quotes[i, 0]),
            "bid": nan(quotes[i, 1]),
            "ask": nan(quotes[i, 2]),
            "values": dict(zip(FEATURE_NAMES, x[i].tolist(), strict=True)),
            "feature_set": FEATURE_SET,
            "computed_at": None,
            "tick_received_at": int(received[i]) or None,
        }
        body = io.BytesIO()
        schemaless_writer(body, parsed, record)
        assert value == bytes([0, 0, 0, 0, 7]) + body.getvalue()


def test_the_band_policys_records_take_the_generated_encoders_and_get_fastavros_bytes():
    from spark import schemas
    from spark.pipeline.records import sparse
    from spark.serde.encoders import compile_encoder
    from spark.serde.registry import parse
    from spark.topics import catalog

    settings = Settings(gate=False).with_models(model="logreg", min_edge=0.0)
    pipeline = SignalPipeline(settings)
    topics = catalog()
    written = Counter()
    for part in real_batch(6000).chunks(900):
        for _, topic_id, record in sparse(pipeline.step(part)):
            name = topics[topic_id].value
            parsed = parse(schemas.load_current(name))
            reference = io.BytesIO()
            schemaless_writer(reference, parsed, record)
            encode = compile_encoder(parsed)
            if encode is None:
                continue
            assert encode(record) == reference.getvalue()  # taken (no fallback), same bytes
            written[topic_id] += 1
    assert {"signals", "orders", "fills", "positions"} <= set(written)


# --- the tick decoder, poison included -------------------------------------------------------
GOOD = {"symbol": "EURUSD", "ts": 1_398_920_401_787_000, "bid": 1.3866, "ask": 1.3867}
OTHER_WRITER = {  # a feed handler's newer writer: an extra field, fields in another order
    "type": "record",
    "name": "Tick",
    "namespace": "io.spark",
    "fields": [
        {"name": "venue", "type": "string", "default": "X"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "symbol", "type": "string"},
        *[
            {"name": n, "type": ["null", "double"], "default": None}
            for n in ("last", "bid", "ask", "bid_size", "ask_size", "last_size")
        ],
    ],
}


def _encode(serde, record: dict, schema_id: int | None = None, schema=None) -> bytes:
    if schema is None:
        return serde.encode("ticks", "Tick", record)
    buf = io.BytesIO()
    schemaless_writer(buf, parse_schema(schema), record)
    return struct.pack(">bI", 0, schema_id) + buf.getvalue()


def _message(serde, other_id: int, kind: str, price: float, symbol: str) -> tuple:
    record = dict(GOOD, symbol=symbol, bid=price, ask=price + 0.0001)
    key = symbol.encode()
    if kind == "good":
        return key, _encode(serde, record)
    if kind == "trade":
        return key, _encode(serde, {"symbol": symbol, "ts": GOOD["ts"], "last": price})
    if kind == "other_writer":
        return key, _encode(serde, dict(record, venue="LMAX"), other_id, OTHER_WRITER)
    if kind == "other_writer_bad":
        return key, _encode(serde, dict(record, venue="LMAX", bid=-price), other_id, OTHER_WRITER)
    if kind in ("nan", "inf", "negative", "zero"):
        bad = {"nan": math.nan, "inf": math.inf, "negative": -price, "zero": 0.0}[kind]
        return key, _encode(serde, dict(record, ask=bad))
    if kind == "shifted":  # contract-valid, a decimal shifted: the pipeline's price screen
        return key, _encode(serde, dict(record, bid=price * 100, ask=(price + 0.0001) * 100))
    if kind == "huge":  # contract-valid and finite, but no market: it would overflow features
        return key, _encode(serde, dict(record, bid=1.7e308, ask=1.7e308))
    if kind == "huge_size":
        return key, _encode(serde, dict(record, bid_size=1e300))
    if kind == "bad_size":
        return key, _encode(serde, dict(record, bid_size=-1.0))
    if kind == "nan_size":
        return key, _encode(serde, dict(record, ask_size=math.nan))
    if kind == "crossed":
        return key, _encode(serde, dict(record, ask=price - 0.001))
    if kind == "no_price":
        return key, _encode(serde, {"symbol": symbol, "ts": GOOD["ts"]})
    if kind == "bad_ts":
        return key, _encode(serde, dict(record, ts=-5))
    if kind == "far_ts":
        return key, _encode(serde, dict(record, ts=2**62))
    if kind == "lower_symbol":
        return key.lower(), _encode(serde, dict(record, symbol=symbol.lower()))
    if kind == "key_mismatch":
        return b"GBPUSD", _encode(serde, record)
    if kind == "no_key":
        return None, _encode(serde, record)
    if kind == "truncated":
        return key, _encode(serde, record)[:-3]
    if kind == "trailing":
        return key, _encode(serde, record) + b"\x00\x01"
    if kind == "garbage":
        return key, b"not avro at all"
    if kind == "empty":
        return key, b""
    if kind == "none":
        return key, None
    if kind == "unknown_schema":
        return key, b"\x00\x7f\xff\xff\xff" + _encode(serde, record)[5:]
    if kind == "bad_magic":
        return key, b"\x01" + _encode(serde, record)[1:]
    if kind == "utf8":
        return key, _encode(serde, record)[:5] + b"\x0c\xff\xfe\xfd\xfc\xfb\xfa" + b"\x00" * 9
    raise AssertionError(kind)


KINDS = [
    "good",
    "trade",
    "other_writer",
    "other_writer_bad",
    "nan",
    "inf",
    "negative",
    "zero",
    "huge",
    "huge_size",
    "bad_size",
    "nan_size",
    "crossed",
    "no_price",
    "bad_ts",
    "far_ts",
    "lower_symbol",
    "key_mismatch",
    "no_key",
    "truncated",
    "trailing",
    "garbage",
    "empty",
    "none",
    "unknown_schema",
    "bad_magic",
    "utf8",
]


@pytest.fixture(scope="module")
def decoding(serde):
    from spark.stream.decode import TickDecoder

    other_id = serde.registry._add(OTHER_WRITER)
    return TickDecoder(serde), other_id


def _expected(serde, key, value):
    try:
        return check_tick_message(serde, key, value), None
    except Exception as exc:  # noqa: BLE001 - what the dead letter would say
        return None, rejection(exc)


def _check_decoder(serde, decoder, messages):
    keys = [k for k, _ in messages]
    values = [v for _, v in messages]
    offsets = list(range(100, 100 + len(messages)))
    received = [GOOD["ts"]] * len(messages)  # the broker took them when they were made
    batch, good, rejected = decoder.decode(keys, values, offsets, received)
    expected = [_expected(serde, k, v) for k, v in messages]
    want_good = [i for i, (tick, _) in enumerate(expected) if tick is not None]
    assert good.tolist() == want_good
    assert [(r.index, r.reason, r.detail) for r in rejected] == [
        (i, *why) for i, (tick, why) in enumerate(expected) if tick is None
    ]
    assert len(batch) == len(want_good)
    for row, i in enumerate(want_good):
        tick = expected[i][0]
        assert batch.symbol_at(row) == tick.symbol and batch.ts[row] == tick.ts
        assert batch.offset[row] == offsets[i] and batch.received[row] == GOOD["ts"]
        for name in PRICES:
            value = getattr(tick, name)
            got = getattr(batch, name)[row]
            assert (math.isnan(got) and value is None) or got == value, (name, got, value)
    return Counter(r.reason for r in rejected)


def test_every_kind_of_poison_is_rejected_for_the_reason_check_tick_message_gives(serde, decoding):
    decoder, other_id = decoding
    messages = [_message(serde, other_id, kind, 1.25, "EURUSD") for kind in KINDS]
    reasons = _check_decoder(serde, decoder, messages)
    # the valid ones (current and other writer, quote and trade) pass, the rest each
    # has a reason; none of them stops the batch
    assert sum(reasons.values()) == len(KINDS) - 3
    assert {"key_mismatch", "crossed_book", "non_finite_price", "bad_size"} <= set(reasons)
    assert reasons["absurd_price"] == 1


def test_ticks_stamped_far_ahead_of_their_broker_time_are_refused(serde):
    from spark.stream.decode import TickDecoder

    decoder = TickDecoder(serde, max_future_s=600)
    stamp = GOOD["ts"]
    messages = [
        _message(serde, 0, "good", 1.25, "EURUSD"),
        (b"EURUSD", _encode(serde, dict(GOOD, ts=stamp + 601_000_000))),  # 601 s ahead
        (b"EURUSD", _encode(serde, dict(GOOD, ts=stamp + 599_000_000))),  # within the bound
    ]
    keys, values = [k for k, _ in messages], [v for _, v in messages]
    batch, good, rejected = decoder.decode(keys, values, [0, 1, 2], [stamp] * 3)
    assert good.tolist() == [0, 2]
    assert [(r.index, r.reason) for r in rejected] == [(1, "future_timestamp")]
    assert "601 s after the broker took it" in rejected[0].detail
    # no broker time (0, as in files): nothing to compare with, nothing refused
    _batch, good, rejected = decoder.decode(keys, values, [0, 1, 2], [0] * 3)
    assert good.tolist() == [0, 1, 2] and not rejected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.floats(0.01, 1e6, allow_nan=False),
            st.sampled_from(["EURUSD", "IBM", "A", "BRK.B", "SPY"]),
        ),
        min_size=1,
        max_size=40,
    )
)
def test_decoder_agrees_with_check_tick_message_on_any_mix(serde, decoding, drawn):
    decoder, other_id = decoding
    _check_decoder(serde, decoder, [_message(serde, other_id, *d) for d in drawn])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=60), st.sampled_from([b"EURUSD", None, b"\xff"]))
def test_decoder_agrees_on_arbitrary_bytes(serde, decoding, tail, key):
    decoder, _ = decoding
    head = serde.encode("ticks", "Tick", GOOD)[:5]
    _check_decoder(serde, decoder, [(key, head + tail), (key, tail), (b"EURUSD", None)])


# --- columnar file reader --------------------------------------------------------------------
def _same(a: TickBatch, b: TickBatch) -> None:
    assert len(a) == len(b)
    assert [a.symbol_at(i) for i in range(len(a))] == [b.symbol_at(i) for i in range(len(b))]
    assert np.array_equal(a.ts, b.ts)
    for name in PRICES:
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=True), name


def _by_rows(paths, fmt):
    from spark.ticks.columns import _by_rows

    return _by_rows(paths, fmt, None, None)


@pytest.mark.parametrize(
    "paths, fmt",
    [([EURUSD], "lean-quote"), ([IBM], "lean-quote"), ([EURUSD, IBM], "lean-quote")],
    ids=["fx", "equity-quotes", "merged"],
)
def test_columnar_reader_equals_the_row_reader_on_bundled_days(paths, fmt):
    from spark.ticks.columns import read_batch

    batch, rejected = read_batch(paths, fmt)
    rows, rows_rejected = _by_rows(paths, fmt)
    _same(batch, rows)
    assert rejected == rows_rejected
    assert len(batch) > 5000


def test_columnar_reader_equals_the_row_reader_on_shared_trades(shared_data):
    from spark.ticks.columns import read_batch

    paths = [
        shared_data / "equity/ibm/20131007_trade.zip",
        shared_data / "equity/spy/20131007_trade.zip",
    ]
    batch, rejected = read_batch(paths, "lean-trade")
    rows, rows_rejected = _by_rows(paths, "lean-trade")
    _same(batch, rows)
    assert rejected == rows_rejected


def _zip(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(name.replace(".zip", ".csv"), "\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "bad",
    [
        "60000,1.3,1.2",  # crossed
        "60001,abc,1.3",  # does not parse: the row reader names it
        "",  # an empty line
        "59000,1.3,1.31",  # back in time
        "60002,-1,1.3",  # non-positive price
        "60003,1.3",  # a missing column
    ],
)
def test_columnar_reader_falls_back_and_agrees_on_malformed_files(tmp_path, bad):
    from spark.ticks.columns import read_batch

    lines = [f"{60000 + 10 * i},1.30{i % 10},1.31{i % 10}" for i in range(50)]
    lines.insert(20, bad)
    path = _zip(tmp_path, "20140501_quote.zip", lines)
    batch, rejected = read_batch([path], "lean-quote", symbol="EURUSD")
    rows, rows_rejected = _by_rows_symbol([path], "EURUSD")
    _same(batch, rows)
    assert rejected == rows_rejected
    assert sum(rejected.values()) >= (0 if bad == "" else 1)


def _by_rows_symbol(paths, symbol):
    from spark.ticks.columns import _by_rows

    return _by_rows(paths, "lean-quote", symbol, None)


# --- bulk histogram observations -------------------------------------------------------------
def test_observe_many_equals_observe_one_by_one():
    from prometheus_client import CollectorRegistry, Histogram

    from spark.stream.stats import observe_many

    registry = CollectorRegistry()
    h = Histogram("x_seconds", "x", ["agent"], buckets=(0.001, 0.01, 0.1, 1.0), registry=registry)
    values = np.array([0.0, 0.001, 0.0010001, 0.05, 0.1, 0.5, 1.0, 2.0, 1e9])
    observe_many(h.labels("bulk"), values)
    one = h.labels("one")
    for v in values.tolist():
        one.observe(v)
    observe_many(h.labels("bulk"), np.array([]))

    def samples(agent):
        return [
            (s.name, dict(s.labels, agent=""), s.value)
            for s in next(iter(registry.collect())).samples
            if s.labels["agent"] == agent and not s.name.endswith("_created")
        ]

    assert samples("bulk") == samples("one")


# --- checkpoints -----------------------------------------------------------------------------
@pytest.mark.parametrize("moves", [0, 2])  # labels in clock time, in event time
def test_checkpoint_restores_a_pipeline_that_carries_on_identically(moves):
    from spark.stream import checkpoint

    key = b"k" * 32
    batch = real_batch(4000)
    settings = Settings().with_models(model="logreg", horizon_moves=moves)  # gates, trading on
    first, second = batch.take(0, 2500), batch.take(2500, len(batch))
    original = SignalPipeline(settings)
    original.step(first)
    blob = checkpoint.encode(original, 3, 2499, key)
    restored, offset = checkpoint.decode(blob, key, 3)
    assert offset == 2499
    a, b = original.step(second), restored.step(second)
    assert np.array_equal(a.probs, b.probs) and np.array_equal(a.features, b.features)
    assert np.array_equal(a.labels.tick, b.labels.tick) and len(a.labels) > 1_000
    assert np.array_equal(a.labels.y, b.labels.y)
    assert a.signals == b.signals and a.executions == b.executions and a.gates == b.gates


def _rivers_detectors(result) -> dict:
    """The ADWIN detectors a pipeline kept before session 16, fed ``result``'s labels: river's
    detector in ``spark.drift.stage.Adwin``, by (symbol, model id), fresh after a detection
    and for a symbol back after a silence."""
    from river._river_rust.drift import AdaptiveWindowing

    from spark.drift.stage import Adwin

    def fresh() -> AdaptiveWindowing:
        return AdaptiveWindowing(
            delta=1e-4, clock=32, max_buckets=5, min_window_length=5, grace_period=10
        )

    detectors: dict = {}
    ev = result.labels
    resets = set(np.flatnonzero(result.reset).tolist())
    for i in sorted(resets | set(ev.tick.tolist())):
        symbol = result.symbols[result.slot[i]]
        if i in resets:
            for key in [k for k in detectors if k[0] == symbol]:
                del detectors[key]
        for e in np.flatnonzero(ev.tick == i).tolist():
            for m, (model_id, _) in enumerate(result.models):
                d = detectors.get((symbol, model_id))
                if d is None:
                    d = detectors[(symbol, model_id)] = Adwin()
                    d.drift_detected, d._helper = False, fresh()
                if d.drift_detected:
                    d._helper = fresh()
                d.drift_detected = d._helper.update(abs(float(ev.p[e, m]) - float(ev.y[e])))
    return detectors


def test_a_checkpoint_with_rivers_pickled_adwin_detectors_carries_on_identically():
    """Checkpoints written before session 16 pickled river's ADWIN objects; restored, their
    state is read into the compiled detectors and the run goes on as if never stopped."""
    import pickle

    batch = real_batch(6000)
    settings = Settings().with_models(model="logreg", challengers=("gbm",))  # gates on
    first, second = batch.take(0, 4000), batch.take(4000, len(batch))
    original = SignalPipeline(settings)
    meta, arrays, concept = original.step(first) and original.state()
    assert concept == b"" and "drift.adwin.buckets" in arrays
    legacy = _rivers_detectors(SignalPipeline(settings).step(first))
    assert len(legacy) == 4  # two symbols, two models
    arrays = {k: a.copy() for k, a in arrays.items() if not k.startswith("drift.adwin.")}
    restored = SignalPipeline.from_state(meta, arrays, pickle.dumps(legacy))
    assert all(
        np.array_equal(a, b)
        for a, b in zip(restored.drift.concept.state, original.drift.concept.state, strict=True)
    )
    a, b = original.step(second), restored.step(second)
    concept_alerts = [x for _, x in a.alerts if x["detector"] == "adwin"]
    assert concept_alerts and a.alerts == b.alerts
    # the detectors' history matters: fresh ones would not raise the same alerts
    forgetful = SignalPipeline.from_state(meta, arrays, b"")
    assert forgetful.step(second).alerts != a.alerts


def test_checkpoints_not_ours_are_refused():
    from spark.stream.checkpoint import CheckpointRejected, decode, encode

    key = b"k" * 32
    pipeline = SignalPipeline(LOGREG)
    pipeline.step(real_batch(500))
    blob = encode(pipeline, 1, 10, key)
    decode(blob, key, 1)
    tampered = bytearray(blob)
    tampered[len(blob) // 2] ^= 1
    cases = {
        "signature": (bytes(tampered), key, 1),
        "does not hold": (blob, b"x" * 32, 1),  # another deployment's key
        "partition 1": (blob, key, 2),
        "not a Spark checkpoint": (b"PK\x03\x04" + blob[4:], key, 1),
        "not a Spark checkpoint ": (blob[:20], key, 1),
        "format 9": (blob[:4] + b"\x09" + blob[5:], key, 1),
    }
    for words, (data, k, partition) in cases.items():
        with pytest.raises(CheckpointRejected, match=words.strip()):
            decode(data, k, partition)


def test_a_new_feature_set_refuses_old_checkpoints_and_adopts_old_model_versions():
    """Feature set v4 appended 2 features to v3's 52 (which appended 4 to v2's 48). A
    checkpoint holds per-tick state of the old width: refused (the partition is rebuilt from
    its first tick). A registry version of a v3 or v2 logreg still answers: its weights for
    the new features start at 0."""
    from spark.features import kernel
    from spark.ml import linear
    from spark.stream.checkpoint import CheckpointRejected, decode, encode

    key = b"k" * 32
    pipeline = SignalPipeline(LOGREG)
    pipeline.step(real_batch(500))
    meta, arrays, concept = pipeline.state()
    assert meta["feature_set"] == kernel.FEATURE_SET == "v4"
    pipeline.state = lambda: ({**meta, "feature_set": "v3"}, arrays, concept)
    with pytest.raises(CheckpointRejected, match="feature set v3; this worker computes v4"):
        decode(encode(pipeline, 1, 10, key), key, 1)
    del meta["feature_set"]  # as a v2 worker wrote it
    pipeline.state = lambda: (meta, arrays, concept)
    with pytest.raises(CheckpointRejected, match="feature set v2; this worker computes v4"):
        decode(encode(pipeline, 1, 10, key), key, 1)

    model_meta, model_arrays = pipeline.learners.export(0)
    assert model_meta["feature_set"] == "v4"
    lin, f = model_arrays["lin"], kernel.N_FEATURES
    v3_width = f - len(kernel.REGIME_FEATURE_NAMES)
    v2_width = v3_width - len(kernel.BOOK_FEATURE_NAMES)
    x = np.random.default_rng(1).normal(size=f)
    for name, old in (("v3", v3_width), ("v2", v2_width)):
        narrow = np.concatenate([lin[:2]] + [lin[2 + b * f : 2 + b * f + old] for b in range(3)])
        fresh = SignalPipeline(LOGREG)
        fresh.learners.adopt(0, {**model_meta, "feature_set": name}, {"lin": narrow})
        assert linear.predict(fresh.learners.lin[0], x) == linear.predict(narrow, x[:old]) != 0.5
    with pytest.raises(ValueError, match="cannot take"):
        linear.widen(lin, v3_width)


# --- bounded state ---------------------------------------------------------------------------
def _synthetic(names: list[str], ticks: int, t0: int, rng) -> TickBatch:
    """``ticks`` random-walk quotes spread over ``names``, 10 ms apart from ``t0`` µs."""
    code = rng.integers(0, len(names), ticks).astype(np.int32)
    mid = 100 + np.cumsum(rng.normal(0, 0.01, ticks))
    ts = t0 + np.arange(ticks) * 10_000
    return TickBatch.from_columns(
        names, code, ts, {"bid": mid - 0.01, "ask": mid + 0.01, "bid_size": np.ones(ticks)}
    )


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096 / 1e6


def _tables(pipeline: SignalPipeline) -> tuple:
    """Sizes of everything a pipeline keeps per symbol or per waiting label."""
    ex = pipeline.executor
    return (
        len(pipeline.symbols),
        len(pipeline.pool[0]),
        pipeline.fstate.nbytes + pipeline.istate.nbytes,
        len(ex.quotes),
        max((len(q.ts) for q in ex.quotes.values()), default=0),
        sum(len(q) for q in ex.pending.values()),
    )


def test_a_thousand_symbols_run_long_in_flat_memory():
    """1,000 symbols quoting at once for 300,000 ticks (default gates, paper trading on):
    after warm-up no table grows and neither does the process."""
    rng = np.random.default_rng(11)
    names = [f"SYM{k:04d}" for k in range(1000)]
    pipeline = SignalPipeline(Settings().with_models(model="logreg"))
    t0 = 1_400_000_000_000_000
    seen = []
    for lap in range(6):
        for part in _synthetic(names, 50_000, t0 + lap * 500_000_000, rng).chunks(5_000):
            pipeline.step(part)
        seen.append(_tables(pipeline))
        if lap == 1:
            rss = _rss_mb()
    assert len(pipeline.slot_of) == 1000
    assert all(s[:3] == seen[1][:3] for s in seen[2:]), seen  # slots, label pool, features
    assert max(s[4] for s in seen) <= pipeline.settings.execution.retain_quotes * 9 // 8 + 1
    assert _rss_mb() - rss < 25, (rss, _rss_mb())


def test_idle_symbols_are_freed_while_symbols_come_and_go():
    """1,000 symbols, 50 at a time, each gone for good after its phase: an idle one is freed
    unless it holds a position or a signal waiting for its fill quote (docs/hot-path.md)."""
    rng = np.random.default_rng(7)
    pipeline = SignalPipeline(  # the band policy: some symbols leave holding a position
        Settings(idle_evict_ticks=3_000).with_models(model="logreg", min_edge=0.0)
    )
    kept = []
    for phase in range(20):
        names = [f"P{phase:02d}S{k:03d}" for k in range(50)]
        t0 = 1_400_000_000_000_000 + phase * 40_000_000
        for part in _synthetic(names, 4_000, t0, rng).chunks(1_000):
            pipeline.step(part)
        ex = pipeline.executor
        held = set(ex.held) | {s for s, q in ex.pending.items() if q}
        live = set(pipeline.slot_of)
        assert live - set(names) <= held, live - set(names) - held
        assert set(pipeline.drift.gates) <= live
        assert set(ex.quotes) <= live
        # the tables follow the most symbols live at once: two phases' worth and the held
        assert len(pipeline.symbols) <= 2 * (100 + len(held)) + 8
        kept.append(len(live - set(names)))
    assert 0 < max(kept) < 50 * 19 // 2  # most of the 950 departed symbols were freed


def test_the_tick_loop_collects_cyclic_garbage_less_often_but_still_collects_it():
    import gc
    import weakref

    from spark.stream.loop import GC_THRESHOLD, collect_less

    before = gc.get_threshold()
    try:
        collect_less()
        assert gc.get_threshold() == GC_THRESHOLD
        assert gc.get_freeze_count() > 0  # what existed is out of the scans

        class Node:
            pass

        a, b = Node(), Node()
        a.peer, b.peer = b, a  # a cycle: reference counting alone never frees it
        gone = weakref.ref(a)
        del a, b
        kept = [[] for _ in range(2 * GC_THRESHOLD[0])]  # live allocations start a collection
        assert gone() is None
        assert len(kept) == 2 * GC_THRESHOLD[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
