"""Research: do pairs of drift detectors that confirm each other meet the aim
(delay < 2,000 ticks and <= 1 false alarm per 100k ticks) where single detectors do not?

Streams the three real switches of docs/drift.md through the live features and
model (exactly as ``spark drift eval``), records every alarm tick of a set of
single detectors, then scores "A confirmed by B within K ticks": an alarm of
the pair fires at the tick where both have alarmed within the last K ticks
(after firing, both must alarm again). Prints one table; docs/drift.md keeps
the result.

Usage (from the repository root):
    python -m bench.drift_confirm [--fine | --validate] [SHARED_DATA]
"""

from __future__ import annotations

import itertools
import sys
import time
from pathlib import Path

from spark.drift.detectors import PSIDetector, adwin
from spark.features import TickFeatures
from spark.ml.evaluate import Learner
from spark.ml.models import make_model
from spark.ticks.replay import valid_ticks

SINGLES = {
    "psi_spread_w2000_t4": ("spread_bp", lambda: PSIDetector(window=2000, threshold=4.0)),
    "psi_spread_w2000_t2": ("spread_bp", lambda: PSIDetector(window=2000, threshold=2.0)),
    "psi_vol_w2000_t4": ("vol_bp", lambda: PSIDetector(window=2000, threshold=4.0)),
    "psi_vol_w2000_t2": ("vol_bp", lambda: PSIDetector(window=2000, threshold=2.0)),
    "psi_dt_w2000_t4": ("dt_s", lambda: PSIDetector(window=2000, threshold=4.0)),
    "psi_activity_w2000_t4": ("activity_1m", lambda: PSIDetector(window=2000, threshold=4.0)),
    "adwin_1e-4": ("error", lambda: adwin(1e-4)),
}
WITHIN = (250, 500, 1000, 2000)


def fine_grid() -> None:
    """Second round (``--fine``): PSI on spread and on volatility around the best pair of the
    first round, with finer checks; only spread x vol pairs are scored."""
    global WITHIN
    SINGLES.clear()
    for feature, short in (("spread_bp", "spread"), ("vol_bp", "vol")):
        for window, threshold, every in itertools.product((1500, 2000), (3.0, 4.0), (100, 250)):
            SINGLES[f"psi_{short}_w{window}_t{threshold:g}_c{every}"] = (
                feature,
                lambda w=window, t=threshold, c=every: PSIDetector(
                    window=w, threshold=t, check_every=c
                ),
            )
    WITHIN = (100, 250, 500)


def switches(data: Path):
    fx, eq = data / "fxcm", data / "equity"
    return [
        ("EURUSD 0501 -> NZDUSD 0502", [fx / "eurusd/20140501_quote.zip"],
         [fx / "nzdusd/20140502_quote.zip"], "lean-quote"),
        ("NZDUSD 0505 -> EURUSD 0506", [fx / "nzdusd/20140505_quote.zip"],
         [fx / "eurusd/20140506_quote.zip"], "lean-quote"),
        ("EURUSD 0513 -> IBM 1008", [fx / "eurusd/20140513_quote.zip"],
         [eq / "ibm/20131008_quote.zip"], "lean-quote"),
    ]  # fmt: skip


def validation_switches(data: Path):
    """Three other real switches, not used to choose the pair (out of sample)."""
    fx, eq = data / "fxcm", data / "equity"
    return [
        ("EURUSD 0507 -> NZDUSD 0508", [fx / "eurusd/20140507_quote.zip"],
         [fx / "nzdusd/20140508_quote.zip"], "lean-quote"),
        ("NZDUSD 0512 -> EURUSD 0514", [fx / "nzdusd/20140512_quote.zip"],
         [fx / "eurusd/20140514_quote.zip"], "lean-quote"),
        ("EURUSD 0515 -> IBM 1010", [fx / "eurusd/20140515_quote.zip"],
         [eq / "ibm/20131010_quote.zip"], "lean-quote"),
    ]  # fmt: skip


