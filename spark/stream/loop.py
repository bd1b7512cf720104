"""The worker's tick path: consume a batch → decode → step → produce → commit.

One ``TickLoop`` runs in a thread of the worker with its own confluent-kafka consumer in
the group ``<app id>-ticks``. Per assigned tick partition it keeps one SignalPipeline.
Each turn:

1. ``consume`` up to ``batch`` messages (waiting at most ``wait_ms``) and split them by
   partition, in offset order;
2. decode each partition's messages (``spark.stream.decode``): the valid ticks become a
   TickBatch, the rest dead letters with their reason;
3. step the partition's pipeline; its records become messages (``spark.stream.outputs``);
4. produce them all with the due checkpoints, and commit the input offsets after them:
   ``exactly_once`` (Apache Kafka's default) — the records and the offsets in one
   transaction (``send_offsets_to_transaction``), committed before the next turn starts;
   ``at_least_once`` (the embedded broker's default: its transactions cannot hide aborted
   records anyway, and a commit costs it ~30 ms) — the next turn starts at once, and a
   batch's offsets are committed as soon as every record of it is acknowledged, never
   before. Records are deterministic, so a batch processed twice repeats them byte for
   byte (docs/hot-path.md).

On assignment a partition's pipeline is restored from its newest checkpoint and the
consumer seeks to the offset after it; ticks up to the group's committed offset are
stepped without producing (their records exist). On revocation and at shutdown every
pipeline is checkpointed in a transaction with its offsets. A pipeline revoked and
assigned back with nothing processed elsewhere in between is kept in memory.

Operator commands (gate open/close, risk kill/clear/set_limit) are read by every worker
(``spark.stream.commands``) and taken between turns, each by every partition it concerns
exactly once (the offsets taken are part of the checkpoint). The delivery guarantee per broker is in
docs/hot-path.md.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, Producer, TopicPartition

from spark.errors import SparkError
from spark.kafka import clients
from spark.kafka.dlq import dlq_headers
from spark.kafka.partitioner import partition_of
from spark.metrics import DEAD_LETTERS
from spark.ml.snapshots import keyring
from spark.pipeline import SignalPipeline
from spark.serde.avro import AvroSerde
from spark.settings import MODEL_NAMES, Settings
from spark.stream import checkpoint
from spark.stream.commands import CommandFeed
from spark.stream.decode import Rejected, TickDecoder
from spark.stream.outputs import Outgoing, OutputWriter
from spark.stream.stats import LoopStats
from spark.topics import catalog

log = logging.getLogger("spark.stream")


class Unacked:
    """An at_least_once batch: its input offsets, and the acknowledgements it still waits for."""

    __slots__ = ("offsets", "left", "failed")

    def __init__(self, offsets: dict[int, int]) -> None:
        self.offsets = offsets
        self.left = 0
        self.failed: str | None = None

    def acknowledged(self, err, _msg) -> None:
        if err is not None and self.failed is None:
            self.failed = err.str()
        self.left -= 1


@dataclass
class Partition:
    """One assigned tick partition: its pipeline and where it stands."""

    pipeline: SignalPipeline
    applied: int  # offset of the last tick the pipeline includes (-1: none)
    produced_from: int  # outputs of offsets below this were produced before (a restart)
    checkpointed: float = 0.0  # monotonic time of its last checkpoint
    commands_seen: int = 0  # entries of the command feed already looked at (in memory)


class TickLoop:
    def __init__(
        self,
        settings: Settings,
        group: str,
        serde: AvroSerde,
        *,
        batch: int = 5_000,
        wait_ms: int = 5,
    ) -> None:
        self.settings = settings
        self.group = group
        self.serde = serde
        self.batch = batch
        self.wait_s = wait_ms / 1000
        self.transactional = settings.delivery == "exactly_once"
        self._unacked: deque[Unacked] = deque()  # at_least_once: batches not all acknowledged
        # this turn's records produced early: at_least_once, the acknowledgements they wait
        # for; exactly_once, a placeholder (the turn's transaction is open)
        self._early: Unacked | None = None
        self._partition_of: dict[tuple[str, bytes], int] = {}
        topics = catalog()
        self.ticks, self.state_topic = topics["ticks"], topics["pipeline_state"]
        self.registry = topics["model_versions"]
        self.decoder = TickDecoder(serde, settings.max_future_s)
        self.writer = OutputWriter(serde)
        self.key = keyring()
        self.feed = CommandFeed(serde, self.key, settings.command_max_age_s)
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}"
        self.partitions: dict[int, Partition] = {}
        self.parked: dict[int, Partition] = {}  # revoked, kept in case they come back
        self.lock = threading.RLock()  # held while stepping; readers (HTTP) take it too
        self.stats = LoopStats()
        self.ready = threading.Event()  # set once the first assignment is restored
        # for the stall watchdog (spark.stream.health): monotonic times of the last round
        # of the loop and of the last messages taken
        self.iterated_at = self.consumed_at = time.monotonic()
        self.stopped = threading.Event()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._commanded = False

    # --- clients ---------------------------------------------------------------------------
    def _clients(self) -> None:
        self._consumer = Consumer(
            {
                **clients.base_config(),
                "group.id": self.group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                # read_committed only where it hides something: the embedded broker delivers
                # aborted records anyway, and its read_committed reads lag ~0.5 s (docs/broker.md)
                "isolation.level": "read_committed" if self.transactional else "read_uncommitted",
                # (spark.settings: the embedded broker forms a group in half this time)
                "session.timeout.ms": self.settings.session_timeout_ms,
                "heartbeat.interval.ms": max(self.settings.session_timeout_ms // 4, 250),
                "max.poll.interval.ms": 600_000,  # a refit or restore can take a while
                # the embedded broker answers a fetch only when this wait is over, data or not
                # (librdkafka's default 500 ms put ~0.4 s into every tick's latency)
                # (50 ms on the embedded broker's S3 storage, whose slower reads got every
                # 5 ms fetch answered empty: spark.settings)
                "fetch.wait.max.ms": self.settings.fetch_wait_ms,
            }
        )
        conf = {
            "partitioner": "murmur2_random",
            "linger.ms": 1,  # the transaction's commit flushes anyway
            "batch.num.messages": 10_000,
            "queue.buffering.max.messages": 1_000_000,
            "message.max.bytes": 20 * 1024 * 1024,
        }
        if self.transactional:
            conf["transactional.id"] = f"{self.group}-{uuid.uuid4().hex[:12]}"
        else:
            # at_least_once: a batch that may have been written is written again, never
            # trusted as already there. The idempotent producer trusts the broker's
            # DUPLICATE_SEQUENCE_NUMBER, and the embedded broker on S3 storage, killed in the
            # middle of a produce, answered it for a batch it had not stored: a 1M-tick chaos
            # run lost that batch (811 feature records, their ticks committed) in 4 of 10
            # runs (docs/reliability.md, session 26). Without idempotence the retry rewrites
            # it (a duplicate at worst, which at_least_once allows). One request in flight
            # keeps each partition's records in order across retries, and with no timeout
            # (0: none) a retriable failure is retried until the broker takes the batch, so
            # the acknowledgement of a partition's last record still covers the ones before
            # it; a permanent error (no such topic, not authorised) fails them all alike.
            conf["enable.idempotence"] = False
            conf["max.in.flight.requests.per.connection"] = 1
            conf["acks"] = "all"
            conf["message.timeout.ms"] = 0
        self._producer = clients.producer(**conf)
        if self.transactional:
            self._producer.init_transactions(30)

    def _reader(self) -> Consumer:
        return clients.reader(**{"isolation.level": "read_committed"})

    # --- the loop ------------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Process ticks until ``stop`` is set; checkpoint everything on the way out."""
        started = time.monotonic()
        self._clients()
        self.feed.open()
        consumer = self._consumer
        consumer.subscribe(
            [self.ticks.name],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info(
            "tick loop: clients ready in %.1fs, joining %s", time.monotonic() - started, self.group
        )
        try:
            while not stop.is_set():
                messages = consumer.consume(self.batch, self.wait_s)
                with self.lock:
                    out, offsets = Outgoing(), {}
                    self._take_commands(out)
                    if messages:
                        self._process(messages, out, offsets)
                    self._due_checkpoints(out, offsets)
                    if out.messages or offsets or self._early is not None:
                        self._commit(out, offsets)
                    self._commit_acknowledged()
                    self.stats.gauges(self.pipelines(), force=self._commanded)
                    self._commanded = False
                self.iterated_at = time.monotonic()
                if messages:
                    self.consumed_at = self.iterated_at
        finally:
            try:
                consumer.close()  # revokes: every pipeline is checkpointed and committed
                self.feed.close()
            finally:
                if self._producer is not None:
                    self._producer.flush(30)
                self.stopped.set()

    def _process(self, messages, out: Outgoing, offsets: dict[int, int]) -> None:
        started = time.perf_counter()
        by_partition: dict[int, list] = defaultdict(list)
        for msg in messages:
            if msg.error() is not None:
                log.warning("consume: %s", msg.error().str())
                continue
            by_partition[msg.partition()].append(msg)
        for p, msgs in by_partition.items():
            part = self.partitions.get(p)
            if part is None:
                continue  # revoked in the meantime
            msgs = [m for m in msgs if m.offset() > part.applied]  # at most once per pipeline
            if not msgs:
                continue
            keys = [m.key() for m in msgs]
            values = [m.value() for m in msgs]
            msg_offsets = [m.offset() for m in msgs]
            received = [m.timestamp()[1] * 1000 if m.timestamp()[0] else 0 for m in msgs]
            batch, good, rejected = self.decoder.decode(keys, values, msg_offsets, received)
            waited = part.pipeline.learners.waited_s
            first = part.produced_from
            # in pieces: a piece's outputs are encoded while the refit its successor waits
            # for trains in the background (the same records as one step; docs/hot-path.md)
            for k, result in enumerate(part.pipeline.steps(batch)):
                # ticks the price screen refused: dead letters like the decoder's rejections
                rejected += [Rejected(int(good[i]), r, d) for i, r, d in result.screened]
                self.writer.write(
                    result,
                    p,
                    part.pipeline.symbols,
                    self.settings.models.horizon_ms,
                    first,
                    out,
                )
                self.stats.step(result, len(msgs) if k == 0 else 0, first, part.pipeline)
                if part.pipeline.learners.blocked():
                    self._produce_early(out)  # the next piece waits for trees: send meanwhile
            self.stats.refit_wait(part.pipeline.learners.waited_s - waited)
            for r in rejected:
                if msg_offsets[r.index] >= first:
                    self.writer.dead_letter(
                        keys[r.index],
                        values[r.index],
                        r.reason,
                        r.detail,
                        p,
                        msg_offsets[r.index],
                        out,
                    )
            part.applied = msg_offsets[-1]
            offsets[p] = part.applied + 1
            self.stats.rejected(rejected)
        self.stats.batch(time.perf_counter() - started)

    # --- commits -----------------------------------------------------------------------------
    def _target(self, topic: str, partitions: int, key: bytes | None) -> int:
        """The partition a keyed record goes to (the producer's murmur2, cached per key)."""
        where = self._partition_of.get((topic, key))
        if where is None:
            where = partition_of(key or b"", partitions)
            self._partition_of[(topic, key)] = where
        return where

    def _produce_all(self, out: Outgoing, batch: Unacked | None = None) -> None:
        """Produce every record; with ``batch``, count the acknowledgements it waits for: the
        last record of each (topic, partition) it writes (the idempotent producer acknowledges
        a partition's records in order)."""
        producer = self._producer
        topics = self.writer.topics
        for topic_id, items in out.messages.items():
            spec = topics[topic_id]
            placed = [
                item[3] if len(item) > 3 else self._target(spec.name, spec.partitions, item[0])
                for item in items
            ]
            last = {where: k for k, where in enumerate(placed)} if batch is not None else {}
            if batch is not None:
                batch.left += len(last)
            for k, (item, where) in enumerate(zip(items, placed, strict=True)):
                extra = {"on_delivery": batch.acknowledged} if last.get(where) == k else {}
                while True:
                    try:
                        producer.produce(
                            spec.name, item[1], item[0], partition=where, headers=item[2], **extra
                        )
                        break
                    except BufferError:
                        producer.poll(0.05)
            self.stats.produced(topic_id, len(items))

    def _produce_early(self, out: Outgoing) -> None:
        """Produce the turn's records so far (the producer keeps each topic's order) and
        empty ``out``. at_least_once: the turn's offsets are committed only once these
        records and the rest are all acknowledged (``_commit``). exactly_once: the turn's
        transaction begins here, and ``_commit`` adds the rest and the offsets and commits
        it (or aborts it: these records with the rest)."""
        if self._producer is None:
            return
        if self._early is None:
            if self.transactional:
                self._producer.begin_transaction()
            self._early = Unacked({})
        self.stats.totals["produced_early"] += sum(len(v) for v in out.messages.values())
        self._produce_all(out, None if self.transactional else self._early)
        out.messages.clear()

    def _commit(self, out: Outgoing, offsets: dict[int, int]) -> None:
        producer, consumer = self._producer, self._consumer
        if not self.transactional:
            batch, self._early = self._early or Unacked({}), None
            batch.offsets = dict(offsets)
            self._produce_all(out, batch)
            self._unacked.append(batch)
            return
        tps = [TopicPartition(self.ticks.name, p, o) for p, o in offsets.items()]
        began, self._early = self._early is not None, None  # begun by _produce_early
        try:
            if not began:
                producer.begin_transaction()
            self._produce_all(out)
            if tps:
                producer.send_offsets_to_transaction(tps, consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        except KafkaException as exc:
            error = exc.args[0]
            if error.fatal() or not error.txn_requires_abort():
                raise
            log.warning(
                "transaction aborted (%s); the partitions start again from their checkpoints",
                error.str(),
            )
            producer.abort_transaction(30)
            self._rewind(list(offsets))

    def _commit_acknowledged(self, wait: bool = False) -> None:
        """at_least_once: commit the offsets of the batches whose records are all
        acknowledged, in order (``wait``: all of them, now)."""
        if self.transactional or self._producer is None:
            return
        if wait:
            self._producer.flush(60)
        else:
            self._producer.poll(0)
        done: dict[int, int] = {}
        while self._unacked and self._unacked[0].left <= 0:
            batch = self._unacked.popleft()
            if batch.failed is not None:
                raise SparkError(
                    f"Kafka did not acknowledge a record: {batch.failed}; the "
                    "worker stops so that its partitions restart from their "
                    "checkpoints with nothing lost"
                )
            done.update(batch.offsets)
        if done:
            tps = [TopicPartition(self.ticks.name, p, o) for p, o in done.items()]
            self._consumer.commit(offsets=tps, asynchronous=not wait)

    def _rewind(self, partitions: list[int]) -> None:
        """After an aborted transaction: the pipelines went further than what committed."""
        tps = [TopicPartition(self.ticks.name, p) for p in partitions if p in self.partitions]
        for p in partitions:
            self.partitions.pop(p, None)
        self._restore(tps)
        for tp in tps:
            self._consumer.seek(tp)

    # --- checkpoints ---------------------------------------------------------------------------
    def _publish_executor(self, p: int, part: Partition, out: Outgoing) -> None:
        """The partition's paper executor state, for `spark risk status`."""
        state = json.dumps(part.pipeline.executor.state()).encode()
        out.add("executor_state", f"partition:{p}".encode(), state, [])

    def _checkpoint(self, p: int, part: Partition, out: Outgoing) -> None:
        self._publish_executor(p, part, out)
        blob = checkpoint.encode(part.pipeline, p, part.applied, self.key)
        # on the state partition of the same number as the tick partition, not the key's
        out.extend(
            "pipeline_state",
            [(k, v, h, p) for k, v, h in checkpoint.messages(blob, p, part.applied)],
        )
        part.checkpointed = time.monotonic()
        self.stats.checkpoint(len(blob))

    def _due_checkpoints(self, out: Outgoing, offsets: dict[int, int]) -> None:
        now = time.monotonic()
        for p, part in self.partitions.items():
            if part.applied >= 0 and now - part.checkpointed >= self.settings.snapshot_s:
                self._checkpoint(p, part, out)
                offsets.setdefault(p, part.applied + 1)

    # --- rebalances ---------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        with self.lock:
            started = time.monotonic()
            self._restore(assigned)
            consumer.assign(assigned)
            self.ready.set()
            log.info(
                "tick loop: %d partitions assigned, restored in %.1fs",
                len(assigned),
                time.monotonic() - started,
            )

    def _registered(self) -> dict[str, dict]:
        """The newest correctly signed version of each registered model (of this horizon).

        Signatures are checked before the newest is picked: a forged record with a higher
        version is refused and does not hide the good versions below it."""
        from spark.kafka.state import latest_records
        from spark.ml.registry import newest_versions, verified_records

        good = {}
        tombstones: set[str] = set()
        records = latest_records(self.registry, self.serde, tombstones)
        trusted, refused = verified_records(records, self.key, tombstones)
        for key, why in refused.items():
            self.stats.snapshot("rejected")
            log.warning("registry record %s refused: %s", key, why)
        for key, record in trusted.items():
            config = json.loads(record["config_json"] or "{}")
            mine = self.settings.models
            same = (config.get("horizon_moves", 0), config.get("horizon_s")) == (
                mine.horizon_moves,
                mine.horizon_s,
            )
            if record["model_id"] in MODEL_NAMES and same:  # learnt for the same labels
                good[key] = record
        return newest_versions(good)

    def _adopt(self, p: int, pipeline: SignalPipeline, fresh: bool, registered: dict) -> None:
        """Registered versions into a partition's pipeline: a fresh pipeline's models take
        their newest version's parameters; models it does not run join as challengers."""
        from spark.ml.registry import unpack

        running = {s.model_id: m for m, s in enumerate(pipeline.learners.slots)}
        for model_id, record in registered.items():
            meta, arrays = unpack(record["snapshot"])
            m = running.get(model_id)
            if m is None:
                pipeline.add_model(model_id, record["version"], (meta, arrays))
            elif fresh:
                pipeline.learners.adopt(m, meta, arrays)
                pipeline.learners.slots[m].version = record["version"]
            else:
                continue
            self.stats.snapshot("restored")
            log.info("partition %d: runs %s v%d from the registry", p, model_id, record["version"])

    def _restore(self, assigned: list[TopicPartition]) -> None:
        """Pipelines of ``assigned`` (from memory or checkpoints); sets where each resumes."""
        t0 = time.monotonic()
        committed = {
            tp.partition: tp.offset for tp in self._consumer.committed(assigned, timeout=30)
        }
        t1 = time.monotonic()
        registered = self._registered()
        log.info("committed offsets in %.2fs, registry in %.2fs", t1 - t0, time.monotonic() - t1)
        kept = {}
        for tp in assigned:
            parked = self.parked.pop(tp.partition, None)
            if parked is not None and parked.applied + 1 == max(committed.get(tp.partition, -1), 0):
                kept[tp.partition] = parked
        started = time.monotonic()
        wanted = [tp.partition for tp in assigned if tp.partition not in kept]
        saved = (
            checkpoint.latest(
                self._reader, self.state_topic.name, wanted, self.key, below=committed
            )
            if wanted
            else {}
        )
        for tp in assigned:
            p = tp.partition
            done = committed.get(p, -1)  # the group's next offset (< 0: nothing committed)
            if p in kept:
                part = kept[p]
                log.info("partition %d: kept its pipeline (at offset %d)", p, part.applied)
            else:
                found = saved.get(p)
                if found is None:
                    part = Partition(SignalPipeline(self.settings), -1, max(done, 0))
                    self._adopt(p, part.pipeline, True, registered)
                    log.info(
                        "partition %d: no checkpoint; processing from its first tick%s",
                        p,
                        f" (records up to offset {done} exist)" if done > 0 else "",
                    )
                else:
                    pipeline, offset = found
                    part = Partition(pipeline, offset, max(done, 0))
                    self.stats.checkpoint(0, "restored")
                    self._adopt(p, part.pipeline, False, registered)
                    log.info(
                        "partition %d: restored from the checkpoint at offset %d in %.1fs%s",
                        p,
                        offset,
                        time.monotonic() - started,
                        f"; re-processing up to {done} without producing"
                        if done > offset + 1
                        else "",
                    )
            part.checkpointed = time.monotonic()
            self.partitions[p] = part
            tp.offset = part.applied + 1 if part.applied >= 0 else OFFSET_BEGINNING
        self.parked.clear()

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        with self.lock:
            out, offsets = Outgoing(), {}
            for tp in revoked:
                part = self.partitions.pop(tp.partition, None)
                if part is None:
                    continue
                if part.applied >= 0:
                    self._checkpoint(tp.partition, part, out)
                    offsets[tp.partition] = part.applied + 1
                self.parked[tp.partition] = part
            if out.messages or offsets:
                self._commit(out, offsets)
            self._commit_acknowledged(wait=True)  # everything of the revoked ones, now
            consumer.unassign()

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        with self.lock:
            for tp in lost:  # another worker may own them already: no commit, no checkpoint
                self.partitions.pop(tp.partition, None)
            consumer.unassign()

    # --- operator commands ----------------------------------------------------------------------
    def _take_commands(self, out: Outgoing) -> None:
        """New operator commands from the broadcast read, then every partition takes the
        ones it has not taken yet (spark.stream.commands)."""
        self.feed.poll()
        for p, part in self.partitions.items():
            self._catch_up_commands(p, part, out)

    def _catch_up_commands(self, p: int, part: Partition, out: Outgoing) -> None:
        if part.commands_seen == len(self.feed.entries):
            return  # nothing new since this partition last looked: every round, no scan
        applied = part.pipeline.commands_applied
        todo = self.feed.pending(applied, since=part.commands_seen)
        part.commands_seen = len(self.feed.entries)
        if not todo:
            return
        executor_changed = False
        for e in todo:
            if e.reason is not None:
                if p == 0:  # dead-lettered once, by the holder of tick partition 0
                    self._dead_letter_command(e, out)
            elif e.kind == "risk":
                c = e.command
                part.pipeline.executor.command(
                    c["action"], c.get("limit_name"), c.get("value"), c["reason"], c["ts"]
                )
                executor_changed = True
                log.warning(
                    "partition %d: risk command by %s: %s (%s)",
                    p,
                    c.get("operator") or "unknown",
                    c["action"],
                    c["reason"],
                )
            else:
                self._gate_command(p, part, e.command, out)
            applied[e.source] = e.offset
        self._commanded = True  # operators see its effect in the metrics at once
        if executor_changed:
            self._publish_executor(p, part, out)
        ack = {
            "partition": p,
            "worker": self.worker_id,
            "commands_applied": dict(applied),
            "kill_switch": part.pipeline.executor.kill,
            "ts": int(time.time() * 1e6),
        }
        out.add("executor_state", f"commands:{p}".encode(), json.dumps(ack).encode(), [])

    def _dead_letter_command(self, e, out: Outgoing) -> None:
        topic_id = e.source.split("/")[0]
        spec = catalog()[topic_id]
        origin = f"{spec.name}/{e.source.split('/')[1]}@{e.offset}"
        headers = dlq_headers(e.reason, e.detail, spec.name, e.kind, origin)
        out.add(spec.dlq, e.key, e.value or b"", headers)
        DEAD_LETTERS.labels(topic_id, e.kind, e.reason).inc()

    def _gate_command(self, p: int, part: Partition, command: dict, out: Outgoing) -> None:
        symbol = command["symbol"]
        owns = symbol in part.pipeline.slot_of or (
            partition_of(symbol.encode(), self.ticks.partitions) == p
        )
        if not owns:
            return
        record = part.pipeline.drift.command(
            symbol, command["action"], command["reason"], command["ts"]
        )
        out.add("gate_state", symbol.encode(), self.writer._encode("gate_state", record), [])
        action, reason = command["action"], command["reason"]
        log.warning("partition %d: gate %s %s by operator: %s", p, symbol, action, reason)

    # --- reads for the HTTP API ------------------------------------------------------------------
    def pipelines(self) -> list[SignalPipeline]:
        return [part.pipeline for part in self.partitions.values()]

    def offsets(self) -> dict[int, int]:
        return {p: part.applied for p, part in self.partitions.items()}


# gc.set_threshold while the tick loop runs (Python's default: 700, 10, 10)
GC_THRESHOLD = (50_000, 20, 100)


def collect_less() -> None:
    """Fewer cyclic garbage collections for a process that runs the tick loop.

    A turn makes many short-lived lists and tuples (headers, rows of quotes); at Python's
    default threshold they start a young collection every 700 of them, and every 100th of
    those scans the whole heap: numba, LightGBM, Faust, the models. Freezing what exists
    once the worker is up takes it out of those scans; the higher threshold makes young
    collections rare. Reference counting still frees everything that is not in a cycle at
    once, so memory does not grow with it (docs/hot-path.md, session 17: ~15 % less time a
    tick in decode, step and encode).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


def start_thread(loop: TickLoop, stop: threading.Event) -> threading.Thread:
    def main() -> None:
        collect_less()
        try:
            loop.run(stop)
        except Exception:  # the worker's health goes red; the log says why
            log.exception("the tick loop stopped")
            raise

    thread = threading.Thread(target=main, name="spark-ticks", daemon=True)
    thread.start()
    return thread


__all__ = ["TickLoop", "collect_less", "start_thread"]
