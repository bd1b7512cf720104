"""The worker: Faust wiring around the tick loop and the jobs. Wiring only: the work is in
``spark.stream`` (the tick path), ``spark.pipeline`` and ``spark.jobs``."""

from spark.topics import topic_prefix


def app_id() -> str:
    """Consumer group and changelog prefix of the workers (SPARK_TOPIC_PREFIX-scoped)."""
    return f"{topic_prefix()}spark-worker"


def ticks_group() -> str:
    """Consumer group of the workers' tick loops (apart from Faust's group: its members
    are confluent-kafka consumers, docs/hot-path.md)."""
    return f"{app_id()}-ticks"
