"""Quality of probability-of-up predictions: exact AUC and precision@20 over blocks.

>>> q = Quality()
>>> for p, y in [(0.9, 1), (0.8, 1), (0.3, 0), (0.6, 0)]:
...     q.add(p, y)
>>> q.auc()
1.0
"""

from __future__ import annotations

from collections import deque

import numpy as np

BLOCK = 1000
TOP = 20


def exact_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """ROC AUC by the Mann-Whitney rank statistic (ties get average ranks); nan if one class."""
    pos = labels == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=float)
    sorted_scores = scores[order]
    # average ranks over ties
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    avg = (starts + ends + 1) / 2.0
    ranks[order] = np.repeat(avg, ends - starts)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def precision_at_top(
    scores: np.ndarray, labels: np.ndarray, top: int = TOP, block: int = BLOCK
) -> float:
    """Mean over consecutive full blocks of ``block`` scored predictions of the share
    correct among the ``top`` most confident (confidence = |p - 0.5|, call = p > 0.5)."""
    shares = []
    for start in range(0, len(scores) - block + 1, block):
        p = scores[start : start + block]
        y = labels[start : start + block]
        best = np.argsort(-np.abs(p - 0.5), kind="mergesort")[:top]
        shares.append(float(np.mean((p[best] > 0.5).astype(int) == y[best])))
    return float(np.mean(shares)) if shares else float("nan")


class Quality:
    """Accumulates (probability, label) pairs in scoring order."""

    def __init__(self) -> None:
        self._p: list[float] = []
        self._y: list[int] = []

    def add(self, prob_up: float, label: int) -> None:
        self._p.append(prob_up)
        self._y.append(label)

    def __len__(self) -> int:
        return len(self._y)

    def tail(self, n: int) -> list[tuple[float, int]]:
        """The last ``n`` (probability, label) pairs, oldest first."""
        if n <= 0:
            return []
        return list(zip(self._p[-n:], self._y[-n:], strict=True))

    def auc(self) -> float:
        return exact_auc(np.asarray(self._p), np.asarray(self._y))

    def precision_at_20(self) -> float:
        return precision_at_top(np.asarray(self._p), np.asarray(self._y))


class RollingQuality:
    """AUC and precision@20 over the last ``window`` scored predictions (for live metrics)."""

    def __init__(self, window: int = 2000) -> None:
        self._p: deque[float] = deque(maxlen=window)
        self._y: deque[int] = deque(maxlen=window)
        self.labels = 0

    def add(self, prob_up: float, label: int) -> None:
        self._p.append(prob_up)
        self._y.append(label)
        self.labels += 1

    def auc(self) -> float:
        return exact_auc(np.asarray(self._p), np.asarray(self._y))

    def precision_at_20(self) -> float:
        return precision_at_top(np.asarray(self._p), np.asarray(self._y))
