"""Labels without look-ahead: the mid's direction H after a tick, known only once time passes H.

The label of the vector made at time t is the sign of (mid prevailing at t + H)
minus (mid at t). The prevailing mid at t + H is the mid of the last tick with
ts <= t + H, which is certain only when a tick with ts > t + H arrives. So a
pending item resolves when a strictly later tick comes, using the mid *before*
that tick. Ties (mid unchanged) carry no label and are dropped.

>>> q = DelayedLabels(horizon_us=10)
>>> q.add(0, 1.00, "a"); q.add(5, 1.01, "b")
>>> q.resolve(10, 1.02)   # nothing is older than 10 - H... yet: 0 + 10 is not < 10
[]
>>> q.resolve(11, 1.03)   # at ts 11 the mid prevailing at 10 is known: 1.02 (set at ts 10)
[('a', 1)]
"""

from __future__ import annotations

from collections import deque
from typing import Any


class DelayedLabels:
    """Per-symbol queue of (ts, mid, payload) waiting for their horizon to pass."""

    def __init__(self, horizon_us: int) -> None:
        if horizon_us <= 0:
            raise ValueError("the horizon must be positive")
        self.horizon_us = horizon_us
        self._pending: deque[tuple[int, float, Any]] = deque()
        self._mid: float | None = None  # mid after the last tick seen
        self.ties = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, ts: int, mid: float, payload: Any) -> None:
        """Queue the vector made at ``ts`` (call after ``resolve`` for that tick)."""
        self._pending.append((ts, mid, payload))
        self._mid = mid

    def resolve(self, ts: int, mid: float) -> list[tuple[Any, int]]:
        """A tick at ``ts`` arrived: return (payload, label) of every item now resolved."""
        done = []
        pending = self._pending
        while pending and pending[0][0] + self.horizon_us < ts:
            t0, mid0, payload = pending.popleft()
            if self._mid > mid0:
                done.append((payload, 1))
            elif self._mid < mid0:
                done.append((payload, 0))
            else:
                self.ties += 1
        self._mid = mid
        return done
