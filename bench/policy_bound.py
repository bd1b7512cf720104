"""What a perfect forecast of the mid would earn after costs, per instrument and horizon: the
ceiling for any trading policy on these quotes (session 30; a measurement, nothing chosen).

    .venv/bin/python -m bench.policy_bound [DATA] [--json]

Issue 16 asks for a policy with net PnL >= 0 out of sample. Every policy the protocol has
tried loses or makes no trade (docs/policy.md). This asks how much room there is at all.
On every day-file of the selection universe (whole days; the stocks in their regular
session, as ``spark.research.select.load_day`` reads them), at every tick ``i`` and each
horizon H, a taker round trip entered at quote i and left at the last quote at or before
ts_i + H (no latency: generous to the trader):

* long:  (bid_j - ask_i) / mid_i, short: (bid_i - ask_j) / mid_i, in bp, less 2 x the taker
  fee (``FEE_BP``, the backtest's 0.5 bp);
* **perfect foresight**: the better of long, short and no trade. Reported: the share of
  ticks where a trade pays, and the mean of what it earns per tick (bp);
* **the accuracy a sign forecaster needs**: one that trades every tick and calls the
  direction right with probability p earns (2p - 1) E|m| - E[cost], with m the mid's move
  (bp of mid_i) and cost the two half spreads and the fees; it breaks even at
  p* = (1 + E[cost] / E|m|) / 2 (over 1: no accuracy is enough);
* a move of 0 (the mid unchanged after H) counts in E|m|, as it does for a trader.

Ticks whose horizon runs past the day-file's last tick are left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
HORIZONS_S = (1, 10, 60, 300, 1_800)
FEE_BP = 0.5  # the backtest's taker fee per fill (spark.backtest.engine.BacktestParams)


def day_figures(ts, bid, ask, horizon_s: float) -> dict:
    """Sums over one day-file's ticks for one horizon (``bench`` docstring)."""
    end = np.searchsorted(ts, ts + int(horizon_s * 1e6), side="right") - 1
    keep = ts + int(horizon_s * 1e6) <= ts[-1]
    i = np.flatnonzero(keep)
    j = end[keep]
    mid = (bid + ask) / 2
    scale = 1e4 / mid[i]
    long = (bid[j] - ask[i]) * scale - 2 * FEE_BP
    short = (bid[i] - ask[j]) * scale - 2 * FEE_BP
    move = np.abs(mid[j] - mid[i]) * scale
    cost = ((ask[i] - bid[i]) / 2 + (ask[j] - bid[j]) / 2) * scale + 2 * FEE_BP
    best = np.maximum(np.maximum(long, short), 0.0)
    return {
        "ticks": int(len(i)),
        "paying": int((best > 0).sum()),
        "best_sum": float(best.sum()),
        "move_sum": float(move.sum()),
        "cost_sum": float(cost.sum()),
        "still": int((move == 0).sum()),
    }


def main(argv=None) -> int:
    from spark.research.select import UNIVERSE, find_days, load_day

    started = time.perf_counter()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    totals: dict[tuple[str, int], dict] = {}
    for day in find_days(Path(args.data)):
        b = load_day(day, 10**12)
        ok = np.isfinite(b.bid) & np.isfinite(b.ask) & (b.bid > 0) & (b.ask >= b.bid)
        ts, bid, ask = b.ts[ok], b.bid[ok], b.ask[ok]
        if len(ts) < 2:
            continue
        for h in HORIZONS_S:
            got = day_figures(ts, bid, ask, h)
            into = totals.setdefault((day.instrument, h), dict.fromkeys(got, 0))
            for k, v in got.items():
                into[k] += v
    rows = []
    for inst in (i.name for i in UNIVERSE):
        for h in HORIZONS_S:
            t = totals.get((inst, h))
            if not t or not t["ticks"]:
                continue
            n = t["ticks"]
            move, cost = t["move_sum"] / n, t["cost_sum"] / n
            rows.append({
                "instrument": inst,
                "horizon_s": h,
                "ticks": n,
                "mean_abs_move_bp": move,
                "mean_cost_bp": cost,
                "still_share": t["still"] / n,
                "perfect_paying_share": t["paying"] / n,
                "perfect_mean_bp": t["best_sum"] / n,
                "breakeven_accuracy": (1 + cost / move) / 2 if move > 0 else float("inf"),
            })  # fmt: skip
    out = {"fee_bp": FEE_BP, "rows": rows, "seconds": round(time.perf_counter() - started)}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"{out['seconds']} s; taker fee {FEE_BP} bp a fill; whole day-files")
    print("instrument  H (s)      ticks  E|move| bp  E cost bp  unchanged  perfect: pays  "
          "earns bp/tick  accuracy needed")  # fmt: skip
    for r in rows:
        need = r["breakeven_accuracy"]
        print(f"{r['instrument']:<10} {r['horizon_s']:>5} {r['ticks']:>10,} "
              f"{r['mean_abs_move_bp']:>10.3f} {r['mean_cost_bp']:>10.3f} "
              f"{r['still_share']:>9.1%} {r['perfect_paying_share']:>14.1%} "
              f"{r['perfect_mean_bp']:>14.3f} "
              f"{'none is enough' if need > 1 else f'{need:.3f}':>16}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
