"""A sweep fanned out over the worker group: one child backtest job per model run.

The worker that takes an optimizer request (``agents/jobs.py``) runs this in a thread, not
in its job process, so its own backtest agent stays free to take children too:

1. the end offsets of ``backtest.results`` are noted;
2. the combinations are grouped as one process groups them (``shared_runs``: the same
   model, horizon and gate; at most ``MAX_SHARED`` a group, session 33) and every group
   becomes a JobRequest on ``backtest.requests``: a backtest of its first combination with
   the others as ``variants`` (``spark.jobs.backtest``), so a child steps the model once for
   all of them; job id ``<sweep id>-c<index>``, ``parent_job_id`` the sweep's id; child i
   goes to partition
   ``spread(P)[i % P]``, pairs of partitions from both ends, so that
   under either contiguous (range) or alternating (round-robin) assignments every worker
   of the group takes a near-equal share (hashing the job ids split 8 children 6/2 over
   two workers in bench_sweep; the embedded broker does not describe group members, so
   the coordinator cannot ask who holds which partition). A walk-forward sends one child
   per group and window (each window once, ``unique_windows``), the window named by
   the child's ``window`` parameter ``[a, b, m]``: the child reads the data and takes its
   share itself, so the coordinator never loads the ticks;
3. the results are read from the noted offsets; a child's result is taken once (a re-run
   child, after a worker died with it, answers again under the same id);
4. with every child answered (or the sweep's time up: then it fails, naming how many are
   missing) each combination's figures are taken from its child's metrics (its variant's
   under ``variant<j>.``; a failed child fails each of its combinations) and ranked as
   ``run_sweep`` ranks them in one process, and the
   ranking goes to the sweep's report; a walk-forward's windows are ranked and its
   report built by the same ``walk_report`` as in one process.

A worker that dies while running a child has not committed that request, so the group
gives its partition to a survivor, which runs it again; a worker that dies while
coordinating has not committed the optimizer request either, and the survivor starts the
sweep again (children already run are run again: at least once, deduplicated by id).
"""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

from confluent_kafka import KafkaError, TopicPartition

from spark.backtest.engine import BacktestParams, shared_runs
from spark.errors import SparkError
from spark.jobs.backtest import DATA_KEYS, VARIANTS
from spark.jobs.optimizer import (
    OBJECTIVES,
    best_first,
    check_sweep,
    check_walk,
    unique_windows,
    walk_report,
)

MAX_SHARED = 16  # combinations a child runs at most (a large grid of one model still spreads)


def child_groups(combos: list[dict]) -> list[list[int]]:
    """The combinations (positions in ``combos``) each child runs: those that share a model
    run (``shared_runs``), at most ``MAX_SHARED`` a child, in the order of their first
    member.

    >>> child_groups([{"band": 0.1}, {"model": "logreg"}, {"band": 0.2}])
    [[0, 2], [1]]
    """
    out = []
    for group in shared_runs([BacktestParams.from_dict(c) for c in combos]):
        out += [group[k : k + MAX_SHARED] for k in range(0, len(group), MAX_SHARED)]
    return out


def of_variant(metrics: dict, j: int) -> dict:
    """Variant j's figures in a child's metrics (j = 0: the child's own combination)."""
    if j == 0:
        return {k: v for k, v in metrics.items() if not k.startswith("variant")}
    head = f"variant{j}."
    return {k.removeprefix(head): v for k, v in metrics.items() if k.startswith(head)}


def fans_out(params: dict) -> bool:
    """Whether an optimizer request is fanned out (the default; not when ``fan_out`` is
    false)."""
    return params.get("fan_out", True) is not False


