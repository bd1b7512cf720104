"""Do order-flow features from quote sizes and trades lift gbm's AUC on the equity days?

    .venv/bin/python bench/features_book.py [DATA] [--days train|test|all] [--ticks N] [--json]

Issue 16 asks for "microprice and order-flow imbalance from quote sizes, trade sign and
signed volume where trades exist" where the protocol shows gain. The FX files have no
sizes or trades, so session 14 could not try these on the FX days (docs/features.md). The
equity files have both. This bench is their protocol, on the equities alone:

* **train days**: each stock's first two days (2013-10-07, 2013-10-08): the choice;
* **test days**: its last three (10-09, 10-10, 10-11): reported, never used to choose.

Each day-file is the stock's regular session from 09:30 New York, its first ``--ticks``
quote ticks (``spark.research.select.load_day``). The live pipeline computes the 48 v2
features. The candidates:

* ``ofi_1s``, ``ofi_10s``: order-flow imbalance at the best quotes (Cont, Kukanov and
  Stoikov 2014): per quote update, the size added at or above the bid minus the size
  removed from it, minus the same on the ask side; summed with time decay (tau 1 s and
  10 s) and divided by the EW mean depth (tau 60 s), so it carries no unit;
* ``tflow_5s``, ``tflow_60s``: signed trade volume over total trade volume, both
  time-decayed (tau 5 s and 60 s), a trade signed by its price against the mid of the
  quote before it (above +1, below -1, at the mid 0). The trades are read from the day's
  trade file; a quote tick sees only trades strictly earlier than it.

(The size-weighted microprice's deviation from the mid is ``imbalance`` / 2 spreads, which
v2 has; it is not a candidate.)

Labels and fits as ``bench/features_v3.py`` (session 14): the pipeline's 1 s label (the mid
prevailing 1 s later against the mid now, ties dropped), known when the first tick after
t + 1 s comes; every 5,000 ticks, trees with the shipped LightGBM settings are fit on the
last 40,000 known labels and predict the next 5,000 ticks. An offline approximation of
`spark model eval` that compares feature sets under one procedure.

**Rule** (written before any day was run): a group (``ofi``: both OFI features; ``tflow``:
both trade features) joins the shipped features if, over the 6 train day-files, its mean
AUC is at least 0.005 above v2's and it is not below v2 on more than 2 of the 6. The test
days are then run once and reported whatever they show. (docs/features.md, session 22.)
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

from bench.features_v3 import feature_rule, labels, walk_forward_auc  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
STOCKS = ("BAC", "AIG", "IBM")
TRAIN = ("2013-10-07", "2013-10-08")
TEST = ("2013-10-09", "2013-10-10", "2013-10-11")
GROUPS = {"ofi": ("ofi_1s", "ofi_10s"), "tflow": ("tflow_5s", "tflow_60s")}
MIN_GAIN, MAX_WORSE = 0.005, 2


@njit(cache=True)
def _ofi(ts, bid, ask, bsz, asz, taus, depth_tau):
    """Time-decayed OFI sums over the EW mean depth, one column per tau."""
    n, k = len(ts), len(taus)
    out = np.zeros((n, k))
    sums = np.zeros(k)
    depth = 0.0
    for i in range(n):
        e = 0.0
        if i:
            dt = max(ts[i] - ts[i - 1], 0) / 1e6
            if bid[i] >= bid[i - 1]:
                e += bsz[i]
            if bid[i] <= bid[i - 1]:
                e -= bsz[i - 1]
            if ask[i] <= ask[i - 1]:
                e -= asz[i]
            if ask[i] >= ask[i - 1]:
                e += asz[i - 1]
            for j in range(k):
                sums[j] = sums[j] * math.exp(-dt / taus[j]) + e
            a = 1.0 - math.exp(-dt / depth_tau)
        else:
            a = 1.0
        d = 0.5 * (bsz[i] + asz[i])
        if d == d:  # not NaN
            depth += a * (d - depth)
        for j in range(k):
            out[i, j] = sums[j] / depth if depth > 0 else 0.0
    return out


@njit(cache=True)
def _tflow(q_ts, t_ts, t_signed, t_size, taus):
    """At each quote tick: decayed signed volume / decayed volume of the trades before it."""
    n, k = len(q_ts), len(taus)
    out = np.zeros((n, k))
    signed, total = np.zeros(k), np.zeros(k)
    last = 0
    t = 0
    for i in range(n):
        while t < len(t_ts) and t_ts[t] < q_ts[i]:
            dt = max(t_ts[t] - last, 0) / 1e6 if last else 0.0
            for j in range(k):
                f = math.exp(-dt / taus[j])
                signed[j] = signed[j] * f + t_signed[t] * t_size[t]
                total[j] = total[j] * f + t_size[t]
            last = t_ts[t]
            t += 1
        for j in range(k):
            # the common decay since the last trade cancels in the ratio
            out[i, j] = signed[j] / total[j] if total[j] > 0 else 0.0
    return out


def trade_signs(t_ts, t_price, q_ts, mid):
    """+1 above the mid of the quote before the trade, -1 below, 0 at it (or no quote)."""
    j = np.searchsorted(q_ts, t_ts, side="left") - 1
    prevailing = np.where(j >= 0, mid[np.maximum(j, 0)], np.nan)
    return np.nan_to_num(np.sign(t_price - prevailing))


def load(path: str, date: str, stock: str, ticks: int):
    from spark.research.select import Day, load_day
    from spark.ticks.columns import read_batch

    quotes = load_day(Day(stock, date, path), ticks)
    trades = read_batch([Path(path.replace("_quote.zip", "_trade.zip"))], "lean-trade")[0]
    lo, hi = np.searchsorted(trades.ts, [quotes.ts[0] - 120_000_000, quotes.ts[-1]])
    return quotes, trades.take(int(lo), int(hi))


def one_file(path: str, date: str, stock: str, ticks: int) -> dict[str, float]:
    from spark.features import kernel
    from spark.pipeline import SignalPipeline
    from spark.settings import Settings

    quotes, trades = load(path, date, stock, ticks)
    settings = Settings(gate=False, trading=False).with_models(model="logreg")
    result = SignalPipeline(settings).step(quotes)
    batch = quotes.select(result.kept) if result.kept is not None else quotes
    rows = np.flatnonzero(result.valid)
    # v2's 48 columns: the pipeline computes v3 since session 22, and these benches compare
    # candidates against v2
    v2 = len(kernel.CORE_FEATURE_NAMES) + len(kernel.QUOTE_FEATURE_NAMES)
    batch, base = batch.select(rows), result.features[rows, :v2]
    mid = (batch.bid + batch.ask) / 2
    ofi = _ofi(
        batch.ts, batch.bid, batch.ask, batch.bid_size, batch.ask_size,
        np.array([1.0, 10.0]), 60.0,
    )  # fmt: skip
    signs = trade_signs(trades.ts, trades.last, batch.ts, mid)
    flow = _tflow(batch.ts, trades.ts, signs, trades.last_size, np.array([5.0, 60.0]))
    y, ok, known = labels(batch.ts, mid)
    sets = {
        "v2": base,
        "v2+ofi": np.column_stack([base, ofi]),
        "v2+tflow": np.column_stack([base, flow]),
        "v2+ofi+tflow": np.column_stack([base, ofi, flow]),
    }
    return {name: walk_forward_auc(x, y, ok, known, batch.ts) for name, x in sets.items()}


def live_file(path: str, date: str, stock: str, ticks: int) -> dict[str, float]:
    """``spark model eval``'s code (``spark.ml.evaluate``, the shipped default model) on the
    day-file's quotes alone, and on its quotes and trades merged in time order."""
    from spark.ml.evaluate import evaluate
    from spark.pipeline import TickBatch
    from spark.settings import Settings

    quotes, trades = load(path, date, stock, ticks)
    keep = trades.ts >= quotes.ts[0]
    both = TickBatch.concat([quotes, trades.select(np.flatnonzero(keep))])
    both = both.select(np.argsort(both.ts, kind="stable"))
    out = {}
    for name, batch in (("quotes", quotes), ("quotes+trades", both)):
        result = evaluate(batch, Settings())
        out[f"{name} auc"], out[f"{name} p@20"] = result.auc, result.precision_at_20
    return out


