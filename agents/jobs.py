"""The jobs agents: backtest, optimizer and export requests in, their results out.

A request that cannot be decoded, or whose parameters are invalid, goes to
the requests' DLQ with the reason (and a ``failed`` result, so whoever asked
is not left waiting). A valid request runs in a separate process (a pool of
``SPARK_JOB_PROCESSES``, default 1), so a long backtest does not stall the
streaming agents of the same worker; a job that fails while running (e.g. an
unreadable file) ends as a ``failed`` JobResult with the error, and one that runs
over ``SPARK_JOB_TIMEOUT_S`` (default 1800) has its process killed and ends failed
too. Parameters over 64 KiB are refused. Jobs of one worker run one at a time per
partition batch; more workers share the partitions of the request topic.
"""

from __future__ import annotations

import asyncio
import json
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor

import faust

from spark.agents.dead_letters import dead_letter
from spark.backtest.engine import InvalidParams
from spark.jobs.control import JobControl
from spark.jobs.fanout import fanned_job, fans_out
from spark.jobs.runner import check, exit_with_parent, job_in_subprocess
from spark.metrics import (
    EVENTS_IN,
    EVENTS_OUT,
    EXPORT_BYTES,
    EXPORT_ROWS,
    EXPORT_SECONDS,
    EXPORT_SKIPPED,
    JOB_SECONDS,
    JOBS,
    JOBS_RUNNING,
    LAST_BATCH,
)
from spark.ml.snapshots import keyring
from spark.ticks.producer import default_serde
from spark.topics import catalog

log = logging.getLogger("spark.agents.jobs")
# kind -> (requests topic id, results topic id, agent name)
KINDS = {
    "backtest": ("backtest_requests", "backtest_results", "jobs"),
    "optimizer": ("optimizer_requests", "optimizer_results", "optimizer-jobs"),
    "export": ("export_requests", "export_results", "export-jobs"),
}


def register(app: faust.App) -> None:
    processes = max(int(os.environ.get("SPARK_JOB_PROCESSES", "1")), 1)
    pool: dict[str, ProcessPoolExecutor] = {}

    def executor() -> ProcessPoolExecutor:
        if "pool" not in pool:  # spawned, not forked: the child must not inherit the event loop
            pool["pool"] = ProcessPoolExecutor(
                processes,
                multiprocessing.get_context("spawn"),
                initializer=exit_with_parent,
                initargs=(os.getpid(),),
            )
        return pool["pool"]

    @app.on_before_shutdown.connect
    async def stop_pool(app, **_kwargs) -> None:  # noqa: ARG001 - signal signature
        if "pool" in pool:
            pool.pop("pool").shutdown(wait=False, cancel_futures=True)

    def kill_pool() -> None:
        """Stop the running job's process (a pool cannot cancel one call) and the pool."""
        stopped = pool.pop("pool", None)
        if stopped is not None:
            for process in list(getattr(stopped, "_processes", {}).values()):
                process.kill()
            stopped.shutdown(wait=False, cancel_futures=True)

    timeout_s = float(os.environ.get("SPARK_JOB_TIMEOUT_S", "1800"))
    # job id -> (parent job id, stop event, fanned out, event loop) of the jobs running here
    running: dict[str, tuple] = {}

    def cancel_running(job_id: str) -> None:
        """A cancel arrived (the command reader's thread): stop the job if it runs here, and
        the children of a sweep that runs here."""
        for running_id, (parent, stop, fanned, loop) in list(running.items()):
            if job_id in (running_id, parent):
                stop.set()
                if not fanned:
                    loop.call_soon_threadsafe(kill_pool)

    control = JobControl(
        keyring(), float(os.environ.get("SPARK_COMMAND_MAX_AGE_S", "300")), cancel_running
    )

    @app.task
    async def read_job_commands() -> None:
        control.start()

    @app.on_before_shutdown.connect
    async def stop_job_commands(app, **_kwargs) -> None:  # noqa: ARG001 - signal signature
        control.stop()

    for kind, (requests_id, results_id, name) in KINDS.items():
        _register_kind(
            app, kind, requests_id, results_id, name, executor, pool, timeout_s, kill_pool,
            control, running,
        )  # fmt: skip


MAX_PARAMS = 64 * 1024  # a request's parameters: a few paths and numbers, a grid
# how long the agent waits for more requests before it handles those it has: a lone request
# waited all of it (0.5 s until session 33, half of a trivial job's round trip); jobs take
# seconds and run one at a time, so batching requests gains nothing
TAKE_WITHIN_S = 0.05


