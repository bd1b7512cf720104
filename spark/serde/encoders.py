"""Avro record bodies written by Python code generated from the schema: fastavro's bytes,
in about half of fastavro's time for the flat records the worker writes per signal (Signal,
PaperOrder, PaperFill, Position, OrderRejection; docs/hot-path.md, session 17).

``compile_encoder(schema)`` returns a function ``record -> body bytes`` for a record
schema whose fields are primitives (null, boolean, int, long, float, double, string,
bytes), enums, maps of those, or unions of "null" and one of those; any other schema gives
None (fastavro writes it). The function is strict where fastavro might convert: an
integer field takes only ``int`` (not bool, not numpy), a floating one only ``float``
(numpy's float64 is one) or ``int``, a string field only ``str``, a map only ``dict``;
it raises on anything else, and ``AvroSerde.encode`` then lets fastavro write the record,
so fastavro decides every case the generated code does not take (a datetime for a
timestamp, a missing field with a default, an invalid value) exactly as before. Tests
compare the two on generated and real records.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

_DOUBLE = struct.Struct("<d").pack
_FLOAT = struct.Struct("<f").pack
_SMALL = {}  # zig-zag varints of -64..63: one byte each


def _varint(n: int) -> bytes:
    n = (n << 1) ^ (n >> 63)
    if n < 0 or n >> 64:
        raise OverflowError(f"{n} does not fit in an Avro long")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


for _n in range(-64, 64):
    _SMALL[_n] = _varint(_n)


def _long(value: Any) -> bytes:
    if type(value) is not int:
        raise TypeError(f"expected int, got {type(value).__name__}")
    small = _SMALL.get(value)
    return small if small is not None else _varint(value)


def _int(value: Any) -> bytes:
    # fastavro refuses an int out of 32 bits in a union (and writes one outside unions):
    # out of range, fastavro decides
    if type(value) is not int or not -(2**31) <= value < 2**31:
        raise TypeError(f"expected a 32-bit int, got {value!r}")
    small = _SMALL.get(value)
    return small if small is not None else _varint(value)


def _string(value: Any) -> bytes:
    if type(value) is not str:
        raise TypeError(f"expected str, got {type(value).__name__}")
    data = value.encode()
    return _long(len(data)) + data


def _bytes(value: Any) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return _long(len(value)) + bytes(value)


def _double(value: Any) -> bytes:
    if not isinstance(value, float) and type(value) is not int:
        raise TypeError(f"expected float, got {type(value).__name__}")
    return _DOUBLE(value)


def _float(value: Any) -> bytes:
    if not isinstance(value, float) and type(value) is not int:
        raise TypeError(f"expected float, got {type(value).__name__}")
    return _FLOAT(value)


def _boolean(value: Any) -> bytes:
    if type(value) is not bool:
        raise TypeError(f"expected bool, got {type(value).__name__}")
    return b"\x01" if value else b"\x00"


PRIMITIVES: dict[str, Callable[[Any], bytes]] = {
    "boolean": _boolean,
    "int": _int,
    "long": _long,
    "float": _float,
    "double": _double,
    "string": _string,
    "bytes": _bytes,
}


def _writer(schema: Any, env: dict[str, Any]) -> str | None:
    """The name of a function in ``env`` writing one value of ``schema``; None if the
    schema is outside what this module writes."""
    if isinstance(schema, str):
        return schema if schema in PRIMITIVES else None
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    if kind in PRIMITIVES:
        return kind  # a logical type over a primitive: its plain value (else fastavro)
    if kind == "enum":
        name = f"_enum{len(env)}"
        index = {symbol: _long(k) for k, symbol in enumerate(schema["symbols"])}
        env[name] = lambda value, index=index: index[value]
        return name
    if kind == "map":
        values = _writer(schema["values"], env)
        if values is None:
            return None
        name = f"_map{len(env)}"
        write = env[values]

        def write_map(value: Any, write=write) -> bytes:
            if type(value) is not dict:
                raise TypeError(f"expected dict, got {type(value).__name__}")
            if not value:
                return b"\x00"
            parts = [_long(len(value))]
            for key, item in value.items():
                parts.append(_string(key))
                parts.append(write(item))
            parts.append(b"\x00")
            return b"".join(parts)

        env[name] = write_map
        return name
    return None


def compile_encoder(schema: dict) -> Callable[[dict], bytes] | None:
    """``record -> Avro body`` for a flat record ``schema`` (parsed or not), or None."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    env: dict[str, Any] = dict(PRIMITIVES)
    lines = ["def encode(r):"]
    parts = []
    for k, field in enumerate(schema["fields"]):
        kind = field["type"]
        value = f"r[{field['name']!r}]"
        if isinstance(kind, list):
            if len(kind) != 2 or kind[0] != "null":
                return None
            write = _writer(kind[1], env)
            if write is None:
                return None
            lines.append(f"    v{k} = {value}")
            parts.append(f'(b"\\x00" if v{k} is None else b"\\x02" + {write}(v{k}))')
        else:
            write = _writer(kind, env)
            if write is None:
                return None
            parts.append(f"{write}({value})")
    lines.append(f"    return b''.join(({', '.join(parts)},))")
    exec("\n".join(lines), env)  # noqa: S102 - code built above from field names via repr
    return env["encode"]


__all__ = ["compile_encoder"]
