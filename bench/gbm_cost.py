"""What a cheaper gbm refit costs in AUC, chosen on train days only. One command.

    .venv/bin/python bench/gbm_cost.py [DATA] [--days seen|unseen] [--configs a,b] [--json]

gbm's throughput (worker and backtest) is bound by its refits: LightGBM fitting 100 trees
on the last 40,000 labels every 5,000 labels (docs/hot-path.md). Each configuration below
makes a refit cheaper; this runs ``spark model eval``'s code (test-then-train, delayed
labels, fresh model per file) with each one and prints, per configuration, the mean AUC
and precision@20 over the files, and the CPU seconds LightGBM's fits took (measured
around every fit, in the trainer thread).

The protocol (docs/ml.md): ``--days seen`` are the four train days per pair that every
earlier model choice was made on (05-01, 05-05, 05-08, 05-12 of EURUSD and NZDUSD);
a configuration is chosen on them only, and then reported with ``--days unseen`` (the
other nine days per pair) and with ``--days equity`` (2013-10-07 of each stock with quotes), which
were not looked at for it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROOT = Path(__file__).resolve().parent.parent
SEEN = ("01", "05", "08", "12")
ALL_DAYS = ("01", "02", "04", "05", "06", "07", "08", "09", "11", "12", "13", "14", "15")

# the setting every earlier gbm figure was measured with (before session 13); each
# configuration changes some of it
BEFORE = {"learning_rate": 0.05, "max_bin": 255, "bin_construct_sample_cnt": 200_000}
# name: (trees, LightGBM parameters changed from BEFORE, window, refit period)
CONFIGS: dict[str, tuple[int, dict, int, int]] = {
    "base": (100, {}, 40_000, 5_000),  # the default until session 13
    "t50": (50, {"learning_rate": 0.1}, 40_000, 5_000),
    "t50_bin63": (50, {"learning_rate": 0.1, "max_bin": 63}, 40_000, 5_000),
    "t50_bin63_w20k": (50, {"learning_rate": 0.1, "max_bin": 63}, 20_000, 5_000),
    "t50_bin63_bag": (
        50,
        {"learning_rate": 0.1, "max_bin": 63, "bagging_fraction": 0.5, "bagging_freq": 1},
        40_000,
        5_000,
    ),
    "t50_bin63_w20k_bag": (
        50,
        {"learning_rate": 0.1, "max_bin": 63, "bagging_fraction": 0.5, "bagging_freq": 1},
        20_000,
        5_000,
    ),
    "t25_bin63_w20k": (25, {"learning_rate": 0.2, "max_bin": 63}, 20_000, 5_000),
    # bin boundaries from 5,000 sampled rows, not all 40,000 (LightGBM's default is 200,000)
    "t50_bin63_s5k": (
        50,
        {"learning_rate": 0.1, "max_bin": 63, "bin_construct_sample_cnt": 5_000},
        40_000,
        5_000,
    ),
    "t50_bin63_s5k_bag": (
        50,
        {
            "learning_rate": 0.1,
            "max_bin": 63,
            "bin_construct_sample_cnt": 5_000,
            "bagging_fraction": 0.5,
            "bagging_freq": 1,
        },
        40_000,
        5_000,
    ),
    "t30_bin63_s5k": (  # the default since session 13 (docs/ml.md)
        30,
        {"learning_rate": 0.15, "max_bin": 63, "bin_construct_sample_cnt": 5_000},
        40_000,
        5_000,
    ),
    # session 14: the same trees, refit less often (the cost per label is what bounds a
    # backtest: it waits for every refit)
    "t30_bin63_s5k_r7500": (
        30,
        {"learning_rate": 0.15, "max_bin": 63, "bin_construct_sample_cnt": 5_000},
        40_000,
        7_500,
    ),
    "t30_bin63_s5k_r10k": (
        30,
        {"learning_rate": 0.15, "max_bin": 63, "bin_construct_sample_cnt": 5_000},
        40_000,
        10_000,
    ),
}


def files(data: Path, days: str) -> list[Path]:
    chosen = SEEN if days == "seen" else tuple(d for d in ALL_DAYS if d not in SEEN)
    if days == "equity":
        return sorted((data / "equity").glob("*/20131007_quote.zip"))  # a day per stock
    return [data / f"fxcm/{s}/201405{d}_quote.zip" for s in ("eurusd", "nzdusd") for d in chosen]


def run(name: str, paths: list[Path]) -> dict:
    from spark.cli.model import per_file_summary
    from spark.ml.evaluate import evaluate
    from spark.pipeline import learners
    from spark.settings import Settings
    from spark.ticks.columns import read_batch

    trees, changed, window, refit = CONFIGS[name]
    base_params, base_trees = dict(learners.GBM_PARAMS), learners.GBM_TREES
    fit_seconds = [0.0, 0]
    lock = threading.Lock()
    base_fit = learners.fit_forest

    def timed_fit(x, y):
        began = time.thread_time()
        try:
            return base_fit(x, y)
        finally:
            with lock:
                fit_seconds[0] += time.thread_time() - began
                fit_seconds[1] += 1

    learners.GBM_PARAMS.update(BEFORE)
    learners.GBM_PARAMS.update(changed)
    learners.GBM_TREES = trees
    learners.fit_forest = timed_fit
    try:
        settings = Settings.from_env().with_models(
            model="gbm", challengers=(), gbm_window=window, gbm_refit=refit
        )
        results = []
        started = time.monotonic()
        for path in paths:
            batch, _ = read_batch([path], "lean-quote")
            results.append((str(path.relative_to(path.parents[2])), evaluate(batch, settings)))
        summary = per_file_summary(results)  # what `spark model eval --per-file` prints
        rows = [
            {"file": f, "auc": round(r.auc, 4), "p20": round(r.precision_at_20, 4), "n": r.n}
            for f, r in results
        ]
        return {
            "config": name,
            "trees": trees,
            "params": changed,
            "window": window,
            "refit": refit,
            "mean_auc": round(summary["auc"]["mean"], 4),
            "mean_p20": round(summary["precision_at_20"]["mean"], 4),
            "fits": fit_seconds[1],
            "fit_cpu_seconds": round(fit_seconds[0], 1),
            "fit_cpu_ms_each": round(1000 * fit_seconds[0] / max(1, fit_seconds[1])),
            "wall_seconds": round(time.monotonic() - started, 1),
            "files": rows,
        }
    finally:
        learners.GBM_PARAMS.clear()
        learners.GBM_PARAMS.update(base_params)
        learners.GBM_TREES = base_trees
        learners.fit_forest = base_fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--days", choices=("seen", "unseen", "equity"), default="seen")
    parser.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated names")
    parser.add_argument("--json", action="store_true", help="one JSON line per configuration")
    args = parser.parse_args()
    names = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        parser.error(f"unknown configuration {unknown[0]!r}; known: {', '.join(CONFIGS)}")
    paths = files(args.data, args.days)
    missing = [p for p in paths if not p.exists()]
    if missing:
        parser.error(f"{missing[0]} not found: pass the shared data directory")
    for name in names:
        out = run(name, paths)
        if args.json:
            print(json.dumps(out), flush=True)
        else:
            print(
                f"{name:>20}: AUC {out['mean_auc']:.4f}  p@20 {out['mean_p20']:.4f}  "
                f"{out['fits']} fits, {out['fit_cpu_ms_each']} ms CPU each "
                f"({out['fit_cpu_seconds']} s), {out['wall_seconds']} s",
                flush=True,
            )


if __name__ == "__main__":
    main()
