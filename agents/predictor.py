"""The predictor agent: features in; a prediction per vector and signals on change of intent out.

Test-then-train with delayed labels (``spark.ml.evaluate.Learner``, the same
object ``spark model eval`` runs): each vector is predicted before its label
is known, and learned from once the first tick after its horizon arrives.
Signals follow ``spark.ml.signals.SignalPolicy``; the drift gate (issue 4)
will sit between ``policy.decide`` and the send.

Not yet: the model is in memory only (a restarted worker starts learning
again) and there is one model per worker, learning from the symbols of its
partitions; the registry, snapshots and shadow models are issue 3's next step.
"""

from __future__ import annotations

import time

import faust

from spark.config import model_settings
from spark.kafka.dlq import dlq_headers
from spark.metrics import (
    BATCH_SECONDS,
    DEAD_LETTERS,
    EVENTS_IN,
    EVENTS_OUT,
    MODEL_AUC,
    MODEL_LABELS,
    MODEL_PRECISION_AT_20,
)
from spark.ml.evaluate import Learner
from spark.ml.models import make_model
from spark.ml.signals import SignalPolicy
from spark.ticks.producer import default_serde
from spark.topics import catalog

BATCH = 1000
WITHIN_S = 0.2
MODEL_VERSION = 1


def register(app: faust.App) -> None:
    topics = catalog()
    features, predictions, signals = topics["features"], topics["predictions"], topics["signals"]
    dlq = topics[features.dlq]
    source = app.topic(features.name, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(dlq.name, key_serializer="raw", value_serializer="raw")
    predictions_out = app.topic(predictions.name, key_serializer="raw", value_serializer="raw")
    signals_out = app.topic(signals.name, key_serializer="raw", value_serializer="raw")
    settings = model_settings()
    learner = Learner(make_model(settings["model"]), settings["horizon_s"])
    policy = SignalPolicy(settings["band"])
    horizon_ms = round(settings["horizon_s"] * 1000)
    serde = default_serde()
    in_counter = EVENTS_IN.labels(features.id)
    predictions_counter = EVENTS_OUT.labels(predictions.id)
    signals_counter = EVENTS_OUT.labels(signals.id)
    batch_timer = BATCH_SECONDS.labels("predictor")
    version = (learner.model.name, str(MODEL_VERSION))
    labels_counter = MODEL_LABELS.labels(*version)
    auc_gauge = MODEL_AUC.labels(*version)
    p20_gauge = MODEL_PRECISION_AT_20.labels(*version)
    counted = {"labels": 0}

    @app.agent(source, name="predictor")
    async def predictor(stream):
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            started = time.perf_counter()
            for event in events:
                message = event.message
                try:
                    vector = serde.decode(message.value, features.value)
                except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                    reason = getattr(exc, "reason", "unexpected_error")
                    origin = f"{message.topic}/{message.partition}@{message.offset}"
                    dead_letters.send_soon(
                        key=message.key,
                        value=message.value,
                        headers=dlq_headers(reason, str(exc), features.name, "predictor", origin),
                    )
                    DEAD_LETTERS.labels(features.id, "predictor", reason).inc()
                    continue
                symbol, ts = vector["symbol"], vector["ts"]
                prob_up = learner.step(symbol, ts, vector["mid"], vector["values"])
                now_us = int(time.time() * 1e6)
                prediction = {
                    "symbol": symbol,
                    "ts": ts,
                    "prob_up": prob_up,
                    "model_id": learner.model.name,
                    "model_version": MODEL_VERSION,
                    "role": "champion",
                    "horizon_ms": horizon_ms,
                    "predicted_at": now_us,
                }
                predictions_out.send_soon(
                    key=message.key,
                    value=serde.encode(predictions.name, predictions.value, prediction),
                )
                predictions_counter.inc()
                decision = policy.decide(symbol, prob_up)
                if decision is None:
                    continue
                side, strength, reason = decision
                signal = {
                    "symbol": symbol,
                    "ts": ts,
                    "side": side,
                    "strength": strength,
                    "model_id": learner.model.name,
                    "model_version": MODEL_VERSION,
                    "reason": reason,
                    "prob_up": prob_up,
                    "emitted_at": now_us,
                }
                signals_out.send_soon(
                    key=message.key, value=serde.encode(signals.name, signals.value, signal)
                )
                signals_counter.inc()
            in_counter.inc(len(events))
            recent = learner.recent
            labels_counter.inc(recent.labels - counted["labels"])
            counted["labels"] = recent.labels
            auc, p20 = recent.auc(), recent.precision_at_20()
            if auc == auc:  # nan until both classes were seen
                auc_gauge.set(auc)
            if p20 == p20:
                p20_gauge.set(p20)
            batch_timer.observe(time.perf_counter() - started)
