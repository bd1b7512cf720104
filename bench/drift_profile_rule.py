"""A drift rule on statistics normalised by the instrument's own time-of-day profile: the
protocol, with train streams on a day before the test streams.

    .venv/bin/python -m bench.drift_profile_rule [DATA] [--json]

Follows `bench/drift_profile.py` (session 14), which learnt a profile on earlier days and
compared the largest residual on the profile days with the test streams. Two faults of that
probe are mended here: its limit was the largest residual *on the days the profile was
learnt from* (in sample: a one-day profile gives near-zero limits), and every tick above the
limit counted, so one news spike on a profile day set the FX limits to 3.4-3.8 (log units).

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
70,000 ticks (FX: 2014-05-05, as 05-04 is a short Sunday; stocks: 2013-10-09), profile from
the day-files before it.
**Test streams** (reported, never used to choose): each instrument's last day, profile from
every earlier day.

**Settings**: hold 1, 500 or 1,000 ticks × slow 0 or 10,000 × margin 1, 1.25 or 1.5.
**Rule** (written before any run, session 27): the setting with no alarm before the switch
on any train stream that catches the most train switches within 2,000 ticks; ties to the
larger margin, then the longer hold, then slow 0.

Disclosed: the first run (session 27) multiplied the limit by the margin. A limit can be
negative (log units), so a larger margin lowered it; that run's figures were seen (best
train 17/40 caught without false alarm) before the margin was made additive in log units
as written above. Nothing else was changed after it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
BUCKET_US, DAY_US = 1800 * 10**6, 86_400 * 10**6
WARM, WITHIN, BEFORE, AFTER = 5_000, 2_000, 50_000, 20_000
HOLDS, SLOWS, MARGINS = (1, 500, 1_000), (0, 10_000), (1.0, 1.25, 1.5)


@njit(cache=True)
def _stats(bid, ask):
    """Per tick: fast EW mean of log spread/mid (200 ticks), fast EW mean of log |move|
    (20 moves; NaN before the first move)."""
    n = len(bid)
    spread, move = np.empty(n), np.full(n, np.nan)
    a_s, a_m = 2.0 / 201.0, 2.0 / 21.0
    mid0 = (bid[0] + ask[0]) / 2
    s = math.log(max((ask[0] - bid[0]) / mid0, 1e-7))
    m, moves = 0.0, 0
    spread[0] = s
    for t in range(1, n):
        mid, prev = (bid[t] + ask[t]) / 2, (bid[t - 1] + ask[t - 1]) / 2
        s += a_s * (math.log(max((ask[t] - bid[t]) / mid, 1e-7)) - s)
        spread[t] = s
        a = abs(math.log(mid / prev))
        if a > 0:
            la = math.log(a)
            m = la if moves == 0 else m + a_m * (la - m)
            moves += 1
        if moves:
            move[t] = m
    return spread, move


@njit(cache=True)
def _slow_dev(x, span):
    out = np.full(len(x), np.nan)
    a, m = 2.0 / (span + 1.0), np.nan
    for t in range(len(x)):
        v = x[t]
        if math.isnan(v):
            continue
        if math.isnan(m):
            m = v
        out[t] = v - m
        m += a * (v - m)
    return out


@njit(cache=True)
def _held(x, w):
    """The least of the last ``w`` values (NaN if any is NaN), by a monotone deque."""
    n = len(x)
    out = np.full(n, np.nan)
    q = np.empty(n, np.int64)
    head = tail = 0
    last_nan = -1
    for t in range(n):
        v = x[t]
        if math.isnan(v):
            last_nan = t
            head = tail = 0
        else:
            while tail > head and x[q[tail - 1]] >= v:
                tail -= 1
            q[tail] = t
            tail += 1
        while tail > head and q[head] <= t - w:
            head += 1
        if t >= w - 1 and last_nan <= t - w and tail > head:
            out[t] = x[q[head]]
    return out


def statistic(ts, spread, move, profile, hold, slow):
    """(ticks, 2): the held residuals of the two statistics."""
    bucket = (ts % DAY_US) // BUCKET_US
    base = np.array([profile.get(int(k), (np.nan, np.nan)) for k in bucket]).reshape(-1, 2)
    out = np.empty((len(ts), 2))
    for j, x in enumerate((spread, move)):
        r = x - base[:, j]
        if slow:
            r = _slow_dev(r, float(slow))
        out[:, j] = _held(r, hold) if hold > 1 else r
    return out


def make_profile(days):
    ts = np.concatenate([d[0] for d in days])
    spread = np.concatenate([d[1] for d in days])
    move = np.concatenate([d[2] for d in days])
    bucket = (ts % DAY_US) // BUCKET_US
    return {
        int(k): (float(np.nanmedian(spread[bucket == k])), float(np.nanmedian(move[bucket == k])))
        for k in np.unique(bucket)
    }


def limits(days, hold, slow):
    """Per statistic: the largest held residual on each profile day against the profile of
    the other profile days (leave one out)."""
    worst = np.full(2, -np.inf)
    for k, (ts, spread, move) in enumerate(days):
        profile = make_profile([d for j, d in enumerate(days) if j != k])
        stat = statistic(ts, spread, move, profile, hold, slow)[WARM:]
        with np.errstate(all="ignore"):
            worst = np.fmax(worst, np.nanmax(stat, axis=0, initial=-np.inf))
    return worst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from spark.research.drift import LEVEL, _stream, streams
    from spark.research.select import find_days, load_day

    started = time.perf_counter()
    root = Path(args.data)
    by: dict[str, list] = {}
    for d in find_days(root):
        by.setdefault(d.instrument, []).append(d)
    whole = {
        name: [(b.ts, *_stats(b.bid, b.ask)) for b in (load_day(d, 10**12) for d in days)]
        for name, days in by.items()
    }
    # per role and instrument, the index of the streams' day; the profile from the days before
    first_full = {
        n: next(k for k in range(2, len(w)) if len(w[k][0]) >= BEFORE + AFTER)
        for n, w in whole.items()
    }
    roles = {"train": first_full, "test": {n: len(w) - 1 for n, w in whole.items()}}
    report: dict = {"settings": [], "roles": {}}
    cached: dict = {}
    for role, at in roles.items():
        made = []
        for name, a, b, kind in streams(root, None, "last"):
            if kind == "pair":
                continue
            a_day = by[a.instrument][at[a.instrument]]
            b_day = by[b.instrument][at[b.instrument]] if b is not None else None
            stream, switch = _stream(a_day, b_day, kind, BEFORE, AFTER)
            made.append((name, a.instrument, kind, stream, switch, _stats(stream.bid, stream.ask)))
        cached[role] = made
        report["roles"][role] = {name: by[name][at[name]].date for name in by}
    for hold in HOLDS:
        for slow in SLOWS:
            per_role = {}
            for role, at in roles.items():
                prof_days = {n: w[: at[n]] for n, w in whole.items()}
                profiles = {n: make_profile(ds) for n, ds in prof_days.items()}
                base = {n: limits(ds, hold, slow) for n, ds in prof_days.items()}
                per_role[role] = [
                    (
                        name,
                        inst,
                        kind,
                        switch,
                        statistic(stream.ts, *st, profiles[inst], hold, slow),
                        base[inst],
                    )
                    for name, inst, kind, stream, switch, st in cached[role]
                ]
            for margin in MARGINS:
                row = {"hold": hold, "slow": slow, "margin": margin}
                for role, scored in per_role.items():
                    caught, false, lines = 0, 0, []
                    for name, _inst, kind, switch, stat, base in scored:
                        limit = base + math.log(margin)
                        with np.errstate(invalid="ignore"):
                            alarm = (stat > limit).any(axis=1)
                        alarm[:WARM] = False
                        pre = bool(alarm[:switch].any())
                        post = np.flatnonzero(alarm[switch : switch + WITHIN])
                        ok = not pre and len(post) > 0
                        caught += ok
                        false += pre
                        lines.append(
                            {
                                "stream": name,
                                "kind": "same level" if kind == LEVEL else kind,
                                "false_alarm": pre,
                                "delay": int(post[0]) + 1 if len(post) else None,
                                "caught": ok,
                            }
                        )
                    row[role] = {
                        "caught": caught,
                        "streams": len(scored),
                        "with_false_alarm": false,
                        "lines": lines,
                    }
                report["settings"].append(row)

    def rank(r):
        return (
            r["train"]["with_false_alarm"] == 0,
            r["train"]["caught"],
            r["margin"],
            r["hold"],
            -r["slow"],
        )

    best = max(report["settings"], key=rank)
    report["chosen"] = {k: best[k] for k in ("hold", "slow", "margin")}
    report["seconds"] = round(time.perf_counter() - started)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"stream days (profile from the days before): {report['roles']}; {report['seconds']} s")
    print("hold  slow  margin | train caught  false | test caught  false")
    for r in report["settings"]:
        print(
            f"{r['hold']:>5} {r['slow']:>5} {r['margin']:>5} | {r['train']['caught']:>3}/"
            f"{r['train']['streams']} {r['train']['with_false_alarm']:>3} | "
            f"{r['test']['caught']:>3}/{r['test']['streams']} {r['test']['with_false_alarm']:>3}"
        )
    print(f"chosen on train: {report['chosen']}")
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
