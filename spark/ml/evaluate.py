"""Progressive (test-then-train) evaluation with delayed labels: the live code path on a file.

For every tick, in order: resolve the labels whose horizon has passed and
learn them; compute the tick's features; predict; queue the prediction for
its label. A prediction is scored against its label exactly once, and the
model had only learned labels that were known before the tick arrived.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from spark.features import TickFeatures
from spark.ml.labels import DelayedLabels
from spark.ml.models import DEFAULT_MODEL, OnlineModel, make_model
from spark.ml.quality import Quality, RollingQuality
from spark.ticks.model import Tick


@dataclass
class EvalResult:
    model: str
    horizon_s: float
    ticks: int
    n: int  # scored predictions (labels resolved, ties excluded)
    ties: int
    auc: float
    precision_at_20: float
    seconds: float

    @classmethod
    def of(
        cls, model: str, horizon_s: float, ticks: int, q: Quality, ties: int, started: float
    ) -> EvalResult:
        """The scores in ``q`` of a run that began at ``started`` (time.monotonic())."""
        seconds = time.monotonic() - started
        return cls(model, horizon_s, ticks, len(q), ties, q.auc(), q.precision_at_20(), seconds)

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "auc": self.auc,
            "precision_at_20": self.precision_at_20,
            "ticks": self.ticks,
            "ties": self.ties,
            "model": self.model,
            "horizon_s": self.horizon_s,
            "seconds": round(self.seconds, 2),
        }


class Learner:
    """One model learning from delayed labels across symbols: the predictor's core.

    ``step`` resolves the symbol's labels that the tick at ``ts`` makes final
    (and learns them), then predicts ``x``, then queues it for its label.
    """

    def __init__(self, model: OnlineModel, horizon_s: float, keep_scores: bool = True) -> None:
        self.model = model
        self.horizon_us = round(horizon_s * 1e6)
        self.labels: dict[str, DelayedLabels] = {}
        # every scored prediction (offline runs); a long-lived worker keeps only ``recent``
        self.quality: Quality | None = Quality() if keep_scores else None
        self.recent = RollingQuality()
        self.last_resolved: list[tuple[float, int]] = []  # (prob_up, label) of the last step

    def progress(self) -> dict:
        """What a live snapshot keeps beside the model: pending labels and rolling scores."""
        return {"labels": self.labels, "recent": self.recent}

    def resume(self, progress: dict) -> None:
        """Continue from ``progress()`` of an earlier process."""
        self.labels = progress["labels"]
        self.recent = progress["recent"]

    def step(self, symbol: str, ts: int, mid: float, x: dict[str, float]) -> float:
        queue = self.labels.get(symbol)
        if queue is None:
            queue = self.labels[symbol] = DelayedLabels(self.horizon_us)
        self.last_resolved = []
        for (x_old, p_old), y in queue.resolve(ts, mid):
            if self.quality is not None:
                self.quality.add(p_old, y)
            self.recent.add(p_old, y)
            self.last_resolved.append((p_old, y))
            self.model.learn(x_old, y)
        p = self.model.prob_up(x)
        queue.add(ts, mid, (x, p))
        return p

    @property
    def ties(self) -> int:
        return sum(q.ties for q in self.labels.values())


class Progressive:
    """Features then the learner, tick by tick: the live code path without Kafka."""

    def __init__(self, model: OnlineModel, horizon_s: float) -> None:
        self.features: dict[str, TickFeatures] = {}
        self.learner = Learner(model, horizon_s)

    def step(self, tick: Tick) -> tuple[dict[str, float], float] | None:
        """Feed one tick; returns (features, prob_up) when a prediction was made."""
        feats = self.features.get(tick.symbol)
        if feats is None:
            feats = self.features[tick.symbol] = TickFeatures()
        x = feats.update(tick)  # uses this tick and earlier ones only
        if x is None:
            return None
        return x, self.learner.step(tick.symbol, tick.ts, feats.prev_mid, x)

    @property
    def quality(self) -> Quality:
        return self.learner.quality

    @property
    def ties(self) -> int:
        return self.learner.ties


def run_progressive(
    ticks: Iterable[Tick], horizon_s: float = 1.0, model: str = DEFAULT_MODEL
) -> tuple[Progressive, EvalResult]:
    """Test-then-train over ``ticks``; the trained run (its learner) and its scores."""
    started = time.monotonic()
    run = Progressive(make_model(model), horizon_s)
    count = 0
    for tick in ticks:
        run.step(tick)
        count += 1
    return run, EvalResult.of(model, horizon_s, count, run.quality, run.ties, started)


def evaluate(
    ticks: Iterable[Tick], horizon_s: float = 1.0, model: str = DEFAULT_MODEL
) -> EvalResult:
    """Progressive scores of ``model`` over ``ticks`` (what ``spark model eval`` prints)."""
    return run_progressive(ticks, horizon_s, model)[1]


def evaluate_per_file(
    files: list[tuple[str, Iterable[Tick]]], horizon_s: float = 1.0, model: str = DEFAULT_MODEL
) -> tuple[list[tuple[str, EvalResult]], EvalResult]:
    """Progressive scores per file, with the model and the feature state carried from one
    file to the next (as a live worker carries them across days): ``files`` are (name, ticks)
    in time order. A label resolved by a tick of a file is scored in that file. Returns the
    per-file results and the result over all of them."""
    started = time.monotonic()
    run = Progressive(make_model(model), horizon_s)
    overall, rows, total_ticks = Quality(), [], 0
    for name, ticks in files:
        began, quality, count, ties_before = time.monotonic(), Quality(), 0, run.ties
        for tick in ticks:
            run.step(tick)
            count += 1
            for p, y in run.learner.last_resolved:
                quality.add(p, y)
                overall.add(p, y)
        total_ticks += count
        ties = run.ties - ties_before
        rows.append((name, EvalResult.of(model, horizon_s, count, quality, ties, began)))
    return rows, EvalResult.of(model, horizon_s, total_ticks, overall, run.ties, started)