def _register_kind(
    app, kind, requests_id, results_id, name, executor, pool, timeout_s, kill_pool, control, running
) -> None:
    topics = catalog()
    requests, results = topics[requests_id], topics[results_id]
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    requests_in = app.topic(requests.name, **raw)
    requests_dlq = app.topic(topics[requests.dlq].name, **raw)
    results_out = app.topic(results.name, **raw)
    serde = default_serde()
    for status in ("ok", "failed"):
        JOBS.labels(kind, status)
    JOBS_RUNNING.labels(kind).set(0)
    JOB_SECONDS.labels(kind)
    last_batch = LAST_BATCH.labels(name)

    def send_result(request: dict, outcome: dict) -> None:
        record = {
            "job_id": request["job_id"],
            "kind": kind,
            "parent_job_id": request.get("parent_job_id"),
            **outcome,
        }
        results_out.send_soon(
            key=request["job_id"].encode(),
            value=serde.encode(results.name, results.value, record),
        )
        EVENTS_OUT.labels(results.id).inc()
        JOBS.labels(kind, outcome["status"]).inc()
        JOB_SECONDS.labels(kind).observe((outcome["finished"] - outcome["started"]) / 1e6)
        figures = outcome.get("metrics") or {}
        if outcome["status"] == "ok" and "exported" in figures:  # a topic export
            EXPORT_ROWS.inc(figures["exported"])
            EXPORT_SKIPPED.inc(figures.get("skipped", 0.0))
            EXPORT_BYTES.inc(figures.get("bytes", 0.0))
            EXPORT_SECONDS.observe(figures.get("seconds", 0.0))

    async def serve(stream):
        async for events in stream.take_events(10, within=TAKE_WITHIN_S):
            for event in events:
                try:
                    await handle(event.message)
                except Exception as exc:  # noqa: BLE001 - one request never stops the agent
                    log.exception("%s request at offset %s", kind, event.message.offset)
                    unexpected(event.message, exc)
            last_batch.set_to_current_time()

    def unexpected(message, exc: Exception) -> None:
        """Dead-letter a request whose handling failed in a way nobody foresaw, and answer
        it (failed) if it can be read at all."""
        dead_letter(requests_dlq, message, requests, "jobs", "unexpected_error", repr(exc))
        try:
            request = serde.decode(message.value, requests.value)
            send_result(request, failure(f"unexpected error: {exc!r}", int(time.time() * 1e6)))
        except Exception:  # noqa: BLE001 - an unreadable request has nobody to answer
            log.warning("%s request at offset %s could not be answered", kind, message.offset)

    async def handle(message) -> None:
        EVENTS_IN.labels(requests.id).inc()
        now = int(time.time() * 1e6)
        try:
            request = serde.decode(message.value, requests.value)
        except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
            reason = getattr(exc, "reason", "unexpected_error")
            dead_letter(requests_dlq, message, requests, "jobs", reason, str(exc))
            return
        try:
            if request["kind"] != kind:
                raise InvalidParams(f"kind must be {kind!r} here, not {request['kind']!r}")
            if len(request["params_json"]) > MAX_PARAMS:
                raise InvalidParams(f"parameters over {MAX_PARAMS:,} bytes")
            check(kind, json.loads(request["params_json"]))
        except (InvalidParams, ValueError, RecursionError) as exc:  # JSON errors are ValueErrors
            reason = getattr(exc, "reason", "invalid_json")
            dead_letter(requests_dlq, message, requests, "jobs", reason, str(exc))
            send_result(request, failure(str(exc), now))
            return
        await run(request, now)

    async def run(request: dict, now: int) -> None:
        """The job runs in the pool; the agent only waits for it. A sweep that fans out
        runs in a thread instead: it only sends child jobs and gathers their results, and
        must not hold the pool the children (some on this worker) need."""
        job_id, parent = request["job_id"], request.get("parent_job_id")
        why = control.why(job_id) or (control.why(parent) if parent else None)
        if why is not None:  # cancelled before its turn came
            send_result(request, failure(f"{why} (before it started)", now))
            log.info("%s %s cancelled before it started", kind, job_id)
            return
        log.info("%s %s started", kind, job_id)
        JOBS_RUNNING.labels(kind).inc()
        stop = threading.Event()
        fanned = kind == "optimizer" and fans_out(json.loads(request["params_json"]))
        loop = asyncio.get_running_loop()
        running[job_id] = (parent, stop, fanned, loop)
        try:
            if fanned:
                work = loop.run_in_executor(None, fanned_job, request, stop)
            else:
                work = loop.run_in_executor(executor(), job_in_subprocess, request)
            outcome = await asyncio.wait_for(work, timeout_s)
        except TimeoutError:
            stop.set()
            if not fanned:
                kill_pool()
            outcome = failure(
                f"the job ran over {timeout_s:g} s (SPARK_JOB_TIMEOUT_S) and was stopped", now
            )
        except Exception as exc:  # noqa: BLE001 - e.g. the job's process died (or was killed)
            pool.pop("pool", None)
            outcome = failure(f"the job's process failed: {exc!r}", now)
        finally:
            JOBS_RUNNING.labels(kind).dec()
            running.pop(job_id, None)
        why = control.why(job_id) or (control.why(parent) if parent else None)
        if why is not None and outcome["status"] != "ok":  # stopped by the cancel
            outcome = failure(why, now)
        send_result(request, outcome)
        log.info("%s %s %s", kind, request["job_id"], outcome["status"])
        if fanned and outcome["status"] != "ok" and why is None:
            # its children still queued (here or on other workers) would run for nothing
            # and hold up the jobs behind them: every worker skips them on this cancel
            await loop.run_in_executor(None, cancel_children, job_id, outcome["error"])

    def cancel_children(job_id: str, error: str) -> None:
        from spark.commands import send_command

        reason = f"its sweep failed ({error[:200]})"
        try:
            fields = {"job_id": job_id, "action": "cancel", "reason": reason}
            send_command("job_commands", fields, "spark worker", job_id.encode())
        except Exception:  # noqa: BLE001 - the children then run and are ignored
            log.exception("could not cancel the children of sweep %s", job_id)

    def failure(error: str, started: int) -> dict:
        return {
            "status": "failed",
            "metrics": {},
            "artifact_uri": None,
            "error": error[:2000],
            "started": started,
            "finished": int(time.time() * 1e6),
        }

    app.agent(requests_in, name=name)(serve)
