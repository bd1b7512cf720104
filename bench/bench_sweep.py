"""Sweep benchmark: one parameter sweep of real ticks, run three ways in one run.

    .venv/bin/python bench/bench_sweep.py [--ticks 20000] [--combos 8] [--model gbm]
        [--walk-forward K]   (rolling, one train window: K + 1 windows x combos backtests)
        [--horizons H]       (the grid times H label horizons: H model runs)

1. in one process, here (``fan_out: false`` semantics: ``run_sweep``): the baseline;
2. fanned out (one child backtest job per model run, its combinations as variants: session
   33; before, one per combination) to one fresh `spark worker`;
3. the same to two fresh workers (one consumer group; on this 2-core machine the two
   share the cores, so the ceiling is 2x only where each child is CPU-light).

Prints combinations per second and the speed-up of two workers over one (issue 15: "sweep
throughput with one and two workers"). Timed from the request sent to the sweep's result
read, workers already up and idle (group joined), so worker start is excluded.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_broker  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "spark/data/fxcm/eurusd/20140501_quote.zip"


def grid(combos: int, horizons: int = 1) -> dict:
    """Bands x fees (one model run: a fanned-out sweep sends it as one child, session 33),
    times ``horizons`` label horizons (``horizon_moves`` 1..H: H model runs, H children)."""
    bands = [round(0.02 + 0.02 * i, 2) for i in range(max(combos // 2, 1))]
    out = {"band": bands, "fee_bp": [0.0, 0.5]}
    if horizons > 1:
        out["horizon_moves"] = list(range(1, horizons + 1))
    return out


def start_workers(count: int) -> list[tuple[subprocess.Popen, int]]:
    from spark.broker.embedded import free_port

    out = []
    for i in range(count):
        port = free_port()
        log = open(Path(os.environ["SPARK_HOME"]) / f"sweep-worker-{count}-{i}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "spark.cli", "worker", "--web-port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        out.append((proc, port))
    deadline = time.monotonic() + 120
    for _proc, port in out:
        while not _up(port):
            if time.monotonic() > deadline:
                raise SystemExit("workers did not start")
            time.sleep(0.5)
    time.sleep(SETTLE_S)  # the group settles (two workers: one rebalance more)
    return out


SETTLE_S = 20
CHURN = (b"rebalancing", b"UnknownMemberId", b"re-joining")


def children_run(port: int) -> int:
    """Backtest jobs a worker ran (its spark_jobs_total for kind backtest)."""
    import urllib.request

    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return int(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("spark_jobs_total{") and 'kind="backtest"' in line
        )
    )


def churn(logs: list[Path], since: list[int]) -> int:
    """Group-churn lines the workers logged after the sweep was sent."""
    count = 0
    for log, start in zip(logs, since, strict=True):
        with open(log, "rb") as f:
            f.seek(start)
            count += sum(1 for line in f if any(c in line for c in CHURN))
    return count


def _up(port: int) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)
        return True
    except OSError:
        return False


def fanned(params: dict, workers: int) -> tuple[float, dict]:
    from spark.jobs.client import submit

    procs = start_workers(workers)
    home = Path(os.environ["SPARK_HOME"])
    logs = [home / f"sweep-worker-{workers}-{i}.log" for i in range(workers)]
    try:
        since = [log.stat().st_size for log in logs]
        t0 = time.perf_counter()
        result = submit("optimizer", params, wait=True, timeout=1800)
        seconds = time.perf_counter() - t0
        result["churn"] = churn(logs, since)
        result["per_worker"] = [children_run(port) for _proc, port in procs]
    finally:
        for proc, _port in procs:
            proc.terminate()
        for proc, _port in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if result["status"] != "ok":
        raise SystemExit(f"sweep failed: {result['error']}")
    return seconds, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ticks", type=int, default=20_000)
    parser.add_argument("--combos", type=int, default=8)
    parser.add_argument(
        "--model", choices=["logreg", "gbm"], default="logreg", help="gbm: ~8x the CPU per tick"
    )
    parser.add_argument(
        "--walk-forward", type=int, metavar="K", help="a rolling walk-forward of K test windows"
    )
    parser.add_argument(
        "--horizons",
        type=int,
        default=1,
        metavar="H",
        help="times H label horizons (horizon_moves 1..H): H model runs, one child each",
    )
    args = parser.parse_args()
    params = {
        "data": [str(DATA)],
        "limit": args.ticks,
        "gate": False,
        "model": args.model,
        "min_edge": 0.0,
        "grid": grid(args.combos, args.horizons),
    }
    n = math.prod(len(v) for v in params["grid"].values())
    figure = "pnl"
    if args.walk_forward:
        from spark.jobs.optimizer import unique_windows

        params["walk_forward"] = walk = {"folds": args.walk_forward, "mode": "rolling"}
        n *= len(unique_windows(walk | {"train_folds": 1}))  # backtests, not combinations
        figure = "oos_pnl"
    with bench_broker():
        from spark.jobs.optimizer import check_sweep, load_ticks, run_sweep

        t0 = time.perf_counter()
        local = run_sweep(dict(params, fan_out=False), restrict=False)
        here = time.perf_counter() - t0
        ticks = len(load_ticks(check_sweep(params, restrict=False)[0]))
        one, r1 = fanned(params, 1)
        two, r2 = fanned(params, 2)
    same = r1["metrics"][figure] == r2["metrics"][figure] == local["metrics"][figure]
    what = f"walk-forward of {args.walk_forward} folds, " if args.walk_forward else ""
    print(f"sweep ({what}{n} backtests) x {ticks:,} real EURUSD ticks ({args.model}, band policy)")
    print(f"  in one process here      {here:7.1f} s  {n / here:6.2f} backtests/s")
    print(
        f"  fanned out, one worker   {one:7.1f} s  {n / one:6.2f} backtests/s"
        f"  (group-churn log lines during the sweep: {r1['churn']})"
    )
    print(
        f"  fanned out, two workers  {two:7.1f} s  {n / two:6.2f} backtests/s"
        f"  (group-churn log lines during the sweep: {r2['churn']};"
        f" children run per worker: {r2['per_worker']})"
    )
    print(
        f"  two workers / one: {one / two:.2f}x; {figure} of the result equal in all three: {same}"
    )


if __name__ == "__main__":
    main()
