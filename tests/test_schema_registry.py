"""The Schema Registry API `spark up` serves, spoken to by confluent-kafka's own client
(``SchemaRegistryClient``: code nobody here wrote) and by plain HTTP for the error bodies.
The server is a real ``spark schemas serve`` process on the real broker."""

from __future__ import annotations

import json
import subprocess
import urllib.error
import urllib.request

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from spark import schemas
from spark.schema_registry.state import RegistryError, State
from spark.serde.registry import EmbeddedRegistry
from spark.topics import catalog
from tests.conftest import RegistryProcess, spark_cmd, wait_for

TICK = schemas.load_current("Tick")


def http(method: str, url: str, body: dict | None = None) -> tuple[int, object]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/vnd.schemaregistry.v1+json")
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def with_field(schema: dict, field: dict) -> dict:
    return {**schema, "fields": [*schema["fields"], field]}


# --- the state alone: a replay of events -------------------------------------------------------


def test_versions_follow_the_log_and_replays_agree():
    text_a = json.dumps(TICK)
    text_b = json.dumps(
        with_field(TICK, {"name": "seq", "type": ["null", "long"], "default": None})
    )
    one = State()
    events = []
    for text in (text_a, text_b, text_a):  # the third is a repeat: no new version
        event = one.register_event("t-value", text)
        if event is not None:
            events.append(event)
            one.apply(event)
    assert [v.version for v in one.live("t-value")] == [1, 2]
    other = State()
    for event in events:
        other.apply(event)
    assert other.version("t-value", "latest") == one.version("t-value", "latest")
    assert other.version("t-value", 1)["id"] == EmbeddedRegistry().ids()["Tick"]


def test_incompatible_and_invalid_schemas_are_refused_with_confluent_codes():
    st = State()
    st.apply(st.register_event("t-value", json.dumps(TICK)))
    required = with_field(TICK, {"name": "seq", "type": "long"})
    with pytest.raises(RegistryError) as exc:
        st.register_event("t-value", json.dumps(required))
    assert (exc.value.status, exc.value.code) == (409, 409)
    with pytest.raises(RegistryError) as exc:
        st.register_event("t-value", "{not json")
    assert exc.value.code == 42201
    st.apply({"op": "config", "subject": "t-value", "compatibility": "NONE"})
    assert st.register_event("t-value", json.dumps(required)) is not None


# --- the server, through confluent-kafka's client ---------------------------------------------


@pytest.mark.broker
def test_contracts_are_served_under_topic_subjects_with_the_ids_spark_writes(registry):
    client = registry.client
    ids = EmbeddedRegistry().ids()
    for spec in catalog().values():
        if spec.is_raw or spec.is_json:
            continue
        latest = client.get_latest_version(f"{spec.name}-value")
        assert latest.schema_id == ids[spec.value], spec.id
    ticks = catalog()["ticks"].name
    fetched = client.get_schema(ids["Tick"])
    assert json.loads(fetched.schema_str)["name"] == "Tick"
    assert client.get_schema_types() == ["AVRO"]
    assert {"subject": f"{ticks}-value", "version": 1} in [
        {"subject": v.subject, "version": v.version}
        for v in client.get_schema_versions(ids["Tick"])
    ]