def spread(partitions: int) -> list[int]:
    """Partitions in the order children are sent: pairs from both ends (6 -> 0, 5, 1, 4,
    2, 3). With an even count each pair has one partition of each half and one of each
    parity, so consecutive children alternate between two workers holding contiguous
    halves (range assignment) and between two holding alternate partitions (round-robin)."""
    order = []
    for i in range(partitions // 2):
        order += [i, partitions - 1 - i]
    if partitions % 2:
        order.append(partitions // 2)
    return order


def child_id(parent: str, index: int) -> str:
    return f"{parent}-c{index:03d}"


def run_fanned_sweep(
    request: dict, report: Path, stop: threading.Event, on_child=None, restrict: bool = True
) -> dict:
    """Fan ``request`` out and gather it; ``{"metrics", "ranking", "artifact_uri"}``."""
    from spark.kafka import clients
    from spark.kafka.topics import end_offsets
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    params = json.loads(request["params_json"])
    _data, _base, combos, objective = check_sweep(params, restrict)
    walk = check_walk(params.get("walk_forward"))
    parent = request["job_id"]
    data = {k: params[k] for k in DATA_KEYS if k in params}
    # (its combinations' indexes, window cuts or None) of each child, in the order sent
    groups = child_groups(combos)
    if walk is None:
        plan = [(g, None) for g in groups]
    else:
        plan = [(g, w) for w in unique_windows(walk) for g in groups]
        m = walk["folds"] + walk["train_folds"]
    requests, results = catalog()["backtest_requests"], catalog()["backtest_results"]
    serde = default_serde()
    start = end_offsets(results.name, results.partitions)
    producer = clients.producer_for(requests.name)
    order = spread(requests.partitions)
    wanted = {}
    for n, (group, window) in enumerate(plan):
        job_id = child_id(parent, n)
        wanted[job_id] = n
        child = data | combos[group[0]] | ({} if window is None else {"window": [*window, m]})
        if len(group) > 1:
            child[VARIANTS] = [combos[i] for i in group[1:]]
        record = {
            "job_id": job_id,
            "kind": "backtest",
            "params_json": json.dumps(child),
            "requested_by": request.get("requested_by") or "optimizer",
            "parent_job_id": parent,
            "ts": int(time.time() * 1e6),
        }
        producer.produce(
            requests.name,
            serde.encode(requests.name, requests.value, record),
            job_id.encode(),
            partition=order[n % len(order)],
        )
    if producer.flush(30):
        raise SparkError("the sweep's child requests were not acknowledged by Kafka")
    answers: dict[str, dict] = {}
    consumer = clients.reader(**{"enable.partition.eof": False, "fetch.wait.max.ms": 200})
    try:
        consumer.assign(
            [TopicPartition(results.name, p, start.get(p, 0)) for p in range(results.partitions)]
        )
        while len(answers) < len(wanted) and not stop.is_set():
            for msg in consumer.consume(100, timeout=0.5):
                if msg.error() is not None:
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise SparkError(f"reading {results.name}: {msg.error().str()}")
                job_id = (msg.key() or b"").decode(errors="replace")
                if job_id not in wanted or job_id in answers:
                    continue
                answers[job_id] = serde.decode(msg.value(), results.value)
                if on_child is not None:
                    on_child(len(answers), len(wanted))
    finally:
        consumer.close()
    if len(answers) < len(wanted):
        raise SparkError(
            f"the sweep stopped with {len(wanted) - len(answers)} of {len(wanted)} child "
            "backtests unanswered (raise SPARK_JOB_TIMEOUT_S, or start more workers)"
        )
    if walk is not None:
        return _gather_walk(answers, wanted, plan, combos, objective, walk, data, report)
    score = OBJECTIVES[objective]
    ranking = []
    for job_id, n in wanted.items():
        answer = answers[job_id]
        for j, i in enumerate(plan[n][0]):
            status, error = answer["status"], answer.get("error")
            metrics = of_variant(answer["metrics"], j) if status == "ok" else {}
            if status == "ok" and not metrics:  # a worker that does not know variants
                status, error = "failed", f"child {job_id} answered without combination {i}"
            value = score(metrics) if metrics else math.nan
            ranking.append(
                {
                    "index": i,
                    "job_id": job_id,
                    "params": combos[i],
                    "objective": None if value != value else value,
                    "metrics": metrics,
                    "status": status,
                    "error": error,
                }
            )
    best_first(ranking)
    failed = sum(r["status"] != "ok" for r in ranking)  # combinations (children_failed)
    if failed == len(ranking):
        raise SparkError(f"every child backtest failed; the first: {ranking[0]['error']}")
    best = ranking[0]
    metrics = dict(best["metrics"], combinations=float(len(combos)), children_failed=float(failed))
    report.parent.mkdir(parents=True, exist_ok=True)
    body = {"objective": objective, "data": data, "fanned_out": True, "ranking": ranking}
    report.write_text(json.dumps(body, default=str) + "\n")
    return {"metrics": metrics, "ranking": ranking, "artifact_uri": report.resolve().as_uri()}


def _gather_walk(answers, wanted, plan, combos, objective, walk, data, report) -> dict:
    """A walk-forward from its children: every window's ranking, then ``walk_report`` as in
    one process. A failed child fails the sweep: its out-of-sample totals would be wrong."""
    score = OBJECTIVES[objective]
    ranked: dict = {}
    for job_id, n in wanted.items():
        answer = answers[job_id]
        if answer["status"] != "ok":
            raise SparkError(f"child backtest {job_id} failed: {answer.get('error')}")
        group, window = plan[n]
        own = of_variant(answer["metrics"], 0)
        span = [int(own.pop(k)) for k in ("window_first_ts", "window_last_ts", "window_ticks")]
        for j, i in enumerate(group):
            metrics = own if j == 0 else of_variant(answer["metrics"], j)
            if not metrics:
                raise SparkError(f"child backtest {job_id} answered without combination {i}")
            value = score(metrics)
            entry = {
                "index": i,
                "params": combos[i],
                "objective": None if value != value else value,
                "metrics": metrics,
            }
            ranked.setdefault(window, ([], span))[0].append(entry)
    for entries, _span in ranked.values():
        best_first(entries)
    out = walk_report(ranked, combos, objective, walk)
    report.parent.mkdir(parents=True, exist_ok=True)
    body = out | {"data": data, "fanned_out": True, "children": len(wanted)}
    report.write_text(json.dumps(body, default=str) + "\n")
    return {"metrics": out["summary"], "walk": out, "artifact_uri": report.resolve().as_uri()}


def fanned_job(request: dict, stop: threading.Event) -> dict:
    """The JobResult fields of a fanned-out sweep; never raises (as ``job_in_subprocess``)."""
    from spark.config import spark_home
    from spark.jobs.runner import safe_name

    started = int(time.time() * 1e6)
    try:
        report = spark_home() / "jobs" / f"{safe_name(request['job_id'])}.json"
        out = run_fanned_sweep(request, report, stop)
        status, error = "ok", None
        metrics, artifact = out["metrics"], out["artifact_uri"]
    except Exception as exc:  # noqa: BLE001 - a failed sweep is a result, with the reason
        known = isinstance(exc, ValueError | SparkError)
        status, error = "failed", str(exc) if known else f"{type(exc).__name__}: {exc}"
        metrics, artifact = {}, None
    return {
        "status": status,
        "metrics": metrics,
        "artifact_uri": artifact,
        "error": error,
        "started": started,
        "finished": int(time.time() * 1e6),
    }
