"""The model registry (signed versions, no pickle), shadow challengers, promotions, and the
/ml HTTP API of a worker."""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from spark.agents.pipeline import BadRequest, features_from_body
from spark.broker.embedded import free_port
from spark.features import FEATURE_NAMES
from spark.ml.registry import newest_versions, pack, sign_record, unpack, verify_record
from spark.ml.snapshots import SnapshotRejected, registry_key
from spark.pipeline import SignalPipeline, TickBatch
from spark.settings import DEFAULT_MODEL, Settings
from spark.ticks.model import Tick
from tests.conftest import WorkerProcess, wait_for
from tests.test_streams import BUNDLED, produce, ticks_of

X = {name: 0.1 * i for i, name in enumerate(FEATURE_NAMES)}
FX = BUNDLED / "fxcm/eurusd/20140501_quote.zip"


def trained(model: str = "gbm") -> SignalPipeline:
    settings = Settings(gate=False, trading=False).with_models(
        model=model, gbm_window=2000, gbm_refit=1000, gbm_swap=0
    )
    pipeline = SignalPipeline(settings)
    pipeline.step(TickBatch.from_ticks(ticks_of(FX, 4000)))
    return pipeline


def version_record(pipeline: SignalPipeline, key: bytes, version: int = 1) -> dict:
    meta, arrays = pipeline.learners.export(0)
    record = {
        "model_id": meta["model_id"],
        "version": version,
        "role": "champion",
        "config_json": json.dumps(
            {
                "horizon_s": pipeline.settings.models.horizon_s,
                "horizon_moves": pipeline.settings.models.horizon_moves,
            }
        ),  # fmt: skip
        "metrics": {},
        "snapshot": pack(meta, arrays),
        "created": 123,
    }
    return sign_record(record, key)


@pytest.mark.parametrize("model", ["gbm", "logreg"])
def test_a_version_round_trips_and_no_field_can_be_changed(model):
    key = bytes(range(32))
    source = trained(model)
    assert model == "logreg" or source.learners.slots[0].fits >= 1  # trees, not the warm-up
    record = version_record(source, key)
    verify_record(record, key)
    fresh = SignalPipeline(source.settings)
    fresh.learners.adopt(0, *unpack(record["snapshot"]))
    assert fresh.predict(X)["prob_up"] == source.predict(X)["prob_up"]
    for field, value in (
        ("version", 9),
        ("role", "challenger"),
        ("model_id", "other"),
        ("created", 124),
        ("config_json", "{}"),
        ("snapshot", record["snapshot"] + b"\0"),
    ):
        with pytest.raises(SnapshotRejected):
            verify_record(dict(record, **{field: value}), key)
    with pytest.raises(SnapshotRejected):
        verify_record(record, bytes(32))  # another key
    with pytest.raises(SnapshotRejected):
        verify_record(dict(record, snapshot_hmac=None), key)
    assert b"pickle" not in record["snapshot"] and record["snapshot"][8:9] == b"{"  # JSON + npz


def test_newest_version_per_model():
    records = {
        "a:1": {"model_id": "a", "version": 1, "created": 5},
        "a:2": {"model_id": "a", "version": 2, "created": 1},
        "b:1": {"model_id": "b", "version": 1, "created": 3},
    }
    assert {k: v["version"] for k, v in newest_versions(records).items()} == {"a": 2, "b": 1}


