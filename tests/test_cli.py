"""CLI behaviour a user meets: help, embedded broker lifecycle, one-line errors."""

from __future__ import annotations

import json
import socket
import subprocess

import pytest
from click.testing import CliRunner

from spark.cli import cli
from tests.conftest import spark_cmd


def run(*args: str, env=None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        spark_cmd(*args), capture_output=True, text=True, env=env, timeout=timeout
    )


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") or lines[0].startswith("Error:"), lines[0]
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_help_explains_every_command():
    runner = CliRunner()
    top = runner.invoke(cli, ["--help"])
    assert top.exit_code == 0
    for command in (
        "broker",
        "topics",
        "schemas",
        "ticks",
        "consume",
        "worker",
        "up",
        "down",
        "status",
        "demo",
    ):
        assert command in top.output
        sub = runner.invoke(cli, [command, "--help"])
        assert sub.exit_code == 0 and len(sub.output) > 100, command
    replay_help = runner.invoke(cli, ["ticks", "replay", "--help"]).output
    assert "--max-rate" in replay_help and "lean-quote" in replay_help


def test_no_broker_configured_says_what_to_do():
    proc = run("topics", "list")
    assert_one_line_error(proc, "spark broker start", "KAFKA_BOOTSTRAP_SERVERS")


def test_unreachable_broker_is_one_line(monkeypatch):
    import os

    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", SPARK_CONNECT_TIMEOUT="1")
    for args in (("topics", "create"), ("status",), ("consume", "ticks")):
        proc = run(*args, env=env)
        assert_one_line_error(proc, "cannot reach Kafka at 127.0.0.1:1")


def test_replay_errors_are_one_line(tmp_path):
    import os

    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", SPARK_CONNECT_TIMEOUT="1")
    assert_one_line_error(
        run("ticks", "replay", str(tmp_path / "nope.zip"), "--format", "csv", env=env),
        "no such file",
    )
    wrong = run("ticks", "replay", "x.csv", "--format", "parquet", env=env)
    assert wrong.returncode == 2 and "parquet" in wrong.stderr and "Traceback" not in wrong.stderr
    both = run(
        "ticks", "replay", "x.csv", "--format", "csv", "--max-rate", "5", "--speed", "2", env=env
    )
    assert both.returncode == 2 and "not both" in both.stderr


def test_unknown_topic_is_one_line(kafka_bootstrap):
    import os

    env = dict(os.environ, KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap)
    assert_one_line_error(run("consume", "no.such.topic", env=env), "unknown topic", "market.ticks")


def test_debug_shows_the_traceback():
    proc = run("--debug", "topics", "list")
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_embedded_broker_lifecycle(tmp_path):
    """start -> status -> topics -> stop, with the port taken by someone else."""
    import os

    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    env = dict(os.environ, SPARK_HOME=str(tmp_path / "home"))
    try:
        started = run("broker", "start", "--port", str(busy), env=env)
        assert started.returncode == 0, started.stderr
        state = json.loads((tmp_path / "home" / "broker.json").read_text())
        assert state["address"] != f"127.0.0.1:{busy}", "took a free port instead of the busy one"
        again = run("broker", "start", env=env)
        assert state["address"] in again.stdout  # idempotent: the same broker
        assert run("broker", "status", env=env).returncode == 0
        created = run("topics", "create", env=env)
        from spark.topics import catalog

        assert created.returncode == 0 and f"{len(catalog())} created" in created.stdout
        assert "0 created" in run("topics", "create", env=env).stdout
    finally:
        stopped = run("broker", "stop", env=env)
        blocker.close()
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    status = run("broker", "status", env=env)
    assert status.returncode == 1 and "spark broker start" in status.stdout


def test_broker_start_respects_an_external_cluster(tmp_path):
    import os

    env = dict(
        os.environ, KAFKA_BOOTSTRAP_SERVERS="kafka.example:9092", SPARK_HOME=str(tmp_path / "home")
    )
    proc = run("broker", "start", env=env)
    assert proc.returncode == 0 and "starts no broker" in proc.stdout
    assert not (tmp_path / "home" / "broker.json").exists()


@pytest.mark.parametrize("storage", ["file:///tmp/x", "postgres://localhost"])
def test_unsupported_storage_is_refused(storage):
    result = CliRunner().invoke(cli, ["broker", "start", "--storage", storage])
    assert result.exit_code == 2 and "memory:// or s3://" in result.output
