"""Errors a user sees as one line: what went wrong and what to do."""

from __future__ import annotations


class SparkError(Exception):
    """A failure the user can act on; the CLI prints it as one line, no traceback."""


class BrokerUnreachable(SparkError):
    """No Kafka broker answered at the configured address."""


class SerializationError(SparkError):
    """A message could not be encoded or decoded.

    ``reason`` is a short machine-readable code that goes into dead-letter
    headers (``undecodable``, ``unknown_schema_id``, ``bad_magic_byte``,
    ``schema_mismatch``); the message text says what was wrong.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
