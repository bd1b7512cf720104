"""Test helpers: sample records for any Avro schema."""

from __future__ import annotations

from typing import Any

PRIMITIVE_SAMPLES = {
    "null": None,
    "boolean": True,
    "int": 7,
    "long": 1_398_920_401_787_000,
    "float": 1.5,
    "double": 1.38727,
    "bytes": b"\x00\x01snap",
    "string": "EURUSD",
}


def sample_value(schema: Any, prefer_non_null: bool = True) -> Any:
    """A valid value for ``schema`` (JSON form), using non-null union branches."""
    if isinstance(schema, str):
        return PRIMITIVE_SAMPLES[schema]
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"] if prefer_non_null else schema
        return sample_value(branches[0] if branches else "null")
    kind = schema["type"]
    if kind in PRIMITIVE_SAMPLES:
        return PRIMITIVE_SAMPLES[kind]
    if kind == "record":
        return {f["name"]: sample_value(f["type"]) for f in schema["fields"]}
    if kind == "enum":
        return schema["symbols"][0]
    if kind == "array":
        return [sample_value(schema["items"])]
    if kind == "map":
        return {"k": sample_value(schema["values"])}
    if kind == "fixed":
        return b"\x00" * schema["size"]
    raise ValueError(f"no sample for {schema!r}")


def timeless(value: Any) -> Any:
    """``value`` (JSON-like) without wall times ("seconds"), NaN made comparable: what two
    runs of a deterministic job must agree on (NaN == NaN holds only as one object)."""
    if isinstance(value, dict):
        return {k: timeless(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [timeless(v) for v in value]
    return "NaN" if value != value else value


def checkpointed_at(settings, stream, cut: int):
    """A pipeline stepped over ``stream`` up to ``cut``, checkpointed and restored, then both
    stepped over the rest: (the original pipeline, its result, the restored one's result)."""
    from spark.pipeline import SignalPipeline
    from spark.stream import checkpoint

    key = b"k" * 32
    original = SignalPipeline(settings)
    original.step(stream.take(0, cut))
    restored, _ = checkpoint.decode(checkpoint.encode(original, 0, cut - 1, key), key, 0)
    rest = stream.take(cut, len(stream))
    return original, original.step(rest), restored.step(rest)
