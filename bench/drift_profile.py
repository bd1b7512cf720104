"""A probe for the next drift rule: statistics normalised by the instrument's time of day.

    .venv/bin/python bench/drift_profile.py [DATA] [--days first|earlier]

`bench/drift_ratios.py` shows that on FX days the spread and move-size statistics move
with the trading sessions more than a x3 switch moves them. This probe asks whether a
profile learnt on an earlier day takes the sessions out. For each instrument, it computes
the median of each statistic per 30-minute bucket of the day (UTC) on its first day-file:

* spread: the fast EW mean of log spread (200 ticks);
* move: the fast EW mean of log |move| (20 moves).

On the `spark research drift` test streams (each instrument's last day: volatility x3,
spread x3 and pairs at the same level), it subtracts the profile of the tick's bucket. It
prints the largest residual before the switch and in the 2,000 ticks after it, and the
largest residual on the first day itself, which is a threshold chosen without the test
day. Nothing here is shipped (docs/drift.md, session 14).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
BUCKET_US = 1800 * 10**6
DAY_US = 86_400 * 10**6


def fast_stats(bid: np.ndarray, ask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The fast EW means of log spread and log |move| (``bench/drift_ratios.py``)."""
    from bench.drift_ratios import ew_means

    fast_spread, _, fast_move, _ = ew_means(bid, ask)
    return fast_spread, fast_move


def residuals(ts, spread, size, profile) -> tuple[np.ndarray, np.ndarray]:
    bucket = (ts % DAY_US) // BUCKET_US
    base = np.array([profile.get(int(k), (np.nan, np.nan)) for k in bucket])
    return spread - base[:, 0], size - base[:, 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--days",
        choices=("first", "earlier"),
        default="first",
        help="profile from the first day-file, or from every day-file before the last",
    )
    args = parser.parse_args()
    from spark.research.drift import _stream, streams
    from spark.research.select import find_days, load_day

    earlier: dict[str, list] = {}
    for day in find_days(args.data):
        earlier.setdefault(day.instrument, []).append(day)
    profiles, limits = {}, {}
    for name, days in earlier.items():
        days = days[:1] if args.days == "first" else days[:-1]  # never the test (last) day
        loaded = []
        for day in days:
            batch = load_day(day, 10**12)
            loaded.append((batch.ts, *fast_stats(batch.bid, batch.ask)))
        ts = np.concatenate([x[0] for x in loaded])
        spread = np.concatenate([x[1] for x in loaded])
        size = np.concatenate([x[2] for x in loaded])
        bucket = (ts % DAY_US) // BUCKET_US
        profiles[name] = {
            int(k): (np.nanmedian(spread[bucket == k]), np.nanmedian(size[bucket == k]))
            for k in np.unique(bucket)
        }
        worst = []
        for day_ts, day_spread, day_size in loaded:
            rs, rm = residuals(day_ts, day_spread, day_size, profiles[name])
            worst.append(max(np.nanmax(rs[5_000:], initial=-9), np.nanmax(rm[5_000:], initial=-9)))
        limits[name] = max(worst)
        print(f"{name}: {len(days)} profile day(s), largest residual on them {limits[name]:.2f}")
    print("| stream | before the switch | after it | limit | caught, no false alarm |")
    print("|---|---:|---:|---:|---|")
    for name, a, b, kind in streams(args.data, None, "last"):
        if kind not in ("spread_x3", "vol_x3", "same_level"):
            continue
        stream, switch = _stream(a, b, kind, 50_000, 20_000)
        rs, rm = residuals(stream.ts, *fast_stats(stream.bid, stream.ask), profiles[a.instrument])
        column = rs if kind == "spread_x3" else (rm if kind == "vol_x3" else np.fmax(rs, rm))
        before = np.nanmax(column[5_000:switch])
        after = np.nanmax(column[switch : switch + 2_000])
        limit = limits[a.instrument]
        ok = after > limit >= before
        print(f"| {name} | {before:.2f} | {after:.2f} | {limit:.2f} | {'yes' if ok else 'no'} |")


if __name__ == "__main__":
    main()
