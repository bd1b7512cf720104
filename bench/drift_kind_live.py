"""The gate rule's profile part for an instrument seen for the first time: its kind of
market's entry, through the live pipeline (session 30).

    .venv/bin/python -m bench.drift_kind_live [DATA] [--shipped] [--json]

`bench/drift_self_rule.py --by-kind --shape` (the fifth run) chose the kind entry's settings
on the statistics alone; ``spark drift profile --kind NAME=... --unseen NAME`` ships it. This
runs what a worker given such a file runs, for an instrument it has no day of: each stream
through the SignalPipeline (logreg, trading off, the price screen on, as
`bench/drift_profile_live.py`) with ``break+dt_spread`` (the default without a profile) and
``break+dt_spread+profile``, the profile holding **no entry of the stream's instrument**,
only the kind entry of its kind of market (``select.MARKET``: FX from the other FX pair, a
stock from the other two stocks) learnt by ``spark.research.drift.kind_profiles`` on those
instruments' day-files before their own stream day, and ``unseen`` = every instrument.

Streams: the 60 of `spark research drift` on the days of `bench/drift_profile_rule.py`
(train: each instrument's first day-file after its second with 70,000 ticks; test: its
last). Caught: an alarm within 2,000 ticks of the switch and none before. Whole days: every
day-file of each instrument from its start, with the test role's kind entry, every alarm
false (no switch); each alarm's detector named.

``--shipped`` (session 31): instead, every stream and day-file with the shipped default
profile (``spark/drift/kinds.json``, ``bench/drift_kinds_file.py``), kind entries learnt on
each instrument's train days, its own among them. The test streams (each instrument's last
day-file) and the whole day-files after the train days are out of sample for it; the train
streams and the train days are not, and are marked so.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.drift_profile_live import (  # noqa: E402
    RULES,
    _run,
    print_streams,
    print_summary,
    summarise,
)
from bench.drift_profile_rule import read_data, stream_roles  # noqa: E402


def _whole(task):
    name, day, path = task
    from spark.research.drift import gate_alarms
    from spark.research.select import load_day

    batch = load_day(day, 10**12)
    alarms = gate_alarms(batch, RULES[1], path)
    return {"day": name, "ticks": len(batch), "alarms": [d for _, d in alarms]}


def main(argv=None) -> int:
    import multiprocessing

    from spark.research.drift import kind_profiles, streams

    started = time.perf_counter()
    shipped = ("--shipped", "every stream with the shipped default profile (session 31)")
    args, root, by, loaded = read_data(__doc__, argv, (shipped,))
    roles = stream_roles({n: [len(b) for b in w] for n, w in loaded.items()})
    tmp = Path(tempfile.mkdtemp(prefix="spark-kind-"))
    paths = {}
    if args.shipped:
        from spark.settings import BUNDLED_PATH

        paths = {(role, n): str(BUNDLED_PATH) for role in roles for n in loaded}
    # the days before each instrument's stream day in the role (none: the shipped file)
    for role, at in ({} if args.shipped else roles).items():
        days = {m: [(d.date, b.ts, b.bid, b.ask) for d, b in
                    zip(by[m][: at[m]], loaded[m][: at[m]], strict=True)]
                for m in loaded}  # fmt: skip
        for n, (path, _peers) in kind_profiles(days, tmp, f"{role}-").items():
            paths[role, n] = path
    tasks = []
    for role, at in roles.items():
        for name, a, b, kind in streams(root, None, "last"):
            a_day = by[a.instrument][at[a.instrument]]
            b_day = by[b.instrument][at[b.instrument]] if b is not None else None
            path = str(paths[role, a.instrument])
            for rule in RULES:
                tasks.append((role, (name, kind, a_day, b_day, rule, path)))
    days = [(f"{n} {d.date}", d, str(paths["test", n])) for n in by for d in by[n]]
    seen = {n: {d.date for d in by[n][: roles["train"][n] + 1]} for n in by}  # shipped: in sample
    del loaded
    out: dict = {"seconds": 0, "days": {r: {n: by[n][k].date for n, k in at.items()}
                                          for r, at in roles.items()}, "rows": []}  # fmt: skip
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        results = pool.map(_run, [t for _, t in tasks])
        whole = pool.map(_whole, days)
    for (role, _), row in zip(tasks, results, strict=True):
        out["rows"].append({"role": role, **row})
    for d, (_, day, _) in zip(whole, days, strict=True):
        d["in_sample"] = bool(args.shipped) and day.date in seen[day.instrument]
    out["whole_days"] = whole
    out["shipped"] = bool(args.shipped)
    out["seconds"] = round(time.perf_counter() - started)
    out["summary"] = summarise(out["rows"], roles)
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"stream days: {out['days']}; {out['seconds']} s")
    print_summary(out["summary"])
    groups = [("out of sample", False), ("train days", True)] if args.shipped else [("", False)]
    entry = "the shipped file" if args.shipped else "the kind entry"
    for label, in_sample in groups:
        part = [d for d in whole if d.get("in_sample", False) == in_sample]
        ticks = sum(d["ticks"] for d in part)
        alarms = sum(len(d["alarms"]) for d in part)
        print(f"whole days{', ' + label if label else ''}, {RULES[1]} with {entry}: "
              f"{len(part)} day-files, {ticks:,} ticks, {alarms} alarms "
              f"({alarms / max(ticks, 1) * 1e5:.3f} per 100k)")  # fmt: skip
        for d in part:
            if d["alarms"]:
                print(f"  {d['day']}: {len(d['alarms'])} ("
                      f"{len(d['alarms']) / d['ticks'] * 1e5:.2f} per 100k) by "
                      f"{', '.join(d['alarms'])}")  # fmt: skip
    print_streams(out["rows"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
