"""Avro values in Confluent's wire format: magic byte 0, 4-byte big-endian schema id, body.

>>> serde = AvroSerde(EmbeddedRegistry())
>>> data = serde.encode("quotes", "Tick", {"symbol": "EURUSD", "ts": 1_000_000,
...                                              "bid": 1.1, "ask": 1.2})
>>> data[0], serde.decode(data, "Tick")["ask"]
(0, 1.2)
>>> serde.decode(b"not avro", "Tick")
Traceback (most recent call last):
...
spark.errors.SerializationError: not Confluent wire format: magic byte 110, expected 0
"""

from __future__ import annotations

import io
import struct
from typing import Any

from fastavro import schemaless_reader, schemaless_writer
from fastavro.schema import to_parsing_canonical_form

from spark import schemas
from spark.errors import SerializationError
from spark.serde.encoders import compile_encoder
from spark.serde.registry import EmbeddedRegistry, Registry, parse

MAGIC = 0
_HEADER = struct.Struct(">bI")


class AvroSerde:
    """Encode and decode catalog values; decoding resolves old writer versions to the current."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._readers: dict[str, Any] = {}
        self._same: dict[tuple[int, str], bool] = {}
        self._encoders: dict[str, Any] = {}  # schema name -> generated encoder (or None)

    def _reader(self, schema_name: str) -> Any:
        parsed = self._readers.get(schema_name)
        if parsed is None:
            parsed = self._readers[schema_name] = parse(schemas.load_current(schema_name))
        return parsed

    def encode(self, topic: str, schema_name: str, record: dict) -> bytes:
        """Serialize ``record`` as the current ``schema_name``; SerializationError if invalid."""
        header = _HEADER.pack(MAGIC, self.registry.id_for(topic, schema_name))
        fast = self._encoders.get(schema_name, False)
        if fast is False:
            fast = self._encoders[schema_name] = compile_encoder(self._reader(schema_name))
        if fast is not None:
            try:
                return header + fast(record)
            except Exception:  # noqa: S110 - fastavro decides what the generated code did not take
                pass
        out = io.BytesIO()
        out.write(header)
        try:
            schemaless_writer(out, self._reader(schema_name), record)
        except (ValueError, TypeError, KeyError, AttributeError, OverflowError) as exc:
            raise SerializationError(
                "invalid_record", f"cannot encode {schema_name}: {exc}"
            ) from exc
        return out.getvalue()

    def decode(self, data: bytes | None, schema_name: str) -> dict:
        """Deserialize ``data`` into a dict shaped by the current ``schema_name``."""
        if not data or len(data) < _HEADER.size:
            raise SerializationError("undecodable", "value too short for Confluent wire format")
        magic, schema_id = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise SerializationError(
                "bad_magic_byte", f"not Confluent wire format: magic byte {data[0]}, expected 0"
            )
        writer = self.registry.schema_for(schema_id)
        reader = self._reader(schema_name)
        same = self._same.get((schema_id, schema_name))
        if same is None:
            same = to_parsing_canonical_form(writer) == to_parsing_canonical_form(reader)
            self._same[(schema_id, schema_name)] = same
        body = io.BytesIO(data[_HEADER.size :])
        try:
            # Schema resolution costs time per record: skip it when writer == reader.
            record = schemaless_reader(body, writer, None if same else reader)
        except Exception as exc:  # fastavro raises many types on corrupt bodies
            raise SerializationError(
                "undecodable", f"cannot decode {schema_name} (schema id {schema_id}): {exc}"
            ) from exc
        if body.tell() != len(data) - _HEADER.size:
            raise SerializationError(
                "undecodable",
                f"{len(data) - _HEADER.size - body.tell()} trailing bytes after record",
            )
        return record


__all__ = ["AvroSerde", "EmbeddedRegistry", "SerializationError"]
