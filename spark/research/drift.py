"""Drift rules measured where they must generalise (docs/drift.md, issue 16 point 3).

Streams, each "A then B" under one symbol, continuous in event time (B's clock is moved to
start 1 s after A's last tick, keeping its own spacing):

* **instrument switches**: every ordered pair of instruments, A = the first ``before`` ticks
  of one instrument's last day-file, B = the first ``after`` ticks of the other's;
* **synthetic switches on real data**: A = the first ``before`` ticks of an instrument's
  last day-file, B = its next ``after`` ticks changed from the switch on: ``vol_x3``
  (every mid move ×3 around the mid at the switch, spread kept), ``spread_x3`` (the
  spread ×3 around the mid), ``mid_drift`` (the mid drifts +1 bp a minute), ``frozen``
  (the quote stops changing; ticks keep coming).

Each stream runs through the live pipeline (logreg, trading off) with the gate rule
``psi_confirmed`` and informational PSIs on ``FEATURES`` (scale-free ones among them, so
a price level alone does not decide), for each (window, threshold) of ``GRID``, and ADWIN
on the model's errors. Per detector and stream: the delay (ticks from the switch to the
first alarm at or after it; None: no alarm) and the false alarms per 100k ticks before it.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from spark.pipeline.batch import TickBatch
from spark.research.select import UNIVERSE, Day, find_days, load_day

SWITCHES = ("vol_x3", "spread_x3", "mid_drift", "frozen")
FEATURES = ("spread_bp", "vol_bp", "spread_rel", "spread_z", "activity_5s", "dt_s", "ret_bp")
GRID = ((2_000, 2.0), (2_000, 4.0), (5_000, 2.0), (5_000, 4.0))
TARGET_DELAY, TARGET_FA = 2_000, 1.0
DRIFT_PER_MINUTE = 1e-4  # mid_drift: +1 bp a minute


def follow(first: TickBatch, then: TickBatch) -> TickBatch:
    """``then`` with its clock moved to start 1 s after ``first`` ends."""
    if not len(first) or not len(then):
        return then
    return replace(then, ts=then.ts - then.ts[0] + first.ts[-1] + 1_000_000)


def synthetic(batch: TickBatch, kind: str) -> TickBatch:
    """``batch`` changed by switch ``kind`` (module docstring), from its first tick on."""
    bid, ask = batch.bid.copy(), batch.ask.copy()
    mid, half = (bid + ask) / 2, (ask - bid) / 2
    if kind == "vol_x3":
        mid = mid[0] + 3 * (mid - mid[0])
    elif kind == "spread_x3":
        half = 3 * half
    elif kind == "mid_drift":
        minutes = (batch.ts - batch.ts[0]) / 60e6
        mid = mid * (1 + DRIFT_PER_MINUTE * minutes)
    elif kind == "frozen":
        mid, half = np.full_like(mid, mid[0]), np.full_like(half, half[0])
    else:
        raise ValueError(f"unknown switch {kind!r}; known: {', '.join(SWITCHES)}")
    return replace(batch, bid=mid - half, ask=mid + half)


def streams(
    root: Path, instruments: tuple[str, ...] | None = None, day: str = "last"
) -> list[tuple[str, Day, Day | None, str]]:
    """(name, day of A, day of B or None, switch kind or "pair") of every stream, made of
    each instrument's ``day``: "last" (a test day of the selection protocol) or "first"
    (a train day)."""
    last: dict[str, Day] = {}
    wanted = {i.upper() for i in instruments} if instruments else None
    for found in find_days(root):  # each instrument's days in date order
        if (wanted is None or found.instrument in wanted) and (
            day == "last" or found.instrument not in last
        ):
            last[found.instrument] = found
    names = [i.name for i in UNIVERSE if i.name in last]
    out = [(f"{a} -> {b}", last[a], last[b], "pair") for a in names for b in names if a != b]
    out += [(f"{a} {kind}", last[a], None, kind) for a in names for kind in SWITCHES]
    return out


def _stream(a: Day, b: Day | None, kind: str, before: int, after: int) -> tuple[TickBatch, int]:
    from spark.drift.evaluate import one_stream

    day = load_day(a, before + after)
    if b is None:
        cut = max(1, min(before, len(day) - after))
        first, then = day.take(0, cut), synthetic(day.take(cut, cut + after), kind)
    else:
        first = day.take(0, min(before, len(day)))
        then = load_day(b, after)
    return one_stream(first, follow(first, then)), len(first)


def measure(task) -> tuple[str, dict]:
    """Every detector's delay and false alarms on one stream, for each (window, threshold)."""
    from spark.pipeline.offline import OfflineRun
    from spark.settings import CONFIRMED, Settings

    name, a, b, kind, before, after = task
    stream, switch = _stream(a, b, kind, before, after)
    rows: dict[str, dict] = {}
    for window, threshold in GRID:
        base = Settings().with_models(model="logreg", challengers=())
        settings = replace(
            base,
            drift=replace(
                base.drift,
                watch=FEATURES,
                rule=CONFIRMED,
                window=window,
                threshold=threshold,
                concept_gates=False,
            ),
            gate=True,
            trading=False,
        )
        alarms: dict[str, list[int]] = {}
        for lo, idx, result in OfflineRun(settings, partitions=1).run(stream):
            for i, alert in result.alerts:
                if alert["detector"] == "psi":
                    key = f"psi_{alert['feature']}_w{window}_t{threshold:g}"
                elif alert["detector"] == "psi_confirmed" and (window, threshold) == GRID[0]:
                    key = "psi_confirmed (gate default)"
                elif alert["detector"] == "adwin" and (window, threshold) == GRID[0]:
                    key = "adwin"
                else:
                    continue
                alarms.setdefault(key, []).append(int(lo + idx[i]))
        keys = [f"psi_{f}_w{window}_t{threshold:g}" for f in FEATURES]
        if (window, threshold) == GRID[0]:
            keys += ["psi_confirmed (gate default)", "adwin"]
        for key in keys:
            found = alarms.get(key, [])
            false = sum(1 for t in found if t < switch)
            later = [t for t in found if t >= switch]
            rows[key] = {
                "delay_ticks": later[0] + 1 - switch if later else None,
                "false_per_100k": false / switch * 1e5,
                "alarms": found,
            }
    return name, {"switch_tick": switch, "ticks": len(stream), "detectors": rows}


