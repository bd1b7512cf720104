"""The gate rule with and without its profile part, through the live pipeline, on every
stream of `spark research drift`.

    .venv/bin/python -m bench.drift_profile_live [DATA] [--json]

`bench/drift_profile_rule.py` chose the profile part's settings on the statistics alone.
This runs what a worker runs: each stream through the SignalPipeline (logreg, trading off,
the price screen on) with ``SPARK_GATE_RULE`` = ``break+dt_spread`` (the shipped default)
and ``break+dt_spread+profile``, the profile built by ``spark.drift.profile.build`` (what
``spark drift profile`` writes) from the day-files before the streams' day (stocks in their
regular session, as the streams are). Every warning alert counts, whichever part raised it.

Streams: the 60 of `spark research drift` (instrument pairs, pairs at the same level, four
synthetic switches), on the days of `bench/drift_profile_rule.py`: **train** each
instrument's first day-file after its second with 70,000 ticks, **test** its last.
Per stream: caught (an alarm within 2,000 ticks of the switch and none before) or not;
per rule and kind of switch the count.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drift_profile_rule import AFTER, BEFORE, read_data, stream_roles  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WITHIN = 2_000
RULES = ("break+dt_spread", "break+dt_spread+profile")


def _run(task):
    name, kind, a, b, rule, profile_path = task
    from spark.research.drift import _stream, gate_alarms

    stream, switch = _stream(a, b, kind, BEFORE, AFTER)
    alarms = gate_alarms(stream, rule, profile_path)
    return {"stream": name, "kind": kind, "rule": rule, **verdict(alarms, switch)}


def verdict(alarms: list[tuple[int, str]], switch: int) -> dict:
    """A stream's ``gate_alarms`` judged: caught (an alarm within WITHIN ticks of the switch
    and none before), the false alarms before it, the delay and the detector that caught it."""
    before = [t for t, _ in alarms if t < switch]
    after = [(t, d) for t, d in alarms if switch <= t < switch + WITHIN]
    return {
        "caught": not before and bool(after),
        "false_alarms": len(before),
        "delay": after[0][0] + 1 - switch if after else None,
        "by": after[0][1] if after else None,
    }


def main(argv=None) -> int:
    import multiprocessing

    from spark.drift.profile import build
    from spark.research.drift import streams

    started = time.perf_counter()
    args, root, by, loaded = read_data(__doc__, argv)
    roles = stream_roles({n: [len(b) for b in w] for n, w in loaded.items()})
    tmp = Path(tempfile.mkdtemp(prefix="spark-profile-"))
    tasks = []
    for role, at in roles.items():
        profile = build(
            {
                n: [(d.date, b.ts, b.bid, b.ask) for d, b in zip(by[n][: at[n]], w[: at[n]],
                                                                  strict=True)]
                for n, w in loaded.items()
            }
        )  # fmt: skip
        path = tmp / f"{role}.json"
        profile.save(path)
        for name, a, b, kind in streams(root, None, "last"):
            a_day = by[a.instrument][at[a.instrument]]
            b_day = by[b.instrument][at[b.instrument]] if b is not None else None
            for rule in RULES:
                tasks.append((role, (name, kind, a_day, b_day, rule, str(path))))
    del loaded
    out: dict = {"seconds": 0, "days": {r: {n: by[n][k].date for n, k in at.items()}
                                          for r, at in roles.items()}, "rows": []}  # fmt: skip
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_run, [t for _, t in tasks])
    for (role, _), row in zip(tasks, results, strict=True):
        out["rows"].append({"role": role, **row})
    out["seconds"] = round(time.perf_counter() - started)
    out["summary"] = summarise(out["rows"], roles)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"stream days: {out['days']}; {out['seconds']} s")
    print_summary(out["summary"])
    print_streams(out["rows"])
    return 0


def summarise(rows: list[dict], roles) -> dict:
    """Per role and rule: streams caught, streams with a false alarm, by kind of switch, and
    the longest delay of a catch."""
    summary = {}
    for role in roles:
        for rule in RULES:
            mine = [r for r in rows if r["role"] == role and r["rule"] == rule]
            kinds = {}
            for r in mine:
                k = kinds.setdefault(r["kind"], [0, 0])
                k[0] += r["caught"]
                k[1] += 1
            summary[f"{role} {rule}"] = {
                "caught": sum(r["caught"] for r in mine),
                "streams": len(mine),
                "with_false_alarm": sum(r["false_alarms"] > 0 for r in mine),
                "by_kind": kinds,
                "delay_max": max((r["delay"] for r in mine if r["caught"]), default=None),
            }
    return summary


def print_summary(summary: dict) -> None:
    for key, s in summary.items():
        kinds = ", ".join(f"{k} {c}/{n}" for k, (c, n) in s["by_kind"].items())
        print(f"{key:<32} caught {s['caught']}/{s['streams']}, streams with a false alarm "
              f"{s['with_false_alarm']}, longest delay {s['delay_max']} ({kinds})")  # fmt: skip


def print_streams(rows: list[dict]) -> None:
    """Each test stream under the rule with the profile part: caught (by what, when) or not."""
    print(f"test streams, {RULES[1]}:")
    for r in rows:
        if r["role"] == "test" and r["rule"] == RULES[1]:
            state = "caught" if r["caught"] else (
                "false alarm" if r["false_alarms"] else "missed")  # fmt: skip
            print(f"  {r['stream']:<30} {state}"
                  + (f" by {r['by']} after {r['delay']}" if r["caught"] else ""))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
