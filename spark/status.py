"""What runs where: broker, worker, topics with end offsets, consumer groups with lag."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from spark.agents import ticks_group
from spark.agents.worker import worker_status
from spark.broker import embedded
from spark.config import bootstrap_servers, external_bootstrap
from spark.kafka import topics as kafka_topics
from spark.topics import catalog


@dataclass
class Status:
    broker: dict
    worker: dict | None
    schema_registry_url: str | None = None
    schema_registry: dict | None = None  # the one `spark up` started, if any
    topics: list[dict] = field(default_factory=list)
    groups: list[dict] = field(default_factory=list)


def worker_samples(web_port: int, timeout: float = 2.0) -> list[tuple[str, dict, float]]:
    """``(name, labels, value)`` of every sample on a worker's /metrics; [] if unreachable."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{web_port}/metrics", timeout=timeout) as r:
            text = r.read().decode()
    except OSError:
        return []
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def worker_metrics(web_port: int, timeout: float = 2.0) -> dict[str, float]:
    """A worker's metrics summed over labels (name -> value); {} if unreachable."""
    totals: dict[str, float] = {}
    for name, _labels, value in worker_samples(web_port, timeout):
        totals[name] = totals.get(name, 0.0) + value
    return totals


def broker_info() -> dict:
    external = external_bootstrap()
    if external:
        return {"kind": "external", "address": external}
    st = embedded.status()
    return {
        "kind": "embedded",
        "address": st.address,
        "running": st.running,
        "pid": st.pid,
        "storage": st.storage,
        "log": st.log,
        "detail": st.detail,
    }


def collect() -> Status:
    """Everything ``spark status`` shows; raises BrokerUnreachable if Kafka does not answer."""
    from spark.config import schema_registry_url
    from spark.schema_registry.process import registry_status, served_url

    status = Status(broker_info(), worker_status())
    status.schema_registry = registry_status()
    status.schema_registry_url = schema_registry_url() or served_url()
    bootstrap_servers()  # a clear error when nothing is configured
    infos = kafka_topics.describe()
    for info in infos:
        entry = {
            "id": info.spec.id,
            "name": info.name,
            "exists": info.exists,
            "partitions": info.partitions,
            "messages": info.messages if info.exists else 0,
            "end_offsets": info.end_offsets or {},
        }
        status.topics.append(entry)
    ends = {t["name"]: t["end_offsets"] for t in status.topics if t["exists"]}
    ticks = catalog()["ticks"].name
    always = {ticks_group(): [ticks]} if ticks in ends else {}
    status.groups = kafka_topics.group_offsets(ends, always)
    if status.worker and status.worker.get("running"):
        status.worker["metrics"] = worker_metrics(status.worker["web_port"])
    return status
