"""The protocol shared by the gbm benches (``gbm_shape``, ``gbm_recency``): every candidate
setting of the gbm learner scored on every day-file of the selection universe, chosen on the
train day-files by a rule fixed before the run, reported on the test day-files.

Days: ``spark research select``'s universe and split (each instrument's first 40 % of
days train: 16 day-files; the rest test: 25), at most ``--ticks`` ticks a day-file (stocks
from 09:30), the shipped pipeline (features v4, 1 s labels), gbm alone, test-then-train.

**Rule** (session 27, for every bench here): a candidate replaces the shipped setting if,
over the 16 train day-files, its mean AUC is at least 0.005 above the shipped setting's and
it is below it on at most 4 of them; of several, the largest mean gain.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
MIN_GAIN, MAX_WORSE = 0.005, 4
MODEL_CHANGES: dict = {}  # model settings a bench's ``apply`` changes (e.g. gbm_window)


def score(task):
    """(bench module, candidate, day, ticks) -> AUC and precision@20 of gbm alone on the
    day-file, with the module's ``apply(candidate)`` in force."""
    module, candidate, day, ticks = task
    from spark.ml.quality import exact_auc, precision_at_top
    from spark.pipeline.pipeline import SignalPipeline
    from spark.research.select import load_day
    from spark.settings import Settings

    importlib.import_module(module).apply(candidate)
    batch = load_day(day, ticks)
    settings = Settings().with_models(
        model="gbm", challengers=(), horizon_s=1.0, horizon_moves=0, **MODEL_CHANGES
    )
    pipeline = SignalPipeline(settings)
    ys, ps = [], []
    for start in range(0, len(batch), 5_000):
        r = pipeline.step(batch.take(start, min(len(batch), start + 5_000)))
        ys.append(r.labels.y)
        ps.append(r.labels.p[:, 0])
    y, p = np.concatenate(ys), np.concatenate(ps)
    return candidate, day, exact_auc(p, y), precision_at_top(p, y)


def _figures(candidate, ds, scores, base) -> dict:
    aucs = np.array([scores[(candidate, d.path)][0] for d in ds])
    p20 = np.array([scores[(candidate, d.path)][1] for d in ds])
    gain = aucs - np.array([base[d.path] for d in ds])
    per = {}
    for inst in dict.fromkeys(d.instrument for d in ds):
        mine = [scores[(candidate, d.path)][0] for d in ds if d.instrument == inst]
        per[inst] = {"auc_mean": float(np.mean(mine)), "auc_worst": float(np.min(mine))}
    return {
        "auc_mean": float(aucs.mean()),
        "auc_worst": float(aucs.min()),
        "p20_mean": float(p20.mean()),
        "p20_worst": float(p20.min()),
        "gain_mean": float(gain.mean()),
        "below_shipped": int((gain < 0).sum()),
        "below_0.62": int((aucs < 0.62).sum()),
        "p20_below_0.58": int((p20 < 0.58).sum()),
        "per_instrument": per,
    }


def passes(row: dict) -> bool:
    """The rule (module docstring) on a candidate's figures (``_figures`` per role)."""
    return row["train"]["gain_mean"] >= MIN_GAIN and row["train"]["below_shipped"] <= MAX_WORSE


def best_of(rows: list[dict]) -> dict | None:
    """Of the rows that pass, the largest mean train gain; None if none passes."""
    passing = [r for r in rows if r["passes"]]
    return max(passing, key=lambda r: r["train"]["gain_mean"]) if passing else None


def main(
    module: str,
    doc: str,
    candidates: Sequence,
    shipped,
    label: Callable[[object], str],
    argv=None,
) -> int:
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("data", nargs="?", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--ticks", type=int, default=50_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from spark.pipeline.learners import share_cores
    from spark.research.select import find_days, split

    share_cores()
    days = find_days(Path(args.data))
    if not days:
        print(f"no day-files under {args.data}: give the shared data folder", file=sys.stderr)
        return 2
    parts = split(days, 0.4)
    role = {d.path: name for name, ds in parts.items() for d in ds}
    tasks = [(module, c, day, args.ticks) for c in candidates for day in days]
    started = time.perf_counter()
    scores = {}
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        for candidate, day, auc, p20 in pool.imap_unordered(score, tasks):
            scores[(candidate, day.path)] = (auc, p20)
            print(
                f"  {label(candidate)} {day.instrument} {day.date} {role[day.path]}: AUC {auc:.4f}",
                file=sys.stderr,
                flush=True,
            )
    report = {"seconds": round(time.perf_counter() - started), "candidates": []}
    base = {d.path: scores[(shipped, d.path)][0] for d in days}
    for c in candidates:
        row = {"candidate": label(c)}
        row.update({name: _figures(c, ds, scores, base) for name, ds in parts.items()})
        row["passes"] = c != shipped and passes(row)
        report["candidates"].append(row)
    best = best_of(report["candidates"])
    report["chosen"] = best["candidate"] if best else label(shipped)
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    print(f"{len(days)} day-files, {report['seconds']} s")
    print(
        "candidate | train: AUC mean  gain  below  <0.62 | test: AUC mean  worst  gain  "
        "below  <0.62  P@20<0.58 | pass"
    )
    for r in report["candidates"]:
        tr, te = r["train"], r["test"]
        print(
            f"{r['candidate']} | {tr['auc_mean']:.4f} {tr['gain_mean']:+.4f} "
            f"{tr['below_shipped']:>3} {tr['below_0.62']:>3} | {te['auc_mean']:.4f} "
            f"{te['auc_worst']:.4f} {te['gain_mean']:+.4f} {te['below_shipped']:>3} "
            f"{te['below_0.62']:>3} {te['p20_below_0.58']:>3} | {'yes' if r['passes'] else 'no'}"
        )
        for inst, v in te["per_instrument"].items():
            print(f"      test {inst:<7} mean {v['auc_mean']:.4f} worst {v['auc_worst']:.4f}")
    print(f"chosen: {report['chosen']}")
    return 0
