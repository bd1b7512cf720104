"""How much of each synthetic switch is in the data within the target's 2,000 ticks (session
30; a measurement of the streams, not of a detector).

    .venv/bin/python -m bench.drift_switch_visible [DATA] [--json]

`spark research drift` builds its synthetic switches (``spark.research.drift.synthetic``)
from a real day: A's first 50,000 ticks, then the next ticks changed. Prices stay on the
instrument's grid (session 28). A switch can then change few quotes or none within the
2,000 ticks in which the issue asks for an alarm: a drift of the mid smaller than half a
price step is rounded away. Per synthetic stream of both roles (train: each instrument's
first day-file, test: its last, as the report reads them), within the 2,000 ticks after the
switch:

* the ticks whose bid or ask differs from the unswitched day's;
* the mid's moves on the unswitched day, and after the switch;
* the seconds those 2,000 ticks span.

A stream with no tick changed cannot be caught within the target by any detector: until the
2,000th tick it *is* the real day.

For each mid-drift stream, also the drift reached by the 2,000th tick (bp) and how often the
instrument's real days move that much: over every day-file, the change of the log mid over
2,000 ticks; the share of windows whose |change| reaches the drift, and its rises above it
per 100k ticks (what a detector of the mid's change over 2,000 ticks, set to catch the
drift, would raise on real days). The same for that change scaled by the recent volatility,
z = change / (sigma * sqrt(2,000)), sigma the RMS 1-tick log-mid return over the 20,000
ticks before the window (``zscores``): the stream's |z| at its 2,000th tick after the switch,
its largest before the switch, and how often real days reach that |z|.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
BEFORE, AFTER, WITHIN = 50_000, 20_000, 2_000  # the report's stream and target


def measure(day, kind: str) -> dict:
    """One synthetic stream's figures (the module docstring), cut as ``_stream`` cuts it."""
    from spark.research.drift import synthetic
    from spark.research.select import load_day

    ticks = load_day(day, BEFORE + AFTER)
    cut = max(1, min(BEFORE, len(ticks) - AFTER))
    real = ticks.take(cut, cut + WITHIN)
    switched = synthetic(ticks.take(cut, cut + AFTER), kind).take(0, WITHIN)
    # a price put back on the grid can differ from the real one in its last bits only
    changed = ~np.isclose(switched.bid, real.bid, rtol=1e-12, atol=0) | ~np.isclose(
        switched.ask, real.ask, rtol=1e-12, atol=0
    )

    def moves(b) -> int:
        return int((np.diff((b.bid + b.ask) / 2) != 0).sum())

    return {
        "changed": int(changed.sum()),
        "ticks": len(real),
        "mid_moves_real": moves(real),
        "mid_moves_switched": moves(switched),
        "seconds": float((real.ts[-1] - real.ts[0]) / 1e6),
    }


PAST = 20_000  # ticks whose 1-tick moves scale ``zscores``


def zscores(mid_bp: np.ndarray) -> np.ndarray:
    """|z| of each 2,000-tick change of ``mid_bp`` (log mid, bp) ending at the tick, scaled
    by the RMS 1-tick move over the ``PAST`` ticks before the window (NaN: too early)."""
    r = np.diff(mid_bp)
    c2 = np.r_[0.0, np.cumsum(r * r)]
    out = np.full(len(mid_bp), np.nan)
    t = np.arange(PAST + WITHIN, len(mid_bp))
    var = (c2[t - WITHIN] - c2[t - WITHIN - PAST]) / PAST
    out[t] = np.abs(mid_bp[t] - mid_bp[t - WITHIN]) / np.sqrt(var * WITHIN + 1e-12)
    return out


def ordinary(days, drift_bp: float, z_at: float | None = None) -> dict:
    """How often ``days`` (an instrument's day-files) move ``drift_bp`` over 2,000 ticks, and
    (``z_at``) reach that |z| (``zscores``)."""
    from spark.research.select import load_day

    windows = rises = ticks = z_rises = z_ticks = 0
    for day in days:
        b = load_day(day, 10**12)
        mid = np.log((b.bid + b.ask) / 2) * 1e4
        over = np.abs(mid[WITHIN:] - mid[:-WITHIN]) >= drift_bp
        windows += int(over.sum())
        rises += int(over[0]) + int((over[1:] & ~over[:-1]).sum())
        ticks += len(over)
        if z_at is not None:
            z = zscores(mid)
            z = z[np.isfinite(z)] >= z_at
            z_rises += int(z[:1].sum()) + int((z[1:] & ~z[:-1]).sum())
            z_ticks += len(z)
    return {
        "windows_share": windows / max(1, ticks),
        "rises_per_100k": rises / max(1, ticks) * 1e5,
        "z_rises_per_100k": z_rises / max(1, z_ticks) * 1e5,
    }


def main(argv=None) -> int:
    from spark.research.drift import DRIFT_PER_MINUTE, _stream, streams
    from spark.research.select import find_days

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for role, which in (("train", "first"), ("test", "last")):
        for name, a, b, kind in streams(Path(args.data), None, which):
            if b is None:  # a synthetic switch of one day
                rows.append({"role": role, "stream": name, "kind": kind, **measure(a, kind)})
                if kind == "mid_drift":
                    r = rows[-1]
                    r["drift_bp"] = DRIFT_PER_MINUTE * 1e4 * r["seconds"] / 60
                    stream, switch = _stream(a, None, kind, BEFORE, AFTER)
                    z = zscores(np.log((stream.bid + stream.ask) / 2) * 1e4)
                    r["z_at_2000"] = float(z[switch + WITHIN - 1])
                    r["z_max_before"] = float(np.nanmax(z[:switch], initial=0.0))
                    same = [d for d in find_days(Path(args.data)) if d.instrument == a.instrument]
                    r["real_days"] = ordinary(same, r["drift_bp"], r["z_at_2000"])
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"within {WITHIN:,} ticks of the switch:")
    print("role  stream                 ticks changed  mid moves real -> switched  seconds")
    for r in rows:
        print(f"{r['role']:<5} {r['stream']:<22} {r['changed']:>7,}/{r['ticks']:,} "
              f"{r['mid_moves_real']:>10,} -> {r['mid_moves_switched']:<10,} "
              f"{r['seconds']:>8,.0f}")  # fmt: skip
    print("mid drift: the drift reached by the 2,000th tick, and real 2,000-tick windows "
          "moving as much:")  # fmt: skip
    for r in rows:
        if "drift_bp" in r:
            real = r["real_days"]
            print(f"{r['role']:<5} {r['stream']:<22} {r['drift_bp']:6.1f} bp: "
                  f"{real['windows_share']:6.2%} of windows, "
                  f"{real['rises_per_100k']:6.1f} rises per 100k ticks; |z| {r['z_at_2000']:.2f} "
                  f"(before the switch up to {r['z_max_before']:.2f}), real days reach it "
                  f"{real['z_rises_per_100k']:.1f} times per 100k")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
