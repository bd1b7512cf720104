"""Background processes `spark up` starts (the worker, the schema registry): started in a
session of their own with their output in a log, found again through a state record in
SPARK_HOME, stopped with SIGTERM then SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from spark.broker.embedded import _terminate, free_port, pid_alive, port_open
from spark.config import clear_state, read_state


def port_or_free(port: int) -> int:
    """``port`` if nothing listens on it, else a free one."""
    return free_port() if port_open("127.0.0.1", port) else port


def spawn(args: list[str], log_path: Path) -> subprocess.Popen:
    """``python -m spark.cli ARGS`` in the background, output appended to ``log_path``."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "spark.cli", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env=dict(os.environ),
        )


def status(name: str) -> dict | None:
    """The state record ``name`` with ``running``; None if none was left."""
    record = read_state(name)
    if not record:
        return None
    return {**record, "running": pid_alive(record["pid"])}


def stop(name: str, grace: float) -> bool:
    """Stop the process of state record ``name``; whether it was running."""
    record = read_state(name)
    if not record:
        return False
    alive = pid_alive(record["pid"])
    if alive:
        _terminate(record["pid"], grace=grace)
    clear_state(name)
    return alive
