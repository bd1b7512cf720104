"""Job cancellation as every worker reads it (``spark job cancel``, topic ``job.commands``).

Each worker reads the job command topic with ``assign()`` from its beginning (retention
24 h; no consumer group, so every worker sees every command) in a thread. A command is
checked like the gate and risk commands (``spark.commands``: action, signature under a
key of the ring, staleness against its broker time, replay by nonce); a refused one is
dead-lettered by each worker that reads it (keyed by its offset, so duplicates can be
told apart) and counted. A good one marks its job cancelled: a job not started yet ends,
when its turn comes, as a failed JobResult "cancelled ..."; a running one is stopped
(``on_cancel``: the worker kills the job's process, or stops a sweep's gathering) and ends
the same way. A job that finished before the cancel arrived keeps its result.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from spark.commands import CommandRejected, check_command, verify
from spark.kafka.dlq import dlq_headers
from spark.metrics import DEAD_LETTERS, EVENTS_IN

log = logging.getLogger("spark.jobs.control")


class JobControl:
    def __init__(self, ring, max_age_s: float, on_cancel=None) -> None:
        self.ring, self.max_age_s, self.on_cancel = ring, max_age_s, on_cancel
        self.cancelled: dict[str, str] = {}  # job id -> why
        self.nonces: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="job-commands", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def why(self, job_id: str) -> str | None:
        with self.lock:
            return self.cancelled.get(job_id)

    def _run(self) -> None:
        from spark.kafka import clients
        from spark.ticks.producer import default_serde
        from spark.topics import catalog

        spec = catalog()["job_commands"]
        dlq = catalog()[spec.dlq]
        serde = default_serde()
        consumer = producer = None
        try:
            consumer = clients.reader(**{"enable.partition.eof": False})
            consumer.assign(
                [TopicPartition(spec.name, p, OFFSET_BEGINNING) for p in range(spec.partitions)]
            )
            while not self._stop.is_set():
                for msg in consumer.consume(100, timeout=0.5):
                    err = msg.error()
                    if err is not None:
                        if err.code() != KafkaError._PARTITION_EOF:
                            log.warning("reading job commands: %s", err.str())
                        continue
                    EVENTS_IN.labels(spec.id).inc()
                    try:
                        self.take(serde.decode(msg.value(), spec.value), msg)
                    except Exception as exc:  # noqa: BLE001 - every refusal is a dead letter
                        reason = getattr(exc, "reason", "undecodable")
                        detail = getattr(exc, "detail", str(exc))
                        DEAD_LETTERS.labels(spec.id, "jobs", reason).inc()
                        origin = f"{spec.name}/{msg.partition()}@{msg.offset()}"
                        log.warning("job command %s refused: %s: %s", origin, reason, detail)
                        producer = producer or clients.producer()
                        producer.produce(
                            dlq.name,
                            msg.value(),
                            str(msg.offset()).encode(),
                            headers=dlq_headers(reason, detail, spec.name, "jobs", origin),
                        )
                        producer.poll(0)
        except Exception:  # noqa: BLE001 - the worker goes on; cancels just do not arrive
            log.exception("the job command reader stopped")
        finally:
            if consumer is not None:
                consumer.close()
            if producer is not None:
                producer.flush(5)

    def take(self, command: dict, msg) -> None:
        """Check one command and mark its job; CommandRejected says why not."""
        check_command("job", command)
        stamp = msg.timestamp()[1] * 1000 if msg.timestamp()[0] else 0
        verify(command, self.ring, stamp, self.max_age_s, self.nonces)
        why = f"cancelled by {command.get('operator') or 'an operator'}: {command['reason']}"
        with self.lock:
            self.cancelled[command["job_id"]] = why
        log.info("job %s %s", command["job_id"], why)
        if self.on_cancel is not None:
            self.on_cancel(command["job_id"])


__all__ = ["CommandRejected", "JobControl"]
