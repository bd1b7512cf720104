import datetime
import io
import struct
import subprocess
import sys

import numpy as np
import pytest
from fastavro import schemaless_writer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark import schemas
from spark.errors import SerializationError
from spark.serde.avro import AvroSerde
from spark.serde.encoders import compile_encoder
from spark.serde.registry import EmbeddedRegistry, parse, schema_id
from tests.helpers import sample_value


@pytest.fixture(scope="module")
def serde():
    return AvroSerde(EmbeddedRegistry())


@pytest.mark.parametrize("name", schemas.schema_names())
def test_round_trip_every_schema(serde, name):
    record = sample_value(schemas.load_current(name))
    data = serde.encode("some.topic", name, record)
    magic, sid = struct.unpack(">bI", data[:5])
    assert magic == 0 and sid == schema_id(schemas.load_current(name))
    assert serde.decode(data, name) == record


def test_timestamps_stay_integer_microseconds(serde):
    data = serde.encode("t", "Tick", {"symbol": "X", "ts": 1_398_920_401_787_123, "bid": 1.0})
    assert serde.decode(data, "Tick")["ts"] == 1_398_920_401_787_123


def test_ids_are_the_same_in_another_process():
    code = (
        "from spark.serde.registry import EmbeddedRegistry;"
        "print(sorted(EmbeddedRegistry().ids().items()))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == str(sorted(EmbeddedRegistry().ids().items()))


def test_old_writer_versions_decode_into_the_current_shape(serde, monkeypatch):
    """Data written with a released version reads as the current schema (defaults filled)."""
    v1 = schemas.released_versions("Tick")[0][1]
    current = dict(
        v1,
        fields=v1["fields"]
        + [{"name": "seq", "type": ["null", "long"], "default": None, "doc": "n"}],
    )
    old_bytes = serde.encode("t", "Tick", {"symbol": "X", "ts": 5, "bid": 1.0})
    monkeypatch.setattr(
        schemas,
        "load_current",
        lambda name: current if name == "Tick" else schemas.load_current(name),
    )
    fresh = AvroSerde(EmbeddedRegistry.__new__(EmbeddedRegistry))
    fresh.registry = serde.registry
    decoded = fresh.decode(old_bytes, "Tick")
    assert decoded["seq"] is None and decoded["bid"] == 1.0


@pytest.mark.parametrize(
    "data,reason",
    [
        (b"", "undecodable"),
        (b"\x01\x00\x00\x00\x01abc", "bad_magic_byte"),
        (b"\x00\x00\x00\x00\x01abc", "unknown_schema_id"),
    ],
)
def test_bad_bytes_raise_one_clear_error(serde, data, reason):
    with pytest.raises(SerializationError) as err:
        serde.decode(data, "Tick")
    assert err.value.reason == reason


def test_truncated_and_trailing_bodies_are_undecodable(serde):
    data = serde.encode("t", "Tick", {"symbol": "EURUSD", "ts": 5, "bid": 1.0, "ask": 2.0})
    for bad in (data[:-3], data + b"\x00\x00"):
        with pytest.raises(SerializationError) as err:
            serde.decode(bad, "Tick")
        assert err.value.reason == "undecodable"


def test_invalid_record_is_a_serialization_error(serde):
    with pytest.raises(SerializationError) as err:
        serde.encode("t", "Tick", {"symbol": "X", "ts": "yesterday"})
    assert err.value.reason == "invalid_record"


def test_ids_from_the_served_registry_are_learned_in_one_read_and_checked():
    """A feed handler's own schema is found in the registry log; a flood of made-up ids
    (garbage with magic byte 0) costs one read of the log, not one per id; a text that does
    not hash to its id is not believed."""
    import json

    feed = {"type": "record", "name": "Tick", "namespace": "io.spark", "fields": [
        {"name": "symbol", "type": "string"}, {"name": "ts", "type": "long"}]}  # fmt: skip
    other = {"type": "record", "name": "X", "fields": []}
    feed_id = schema_id(feed)
    reads = []

    def lookup():
        reads.append(1)
        return {feed_id: json.dumps(feed), 12345: json.dumps(other)}  # 12345: a wrong id

    registry = EmbeddedRegistry(lookup=lookup)
    for made_up in range(1, 500):
        with pytest.raises(SerializationError):
            registry.schema_for(made_up)
    assert len(reads) == 1
    assert registry.schema_for(feed_id)["name"] == "io.spark.Tick"  # learned in that read
    with pytest.raises(SerializationError):
        registry.schema_for(12345)


# --- the generated encoders (spark.serde.encoders) against fastavro ------------------------

ODD = st.one_of(  # values of the wrong type (or edge values of the right one)
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=4),
    st.binary(max_size=4),
    st.just(datetime.datetime(2014, 5, 6, 12, tzinfo=datetime.UTC)),
    st.just(np.float64(0.25)),
    st.just(np.int64(-5)),
    st.just({"a": 1.0}),
    st.just([1.0]),
)


