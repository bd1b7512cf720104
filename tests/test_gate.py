import pytest

from spark.drift.gate import CLOSED, OPEN, PROBATION, Gate
from spark.serde.avro import AvroSerde
from spark.serde.registry import EmbeddedRegistry


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


def test_concept_drift_per_model_version_only_the_champion_gates():
    from spark.drift.keeper import GateKeeper

    # no data drift in this test; concept drift may close the gate (SPARK_GATE_CONCEPT=on)
    keeper = GateKeeper(window=10**6, rule="spread_bp", concept_gates=True)
    good, bad = [(0.9, 1)], [(0.9, 0)]  # (prob_up, label): error 0.1, then 0.9
    alerts = []
    for t in range(3000):  # the challenger's errors jump at t = 1500; the champion's do not
        shadow = good if t < 1500 else bad
        out = keeper.observe("X", t, {"spread_bp": 1.0}, good, "champ", 3, [("chal", 1, shadow)])
        alerts += [r for kind, r in out if kind == "alert"]
    assert alerts and {(a["model_id"], a["severity"]) for a in alerts} == {("chal", "info")}
    assert keeper.allows("X")
    for t in range(3000, 4500):  # now the champion's errors jump: its alert closes the gate
        out = keeper.observe("X", t, {"spread_bp": 1.0}, bad, "champ", 3, [])
        alerts += [r for kind, r in out if kind == "alert"]
    assert ("champ", "warning") in {(a["model_id"], a["severity"]) for a in alerts}
    assert not keeper.allows("X")


def test_concept_drift_only_reports_by_default():
    from spark.drift.keeper import GateKeeper, keeper_settings

    assert keeper_settings()["concept_gates"] is False
    keeper = GateKeeper(window=10**6, rule="spread_bp")
    alerts = []
    for t in range(3000):
        resolved = [(0.9, 1)] if t < 1500 else [(0.9, 0)]
        out = keeper.observe("X", t, {"spread_bp": 1.0}, resolved, "champ", 3)
        alerts += [r for kind, r in out if kind == "alert"]
    assert alerts and {(a["detector"], a["severity"]) for a in alerts} == {("adwin", "info")}
    assert keeper.allows("X")
