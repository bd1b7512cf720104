"""Progressive (test-then-train) evaluation with delayed labels: the live pipeline on files.

Every tick goes through the SignalPipeline's features, labels and learners, grouped by
partition as the live worker groups symbols (``spark.pipeline.offline``): each tick is
predicted before its label is known, each label is learned once its horizon has passed,
and each prediction is scored against its label exactly once. The drift gate and the
trading stages are off: they do not change predictions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from spark.ml.quality import exact_auc, precision_at_top
from spark.pipeline.batch import TickBatch
from spark.pipeline.offline import OfflineRun
from spark.settings import Settings, horizon_name


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
    horizon_moves: int = 0  # > 0: labels in event time, horizon_s unused

    @property
    def horizon(self) -> str:
        return horizon_name(self.horizon_s, self.horizon_moves)

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "auc": self.auc,
            "precision_at_20": self.precision_at_20,
            "ticks": self.ticks,
            "ties": self.ties,
            "model": self.model,
            "horizon_s": self.horizon_s,
            "horizon_moves": self.horizon_moves,
            "horizon": self.horizon,
            "seconds": round(self.seconds, 2),
        }


class Scores:
    """The champion's (prob_up, label) pairs of a run, in the order the ticks resolved them."""

    def __init__(self) -> None:
        self.p: list[np.ndarray] = []
        self.y: list[np.ndarray] = []
        self.at: list[np.ndarray] = []
        self.ticks = 0
        self.ties = 0

    def add(self, base: int, idx: np.ndarray, result) -> None:
        labels = result.labels
        self.ties += result.ties
        if len(labels):
            champion = result.champion[labels.tick]
            self.p.append(labels.p[np.arange(len(labels)), champion])
            self.y.append(labels.y.astype(np.int64))
            self.at.append(base + idx[labels.tick])

    def result(self, settings: Settings, started: float) -> EvalResult:
        if self.y:
            order = np.argsort(np.concatenate(self.at), kind="stable")
            p, y = np.concatenate(self.p)[order], np.concatenate(self.y)[order]
        else:
            p, y = np.zeros(0), np.zeros(0, np.int64)
        m = settings.models
        return EvalResult(
            m.model,
            m.horizon_s,
            self.ticks,
            len(y),
            self.ties,
            exact_auc(p, y),
            precision_at_top(p, y),
            time.monotonic() - started,
            m.horizon_moves,
        )


def scoring(settings: Settings) -> Settings:
    """``settings`` for scoring: the champion alone, no gate, no trading."""
    return replace(settings.with_models(challengers=()), gate=False, trading=False)


def evaluate(
    batch: TickBatch, settings: Settings, on_tick: Callable[[int], None] | None = None
) -> EvalResult:
    """Progressive scores of ``settings``' model over ``batch`` (``spark model eval``)."""
    started = time.monotonic()
    settings = scoring(settings)
    scores = Scores()
    scores.ticks = len(batch)
    for lo, idx, result in OfflineRun(settings).run(batch, on_chunk=on_tick):
        scores.add(lo, idx, result)
    return scores.result(settings, started)


def evaluate_per_file(
    files: list[tuple[str, TickBatch]],
    settings: Settings,
    on_tick: Callable[[int], None] | None = None,
    fresh: bool = False,
) -> tuple[list[tuple[str, EvalResult]], EvalResult]:
    """Progressive scores per file, with the models and feature state carried from one file
    to the next (as a live worker carries them across days): ``files`` are (name, ticks) in
    time order. A label resolved by a tick of a file is scored in that file. ``fresh``: each
    file starts from new models and feature state instead, as ``evaluate`` on that file
    alone (labels still open at a file's end are not scored). Returns the per-file results
    and the result over all of them."""
    started = time.monotonic()
    settings = scoring(settings)
    run, total, rows, done = OfflineRun(settings), Scores(), [], 0
    for name, batch in files:
        if fresh and done:
            run = OfflineRun(settings)
        began, scores = time.monotonic(), Scores()
        scores.ticks = len(batch)
        at = done
        step = None if on_tick is None else (lambda n, at=at: on_tick(at + n))
        for lo, idx, result in run.run(batch, on_chunk=step):
            scores.add(done + lo, idx, result)
            total.add(done + lo, idx, result)
        done += len(batch)
        rows.append((name, scores.result(settings, began)))
    total.ticks = done
    return rows, total.result(settings, started)
