"""Dead-letter records: the original bytes, and why, in ``spark.dlq.*`` headers.

>>> dict(dlq_headers("crossed_book", "bid 2 > ask 1", "quotes", "replay", origin="a.csv:3"))
... # doctest: +NORMALIZE_WHITESPACE
{'spark.dlq.reason': b'crossed_book', 'spark.dlq.detail': b'bid 2 > ask 1',
 'spark.dlq.topic': b'quotes', 'spark.dlq.stage': b'replay', 'spark.dlq.origin': b'a.csv:3'}
"""

from __future__ import annotations

REASON = "spark.dlq.reason"
DETAIL = "spark.dlq.detail"
TOPIC = "spark.dlq.topic"
STAGE = "spark.dlq.stage"
ORIGIN = "spark.dlq.origin"
MAX_DETAIL = 1000

# What can land on a dead-letter topic, per (source topic id, stage): the worker creates a
# counter at 0 for each at start, so dashboards and alerts see 0, never "No data".
# tests/test_worker.py checks every reason the worker counts is listed here.
_UNREADABLE = ("undecodable", "bad_magic_byte", "unknown_schema_id")
KNOWN_REASONS: dict[tuple[str, str], tuple[str, ...]] = {
    ("ticks", "ingest"): (
        *_UNREADABLE,
        "key_mismatch",
        "bad_symbol",
        "bad_timestamp",
        "no_price",
        "non_finite_price",
        "non_positive_price",
        "absurd_price",
        "bad_size",
        "crossed_book",
        "future_timestamp",
        "price_jump",  # the pipeline's price screen (spark.pipeline.screen)
    ),
    **{
        (requests, "jobs"): (*_UNREADABLE, "invalid_params", "invalid_json", "unexpected_error")
        for requests in ("backtest_requests", "optimizer_requests", "export_requests")
    },
    **{
        (commands, kind): (
            *_UNREADABLE,
            "invalid_command",
            "unsigned_command",
            "unknown_key",
            "bad_signature",
            "stale_command",
            "replayed_command",
        )  # fmt: skip
        for commands, kind in (
            ("gate_commands", "gate"),
            ("risk_commands", "risk"),
            ("job_commands", "jobs"),
        )
    },
}


def dlq_headers(
    reason: str, detail: str, topic: str, stage: str, origin: str | None = None
) -> list[tuple[str, bytes]]:
    """Headers for a dead-lettered message.

    ``reason`` is a short code (counted in metrics), ``detail`` the human text,
    ``topic`` the topic the message was meant for or read from, ``stage`` who
    rejected it (``replay``, ``producer``, ``ingest``), ``origin`` where it came
    from (``file:line`` or ``topic/partition@offset``).
    """
    headers = [
        (REASON, reason.encode()),
        (DETAIL, detail[:MAX_DETAIL].encode("utf-8", "replace")),
        (TOPIC, topic.encode()),
        (STAGE, stage.encode()),
    ]
    if origin:
        headers.append((ORIGIN, origin.encode("utf-8", "replace")))
    return headers


def decode_headers(headers: list[tuple[str, bytes | None]] | None) -> dict[str, str]:
    """Headers as a str dict (for printing and tests)."""
    return {k: (v or b"").decode("utf-8", "replace") for k, v in headers or []}
