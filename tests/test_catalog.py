import re
from pathlib import Path

from spark.schemas import schema_names
from spark.topics import catalog

ROOT = Path(__file__).resolve().parent.parent


def test_every_topic_has_a_valid_entry():
    cat = catalog()
    names = [t.name for t in cat.values()]
    assert len(names) == len(set(names)), "topic names must be unique"
    for spec in cat.values():
        assert spec.partitions >= 1
        assert spec.cleanup in ("delete", "compact")
        assert spec.doc
        if spec.cleanup == "delete":
            assert spec.retention_hours, f"{spec.id} needs a retention"
        assert spec.is_raw or spec.is_json or spec.value in schema_names(), spec.id


def test_input_topics_have_dead_letter_topics_of_raw_bytes():
    cat = catalog()
    for topic_id in (  # every topic Spark reads (outputs have no dead letters: Spark wrote them)
        "ticks",
        "gate_commands",
        "risk_commands",
        "backtest_requests",
        "optimizer_requests",
        "export_requests",
    ):
        dlq = cat[cat[topic_id].dlq]
        assert dlq.is_raw and dlq.name.endswith(".dlq")


def test_catalog_covers_the_platform():
    ids = set(catalog())
    assert {
        "ticks",
        "features",
        "predictions",
        "signals",
        "drift_alerts",
        "gate_state",
        "orders",
        "fills",
        "positions",
        "order_rejections",
        "model_versions",
        "backtest_requests",
        "backtest_results",
        "optimizer_requests",
        "optimizer_results",
        "export_requests",
        "export_results",
    } <= ids


def test_compacted_topics_hold_latest_state():
    cat = catalog()
    compacted = {t.id for t in cat.values() if t.cleanup == "compact"}
    assert compacted == {
        "gate_state",
        "positions",
        "model_versions",
        "pipeline_state",
        "executor_state",
    }
    assert cat["pipeline_state"].partitions == cat["ticks"].partitions  # co-partitioned state
    assert cat["gate_state"].kafka_config() == {"cleanup.policy": "compact"}
    assert cat["ticks"].kafka_config() == {"cleanup.policy": "delete", "retention.ms": "604800000"}


def test_prefix_applies_to_every_name(monkeypatch):
    monkeypatch.setenv("SPARK_TOPIC_PREFIX", "acme.")
    assert all(t.name.startswith("acme.") for t in catalog().values())
    assert catalog().resolve("market.ticks").id == "ticks"
    assert catalog().resolve("acme.market.ticks").id == "ticks"


def test_no_code_spells_a_topic_name():
    """Only topics/catalog.toml names topics; code looks them up by id."""
    names = {t.name for t in catalog().values()}
    pattern = re.compile(r"[\"']({})[\"']".format("|".join(re.escape(n) for n in names)))
    offenders = []
    for folder in ("spark", "agents", "bench"):
        for path in (ROOT / folder).rglob("*.py"):
            for lineno, line in enumerate(path.read_text().splitlines(), 1):
                if pattern.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