def test_registry_key_file_is_private_stable_and_made_once(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:  # several processes starting at once agree on one key
        keys = set(pool.map(lambda _: registry_key(), range(16)))
    assert len(keys) == 1 and len(next(iter(keys))) == 32
    home = Path(os.environ["SPARK_HOME"])
    assert (home / "model.key").stat().st_mode & 0o077 == 0
    assert [p.name for p in home.iterdir() if "model.key" in p.name] == ["model.key"]


@pytest.mark.parametrize(
    "body,message",
    [
        ([], "send"),
        ({"features": {"ret_bp": 1.0}}, "features missing"),
        ({"features": {**X, "nope": 1.0}}, "unknown: ['nope']"),
        ({"features": {**X, "ret_bp": "high"}}, "finite number"),
        ({"features": {**X, "ret_bp": float("nan")}}, "finite number"),
        ({"features": X, "symbol": 3}, "symbol"),
        ({"tick": {"symbol": "EURUSD", "ts": 1, "bid": 2.0, "ask": 1.0}}, "crossed_book"),
        ({"tick": {"symbol": "EURUSD", "bid": 2.0}}, "invalid tick"),
    ],
)
def test_predict_body_errors_are_clear(body, message):
    with pytest.raises(BadRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        features_from_body(body)


def test_predict_from_a_raw_tick_uses_live_state_without_changing_it():
    pipeline = SignalPipeline(Settings(gate=False, trading=False).with_models(model="logreg"))
    pipeline.step(TickBatch.from_ticks([Tick("EURUSD", 1_000_000, bid=1.1000, ask=1.1002)]))
    before = (pipeline.fstate.copy(), pipeline.istate.copy())
    answer = pipeline.predict(Tick("EURUSD", 2_000_000, bid=1.1001, ask=1.1003))
    assert answer["features"]["dt_s"] == 1.0 and answer["features"]["ret_bp"] > 0
    assert np.array_equal(pipeline.fstate, before[0], equal_nan=True)
    assert (pipeline.istate == before[1]).all()
    unseen = pipeline.predict(Tick("GBPUSD", 2_000_000, bid=1.3, ask=1.3002))
    assert unseen["features"]["dt_s"] == 0.0  # a symbol never seen: its first tick


def http(port: int, path: str, body: object | None = None, token: bool = True) -> tuple[int, dict]:
    from spark.ml.snapshots import api_token

    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    if token:  # the worker's token: it shares the test's SPARK_HOME
        headers["Authorization"] = f"Bearer {api_token()}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def fuzz_predict(port: int, tick: dict) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    scalar = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10)
    value = st.recursive(
        scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c)
    )
    ticks = st.fixed_dictionaries({}, optional={k: scalar for k in tick}).map(
        lambda t: {**tick, **t}
    )
    bodies = (
        value
        | st.fixed_dictionaries({"tick": ticks | value})
        | st.fixed_dictionaries(
            {
                "features": st.dictionaries(
                    st.sampled_from(FEATURE_NAMES) | st.text(max_size=6), scalar
                )
            }
        )
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies)
    def any_body(body):
        from spark.ml.snapshots import api_token

        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/ml/predict",
            data=json.dumps(body).encode(),  # "null" too: always a POST with a JSON body
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_token()}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, answer = response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            status, answer = err.code, json.loads(err.read())
        assert status in (200, 400, 409), (status, body, answer)

    any_body()


VIEWS = ("/health", "/metrics", "/ml/predict", "/ml/health", "/ml/gates", "/ml/models",
         "/executor")  # fmt: skip


def fuzz_views(port: int) -> None:
    import http.client
    import urllib.parse

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    paths = st.sampled_from(VIEWS) | st.builds(
        lambda base, tail: base + urllib.parse.quote(tail),
        st.sampled_from([*VIEWS, "/", "/ml/", "/router/"]),
        st.text(max_size=12),
    )
    requests = st.fixed_dictionaries(
        {
            "method": st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
            "path": paths,
            "query": st.dictionaries(st.text(max_size=6), st.text(max_size=12), max_size=3),
            "body": st.binary(max_size=256),
            "type": st.sampled_from(["application/json", "text/plain", "x/\u00e9", ""]),
            "auth": st.sampled_from(["", "Bearer", "Bearer x", "Basic Zm9vOmJhcg=="]),
        }
    )

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests)
    def any_request(r):
        query = urllib.parse.urlencode(r["query"])
        target = r["path"] + (f"?{query}" if query else "")
        headers = {"Content-Type": r["type"].encode("latin-1", "replace").decode("latin-1")}
        if r["auth"]:
            headers["Authorization"] = r["auth"]
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(r["method"], target, body=r["body"], headers=headers)
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        unhealthy = response.status == 503 and r["path"] == "/health"
        assert response.status < 500 or unhealthy, (response.status, r)

    any_request()


