"""Dashboards are built from code, and every panel's query returns data from a real
Prometheus scraping a real worker fed with real ticks (no empty panel after a rename)."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from spark.broker.embedded import free_port, port_open
from tests.conftest import WorkerProcess, require_binary, wait_for

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = ROOT / "monitoring/grafana/dashboards"


def panel_queries() -> list[tuple[str, str]]:
    found = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def test_committed_dashboards_are_what_the_code_builds():
    pytest.importorskip("grafana_foundation_sdk")
    from monitoring.grafana.build import render

    for name, text in render().items():
        assert (DASHBOARDS / name).read_text() == text, f"{name}: rerun monitoring/grafana/build"
    assert len(panel_queries()) >= 12


def prometheus_binary() -> str:
    return require_binary("prometheus")


def prom_query(port: int, expr: str) -> list:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


@pytest.mark.broker
def test_every_panel_query_returns_data(broker, tmp_path, monkeypatch):
    exe = prometheus_binary()
    monkeypatch.setenv("SPARK_SNAPSHOT_S", "2")
    monkeypatch.setenv("SPARK_MIN_EDGE", "0")  # the band policy: signals from few ticks
    from spark.kafka import clients
    from spark.ticks import TickProducer
    from spark.topics import catalog
    from tests.test_streams import BUNDLED, ticks_of

    worker = WorkerProcess(free_port(), tmp_path / "worker.log")
    prom_port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: spark-worker\n"
        f"    static_configs: [{{targets: ['127.0.0.1:{worker.web_port}']}}]\n"
    )
    prom = subprocess.Popen(
        [
            exe,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        worker.wait_ready()
        wait_for(lambda: port_open("127.0.0.1", prom_port), 30, "prometheus to listen")
        ticks = ticks_of(BUNDLED / "fxcm/eurusd/20140501_quote.zip", 4000)
        spec = catalog()["ticks"]
        raw = clients.producer()
        raw.produce(spec.name, b"not avro at all", b"EURUSD")  # one dead letter
        raw.flush(10)
        from spark.jobs.client import submit

        bundled = BUNDLED / "fxcm/eurusd/20140501_quote.zip"  # a job for the jobs dashboard
        submit("backtest", {"data": [str(bundled)], "limit": 2000}, wait=False)
        missing = panel_queries()
        deadline = time.monotonic() + 120
        with TickProducer(source="dashboards-test") as feed:
            for i, tick in enumerate(ticks):  # a steady stream while Prometheus scrapes
                feed.send(tick)
                if i % 200 == 199:
                    feed.poll()
                    time.sleep(0.5)
                    missing = [(p, q) for p, q in missing if not prom_query(prom_port, q)]
                    if not missing:
                        break
        while missing and time.monotonic() < deadline:
            time.sleep(2)
            missing = [(p, q) for p, q in missing if not prom_query(prom_port, q)]
        assert not missing, f"panels without data: {missing}"
    finally:
        prom.terminate()
        prom.wait(30)
        worker.stop()
