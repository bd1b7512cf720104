"""Foreground `spark up` and `spark consume --follow` as processes, stopped the way users do."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from spark.broker.embedded import pid_alive, port_open
from spark.ticks import Tick, TickProducer
from tests.conftest import spark_cmd, wait_for

pytestmark = pytest.mark.broker


def test_foreground_up_stops_worker_and_its_broker_on_ctrl_c(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["SPARK_HOME"] = str(tmp_path / "home")
    from spark.broker.embedded import free_port

    web_port = free_port()
    proc = subprocess.Popen(
        spark_cmd("up", "--port", str(free_port()), "--web-port", str(web_port)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    state = tmp_path / "home" / "broker.json"
    try:
        wait_for(state.exists, 30, "the broker record")
        broker_pid = json.loads(state.read_text())["pid"]
        # the worker is up (its web server answers) before the user presses Ctrl-C; a fixed
        # 5 s wait failed once, on a loaded machine, before Faust had its signal handlers
        wait_for(lambda: port_open("127.0.0.1", web_port), 60, "the worker's web port")
        time.sleep(1.0)  # and has joined its group
        assert proc.poll() is None
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    assert "embedded broker stopped" in out
    assert not state.exists()
    assert not pid_alive(broker_pid)


def test_consume_follow_prints_new_messages_until_limit(broker):
    proc = subprocess.Popen(
        spark_cmd("consume", "ticks", "--follow", "--limit", "3", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ),
    )
    try:
        time.sleep(2.0)  # consumer assigned at the end of the topic
        with TickProducer() as feed:
            for i in range(3):
                feed.send(Tick("EURUSD", 1_398_920_401_787_000 + i, bid=1.1, ask=1.2))
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [r["value"]["ts"] for r in lines] == [1_398_920_401_787_000 + i for i in range(3)]


def test_a_broker_that_lost_its_port_is_not_taken_for_the_one_that_holds_it(tmp_path):
    """`spark broker start` checks the port is free, then Tansu binds it; another process
    can take it in between. The start then sees the port answer although its own broker
    has exited; it must tell the two apart (and start again on a free port)."""
    import socket

    from spark.broker.embedded import _spawn, _terminate, _wait_listening, free_port, listens

    log = tmp_path / "broker.log"
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        lost = _spawn(f"127.0.0.1:{taken}", "memory://tansu/", log)
        try:
            assert _wait_listening(lost, taken, 15, log) is False
            assert lost.poll() is not None
        finally:
            _terminate(lost.pid)
    port = free_port()
    own = _spawn(f"127.0.0.1:{port}", "memory://tansu/", log)
    try:
        assert _wait_listening(own, port, 15, log) is True
        assert listens(own.pid, port) and not listens(own.pid, taken)
    finally:
        _terminate(own.pid)
