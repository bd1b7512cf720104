"""The predictor agent: features in; predictions of the champion and its shadow challengers,
and the champion's signals on change of intent, out.

Test-then-train with delayed labels (``spark.ml.evaluate.Learner``, the same
object ``spark model eval`` runs). Signals follow
``spark.ml.signals.SignalPolicy``; the drift gate (issue 4) will sit between
``policy.decide`` and the send.

Model registry: every ``SPARK_SNAPSHOT_S`` the agent publishes each model
version (config, rolling metrics, HMAC-signed snapshot) to the compacted
``model_versions`` topic; a starting worker restores the newest version of
each of its models from there, after verifying the signature. Challengers are
promoted by ``spark.ml.registry.PromotionRule``, with an event on
``model_events``.

A worker's snapshot holds, beside the model, its pending labels, rolling
scores and the features offset of the last vector it includes. A restarted
worker restores it, replays the vectors between that offset and the group's
committed offset through the models (no output: it was sent before), and
skips re-delivered vectors the snapshot already includes, so its models
continue as if it had not stopped (tested against the offline run).

Known limits: each worker has its own copy of each model, learning from the
symbols of its partitions, and they share one registry key per version (last
writer wins); a gap spanning several partitions is replayed partition by
partition in offset order, interleaved by time, which can differ from the
order the vectors were first processed in.

HTTP on the worker's web port: ``POST /ml/predict``, ``GET /ml/health``,
``GET /ml/models``.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time

import faust
from faust.web import Request, Response, View

from spark.agents import app_id
from spark.agents.dead_letters import dead_letter
from spark.config import model_settings
from spark.drift.gate import CLOSED, OPEN, PROBATION
from spark.drift.keeper import DETECTOR_NAMES, GateKeeper, keeper_settings
from spark.errors import SparkError
from spark.features import FEATURE_NAMES, TickFeatures
from spark.kafka.state import latest_records, read_ranges
from spark.kafka.topics import committed_offsets
from spark.metrics import (
    BATCH_SECONDS,
    DRIFT_ALERTS,
    EVENTS_IN,
    EVENTS_OUT,
    GATE_STATES,
    GATES_NOT_OPEN,
    LAST_BATCH,
    MODEL_AUC,
    MODEL_LABELS,
    MODEL_PRECISION_AT_20,
    PROCESSING_LATENCY,
    PROMOTIONS,
    SIGNALS_SUPPRESSED,
    SNAPSHOTS,
)
from spark.ml.evaluate import Learner
from spark.ml.models import make_model
from spark.ml.registry import PromotionRule, Slot, newest_versions, registry_key_of
from spark.ml.signals import SignalPolicy
from spark.ml.snapshots import SnapshotRejected, registry_key
from spark.ticks.model import InvalidTick, Tick, validate
from spark.ticks.producer import default_serde
from spark.topics import catalog

log = logging.getLogger("spark.agents.predictor")
BATCH = 1000
WITHIN_S = 0.2


class BadRequest(ValueError):
    """A /ml/predict body that cannot be used; the message goes back with a 400."""


def features_from_body(body: object, book_state) -> dict[str, float]:
    """The feature vector a /ml/predict body asks about.

    ``{"features": {name: number, ...}}`` with every feature of the current set, or
    ``{"tick": {"symbol": ..., "ts": µs, "bid": ..., "ask": ...}}``, whose features
    are computed from the symbol's live state (``book_state(symbol)``) without
    changing it.
    """
    if not isinstance(body, dict) or not ({"features", "tick"} & set(body)):
        raise BadRequest('send {"features": {...}} or {"tick": {...}}')
    if "features" in body:
        given = body["features"]
        if not isinstance(given, dict):
            raise BadRequest('"features" must be an object of name -> number')
        missing = [n for n in FEATURE_NAMES if n not in given]
        unknown = [n for n in given if n not in FEATURE_NAMES]
        if missing or unknown:
            raise BadRequest(f"features missing: {missing or 'none'}; unknown: {unknown or 'none'}")
        values = {}
        for name in FEATURE_NAMES:
            value = given[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise BadRequest(f"feature {name} must be a finite number, not {value!r}")
            values[name] = float(value)
        return values
    fields = body["tick"]
    if not isinstance(fields, dict):
        raise BadRequest('"tick" must be an object with symbol, ts, bid, ask, ...')
    try:
        tick = Tick.from_record(fields)
        validate(tick)
    except InvalidTick as exc:
        raise BadRequest(f"invalid tick: {exc}") from None
    except TypeError as exc:
        raise BadRequest(f"invalid tick: {exc}") from None
    saved = book_state(tick.symbol)
    state = TickFeatures.from_state(saved) if saved is not None else TickFeatures()
    return state.update(tick)


def register(app: faust.App) -> None:
    topics = catalog()
    features, predictions, signals = topics["features"], topics["predictions"], topics["signals"]
    versions, events_topic = topics["model_versions"], topics["model_events"]
    alerts_topic, gate_topic = topics["drift_alerts"], topics["gate_state"]
    commands_topic = topics["gate_commands"]
    dlq = topics[features.dlq]
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(features.name, **raw)
    dead_letters = app.topic(dlq.name, **raw)
    predictions_out = app.topic(predictions.name, **raw)
    signals_out = app.topic(signals.name, **raw)
    versions_out = app.topic(versions.name, **raw)
    events_out = app.topic(events_topic.name, **raw)
    alerts_out = app.topic(alerts_topic.name, **raw)
    gate_out = app.topic(gate_topic.name, **raw)
    commands_in = app.topic(commands_topic.name, **raw)
    commands_dlq = app.topic(topics[commands_topic.dlq].name, **raw)
    keeper = GateKeeper(**keeper_settings())
    settings = model_settings()
    key = registry_key()
    horizon_s = settings["horizon_s"]

    def learner(name: str | None = None) -> Learner:
        model = make_model() if name is None else make_model(name)
        return Learner(model, horizon_s, keep_scores=False)  # rolling scores only

    slots = [Slot(learner(settings["model"]), "champion")] + [
        Slot(learner(name), "challenger") for name in settings["challengers"]
    ]
    policy = SignalPolicy(settings["band"])
    rule = PromotionRule(settings["margin"], settings["min_labels"])
    horizon_ms = round(horizon_s * 1000)
    serde = default_serde()
    in_counter = EVENTS_IN.labels(features.id)
    predictions_counter = EVENTS_OUT.labels(predictions.id)
    signals_counter = EVENTS_OUT.labels(signals.id)
    batch_timer = BATCH_SECONDS.labels("predictor")
    last_batch = LAST_BATCH.labels("predictor")
    prediction_latency = PROCESSING_LATENCY.labels("prediction")
    signal_latency = PROCESSING_LATENCY.labels("signal")
    # every label value known up front, so dashboards show 0 rather than no data
    for detector in DETECTOR_NAMES:
        DRIFT_ALERTS.labels(detector, "warning")
    DRIFT_ALERTS.labels("psi", "info")
    DRIFT_ALERTS.labels("adwin", "info")
    for state in (CLOSED, PROBATION):
        SIGNALS_SUPPRESSED.labels(state)
    for state in (OPEN, CLOSED, PROBATION):
        GATE_STATES.labels(state).set(0)
    restored = asyncio.Event()
    clock = {"last_snapshot": time.monotonic()}
    positions: dict[int, int] = {}  # features partition -> offset of the last vector stepped on
    counted: dict[str, float] = {}

    def update_gate_gauges() -> None:
        GATES_NOT_OPEN.set(sum(not g.allows_signals for g in keeper.gates.values()))
        for state in (OPEN, CLOSED, PROBATION):
            GATE_STATES.labels(state).set(sum(g.state == state for g in keeper.gates.values()))

    def champion() -> Slot:
        """The champion; before the registry restore finishes, the configured one."""
        return next((s for s in slots if s.role == "champion"), slots[0])

    @app.on_partitions_assigned.connect
    async def restore_models(app, assigned, **_kwargs) -> None:  # noqa: ARG001 - signal
        if restored.is_set():
            return  # models live on across rebalances; only a new process restores
        loop = asyncio.get_running_loop()
        records = await loop.run_in_executor(None, latest_records, versions, serde)
        gates = await loop.run_in_executor(None, latest_records, gate_topic, serde)
        newest = newest_versions(records)
        configured = {slot.model_id for slot in slots}
        for model_id, record in newest.items():  # e.g. a challenger from `spark model train`
            if model_id not in configured and record["role"] in ("champion", "challenger"):
                slots.append(Slot(learner(), "challenger"))
                slots[-1].learner.model.name = model_id  # its estimator comes from the snapshot
        for slot in list(slots):
            record = newest.get(slot.model_id)
            if record is None:
                continue
            try:
                slot.restore(record, key)
                SNAPSHOTS.labels("restored").inc()
                log.info(
                    "restored %s v%d (%s) from the registry", slot.model_id, slot.version, slot.role
                )
            except SnapshotRejected as exc:
                SNAPSHOTS.labels("rejected").inc()
                log.warning(
                    "registry snapshot of %s v%d refused: %s; starting fresh",
                    record["model_id"],
                    record["version"],
                    exc,
                )
                if slot.model_id not in configured:
                    slots.remove(slot)
        keeper.restore(gates)
        update_gate_gauges()
        if sum(s.role == "champion" for s in slots) != 1:  # registry roles disagree: reset
            for i, slot in enumerate(slots):
                slot.role = "champion" if i == 0 else "challenger"
        mine = sorted(tp.partition for tp in assigned if tp.topic == features.name)
        await catch_up(mine)
        for slot in slots:
            for partition, offset in slot.position.items():
                positions[partition] = max(positions.get(partition, -1), offset)
            counted[slot.model_id] = slot.learner.recent.labels  # learned by earlier processes
        restored.set()

    async def catch_up(partitions: list[int]) -> None:
        """Step the restored models through the vectors processed after their snapshot.

        Those are the vectors from the snapshot's offset up to the group's committed
        offset: the stream resumes at the committed offset, so without this the
        models would never learn them. Nothing is sent: their outputs were sent then.
        """
        starts = {}
        for slot in slots:
            for partition, offset in slot.position.items():
                if partition in partitions:
                    starts[partition] = min(starts.get(partition, offset + 1), offset + 1)
        if not starts:
            return
        loop = asyncio.get_running_loop()
        committed = await loop.run_in_executor(
            None, committed_offsets, app_id(), {features.name: features.partitions}
        )
        ranges = {p: (start, committed[(features.name, p)]) for p, start in starts.items()}
        gap = await loop.run_in_executor(None, read_ranges, features.name, ranges)
        streams = []
        for partition, records in gap.items():
            decoded = []
            for offset, _key, value in records:
                try:
                    vector = serde.decode(value, features.value)
                except Exception:  # noqa: BLE001 - dead-lettered when it was first seen
                    continue
                decoded.append((vector["ts"], partition, offset, vector))
            streams.append(decoded)
        # each partition in offset order (the order it was processed in); across partitions,
        # by time (how they were interleaved is not recorded)
        replay = list(heapq.merge(*streams, key=lambda item: item[0]))
        for _ts, partition, offset, vector in replay:
            for slot in slots:
                if offset > slot.position.get(partition, offset):
                    slot.learner.step(
                        vector["symbol"], vector["ts"], vector["mid"], vector["values"]
                    )
        for partition, records in gap.items():
            if records:
                last = records[-1][0]
                for slot in slots:
                    if partition in slot.position:
                        slot.position[partition] = max(slot.position[partition], last)
        if replay:
            log.info(
                "models caught up on %d feature vectors processed after their snapshot (%s)",
                len(replay),
                ", ".join(f"p{p}: {s}..{e - 1}" for p, (s, e) in sorted(ranges.items()) if s < e),
            )

    def publish_snapshots() -> None:
        for slot in slots:
            versions_out.send_soon(
                key=registry_key_of(slot.model_id, slot.version),
                value=serde.encode(versions.name, versions.value, slot.to_record(key, positions)),
            )
            SNAPSHOTS.labels("published").inc()
        clock["last_snapshot"] = time.monotonic()

    def publish_event(slot: Slot, event: str, reason: str) -> None:
        record = {
            "model_id": slot.model_id,
            "version": slot.version,
            "event": event,
            "reason": reason,
            "ts": int(time.time() * 1e6),
        }
        events_out.send_soon(
            key=slot.model_id.encode(),
            value=serde.encode(events_topic.name, events_topic.value, record),
        )

    def publish_gate_event(kind: str, record: dict) -> None:
        if kind == "alert":
            alerts_out.send_soon(
                key=record["symbol"].encode(),
                value=serde.encode(alerts_topic.name, alerts_topic.value, record),
            )
            DRIFT_ALERTS.labels(record["detector"], record["severity"]).inc()
            if record["severity"] == "warning":
                log.warning("drift alert on %s: %s", record["symbol"], record["detector"])
        else:
            gate_out.send_soon(
                key=record["symbol"].encode(),
                value=serde.encode(gate_topic.name, gate_topic.value, record),
            )
            update_gate_gauges()

    @app.agent(commands_in, name="gate-commands")
    async def gate_commands(stream):
        async for events in stream.take_events(100, within=WITHIN_S):
            await restored.wait()
            for event in events:
                message = event.message
                try:
                    command = serde.decode(message.value, commands_topic.value)
                    if command["action"] not in ("open", "close"):
                        raise ValueError(f"action must be open or close, not {command['action']!r}")
                    record = keeper.command(
                        command["symbol"], command["action"], command["reason"], command["ts"]
                    )
                except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                    reason = getattr(exc, "reason", "invalid_command")
                    dead_letter(commands_dlq, message, commands_topic, "gate", reason, str(exc))
                    continue
                log.warning(
                    "gate %s %s by operator: %s",
                    command["symbol"],
                    command["action"],
                    command["reason"],
                )
                publish_gate_event("gate", record)

    def maybe_promote() -> None:
        current = champion()
        for slot in slots:
            if slot.role != "challenger":
                continue
            mine, theirs = current.metrics(), slot.metrics()
            if rule.better(mine, theirs):
                reason = (
                    f"rolling AUC {theirs['auc']:.4f} >= {mine['auc']:.4f} + "
                    f"{rule.margin} over >= {rule.min_labels} labels"
                )
                slot.role, current.role = "champion", "challenger"
                publish_event(slot, "promoted", reason)
                publish_event(current, "demoted", reason)
                PROMOTIONS.inc()
                log.warning("promoted %s v%d: %s", slot.model_id, slot.version, reason)
                publish_snapshots()
                return

    def update_metrics() -> None:
        for slot in slots:
            labels = (slot.model_id, str(slot.version))
            recent = slot.learner.recent
            seen = counted.get(slot.model_id, 0)
            MODEL_LABELS.labels(*labels).inc(recent.labels - seen)
            counted[slot.model_id] = recent.labels
            auc, p20 = recent.auc(), recent.precision_at_20()
            if auc == auc:  # nan until both classes were seen
                MODEL_AUC.labels(*labels).set(auc)
            if p20 == p20:
                MODEL_PRECISION_AT_20.labels(*labels).set(p20)

    @app.agent(source, name="predictor")
    async def predictor(stream):
        # (on_feature_vector, after_batch, ready) of the executor agent, if this worker runs it
        quote_hooks = getattr(app, "spark_quote_hooks", None)
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            await restored.wait()
            if quote_hooks is not None:
                await quote_hooks[2].wait()
            started = time.perf_counter()
            for event in events:
                message = event.message
                partition, offset = message.partition, message.offset
                positions[partition] = max(positions.get(partition, -1), offset)
                try:
                    vector = serde.decode(message.value, features.value)
                except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                    reason = getattr(exc, "reason", "unexpected_error")
                    dead_letter(dead_letters, message, features, "predictor", reason, str(exc))
                    continue
                if quote_hooks is not None:
                    quote_hooks[0](message, vector)  # the executor's quotes (same worker)
                symbol, ts = vector["symbol"], vector["ts"]
                now_us = int(time.time() * 1e6)
                champion_p = None
                for slot in slots:
                    if offset <= slot.position.get(partition, -1):
                        continue  # re-delivered after a crash; the restored model includes it
                    p = slot.learner.step(symbol, ts, vector["mid"], vector["values"])
                    if slot.role == "champion":
                        champion_p, champion_slot = p, slot
                    prediction = {
                        "symbol": symbol,
                        "ts": ts,
                        "prob_up": p,
                        "model_id": slot.model_id,
                        "model_version": slot.version,
                        "role": slot.role,
                        "horizon_ms": horizon_ms,
                        "predicted_at": now_us,
                    }
                    predictions_out.send_soon(
                        key=message.key,
                        value=serde.encode(predictions.name, predictions.value, prediction),
                    )
                    predictions_counter.inc()
                if champion_p is None:
                    continue  # a re-delivered vector the restored champion has seen
                received_us = vector.get("tick_received_at")
                if received_us:
                    prediction_latency.observe(max(now_us - received_us, 0) / 1e6)
                shadows = [
                    (s.model_id, s.version, s.learner.last_resolved)
                    for s in slots
                    if s is not champion_slot
                ]
                for kind, record in keeper.observe(
                    symbol,
                    ts,
                    vector["values"],
                    champion_slot.learner.last_resolved,
                    champion_slot.model_id,
                    champion_slot.version,
                    shadows,
                ):
                    publish_gate_event(kind, record)
                # the drift gate sits between the policy and the signals topic
                allowed = keeper.allows(symbol)
                decision = policy.decide(symbol, champion_p, commit=allowed)
                if decision is None:
                    continue
                if not allowed:
                    keeper.gate(symbol).suppress()
                    SIGNALS_SUPPRESSED.labels(keeper.gate(symbol).state).inc()
                    continue
                side, strength, reason = decision
                signal = {
                    "symbol": symbol,
                    "ts": ts,
                    "side": side,
                    "strength": strength,
                    "model_id": champion_slot.model_id,
                    "model_version": champion_slot.version,
                    "reason": reason,
                    "prob_up": champion_p,
                    "emitted_at": now_us,
                }
                signals_out.send_soon(
                    key=message.key, value=serde.encode(signals.name, signals.value, signal)
                )
                signals_counter.inc()
                if received_us:
                    signal_latency.observe(max(now_us - received_us, 0) / 1e6)
            if quote_hooks is not None:
                quote_hooks[1]()
            in_counter.inc(len(events))
            update_metrics()
            if len(slots) > 1:
                maybe_promote()
            if time.monotonic() - clock["last_snapshot"] >= settings["snapshot_s"]:
                publish_snapshots()
            batch_timer.observe(time.perf_counter() - started)
            last_batch.set_to_current_time()

    @app.timer(interval=max(settings["snapshot_s"], 1.0))
    async def snapshot_when_idle() -> None:
        if (
            restored.is_set()
            and time.monotonic() - clock["last_snapshot"] >= settings["snapshot_s"]
        ):
            publish_snapshots()

    def book_state(symbol: str):
        book = getattr(app, "spark_feature_book", None)
        if book is None:
            raise SparkError("raw ticks need the ingest agent in this worker; send features")
        return book.state(symbol)["features"] if book.applied(symbol) else None

    @app.page("/ml/predict")
    class Predict(View):
        async def post(self, request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                return self.json({"error": "the body must be JSON"}, status=400)
            try:
                x = features_from_body(body, book_state)
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            except SparkError as exc:
                return self.json({"error": str(exc)}, status=409)
            slot = champion()
            return self.json(
                {
                    "prob_up": slot.learner.model.prob_up(x),
                    "model_id": slot.model_id,
                    "model_version": slot.version,
                    "features": x,
                }
            )

    @app.page("/ml/health")
    class Health(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            slot = champion()
            return self.json(
                {
                    "status": "ok" if restored.is_set() else "starting",
                    "champion": f"{slot.model_id} v{slot.version}",
                    "labels": slot.learner.recent.labels,
                }
            )

    @app.page("/ml/gates")
    class Gates(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            return self.json({"gates": [g.to_record() for g in keeper.gates.values()]})

    @app.page("/ml/models")
    class Models(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            return self.json(
                {
                    "models": [
                        {
                            "model_id": s.model_id,
                            "version": s.version,
                            "role": s.role,
                            "metrics": {k: (v if v == v else None) for k, v in s.metrics().items()},
                        }
                        for s in slots
                    ]
                }
            )