def http_status(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def wait_restored(worker: WorkerProcess) -> None:
    wait_for(
        lambda: http(worker.web_port, "/ml/health")[1].get("status") == "ok",
        what="the worker to restore its pipelines",
    )


def eurusd_models(worker: WorkerProcess) -> list[dict]:
    """/ml/models of the partition that holds EURUSD."""
    from spark.kafka.partitioner import partition_of
    from spark.topics import catalog

    p = partition_of(b"EURUSD", catalog()["ticks"].partitions)
    return [m for m in http(worker.web_port, "/ml/models")[1]["models"] if m["partition"] == p]


@pytest.mark.broker
def test_shadow_models_http_and_a_restart_that_continues_exactly(broker, tmp_path, monkeypatch):
    shadow = "gbm" if DEFAULT_MODEL == "logreg" else "logreg"  # the other model in shadow
    monkeypatch.setenv("SPARK_CHALLENGERS", shadow)
    monkeypatch.setenv("SPARK_MIN_EDGE", "0")  # the band policy: signals from few ticks
    ticks = ticks_of(FX, 1500)
    w1 = WorkerProcess(free_port(), tmp_path / "w1.log")
    w1.wait_ready()
    try:
        produce(ticks)
        wait_for(
            lambda: w1.metric("spark_events_out_total", topic="predictions") >= 2 * len(ticks),
            what="champion and shadow predictions",
        )
        models = eurusd_models(w1)
        assert {(m["model_id"], m["role"]) for m in models} == {
            (DEFAULT_MODEL, "champion"),
            (shadow, "challenger"),
        }
        assert all(m["metrics"]["labels"] > 0 for m in models)
        assert w1.metric("spark_events_out_total", topic="signals") > 0
        status, health = http(w1.web_port, "/ml/health")
        assert status == 200 and health["status"] == "ok"
        assert health["champions"] == [f"{DEFAULT_MODEL} v1"] and len(health["partitions"]) == 6
        status, before = http(w1.web_port, "/ml/predict", {"features": X, "symbol": "EURUSD"})
        assert status == 200 and 0 <= before["prob_up"] <= 1 and before["model_id"] == DEFAULT_MODEL
        tick = {
            "symbol": "EURUSD",
            "ts": ticks[-1].ts + 1000,
            "bid": ticks[-1].bid,
            "ask": ticks[-1].ask,
        }
        status, answer = http(w1.web_port, "/ml/predict", {"tick": tick})
        assert status == 200 and answer["features"]["dt_s"] == 0.001
        status, answer = http(w1.web_port, "/ml/predict", {"features": {"ret_bp": 1}})
        assert status == 400 and "features missing" in answer["error"]
        # without the token: refused, and told how to get one
        status, answer = http(w1.web_port, "/ml/predict", {"tick": tick}, token=False)
        assert status == 401 and "spark token" in answer["error"]
        status, answer = http(w1.web_port, "/ml/predict", {"tick": "x" * 70_000})
        assert status == 413
        # Faust's own pages are not served
        assert http_status(w1.web_port, "/router/") == 404
        # whatever JSON a client sends, the answer is a prediction or says what is wrong
        fuzz_predict(w1.web_port, tick)
        # any method, path, query, header or body on any page: an answer below 500, and
        # the worker goes on serving (and predicting) after it
        fuzz_views(w1.web_port)
        status, after = http(w1.web_port, "/ml/predict", {"tick": tick})
        assert status == 200 and 0 <= after["prob_up"] <= 1
        assert http(w1.web_port, "/health")[0] == 200
    finally:
        assert w1.stop() == 0  # checkpoints every partition on the way out

    w2 = WorkerProcess(free_port(), tmp_path / "w2.log")
    try:
        w2.wait_ready()
        wait_restored(w2)
        assert w2.metric("spark_pipeline_checkpoints_total", outcome="restored") >= 1
        status, after = http(w2.web_port, "/ml/predict", {"features": X, "symbol": "EURUSD"})
        assert after["prob_up"] == before["prob_up"]  # the same models, exactly
        assert eurusd_models(w2) == models
    finally:
        w2.stop()


def publish(record: dict, key: bytes | None = None) -> None:
    from spark.kafka import clients
    from spark.ml.registry import registry_key_of
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    spec = catalog()["model_versions"]
    producer = clients.producer()
    producer.produce(
        spec.name,
        default_serde().encode(spec.name, spec.value, record),
        key or registry_key_of(record["model_id"], record["version"]),
    )
    assert producer.flush(10) == 0


@pytest.mark.broker
def test_a_forged_version_is_refused_and_the_worker_starts_fresh(broker, tmp_path):
    forged = version_record(trained("gbm"), b"not the registry key, attacker's", version=7)
    publish(forged)
    signed_then_changed = dict(version_record(trained("gbm"), registry_key(), version=8), role="x")
    publish(signed_then_changed)
    worker = WorkerProcess(free_port(), tmp_path / "w.log")
    try:
        worker.wait_ready()
        wait_restored(worker)
        assert worker.metric("spark_model_snapshots_total", outcome="rejected") == 2
        assert http(worker.web_port, "/ml/health")[1]["champions"] == [f"{DEFAULT_MODEL} v1"]
        assert "refused" in (tmp_path / "w.log").read_text()
    finally:
        worker.stop()


@pytest.mark.broker
def test_model_train_registers_versions_that_workers_pick_up(broker, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from spark.cli import cli

    monkeypatch.setenv("SPARK_MODEL", "logreg")  # the worker's configured model is the trained one
    data = str(BUNDLED / "equity/ibm/20131007_quote.zip")

    def train(model: str) -> dict:
        args = ["model", "train", "--data", data, "--format", "lean-quote", "--model", model]
        result = CliRunner().invoke(cli, [*args, "--json"])
        assert result.exit_code == 0, result.output
        return json.loads(result.output.strip().splitlines()[-1])

    first, shadow, second = train("logreg"), train("gbm"), train("logreg")
    assert (first["version"], first["role"]) == (1, "champion")
    assert (shadow["version"], shadow["role"]) == (1, "challenger")
    assert (second["version"], second["role"]) == (2, "challenger")
    assert first["n"] > 1000 and 0 < first["auc"] < 1

    worker = WorkerProcess(free_port(), tmp_path / "w.log")
    try:
        worker.wait_ready()
        wait_restored(worker)
        models = eurusd_models(worker)
        assert {(m["model_id"], m["version"], m["role"]) for m in models} == {
            ("logreg", 2, "champion"),
            ("gbm", 1, "challenger"),
        }
        assert worker.metric("spark_model_snapshots_total", outcome="restored") == 2 * 6
        # the champion predicts with the registered version's parameters, not from nothing
        assert (
            http(worker.web_port, "/ml/predict", {"features": X, "symbol": "EURUSD"})[1]["prob_up"]
            != 0.5
        )
    finally:
        worker.stop()


@pytest.mark.broker
def test_a_better_challenger_is_promoted_with_events(broker, tmp_path, monkeypatch):
    from spark.consume import messages
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    # a weak champion (gbm refit every 400 labels on a window of 1,000 overfits early in the
    # day) and the logistic regression in shadow, which passes it by > 0.02 within the first
    # 2,500 ticks: measured offline with the same code (the pipeline)
    monkeypatch.setenv("SPARK_MODEL", "gbm")
    monkeypatch.setenv("SPARK_GBM_WINDOW", "1000")
    monkeypatch.setenv("SPARK_GBM_REFIT", "400")
    monkeypatch.setenv("SPARK_CHALLENGERS", "logreg")
    monkeypatch.setenv("SPARK_PROMOTION_MARGIN", "0.02")
    monkeypatch.setenv("SPARK_PROMOTION_MIN_LABELS", "1000")
    ticks = ticks_of(FX, 3000)
    worker = WorkerProcess(free_port(), tmp_path / "w.log")
    try:
        worker.wait_ready()
        produce(ticks)
        wait_for(
            lambda: worker.metric("spark_events_out_total", topic="predictions") >= 2 * len(ticks),
            what="every prediction",
        )
        champion = next(m for m in eurusd_models(worker) if m["role"] == "champion")
        assert champion["model_id"] == "logreg"
        assert worker.metric("spark_model_promotions_total") == 1  # and no flip-flop after
    finally:
        worker.stop()
    serde = default_serde()
    events = [
        serde.decode(m.value(), "ModelEvent")
        for m in messages(catalog()["model_events"], from_beginning=True)
    ]
    assert [(e["model_id"], e["event"]) for e in events] == [
        ("logreg", "promoted"),
        ("gbm", "demoted"),
    ]
    assert "rolling AUC" in events[0]["reason"]
    predictions = [
        serde.decode(m.value(), "Prediction")
        for m in messages(catalog()["predictions"], from_beginning=True)
    ]
    by_role = {(p["model_id"], p["role"]) for p in predictions if p["ts"] == ticks[-1].ts}
    assert by_role == {("logreg", "champion"), ("gbm", "challenger")}  # roles have swapped
    assert {(p["model_id"], p["role"]) for p in predictions if p["ts"] == ticks[0].ts} == {
        ("gbm", "champion"),
        ("logreg", "challenger"),
    }
    # offline, the same pipeline promotes at the same tick
    offline = SignalPipeline(Settings.from_env())
    result = offline.step(TickBatch.from_ticks(ticks))
    assert [(e["model_id"], e["event"]) for _, e in result.model_events] == [
        ("logreg", "promoted"),
        ("gbm", "demoted"),
    ]
    assert result.model_events[0][1]["ts"] == events[0]["ts"]
    assert np.count_nonzero(np.diff(result.champion)) == 1


@pytest.mark.broker
def test_forged_or_replayed_newer_versions_do_not_hide_or_replace_a_good_one(
    broker, tmp_path, monkeypatch
):
    """The newest correctly signed version is run: a forged v7 above a good v3 is refused
    without hiding v3 (the worker checked only the newest record before), v3's signed
    record sent again under the key of v9 (an older version replayed over a newer one on
    the compacted topic) is refused too, and so is an (unsigned) tombstone for v3."""
    monkeypatch.setenv("SPARK_MODEL", "gbm")  # the worker runs the registered model
    good = version_record(trained("gbm"), registry_key(), version=3)
    publish(good)
    publish(version_record(trained("gbm"), b"not the registry key, attacker's", version=7))
    publish(good, key=b"gbm:9")
    # and a tombstone for v3 (it carries no signature): it deletes nothing
    from spark.kafka import clients
    from spark.topics import catalog

    producer = clients.producer()
    producer.produce(catalog()["model_versions"].name, None, b"gbm:3")
    assert producer.flush(10) == 0
    worker = WorkerProcess(free_port(), tmp_path / "w.log")
    try:
        worker.wait_ready()
        wait_restored(worker)
        assert worker.metric("spark_model_snapshots_total", outcome="rejected") == 3
        assert http(worker.web_port, "/ml/health")[1]["champions"] == ["gbm v3"]
        log = (tmp_path / "w.log").read_text()
        assert "a record of gbm v3 under the key gbm:9" in log
        assert "registry record gbm:3 refused: a tombstone, which deletes nothing" in log
    finally:
        worker.stop()
    # `spark model train` numbers the next version after those a worker trusts: v4, not
    # v8 after the forged v7 (it read every record's version before)
    from click.testing import CliRunner

    from spark.cli import cli

    args = ["model", "train", "--data", str(FX), "--format", "lean-quote", "--model", "gbm",
            "--json", "--no-progress"]  # fmt: skip
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    registered = json.loads(result.output.strip().splitlines()[-1])
    assert (registered["version"], registered["role"]) == (4, "challenger")
