"""Schema registries: where the 4-byte schema id of the Confluent wire format comes from.

Two implementations with one protocol (``id_for`` / ``schema_for``):

* :class:`EmbeddedRegistry` needs no server. A schema's id is derived from
  the SHA-256 of its Avro Parsing Canonical Form, so every process on every
  machine computes the same id for the same schema, across restarts, with
  nothing to coordinate. It knows the current and every released version of
  each contract, so it decodes data written by older producers; ids a client
  registered with the served registry (``spark.schema_registry``, same ids) are
  read from its log.
* :class:`ConfluentRegistry` talks to a Confluent-compatible Schema Registry
  (``SCHEMA_REGISTRY_URL``) with confluent-kafka's client; subjects follow
  the TopicNameStrategy (``<topic>-value``), so stock serializers interoperate.

docs/schemas.md explains the choice.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from functools import cache
from typing import Any, Protocol

from fastavro import parse_schema
from fastavro.schema import to_parsing_canonical_form

from spark import schemas
from spark.errors import SerializationError

_PLAIN_LOGICAL = {
    "timestamp-micros",
    "timestamp-millis",
    "local-timestamp-micros",
    "local-timestamp-millis",
    "time-micros",
    "time-millis",
}


def _plain_times(node: Any) -> Any:
    """Drop time logical types so values stay integers (µs/ms), not datetimes.

    The contract keeps the annotation for other languages; in Spark's hot path
    integers are cheaper and exact. The Parsing Canonical Form ignores logical
    types, so schema ids do not change.
    """
    if isinstance(node, dict):
        if node.get("logicalType") in _PLAIN_LOGICAL:
            return node["type"]
        return {k: _plain_times(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain_times(v) for v in node]
    return node


def parse(schema_json: dict) -> Any:
    """Parse a schema JSON object for Spark's runtime: times as integers, fresh named types."""
    # The write hint marks the result as parsed, so fastavro does not parse it again on
    # every record (47 µs -> ~3 µs per Tick encode).
    return parse_schema(_plain_times(schema_json), named_schemas={})


def schema_id(schema_json: dict) -> int:
    """Deterministic id of a schema: first 31 bits of SHA-256 of its canonical form.

    >>> schema_id({"type": "record", "name": "A", "fields": []}) == schema_id(
    ...     {"name": "A", "type": "record", "fields": [], "doc": "docs do not count"})
    True
    """
    canonical = to_parsing_canonical_form(parse(schema_json))
    digest = hashlib.sha256(canonical.encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


class Registry(Protocol):
    def id_for(self, topic: str, schema_name: str) -> int:
        """Id under which values of ``schema_name`` on ``topic`` are written."""

    def schema_for(self, schema_id: int) -> Any:
        """The parsed writer schema of ``schema_id``; SerializationError if unknown."""


class EmbeddedRegistry:
    """Ids from schema content; knows current and released versions of every contract."""

    #: seconds before an id that was not found is looked up again
    #: seconds between two reads of the registry log for ids no contract has: one read
    #: learns every registered schema, and a flood of made-up ids costs one read, not one each
    REREAD_S = 10.0

    def __init__(self, lookup: Callable[[], dict[int, str]] | None = None) -> None:
        """``lookup``: every schema registered with the served registry, by id (its log,
        ``spark.schema_registry.log.registered_schemas``); a text must hash to its id, so
        a wrong answer cannot make us decode with the wrong schema."""
        self._by_id: dict[int, Any] = {}
        self._current_id: dict[str, int] = {}
        self._lookup = lookup
        self._read_at = -math.inf
        for name in schemas.schema_names():
            current = schemas.load_current(name)
            self._current_id[name] = self._add(current)
            for _version, old in schemas.released_versions(name):
                self._add(old)

    def _add(self, schema_json: dict) -> int:
        sid = schema_id(schema_json)
        known = self._by_id.get(sid)
        parsed = parse(schema_json)
        if known is not None and to_parsing_canonical_form(known) != to_parsing_canonical_form(
            parsed
        ):
            raise RuntimeError(f"schema id collision on {sid}; rename or change a schema")
        self._by_id[sid] = parsed
        return sid

    def id_for(self, topic: str, schema_name: str) -> int:
        return self._current_id[schema_name]

    def schema_for(self, schema_id: int) -> Any:
        found = self._by_id.get(schema_id)
        if found is None and self._lookup is not None:
            found = self._look_up(schema_id)
        if found is None:
            raise SerializationError(
                "unknown_schema_id",
                f"schema id {schema_id} is neither a Spark contract nor in the schema registry",
            )
        return found

    def _look_up(self, sid: int) -> Any:
        now = time.monotonic()
        if now - self._read_at < self.REREAD_S:
            return None
        self._read_at = now
        for other, text in self._lookup().items():
            if other in self._by_id:
                continue
            try:
                schema_json = json.loads(text)
                if schema_id(schema_json) == other:
                    self._by_id[other] = parse(schema_json)
            except Exception:  # an unparsable text is left out
                continue
        return self._by_id.get(sid)

    def ids(self) -> dict[str, int]:
        """Current id of every contract, for producers in other languages."""
        return dict(self._current_id)


class ConfluentRegistry:
    """A Confluent-compatible Schema Registry over HTTP."""

    def __init__(self, url: str, basic_auth: str | None = None) -> None:
        from confluent_kafka.schema_registry import SchemaRegistryClient

        conf = {"url": url}
        if basic_auth:
            conf["basic.auth.user.info"] = basic_auth
        # new_client also understands confluent-kafka's in-process "mock://" registry.
        self._client = SchemaRegistryClient.new_client(conf)
        self._ids: dict[tuple[str, str], int] = {}
        self._schemas: dict[int, Any] = {}

    def id_for(self, topic: str, schema_name: str) -> int:
        key = (topic, schema_name)
        if key not in self._ids:
            from confluent_kafka.schema_registry import Schema

            text = json.dumps(schemas.load_current(schema_name))
            self._ids[key] = self._client.register_schema(f"{topic}-value", Schema(text, "AVRO"))
        return self._ids[key]

    def schema_for(self, schema_id: int) -> Any:
        if schema_id not in self._schemas:
            try:
                found = self._client.get_schema(schema_id)
            except Exception as exc:  # the client raises its own error types
                raise SerializationError(
                    "unknown_schema_id", f"registry has no schema {schema_id}: {exc}"
                ) from exc
            self._schemas[schema_id] = parse(json.loads(found.schema_str))
        return self._schemas[schema_id]


@cache
def default_registry(url: str | None = None, basic_auth: str | None = None) -> Registry:
    """The registry for this process: Confluent's when a URL is given, else embedded."""
    if url:
        return ConfluentRegistry(url, basic_auth)
    from spark.schema_registry.log import registered_schemas

    return EmbeddedRegistry(lookup=registered_schemas)
