"""Backtest jobs served by a real worker: the result equals a local run of the same request,
failures come back as failed results with the reason, bad requests are dead-lettered."""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from click.testing import CliRunner

from spark.cli import cli
from spark.config import spark_home
from spark.consume import messages
from spark.jobs.backtest import run_request
from spark.kafka import clients
from spark.kafka.dlq import decode_headers
from spark.topics import catalog
from tests.conftest import wait_for
from tests.helpers import timeless

pytestmark = pytest.mark.broker
FX = Path(__file__).resolve().parent.parent / "spark/data/fxcm/eurusd/20140501_quote.zip"


def submit(*args: str):
    return CliRunner().invoke(cli, ["backtest", "submit", "--timeout", "120", *args])


def test_backtest_job_matches_a_local_run(worker):
    # the band policy (min edge 0): 4,000 ticks give it orders to compare
    options = ["--data", str(FX), "--limit", "4000", "--band", "0.05", "--min-edge", "0"]
    options += ["--fee-bp", "1"]
    result = submit(*options, "--json")
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert job["status"] == "ok" and job["error"] is None and job["kind"] == "backtest"
    local = run_request(
        {"data": [str(FX)], "limit": 4000, "band": 0.05, "min_edge": 0.0, "fee_bp": 1.0},
        restrict=False,
    )["metrics"]
    remote = job["metrics"]
    assert remote["ticks"] == 4000 and remote["orders"] > 0
    for key in set(local) - {"seconds"}:
        assert remote[key] == pytest.approx(local[key], nan_ok=True), key
    report = Path(urlparse(job["artifact_uri"]).path)
    assert report.is_relative_to(spark_home() / "jobs")
    full = json.loads(report.read_text())
    assert len(full["trades"]) == remote["fills"]
    assert worker.metric("spark_jobs_total", kind="backtest", status="ok") == 1
    assert worker.metric("spark_job_duration_seconds_count", kind="backtest") == 1
    # the human-readable form
    result = submit(*options)
    assert result.exit_code == 0, result.output
    assert "orders" in result.output and "Sharpe" in result.output


def test_failed_and_refused_jobs(worker, tmp_path):
    # outside the worker's data folders: refused, dead-lettered, and a failed result
    outside = tmp_path / "ticks.csv"
    outside.write_text("1398920401787000,EURUSD,1.1,1.2\n")
    result = submit("--data", str(outside), "--format", "csv")
    assert result.exit_code == 1
    assert "outside the data folders" in result.output
    # inside them but not a zip: fails while running, with the reader's reason
    data_dir = spark_home() / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "20140501_quote.zip").write_bytes(b"this is not a zip file")
    result = submit("--data", str(data_dir / "20140501_quote.zip"), "--json")
    job = json.loads(result.output.strip().splitlines()[-1])
    assert job["status"] == "failed" and job["error"]
    assert worker.metric("spark_jobs_total", kind="backtest", status="failed") == 2

    spec = catalog()["backtest_requests"]
    producer = clients.producer()
    producer.produce(spec.name, b"not avro", b"job-x")
    producer.flush(10)
    dead = wait_for(
        lambda: (lambda m: m if len(m) == 2 else None)(
            list(messages(catalog()[spec.dlq], from_beginning=True))
        ),
        what="two dead-lettered requests",
    )
    reasons = sorted(decode_headers(m.headers())["spark.dlq.reason"] for m in dead)
    assert reasons == ["bad_magic_byte", "invalid_params"]


MALFORMED = [
    ("backtest", {"data": str(FX), "model": []}),
    ("backtest", {"data": "ticks\u0000.zip"}),  # a NUL in a path
    ("backtest", {"data": str(FX), "band": 10**400}),  # a 400-digit integer
    ("backtest", []),  # not an object
    ("backtest", {"data": str(FX), "variants": [{"band": 0.1}, {"band": []}]}),
    ("backtest", {"data": str(FX), "variants": {"band": 0.1}}),
    ("optimizer", {"data": str(FX), "objective": [], "grid": {"band": [0.1]}}),
    ("optimizer", {"data": str(FX), "grid": [{}]}),
    ("optimizer", {"data": str(FX), "grid": {"band": [{}]}}),
    ("export", {"data": str(FX), "output": {"x": 1}}),
]


