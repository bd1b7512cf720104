"""Does a blend of the gbm's and the logreg's probabilities score better than the gbm alone?
The protocol of `bench/gbm_protocol.py`, on whole day-files (session 34).

    .venv/bin/python -m bench.gbm_blend [DATA] [--ticks N] [--lean LEAN_DATA] [--json]

Why, disclosed: the worker already runs logreg beside the gbm (the challenger), so a blend
costs nothing per tick. Session 34 looked at the 8 FX train day-files of 05-01, 05-02,
05-05 and 05-06 with both models in one run. There a blend with a quarter of logreg scored
above the gbm alone on each one, by +0.004 to +0.014. An even blend was mixed. The weights
below come from that look at train days. No test day-file and no day of another venue was
scored with a blend before the rule below was committed.

Candidates: the champion's probability is ``(1 - w) * p_gbm + w * p_logreg``, w = 0 (the
shipped gbm alone), 0.25 or 0.5. Both models learn as they do in the worker (gbm
champion, logreg challenger, each from its own labels); one run per day-file serves every
w. Days: the selection universe and split (16 train day-files, 25 test), whole day-files
(stocks in their regular session) unless ``--ticks`` caps them, 1 s labels, fresh models
per day-file.

**Rule** (the gbm benches' rule of session 27, unchanged, written before this run): a
candidate replaces the shipped setting if, over the 16 train day-files, its mean AUC is at
least 0.005 above the shipped setting's and it is below it on at most 4 of them; of several,
the largest mean gain. Test day-files are reported, never chosen on. ``--lean``: also
report every candidate on OANDA's EURUSD and NZDUSD and on gold (``bench/unseen_venue.py``'s
files), none of which plays any part in the choice.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gbm_protocol import _figures, best_of, passes  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = (0.0, 0.25, 0.5)
SHIPPED = 0.0


def score(task):
    """(name, path, ticks or None, session) -> {w: (AUC, precision@20)} for every weight."""
    name, path, ticks, day = task
    from dataclasses import replace

    from spark.ml.quality import exact_auc, precision_at_top
    from spark.pipeline.pipeline import SignalPipeline
    from spark.research.select import _read_day, load_day
    from spark.settings import Settings

    batch = load_day(day, ticks) if day is not None else _read_day(path)
    if ticks and day is None:
        batch = batch.take(0, min(ticks, len(batch)))
    settings = Settings().with_models(
        model="gbm", challengers=("logreg",), horizon_s=1.0, horizon_moves=0
    )
    pipeline = SignalPipeline(replace(settings, gate=False, trading=False))
    ys, ps = [], []
    for start in range(0, len(batch), 5_000):
        r = pipeline.step(batch.take(start, min(len(batch), start + 5_000)))
        ys.append(r.labels.y)
        ps.append(r.labels.p[:, :2])
    y, p = np.concatenate(ys), np.concatenate(ps)
    out = {}
    for w in WEIGHTS:
        blend = (1 - w) * p[:, 0] + w * p[:, 1]
        out[w] = (exact_auc(blend, y), precision_at_top(blend, y))
    return name, path, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--ticks", type=int, default=0, help="at most this many a day-file (0: all)")
    ap.add_argument("--lean", type=Path, help="LEAN's Data folder: also report OANDA and gold")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    from spark.pipeline.learners import share_cores
    from spark.research.select import find_days, split

    share_cores()
    days = find_days(Path(args.data))
    parts = split(days, 0.4)
    ticks = args.ticks or None
    tasks = [(d.instrument, d.path, ticks, d) for d in days]
    unseen = []
    if args.lean:
        from bench.unseen_venue import VENUE, day_files

        for name, paths in day_files(args.lean, VENUE).items():
            unseen += [(f"{name} oanda", str(p), ticks, None) for p in paths]
    started = time.perf_counter()
    scores, other = {}, {}
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for name, path, out in pool.imap_unordered(score, tasks + unseen, chunksize=1):
            each = ", ".join(f"w {w}: {a:.4f}" for w, (a, _) in out.items())
            print(f"  {name} {Path(path).name[:8]}: {each}", file=sys.stderr, flush=True)
            target = scores if not name.endswith(" oanda") else other
            for w, figures in out.items():
                target[(w, path)] = figures
    report = {"seconds": round(time.perf_counter() - started), "candidates": []}
    base = {d.path: scores[(SHIPPED, d.path)][0] for d in days}
    for w in WEIGHTS:
        row = {"w": w, **{name: _figures(w, ds, scores, base) for name, ds in parts.items()}}
        row["passes"] = w != SHIPPED and passes(row)
        if unseen:
            row["unseen"] = {}
            for name in dict.fromkeys(n for n, *_ in unseen):
                aucs = [other[(w, p)][0] for n, p, *_ in unseen if n == name]
                p20 = [other[(w, p)][1] for n, p, *_ in unseen if n == name]
                row["unseen"][name] = {
                    "auc_mean": float(np.mean(aucs)),
                    "auc_worst": float(np.min(aucs)),
                    "pass": int(
                        sum(a >= 0.62 and not q < 0.58 for a, q in zip(aucs, p20, strict=True))
                    ),
                    "days": len(aucs),
                }
        report["candidates"].append(row)
    best = best_of(report["candidates"])
    report["chosen"] = best["w"] if best else SHIPPED
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{len(days)} day-files (+{len(unseen)} unseen), {report['seconds']} s")
    for r in report["candidates"]:
        tr, te = r["train"], r["test"]
        print(
            f"w {r['w']:<4} | train AUC mean {tr['auc_mean']:.4f} gain {tr['gain_mean']:+.4f} "
            f"below {tr['below_shipped']} <0.62 {tr['below_0.62']} | test mean "
            f"{te['auc_mean']:.4f} worst {te['auc_worst']:.4f} gain {te['gain_mean']:+.4f} "
            f"below {te['below_shipped']} <0.62 {te['below_0.62']} | "
            f"{'passes' if r['passes'] else 'no'}"
        )
        for name, v in r.get("unseen", {}).items():
            print(f"       unseen {name:<12} {v['pass']:>2}/{v['days']} pass, AUC mean "
                  f"{v['auc_mean']:.4f} worst {v['auc_worst']:.4f}")  # fmt: skip
    print(f"chosen: w = {report['chosen']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
