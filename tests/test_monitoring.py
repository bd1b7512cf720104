"""Alert rules: valid, unit-tested by the real promtool, documented, on metrics that exist."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "monitoring/rules/spark.yml"


def promtool() -> str:
    return require_binary("promtool")


def test_rules_are_valid():
    proc = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_rule_unit_tests_pass():
    proc = subprocess.run(
        [promtool(), "test", "rules", "spark_test.yml"],
        cwd=ROOT / "monitoring/tests",
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def alerts() -> list[dict]:
    import yaml

    return [
        rule for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    ]


def test_every_alert_is_documented_and_unit_tested():
    runbook = (ROOT / "docs/runbook.md").read_text()
    tests = (ROOT / "monitoring/tests/spark_test.yml").read_text()
    for rule in alerts():
        name = rule["alert"]
        notes = rule["annotations"]
        assert notes["summary"] and notes["description"], name
        assert notes["runbook"] == f"docs/runbook.md#{name.lower()}", name
        assert f"\n## {name}\n" in runbook, f"{name} has no runbook section"
        assert f"alertname: {name}" in tests, f"{name} has no promtool test"


def test_rules_use_only_metrics_the_code_exports():
    """A renamed metric must break this test, not silently blind an alert."""
    from prometheus_client import REGISTRY

    import spark.metrics  # noqa: F401 - registers the metrics

    exported = {"up"}
    for family in REGISTRY.collect():
        exported.add(family.name)
        for suffix in ("_total", "_bucket", "_count", "_sum"):
            exported.add(family.name + suffix)
    used = set()
    for rule in alerts():
        used |= set(re.findall(r"\b(spark_[a-z0-9_]+|up)\b(?=\s*[{\[)<>=!]|\s*$)", rule["expr"]))
    assert used, "no metric names found in the rules"
    assert used <= exported, f"rules use metrics nobody exports: {sorted(used - exported)}"
