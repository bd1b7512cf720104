"""Do candidate v3 features lift gbm's AUC? An offline walk-forward on the seen FX days.

    .venv/bin/python bench/features_v3.py [DATA] [--days seen|unseen] [--json]

Issue 16 asks for features beyond v2 "where the protocol shows gain". The FX quote files
have no sizes, so order-flow imbalance and microprice cannot be tried on them (and the
microprice's deviation from the mid is ``imbalance`` / 2 spreads, already a feature). The
candidates here are the ones quotes alone allow:

* ``tod_h``: the hour of the day (UTC);
* ``rv_300s``: time-decayed standard deviation of ``ret_bp``, tau 5 minutes (``vol_bp``
  has 60 s);
* ``ret_30s``, ``ret_120s``: log return of the mid over the last 30 / 120 seconds, bp.

Per day-file, the live pipeline computes the v2 features. The labels follow the
pipeline's definition (spark/pipeline/core.py): the mid prevailing at t + 1 s against the
mid at t, known once the first tick after t + 1 s has come, ties dropped. Then a
walk-forward with the shipped LightGBM settings: every 5,000 ticks, trees are fit on the
last 40,000 labels already known and predict the next 5,000 ticks. The mean AUC over the
files is reported for v2 and for v2 plus each candidate (and all of them). This is an
offline approximation of `spark model eval`: trees swap at once and there is no warm-up
model, so its v2 figure (0.639 on the seen days) is not the 0.632 of docs/ml.md. It
compares feature sets under the same procedure. (docs/features.md, session 14.)
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
SEEN = ("01", "05", "08", "12")
ALL_DAYS = ("01", "02", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14", "15")
CANDIDATES = ("tod_h", "rv_300s", "ret_30s", "ret_120s")


@njit(cache=True)
def _decayed_std(ts, x, tau):
    out = np.zeros(len(x))
    mean = var = 0.0
    last = ts[0]
    for i in range(len(x)):
        a = 1.0 - math.exp(-max(ts[i] - last, 0) / 1e6 / tau) if i else 1.0
        d = x[i] - mean
        mean += a * d
        var = (1 - a) * (var + a * d * d)
        last = ts[i]
        out[i] = math.sqrt(max(var, 0.0))
    return out


def decayed_std(ts: np.ndarray, x: np.ndarray, tau: float) -> np.ndarray:
    """Time-decayed standard deviation of ``x`` (time constant ``tau`` seconds)."""
    return _decayed_std(ts, x, tau)


def candidates(ts: np.ndarray, mid: np.ndarray) -> dict[str, np.ndarray]:
    log_mid = np.log(mid)
    ret = np.concatenate([[0.0], np.diff(log_mid) * 1e4])
    out = {"tod_h": ((ts // 1_000_000) % 86_400) / 3600.0, "rv_300s": decayed_std(ts, ret, 300.0)}
    for lag in (30, 120):
        j = np.maximum(np.searchsorted(ts, ts - lag * 1_000_000, side="right") - 1, 0)
        out[f"ret_{lag}s"] = (log_mid - log_mid[j]) * 1e4
    return out


def labels(ts: np.ndarray, mid: np.ndarray, horizon_s: float = 1.0):
    """(label, has a label, when it is known): the pipeline's definition."""
    j = np.searchsorted(ts, ts + int(horizon_s * 1e6), side="right")
    then = mid[np.minimum(j, len(ts)) - 1]
    ok = (j < len(ts)) & (then != mid)
    known = np.where(ok, ts[np.minimum(j, len(ts) - 1)], np.iinfo(np.int64).max)
    return (then > mid).astype(np.int32), ok, known


def walk_forward_auc(x, y, ok, known, ts, window=40_000, refit=5_000) -> float:
    import lightgbm

    from spark.ml.quality import exact_auc
    from spark.pipeline.learners import GBM_MIN_LEAF, GBM_PARAMS, GBM_TREES

    params = dict(GBM_PARAMS, min_data_in_leaf=GBM_MIN_LEAF)
    pred = np.full(len(y), np.nan)
    for k in range(refit, len(y), refit):
        rows = np.flatnonzero(ok[:k] & (known[:k] <= ts[k]))[-window:]
        if len(rows) > 1_000 and y[rows].min() != y[rows].max():
            trees = lightgbm.train(params, lightgbm.Dataset(x[rows], y[rows]), GBM_TREES)
            pred[k : k + refit] = trees.predict(x[k : k + refit])
    scored = ~np.isnan(pred) & ok
    return exact_auc(pred[scored], y[scored])


def feature_rule(
    per_file: dict[str, dict[str, float]], groups, base: str, min_gain: float, max_worse: int
) -> dict[str, dict]:
    """A feature bench's written rule on the files given (its train days): a group joins
    if its mean AUC gain over ``base`` is at least ``min_gain`` and it is below ``base`` on
    at most ``max_worse`` files."""
    out = {}
    for group in groups:
        gains = [f[f"{base}+{group}"] - f[base] for f in per_file.values()]
        mean, worse = float(np.mean(gains)), sum(g < 0 for g in gains)
        out[group] = {
            "mean_gain": round(mean, 4),
            f"files_below_{base}": worse,
            "added": bool(mean >= min_gain and worse <= max_worse),
        }
    return out


def one_file(path: Path) -> dict[str, float]:
    from spark.features import kernel
    from spark.pipeline import SignalPipeline
    from spark.settings import Settings
    from spark.ticks.columns import read_batch

    batch, _ = read_batch([path], "lean-quote")
    settings = Settings(gate=False, trading=False).with_models(model="logreg")
    result = SignalPipeline(settings).step(batch)
    if result.kept is not None:
        batch = batch.select(result.kept)
    rows = np.flatnonzero(result.valid)
    # v2's 48 columns: the pipeline computes v3 since session 22, and these benches compare
    # candidates against v2
    v2 = len(kernel.CORE_FEATURE_NAMES) + len(kernel.QUOTE_FEATURE_NAMES)
    batch, base = batch.select(rows), result.features[rows, :v2]
    mid = (batch.bid + batch.ask) / 2
    extra = candidates(batch.ts, mid)
    y, ok, known = labels(batch.ts, mid)
    sets = {"v2": base, **{f"v2+{n}": np.column_stack([base, extra[n]]) for n in CANDIDATES}}
    sets["v2+all"] = np.column_stack([base] + [extra[n] for n in CANDIDATES])
    return {name: walk_forward_auc(x, y, ok, known, batch.ts) for name, x in sets.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--days", choices=("seen", "unseen"), default="seen")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    days = SEEN if args.days == "seen" else tuple(d for d in ALL_DAYS if d not in SEEN)
    paths = [
        args.data / f"fxcm/{s}/201405{d}_quote.zip" for s in ("eurusd", "nzdusd") for d in days
    ]
    missing = [p for p in paths if not p.exists()]
    if missing:
        parser.error(f"{missing[0]} not found: pass the shared data directory")
    per_file = {}
    for path in paths:
        per_file[f"{path.parent.name}/{path.name}"] = figures = one_file(path)
        if not args.json:
            print(path.parent.name, path.name, {k: round(v, 4) for k, v in figures.items()},
                  flush=True)  # fmt: skip
    names = list(next(iter(per_file.values())))
    means = {n: round(float(np.mean([f[n] for f in per_file.values()])), 4) for n in names}
    if args.json:
        print(json.dumps({"mean_auc": means, "files": per_file}))
    else:
        for n in names:
            print(f"{n:>14}: mean AUC {means[n]:.4f} ({means[n] - means['v2']:+.4f} against v2)")


if __name__ == "__main__":
    main()
