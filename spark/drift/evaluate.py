"""Measured gate quality: stream one data set, then another (a real regime change), through
the live feature and model code, and see when each detector fires.

Reported per detector: delay after the switch (ticks and event-time seconds to the
first alarm at or after it) and false alarms per 100,000 ticks before it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from spark.drift.detectors import PSIDetector, adwin, confirmed_spread_vol, page_hinkley
from spark.features import TickFeatures
from spark.ml.evaluate import Learner
from spark.ml.models import make_model
from spark.ticks.model import Tick

# name -> (what it watches, factory). Concept detectors see |prob_up - label| per label;
# data detectors see one feature per tick; "vector" detectors see the whole vector.
DETECTORS: dict[str, tuple[str, Callable]] = {
    # the gate's default rule, chosen from the measurements in docs/drift.md
    "psi_confirmed": ("vector", confirmed_spread_vol),
    # the default before it (session 1), and the others measured for comparison
    "psi_spread": ("spread_bp", lambda: PSIDetector(window=5000, threshold=4.0)),
    "psi_vol": ("vol_bp", lambda: PSIDetector(window=5000, threshold=4.0)),
    "adwin": ("error", lambda: adwin(1e-4)),
    "page_hinkley": ("error", lambda: page_hinkley(100.0)),
}
DEFAULT_DETECTOR = "psi_confirmed"


@dataclass
class DetectorReport:
    alarms_before: int = 0
    first_after_tick: int | None = None
    first_after_ts: int | None = None
    alarms_after: int = 0
    alarm_ticks: list[int] = field(default_factory=list)


def drift_eval(
    first: Iterable[Tick],
    then: Iterable[Tick],
    horizon_s: float = 1.0,
    model: str = "logreg",
    detectors: list[str] | None = None,
) -> dict:
    names = detectors or list(DETECTORS)
    unknown = set(names) - set(DETECTORS)
    if unknown:
        raise ValueError(f"unknown detectors {sorted(unknown)}; known: {', '.join(DETECTORS)}")
    live = {n: DETECTORS[n][1]() for n in names}
    watches = {n: DETECTORS[n][0] for n in names}
    reports = {n: DetectorReport() for n in names}
    learner = Learner(make_model(model), horizon_s)
    features: dict[str, TickFeatures] = {}
    count, switch_at, switch_ts = 0, None, None

    def alarm(name: str, ts: int) -> None:
        report = reports[name]
        report.alarm_ticks.append(count)
        if switch_at is None:
            report.alarms_before += 1
        else:
            report.alarms_after += 1
            if report.first_after_tick is None:
                report.first_after_tick = count - switch_at
                report.first_after_ts = ts - switch_ts

    for phase, ticks in enumerate((first, then)):
        for tick in ticks:
            if phase == 1 and switch_at is None:
                switch_at, switch_ts = count, tick.ts
            count += 1
            state = features.setdefault(tick.symbol, TickFeatures())
            x = state.update(tick)
            if x is None:
                continue
            queue_before = learner.quality.__len__()
            learner.step(tick.symbol, tick.ts, state.prev_mid, x)
            errors = [
                abs(p - y) for p, y in learner.quality.tail(len(learner.quality) - queue_before)
            ]
            for name, detector in live.items():
                watch = watches[name]
                if watch == "error":
                    if any(detector.update(e) for e in errors):
                        alarm(name, tick.ts)
                elif watch == "vector":
                    if detector.update_vector(x):
                        alarm(name, tick.ts)
                elif detector.update(x[watch]):
                    alarm(name, tick.ts)
    before = switch_at or count
    result = {"ticks_before": before, "ticks_after": count - before, "detectors": {}}
    for name, report in reports.items():
        result["detectors"][name] = {
            "watches": getattr(live[name], "features", watches[name]),
            "delay_ticks": report.first_after_tick,
            "delay_s": None if report.first_after_ts is None else report.first_after_ts / 1e6,
            "false_alarms": report.alarms_before,
            "false_alarms_per_100k": report.alarms_before / before * 1e5 if before else 0.0,
            "alarms_after": report.alarms_after,
        }
    default = DEFAULT_DETECTOR if DEFAULT_DETECTOR in reports else names[0]
    result["detector"] = default
    result["delay_ticks"] = result["detectors"][default]["delay_ticks"]
    result["false_alarms_per_100k"] = result["detectors"][default]["false_alarms_per_100k"]
    return result