def decide(per_file: dict[str, dict[str, float]]) -> dict[str, dict]:
    """The rule, on the files given (the train days)."""
    return feature_rule(per_file, GROUPS, "v2", MIN_GAIN, MAX_WORSE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--days", choices=("train", "test", "all"), default="train")
    parser.add_argument("--ticks", type=int, default=100_000, help="quote ticks a day-file")
    parser.add_argument(
        "--live",
        action="store_true",
        help="score the shipped pipeline (spark model eval's code) instead: quotes alone, "
        "then quotes and trades merged; run it at two commits to compare feature sets",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    dates = {"train": TRAIN, "test": TEST, "all": TRAIN + TEST}[args.days]
    files = [
        (str(args.data / f"equity/{s.lower()}/{d.replace('-', '')}_quote.zip"), d, s)
        for s in STOCKS
        for d in dates
    ]
    missing = [p for p, _, _ in files if not Path(p).exists()]
    if missing:
        parser.error(f"{missing[0]} not found: pass the shared data directory")
    per_file, started = {}, time.perf_counter()
    for path, date, stock in files:
        scorer = live_file if args.live else one_file
        per_file[f"{stock} {date}"] = figures = scorer(path, date, stock, args.ticks)
        if not args.json:
            print(stock, date, {k: round(v, 4) for k, v in figures.items()}, flush=True)
    names = list(next(iter(per_file.values())))
    means = {n: round(float(np.mean([f[n] for f in per_file.values()])), 4) for n in names}
    train = {k: v for k, v in per_file.items() if k.split()[1] in TRAIN}
    verdict = decide(train) if train and not args.live else {}
    report = {
        "days": args.days,
        "ticks": args.ticks,
        "mean_auc": means,
        "rule_on_train_days": verdict,
        "files": per_file,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if args.json:
        print(json.dumps(report))
        return
    for n in names:
        against = f" ({means[n] - means['v2']:+.4f} against v2)" if "v2" in means else ""
        print(f"{n:>18}: mean {means[n]:.4f}{against}")
    for group, v in verdict.items():
        print(f"{group}: {v}")
    print(f"{report['seconds']} s")


if __name__ == "__main__":
    main()
