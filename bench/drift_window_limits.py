"""The ninth run: in the FX day's rollover window, mute a pair's profile part (shipped in
session 36) or hold the window's ticks to limits of their own? Chosen on train streams
placed as recorded and inside the window.

    .venv/bin/python -m bench.drift_window_limits [DATA] [--json]

**Why** (session 36). The eighth run of `bench/drift_self_rule.py` chose to leave the
rollover (16:55-18:30 New York) out of the fx limits, and workers mute a currency pair's
profile part there. None of the shared data's streams switches in that window, so the run
could not weigh what a switch there costs. `bench/drift_rollover_cost.py` measured it: with
the switch moved to 17:00 New York the FX-named streams lose 10 of 22 catches. An
exploration on the train streams only (docs/drift.md, session 36; disclosed) suggested
that limits learnt on the window's own ticks would keep most of them.

**Setting**: the eighth run's choice, fixed: flat, warm-up 15,000, slow 5,000, hold 1,000,
lag 1,000, budget 0.25, margin 1.5, the payrolls windows left out, rollover R = 90; limits
of an instrument from the other instruments of its kind (``--by-kind``), on their days
before their own stream day in the role, as the eighth run.

**Modes** (the dimension measured):
* ``mute`` (shipped): on an FX instrument, the held residuals in the window are NaN
  everywhere (they set no limit and raise no alarm);
* ``own``: they set no everyday limit, as before, but the window's held residuals of the
  peers' days set a second pair of limits, budgeted the same way (``limits_of`` with the
  same budget over the same days, every tick outside the window NaN); a tick in the window
  alarms beyond those, a tick outside beyond the everyday ones.

**Placements** of each stream: ``recorded``, and ``17:00``: every timestamp moved by one
constant so that the switch tick comes at 17:00 New York on its own day (the ticks are the
recorded ones; the statistics read no time of day, so only the window's place moves).

**Rule** (written before the run, session 36): a mode qualifies when no train stream
alarms before its switch at either placement and every train day-file up to the train
stream day, whole, has at most 1 alarm per 100k; of those, the mode catching the most
train switches over both placements; a tie to ``mute`` (the shipped one). Test streams at
both placements and the 41 whole day-files (test-role limits) are reported, not chosen on.
If ``own`` is chosen, shipping it means a second set of limits in the kinds file and a
per-tick window flag in the compiled kernel and its oracle, measured then through the live
pipeline; this run only says whether it is worth doing.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.drift_self_rule as rule  # noqa: E402
from bench.drift_profile_rule import judge, read_data, role_streams, stream_roles  # noqa: E402
from bench.drift_rollover_cost import shift_to  # noqa: E402

WARM, SLOW, HOLD, LAG, BUDGET, MARGIN, ROLL = 15_000, 5_000, 1_000, 1_000, 0.25, 1.5, 90
MODES, PLACES = ("mute", "own"), ("recorded", "17:00")


def window(ts: np.ndarray, inst: str) -> np.ndarray:
    """Per tick: inside the rollover window (an FX instrument only)."""
    return rule.in_rollover(ts, inst, ROLL)


def split(pair: tuple, win: np.ndarray) -> tuple:
    """(outside, inside): copies of a held pair with the other part NaN."""
    out = tuple(np.where(win[:, None], np.nan, x) for x in pair)
    ins = tuple(np.where(win[:, None], x, np.nan) for x in pair)
    return out, ins


def beyond(pair, win, everyday, own, mode: str) -> np.ndarray:
    """Per tick: a statistic beyond its limit + the margin (``own``: the window's limits
    inside the window; ``mute``: nothing inside it)."""
    extra = math.log(MARGIN)
    high, low = pair
    with np.errstate(invalid="ignore"):
        day = (high > everyday[0] + extra).any(axis=1) | (low < everyday[1] - extra).any(axis=1)
        if mode == "mute":
            return day & ~win
        inn = (high > own[0] + extra).any(axis=1) | (low < own[1] - extra).any(axis=1)
    return np.where(win, inn, day)


def rises(flags: np.ndarray) -> int:
    flags = flags.copy()
    flags[:WARM] = False
    return int((flags[1:] & ~flags[:-1]).sum())


def main(argv=None) -> int:
    from spark.drift.profile import N_BUCKETS, day_stats

    started = time.perf_counter()
    rule.BY_KIND, rule.RELEASES, rule.LAG_OF = True, True, LAG
    args, root, by, batches = read_data(__doc__, argv)
    whole = {n: [(b.ts, day_stats(b.ts, b.bid, b.ask)) for b in bs] for n, bs in batches.items()}
    del batches
    roles = stream_roles({n: [len(d[0]) for d in w] for n, w in whole.items()})
    flat = np.zeros((N_BUCKETS, 2))
    held = {n: [(ts, rule.held_pair(ts, st, flat, HOLD, SLOW)) for ts, st in w]
            for n, w in whole.items()}  # fmt: skip
    limits = {}  # (role, instrument) -> (everyday (upper, lower), own (upper, lower))
    for role, at in roles.items():
        for n in whole:
            outs, ins = [], []
            for m in rule.peers(n, whole):
                for ts, pair in held[m][: at[m]]:
                    o, i = split(pair, window(ts, m))
                    outs.append(tuple(x[WARM:] for x in o))
                    ins.append(tuple(x[WARM:] for x in i))
            limits[role, n] = (rule.bounds(outs, BUDGET), rule.bounds(ins, BUDGET))
    cached = {role: role_streams(root, by, at, lambda s: day_stats(s.ts, s.bid, s.ask))
              for role, at in roles.items()}  # fmt: skip
    report: dict = {"modes": {}, "limits": {}}
    for (role, n), (every, own) in limits.items():
        report["limits"][f"{role} {n}"] = {"everyday": [x.round(3).tolist() for x in every],
                                           "own": [x.round(3).tolist() for x in own]}  # fmt: skip
    for mode in MODES:
        row: dict = {}
        worst = 0.0
        for n, days in held.items():
            for ts, pair in days[: roles["train"][n] + 1]:
                count = rises(beyond(pair, window(ts, n), *limits["train", n], mode))
                worst = max(worst, count / len(ts) * 1e5)
        row["train_day_worst_per_100k"] = worst
        for role in roles:
            for place in PLACES:
                lines = []
                for name, inst, kind, stream, switch, st in cached[role]:
                    pair = rule.held_pair(stream.ts, st, flat, HOLD, SLOW)
                    moved = place != "recorded"
                    ts = stream.ts + (shift_to(stream.ts, switch, dt.time(17)) if moved else 0)
                    alarm = beyond(pair, window(ts, inst), *limits[role, inst], mode)
                    ok, pre, delay = judge(alarm, WARM, switch)
                    lines.append({"stream": name, "kind": kind, "caught": ok,
                                  "false_alarm": pre, "delay": delay})  # fmt: skip
                row[f"{role} {place}"] = {
                    "caught": sum(x["caught"] for x in lines),
                    "with_false_alarm": sum(x["false_alarm"] for x in lines),
                    "streams": len(lines),
                    "lines": lines,
                }
        whole_days = {}
        for n, days in held.items():
            for k, (ts, pair) in enumerate(days):
                count = rises(beyond(pair, window(ts, n), *limits["test", n], mode))
                whole_days[f"{n} {by[n][k].date}"] = {"ticks": len(ts), "alarms": count}
        row["whole_days"] = whole_days
        report["modes"][mode] = row

    def rank(mode):
        r = report["modes"][mode]
        ok = r["train_day_worst_per_100k"] <= 1.0 and not any(
            r[f"train {p}"]["with_false_alarm"] for p in PLACES
        )
        return (ok, sum(r[f"train {p}"]["caught"] for p in PLACES), mode == "mute")  # fmt: skip

    report["chosen"] = max(MODES, key=rank)
    report["seconds"] = round(time.perf_counter() - started)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{report['seconds']} s; chosen on the train streams: {report['chosen']}")
    for mode, r in report["modes"].items():
        cells = " | ".join(f"{key} {r[key]['caught']}/{r[key]['streams']} "
                           f"(false {r[key]['with_false_alarm']})"
                           for key in (f"{ro} {p}" for ro in roles for p in PLACES))  # fmt: skip
        days = r["whole_days"]
        alarms = sum(d["alarms"] for d in days.values())
        ticks = sum(d["ticks"] for d in days.values())
        over = [k for k, d in days.items() if d["alarms"] / d["ticks"] * 1e5 > 1]
        print(f"{mode:<5} train days worst {r['train_day_worst_per_100k']:.2f}/100k | {cells}")
        print(
            f"      whole days: {alarms} alarms on {len(days)} day-files "
            f"({alarms / ticks * 1e5:.3f} per 100k), over 1 per 100k: {over or 'none'}"
        )
        for k, d in days.items():
            if d["alarms"]:
                print(f"        {k}: {d['alarms']}")
    for key, lim in report["limits"].items():
        if rule.KINDS.get(key.split()[1]) == "fx":
            print(f"  limits {key}: {lim}")
    for mode in MODES:
        print(f"{mode}: test streams at 17:00")
        for x in report["modes"][mode]["test 17:00"]["lines"]:
            if rule.KINDS.get(x["stream"].split()[0]) == "fx":
                state = "caught" if x["caught"] else ("false" if x["false_alarm"] else "missed")
                print(f"  {x['stream']:<30} {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
