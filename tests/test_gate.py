import numpy as np
import pytest

from spark.drift.gate import CLOSED, OPEN, PROBATION, Gate
from spark.drift.stage import DriftStage
from spark.features import FEATURE_NAMES
from spark.serde.avro import AvroSerde
from spark.serde.registry import EmbeddedRegistry
from spark.settings import DriftSettings, Settings


def feed(gate: Gate, pairs, ts: int = 0) -> list[str]:
    states = []
    for p, y in pairs:
        gate.on_label(p, y, ts)
        states.append(gate.state)
    return states


def test_drift_closes_then_probation_then_open_when_quality_recovers():
    g = Gate("EURUSD", cooldown_labels=10, probation_labels=20, min_auc=0.6)
    assert g.allows_signals
    g.on_alert("psi_spread", ts=5)
    assert (g.state, g.reason, g.since) == (CLOSED, "drift: psi_spread", 5)
    assert g.suppress() == "gate closed: drift: psi_spread" and g.suppressed == 1
    assert feed(g, [(0.5, 1)] * 9)[-1] == CLOSED
    assert feed(g, [(0.5, 1)])[-1] == PROBATION
    good = [(0.8, 1), (0.2, 0)] * 10
    assert feed(g, good)[-1] == OPEN and g.allows_signals


def test_poor_probation_keeps_the_gate_shut_and_a_new_alert_recloses():
    g = Gate("EURUSD", cooldown_labels=1, probation_labels=20, min_auc=0.6)
    g.on_alert("adwin", ts=1)
    feed(g, [(0.5, 1)])
    assert g.state == PROBATION
    bad = [(0.2, 1), (0.8, 0)] * 20  # wrong way round: AUC 0
    assert feed(g, bad)[-1] == PROBATION
    g.on_alert("psi_vol", ts=9)
    assert g.state == CLOSED and g.reason == "drift: psi_vol"


def test_operator_close_holds_until_operator_open():
    g = Gate("EURUSD", cooldown_labels=1, probation_labels=2, min_auc=0.5)
    g.operator("close", "news at 14:30", ts=3)
    assert g.state == CLOSED and g.reason == "operator: news at 14:30"
    assert feed(g, [(0.9, 1), (0.1, 0)] * 5)[-1] == CLOSED  # no automatic reopening
    g.on_alert("adwin", ts=4)
    assert g.reason == "operator: news at 14:30"
    g.operator("open", "done", ts=5)
    assert g.state == OPEN
    with pytest.raises(ValueError):
        g.operator("toggle", "?", ts=6)


def test_gate_state_fits_its_contract():
    g = Gate("EURUSD")
    g.on_alert("psi_spread", ts=1_398_920_401_787_000)
    g.suppress()
    serde = AvroSerde(EmbeddedRegistry())
    record = serde.decode(serde.encode("t", "GateState", g.to_record()), "GateState")
    assert record == g.to_record()


def concept_run(stage, errors_of, ticks: range, alerts: list, champion: int = 0) -> np.ndarray:
    """Ticks of one symbol through a DriftStage; each resolves one label whose prob_up per
    model is given by ``errors_of(t)`` (label 1 always). Returns the last tick's allowed."""
    n = len(ticks)
    x = np.zeros((n, len(FEATURE_NAMES)))
    x[:, FEATURE_NAMES.index("spread_bp")] = 1.0
    p = np.array([errors_of(t) for t in ticks])
    out, _gates, allowed = stage.step(
        symbols=["X"],
        slot=np.zeros(n, np.int64),
        ts=np.array(list(ticks), np.int64),
        x=x,
        valid=np.ones(n, bool),
        events=(np.arange(n), np.ones(n, np.int8), p),
        champion=np.full(n, champion),
        models=[("champ", 3), ("chal", 1)],
    )
    alerts += [a for _, a in out]
    return allowed


def test_concept_drift_per_model_version_only_the_champion_gates():
    # no data drift here; concept drift may close the gate (SPARK_GATE_CONCEPT=on)
    stage = DriftStage(
        DriftSettings(watch="none", rule="spread_bp", window=10**6, concept_gates=True)
    )
    stage.grow(1)
    alerts: list = []
    # the challenger's errors jump at t = 1500 (prob_up 0.9 on label 1, then 0.1); not the
    # champion's
    concept_run(stage, lambda t: (0.9, 0.9 if t < 1500 else 0.1), range(3000), alerts)
    assert alerts and {(a["model_id"], a["severity"]) for a in alerts} == {("chal", "info")}
    assert stage.gate("X").allows_signals
    allowed = concept_run(stage, lambda t: (0.1, 0.1), range(3000, 4500), alerts)
    assert ("champ", "warning") in {(a["model_id"], a["severity"]) for a in alerts}
    assert not stage.gate("X").allows_signals and not allowed[-1]


def test_concept_drift_only_reports_by_default():
    assert Settings.from_env().drift.concept_gates is False
    stage = DriftStage(DriftSettings(watch="none", rule="spread_bp", window=10**6))
    stage.grow(1)
    alerts: list = []
    concept_run(stage, lambda t: (0.9 if t < 1500 else 0.1, 0.9), range(3000), alerts)
    assert alerts and {(a["detector"], a["severity"]) for a in alerts} == {("adwin", "info")}
    assert stage.gate("X").allows_signals
