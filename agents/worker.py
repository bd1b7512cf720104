"""Run a worker in this process (``spark worker``) or detached (``spark up --detach``)."""

from __future__ import annotations

import logging
import time
import urllib.request

from spark.broker.embedded import pid_alive
from spark.config import spark_home, write_state
from spark.detached import port_or_free, spawn, status, stop
from spark.errors import SparkError

DEFAULT_WEB_PORT = 6066


def pick_web_port(port: int | None) -> int:
    return port_or_free(port or DEFAULT_WEB_PORT)


def worker_settings():
    """The worker's settings, read once from the environment and checked, the gate rule and
    its profile file included: a bad value fails here, before any broker work."""
    from spark.drift.stage import DriftStage
    from spark.settings import Settings

    settings = Settings.from_env()
    DriftStage(settings.drift)
    return settings


def run_foreground(
    agents: tuple[str, ...], web_port: int | None, loglevel: str = "warn", settings=None
) -> None:
    """Run the worker until Ctrl-C or SIGTERM; Faust stops agents and commits cleanly."""
    import faust

    from spark.agents.app import create_app
    from spark.kafka.topics import create_topics
    from spark.pipeline.learners import share_cores

    share_cores()  # the tick loop and the refit threads share the machine's cores

    # Faust would create its own internal topics, but on the embedded broker its
    # CreateTopics calls get 4 partitions whatever they ask (docs/broker.md), so
    # the catalog creates them all first.
    settings = settings or worker_settings()  # read once, passed down
    create_topics()
    port = pick_web_port(web_port)
    app = create_app(agents, web_port=port, settings=settings)
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()


def start_detached(agents: tuple[str, ...], web_port: int | None = None) -> dict:
    """Start ``spark worker`` as a background process; record pid, port and log."""
    current = worker_status()
    if current and current["running"]:
        return current
    port = pick_web_port(web_port)
    log_path = spark_home() / "worker.log"
    args = ["worker", "--web-port", str(port)]
    for agent in agents:
        args += ["--agent", agent]
    proc = spawn(args, log_path)
    record = {"pid": proc.pid, "web_port": port, "log": str(log_path), "agents": list(agents)}
    write_state("worker", record)
    return {**record, "running": True}


def wait_ready(record: dict, timeout: float = 60.0) -> None:
    """Block until the worker serves /metrics (its agents are started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(record["pid"]):
            raise SparkError(f"the worker exited at start; see its log: {record['log']}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{record['web_port']}/metrics", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise SparkError(f"the worker did not come up in {timeout:.0f}s; see {record['log']}")


def worker_status() -> dict | None:
    return status("worker")


def stop_detached() -> bool:
    return stop("worker", grace=15.0)
