"""Deployment files, validated as far as possible without a Docker engine or a cluster:
the compose file against the Compose Specification schema, the Prometheus config with
the real promtool, the Kubernetes manifests' structure, and the image's install step
against the README's."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import yaml

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.kafka.yml").read_text())


def test_compose_file_matches_the_compose_specification():
    import jsonschema

    schema = json.loads((ROOT / "deploy/schema/compose_spec.json").read_text())
    errors = [
        f"{list(e.path)}: {e.message}"
        for e in jsonschema.Draft201909Validator(schema).iter_errors(compose())
    ]
    assert not errors, errors


def test_compose_runs_the_whole_platform():
    services = compose()["services"]
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in services
    assert "schema-registry" in services and "prometheus" in services and "grafana" in services
    workers = [
        name
        for name, s in services.items()
        if s.get("image") == "spark-worker:latest" and "worker" in name
    ]
    assert len(workers) >= 2
    for name in workers + ["topics"]:
        env = services[name]["environment"]
        assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["SCHEMA_REGISTRY_URL"].startswith("http://schema-registry")
        assert "SPARK_MODEL_KEY" in env
    assert services["topics"]["command"] == ["spark", "topics", "create"]
    for name in workers:
        assert (
            services[name]["depends_on"]["topics"]["condition"] == "service_completed_successfully"
        )
    prom_volumes = " ".join(services["prometheus"]["volumes"])
    assert "monitoring/rules" in prom_volumes and "monitoring/prometheus.yml" in prom_volumes
    grafana_volumes = " ".join(services["grafana"]["volumes"])
    assert "monitoring/grafana/provisioning" in grafana_volumes
    assert "monitoring/grafana/dashboards" in grafana_volumes


def test_prometheus_config_scrapes_every_worker_and_loads_the_rules():
    exe = require_binary("promtool")
    proc = subprocess.run(
        [exe, "check", "config", str(ROOT / "monitoring/prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rules = yaml.safe_load((ROOT / "monitoring/rules/spark.yml").read_text())
    n_rules = sum(len(group["rules"]) for group in rules["groups"])
    assert n_rules >= 11
    assert f"SUCCESS: {n_rules} rules found" in proc.stdout + proc.stderr
    config = yaml.safe_load((ROOT / "monitoring/prometheus.yml").read_text())
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    workers = [n for n in compose()["services"] if n.startswith("worker")]
    assert sorted(targets) == sorted(f"{w}:6066" for w in workers)


def test_grafana_provisioning_points_at_the_dashboards():
    datasource = yaml.safe_load(
        (ROOT / "monitoring/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = datasource["datasources"][0]["uid"]
    for path in (ROOT / "monitoring/grafana/dashboards").glob("*.json"):
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == uid, (path.name, panel["title"])


def test_kubernetes_manifests():
    docs = [
        d
        for p in sorted((ROOT / "deploy/k8s").glob("*.yaml"))
        for d in yaml.safe_load_all(p.read_text())
    ]
    kinds = {d["kind"]: d for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "Secret"} <= set(kinds)
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    worker = pod["containers"][0]
    assert worker["command"][:2] == ["spark", "worker"]
    assert worker["readinessProbe"]["httpGet"]["path"] == "/ml/health"
    assert worker["livenessProbe"]["httpGet"]["path"] == "/health"
    # never root, and the root file system read-only: writes go to mounted SPARK_HOME, /tmp
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    for container in pod["containers"] + pod["initContainers"]:
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert {"/var/lib/spark", "/tmp"} <= mounts
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    users = re.findall(r"^USER (\S+)$", dockerfile, re.M)
    assert users and users[-1] not in ("root", "0")
    assert "NUMBA_CACHE_DIR=/var/lib/spark/" in dockerfile  # numba caches where it may write
    refs = {next(iter(r.values()))["name"] for r in worker["envFrom"]}
    assert refs == {kinds["ConfigMap"]["metadata"]["name"], kinds["Secret"]["metadata"]["name"]}
    assert pod["initContainers"][0]["command"] == ["spark", "topics", "create"]
    assert deployment["spec"]["selector"]["matchLabels"] == kinds["Service"]["spec"]["selector"]
    assert "KAFKA_BOOTSTRAP_SERVERS" in kinds["ConfigMap"]["data"]


def test_image_installs_exactly_like_the_readme():
    readme = (ROOT / "README.md").read_text()
    demo = re.search(
        r"^(python3 -m venv \.venv && \.venv/bin/pip install -q -e \.) && "
        r"\.venv/bin/spark demo$",
        readme,
        re.M,
    )
    assert demo, "the README's demo command changed; update the Dockerfile and this test"
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert f"RUN {demo.group(1)}\n" in dockerfile


def test_every_python_package_is_in_the_distribution():
    """A non-editable install (a wheel) must carry every package, not only what -e finds."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(project["packages"])
    on_disk = {
        "spark." + str(p.parent.relative_to(ROOT / "spark")).replace("/", ".")
        for p in (ROOT / "spark").glob("*/__init__.py")
    } | {"spark", "spark.agents", "spark.schemas", "spark.topics"}
    assert on_disk == listed