def validate_grid() -> None:
    """``--validate``: the chosen pair and the earlier default, on the validation switches."""
    global WITHIN
    SINGLES.clear()
    SINGLES["psi_spread_w2000_t4_c250"] = (
        "spread_bp",
        lambda: PSIDetector(window=2000, threshold=4.0, check_every=250),
    )
    SINGLES["psi_vol_w1500_t3_c100"] = (
        "vol_bp",
        lambda: PSIDetector(window=1500, threshold=3.0, check_every=100),
    )
    SINGLES["psi_spread_w5000_t4"] = ("spread_bp", lambda: PSIDetector(window=5000, threshold=4.0))
    WITHIN = (250,)  # fmt: skip


def alarm_ticks(first, then, fmt) -> tuple[dict[str, list[int]], int, int]:
    live = {n: f() for n, (_w, f) in SINGLES.items()}
    alarms: dict[str, list[int]] = {n: [] for n in SINGLES}
    learner = Learner(make_model("logreg"), 1.0)
    feats: dict[str, TickFeatures] = {}
    count, switch_at = 0, None
    for phase, paths in enumerate((first, then)):
        for tick in valid_ticks(paths, fmt):
            if phase == 1 and switch_at is None:
                switch_at = count
            count += 1
            state = feats.setdefault(tick.symbol, TickFeatures())
            x = state.update(tick)
            if x is None:
                continue
            before = len(learner.quality)
            learner.step(tick.symbol, tick.ts, state.prev_mid, x)
            errors = [abs(p - y) for p, y in learner.quality.tail(len(learner.quality) - before)]
            for name, detector in live.items():
                watch = SINGLES[name][0]
                if watch == "error":
                    fired = any(detector.update(e) for e in errors)
                else:
                    fired = detector.update(x[watch])
                if fired:
                    alarms[name].append(count)
    return alarms, switch_at, count


def confirmed(a: list[int], b: list[int], within: int) -> list[int]:
    """Ticks where A and B have both alarmed within ``within`` ticks; then both re-arm."""
    events = sorted([(t, 0) for t in a] + [(t, 1) for t in b])
    last = [None, None]
    out = []
    for t, who in events:
        last[who] = t
        other = last[1 - who]
        if other is not None and t - other <= within:
            out.append(t)
            last = [None, None]
    return out


def score(ticks: list[int], switch_at: int) -> tuple[int | None, float]:
    before = [t for t in ticks if t < switch_at]
    after = [t for t in ticks if t >= switch_at]
    return (after[0] - switch_at if after else None), len(before) / switch_at * 1e5


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    fine = "--fine" in sys.argv
    if fine:
        fine_grid()
    validating = "--validate" in sys.argv
    if validating:
        validate_grid()
    data = Path(args[0]) if args else Path("../shared/data")
    runs = []
    for label, first, then, fmt in (validation_switches if validating else switches)(data):
        started = time.monotonic()
        alarms, switch_at, count = alarm_ticks(first, then, fmt)
        print(f"{label}: {switch_at:,} + {count - switch_at:,} ticks, "
              f"{time.monotonic() - started:.0f}s", flush=True)  # fmt: skip
        runs.append((label, alarms, switch_at))
    candidates = {n: (lambda al, n=n: al[n]) for n in SINGLES}
    for (a, b), k in itertools.product(itertools.combinations(SINGLES, 2), WITHIN):
        if (fine or validating) and not ("spread" in a and "vol" in b):
            continue
        candidates[f"{a} & {b} <= {k}"] = lambda al, a=a, b=b, k=k: confirmed(al[a], al[b], k)
    rows = []
    for name, pick in candidates.items():
        scores = [score(pick(alarms), switch_at) for _l, alarms, switch_at in runs]
        meets = all(d is not None and d < 2000 and fa <= 1.0 for d, fa in scores)
        worst_delay = max((d if d is not None else 10**9) for d, _ in scores)
        worst_fa = max(fa for _, fa in scores)
        rows.append((meets, worst_delay, worst_fa, name, scores))
    rows.sort(key=lambda r: (not r[0], r[2] > 1.0, r[1], r[2]))
    print("| detector | " + " | ".join(label for label, _a, _s in runs) + " | meets aim |")
    print("|---|" + "---:|" * len(runs) + "---|")
    for meets, _wd, _wf, name, scores in rows[:25]:
        cells = [
            ("no alarm" if d is None else f"{d:,} ticks") + f"; FA {fa:.1f}" for d, fa in scores
        ]
        print(f"| `{name}` | " + " | ".join(cells) + f" | {'yes' if meets else 'no'} |")


if __name__ == "__main__":
    main()
