"""Wiring of the tick path into the Faust worker: the loop thread, operator commands, HTTP.

The work itself is ``spark.stream.loop.TickLoop`` (batch consume → SignalPipeline →
produce → commit, docs/hot-path.md); Faust keeps what it does well here: the web server
and timers. Gate and risk commands are read by the loop itself, every worker all of them
(``spark.stream.commands``: a Faust agent's shared group gave each command to one worker
of several). HTTP handlers read the loop's pipelines in a thread, under the loop's lock,
so the event loop never waits on a batch.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import math
import os
import signal
import threading
import time

import faust
from faust.web import Request, Response, View

from spark.agents import ticks_group
from spark.errors import SparkError
from spark.execution.paper import summary
from spark.features.kernel import FEATURE_NAMES
from spark.metrics import CONSUMER_LAG, STAGE_HEALTHY
from spark.ml.snapshots import api_token
from spark.settings import Settings
from spark.stream.health import Watchdog
from spark.stream.loop import TickLoop, start_thread
from spark.ticks.model import InvalidTick, Tick, validate
from spark.ticks.producer import default_serde
from spark.topics import catalog

log = logging.getLogger("spark.agents.pipeline")


class BadRequest(ValueError):
    """A /ml/predict body that cannot be used; the message goes back with a 400."""


def features_from_body(body: object) -> tuple[str | None, dict[str, float] | Tick]:
    """What a /ml/predict body asks about: (symbol or None, feature values or a tick).

    ``{"features": {name: number, ...}, "symbol": optional}`` with every feature of the
    current set, or ``{"tick": {"symbol": ..., "ts": µs, "bid": ..., "ask": ...}}``, whose
    features are computed from the symbol's live state without changing it.
    """
    if not isinstance(body, dict) or not ({"features", "tick"} & set(body)):
        raise BadRequest('send {"features": {...}} or {"tick": {...}}')
    if "features" in body:
        given = body["features"]
        if not isinstance(given, dict):
            raise BadRequest('"features" must be an object of name -> number')
        missing = [n for n in FEATURE_NAMES if n not in given]
        unknown = [n for n in given if n not in FEATURE_NAMES]
        if missing or unknown:
            raise BadRequest(f"features missing: {missing or 'none'}; unknown: {unknown or 'none'}")
        values = {}
        for name in FEATURE_NAMES:
            value = given[name]
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise BadRequest(f"feature {name} must be a finite number, not {value!r}")
            values[name] = float(value)
        symbol = body.get("symbol")
        if symbol is not None and not isinstance(symbol, str):
            raise BadRequest('"symbol" must be a string')
        return symbol, values
    fields = body["tick"]
    if not isinstance(fields, dict):
        raise BadRequest('"tick" must be an object with symbol, ts, bid, ask, ...')
    try:
        tick = Tick.from_record(fields)
        validate(tick)
    except (InvalidTick, TypeError) as exc:
        raise BadRequest(f"invalid tick: {exc}") from None
    return tick.symbol, tick


def register(app: faust.App, settings: Settings) -> TickLoop:
    loop = TickLoop(settings, ticks_group(), default_serde())
    stop = threading.Event()
    running: dict[str, threading.Thread] = {}
    app.spark_tick_loop = loop  # read by the worker's health view and the benchmark

    @app.task
    async def start_tick_loop() -> None:
        if not stop.is_set():
            log.info("starting the tick loop")
            running["thread"] = start_thread(loop, stop)

    watchdog = Watchdog(settings.stall_s)
    ticks_name = catalog()["ticks"].name
    last_status = {"status": "starting"}

    def tick_loop_health() -> dict:
        thread = running.get("thread")
        lag = sum(
            sample.value
            for metric in CONSUMER_LAG.collect()
            for sample in metric.samples
            if sample.labels.get("topic") == ticks_name
        )
        return watchdog.assess(
            time.monotonic(),
            alive=thread is None or thread.is_alive(),
            ready=loop.ready.is_set(),
            iterated_at=loop.iterated_at,
            consumed_at=loop.consumed_at,
            lag=lag,
        )

    @app.page("/health")
    class Health(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            stages = {"tick_loop": tick_loop_health()}
            healthy = all(s["status"] in ("ok", "starting") for s in stages.values())
            body = {"status": "ok" if healthy else "unhealthy", "stages": stages}
            return self.json(body, status=200 if healthy else 503)

    @app.timer(interval=1.0)
    async def watch_tick_loop() -> None:
        health = tick_loop_health()
        STAGE_HEALTHY.labels("tick_loop").set(health["status"] in ("ok", "starting"))
        if health["status"] != last_status["status"]:
            level = logging.WARNING if health["status"] in ("stalled", "dead") else logging.INFO
            log.log(level, "tick loop %s %s", health["status"], health["reason"])
            last_status["status"] = health["status"]
        thread = running.get("thread")
        if thread is not None and not thread.is_alive() and not stop.is_set():
            log.error("the tick loop died (see above); stopping the worker so it is restarted")
            os.kill(os.getpid(), signal.SIGTERM)

    @app.on_before_shutdown.connect
    async def stop_tick_loop(app, **_kwargs) -> None:  # noqa: ARG001 - signal signature
        stop.set()  # a loop not started yet never starts
        thread = running.get("thread")
        if thread is not None:  # it checkpoints and commits on its way out
            await asyncio.get_running_loop().run_in_executor(None, thread.join, 60)

    _register_views(app, loop)
    return loop


MAX_BODY = 64 * 1024  # a predict request is a tick or 52 features: far less


def _register_views(app: faust.App, loop: TickLoop) -> None:
    token = api_token()  # made now, so `spark token` shows the one the worker checks

    async def read(fn):
        def locked():
            with loop.lock:
                return fn()

        return await asyncio.get_running_loop().run_in_executor(None, locked)

    @app.page("/ml/predict")
    class Predict(View):
        async def post(self, request: Request) -> Response:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return self.json(
                    {"error": "send the header Authorization: Bearer <token> (`spark token`)"},
                    status=401,
                )
            if (request.content_length or 0) > MAX_BODY:
                return self.json({"error": f"the body is over {MAX_BODY} bytes"}, status=413)
            try:
                body = await request.json()
            except ValueError:
                return self.json({"error": "the body must be JSON"}, status=400)
            try:
                symbol, asked = features_from_body(body)
                answer = await read(lambda: _predict(loop, symbol, asked))
            except BadRequest as exc:
                return self.json({"error": str(exc)}, status=400)
            except SparkError as exc:
                return self.json({"error": str(exc)}, status=409)
            return self.json(answer)

    @app.page("/ml/health")
    class Health(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            return self.json(await read(lambda: _health(loop)))

    @app.page("/ml/gates")
    class Gates(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            def gates():
                return [g.to_record() for p in loop.pipelines() for g in p.drift.gates.values()]

            return self.json({"gates": await read(gates)})

    @app.page("/ml/models")
    class Models(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            return self.json({"models": await read(lambda: _models(loop))})

    @app.page("/executor")
    class ExecutorView(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            def executors():
                return {
                    str(p): summary(part.pipeline.executor) for p, part in loop.partitions.items()
                }

            return self.json({"partitions": await read(executors)})


def _predict(loop: TickLoop, symbol: str | None, asked) -> dict:
    """The prediction of the pipeline that holds ``symbol``; for feature values without a
    known symbol, of the pipeline whose models learned the most."""
    pipelines = loop.pipelines()
    if not pipelines:
        raise SparkError("no tick partition is assigned to this worker yet; retry in a moment")
    owner = next((p for p in pipelines if symbol in p.slot_of), None)
    if owner is None:
        owner = max(pipelines, key=lambda p: int(p.learners.counts.max(initial=0)))
    return owner.predict(asked)


def _health(loop: TickLoop) -> dict:
    pipelines = loop.pipelines()
    return {
        "status": "ok" if loop.ready.is_set() else "starting",
        "partitions": sorted(loop.partitions),
        "labels": int(sum(int(p.learners.counts.max(initial=0)) for p in pipelines)),
        "champions": sorted(
            {
                f"{s.model_id} v{s.version}"
                for p in pipelines
                for s in p.learners.slots
                if s.role == "champion"
            }
        ),
    }


def _models(loop: TickLoop) -> list[dict]:
    out = []
    for p, part in sorted(loop.partitions.items()):
        for m, slot in enumerate(part.pipeline.learners.slots):
            metrics = part.pipeline.scores.metrics(m)
            out.append(
                {
                    "partition": p,
                    "model_id": slot.model_id,
                    "version": slot.version,
                    "role": slot.role,
                    "fits": slot.fits,
                    "metrics": {k: (v if v == v else None) for k, v in metrics.items()},
                }
            )
    return out