@pytest.mark.broker
def test_register_lookup_compatibility_config_and_deletes(registry):
    client = registry.client
    subject = "feed.custom-value"
    v1 = json.dumps(TICK)
    v2 = json.dumps(with_field(TICK, {"name": "seq", "type": ["null", "long"], "default": None}))
    first = client.register_schema(subject, Schema(v1, "AVRO"))
    second = client.register_schema(subject, Schema(v2, "AVRO"))
    # a fresh client (no cache) registering again gets the same id and makes no version
    fresh = SchemaRegistryClient({"url": registry.url})
    assert fresh.register_schema(subject, Schema(v2, "AVRO")) == second != first
    assert fresh.get_versions(subject) == [1, 2]
    assert fresh.lookup_schema(subject, Schema(v1, "AVRO")).version == 1

    breaking = json.dumps(with_field(TICK, {"name": "seq", "type": "long"}))
    assert not fresh.test_compatibility(subject, Schema(breaking, "AVRO"))
    with pytest.raises(SchemaRegistryError) as exc:
        fresh.register_schema(subject, Schema(breaking, "AVRO"))
    assert (exc.value.http_status_code, exc.value.error_code) == (409, 409)

    assert fresh.get_compatibility() == "BACKWARD"
    fresh.set_compatibility(subject, "NONE")
    assert fresh.get_compatibility(subject) == "NONE"
    assert fresh.test_compatibility(subject, Schema(breaking, "AVRO"))

    assert fresh.delete_version(subject, 2) == 2
    assert fresh.get_versions(subject) == [1]
    assert fresh.delete_subject(subject) == [1]
    assert subject not in fresh.get_subjects()
    assert fresh.delete_subject(subject, permanent=True) == [1, 2]  # the soft-deleted too
    with pytest.raises(SchemaRegistryError) as exc:
        fresh.get_versions(subject)
    assert exc.value.error_code == 40401


@pytest.mark.broker
def test_error_bodies_are_confluents(registry):
    base = registry.url
    ticks = catalog()["ticks"].name
    assert http("GET", f"{base}/subjects/nope/versions") == (
        404,
        {"error_code": 40401, "message": "Subject 'nope' not found."},
    )
    status, body = http("GET", f"{base}/subjects/{ticks}-value/versions/99")
    assert (status, body["error_code"]) == (404, 40402)
    status, body = http("GET", f"{base}/subjects/{ticks}-value/versions/zero")
    assert (status, body["error_code"]) == (422, 42202)
    status, body = http("GET", f"{base}/schemas/ids/1")
    assert (status, body["error_code"]) == (404, 40403)
    status, body = http("POST", f"{base}/subjects/{ticks}-value", {"schema": '"string"'})
    assert (status, body["error_code"]) == (404, 40403)
    status, body = http("POST", f"{base}/subjects/x-value/versions", {"schema": "{"})
    assert (status, body["error_code"]) == (422, 42201)
    status, body = http(
        "POST", f"{base}/subjects/x-value/versions", {"schema": "{}", "schemaType": "PROTOBUF"}
    )
    assert (status, body["error_code"]) == (422, 42201)
    status, body = http("PUT", f"{base}/config", {"compatibility": "SIDEWAYS"})
    assert (status, body["error_code"]) == (422, 42203)
    status, body = http("GET", f"{base}/config/{ticks}-value")
    assert (status, body["error_code"]) == (404, 40408)
    assert http("GET", f"{base}/config/{ticks}-value?defaultToGlobal=true") == (
        200,
        {"compatibilityLevel": "BACKWARD"},
    )
    status, body = http("DELETE", f"{base}/subjects/x-value?permanent=true")
    assert (status, body["error_code"]) == (404, 40401)
    assert http("GET", f"{base}/subjects/{ticks}-value/versions/latest/schema")[1]["name"] == "Tick"
    status, listing = http("GET", f"{base}/schemas?latestOnly=true")
    assert status == 200 and {"subject", "version", "id", "schema"} <= listing[0].keys()
    assert f"{ticks}-value" in {e["subject"] for e in listing}
    assert http("GET", f"{base}/mode") == (200, {"mode": "READWRITE"})


