"""The ingest agent (Streams): validate every tick again, dead-letter what is bad, compute the
tick's features and send them on.

Producers may be third parties, so nothing unchecked goes on. Per-symbol
feature state is saved once per batch to a compacted changelog topic
(catalog ``feature_state``), on the partition of the ticks it came from, with
the offset of the last tick it includes. When partitions are assigned (start,
restart, rebalance) the worker reloads their state from that topic, so a
restarted or moved worker computes identical features, and a tick
re-delivered after a crash is never applied twice.

Why not a Faust Table: on the embedded broker a restarted worker stalled in
Faust's table recovery (no "Restoring state" after assignment, in 3 of 3
tries this session), while the same agent without a table restarted fine.
Reading the changelog ourselves with confluent-kafka up to each partition's
end-of-partition signal avoids the broker's unreliable high watermarks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import faust

from spark.agents.dead_letters import dead_letter
from spark.features import FEATURE_SET
from spark.features.book import FeatureBook
from spark.kafka.state import latest_json
from spark.metrics import (
    BATCH_SECONDS,
    EVENTS_IN,
    EVENTS_OUT,
    LAST_BATCH,
    PROCESSING_LATENCY,
    TICKS_ACCEPTED,
)
from spark.ticks.check import check_tick_message, rejection
from spark.ticks.producer import default_serde
from spark.topics import catalog

log = logging.getLogger("spark.agents.ingest")
BATCH = 1000
WITHIN_S = 0.2


def register(app: faust.App) -> None:
    topics = catalog()
    ticks, dlq, features = topics["ticks"], topics[topics["ticks"].dlq], topics["features"]
    source = app.topic(ticks.name, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(dlq.name, key_serializer="raw", value_serializer="raw")
    features_out = app.topic(features.name, key_serializer="raw", value_serializer="raw")
    # keys: symbol (raw UTF-8), values: JSON (the app's default serializers); no pickle,
    # so whoever can write the changelog topic cannot run code in the worker
    state_spec = topics["feature_state"]
    state_out = app.topic(state_spec.name, key_serializer="raw", value_serializer="raw")
    serde = default_serde()
    book = FeatureBook()
    app.spark_feature_book = book  # read-only use by the predictor's /ml/predict
    in_counter = EVENTS_IN.labels(ticks.id)
    out_counter = EVENTS_OUT.labels(features.id)
    batch_timer = BATCH_SECONDS.labels("ingest")
    last_batch = LAST_BATCH.labels("ingest")
    latency = PROCESSING_LATENCY.labels("features")

    # Set while the book holds the saved state of every assigned partition. Faust may
    # hand the agent events before the assignment signal's handlers finish, so the
    # agent waits for it before each batch.
    state_ready = asyncio.Event()

    @app.on_partitions_revoked.connect
    async def hold_processing(app, revoked, **_kwargs) -> None:  # noqa: ARG001 - signal signature
        state_ready.clear()

    @app.on_partitions_assigned.connect
    async def reload_state(app, assigned, **_kwargs) -> None:  # noqa: ARG001 - signal signature
        state_ready.clear()
        partitions = sorted(tp.partition for tp in assigned if tp.topic == ticks.name)
        loop = asyncio.get_running_loop()
        saved = await loop.run_in_executor(None, latest_json, state_spec.name, partitions)
        for symbol, state in saved.items():
            book.load(symbol, state)
        log.info(
            "feature state of %d symbols loaded from %s partitions %s",
            len(saved),
            state_spec.name,
            partitions,
        )
        state_ready.set()

    @app.agent(source, name="ingest")
    async def ingest(stream):
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            await state_ready.wait()
            started = time.perf_counter()
            accepted = 0
            last_partition: dict[str, int] = {}
            for event in events:
                message = event.message
                try:
                    tick = check_tick_message(serde, message.key, message.value)
                except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                    dead_letter(dead_letters, message, ticks, "ingest", *rejection(exc))
                    continue
                accepted += 1
                symbol = tick.symbol
                vector = book.apply(tick, message.partition, message.offset)
                if vector is None:
                    continue  # applied before a crash; its features were sent then
                last_partition[symbol] = message.partition
                now = time.time()
                received = message.timestamp  # producer's CreateTime, seconds
                record = {
                    "symbol": symbol,
                    "ts": tick.ts,
                    "mid": book.mid(symbol),
                    "bid": book.bid(symbol),
                    "ask": book.ask(symbol),
                    "values": vector,
                    "feature_set": FEATURE_SET,
                    "computed_at": int(now * 1e6),
                    "tick_received_at": int(received * 1e6) if received else None,
                }
                features_out.send_soon(
                    key=message.key, value=serde.encode(features.name, features.value, record)
                )
                out_counter.inc()
                if received:
                    latency.observe(max(now - received, 0.0))
            for symbol in book.take_dirty():
                state_out.send_soon(
                    key=symbol.encode(),
                    value=json.dumps(book.state(symbol)).encode(),
                    partition=last_partition[symbol],
                )
            in_counter.inc(len(events))
            TICKS_ACCEPTED.inc(accepted)
            batch_timer.observe(time.perf_counter() - started)
            last_batch.set_to_current_time()
