"""What a worker's job process runs: one request in, a JobResult's fields out, never raising."""

from __future__ import annotations

import json
import os
import threading
import time

from spark.config import spark_home
from spark.errors import SparkError


def safe_name(job_id: str) -> str:
    """``job_id`` usable as a file name (no path separators or dots at the start)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in job_id).lstrip(".")
    return cleaned[:120] or "job"


def check(kind: str, params: dict) -> None:
    """Raise InvalidParams if ``params`` cannot run as a ``kind`` job (before queuing it)."""
    from spark.backtest.engine import InvalidParams
    from spark.jobs.backtest import check_export, check_request
    from spark.jobs.optimizer import check_sweep

    checkers = {"backtest": check_request, "optimizer": check_sweep, "export": check_export}
    if kind not in checkers:
        raise InvalidParams(f"kind must be one of {', '.join(checkers)}, not {kind!r}")
    if not isinstance(params, dict):
        raise InvalidParams("parameters must be a JSON object")
    checkers[kind](params)


def exit_with_parent(parent: int, every_s: float = 1.0) -> None:
    """Job pool initializer: the pool's process ends itself once its worker is gone.

    A worker killed with -9 (a crash, the OOM killer) cannot stop its pool, and a pool
    process never sees the end of its call queue (it holds both ends of the pipe), so it
    would wait for work forever, one idle Python process per crash. ``parent`` is the
    worker's pid as the worker saw it, so a worker that died before this runs counts too."""

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(every_s)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def job_in_subprocess(request: dict) -> dict:
    """Entry point for the worker's process pool: never raises, returns a JobResult's fields."""
    from spark.jobs.backtest import run_export, run_request
    from spark.jobs.optimizer import run_sweep

    started = int(time.time() * 1e6)
    try:
        params = json.loads(request["params_json"])
        report = spark_home() / "jobs" / f"{safe_name(request['job_id'])}.json"
        if request.get("parent_job_id") and request["kind"] == "backtest":
            # a sweep's child (spark.jobs.fanout): its figures are all the sweep gathers,
            # and a child run again after a worker died must not find its file taken
            report = None
        run = {"backtest": run_request, "optimizer": run_sweep, "export": run_export}[
            request["kind"]
        ]
        out = run(params, report)
        return {
            "status": "ok",
            "metrics": out["metrics"],
            "artifact_uri": out["artifact_uri"],
            "error": None,
            "started": started,
            "finished": int(time.time() * 1e6),
        }
    except Exception as exc:  # noqa: BLE001 - a failed job is a result, with the reason
        known = isinstance(exc, ValueError | SparkError)
        return {
            "status": "failed",
            "metrics": {},
            "artifact_uri": None,
            "error": str(exc) if known else f"{type(exc).__name__}: {exc}",
            "started": started,
            "finished": int(time.time() * 1e6),
        }
