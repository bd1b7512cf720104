"""Faust agents and the worker that runs them. Agents stay thin: decode, call pure code, send."""

from spark.topics import topic_prefix


def app_id() -> str:
    """Consumer group and changelog prefix of the workers (SPARK_TOPIC_PREFIX-scoped)."""
    return f"{topic_prefix()}spark-worker"