def map_streams(measure_one, tasks: list, jobs: int, on_stream=None) -> dict[str, dict]:
    """name -> row of ``measure_one(task)`` (which returns (name, row)) for every task, in
    ``jobs`` processes (spawned: the numba kernels compile once in each)."""
    results: dict[str, dict] = {}
    if jobs > 1:
        with multiprocessing.get_context("spawn").Pool(jobs) as pool:
            for name, row in pool.imap_unordered(measure_one, tasks):
                results[name] = row
                if on_stream:
                    on_stream(len(results), len(tasks))
    else:
        for task in tasks:
            name, row = measure_one(task)
            results[name] = row
            if on_stream:
                on_stream(len(results), len(tasks))
    return results


def run_matrix(
    root: Path,
    *,
    before: int = 50_000,
    after: int = 20_000,
    jobs: int = 1,
    instruments: tuple[str, ...] | None = None,
    on_stream: Callable[[int, int], None] | None = None,
) -> dict:
    started = time.monotonic()
    tasks = [(*s, before, after) for s in streams(root, instruments, "first")]
    tasks = [(f"train: {t[0]}", *t[1:]) for t in tasks]
    tasks += [(*s, before, after) for s in streams(root, instruments, "last")]
    if not tasks:
        from spark.errors import SparkError

        raise SparkError(f"none of {', '.join(instruments or ())} under {root}")
    results = map_streams(measure, tasks, jobs, on_stream)
    order = [t[0] for t in tasks]
    train = {n: results[n] for n in order if n.startswith("train: ")}
    test = {n: results[n] for n in order if not n.startswith("train: ")}
    rules = combined_rules(train, test)
    return {
        "streams": test,
        "train_streams": train,
        "summary": summarise(test),
        "train_summary": summarise(train),
        "combined": rules,
        "settings": {"before": before, "after": after, "data": str(root)},
        "seconds": time.monotonic() - started,
    }