def submit_all(requests: list[tuple[str, object]], timeout: float = 60) -> list[dict]:
    """Send every request at once; their results, in the same order."""
    import time
    import uuid

    from spark.jobs.client import TOPICS
    from spark.ticks.producer import default_serde

    serde, producer, ids = default_serde(), clients.producer(), []
    for kind, params in requests:
        spec = catalog()[TOPICS[kind][0]]
        job_id = f"{kind}-{uuid.uuid4().hex[:8]}"
        record = {"job_id": job_id, "kind": kind, "params_json": json.dumps(params),
                  "requested_by": "test", "parent_job_id": None,
                  "ts": int(time.time() * 1e6)}  # fmt: skip
        producer.produce(spec.name, serde.encode(spec.name, spec.value, record), job_id.encode())
        ids.append((kind, job_id))
    assert producer.flush(10) == 0

    def answered():
        found = {}
        for kind in {k for k, _ in ids}:
            spec = catalog()[TOPICS[kind][1]]
            for m in messages(spec, from_beginning=True):
                found[m.key().decode()] = serde.decode(m.value(), spec.value)
        return found if all(j in found for _, j in ids) else None

    found = wait_for(answered, timeout, what="a result for every request")
    return [found[j] for _, j in ids]


@pytest.fixture
def short_job_timeout(monkeypatch):
    monkeypatch.setenv("SPARK_JOB_TIMEOUT_S", "6")  # before the worker fixture starts one


def test_malformed_requests_each_get_a_failed_result(short_job_timeout, worker):
    """Requests a fuzzer would send: each is answered (failed, with a reason) within seconds,
    and the agent goes on serving the next one; a job over its time limit is stopped."""
    import time

    from spark.jobs.client import submit

    results = submit_all(MALFORMED + [("backtest", {"data": str(FX), "x": "y" * 70_000})])
    for (kind, params), result in zip(MALFORMED, results, strict=False):
        assert result["status"] == "failed" and result["error"], (kind, params)
    assert results[-1]["status"] == "failed" and "over 65,536 bytes" in results[-1]["error"]
    # 64 backtests of a whole day take minutes: stopped at 6 s, and the next job runs; 16
    # horizons make 16 model runs, so 16 children (most still queued when the sweep fails)
    started = time.monotonic()
    grid = {"band": [0.05, 0.1, 0.15, 0.2], "horizon_moves": list(range(1, 17))}
    slow = submit("optimizer", {"data": str(FX), "grid": grid}, timeout=120)
    assert slow["status"] == "failed" and "SPARK_JOB_TIMEOUT_S" in slow["error"]
    assert time.monotonic() - started < 30
    again = submit("backtest", {"data": str(FX), "limit": 500}, timeout=120)
    assert again["status"] == "ok", again["error"]
    assert worker.proc.poll() is None
    # the failed sweep cancelled its children still queued: they did not run for nothing
    from spark.ticks.producer import default_serde

    spec, serde = catalog()["backtest_results"], default_serde()
    children = [serde.decode(m.value(), spec.value) for m in messages(spec, from_beginning=True)]
    children = [c for c in children if c["parent_job_id"] == slow["job_id"]]
    skipped = [c for c in children if "its sweep failed" in (c["error"] or "")]
    assert any("(before it started)" in c["error"] for c in skipped), children


def test_submit_without_a_jobs_worker_says_what_to_do(broker, monkeypatch):
    assert os.environ.get("SPARK_TOPIC_PREFIX")
    result = CliRunner().invoke(
        cli, ["backtest", "submit", "--data", str(FX), "--limit", "10", "--timeout", "3"]
    )
    assert result.exit_code == 1
    assert "is a worker running the jobs agent?" in result.output


