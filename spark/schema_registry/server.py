"""Confluent's Schema Registry REST API over a RegistryLog, served with aiohttp.

The routes are the subset stock serializers, deserializers and common tools call
(docs/schema-registry.md lists them and where behaviour differs). Every answer other
than success is ``{"error_code", "message"}`` with Confluent's codes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable

from aiohttp import web

from spark.schema_registry.log import RegistryLog
from spark.schema_registry.state import LEVELS, RegistryError, State, subject_not_found, validate

log = logging.getLogger("spark.schema_registry")
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
DEFAULT_PORT = 8081
# every answer names the process that served it, so `spark up` can tell its own registry
# from another one that took the same port first
PID_HEADER = "X-Spark-Registry-Pid"


def _reply(body, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(body), status=status, content_type=CONTENT_TYPE)


def _flag(request: web.Request, name: str) -> bool:
    return request.query.get(name, "false").lower() == "true"


async def _body(request: web.Request) -> dict:
    try:
        body = json.loads(await request.text() or "{}")
    except ValueError as exc:
        raise RegistryError(422, 42201, f"the request body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RegistryError(422, 42201, "the request body must be a JSON object")
    return body


def _schema_of(body: dict) -> tuple[str, str]:
    if body.get("references"):
        raise RegistryError(422, 42201, "Invalid schema: schema references are not supported")
    if "schema" not in body:
        raise RegistryError(422, 42201, "Invalid schema: the request has no 'schema'")
    return body["schema"], body.get("schemaType") or "AVRO"


def _level_of(body: dict) -> str:
    level = str(body.get("compatibility", "")).upper()
    if level not in LEVELS:
        raise RegistryError(
            422, 42203, f"Invalid compatibility level. Valid values are {', '.join(LEVELS)}"
        )
    return level


def create_app(registry: RegistryLog) -> web.Application:
    """The aiohttp application; ``registry`` is caught up and seeded by the caller."""

    async def read(fn: Callable[[State], object]) -> object:
        def run():
            with registry.lock:
                return fn(registry.refresh())

        return await asyncio.to_thread(run)

    async def write(fn: Callable[[State], tuple[dict | None, object]]) -> object:
        """``fn`` checks against the caught-up state and gives (event or None, reply); the
        event is appended and read back before the reply goes out."""

        def run():
            with registry.lock:
                event, answer = fn(registry.catch_up())
                if event is not None:
                    registry.append(event)
                return answer

        return await asyncio.to_thread(run)

    routes = web.RouteTableDef()

    @routes.get("/")
    async def root(_request):
        return _reply({})

    @routes.get("/schemas/types")
    async def types(_request):
        return _reply(["AVRO"])

    def _id(request) -> int:
        try:
            return int(request.match_info["id"])
        except ValueError:
            raise RegistryError(404, 40403, "Schema not found") from None

    def _known(state: State, sid: int) -> str:
        text = state.schemas.get(sid)
        if text is None:
            raise RegistryError(404, 40403, f"Schema {sid} not found")
        return text

    @routes.get("/schemas/ids/{id}")
    async def schema_by_id(request):
        sid = _id(request)
        return _reply(await read(lambda st: {"schema": _known(st, sid)}))

    @routes.get("/schemas/ids/{id}/schema")
    async def raw_schema_by_id(request):
        sid = _id(request)
        return _reply(json.loads(await read(lambda st: _known(st, sid))))

    @routes.get("/schemas/ids/{id}/versions")
    async def versions_by_id(request):
        sid, deleted = _id(request), _flag(request, "deleted")
        return _reply(await read(lambda st: (_known(st, sid), st.subjects_of(sid, deleted))[1]))

    @routes.get("/schemas/ids/{id}/subjects")
    async def subjects_by_id(request):
        sid, deleted = _id(request), _flag(request, "deleted")

        def subjects(st):
            _known(st, sid)
            return sorted({e["subject"] for e in st.subjects_of(sid, deleted)})

        return _reply(await read(subjects))

    @routes.get("/schemas")
    async def all_schemas(request):
        deleted, latest = _flag(request, "deleted"), _flag(request, "latestOnly")

        def listing(st: State):
            out = []
            for subject in st.subject_names(deleted):
                versions = st.live(subject, deleted)
                for v in versions[-1:] if latest else versions:
                    out.append(st.version(subject, v.version, deleted=True))
            return out

        return _reply(await read(listing))

    @routes.get("/mode")
    async def mode(_request):
        return _reply({"mode": "READWRITE"})  # no IMPORT or READONLY modes here

    @routes.get("/subjects")
    async def subjects(request):
        deleted = _flag(request, "deleted")
        return _reply(await read(lambda st: st.subject_names(deleted)))

    @routes.get("/subjects/{subject}/versions")
    async def versions(request):
        subject, deleted = request.match_info["subject"], _flag(request, "deleted")

        def numbers(st):
            if not st.live(subject, deleted=True):
                raise subject_not_found(subject)
            return [v.version for v in st.live(subject, deleted)]

        return _reply(await read(numbers))

    @routes.get("/subjects/{subject}/versions/{version}")
    async def version(request):
        subject, number = request.match_info["subject"], request.match_info["version"]
        deleted = _flag(request, "deleted")
        return _reply(await read(lambda st: st.version(subject, number, deleted)))

    @routes.get("/subjects/{subject}/versions/{version}/schema")
    async def version_schema(request):
        subject, number = request.match_info["subject"], request.match_info["version"]
        found = await read(lambda st: st.version(subject, number))
        return _reply(json.loads(found["schema"]))

    @routes.get("/subjects/{subject}/versions/{version}/referencedby")
    async def referenced_by(request):
        subject, number = request.match_info["subject"], request.match_info["version"]
        await read(lambda st: st.version(subject, number))
        return _reply([])  # references are refused, so nothing refers to anything

    @routes.post("/subjects/{subject}/versions")
    async def register(request):
        subject = request.match_info["subject"]
        text, schema_type = _schema_of(await _body(request))

        def check(st: State):
            event = st.register_event(subject, text, schema_type)
            _parsed, sid = validate(text, schema_type)
            return event, {"id": sid}

        return _reply(await write(check))

    @routes.post("/subjects/{subject}")
    async def lookup(request):
        subject = request.match_info["subject"]
        text, schema_type = _schema_of(await _body(request))
        deleted = _flag(request, "deleted")
        return _reply(await read(lambda st: st.lookup(subject, text, schema_type, deleted)))

    @routes.delete("/subjects/{subject}")
    async def delete_subject(request):
        subject, permanent = request.match_info["subject"], _flag(request, "permanent")
        return _reply(await write(lambda st: st.delete_subject_event(subject, permanent)))

    @routes.delete("/subjects/{subject}/versions/{version}")
    async def delete_version(request):
        subject, number = request.match_info["subject"], request.match_info["version"]
        permanent = _flag(request, "permanent")
        return _reply(await write(lambda st: st.delete_version_event(subject, number, permanent)))

    async def _compatibility(request, against_version: str | None):
        subject = request.match_info["subject"]
        text, schema_type = _schema_of(await _body(request))
        verbose = _flag(request, "verbose")

        def check(st: State):
            parsed, _sid = validate(text, schema_type)
            level = st.level(subject)
            if against_version is None:
                problems = st.incompatibilities(subject, parsed, level)
            else:
                target = st.find(subject, against_version)
                problems = st.incompatibilities(subject, parsed, level, against=target)
            answer: dict = {"is_compatible": not problems}
            if verbose:
                answer["messages"] = problems
            return answer

        return _reply(await read(check))

    @routes.post("/compatibility/subjects/{subject}/versions/{version}")
    async def compatibility_one(request):
        return await _compatibility(request, request.match_info["version"])

    @routes.post("/compatibility/subjects/{subject}/versions")
    async def compatibility_all(request):
        return await _compatibility(request, None)

    @routes.get("/config")
    async def get_config(_request):
        return _reply(await read(lambda st: {"compatibilityLevel": st.global_level}))

    @routes.put("/config")
    async def put_config(request):
        level = _level_of(await _body(request))
        event = {"op": "config", "subject": None, "compatibility": level}
        return _reply(await write(lambda st: (event, {"compatibility": level})))

    @routes.get("/config/{subject}")
    async def get_subject_config(request):
        subject, fallback = request.match_info["subject"], _flag(request, "defaultToGlobal")

        def level(st: State):
            if subject in st.subject_levels:
                return {"compatibilityLevel": st.subject_levels[subject]}
            if fallback:
                return {"compatibilityLevel": st.global_level}
            raise RegistryError(
                404,
                40408,
                f"Subject '{subject}' does not have subject-level compatibility configured",
            )

        return _reply(await read(level))

    @routes.put("/config/{subject}")
    async def put_subject_config(request):
        subject = request.match_info["subject"]
        level = _level_of(await _body(request))
        event = {"op": "config", "subject": subject, "compatibility": level}
        return _reply(await write(lambda st: (event, {"compatibility": level})))

    @routes.delete("/config/{subject}")
    async def delete_subject_config(request):
        subject = request.match_info["subject"]

        def remove(st: State):
            if subject not in st.subject_levels and not st.live(subject, deleted=True):
                raise subject_not_found(subject)
            previous = st.level(subject)
            event = {"op": "config", "subject": subject, "compatibility": None}
            return event, {"compatibilityLevel": previous}

        return _reply(await write(remove))

    @web.middleware
    async def errors(request: web.Request, handler: Callable[..., Awaitable[web.StreamResponse]]):
        try:
            return await handler(request)
        except RegistryError as exc:
            return _reply({"error_code": exc.code, "message": exc.message}, exc.status)
        except web.HTTPException as exc:
            code = exc.status * 100 + 1 if exc.status == 404 else exc.status
            return _reply({"error_code": code, "message": exc.reason}, exc.status)
        except Exception as exc:  # one bad request must not stop the server
            log.exception("schema registry request failed")
            return _reply({"error_code": 50001, "message": f"Error in the backend: {exc}"}, 500)

    async def name_the_process(_request, response):
        response.headers[PID_HEADER] = str(os.getpid())

    app = web.Application(middlewares=[errors])
    app.add_routes(routes)
    app.on_response_prepare.append(name_the_process)
    return app


def serve(port: int = DEFAULT_PORT, host: str = "127.0.0.1", ready=None) -> None:
    """Catch up with the registry topic, seed the contracts, serve until stopped."""
    registry = RegistryLog()
    registry.catch_up()
    added = registry.seed_contracts()
    log.info(
        "registry: %d events replayed, %d contract versions added", registry.state.applied, added
    )
    app = create_app(registry)
    app.on_cleanup.append(lambda _app: asyncio.to_thread(registry.close))
    web.run_app(app, host=host, port=port, print=ready, handle_signals=True)
