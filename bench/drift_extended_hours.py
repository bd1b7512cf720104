"""The default gate rule on whole equity day-files, pre-market and after-hours included.

    .venv/bin/python -m bench.drift_extended_hours [DATA] [--json]

Every drift figure before session 33 read the stocks in their regular session (09:30-16:00
New York), as the selection protocol does. A live equity feed is not cut so: the shared
data runs 04:00-20:00, and a worker fed it sees the open and the close. This runs each
stock day-file whole through the live pipeline with what a worker with no settings runs
(``break+dt_spread+profile``, the shipped kinds file), as ``spark research drift`` runs
its whole days, and says when each alarm fell (New York time, and which part of the day)
and by which detector. No switch is made, so every alarm is a false one by the issue's
measure. A measurement; nothing is chosen from it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

NY = ZoneInfo("America/New_York")
PARTS = (("pre-market", 4.0, 9.5), ("regular", 9.5, 16.0), ("after-hours", 16.0, 20.0))


def part_of(hours: float) -> str:
    return next((name for name, lo, hi in PARTS if lo <= hours < hi), "outside")


def run_day(task: tuple[str, str, str]) -> dict:
    import numpy as np

    from spark.research.drift import PROFILE_RULE, gate_alarms
    from spark.settings import BUNDLED_PATH
    from spark.ticks.columns import read_batch

    name, date, path = task
    batch = read_batch([Path(path)], "lean-quote")[0]
    alarms = gate_alarms(batch, PROFILE_RULE, str(BUNDLED_PATH))
    # New York hours of every tick (one UTC offset a day-file: none of them spans a change)
    offset = dt.datetime.fromtimestamp(int(batch.ts[0]) / 1e6, NY).utcoffset().total_seconds()
    hours = ((batch.ts / 1e6 + offset) % 86_400) / 3_600
    counts = {p: int(np.count_nonzero((lo <= hours) & (hours < hi))) for p, lo, hi in PARTS}
    out = []
    for tick, detector in alarms:
        h = float(hours[tick])
        at = f"{int(h):02d}:{int(h * 60) % 60:02d}:{int(h * 3600) % 60:02d}"
        out.append({"tick": tick, "time": at, "part": part_of(h), "detector": detector})
    return {"instrument": name, "date": date, "ticks": len(batch), "ticks_by_part": counts,
            "alarms": out}  # fmt: skip


def main(argv=None) -> int:
    import multiprocessing

    from spark.research.select import UNIVERSE, find_days

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(Path("../shared/data")))
    parser.add_argument("--json", action="store_true", help="one JSON object, no table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    stocks = tuple(i for i in UNIVERSE if i.session is not None)
    days = find_days(Path(args.data), stocks)
    tasks = [(d.instrument, d.date, d.path) for d in days]
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        rows = pool.map(run_day, tasks, chunksize=1)
    seconds = time.perf_counter() - started
    if args.json:
        print(json.dumps({"days": rows, "seconds": seconds}))
        return 0
    total = {p: sum(r["ticks_by_part"][p] for r in rows) for p, _, _ in PARTS}
    alarms = {p: sum(a["part"] == p for r in rows for a in r["alarms"]) for p, _, _ in PARTS}
    print(
        f"{len(rows)} stock day-files whole, default rule and shipped kinds file, {seconds:.0f} s"
    )
    print("| part of the day | ticks | alarms | per 100k |")
    print("|---|---:|---:|---:|")
    for p, _, _ in PARTS:
        rate = 1e5 * alarms[p] / total[p] if total[p] else float("nan")
        print(f"| {p} | {total[p]:,} | {alarms[p]} | {rate:.2f} |")
    print()
    print("| day-file | ticks | alarms (New York time, part, detector) |")
    print("|---|---:|---|")
    for r in rows:
        said = "; ".join(f"{a['time']} {a['part']} {a['detector']}" for a in r["alarms"]) or "none"
        print(f"| {r['instrument']} {r['date']} | {r['ticks']:,} | {said} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
