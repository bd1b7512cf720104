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


def main(argv=None) -> int:
    from spark.research.drift import streams

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    rows = []
    for role, which in (("train", "first"), ("test", "last")):
        for name, a, b, kind in streams(Path(args.data), None, which):
            if b is None:  # a synthetic switch of one day
                rows.append({"role": role, "stream": name, "kind": kind, **measure(a, kind)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"within {WITHIN:,} ticks of the switch:")
    print("role  stream                 ticks changed  mid moves real -> switched  seconds")
    for r in rows:
        print(f"{r['role']:<5} {r['stream']:<22} {r['changed']:>7,}/{r['ticks']:,} "
              f"{r['mid_moves_real']:>10,} -> {r['mid_moves_switched']:<10,} "
              f"{r['seconds']:>8,.0f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
