"""What runs where: broker, worker, topics with end offsets, consumer groups with lag."""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from spark.agents import app_id
from spark.agents.worker import worker_status
from spark.broker import embedded
from spark.config import bootstrap_servers, external_bootstrap
from spark.kafka import topics as kafka_topics
from spark.topics import catalog


@dataclass
class Status:
    broker: dict
    worker: dict | None
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
    status = Status(broker_info(), worker_status())
    bootstrap_servers()  # a clear error when nothing is configured
    infos = kafka_topics.describe()
    by_name = {}
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
        by_name[info.name] = entry
    ticks = catalog()["ticks"]
    if by_name.get(ticks.name, {}).get("exists"):
        ends = by_name[ticks.name]["end_offsets"]
        lag = kafka_topics.group_lag(app_id(), ticks.name, ends)
        status.groups.append(
            {
                "group": app_id(),
                "topic": ticks.name,
                "committed": sum(c for c, _ in lag.values()),
                "lag": sum(lag_ for _, lag_ in lag.values()),
                "partitions": {p: {"committed": c, "lag": lg} for p, (c, lg) in lag.items()},
            }
        )
    if status.worker and status.worker.get("running"):
        status.worker["metrics"] = worker_metrics(status.worker["web_port"])
    return status
