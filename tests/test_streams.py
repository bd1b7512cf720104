"""Streams end to end: ticks -> features on a real broker, and feature state across restarts."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from spark.broker.embedded import free_port
from spark.consume import messages
from spark.features import FEATURE_SET
from spark.ticks import TickProducer
from spark.ticks.producer import default_serde
from spark.ticks.readers import read
from spark.topics import catalog
from tests.conftest import WorkerProcess, wait_for

pytestmark = pytest.mark.broker
BUNDLED = Path(__file__).resolve().parent.parent / "spark/data"


def ticks_of(path: Path, n: int):
    return list(itertools.islice((r.tick for r in read(path, "lean-quote") if r.tick), n))


def feature_vectors() -> list[dict]:
    serde = default_serde()
    return [
        serde.decode(m.value(), "FeatureVector")
        for m in messages(catalog()["features"], from_beginning=True)
    ]


def produce(ticks) -> None:
    with TickProducer(source="test") as feed:
        for tick in ticks:
            assert feed.send(tick)


def test_after_a_crash_features_and_models_continue_exactly(broker, tmp_path, monkeypatch):
    from spark.agents import app_id
    from spark.kafka.topics import committed_offsets
    from spark.ml.evaluate import Progressive
    from spark.ml.models import make_model

    # logreg: its snapshot is the whole model (gbm's refit window is not in its snapshot)
    monkeypatch.setenv("SPARK_MODEL", "logreg")
    monkeypatch.setenv("SPARK_SNAPSHOT_S", "8")
    fx = ticks_of(BUNDLED / "fxcm/eurusd/20140501_quote.zip", 1500)
    equity = ticks_of(BUNDLED / "equity/ibm/20131007_quote.zip", 500)  # one-sided quotes
    # both symbols go to one partition (checked below), so the worker sees them in this order
    parts = [fx[:600] + equity[:200], fx[600:900] + equity[200:300], fx[900:] + equity[300:]]
    ticks = [t for part in parts for t in part]

    def predictions() -> list[dict]:
        serde = default_serde()
        spec = catalog()["predictions"]
        return [serde.decode(m.value(), "Prediction") for m in messages(spec, from_beginning=True)]

    w1 = WorkerProcess(free_port(), tmp_path / "w1.log")
    w1.wait_ready()
    produce(parts[0])
    wait_for(
        lambda: w1.metric("spark_events_out_total", topic="predictions") >= len(parts[0])
        and w1.metric("spark_model_snapshots_total", outcome="published") >= 1,
        what="predictions of the first part and a model snapshot",
    )
    produce(parts[1])  # processed after the snapshot: the restarted worker must replay these
    wait_for(
        lambda: w1.metric("spark_events_out_total", topic="predictions") >= len(ticks) - 800,
        what="predictions of the second part",
    )
    features = catalog()["features"]
    wait_for(  # committed, so the restarted worker's stream starts after them
        lambda: sum(committed_offsets(app_id(), {features.name: features.partitions}).values())
        >= len(ticks) - 800,
        what="the worker's commit of the second part",
    )
    w1.kill()
    produce(parts[2])
    w2 = WorkerProcess(free_port(), tmp_path / "w2.log")
    try:
        w2.wait_ready()
        seen = {(t.symbol, t.ts) for t in ticks}
        wait_for(
            lambda: {(p["symbol"], p["ts"]) for p in predictions()} >= seen,
            what="a prediction for every tick",
        )
        # re-delivered ticks were already in the saved state: no feature vector twice
        assert w2.metric("spark_events_out_total", topic="features") == len(parts[2])
    finally:
        w2.stop()
    log = (tmp_path / "w2.log").read_text()
    assert "restored logreg v1 (champion) from the registry" in log
    assert "models caught up on" in log  # the vectors after the snapshot were replayed

    vectors = list(messages(catalog()["features"], from_beginning=True))
    assert len({m.partition() for m in vectors}) == 1
    got = [default_serde().decode(m.value(), "FeatureVector") for m in vectors]
    assert len(got) == len(ticks)  # one vector per accepted tick, none twice
    assert {v["feature_set"] for v in got} == {FEATURE_SET}
    # what an uninterrupted run computes, tick by tick
    offline = Progressive(make_model("logreg"), horizon_s=1.0)
    expected = [(t.symbol, t.ts, *offline.step(t)) for t in ticks]
    for symbol in ("EURUSD", "IBM"):
        mine = [(v["ts"], v["values"]) for v in got if v["symbol"] == symbol]
        theirs = [(ts, x) for s, ts, x, _ in expected if s == symbol]
        assert mine == theirs, f"{symbol} features differ after the crash"
    # every prediction (re-sent ones included) is the uninterrupted run's
    live = {(p["symbol"], p["ts"], p["prob_up"]) for p in predictions()}
    assert live == {(s, ts, p) for s, ts, _, p in expected}


def test_ticks_to_features_to_predictions_to_signals_match_the_offline_run(worker):
    from spark.drift.keeper import GateKeeper, keeper_settings
    from spark.ml.evaluate import Progressive
    from spark.ml.models import DEFAULT_MODEL, make_model
    from spark.ml.signals import SignalPolicy

    ticks = ticks_of(BUNDLED / "fxcm/eurusd/20140501_quote.zip", 2000)
    produce(ticks)
    wait_for(
        lambda: worker.metric("spark_events_out_total", topic="predictions") >= len(ticks),
        what="a prediction per tick",
    )
    time.sleep(1.0)
    serde = default_serde()
    features = feature_vectors()
    predictions = [
        serde.decode(m.value(), "Prediction")
        for m in messages(catalog()["predictions"], from_beginning=True)
    ]
    signals = [
        serde.decode(m.value(), "Signal")
        for m in messages(catalog()["signals"], from_beginning=True)
    ]
    assert len(features) == len(predictions) == len(ticks)  # counts match stage to stage

    offline = Progressive(make_model(DEFAULT_MODEL), horizon_s=1.0)
    expected = [offline.step(t)[1] for t in ticks]
    assert [p["prob_up"] for p in predictions] == expected  # the same code path, live and offline
    if DEFAULT_MODEL == "gbm":  # and it covered predictions of refit trees (conftest: every 1,000)
        assert offline.learner.model.estimator.fits >= 1
    assert [p["ts"] for p in predictions] == [t.ts for t in ticks]
    assert {(p["model_id"], p["role"], p["horizon_ms"]) for p in predictions} == {
        (DEFAULT_MODEL, "champion", 1000)
    }

    # signals: the same policy behind the same drift gate, replayed offline
    policy, keeper = SignalPolicy(0.1), GateKeeper(**keeper_settings())
    replay_run = Progressive(make_model(DEFAULT_MODEL), horizon_s=1.0)
    expected_signals, suppressed = [], 0
    for t in ticks:
        x, p = replay_run.step(t)
        keeper.observe(t.symbol, t.ts, x, replay_run.learner.last_resolved, DEFAULT_MODEL, 1)
        allowed = keeper.allows(t.symbol)
        decision = policy.decide(t.symbol, p, commit=allowed)
        if decision and allowed:
            expected_signals.append((t.ts, decision[0]))
        suppressed += bool(decision and not allowed)
    assert [(s["ts"], s["side"]) for s in signals] == expected_signals
    assert len(signals) > 0
    assert worker.metric("spark_signals_suppressed_total") == suppressed
    # live quality metrics: labels learned so far and a rolling AUC in [0, 1]
    labels = worker.metric("spark_model_labels_total", model_id=DEFAULT_MODEL)
    assert labels == len(offline.quality) > 0
    assert 0.0 < worker.metric("spark_model_auc", model_id=DEFAULT_MODEL) < 1.0