def _valid(schema) -> st.SearchStrategy:
    if isinstance(schema, list):
        return st.one_of(*[_valid(s) for s in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    if kind == "null":
        return st.none()
    if kind == "boolean":
        return st.booleans()
    if kind == "int":
        return st.integers(-(2**31), 2**31 - 1)
    if kind == "long":
        return st.integers(-(2**63), 2**63 - 1)
    if kind in ("float", "double"):
        return st.floats(allow_nan=False, width=32 if kind == "float" else 64)
    if kind == "string":
        return st.text(max_size=12)
    if kind == "bytes":
        return st.binary(max_size=12)
    if kind == "enum":
        return st.sampled_from(schema["symbols"])
    if kind == "map":
        return st.dictionaries(st.text(max_size=6), _valid(schema["values"]), max_size=4)
    raise AssertionError(f"no strategy for {schema}")


def _records(schema) -> st.SearchStrategy:
    """Records of ``schema``: valid ones, ones with a field of the wrong type, ones with
    fields missing."""
    valid = {f["name"]: _valid(f["type"]) for f in schema["fields"]}
    names = sorted(valid)
    one_odd = st.tuples(st.fixed_dictionaries(valid), st.sampled_from(names), ODD).map(
        lambda t: {**t[0], t[1]: t[2]}
    )
    partial = st.fixed_dictionaries({}, optional=valid)
    return st.one_of(st.fixed_dictionaries(valid), one_odd, partial)


def _fastavro(schema_name: str, record: dict) -> bytes | str:
    parsed = parse(schemas.load_current(schema_name))  # as the serde parses it
    out = io.BytesIO()
    try:
        schemaless_writer(out, parsed, record)
    except Exception as exc:
        return type(exc).__name__
    return out.getvalue()


def test_the_hot_contracts_have_generated_encoders():
    compiled = {n for n in schemas.schema_names() if compile_encoder(schemas.load_current(n))}
    hot = {"Signal", "PaperOrder", "PaperFill", "Position", "OrderRejection"}
    assert hot <= compiled
    assert "Tick" in compiled and "FeatureVector" in compiled  # maps and logical types


@pytest.mark.parametrize("name", schemas.schema_names())
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_encoders_write_fastavros_bytes_or_leave_the_record_to_it(serde, name, data):
    schema = schemas.load_current(name)
    record = data.draw(_records(schema))
    expected = _fastavro(name, record)
    try:
        got = serde.encode("some.topic", name, record)[5:]
    except SerializationError:
        got = "SerializationError"
    if isinstance(expected, bytes):
        assert got == expected
    else:
        assert got == "SerializationError"
    encode = compile_encoder(parse(schema))
    if encode is not None:
        try:
            direct = encode(record)
        except Exception:
            return  # fastavro writes it (checked above)
        assert direct == expected  # what the generated code takes, it writes as fastavro
