"""The per-symbol drift gate: whether a symbol's signals may reach the signals topic.

States and transitions (docs/drift.md):

* ``open``      → ``closed``    on a drift alert, or an operator's close.
* ``closed``    → ``probation`` after ``cooldown_labels`` labels since it closed
  (drift-closed gates only; an operator's close holds until an operator opens).
* ``probation`` → ``open``      once ``probation_labels`` labels scored in probation reach
  AUC ≥ ``min_auc``; back to ``closed`` on a new alert.
* any           → ``open``      on an operator's open.

While the gate is not open, signals are suppressed and counted with the state as reason.

>>> g = Gate("EURUSD", cooldown_labels=2, probation_labels=4, min_auc=0.6)
>>> g.on_alert("psi_spread", ts=1).state
'closed'
>>> for p, y in [(0.9, 1), (0.1, 0)]:
...     _ = g.on_label(p, y, ts=2)
>>> g.state
'probation'
>>> for p, y in [(0.9, 1), (0.2, 0), (0.8, 1), (0.3, 0)]:
...     _ = g.on_label(p, y, ts=3)
>>> g.state, g.allows_signals
('open', True)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from spark.ml.quality import exact_auc

OPEN, CLOSED, PROBATION = "open", "closed", "probation"


@dataclass
class Gate:
    symbol: str
    cooldown_labels: int = 1000
    probation_labels: int = 2000
    min_auc: float = 0.55
    state: str = OPEN
    reason: str = "initial"
    since: int = 0
    labels_seen: int = 0
    suppressed: int = 0
    operator_hold: bool = False
    moves: int = 0  # transitions so far (the drift stage watches it)
    _probation: list[tuple[float, int]] = field(default_factory=list)

    @property
    def allows_signals(self) -> bool:
        return self.state == OPEN

    def _move(self, state: str, reason: str, ts: int) -> Gate:
        self.state, self.reason, self.since = state, reason, ts
        self.moves += 1
        self.labels_seen = 0
        self._probation = []
        if state != CLOSED:
            self.suppressed = 0
        return self

    def on_alert(self, detector: str, ts: int) -> Gate:
        if self.operator_hold:
            return self
        return self._move(CLOSED, f"drift: {detector}", ts)

    def on_label(self, prob_up: float, label: int, ts: int) -> bool:
        """Count one label; True when the state changed."""
        if self.state == OPEN or self.operator_hold:
            return False
        self.labels_seen += 1
        if self.state == CLOSED:
            if self.labels_seen >= self.cooldown_labels:
                self._move(PROBATION, f"cooldown of {self.cooldown_labels} labels over", ts)
                return True
            return False
        self._probation.append((prob_up, label))
        if len(self._probation) < self.probation_labels:
            return False
        scores = np.array([p for p, _ in self._probation])
        labels = np.array([y for _, y in self._probation])
        auc = exact_auc(scores, labels)
        if auc == auc and auc >= self.min_auc:
            self._move(
                OPEN,
                f"probation AUC {auc:.3f} >= {self.min_auc} over {self.probation_labels} labels",
                ts,
            )
            return True
        self._probation = self._probation[self.probation_labels // 2 :]  # keep measuring
        return False

    def suppress(self) -> str:
        """Count a suppressed signal; returns the reason to record."""
        self.suppressed += 1
        return f"gate {self.state}: {self.reason}"

    def operator(self, action: str, reason: str, ts: int) -> Gate:
        if action == "close":
            self.operator_hold = True
            return self._move(CLOSED, f"operator: {reason}", ts)
        if action == "open":
            self.operator_hold = False
            return self._move(OPEN, f"operator: {reason}", ts)
        raise ValueError(f"gate action must be open or close, not {action!r}")

    def to_record(self) -> dict:
        """A GateState record (schemas/GateState.avsc)."""
        return {
            "symbol": self.symbol,
            "state": self.state,
            "reason": self.reason,
            "since": self.since,
            "labels_seen": self.labels_seen,
            "suppressed": self.suppressed,
        }
