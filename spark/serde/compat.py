"""Avro schema-resolution compatibility: can a reader schema read writer data?

BACKWARD compatibility (Confluent's default) means the new schema, as reader,
reads everything written with older schemas. The rules follow the Avro
specification's "Schema Resolution" section.

>>> old = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]}
>>> new = {"type": "record", "name": "T", "fields": [
...     {"name": "a", "type": "long"},
...     {"name": "b", "type": ["null", "string"], "default": None}]}
>>> backward_incompatibilities(new, old)
[]
>>> backward_incompatibilities(
...     {"type": "record", "name": "T", "fields": [{"name": "c", "type": "int"}]}, old)
['T: reader field c has no default and the writer does not have it']
"""

from __future__ import annotations

from typing import Any

PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
# Writer type -> reader types it may be promoted to (Avro spec).
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
NAMED = {"record", "error", "enum", "fixed"}


def _full_name(schema: dict, namespace: str | None) -> str:
    name = schema["name"]
    if "." in name:
        return name
    ns = schema.get("namespace", namespace)
    return f"{ns}.{name}" if ns else name


def _collect_names(schema: Any, namespace: str | None, names: dict[str, dict]) -> None:
    if isinstance(schema, list):
        for branch in schema:
            _collect_names(branch, namespace, names)
    elif isinstance(schema, dict):
        kind = schema.get("type")
        if kind in NAMED:
            full = _full_name(schema, namespace)
            names[full] = schema
            names.setdefault(schema["name"].rsplit(".", 1)[-1], schema)
            namespace = full.rsplit(".", 1)[0] if "." in full else namespace
        if kind in ("record", "error"):
            for field in schema["fields"]:
                _collect_names(field["type"], namespace, names)
        elif kind == "array":
            _collect_names(schema["items"], namespace, names)
        elif kind == "map":
            _collect_names(schema["values"], namespace, names)


class _Resolver:
    def __init__(self, reader: Any, writer: Any) -> None:
        self.reader_names: dict[str, dict] = {}
        self.writer_names: dict[str, dict] = {}
        _collect_names(reader, None, self.reader_names)
        _collect_names(writer, None, self.writer_names)
        self.seen: set[tuple[int, int]] = set()

    @staticmethod
    def _deref(schema: Any, names: dict[str, dict]) -> Any:
        if isinstance(schema, str) and schema not in PRIMITIVES:
            return names.get(schema, names.get(schema.rsplit(".", 1)[-1], schema))
        if isinstance(schema, dict) and schema.get("type") in PRIMITIVES:
            return schema["type"]  # {"type": "long", "logicalType": ...} reads as long
        return schema

    @staticmethod
    def _kind(schema: Any) -> str:
        if isinstance(schema, list):
            return "union"
        if isinstance(schema, str):
            return schema
        return schema["type"]

    def check(self, reader: Any, writer: Any, where: str) -> list[str]:
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        rk, wk = self._kind(reader), self._kind(writer)

        if wk == "union":
            # Every branch the writer may have used must be readable.
            problems = []
            for branch in writer:
                problems += self.check(reader, branch, where)
            return problems
        if rk == "union":
            for branch in reader:
                if not self.check(branch, writer, where):
                    return []
            return [f"{where}: writer type {wk} matches no branch of the reader union"]

        if rk in PRIMITIVES or wk in PRIMITIVES:
            if rk == wk or rk in PROMOTIONS.get(wk, set()):
                return []
            return [f"{where}: writer type {wk} cannot be read as {rk}"]
        if rk != wk and not ({rk, wk} <= {"record", "error"}):
            return [f"{where}: writer type {wk} cannot be read as {rk}"]

        if rk in NAMED and reader["name"].rsplit(".", 1)[-1] != writer["name"].rsplit(".", 1)[-1]:
            aliases = {a.rsplit(".", 1)[-1] for a in reader.get("aliases", [])}
            if writer["name"].rsplit(".", 1)[-1] not in aliases:
                return [f"{where}: named type {writer['name']} is now {reader['name']}"]

        if rk == "array":
            return self.check(reader["items"], writer["items"], f"{where}[]")
        if rk == "map":
            return self.check(reader["values"], writer["values"], f"{where}{{}}")
        if rk == "fixed":
            if reader["size"] != writer["size"]:
                return [f"{where}: fixed size changed from {writer['size']} to {reader['size']}"]
            return []
        if rk == "enum":
            missing = set(writer["symbols"]) - set(reader["symbols"])
            if missing and "default" not in reader:
                return [f"{where}: enum symbols {sorted(missing)} removed without a default"]
            return []
        return self._check_record(reader, writer)

    def _check_record(self, reader: dict, writer: dict) -> list[str]:
        key = (id(reader), id(writer))
        if key in self.seen:  # recursive types: assume fine once under way
            return []
        self.seen.add(key)
        name = reader["name"].rsplit(".", 1)[-1]
        writer_fields = {}
        for field in writer["fields"]:
            writer_fields[field["name"]] = field
        problems: list[str] = []
        for field in reader["fields"]:
            candidates = [field["name"], *field.get("aliases", [])]
            match = next((writer_fields[n] for n in candidates if n in writer_fields), None)
            if match is None:
                if "default" not in field:
                    problems.append(
                        f"{name}: reader field {field['name']} has no default "
                        "and the writer does not have it"
                    )
                continue
            problems += self.check(field["type"], match["type"], f"{name}.{field['name']}")
        return problems


def backward_incompatibilities(reader: Any, writer: Any) -> list[str]:
    """Reasons ``reader`` cannot read data written with ``writer``; empty when it can."""
    return _Resolver(reader, writer).check(reader, writer, "")
