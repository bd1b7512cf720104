"""The README's main job, as a new user runs it: `spark demo` with nothing configured."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from spark.broker.embedded import pid_alive
from spark.serde.registry import EmbeddedRegistry
from spark.topics import catalog
from tests.conftest import spark_cmd

pytestmark = pytest.mark.broker


def test_demo_runs_on_the_embedded_broker_and_accounts_for_every_row(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    env["SPARK_HOME"] = str(tmp_path / "home")
    # the band policy, so paper trading has signals to account for (the cost-aware default
    # makes none on these 20,000 rows: docs/policy.md)
    env["SPARK_MIN_EDGE"] = "0"
    proc = subprocess.run(
        spark_cmd("demo", "--json"),
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        cwd=tmp_path,
    )  # not the checkout: bundled data only
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    # the default: the first 20,000 rows of the bundled slice in time order, i.e. the
    # 10,000 IBM rows of 2013 (the last one flagged suspicious) then 10,000 EURUSD rows
    assert summary["rows"] == 20_000
    assert summary["produced"] + summary["replay_dead_lettered"] == summary["rows"]
    assert summary["replay_reasons"]["suspicious"] == 1
    assert summary["third_party_bad"] == 3
    assert summary["worker_consumed"] == summary["produced"] + 3
    assert summary["worker_accepted"] == summary["produced"]
    assert summary["worker_reasons"] == {"bad_magic_byte": 1, "crossed_book": 1, "key_mismatch": 1}
    assert summary["features"] == summary["predictions"] == summary["worker_accepted"]
    assert summary["signals"] > 0 and summary["labels"] > 0
    assert 0 < summary["rolling_auc"] < 1
    assert {"drift_alerts", "signals_suppressed", "gates_not_open"} <= set(summary)
    # every signal reaches the executor in the same pipeline: decided (an order, a rejection,
    # no order: target already held), or still waiting for a quote of its symbol 20 ms (the
    # fill latency) after it, at the end of the data
    assert summary["executor_signals"] + summary["signals_waiting"] == summary["signals"]
    assert summary["signals_waiting"] <= 10  # only signals at a symbol's last quotes wait
    assert summary["orders"] == summary["fills"] > 0
    decided = summary["orders"] + summary["orders_rejected"] + summary["signals_without_order"]
    assert decided == summary["executor_signals"]  # each decided signal is one of these
    assert summary["policy"] == {"band": 0.1, "min_edge": 0.0, "min_hold_s": 1.0}
    assert "band policy: a signal at every crossing" in " ".join(proc.stdout.split())
    assert "Paper trading" in proc.stdout
    assert "every row accounted for" in proc.stdout
    # it stopped what it started
    assert not (tmp_path / "home" / "broker.json").exists()
    assert not (tmp_path / "home" / "worker.json").exists()


def test_up_detach_status_down_on_an_external_cluster(broker, tmp_path):
    env = dict(os.environ)
    up = subprocess.run(
        spark_cmd("up", "--detach", "--web-port", "6099"),
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert up.returncode == 0, up.stderr
    assert f"using Kafka at {broker}" in up.stdout
    record = json.loads((tmp_path / "spark-home" / "worker.json").read_text())
    try:
        status = subprocess.run(
            spark_cmd("status", "--json"), capture_output=True, text=True, env=env, timeout=60
        )
        st = json.loads(status.stdout)
        assert st["broker"] == {"kind": "external", "address": broker}
        assert st["worker"]["running"] and st["worker"]["pid"] == record["pid"]
        assert "spark_ticks_accepted_total" in st["worker"]["metrics"]
        # the Schema Registry API is served, and its URL is where a stock client finds it
        url = st["schema_registry_url"]
        assert url == st["schema_registry"]["url"] and st["schema_registry"]["running"]
        assert f"schema registry at {url}" in up.stdout
        ticks = catalog()["ticks"].name
        latest = SchemaRegistryClient({"url": url}).get_latest_version(f"{ticks}-value")
        assert latest.schema_id == EmbeddedRegistry().ids()["Tick"]
        plain = subprocess.run(
            spark_cmd("status"), capture_output=True, text=True, env=env, timeout=60
        )
        assert f"registry {url}" in plain.stdout
    finally:
        down = subprocess.run(
            spark_cmd("down"), capture_output=True, text=True, env=env, timeout=60
        )
    assert "worker stopped" in down.stdout and "no embedded broker" in down.stdout
    assert "schema registry stopped" in down.stdout
    assert not pid_alive(record["pid"])
    assert not pid_alive(st["schema_registry"]["pid"])
