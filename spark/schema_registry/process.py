"""Run the Schema Registry detached (``spark up``) and find it again (``status``, ``down``)."""

from __future__ import annotations

import time
import urllib.request

from spark.broker.embedded import port_open
from spark.config import clear_state, spark_home, write_state
from spark.detached import port_or_free, spawn, status, stop
from spark.errors import SparkError
from spark.schema_registry.server import DEFAULT_PORT, PID_HEADER

STATE = "schema_registry"


def registry_status() -> dict | None:
    """The registry `spark up` started: pid, port, url, log, running; None if none."""
    return status(STATE)


def served_url() -> str | None:
    """URL of the running registry `spark up` started, if any."""
    record = registry_status()
    return record["url"] if record and record["running"] else None


def start_detached(port: int | None = None, timeout: float = 60.0) -> dict:
    """Start ``spark schemas serve`` in the background, wait until it answers.

    The registry catches up with its topic before it binds, so another one started at the
    same moment (a second ``spark up``) can take the port in between; then this one exits
    and is started again on a free port. An answer counts only if it comes from this
    process (its pid header).
    """
    current = registry_status()
    if current and current["running"]:
        return current
    port = port_or_free(port or DEFAULT_PORT)
    log_path = spark_home() / "schema-registry.log"
    deadline = time.monotonic() + timeout
    for _attempt in range(3):
        proc = spawn(["schemas", "serve", "--port", str(port)], log_path)
        url = f"http://127.0.0.1:{port}"
        record = {"pid": proc.pid, "port": port, "url": url, "log": str(log_path)}
        write_state(STATE, record)
        while time.monotonic() < deadline and proc.poll() is None:
            if _served_by(url) == proc.pid:
                return {**record, "running": True}
            time.sleep(0.2)
        if proc.poll() is None:
            raise SparkError(
                f"the schema registry did not answer in {timeout:.0f}s; see {log_path}"
            )
        clear_state(STATE)
        if not port_open("127.0.0.1", port):  # it did not lose its port to another: it failed
            break
        port = port_or_free(port)
    raise SparkError(f"the schema registry exited at start; see its log: {log_path}")


def _served_by(url: str) -> int | None:
    """Pid of the Spark registry answering at ``url``; None if none does."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=1) as answer:
            pid = answer.headers.get(PID_HEADER)
    except OSError:
        return None
    return int(pid) if pid and pid.isdigit() else None


def stop_detached() -> bool:
    return stop(STATE, grace=10.0)