@pytest.mark.broker
def test_restarts_and_a_second_server_agree(registry, tmp_path):
    subject = "feed.other-value"
    v2 = json.dumps(with_field(TICK, {"name": "seq", "type": ["null", "long"], "default": None}))
    registry.client.register_schema(subject, Schema(json.dumps(TICK), "AVRO"))
    sid = registry.client.register_schema(subject, Schema(v2, "AVRO"))
    second = RegistryProcess(tmp_path, "second")
    try:
        seen = second.client.get_version(subject, 2)
        assert (seen.schema_id, seen.version) == (sid, 2)
        # a write through the second is seen by the first
        second.client.set_compatibility(subject, "FULL")
        wait_for(
            lambda: (
                http("GET", f"{registry.url}/config/{subject}")[1] == {"compatibilityLevel": "FULL"}
            ),
            10,
            "the first server to read the second's write",
        )
    finally:
        second.stop()
    registry.stop()
    again = RegistryProcess(tmp_path, "again")
    try:
        assert again.client.get_versions(subject) == [1, 2]
        assert again.client.get_compatibility(subject) == "FULL"
        # the restart did not seed the contracts twice
        ticks = catalog()["ticks"].name
        assert again.client.get_versions(f"{ticks}-value") == [1]
    finally:
        again.stop()