def test_optimizer_job_ranks_like_a_local_sweep(worker):
    from spark.jobs.optimizer import run_sweep

    result = CliRunner().invoke(
        cli,
        ["optimize", "submit", "--data", str(FX), "--limit", "2000", "--no-gate",
         "--grid", "band=0.05,0.15", "--grid", "horizon_moves=1,3", "--min-edge", "0",
         "--timeout", "120", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert job["status"] == "ok" and job["kind"] == "optimizer", job
    grid = {"band": [0.05, 0.15], "horizon_moves": [1, 3]}
    local = run_sweep(
        {"data": [str(FX)], "limit": 2000, "gate": False, "min_edge": 0, "grid": grid},
        restrict=False,
    )
    assert job["metrics"]["combinations"] == 4
    assert job["metrics"]["pnl"] == pytest.approx(local["metrics"]["pnl"])
    body = json.loads(Path(urlparse(job["artifact_uri"]).path).read_text())
    ranking = body["ranking"]
    assert len({r["metrics"]["pnl"] for r in ranking}) == 4  # four different backtests
    mine = ("index", "job_id", "status", "error")  # the fanned-out report's own columns
    own = [{k: v for k, v in r.items() if k not in mine} for r in ranking]
    assert timeless(own) == timeless(local["ranking"])
    assert worker.metric("spark_jobs_total", kind="optimizer", status="ok") == 1
    # the sweep ran as two child backtest jobs of its own, one per horizon, each stepping its
    # model once for both bands (the second band a variant of the first)
    children = {r["job_id"]: r["params"]["horizon_moves"] for r in ranking}
    assert children == {f"{job['job_id']}-c000": 1, f"{job['job_id']}-c001": 3}
    assert worker.metric("spark_jobs_total", kind="backtest", status="ok") == 2
    # walk-forward as a job: the worker's out-of-sample figures are a local run's
    result = CliRunner().invoke(
        cli,
        ["optimize", "submit", "--data", str(FX), "--limit", "2000", "--no-gate",
         "--grid", "band=0.05,0.15", "--walk-forward", "2", "--timeout", "120"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "walk-forward over 2 test windows, 2 combinations: out-of-sample PnL" in result.output
    walk = {"folds": 2, "mode": "rolling", "train_folds": 1}
    local = run_sweep(
        {"data": [str(FX)], "limit": 2000, "gate": False, "grid": {"band": [0.05, 0.15]},
         "walk_forward": walk},
        restrict=False,
    )  # fmt: skip
    figure = f"out-of-sample PnL {local['metrics']['oos_pnl']:,.2f}"
    assert figure in result.output
    assert worker.metric("spark_jobs_total", kind="optimizer", status="ok") == 2
    # it was fanned out: one child per model run and window (both bands share the model),
    # each window once (rolling, one train window: 3 windows), and its report is the local
    # one's, window for window
    assert worker.metric("spark_jobs_total", kind="backtest", status="ok") == 2 + 3
    uri = result.output.split("every window on the worker: ")[1].split()[0]
    body = json.loads(Path(urlparse(uri).path).read_text())
    assert body["fanned_out"] and body["children"] == 3
    assert timeless(body["windows"]) == timeless(local["walk"]["windows"])
    assert timeless(body["summary"]) == timeless(local["metrics"])
    # --one-process: the same sweep in the taking worker's job process, no children
    result = CliRunner().invoke(
        cli,
        ["optimize", "submit", "--data", str(FX), "--limit", "2000", "--no-gate",
         "--grid", "band=0.05,0.15", "--walk-forward", "2", "--timeout", "120",
         "--one-process"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert figure in result.output
    assert worker.metric("spark_jobs_total", kind="backtest", status="ok") == 2 + 3
    uri = result.output.split("every window on the worker: ")[1].split()[0]
    body = json.loads(Path(urlparse(uri).path).read_text())
    assert "fanned_out" not in body
    assert timeless(body["windows"]) == timeless(local["walk"]["windows"])


def test_export_job_writes_the_report_on_the_worker(worker):
    result = CliRunner().invoke(
        cli,
        ["export", "submit", "--data", str(FX), "--limit", "2000", "--output", "csv",
         "--timeout", "120", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    job = json.loads(result.output.strip().splitlines()[-1])
    assert job["status"] == "ok" and job["kind"] == "export", job
    report = Path(urlparse(job["artifact_uri"]).path)
    assert report.suffix == ".csv" and report.is_relative_to(spark_home() / "jobs")
    lines = report.read_text().splitlines()
    assert (
        lines[0].startswith("ts,order_id,symbol,side") and len(lines) - 1 == job["metrics"]["fills"]
    )
    assert worker.metric("spark_jobs_total", kind="export", status="ok") == 1
    # a topic export as a job: the export requests topic itself, to Parquet, on the worker
    from spark.jobs.client import submit

    job = submit("export", {"topic": "export_requests", "output": "parquet"}, timeout=120)
    assert job["status"] == "ok", job["error"]
    exported = Path(urlparse(job["artifact_uri"]).path)
    assert exported.suffix == ".parquet" and exported.is_relative_to(spark_home() / "jobs")
    import pyarrow.parquet as pq

    table = pq.read_table(exported)
    assert table.num_rows == job["metrics"]["exported"] >= 1
    assert "params_json" in table.column_names
    # the worker counts what its topic exports wrote (rows, bytes, time)
    assert worker.metric("spark_export_rows_total") == job["metrics"]["exported"]
    assert worker.metric("spark_export_bytes_total") == exported.stat().st_size
    assert worker.metric("spark_export_seconds_count") == 1
    # and a PDF of a topic, charts and summary table, also as a job
    pdf = submit("export", {"topic": "export_requests", "output": "pdf"}, timeout=120)
    assert pdf["status"] == "ok", pdf["error"]
    assert Path(urlparse(pdf["artifact_uri"]).path).read_bytes().startswith(b"%PDF")
    assert worker.metric("spark_export_seconds_count") == 2
    bad = submit("export", {"topic": "ticks_dlq", "output": "csv"}, timeout=60)
    assert bad["status"] == "failed" and "raw bytes" in bad["error"]


def children_of(pid: int) -> list[int]:
    """Pids whose parent is ``pid`` (Linux /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid: int) -> bool:
    """Running (a zombie, reaped by init soon, counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_sweep_is_shared_by_two_workers_and_survives_one_dying(broker, tmp_path, capsys):
    """Two workers share a fanned-out sweep's child backtests; the one coordinating it is
    killed with -9 mid-sweep, and its job pool ends with it; the survivor takes the sweep
    and its children again and answers with every combination ranked."""
    from spark.broker.embedded import free_port
    from spark.jobs.client import submit as send
    from spark.jobs.client import wait_for_result
    from spark.kafka.topics import end_offsets
    from tests.conftest import WorkerProcess

    a = WorkerProcess(free_port(), tmp_path / "a.log")
    b = WorkerProcess(free_port(), tmp_path / "b.log")
    workers = [a, b]
    try:
        for w in workers:
            w.wait_ready()
        results = catalog()["optimizer_results"]
        start = end_offsets(results.name, results.partitions)
        # six model runs (one per horizon), two bands each: six children of two combinations
        grid = {"band": [0.05, 0.1], "horizon_moves": [1, 2, 3, 4, 5, 6]}
        params = {"data": [str(FX)], "limit": 30_000, "gate": False, "grid": grid}
        send("optimizer", params, wait=False)
        job_id = capsys.readouterr().out.split("submitted ")[1].split()[0]

        def ran_children(w) -> float:
            return w.metric("spark_jobs_total", kind="backtest", status="ok")

        wait_for(
            lambda: all(ran_children(w) >= 1 for w in workers),
            timeout=180,
            what="both workers to run child backtests of the sweep",
        )
        coordinator = next(w for w in workers if f"optimizer {job_id} started" in w.log.read_text())
        pool = children_of(coordinator.proc.pid)
        assert pool, "the coordinator ran child backtests in its job pool"
        coordinator.kill()
        workers.remove(coordinator)
        # its job pool does not outlive it (it would wait for work forever)
        wait_for(lambda: not any(alive(pid) for pid in pool), 15, "the dead worker's pool to end")
        result = wait_for_result(results, start, job_id, 300)
        assert result["status"] == "ok", result["error"]
        assert result["metrics"]["combinations"] == 12
        assert result["metrics"]["children_failed"] == 0
        body = json.loads(Path(urlparse(result["artifact_uri"]).path).read_text())
        assert len(body["ranking"]) == 12 and all(r["status"] == "ok" for r in body["ranking"])
        assert len({r["job_id"] for r in body["ranking"]}) == 6
        survivor = workers[0]
        assert f"optimizer {job_id} started" in survivor.log.read_text()  # taken over
    finally:
        for w in workers:
            w.stop()


def test_jobs_are_cancelled_running_or_queued(worker, capsys):
    """`spark job cancel`: a running backtest is stopped and a queued one never starts, both
    answered failed with who and why; an unsigned cancel is dead-lettered; the worker goes
    on running jobs."""
    import time

    from spark.jobs.client import submit as send
    from spark.jobs.client import wait_for_result
    from spark.kafka.topics import end_offsets
    from spark.ticks.producer import default_serde

    results = catalog()["backtest_results"]
    start = end_offsets(results.name, results.partitions)
    # the bundled day four times over (ticks repeat; the backtest does not mind): since the
    # cheaper gbm refits of session 13, one copy could finish before the cancel arrived
    data = [str(FX)] * 4 + [str(FX.parent.parent.parent / "equity/ibm/20131007_quote.zip")]
    long_job = {"data": data, "model": "gbm", "min_edge": 0.0, "gate": False}
    ids = []
    for _ in range(2):
        send("backtest", long_job, wait=False)
        ids.append(capsys.readouterr().out.split("submitted ")[1].split()[0])
    wait_for(
        lambda: worker.metric("spark_jobs_running", kind="backtest") == 1,
        what="the first backtest to start",
    )
    log = worker.log.read_text()
    ids.sort(key=lambda job_id: f"backtest {job_id} started" not in log)  # the running first
    for job_id in reversed(ids):  # the queued one first: its cancel is taken before its turn
        out = CliRunner().invoke(cli, ["job", "cancel", job_id, "--reason", "wrong data"])
        assert out.exit_code == 0, out.output
        time.sleep(2)
    asked = time.monotonic()
    running = wait_for_result(results, start, ids[0], 60)
    assert running["status"] == "failed" and "wrong data" in running["error"], running
    assert time.monotonic() - asked < 30  # stopped, not run to the end
    queued = wait_for_result(results, start, ids[1], 60)
    assert queued["status"] == "failed" and "before it started" in queued["error"]
    # an unsigned cancel: dead-lettered, and no job is touched
    spec = catalog()["job_commands"]
    forged = {"job_id": "x", "action": "cancel", "reason": "forged", "ts": int(time.time() * 1e6)}
    producer = clients.producer()
    producer.produce(spec.name, default_serde().encode(spec.name, spec.value, forged), b"x")
    producer.flush(10)

    def dead() -> list:
        got = [
            decode_headers(m.headers())
            for m in messages(catalog()["job_commands_dlq"], from_beginning=True)
        ]
        return got or None

    headers = wait_for(dead, what="the unsigned job command dead-lettered")
    assert headers[0]["spark.dlq.reason"] == "unsigned_command"
    assert (
        worker.metric("spark_dead_letters_total", topic="job_commands", reason="unsigned_command")
        == 1
    )
    ok = submit("--data", str(FX), "--limit", "2000", "--no-gate", "--json")
    assert ok.exit_code == 0 and json.loads(ok.output.strip().splitlines()[-1])["status"] == "ok"


def test_children_are_spread_evenly_over_two_workers():
    """With an even partition count (the catalog's six), two workers holding contiguous
    halves (range assignor) or alternate partitions (round-robin) get shares of a sweep's
    children that differ by at most one, however many children; with any partition count a
    whole cycle sends one child to every partition."""
    from spark.jobs.fanout import spread

    for partitions in range(1, 13):
        order = spread(partitions)
        assert sorted(order) == list(range(partitions))
        if partitions % 2:
            continue
        half = partitions // 2
        for name, second_worker in {
            "range": lambda p, half=half: p >= half,
            "round-robin": lambda p: p % 2 == 1,
        }.items():
            for n in range(1, 4 * partitions):
                second = sum(second_worker(order[i % partitions]) for i in range(n))
                assert abs((n - second) - second) <= 1, (name, partitions, n)
