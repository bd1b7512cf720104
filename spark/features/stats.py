"""Time-decayed statistics for irregularly spaced ticks.

river's ``stats.EWMean``/``EWVar`` fade by a fixed factor per update; ticks
arrive irregularly (a burst of 50 in a second, then nothing for a minute),
so a per-update factor would weigh a burst like a minute. These decay with
elapsed *time* (``alpha = 1 - exp(-dt / tau)``), and their whole state is a
few floats, so it serializes to JSON for a Faust table without pickle.

>>> m = TimeEWMean(tau_s=10.0)
>>> _ = m.update(1.0, 0.0)
>>> round(m.update(3.0, 10.0), 4)  # after one tau, 1 - e^-1 of the way from 1 to 3
2.2642
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class TimeEWMean:
    """Exponentially weighted mean with a time constant ``tau_s`` (seconds)."""

    tau_s: float
    mean: float = 0.0
    last_t: float | None = None

    def update(self, x: float, t: float) -> float:
        if self.last_t is None:
            self.mean = x
        else:
            alpha = 1.0 - math.exp(-max(t - self.last_t, 0.0) / self.tau_s)
            self.mean += alpha * (x - self.mean)
        self.last_t = t
        return self.mean


@dataclass
class TimeEWVar:
    """Exponentially weighted variance (West's update) with time constant ``tau_s``."""

    tau_s: float
    mean: float = 0.0
    var: float = 0.0
    last_t: float | None = None

    def update(self, x: float, t: float) -> float:
        if self.last_t is None:
            self.mean, self.var = x, 0.0
        else:
            alpha = 1.0 - math.exp(-max(t - self.last_t, 0.0) / self.tau_s)
            diff = x - self.mean
            incr = alpha * diff
            self.mean += incr
            self.var = (1.0 - alpha) * (self.var + diff * incr)
        self.last_t = t
        return self.var


@dataclass
class DecayedCount:
    """Sum of weights decaying with ``tau_s``: with weight 1 per tick and tau 60 s it
    approximates ticks per minute; with trade sizes, volume per minute."""

    tau_s: float
    total: float = 0.0
    last_t: float | None = None

    def update(self, weight: float, t: float) -> float:
        if self.last_t is not None:
            self.total *= math.exp(-max(t - self.last_t, 0.0) / self.tau_s)
        self.total += weight
        self.last_t = t
        return self.total
