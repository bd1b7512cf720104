import time

import pytest

from spark.config import bootstrap_servers, security_config
from spark.errors import SparkError
from spark.ticks.replay import Pacer


def test_security_settings_pass_through_to_librdkafka(monkeypatch):
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "spark")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "secret")
    monkeypatch.setenv("KAFKA_SSL_CA_LOCATION", "/etc/ssl/certs/ca-certificates.crt")
    assert security_config() == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "spark",
        "sasl.password": "secret",
        "ssl.ca.location": "/etc/ssl/certs/ca-certificates.crt",
    }


def test_security_settings_reach_faust(monkeypatch):
    import faust

    from spark.agents.app import _credentials

    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("KAFKA_SASL_USERNAME", "spark")
    monkeypatch.setenv("KAFKA_SASL_PASSWORD", "secret")
    creds = _credentials()
    assert isinstance(creds, faust.SASLCredentials)
    assert (creds.username, creds.password, creds.ssl_context is not None) == (
        "spark",
        "secret",
        True,
    )
    monkeypatch.delenv("KAFKA_SECURITY_PROTOCOL")
    assert _credentials() is None


def test_external_cluster_wins_over_the_embedded_record(monkeypatch):
    from spark.config import write_state

    write_state("broker", {"address": "127.0.0.1:19092", "pid": 1})
    assert bootstrap_servers() == "127.0.0.1:19092"
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092,kafka-2:9092")
    assert bootstrap_servers() == "kafka-1:9092,kafka-2:9092"


def test_pacer_speed_follows_event_time():
    pacer = Pacer(speed=10.0)
    start = time.monotonic()
    for ts in (0, 1_000_000, 2_000_000):  # 2 s of event time at 10x = 0.2 s
        pacer.wait(1_398_920_400_000_000 + ts)
    assert 0.18 <= time.monotonic() - start < 1.0


def test_pacer_max_rate():
    pacer = Pacer(max_rate=100)
    start = time.monotonic()
    for i in range(20):  # 20 rows at 100/s = 0.2 s
        pacer.wait(i)
    assert 0.18 <= time.monotonic() - start < 1.0


@pytest.mark.parametrize("kwargs", [{"max_rate": -1}, {"speed": 0}])
def test_pacer_rejects_nonsense(kwargs):
    with pytest.raises(SparkError):
        Pacer(**kwargs)


def test_kafka_debug_contexts_reach_stderr(monkeypatch, capsys):
    """SPARK_KAFKA_DEBUG turns on librdkafka's debug contexts for every Spark client and
    sends its lines to stderr (a worker's log), as read in the chaos runs."""
    import logging

    from confluent_kafka import Consumer

    from spark.kafka import clients

    monkeypatch.setenv("SPARK_KAFKA_DEBUG", "cgrp")
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")  # nothing there: no broker needed
    try:
        conf = clients.base_config()
        assert conf["debug"] == "cgrp"
        consumer = Consumer({**conf, "group.id": "spark-debug-test"})
        consumer.poll(0.5)  # librdkafka's log lines are served by poll
        consumer.close()
        err = capsys.readouterr().err
        assert "librdkafka" in err and "rdkafka#consumer" in err
    finally:
        for handler in [h for h in clients.log.handlers if getattr(h, "_spark_debug", False)]:
            clients.log.removeHandler(handler)
        clients.log.setLevel(logging.NOTSET)
    monkeypatch.delenv("SPARK_KAFKA_DEBUG")
    assert "debug" not in clients.base_config()


def test_the_tick_loops_fetch_wait_is_longer_on_the_embedded_brokers_s3_storage(
    monkeypatch, tmp_path
):
    """5 ms on memory storage; 50 ms when the embedded broker keeps its data on S3, where a
    5 ms fetch was answered empty every time under load; SPARK_FETCH_WAIT_MS decides."""
    from spark.config import write_state
    from spark.settings import Settings

    monkeypatch.setenv("SPARK_HOME", str(tmp_path))
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("SPARK_FETCH_WAIT_MS", raising=False)
    write_state("broker", {"address": "127.0.0.1:9092", "storage": "memory://tansu/"})
    assert Settings.from_env().fetch_wait_ms == 5
    write_state("broker", {"address": "127.0.0.1:9092", "storage": "s3://spark/"})
    assert Settings.from_env().fetch_wait_ms == 50
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka.example:9092")  # not the embedded one
    assert Settings.from_env().fetch_wait_ms == 5
    monkeypatch.setenv("SPARK_FETCH_WAIT_MS", "20")
    assert Settings.from_env().fetch_wait_ms == 20
