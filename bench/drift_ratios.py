"""Why the break rule leaves volatility x3 and spread x3 to chance: the natural range.

    .venv/bin/python bench/drift_ratios.py [DATA] [--json]

For the streams of `spark research drift` (each instrument's first and last day, A =
50,000 ticks, then its own next 20,000 with the spread or every mid move made 3x larger),
two scale-free statistics a detector of those switches would watch:

* ``spread``: log of the spread's fast EW mean (200 ticks) over its slow one (10,000),
* ``move``: log of the typical move size's fast EW mean (20 moves) over its slow one (500),

both computed on log values (``log 3`` = 1.10 is what a sustained x3 adds). Printed per
instrument and day: the largest value in the 50,000 real ticks before the switch, and the
largest in the 2,000 ticks after it. Where the first is larger than the second, no
threshold on that statistic catches the switch within 2,000 ticks without a false alarm
on the same real day. (docs/drift.md, session 14.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent


def ew_means(bid: np.ndarray, ask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per tick: the fast EW mean of log spread (200 ticks), the slow one (10,000) before the
    tick, the fast EW mean of log |move| (20 moves) and the slow one (500) before the tick
    (NaN before the first move)."""
    n = len(bid)
    mid = (bid + ask) / 2
    log_spread = np.log(np.maximum((ask - bid) / mid, 1e-7))
    fast_spread, slow_spread = np.empty(n), np.empty(n)
    fast_move, slow_move = np.full(n, np.nan), np.full(n, np.nan)
    fast = slow = log_spread[0]
    fast_spread[0] = slow_spread[0] = fast
    a_fast, a_slow = 2 / 201, 2 / 10_001
    m_fast = m_slow = 0.0
    b_fast, b_slow = 2 / 21, 2 / 501
    moves = 0
    for t in range(1, n):
        fast += a_fast * (log_spread[t] - fast)
        fast_spread[t], slow_spread[t] = fast, slow
        slow += a_slow * (log_spread[t] - slow)
        a = abs(math.log(mid[t] / mid[t - 1]))
        if a > 0:
            la = math.log(a)
            if moves == 0:
                m_fast = m_slow = la
            m_fast += b_fast * (la - m_fast)
            fast_move[t], slow_move[t] = m_fast, m_slow
            m_slow += b_slow * (la - m_slow)
            moves += 1
        elif moves:
            fast_move[t], slow_move[t] = m_fast, m_slow
    return fast_spread, slow_spread, fast_move, slow_move


def ratios(bid: np.ndarray, ask: np.ndarray) -> np.ndarray:
    """Per tick: (spread, move) statistics of the module docstring (NaN before a move)."""
    fast_spread, slow_spread, fast_move, slow_move = ew_means(bid, ask)
    out = np.column_stack([fast_spread - slow_spread, fast_move - slow_move])
    out[0] = np.nan
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", default=str(ROOT.parent / "shared/data"))
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from spark.research.drift import _stream, streams

    rows = []
    for day in ("first", "last"):
        for _name, a, b, kind in streams(Path(args.data), None, day):
            if kind not in ("vol_x3", "spread_x3"):
                continue
            stream, switch = _stream(a, b, kind, 50_000, 20_000)
            stat = ratios(stream.bid, stream.ask)
            column = 0 if kind == "spread_x3" else 1
            before = float(np.nanmax(stat[:switch, column]))
            after = float(np.nanmax(stat[switch : switch + 2_000, column]))
            rows.append(
                {
                    "instrument": a.instrument,
                    "day": a.date,
                    "switch": kind,
                    "statistic": ("spread", "move")[column],
                    "largest_before": round(before, 2),
                    "largest_after": round(after, 2),
                    "separable": after > before,
                }
            )
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| instrument | day | switch | statistic | largest before | largest after | separable |")
    print("|---|---|---|---|---:|---:|---|")
    for r in rows:
        print(
            f"| {r['instrument']} | {r['day']} | {r['switch']} | {r['statistic']} | "
            f"{r['largest_before']:.2f} | {r['largest_after']:.2f} | "
            f"{'yes' if r['separable'] else 'no'} |"
        )


if __name__ == "__main__":
    main()
