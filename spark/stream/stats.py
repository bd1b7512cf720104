"""What the tick loop counts: Prometheus metrics (docs/runbook.md) and running totals.

Counters move once per batch, not once per record; histograms of per-tick latency are
filled in bulk (``observe_many``), as Prometheus' own ``observe`` would one value at a
time (a test compares them).
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np

from spark.drift.stage import DETECTOR_NAMES
from spark.execution.paper import OUTCOMES, REJECTION_REASONS
from spark.execution.risk import LIMIT_NAMES
from spark.metrics import (
    BATCH_SECONDS,
    CHECKPOINT_BYTES,
    CHECKPOINTS,
    DEAD_LETTERS,
    DRIFT_ALERTS,
    EVENTS_IN,
    EVENTS_OUT,
    EXECUTOR_SIGNALS,
    EXECUTOR_WAITING,
    GATE_STATES,
    GATES_NOT_OPEN,
    KILL_SWITCH,
    LAST_BATCH,
    MODEL_AUC,
    MODEL_LABELS,
    MODEL_PRECISION_AT_20,
    ORDER_REJECTIONS,
    PAPER_DRAWDOWN,
    PAPER_FILLS,
    PAPER_GROSS_NOTIONAL,
    PAPER_OPEN_POSITIONS,
    PAPER_ORDERS,
    PAPER_PNL,
    PROCESSING_LATENCY,
    PROMOTIONS,
    REFIT_WAIT,
    RISK_LIMIT,
    SIGNALS_SUPPRESSED,
    SNAPSHOTS,
    TICKS_ACCEPTED,
)
from spark.ml.quality import exact_auc, precision_at_top
from spark.pipeline.records import EXECUTION_TOPICS, SPARSE

STAGE = "ticks"  # the agent label of the loop's batch metrics
GAUGE_EVERY_S = 1.0


def observe_many(histogram, values: np.ndarray) -> None:
    """``histogram.observe(v)`` for every v, in one pass (a labelled child)."""
    if not len(values):
        return
    bounds = np.asarray(histogram._upper_bounds)
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts.tolist(), strict=True):
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(values.sum()))


class LoopStats:
    def __init__(self) -> None:
        self.totals: Counter = Counter()
        self._gauges_at = 0.0
        # every label value known from the start: dashboards show 0, not "no data"
        for detector in DETECTOR_NAMES:
            for severity in ("warning", "info"):
                DRIFT_ALERTS.labels(detector, severity)
        for state in ("closed", "probation"):
            SIGNALS_SUPPRESSED.labels(state)
        for state in ("open", "closed", "probation"):
            GATE_STATES.labels(state).set(0)
        for reason in REJECTION_REASONS:
            ORDER_REJECTIONS.labels(reason)
        for outcome in OUTCOMES:
            EXECUTOR_SIGNALS.labels(outcome)
        for outcome in ("accepted", "rejected", "cancelled"):
            PAPER_ORDERS.labels(outcome)
        for outcome in ("written", "restored"):
            CHECKPOINTS.labels(outcome)
        for outcome in ("restored", "rejected"):
            SNAPSHOTS.labels(outcome)
        # every topic the loop produces: with the cost-aware policy, hours without a signal
        # are normal, and the signals panel must say 0
        for topic_id in (
            "features",
            "predictions",
            *dict(SPARSE).values(),
            *EXECUTION_TOPICS.values(),
        ):
            EVENTS_OUT.labels(topic_id)

    def rejected(self, rejected) -> None:
        """Ticks dead-lettered at ingest (the decoder's and the price screen's)."""
        for r in rejected:
            DEAD_LETTERS.labels("ticks", "ingest", r.reason).inc()
            self.totals[f"dead:{r.reason}"] += 1

    def step(self, result, messages: int, first_offset: int, pipeline) -> None:
        """One partition's step; outputs below ``first_offset`` were produced before."""
        self.totals["messages"] += messages
        EVENTS_IN.labels("ticks").inc(messages)
        new = result.batch.offset >= first_offset
        accepted = int(new.sum())
        TICKS_ACCEPTED.inc(accepted)
        self.totals["accepted"] += accepted
        received = result.batch.received
        fresh = result.valid & new & (received > 0)
        if fresh.any():
            waited = np.maximum(time.time() * 1e6 - received[fresh], 0) / 1e6
            for stage in ("features", "prediction"):
                observe_many(PROCESSING_LATENCY.labels(stage), waited)
            signalled = np.array([i for i, _ in result.signals], np.int64)
            if len(signalled):
                signalled = signalled[fresh[signalled]]
                observe_many(
                    PROCESSING_LATENCY.labels("signal"),
                    np.maximum(time.time() * 1e6 - received[signalled], 0) / 1e6,
                )
        labels = len(result.labels)
        for model_id, version in result.models:
            MODEL_LABELS.labels(model_id, str(version)).inc(labels)
        self.totals["labels"] += labels
        self.totals["predictions"] += int(result.valid.sum()) * len(result.models)
        for _, alert in result.alerts:
            DRIFT_ALERTS.labels(alert["detector"], alert["severity"]).inc()
        for state, count in result.suppressed.items():
            SIGNALS_SUPPRESSED.labels(state).inc(count)
            self.totals["suppressed"] += count
        self.totals["signals"] += len(result.signals)
        for _, kind, record in result.executions:
            if kind == "order":
                PAPER_ORDERS.labels("accepted").inc()
                EXECUTOR_SIGNALS.labels("order").inc()
            elif kind == "rejection":
                PAPER_ORDERS.labels("rejected").inc()
                EXECUTOR_SIGNALS.labels("rejected").inc()
                ORDER_REJECTIONS.labels(record["limit_name"]).inc()
            elif kind == "cancel":  # a passive order that rested unfilled until its timeout
                PAPER_ORDERS.labels("cancelled").inc()
                ORDER_REJECTIONS.labels(record["limit_name"]).inc()
            elif kind == "no_change":
                EXECUTOR_SIGNALS.labels("no_change").inc()
            elif kind == "fill":
                PAPER_FILLS.inc()
            self.totals[kind] += 1
        PROMOTIONS.inc(sum(e["event"] == "promoted" for _, e in result.model_events))

    def batch(self, seconds: float) -> None:
        BATCH_SECONDS.labels(STAGE).observe(seconds)
        LAST_BATCH.labels(STAGE).set_to_current_time()

    def refit_wait(self, seconds: float) -> None:
        if seconds > 0:
            REFIT_WAIT.inc(seconds)
            self.totals["refit_wait_s"] += seconds

    def produced(self, topic_id: str, count: int) -> None:
        EVENTS_OUT.labels(topic_id).inc(count)
        self.totals[f"out:{topic_id}"] += count

    def checkpoint(self, size: int, outcome: str = "written") -> None:
        CHECKPOINTS.labels(outcome).inc()
        if outcome == "written":
            CHECKPOINT_BYTES.set(size)

    def snapshot(self, outcome: str) -> None:
        """A registry version adopted ("restored") or refused ("rejected")."""
        SNAPSHOTS.labels(outcome).inc()

    def gauges(self, pipelines: list, force: bool = False) -> None:
        """Gauges over every pipeline of the worker (at most once a second)."""
        now = time.monotonic()
        if not force and now - self._gauges_at < GAUGE_EVERY_S:
            return
        self._gauges_at = now
        states = Counter()
        windows: dict[tuple[str, int], list] = {}
        realized = unrealized = drawdown = gross = 0.0
        open_positions = waiting = 0
        kill = False
        for pipeline in pipelines:
            for state, count in pipeline.drift.states().items():
                states[state] += count
            for m, slot in enumerate(pipeline.learners.slots):
                windows.setdefault((slot.model_id, slot.version), []).append(
                    pipeline.scores.window(m)
                )
            executor = pipeline.executor
            for position in executor.positions.values():
                realized += position.realized
                unrealized += position.unrealized
                open_positions += position.quantity != 0
            waiting += sum(len(q) for q in executor.pending.values())
            drawdown = max(drawdown, executor.drawdown())
            gross += executor.gross_notional()
            kill = kill or executor.kill is not None
            limits = executor.limits
        for state in ("open", "closed", "probation"):
            GATE_STATES.labels(state).set(states[state])
        GATES_NOT_OPEN.set(states["closed"] + states["probation"])
        for (model_id, version), parts in windows.items():
            p = np.concatenate([w[0] for w in parts])
            y = np.concatenate([w[1] for w in parts])
            auc, p20 = exact_auc(p, y), precision_at_top(p, y)
            if auc == auc:
                MODEL_AUC.labels(model_id, str(version)).set(auc)
            if p20 == p20:
                MODEL_PRECISION_AT_20.labels(model_id, str(version)).set(p20)
        PAPER_PNL.labels("realized").set(realized)
        PAPER_PNL.labels("unrealized").set(unrealized)
        PAPER_DRAWDOWN.set(drawdown)
        PAPER_GROSS_NOTIONAL.set(gross)
        PAPER_OPEN_POSITIONS.set(open_positions)
        EXECUTOR_WAITING.set(waiting)
        KILL_SWITCH.set(1 if kill else 0)
        if pipelines:
            for name in LIMIT_NAMES:
                RISK_LIMIT.labels(name).set(getattr(limits, name))
