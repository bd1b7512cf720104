"""The ingest agent: every tick message is decoded and validated again, then accepted or
dead-lettered with the reason. Producers may be third parties; nothing unchecked goes on.
"""

from __future__ import annotations

import faust

from spark.kafka.dlq import dlq_headers
from spark.metrics import BATCH_SECONDS, DEAD_LETTERS, EVENTS_IN, TICKS_ACCEPTED
from spark.ticks.check import check_tick_message, rejection
from spark.ticks.producer import default_serde
from spark.topics import catalog

BATCH = 1000
WITHIN_S = 0.2


def register(app: faust.App) -> None:
    topics = catalog()
    ticks, dlq = topics["ticks"], topics[topics["ticks"].dlq]
    source = app.topic(ticks.name, key_serializer="raw", value_serializer="raw")
    dead_letters = app.topic(dlq.name, key_serializer="raw", value_serializer="raw")
    serde = default_serde()

    @app.agent(source, name="ingest")
    async def ingest(stream):
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            with BATCH_SECONDS.labels("ingest").time():
                accepted = 0
                for event in events:
                    message = event.message
                    try:
                        check_tick_message(serde, message.key, message.value)
                    except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                        reason, detail = rejection(exc)
                        origin = f"{message.topic}/{message.partition}@{message.offset}"
                        await dead_letters.send(
                            key=message.key,
                            value=message.value,
                            headers=dlq_headers(reason, detail, ticks.name, "ingest", origin),
                        )
                        DEAD_LETTERS.labels(ticks.id, "ingest", reason).inc()
                        continue
                    accepted += 1
                EVENTS_IN.labels(ticks.id).inc(len(events))
                TICKS_ACCEPTED.inc(accepted)
