"""A drift rule on statistics normalised by the instrument's own time-of-day profile: the
protocol, with train streams on a day before the test streams.

    .venv/bin/python -m bench.drift_profile_rule [DATA] [--json]

Follows `bench/drift_profile.py` (session 14), which learnt a profile on earlier days and
compared the largest residual on the profile days with the test streams. Two faults of that
probe are mended here: its limit was the largest residual *on the days the profile was
learnt from* (in sample: a one-day profile gives near-zero limits), and every tick above the
limit counted, so one news spike on a profile day set the FX limits to 3.4-3.8 (log units).

The computation is the shipped one (``spark.drift.profile``: statistics through the live
detector's compiled kernel, medians, held residuals and leave-one-out limits); until
session 27's second run it was a copy in this file, and both gave the same figures.

**Statistics** (per tick, as `bench/drift_ratios.py`): the fast EW mean of log spread/mid
(200 ticks) and of log |mid move| (20 moves). **Profile**: per instrument, the median of
each per 30-minute bucket of the day (UTC), over the profile days. **Residual**: statistic
minus its bucket's profile; optionally minus its own slow EW mean (``slow`` = 10,000 ticks:
the day's offset) — ``slow`` 0 keeps the residual; then the least residual over the last
``hold`` ticks (a switch persists, a spike does not). **Limit**: per instrument and
statistic, the largest held residual on each profile day scored against a profile of the
*other* profile days (leave one day out), plus log ``margin`` (the statistics are logs: a
margin of 1.25 lets the spread or move size run 25 % above the largest seen). **Alarm**:
either statistic above its limit, after 5,000 ticks of the stream.

**Streams**: those of `spark research drift` except the instrument pairs at different price
levels (the shipped jump rule catches all 20 of those): the same-level pairs (20) and the
four synthetic switches (20), 50,000 ticks of A then 20,000 of B or of the switched A.
**Train streams** (the choice): each instrument's first day-file after its second that has
70,000 ticks (FX: 2014-05-06, as 05-04 is a short Sunday and 05-05 shorter than 70,000; stocks:
2013-10-09), profile from
the day-files before it.
**Test streams** (reported, never used to choose): each instrument's last day, profile from
every earlier day.

Reported for the chosen setting, not used to choose: its alarms on whole days (every one a
false alarm), each day against a profile of the days before it: the stream days, and every
day-file with two day-files before it.

**Settings**: hold 1, 500 or 1,000 ticks × slow 0 or 10,000 × margin 1, 1.25 or 1.5.
**Rule** (written before any run, session 27): the setting with no alarm before the switch
on any train stream that catches the most train switches within 2,000 ticks; ties to the
larger margin, then the longer hold, then slow 0.

Disclosed: the first run (session 27) multiplied the limit by the margin. A limit can be
negative (log units), so a larger margin lowered it; that run's figures were seen (best
train 17/40 caught without false alarm) before the margin was made additive in log units
as written above. Nothing else was changed after it.

**Second run: both sides** (session 27, written before the run). The first run's rule only
alarms on a rise. Both on its train and on its test streams it missed the same four
same-level pairs, each a switch to an instrument with a *narrower* spread and *smaller*
moves in bp (NZDUSD → EURUSD, BAC → AIG, BAC → IBM, AIG → IBM): a fall, which no upper
limit sees. The idea came from those misses, on train and test streams alike; the choice
is again made on the train streams only. Candidate dimension ``sides``: ``up`` (the first
run) or ``both``: also a **lower limit** per statistic, the lowest held residual (the
greatest of the last ``hold``) on each profile day against the other days' profile, minus
log ``margin``, and an alarm when the held residual falls below it. Rule: as above, ties
then to ``up`` (the simpler).

**Third run: budgeted limits** (session 28, written before the run). The second run's
choice missed 4 of 5 volatility ×3 and 4 of 5 spread ×3 test streams. Their residuals
after the switch (about +1.0 in log units) are under limits of up to +2.8 (FX spread): a
limit is the *largest* held residual of any profile day, so one rollover or news burst on
one day decides it. Candidate dimension ``budget``: ``max`` (the limit as before), or a
number B of alarms per 100k ticks: the least limit at and above which the profile days,
each against the other days' profile (leave one day out), would have raised at most B per
100k of their ticks (``spark.drift.profile.budgeted``); B in 1, 0.5, 0.25 (the target is
at most 1 false alarm per 100k ticks). log ``margin`` is added as before. Also from this
run the synthetic switches keep prices on the instrument's grid (`spark.research.drift.
synthetic`); the second run's figures had ``vol_x3`` and ``mid_drift`` stock prices off
their cent grid. Rule: among the settings with no alarm before the switch on any train
stream **and** at most 1 alarm per 100k ticks on each train stream day as a whole (against
the profile and limits of the days before it), the one that catches the most train
switches within 2,000 ticks; ties to the larger margin, the longer hold, slow 0, ``max``,
then the smaller budget, then ``up``. The idea came from the test streams' misses
(disclosed); the choice is made on train streams and days only.

**Fourth run: locked quotes** (session 28, written before the run). The third run's
choice still missed spread ×3 on three of five test streams (EURUSD, BAC, IBM). A locked
or crossed quote (spread 0: 13 % of EURUSD's ticks, 4 % of BAC's) enters the log spread at
its floor, log 1e-7, 8–9 log units under a normal spread, so each one drags the fast mean
down and the residual held over 1,000 ticks never stays above the limit. Candidate
dimension ``locked``: ``floor`` (as before) or ``skip`` (a quote with spread <= 0 leaves the
spread statistic as it was; the move statistic is unchanged), in the statistics of the
profile days, the streams and the live detector alike. The grid is narrowed to the third
run's leading settings on the train streams: hold 500 or 1,000, slow 0, margin 1.25 or
1.5, both sides, budget ``max``, 1 or 0.5 (24 settings with ``locked``). Rule: as the third
run's, ties then to ``floor``. The idea came from the test streams' misses (disclosed);
the choice is made on train streams and days only.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
WARM, WITHIN, BEFORE, AFTER = 5_000, 2_000, 50_000, 20_000
from spark.research.drift import STREAM_TICKS, is_stream_day  # noqa: E402

assert BEFORE + AFTER == STREAM_TICKS  # a train stream day holds a whole stream
# the fourth run's grid; the first three ran hold 1 / 500 / 1,000, slow 0 / 10,000, margin
# 1 / 1.25 / 1.5, sides up / both, and (third) budget max / 1 / 0.5 / 0.25
HOLDS, SLOWS, MARGINS = (500, 1_000), (0,), (1.25, 1.5)
SIDES = ("both",)
BUDGETS = (None, 1.0, 0.5)  # None: the limit is the largest held residual ("max")
LOCKEDS = ("floor", "skip")  # spark.drift.profile.LOCKED_KINDS


def limits(days, hold, slow, low=False, budget=None):
    """Leave-one-day-out limits (spark.drift.profile.limits, the shipped code)."""
    from spark.drift.profile import limits as shipped

    return shipped(days, hold, slow, WARM, low, budget)


def read_data(doc: str, argv=None, flags: tuple[tuple[str, str], ...] = ()) -> tuple:
    """The drift benches' command line (DATA, default ../shared/data; --json; ``flags``:
    more on/off options, (name, help)) and every day-file under DATA, loaded whole: (args,
    root, day-files by instrument in date order, their batches)."""
    from spark.research.select import load_day

    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true")
    for flag, text in flags:
        ap.add_argument(flag, action="store_true", help=text)
    args = ap.parse_args(argv)
    root = Path(args.data)
    by = days_by_instrument(root)
    batches = {n: [load_day(d, 10**12) for d in days] for n, days in by.items()}
    return args, root, by, batches


def days_by_instrument(root: Path) -> dict[str, list]:
    """Each instrument's day-files under ``root``, in date order."""
    from spark.research.select import find_days

    by: dict[str, list] = {}
    for d in find_days(root):
        by.setdefault(d.instrument, []).append(d)
    return by