CONFIRM_WITHIN = (250, 1_000)  # ticks between the two alarms of a confirmed rule


def confirm(a: list[int], b: list[int], within: int) -> list[int]:
    """Alarm ticks of "a confirmed by b", as a confirmed group of ``spark.drift.kernel`` raises
    them: at a tick where both have alarmed, the older alarm at most ``within`` ticks before;
    then both must alarm again."""
    events = sorted([(t, 0) for t in a] + [(t, 1) for t in b])
    last: list[int | None] = [None, None]
    out: list[int] = []
    for t, who in events:
        last[who] = t
        if last[0] is not None and last[1] is not None and t - min(last) <= within:
            out.append(t)
            last = [None, None]
    return out


def _score(results: dict[str, dict], alarms_of) -> dict:
    caught = missed = 0
    false = []
    for row in results.values():
        found, switch = alarms_of(row), row["switch_tick"]
        later = [t for t in found if t >= switch]
        delay = later[0] + 1 - switch if later else None
        caught += delay is not None and delay <= TARGET_DELAY
        missed += delay is None
        false.append(sum(1 for t in found if t < switch) / switch * 1e5)
    return {
        "caught_within_target": caught,
        "missed": missed,
        "streams": len(results),
        "worst_false_per_100k": max(false),
        "mean_false_per_100k": sum(false) / len(false),
        "meets_targets": caught == len(results) and max(false) <= TARGET_FA,
    }


def combined_rules(train: dict[str, dict], test: dict[str, dict], keep: int = 10) -> list[dict]:
    """Every pair of detectors as a confirmed rule (``confirm``, each CONFIRM_WITHIN), scored
    on the train streams (each instrument's first day); the best ``keep`` by (false alarms
    within target on every train stream, switches caught, fewer false alarms), with their
    figures on the test streams (each instrument's last day), which played no part."""
    names = sorted({k for r in train.values() for k in r["detectors"]})
    scored = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for within in CONFIRM_WITHIN:

                def alarms(row, a=a, b=b, within=within):
                    d = row["detectors"]
                    return confirm(d[a]["alarms"], d[b]["alarms"], within)

                figures = _score(train, alarms)
                key = (
                    figures["worst_false_per_100k"] <= TARGET_FA,
                    figures["caught_within_target"],
                    -figures["mean_false_per_100k"],
                )
                scored.append((key, f"{a} & {b} within {within}", alarms, figures))
    scored.sort(key=lambda x: x[0], reverse=True)
    return [
        {"rule": name, "train": figures, "test": _score(test, alarms)}
        for _, name, alarms, figures in scored[:keep]
    ]


def summarise(results: dict[str, dict]) -> list[dict]:
    """Per detector over every stream: switches caught within TARGET_DELAY, the worst delay,
    the worst and mean false alarms per 100k, and whether it meets both targets on all."""
    names = list(dict.fromkeys(k for r in results.values() for k in r["detectors"]))
    out = []
    for det in names:
        rows = [r["detectors"][det] for r in results.values() if det in r["detectors"]]
        delays = [r["delay_ticks"] for r in rows]
        caught = sum(1 for d in delays if d is not None and d <= TARGET_DELAY)
        false = [r["false_per_100k"] for r in rows]
        worst_delay = None if any(d is None for d in delays) else max(delays)
        out.append(
            {
                "detector": det,
                "streams": len(rows),
                "caught_within_target": caught,
                "missed": sum(1 for d in delays if d is None),
                "worst_delay_ticks": worst_delay,
                "median_delay_ticks": float(np.median([d for d in delays if d is not None]))
                if any(d is not None for d in delays)
                else None,
                "worst_false_per_100k": max(false),
                "mean_false_per_100k": sum(false) / len(false),
                "meets_targets": caught == len(rows) and max(false) <= TARGET_FA,
            }
        )
    out.sort(key=lambda r: (-r["caught_within_target"], r["mean_false_per_100k"]))
    return out


