"""A StepResult's records, in the shapes of their contracts (``schemas/``), with the topic
each goes to (catalog ids) and the tick that produced it.

The live worker encodes the dense ones (a FeatureVector per tick, a Prediction per tick and
model) with compiled writers straight from the result's columns; ``spark backtest run
--records`` writes these dicts. Both take the sparse ones from ``sparse`` below.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from spark.pipeline.pipeline import StepResult

EXECUTION_TOPICS = {
    "order": "orders",
    "fill": "fills",
    "rejection": "order_rejections",
    "cancel": "order_rejections",  # a passive order cancelled unfilled (docs/costs.md)
    "position": "positions",
}
SPARSE = (
    ("signals", "signals"),
    ("alerts", "drift_alerts"),
    ("gates", "gate_state"),
    ("model_events", "model_events"),
)


def sparse(result: StepResult) -> Iterator[tuple[int, str, dict]]:
    """(tick, topic id, record) of every signal, alert, gate state, model event and paper
    order, fill, rejection and position."""
    for attr, topic_id in SPARSE:
        for i, record in getattr(result, attr):
            yield i, topic_id, record
    for i, kind, record in result.executions:
        if kind in EXECUTION_TOPICS:
            yield i, EXECUTION_TOPICS[kind], record


def predictions(
    result: StepResult, symbols: list[str], horizon_ms: int
) -> Iterator[tuple[int, str, dict]]:
    """(tick, "predictions", Prediction) of every valid tick and model."""
    batch = result.batch
    for i in np.flatnonzero(result.valid).tolist():
        for m, (model_id, version) in enumerate(result.models):
            yield (
                i,
                "predictions",
                {
                    "symbol": symbols[result.slot[i]],
                    "ts": int(batch.ts[i]),
                    "prob_up": float(result.probs[i, m]),
                    "model_id": model_id,
                    "model_version": version,
                    "role": result.role(m, i),
                    "horizon_ms": horizon_ms,
                    "predicted_at": None,
                },
            )


def all_records(
    result: StepResult, symbols: list[str], horizon_ms: int
) -> list[tuple[int, str, dict]]:
    """Predictions and sparse records, by tick (at one tick: predictions first)."""
    out = list(predictions(result, symbols, horizon_ms)) + list(sparse(result))
    out.sort(key=lambda r: r[0])  # stable: each topic's records keep their order
    return out
