"""Avro schema-resolution compatibility: can a reader schema read writer data?

The check is Apache Avro's own (``avro.compatibility``, the reference Python
implementation of the specification's "Schema Resolution" rules: promotions,
unions, enums and their defaults, aliases, nested and recursive records). This
module only turns its findings into lines a person can act on. BACKWARD
compatibility (Confluent's default) means the new schema, as reader, reads
everything written with older schemas.

>>> old = {"type": "record", "name": "T", "fields": [{"name": "a", "type": "int"}]}
>>> new = {"type": "record", "name": "T", "fields": [
...     {"name": "a", "type": "long"},
...     {"name": "b", "type": ["null", "string"], "default": None}]}
>>> incompatibilities(reader=new, writer=old)
[]
>>> incompatibilities(
...     reader={"type": "record", "name": "T", "fields": [{"name": "c", "type": "int"}]},
...     writer=old)
['/fields/0: reader field missing default value (c)']
"""

from __future__ import annotations

import json
from typing import Any

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import parse


def incompatibilities(reader: Any, writer: Any) -> list[str]:
    """Why data written with ``writer`` cannot be read with ``reader``; [] if it can.

    Both are schema JSON (dicts, lists or type names)."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(
        parse(json.dumps(reader)), parse(json.dumps(writer))
    )
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    # The three fields are sets filled in step; sorting each loses their pairing, so the
    # kinds and locations are listed with the (sorted) details once.
    kinds = ", ".join(sorted({k.value.replace("_", " ") for k in result.incompatibilities}))
    where = ", ".join(sorted(result.locations))
    details = ", ".join(sorted(str(m) for m in result.messages))
    return [f"{where}: {kinds} ({details})"]


def backward_incompatibilities(reader: Any, writer: Any) -> list[str]:
    """The new schema ``reader`` against an older ``writer``: BACKWARD's question."""
    return incompatibilities(reader=reader, writer=writer)
