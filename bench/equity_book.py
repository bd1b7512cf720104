"""Which book do the equity quote files describe? Carried forward against per venue.

    .venv/bin/python bench/equity_book.py [DATA] [--json]

The LEAN equity quote files carry one side per row and a venue code. Session 1 read them as
many venues' quotes interleaved and wrote that carrying the last bid and the last ask
forward "is not a consolidated NBBO" (docs/ml.md). This checks it on every quote day-file of
BAC, AIG and IBM, regular session (09:30–16:00 New York), rows flagged suspicious left out.
Two books, per row:

* ``carried``: the last bid and the last ask of any venue (what ``spark.ticks`` and the
  feature kernel build);
* ``per venue``: each venue's own last bid and ask, then the best bid and the best ask
  across venues (an NBBO built from venue quotes).

Printed per day-file: the share of rows where the book is locked or crossed (ask <= bid),
its median spread, and the share of rows where the mid changes. If the rows were venues'
own quotes, the per-venue book would be the sound one; if they are changes of the best
quote (each row naming the venue that set it), a venue's quote is never withdrawn in the
file, stale ones pile up, and the per-venue book is crossed (docs/ml.md, session 29).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
from numba import njit

OPEN_MS, CLOSE_MS = 9.5 * 3_600_000, 16 * 3_600_000


def read_quotes(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """bid, ask (0: that side not on the row) and venue index of the regular-session rows
    not flagged suspicious."""
    with zipfile.ZipFile(path) as z:
        rows = [line.split(",") for line in z.read(z.namelist()[0]).decode().splitlines()]
    t = np.array([float(r[0]) for r in rows])
    bid = np.array([float(r[1]) for r in rows]) / 1e4
    ask = np.array([float(r[3]) for r in rows]) / 1e4
    codes = sorted({r[5] for r in rows})
    venue = np.array([codes.index(r[5]) for r in rows], np.int64)
    keep = (t >= OPEN_MS) & (t < CLOSE_MS) & np.array([r[7].strip() != "1" for r in rows])
    return bid[keep], ask[keep], venue[keep]


@njit(cache=True)
def books(bid, ask, venue, venues):
    """Per row: the carried-forward bid and ask, and the best of each venue's last bid and
    ask (NaN until known)."""
    n = bid.shape[0]
    out = np.full((n, 4), np.nan)
    vb, va = np.full(venues, np.nan), np.full(venues, np.nan)
    last_b, last_a = np.nan, np.nan
    for i in range(n):
        if bid[i] > 0:
            vb[venue[i]] = bid[i]
            last_b = bid[i]
        if ask[i] > 0:
            va[venue[i]] = ask[i]
            last_a = ask[i]
        best_b, best_a = -1.0, np.inf
        for v in range(venues):
            if vb[v] == vb[v] and vb[v] > best_b:
                best_b = vb[v]
            if va[v] == va[v] and va[v] < best_a:
                best_a = va[v]
        out[i, 0], out[i, 1] = last_b, last_a
        if best_b > 0 and best_a < np.inf:
            out[i, 2], out[i, 3] = best_b, best_a
    return out


def measure(path: Path) -> dict:
    bid, ask, venue = read_quotes(path)
    b = books(bid, ask, venue, int(venue.max()) + 1)
    ok = np.isfinite(b).all(axis=1)
    row = {"rows": int(len(bid)), "venues": int(len(np.unique(venue)))}
    for name, (lo, hi) in (("carried", (0, 1)), ("per_venue", (2, 3))):
        best_bid, best_ask = b[ok, lo], b[ok, hi]
        spread, mid = best_ask - best_bid, (best_ask + best_bid) / 2
        row[name] = {
            "locked_or_crossed": float(np.mean(spread <= 0)),
            "median_spread": float(np.median(spread)),
            "mid_changes_per_row": float(np.mean(np.diff(mid) != 0)),
        }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default="../shared/data")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    files = sorted(Path(args.data).glob("equity/*/*_quote.zip"))
    if not files:
        sys.exit(f"no equity quote files under {args.data}: give the shared data folder")
    result = {}
    for path in files:
        key = f"{path.parent.name.upper()} {path.name[:8]}"
        result[key] = measure(path)
        if not args.json:
            r = result[key]
            c, v = r["carried"], r["per_venue"]
            print(
                f"{key}  {r['rows']:>9,} rows {r['venues']:>2} venues | carried: locked/crossed "
                f"{c['locked_or_crossed']:6.1%}, median spread {c['median_spread']:.4f}, mid "
                f"moves {c['mid_changes_per_row']:.4f}/row | per venue: locked/crossed "
                f"{v['locked_or_crossed']:6.1%}, median spread {v['median_spread']:+.4f}",
                flush=True,
            )
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
