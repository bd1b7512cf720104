"""Test fixtures. Every broker here is real and spoken to over TCP:

1. ``KAFKA_BOOTSTRAP_SERVERS`` if set (any Kafka cluster),
2. else testcontainers' Kafka if a Docker engine answers,
3. else the embedded Tansu broker on a free port.

Each broker test gets its own SPARK_TOPIC_PREFIX, so tests share the broker but
never each other's topics.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
ORIGINAL_BOOTSTRAP = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
        return True
    except Exception:  # noqa: BLE001 - any failure means "no Docker here"
        return False


EMBEDDED: dict[str, bool] = {}  # set when the session's broker is the embedded one


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory):
    """Address of a real Kafka-protocol broker for this test session."""
    if ORIGINAL_BOOTSTRAP:
        yield ORIGINAL_BOOTSTRAP
        return
    if _docker_answers():
        from testcontainers.kafka import KafkaContainer

        with KafkaContainer().with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    EMBEDDED["yes"] = True
    from spark.broker import embedded

    home = tmp_path_factory.mktemp("tansu-home")
    saved = os.environ.get("SPARK_HOME")
    os.environ["SPARK_HOME"] = str(home)
    try:
        st = embedded.start(port=embedded.free_port())
    finally:
        if saved is None:
            os.environ.pop("SPARK_HOME", None)
        else:
            os.environ["SPARK_HOME"] = saved
    yield st.address
    os.environ["SPARK_HOME"] = str(home)
    try:
        embedded.stop()
    finally:
        if saved is None:
            os.environ.pop("SPARK_HOME", None)
        else:
            os.environ["SPARK_HOME"] = saved


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    """No test touches ~/.spark or a developer's cluster unless it asks for the broker."""
    monkeypatch.setenv("SPARK_HOME", str(tmp_path / "spark-home"))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SPARK_TOPIC_PREFIX", raising=False)
    monkeypatch.delenv("SCHEMA_REGISTRY_URL", raising=False)
    # the default learner (gbm) refits on a small window, so that the tests' short streams
    # see refits within seconds (the defaults are 40000 and 5000 labels)
    monkeypatch.setenv("SPARK_GBM_WINDOW", "2000")
    monkeypatch.setenv("SPARK_GBM_REFIT", "1000")


@pytest.fixture
def broker(kafka_bootstrap, monkeypatch):
    """The session broker, with this test's own topic prefix and all catalog topics created."""
    from spark.kafka.topics import create_topics

    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("SPARK_TOPIC_PREFIX", f"t{uuid.uuid4().hex[:10]}.")
    if EMBEDDED:  # reached through KAFKA_BOOTSTRAP_SERVERS, but it is Tansu
        monkeypatch.setenv("SPARK_EMBEDDED_BROKER", "1")
    create_topics()
    return kafka_bootstrap


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    return SHARED_DATA


def require_binary(name: str) -> str:
    """Path of a tool the suite needs (promtool, prometheus): skipped where it is missing,
    a failure under CI=true, where scripts/test.sh must have installed it."""
    import shutil

    exe = shutil.which(name)
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing in CI: scripts/test.sh installs Debian's prometheus")
        pytest.skip(f"{name} not installed (apt-get install prometheus; scripts/test.sh does)")
    return exe


def wait_for(predicate, timeout: float = 90.0, what: str = "condition", interval: float = 0.25):
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")


def spark_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "spark.cli", *args]


class WorkerProcess:
    """A real ``spark worker`` process with the test's environment."""

    def __init__(self, web_port: int, log: Path) -> None:
        self.web_port = web_port
        self.log = log
        self._log_fh = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            spark_cmd("worker", "--web-port", str(web_port), "--loglevel", "info"),
            stdout=self._log_fh,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )

    def metrics_text(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=2) as r:
            return r.read().decode()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                self.metrics_text()
                return
            except OSError:
                time.sleep(0.2)
        raise AssertionError(f"worker not ready: {self.log.read_text()[-2000:]}")

    def metric(self, name: str, **labels: str) -> float:
        from prometheus_client.parser import text_string_to_metric_families

        total = 0.0
        for family in text_string_to_metric_families(self.metrics_text()):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def kill(self) -> None:
        """SIGKILL, as in a crash: no last commit, no flush, no goodbye."""
        self.proc.kill()
        self.proc.wait(10)
        self._log_fh.close()

    def stop(self) -> int:
        self.proc.terminate()
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait(10)
        self._log_fh.close()
        return code


@pytest.fixture
def worker(broker, tmp_path, request, monkeypatch):
    """A worker; ``@pytest.mark.worker_env(NAME="value", ...)`` sets its environment."""
    from spark.broker.embedded import free_port

    marker = request.node.get_closest_marker("worker_env")
    for name, value in (marker.kwargs if marker else {}).items():
        monkeypatch.setenv(name, value)

    proc = WorkerProcess(free_port(), tmp_path / "worker.log")
    proc.wait_ready()
    yield proc
    proc.stop()


class RegistryProcess:
    def __init__(self, tmp_path, name: str = "registry") -> None:
        from spark.broker.embedded import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp_path / f"{name}.log"
        self._fh = open(self.log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            spark_cmd("schemas", "serve", "--port", str(self.port)),
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            env=dict(os.environ),
        )

        def answers():
            assert self.proc.poll() is None, self.log.read_text()
            try:
                urllib.request.urlopen(f"{self.url}/subjects", timeout=1)
                return True
            except OSError:
                return False

        wait_for(answers, 60, "the schema registry")
        from confluent_kafka.schema_registry import SchemaRegistryClient

        self.client = SchemaRegistryClient({"url": self.url})

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(20)
        self._fh.close()


@pytest.fixture
def registry(broker, tmp_path):
    """A real `spark schemas serve` process on the test's topics."""
    server = RegistryProcess(tmp_path)
    yield server
    server.stop()