def stream_roles(lengths: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    """Per role, each instrument's stream day (an index into its days; the profile is made
    of the days before it): train, its first day-file after its second with BEFORE + AFTER
    ticks; test, its last. ``lengths``: ticks of each instrument's days."""
    return {
        "train": {
            n: next(k for k in range(len(w)) if is_stream_day(k, w[k])) for n, w in lengths.items()
        },
        "test": {n: len(w) - 1 for n, w in lengths.items()},
    }


def role_streams(root: Path, by: dict, at: dict, stats, build=None) -> list:
    """The streams of one role, pairs at different price levels left out: (name, instrument
    of A, kind, stream, switch tick, ``stats(stream)``); ``at``: each instrument's stream
    day, an index into ``by`` (``days_by_instrument``). ``build(a_day, b_day, kind, BEFORE,
    AFTER)`` makes each (stream, switch), or None to leave it out (default: ``_stream``)."""
    from spark.research.drift import _stream, streams

    made = []
    for name, a, b, kind in streams(root, None, "last"):
        if kind == "pair":
            continue
        a_day = by[a.instrument][at[a.instrument]]
        b_day = by[b.instrument][at[b.instrument]] if b is not None else None
        got = (build or _stream)(a_day, b_day, kind, BEFORE, AFTER)
        if got is not None:
            stream, switch = got
            made.append((name, a.instrument, kind, stream, switch, stats(stream)))
    return made


def judge(alarm: np.ndarray, warm: int, switch: int) -> tuple[bool, bool, int | None]:
    """A stream's verdict from its per-tick alarm flags (changed in place: nothing in the
    first ``warm`` ticks): (caught within WITHIN ticks of the switch with no alarm before
    it, an alarm before it, the delay to the first alarm after it or None)."""
    alarm[:warm] = False
    pre = bool(alarm[:switch].any())
    post = np.flatnonzero(alarm[switch : switch + WITHIN])
    return not pre and len(post) > 0, pre, int(post[0]) + 1 if len(post) else None


def day_alarms(before: list, day: tuple, setting: dict, bounds=None) -> dict:
    """Alarms of ``setting`` on a whole ``day`` ((ts, stats)) against a profile and limits of
    the days ``before`` it: a statistic's held residual crossing beyond a limit. ``bounds``:
    (the held residuals and low held residuals of ``day``, upper and lower limits), when
    already computed."""
    from spark.drift.profile import held_residuals, medians

    hold, slow, extra = setting["hold"], setting["slow"], math.log(setting["margin"])
    budget = setting.get("budget")
    if bounds is None:
        ts, stats = day
        rows = medians(before)
        bounds = (
            held_residuals(ts, stats, rows, hold, slow),
            held_residuals(ts, stats, rows, hold, slow, True),
            limits(before, hold, slow, budget=budget),
            limits(before, hold, slow, True, budget),
        )
    high, low, upper, lower = bounds
    with np.errstate(invalid="ignore"):
        beyond = high > upper + extra
        if setting["sides"] == "both":
            beyond = np.hstack([beyond, low < lower - extra])
    beyond[:WARM] = False
    alarms = int((beyond[1:] & ~beyond[:-1]).sum())
    ticks = len(day[0])
    return {"ticks": ticks, "alarms": alarms, "per_100k": alarms / ticks * 1e5}


def main(argv=None) -> int:
    from spark.drift.profile import day_stats, held_residuals, left_out, limits_of, medians
    from spark.research.drift import LEVEL

    started = time.perf_counter()
    args, root, by, batches = read_data(__doc__, argv)
    whole_by = {
        locked: {
            name: [(b.ts, day_stats(b.ts, b.bid, b.ask, locked)) for b in bs]
            for name, bs in batches.items()
        }
        for locked in LOCKEDS
    }
    del batches
    roles = stream_roles({n: [len(d[0]) for d in w] for n, w in whole_by[LOCKEDS[0]].items()})
    report: dict = {"settings": [], "roles": {}}
    cached: dict = {}
    for role, at in roles.items():
        cached[role] = role_streams(
            root, by, at, lambda s: {k: day_stats(s.ts, s.bid, s.ask, k) for k in LOCKEDS}
        )
        report["roles"][role] = {name: by[name][at[name]].date for name in by}
    for hold, slow, locked in (
        (h, w, k) for k in LOCKEDS for h in HOLDS for w in SLOWS
    ):  # fmt: skip
        whole = whole_by[locked]
        held, stream_held, day_held = {}, {}, {}
        for role, at in roles.items():
            prof_days = {n: w[: at[n]] for n, w in whole.items()}
            profiles = {n: medians(ds) for n, ds in prof_days.items()}
            held[role] = {
                n: (left_out(ds, hold, slow, WARM), left_out(ds, hold, slow, WARM, True))
                for n, ds in prof_days.items()
            }
            stream_held[role] = [
                (
                    held_residuals(stream.ts, st[locked], profiles[inst], hold, slow),
                    held_residuals(stream.ts, st[locked], profiles[inst], hold, slow, True),
                )
                for _name, inst, _kind, stream, _switch, st in cached[role]
            ]
            day_held[role] = {
                n: tuple(
                    held_residuals(*whole[n][at[n]], profiles[n], hold, slow, low)
                    for low in (False, True)
                )
                for n in whole
            }
        for budget in BUDGETS:
            bounds = {
                role: {
                    n: (limits_of(up, False, budget), limits_of(down, True, budget))
                    for n, (up, down) in h.items()
                }
                for role, h in held.items()
            }
            for margin, sides in ((m, side) for side in SIDES for m in MARGINS):
                row = {"hold": hold, "slow": slow, "margin": margin, "sides": sides,
                       "budget": budget, "locked": locked}  # fmt: skip
                extra = math.log(margin)
                for role in roles:
                    caught, false, lines = 0, 0, []
                    for (name, inst, kind, _s, switch, _st), (stat, low) in zip(
                        cached[role], stream_held[role], strict=True
                    ):
                        upper, lower = bounds[role][inst]
                        with np.errstate(invalid="ignore"):
                            alarm = (stat > upper + extra).any(axis=1)
                            if sides == "both":
                                alarm |= (low < lower - extra).any(axis=1)
                        ok, pre, delay = judge(alarm, WARM, switch)
                        caught += ok
                        false += pre
                        lines.append(
                            {
                                "stream": name,
                                "kind": "same level" if kind == LEVEL else kind,
                                "false_alarm": pre,
                                "delay": delay,
                                "caught": ok,
                            }
                        )
                    days = {
                        n: day_alarms(None, whole[n][roles[role][n]], row,
                                      (*day_held[role][n], *bounds[role][n]))
                        for n in whole
                    }  # fmt: skip
                    row[role] = {
                        "caught": caught,
                        "streams": len(cached[role]),
                        "with_false_alarm": false,
                        "day_worst_per_100k": max(d["per_100k"] for d in days.values()),
                        "lines": lines,
                    }
                report["settings"].append(row)

    def rank(r):
        return (
            r["train"]["with_false_alarm"] == 0 and r["train"]["day_worst_per_100k"] <= 1.0,
            r["train"]["caught"],
            r["margin"],
            r["hold"],
            -r["slow"],
            r["budget"] is None,
            -(r["budget"] or 0),
            r["sides"] == "up",
            r["locked"] == "floor",
        )

    best = max(report["settings"], key=rank)
    report["chosen"] = {k: best[k] for k in ("hold", "slow", "margin", "sides", "budget", "locked")}
    whole = whole_by[best["locked"]]
    # reported, not used to choose: the chosen setting on whole days (every alarm a false
    # one), each against a profile of the days before it: the stream days, then every day
    # with two days before it
    report["whole_days"], report["every_day"] = {}, {}
    for role, at in roles.items():
        for name, days in whole.items():
            key = f"{role} {name} {by[name][at[name]].date}"
            report["whole_days"][key] = day_alarms(days[: at[name]], days[at[name]], best)
    for name, days in whole.items():
        for k in range(2, len(days)):
            report["every_day"][f"{name} {by[name][k].date}"] = day_alarms(days[:k], days[k], best)
    total = sum(v["ticks"] for v in report["every_day"].values())
    report["every_day_total"] = {
        "days": len(report["every_day"]),
        "ticks": total,
        "alarms": sum(v["alarms"] for v in report["every_day"].values()),
        "worst_per_100k": max(v["per_100k"] for v in report["every_day"].values()),
    }
    report["seconds"] = round(time.perf_counter() - started)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"stream days (profile from the days before): {report['roles']}; {report['seconds']} s")
    print("locked hold  slow  margin sides budget | train caught false day/100k | "
          "test caught false day/100k")  # fmt: skip
    for r in report["settings"]:
        budget = "max" if r["budget"] is None else f"{r['budget']:g}"
        print(
            f"{r['locked']:>6} {r['hold']:>5} {r['slow']:>5} {r['margin']:>5} {r['sides']:>5} "
            f"{budget:>5} | "
            f"{r['train']['caught']:>3}/{r['train']['streams']} "
            f"{r['train']['with_false_alarm']:>3} {r['train']['day_worst_per_100k']:6.2f} | "
            f"{r['test']['caught']:>3}/{r['test']['streams']} "
            f"{r['test']['with_false_alarm']:>3} {r['test']['day_worst_per_100k']:6.2f}"
        )
    print(f"chosen on train: {report['chosen']}")
    print("on the stream days as a whole (every alarm false):")
    for day, v in report["whole_days"].items():
        print(
            f"  {day:<26} {v['ticks']:>9,} ticks {v['alarms']:>3} alarms "
            f"{v['per_100k']:.2f} per 100k"
        )
    t = report["every_day_total"]
    print(
        f"every day with two days before it ({t['days']} day-files, {t['ticks']:,} ticks): "
        f"{t['alarms']} alarms, the worst day {t['worst_per_100k']:.2f} per 100k"
    )
    print("its test streams:")
    for line in best["test"]["lines"]:
        state = "caught" if line["caught"] else ("false alarm" if line["false_alarm"] else "missed")
        print(
            f"  {line['stream']:<30} {state}"
            + (f" after {line['delay']} ticks" if line["caught"] else "")
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
