"""Drift detectors with one protocol: ``update(value) -> bool`` (True when drift is detected).

* ``PSIDetector``: data drift. The Population Stability Index of a sliding window
  of a feature against a reference window, checked every ``check_every`` values;
  O(1) per update (bin counts kept incrementally) and O(bins) per check. After a
  detection the next ``window`` values become the new reference (with new bin
  edges), so one shift raises one alarm.
* ``RiverDetector``: concept drift on the stream of prediction errors
  |prob_up − label|, with river's ADWIN (~0.5 µs an update) or Page-Hinkley.

>>> d = PSIDetector(window=200, bins=5, threshold=0.25, check_every=50)
>>> any(d.update(float(i % 10)) for i in range(1000))  # one stable distribution
False
>>> any(d.update(100.0 + i % 10) for i in range(1000))  # a shifted one
True
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import dataclass, field

from river import drift


@dataclass
class PSIDetector:
    window: int = 2000
    bins: int = 10
    threshold: float = 0.25
    check_every: int = 250
    name: str = "psi"
    statistic: float = 0.0
    _reference: list[float] = field(default_factory=list)
    _edges: list[float] = field(default_factory=list)
    _ref_share: list[float] = field(default_factory=list)
    _current: deque = field(default_factory=deque)
    _counts: list[int] = field(default_factory=list)
    _since_check: int = 0

    def _set_reference(self, values: list[float]) -> None:
        ordered = sorted(values)
        n = len(ordered)
        self._edges = sorted(
            {ordered[min(n - 1, (n * k) // self.bins)] for k in range(1, self.bins)}
        )
        counts = [0] * (len(self._edges) + 1)
        for v in values:
            counts[bisect.bisect_right(self._edges, v)] += 1
        self._ref_share = [max(c / n, 1e-4) for c in counts]
        self._counts = [0] * len(counts)
        self._current = deque()
        self._since_check = 0

    def update(self, value: float) -> bool:
        if not self._edges:
            self._reference.append(value)
            if len(self._reference) >= self.window:
                self._set_reference(self._reference)
                self._reference = []
            return False
        slot = bisect.bisect_right(self._edges, value)
        self._current.append(slot)
        self._counts[slot] += 1
        if len(self._current) > self.window:
            self._counts[self._current.popleft()] -= 1
        self._since_check += 1
        if len(self._current) < self.window or self._since_check < self.check_every:
            return False
        self._since_check = 0
        n = len(self._current)
        psi = 0.0
        for count, ref in zip(self._counts, self._ref_share, strict=True):
            cur = max(count / n, 1e-4)
            psi += (cur - ref) * math.log(cur / ref)
        self.statistic = psi
        if psi > self.threshold:
            # learn a new reference (and new bin edges) from the values that follow,
            # so one shift raises one alarm
            self._edges = []
            self._reference = []
            return True
        return False


class RiverDetector:
    """A river drift detector on a numeric stream (here: prediction errors)."""

    def __init__(self, name: str, detector) -> None:
        self.name = name
        self.detector = detector

    def update(self, value: float) -> bool:
        self.detector.update(value)
        return bool(self.detector.drift_detected)

    @property
    def statistic(self) -> float:
        return float(getattr(self.detector, "estimation", 0.0))


def adwin(delta: float = 0.002) -> RiverDetector:
    return RiverDetector(f"adwin(delta={delta})", drift.ADWIN(delta=delta))


def page_hinkley(threshold: float = 50.0, delta: float = 0.005) -> RiverDetector:
    return RiverDetector(
        f"page_hinkley(threshold={threshold})", drift.PageHinkley(threshold=threshold, delta=delta)
    )
