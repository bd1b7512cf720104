"""The baseline Faust path: a per-event agent that decodes each tick, encodes a record and
sends it on (``send_soon``), as Spark's agents did before the batch loop.

Run by ``bench.bench_hotpath`` as ``python -m bench.faust_passthrough worker ...`` with
BENCH_TARGET (messages) and BENCH_RESULT (a file: first and last message times) set.
"""

from __future__ import annotations

import json
import os
import time

import faust

from spark.agents import app_id
from spark.config import bootstrap_servers
from spark.ticks.producer import default_serde
from spark.topics import catalog

TARGET = int(os.environ.get("BENCH_TARGET", "0"))
RESULT = os.environ.get("BENCH_RESULT", "/tmp/faust-passthrough.json")
ticks, features = catalog()["ticks"], catalog()["features"]
app = faust.App(
    f"{app_id()}-faust-bench",
    broker=f"kafka://{bootstrap_servers()}",
    broker_session_timeout=2.0,
    broker_heartbeat_interval=0.5,
    consumer_auto_offset_reset="earliest",
    producer_linger_ms=5,
    store="memory://",
    web_enabled=False,
    topic_allow_declare=False,
)
source = app.topic(ticks.name, key_serializer="raw", value_serializer="raw")
sink = app.topic(features.name + ".faust-bench", key_serializer="raw", value_serializer="raw")
serde = default_serde()
state = {"n": 0, "first": None}


@app.agent(source)
async def passthrough(stream):
    async for event in stream.events():
        if state["first"] is None:
            state["first"] = time.time()
        record = serde.decode(event.value, "Tick")
        out = {**record, "source": "faust"}
        sink.send_soon(key=event.key, value=serde.encode(ticks.name, "Tick", out))
        state["n"] += 1
        if state["n"] == TARGET:
            with open(RESULT, "w") as fh:
                json.dump({"first": state["first"], "last": time.time(), "n": state["n"]}, fh)


if __name__ == "__main__":
    app.main()
