"""The topic catalog: every Kafka topic Spark uses, read from ``catalog.toml``.

Look topics up by id; never spell a topic name in code:

>>> from spark.topics import catalog
>>> ticks = catalog()["ticks"]
>>> ticks.value, ticks.key, catalog()[ticks.dlq].value
('Tick', 'symbol', 'raw')
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

CATALOG_FILE = "catalog.toml"
_CLEANUPS = {"delete", "compact"}


@dataclass(frozen=True)
class TopicSpec:
    """One catalog entry. ``name`` already carries ``SPARK_TOPIC_PREFIX``."""

    id: str
    name: str
    partitions: int
    cleanup: str
    retention_hours: int | None
    key: str
    value: str
    dlq: str | None
    doc: str

    @property
    def is_raw(self) -> bool:
        """True for topics whose values are undecoded bytes (dead-letter topics)."""
        return self.value == "raw"

    @property
    def is_json(self) -> bool:
        """True for the workers' internal state topics, whose values are JSON."""
        return self.value == "json"

    def kafka_config(self) -> dict[str, str]:
        """Topic-level Kafka configs this entry asks for."""
        config = {"cleanup.policy": self.cleanup}
        if self.cleanup == "delete" and self.retention_hours is not None:
            ms = -1 if self.retention_hours < 0 else self.retention_hours * 3_600_000
            config["retention.ms"] = str(ms)
        return config


class Catalog(dict[str, TopicSpec]):
    """Topic specs by id, with lookups by Kafka name."""

    def by_name(self, name: str) -> TopicSpec | None:
        """The entry whose Kafka name is ``name`` (prefix included), if any."""
        return next((t for t in self.values() if t.name == name), None)

    def resolve(self, id_or_name: str) -> TopicSpec:
        """Find a topic by id (``ticks``) or Kafka name (``market.ticks``).

        Raises KeyError naming the known topics when there is no such topic.
        """
        if id_or_name in self:
            return self[id_or_name]
        spec = self.by_name(id_or_name) or self.by_name(topic_prefix() + id_or_name)
        if spec is None:
            known = ", ".join(sorted(t.name for t in self.values()))
            raise KeyError(f"unknown topic {id_or_name!r}; the catalog has: {known}")
        return spec


def topic_prefix() -> str:
    """Prefix put in front of every topic name (``SPARK_TOPIC_PREFIX``, default none)."""
    return os.environ.get("SPARK_TOPIC_PREFIX", "")


@cache
def _load(prefix: str) -> Catalog:
    raw = tomllib.loads(resources.files(__package__).joinpath(CATALOG_FILE).read_text())
    catalog = Catalog()
    for topic_id, entry in raw.items():
        cleanup = entry.get("cleanup", "delete")
        if cleanup not in _CLEANUPS:
            raise ValueError(f"topic {topic_id}: cleanup must be one of {sorted(_CLEANUPS)}")
        catalog[topic_id] = TopicSpec(
            id=topic_id,
            name=prefix + entry["name"],
            partitions=int(entry["partitions"]),
            cleanup=cleanup,
            retention_hours=entry.get("retention"),
            key=entry["key"],
            value=entry["value"],
            dlq=entry.get("dlq"),
            doc=entry["doc"],
        )
    for spec in catalog.values():
        if spec.dlq is not None and spec.dlq not in catalog:
            raise ValueError(
                f"topic {spec.id}: dead-letter topic {spec.dlq!r} is not in the catalog"
            )
    return catalog


def catalog() -> Catalog:
    """The catalog, with names prefixed by the current ``SPARK_TOPIC_PREFIX``."""
    return _load(topic_prefix())