@pytest.mark.broker
def test_serve_on_a_taken_port_says_so(broker, registry):
    out = subprocess.run(
        spark_cmd("schemas", "serve", "--port", str(registry.port)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert f"port {registry.port} is taken" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.broker
def test_the_contracts_cannot_be_deleted_a_feeds_own_version_can(registry):
    client, base = registry.client, registry.url
    subject = f"{catalog()['ticks'].name}-value"
    feed = {**TICK, "fields": [f for f in TICK["fields"] if f["name"] not in ("venue", "source")]}
    client.register_schema(subject, Schema(json.dumps(feed), "AVRO"))
    assert client.get_versions(subject) == [1, 2]
    for url in (f"{base}/subjects/{subject}/versions/1", f"{base}/subjects/{subject}"):
        status, body = http("DELETE", url)
        assert (status, body["error_code"]) == (422, 42205), url
        assert "contract of a catalog topic" in body["message"]
    assert client.delete_version(subject, 2) == 2
    assert client.delete_version(subject, 2, permanent=True) == 2
    assert client.get_versions(subject) == [1]


@pytest.mark.broker
def test_any_request_gets_a_confluent_answer_never_a_server_error(registry):
    """Property-based fuzz of every route of the registry API (issue 13: every HTTP
    endpoint): arbitrary methods, path parameters, queries and bodies (JSON or not) get an
    answer below 500 with Confluent's error body for errors, and the server still serves
    the contracts after."""
    import urllib.parse
    from http.client import HTTPConnection

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    ticks = catalog()["ticks"].name
    routes = [  # every route of spark/schema_registry/server.py, with its method
        ("GET", "/"), ("GET", "/schemas/types"), ("GET", "/schemas/ids/{id}"),
        ("GET", "/schemas/ids/{id}/schema"), ("GET", "/schemas/ids/{id}/versions"),
        ("GET", "/schemas/ids/{id}/subjects"), ("GET", "/schemas"), ("GET", "/mode"),
        ("GET", "/subjects"), ("GET", "/subjects/{subject}/versions"),
        ("GET", "/subjects/{subject}/versions/{version}"),
        ("GET", "/subjects/{subject}/versions/{version}/schema"),
        ("GET", "/subjects/{subject}/versions/{version}/referencedby"),
        ("POST", "/subjects/{subject}/versions"), ("POST", "/subjects/{subject}"),
        ("DELETE", "/subjects/{subject}"), ("DELETE", "/subjects/{subject}/versions/{version}"),
        ("POST", "/compatibility/subjects/{subject}/versions/{version}"),
        ("POST", "/compatibility/subjects/{subject}/versions"), ("GET", "/config"),
        ("PUT", "/config"), ("GET", "/config/{subject}"), ("PUT", "/config/{subject}"),
        ("DELETE", "/config/{subject}"),
    ]  # fmt: skip
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
    calls = st.sampled_from(routes) | st.tuples(
        st.sampled_from(methods), st.sampled_from(sorted({t for _, t in routes}))
    )
    text = st.text(max_size=12)
    subjects = st.sampled_from([f"{ticks}-value", "fuzz-value", "x"]) | text
    versions = st.sampled_from(["latest", "-1", "1", "0", "99999999999999999999"]) | text
    ids = st.integers(-(2**40), 2**40).map(str) | text
    scalar = st.none() | st.booleans() | st.integers() | st.floats() | text
    value = st.recursive(
        scalar, lambda c: st.lists(c, max_size=3) | st.dictionaries(text, c, max_size=3)
    )
    schema_text = st.sampled_from(['"string"', "{", '{"type": "record"}', json.dumps(TICK)])
    bodies = (
        value.map(lambda v: json.dumps(v).encode())
        | st.binary(max_size=64)
        | st.fixed_dictionaries(
            {"schema": schema_text | text},
            optional={"schemaType": st.sampled_from(["AVRO", "JSON", "PROTOBUF"]) | text,
                      "references": value, "compatibility": text | value},
        ).map(lambda v: json.dumps(v).encode())
    )  # fmt: skip
    requests = st.fixed_dictionaries(
        {
            "call": calls,
            "subject": subjects,
            "version": versions,
            "id": ids,
            "query": st.dictionaries(
                st.sampled_from(
                    [
                        "permanent",
                        "latestOnly",
                        "defaultToGlobal",
                        "deleted",
                        "normalize",
                        "subject",
                        "verbose",
                    ]
                )
                | text,
                st.sampled_from(["true", "false", ""]) | text,
                max_size=3,
            ),  # fmt: skip
            "body": bodies,
        }
    )
    host, port = urllib.parse.urlparse(registry.url).netloc.split(":")

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(requests)
    def any_request(r):
        method, template = r["call"]
        path = template.format(
            subject=urllib.parse.quote(r["subject"], safe=""),
            version=urllib.parse.quote(r["version"], safe=""),
            id=urllib.parse.quote(r["id"], safe=""),
        )
        query = urllib.parse.urlencode(r["query"])
        conn = HTTPConnection(host, int(port), timeout=10)
        try:
            headers = {"Content-Type": "application/vnd.schemaregistry.v1+json"}
            conn.request(method, path + (f"?{query}" if query else ""), r["body"], headers)
            response = conn.getresponse()
            raw = response.read()
        finally:
            conn.close()
        assert response.status < 500, (response.status, r, raw[:300])
        if response.status >= 400:
            body = json.loads(raw)
            assert isinstance(body["error_code"], int) and isinstance(body["message"], str), body

    any_request()
    status, latest = http("GET", f"{registry.url}/subjects/{ticks}-value/versions/latest/schema")
    assert status == 200 and latest["name"] == "Tick"


START = (
    "import json; from spark.schema_registry.process import start_detached; "
    "print(json.dumps(start_detached({port})))"
)


@pytest.mark.broker
def test_two_detached_registries_started_at_once_on_one_port_each_find_their_own(
    broker, tmp_path, monkeypatch
):
    """Two `spark up` at the same moment both see the default port free; the registry
    binds only after catching up with its topic, so one loses the port. CI once saw the
    loser report the winner's URL as its own and then show as not running. Each must end
    up answering on its own port, under its own pid."""
    import os
    import sys

    from spark.broker.embedded import free_port, pid_alive
    from spark.schema_registry.process import stop_detached
    from spark.schema_registry.server import PID_HEADER

    port = free_port()
    homes = [tmp_path / "a", tmp_path / "b"]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", START.format(port=port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "SPARK_HOME": str(home)},
        )
        for home in homes
    ]
    records = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
            records.append(json.loads(out))
        assert {r["port"] for r in records} - {port} and port in {r["port"] for r in records}
        for record in records:
            assert record["running"] and pid_alive(record["pid"])
            with urllib.request.urlopen(f"{record['url']}/subjects", timeout=10) as answer:
                assert answer.headers[PID_HEADER] == str(record["pid"])
    finally:
        for home in homes:
            monkeypatch.setenv("SPARK_HOME", str(home))
            stop_detached()