def markdown(m: dict) -> str:
    s = m["settings"]
    lines = [
        "# Drift rules across instruments and synthetic switches "
        "(generated by `spark research drift`)",
        "",
        f"Data `{s['data']}`; A = {s['before']:,} ticks, B = {s['after']:,} ticks; "
        f"{len(m['streams'])} test streams (each instrument's last day) and "
        f"{len(m['train_streams'])} train streams (its first day); {m['seconds']:.0f} s. "
        "Targets: delay <= "
        f"{TARGET_DELAY:,} ticks on every switch, <= {TARGET_FA:g} false alarm per 100k ticks.",
        "",
        "## Per detector, over every test stream",
        "",
        "| detector | caught <= 2,000 | missed | median delay | worst delay | mean FA/100k "
        "| worst FA/100k | meets both |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]

    def d(v):
        return "none" if v is None else f"{v:,.0f}"

    for r in m["summary"]:
        lines.append(
            f"| {r['detector']} | {r['caught_within_target']}/{r['streams']} | {r['missed']} | "
            f"{d(r['median_delay_ticks'])} | {d(r['worst_delay_ticks'])} | "
            f"{r['mean_false_per_100k']:.1f} | {r['worst_false_per_100k']:.1f} | "
            f"{'yes' if r['meets_targets'] else 'no'} |"
        )
    lines += [
        "",
        "## Confirmed pairs: chosen on the train streams, reported on the test streams",
        "",
        "Every pair of the detectors above as one rule (an alarm of one confirmed by the other "
        "within 250 or 1,000 ticks), ranked on the train streams (each instrument's first "
        "day): false alarms within target on every stream first, then switches caught, then "
        "fewer false alarms. The test streams (the tables above: each instrument's last day) "
        "played no part in the ranking.",
        "",
        "| rule | train caught | train worst FA/100k | test caught <= 2,000 | test missed "
        "| test mean FA/100k | test worst FA/100k | meets both on test |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in m["combined"]:
        tr, te = r["train"], r["test"]
        lines.append(
            f"| {r['rule']} | {tr['caught_within_target']}/{tr['streams']} | "
            f"{tr['worst_false_per_100k']:.1f} | {te['caught_within_target']}/{te['streams']} | "
            f"{te['missed']} | {te['mean_false_per_100k']:.1f} | "
            f"{te['worst_false_per_100k']:.1f} | {'yes' if te['meets_targets'] else 'no'} |"
        )
    top = [r["detector"] for r in m["summary"][:6]]
    lines += [
        "",
        "## Per stream: delay in ticks / false alarms per 100k (the six detectors above first)",
        "",
        "| stream | " + " | ".join(top) + " |",
        "|---|" + "---:|" * len(top),
    ]
    for name, row in m["streams"].items():
        cells = []
        for det in top:
            r = row["detectors"].get(det)
            cells.append(
                "n/a" if r is None else f"{d(r['delay_ticks'])} / {r['false_per_100k']:.1f}"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_pdf(m: dict, path: Path, detectors: int = 6) -> None:
    """Delays per stream of the best ``detectors`` (a missed switch drawn at the stream's
    length after it), the 2,000-tick target drawn; and the summary table."""
    from spark.research.charts import bar_chart, table, write_pdf

    after = m["settings"]["after"]
    labels = list(m["streams"])
    blocks: list = [
        f" Delay after the switch in ticks (red: {TARGET_DELAY:,}); a missed switch is drawn "
        f"at {after:,}, the ticks after it."
    ]
    for r in m["summary"][:detectors]:
        det = r["detector"]
        delays = []
        for row in m["streams"].values():
            d = row["detectors"].get(det, {}).get("delay_ticks")
            delays.append(after if d is None else d)
        blocks += [det, bar_chart(f"{det}: delay per stream", labels, delays, TARGET_DELAY)]
    head = ["detector", "caught", "missed", "worst delay", "mean FA/100k", "worst FA/100k"]
    rows = [head] + [
        [
            r["detector"],
            f"{r['caught_within_target']}/{r['streams']}",
            str(r["missed"]),
            "none" if r["worst_delay_ticks"] is None else f"{r['worst_delay_ticks']:,}",
            f"{r['mean_false_per_100k']:.1f}",
            f"{r['worst_false_per_100k']:.1f}",
        ]
        for r in m["summary"]
    ]
    blocks += ["Every detector", table(rows)]
    write_pdf(path, "Spark drift rules across switches", blocks)
