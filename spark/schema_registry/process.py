"""Run the Schema Registry detached (``spark up``) and find it again (``status``, ``down``)."""

from __future__ import annotations

import time
import urllib.request

from spark.config import clear_state, spark_home, write_state
from spark.detached import port_or_free, spawn, status, stop
from spark.errors import SparkError
from spark.schema_registry.server import DEFAULT_PORT

STATE = "schema_registry"


def registry_status() -> dict | None:
    """The registry `spark up` started: pid, port, url, log, running; None if none."""
    return status(STATE)


def served_url() -> str | None:
    """URL of the running registry `spark up` started, if any."""
    record = registry_status()
    return record["url"] if record and record["running"] else None


def start_detached(port: int | None = None, timeout: float = 60.0) -> dict:
    """Start ``spark schemas serve`` in the background, wait until it answers."""
    current = registry_status()
    if current and current["running"]:
        return current
    port = port_or_free(port or DEFAULT_PORT)
    log_path = spark_home() / "schema-registry.log"
    proc = spawn(["schemas", "serve", "--port", str(port)], log_path)
    url = f"http://127.0.0.1:{port}"
    record = {"pid": proc.pid, "port": port, "url": url, "log": str(log_path)}
    write_state(STATE, record)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            clear_state(STATE)
            raise SparkError(f"the schema registry exited at start; see its log: {log_path}")
        try:
            urllib.request.urlopen(f"{url}/subjects", timeout=1)
            return {**record, "running": True}
        except OSError:
            time.sleep(0.2)
    raise SparkError(f"the schema registry did not answer in {timeout:.0f}s; see {log_path}")


def stop_detached() -> bool:
    return stop(STATE, grace=10.0)
