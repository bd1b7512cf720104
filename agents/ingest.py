"""The ingest agent (Streams): validate every tick again, dead-letter what is bad, compute the
tick's features and send them on.

Producers may be third parties, so nothing unchecked goes on. Per-symbol
feature state lives in a Faust Table (``feature-state``) whose changelog is
the compacted catalog topic ``feature_state``: once per batch each touched
symbol's state, with the offset of the last tick it includes, is written on
the partition of the ticks it came from. Faust restores the table when
partitions are assigned (start, restart, rebalance); then, before any tick
is processed, the worker checks the restore against the changelog read to
end-of-partition and repairs what is stale. On Apache Kafka the check finds
nothing; on the embedded broker, whose high watermarks stop Faust's restore
before the last records of a batch (docs/broker.md), it does. A restarted or
moved worker computes identical features, and a tick re-delivered after a
crash is never applied twice.
"""

from __future__ import annotations

import asyncio
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
    STATE_REPAIRED,
    TICKS_ACCEPTED,
)
from spark.ticks.check import check_tick_message, rejection
from spark.ticks.producer import default_serde
from spark.topics import catalog

log = logging.getLogger("spark.agents.ingest")
BATCH = 1000
WITHIN_S = 0.2


def _applied(state: dict) -> tuple[int, int]:
    return state["partition"], state["offset"]


class FeatureStateTable(faust.Table):
    """Faust Table of per-symbol feature state that checks its restore and fills a book.

    Faust calls ``on_recovery_completed`` after restoring the table's active
    partitions and before the agents' partitions resume, so no tick is processed
    with state that was not checked.
    """

    def __init__(self, app, *, book: FeatureBook, ready: asyncio.Event, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self.book = book
        self.ready = ready

    async def on_recovery_completed(self, active_tps, standby_tps) -> None:
        await super().on_recovery_completed(active_tps, standby_tps)
        partitions = sorted(tp.partition for tp in active_tps)
        topic = self.changelog_topic.get_topic_name()
        loop = asyncio.get_running_loop()
        saved = await loop.run_in_executor(None, latest_json, topic, partitions)
        repaired = 0
        for symbol, state in saved.items():
            key = symbol.encode()
            restored = self.get(key)
            if restored is None or _applied(restored) != _applied(state):
                self.data[key] = state  # the store only: this already is the changelog
                repaired += 1
            self.book.load(symbol, state)
        if repaired:
            STATE_REPAIRED.inc(repaired)
            log.warning(
                "Faust's restore of %s was stale for %d of %d symbols; repaired from the "
                "changelog read to its end (the broker's high watermarks, docs/broker.md)",
                topic,
                repaired,
                len(saved),
            )
        log.info(
            "feature state of %d symbols loaded from %s partitions %s",
            len(saved),
            topic,
            partitions,
        )
        self.ready.set()


def register(app: faust.App) -> None:
    topics = catalog()
    ticks, dlq, features = topics["ticks"], topics[topics["ticks"].dlq], topics["features"]
    source = app.topic(ticks.name, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(dlq.name, key_serializer="raw", value_serializer="raw")
    features_out = app.topic(features.name, key_serializer="raw", value_serializer="raw")
    # keys: symbol (raw UTF-8), values: JSON (FeatureBook.state); no pickle, so whoever
    # can write the changelog topic cannot run code in the worker
    state_spec = topics["feature_state"]
    book = FeatureBook()
    app.spark_feature_book = book  # read-only use by the predictor's /ml/predict
    # Set while the book holds the state of every assigned partition: cleared when
    # partitions are revoked (Faust does that before every assignment, the first one
    # included), set by the table once its restore is checked and loaded.
    state_ready = asyncio.Event()
    state_table = app.tables.add(
        FeatureStateTable(
            app,
            name="feature-state",
            beacon=app.tables.beacon,
            partitions=state_spec.partitions,
            key_type=bytes,
            changelog_topic=app.topic(
                state_spec.name, key_serializer="raw", value_serializer="json"
            ),
            help="per-symbol feature state and the (partition, offset) of the last tick applied",
            book=book,
            ready=state_ready,
        )
    )
    serde = default_serde()
    in_counter = EVENTS_IN.labels(ticks.id)
    out_counter = EVENTS_OUT.labels(features.id)
    batch_timer = BATCH_SECONDS.labels("ingest")
    last_batch = LAST_BATCH.labels("ingest")
    latency = PROCESSING_LATENCY.labels("features")

    @app.on_partitions_revoked.connect
    async def hold_processing(app, revoked, **_kwargs) -> None:  # noqa: ARG001 - signal signature
        state_ready.clear()

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
                # a batch agent has no "current event" for Faust to pick the changelog
                # partition from, so the table's store and changelog are written explicitly
                key, state = symbol.encode(), book.state(symbol)
                state_table.data[key] = state
                state_table.send_changelog(last_partition[symbol], key, state)
            in_counter.inc(len(events))
            TICKS_ACCEPTED.inc(accepted)
            batch_timer.observe(time.perf_counter() - started)
            last_batch.set_to_current_time()
