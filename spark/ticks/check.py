"""Validation of tick messages as they arrive from Kafka (producers may be third parties).

Kept free of Faust so it is tested fast and reused by any consumer.
"""

from __future__ import annotations

from spark.errors import SerializationError
from spark.serde.avro import AvroSerde
from spark.ticks.model import InvalidTick, Tick, validate


def check_tick_message(serde: AvroSerde, key: bytes | None, value: bytes | None) -> Tick:
    """Decode and validate one message of the tick topic.

    Raises InvalidTick (or SerializationError) whose ``reason`` is the
    dead-letter reason code. A key that is not the tick's symbol is rejected
    too: it would put the symbol on the wrong partition and break per-symbol
    ordering.
    """
    record = serde.decode(value, "Tick")
    tick = Tick.from_record(record)
    validate(tick)
    if key is not None and key != tick.symbol.encode():
        raise InvalidTick("key_mismatch", f"key {key[:40]!r} is not the symbol {tick.symbol!r}")
    if key is None:
        raise InvalidTick("key_mismatch", f"no key; ticks are keyed by symbol ({tick.symbol!r})")
    return tick


def rejection(exc: Exception) -> tuple[str, str]:
    """(reason code, detail) of a rejected message."""
    if isinstance(exc, InvalidTick):
        return exc.reason, exc.detail
    if isinstance(exc, SerializationError):
        return exc.reason, str(exc)
    return "unexpected_error", f"{type(exc).__name__}: {exc}"
