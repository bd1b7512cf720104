"""Pipeline checkpoints: a partition's whole SignalPipeline, signed, in its state topic.

A checkpoint is the pipeline's state (``SignalPipeline.state``) and the offset of the last
tick it includes. Bytes: ``SPKC`` + format version (2) + the signing key's id (16 ASCII
hex digits) + HMAC-SHA256 (that key, over the version, the key id and all that follows) +
zlib of (JSON length, JSON, ``numpy.savez`` of the arrays, a last part). The signature is
checked before anything is parsed; the arrays load with ``allow_pickle=False``. The last
part is empty since session 16 (the ADWIN detectors are arrays); in older checkpoints it
is the ADWIN detectors pickled, unpickled only after the signature check, of the worker's
own signed bytes.

On the topic: partition = the tick partition, key = the partition number, one message
per chunk of at most CHUNK bytes, headers ``spark.checkpoint`` (the offset) and
``spark.chunk`` (``i/n``), all written in the transaction of the batch whose offsets they
go with. ``latest`` reads a partition back from its end until it has a complete
checkpoint: the embedded broker never compacts and drops offset-commit metadata, so a
pointer cannot be kept anywhere else (docs/hot-path.md).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import struct
import time
import zlib

import numpy as np
from confluent_kafka import KafkaError, TopicPartition

from spark.errors import SparkError
from spark.features.kernel import FEATURE_SET
from spark.ml.snapshots import Keyring, as_keyring
from spark.pipeline.pipeline import SignalPipeline

log = logging.getLogger("spark.stream.checkpoint")
MAGIC = b"SPKC"
VERSION = 2  # 1: before key ids (still read, with the current key)
CHUNK = 4 * 1024 * 1024
OFFSET_HEADER = "spark.checkpoint"
CHUNK_HEADER = "spark.chunk"


class CheckpointRejected(SparkError):
    """A checkpoint whose signature or contents are not right; it is not loaded."""


def encode(pipeline: SignalPipeline, partition: int, offset: int, key: bytes | Keyring) -> bytes:
    meta, arrays, concept = pipeline.state()
    text = json.dumps({"partition": partition, "offset": offset, "state": meta}).encode()
    packed = io.BytesIO()
    np.savez(packed, **arrays)
    body = zlib.compress(
        struct.pack(">QQ", len(text), packed.tell()) + text + packed.getvalue() + concept, 1
    )
    ring = as_keyring(key)
    kid = ring.key_id.encode()
    mac = hmac.new(ring.current, bytes([VERSION]) + kid + body, hashlib.sha256).digest()
    return MAGIC + bytes([VERSION]) + kid + mac + body


def decode(blob: bytes, key: bytes | Keyring, partition: int) -> tuple[SignalPipeline, int]:
    """(pipeline, offset of the last tick it includes) of tick partition ``partition``;
    CheckpointRejected if it is not ours or of another partition."""
    ring = as_keyring(key)
    if len(blob) < 37 or blob[:4] != MAGIC:
        raise CheckpointRejected("not a Spark checkpoint")
    version = blob[4]
    if version == 1:  # before key ids: the current key
        signer, signed, mac, body = ring.current, blob[4:5], blob[5:37], blob[37:]
    elif version == 2 and len(blob) >= 53:
        kid, mac, body = blob[5:21], blob[21:53], blob[53:]
        signer = ring.find(kid.decode(errors="replace"))
        if signer is None:
            raise CheckpointRejected(
                f"checkpoint signed with key {kid.decode(errors='replace')}, which this worker "
                "does not hold (during a rotation list the old key in SPARK_MODEL_KEYS_OLD)"
            )
        signed = blob[4:21]
    else:
        raise CheckpointRejected(f"checkpoint format {version}, this worker reads 1 and 2")
    expected = hmac.new(signer, signed + body, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, expected):
        raise CheckpointRejected("checkpoint signature does not match the registry key")
    raw = zlib.decompress(body)
    text_len, arrays_len = struct.unpack(">QQ", raw[:16])
    text = json.loads(raw[16 : 16 + text_len])
    if text["partition"] != partition:
        raise CheckpointRejected(f"a checkpoint of partition {text['partition']}, not {partition}")
    written = text["state"].get("feature_set", "v2")  # v2: before the field existed
    if written != FEATURE_SET:
        raise CheckpointRejected(
            f"a checkpoint of feature set {written}; this worker computes {FEATURE_SET}, so "
            "the partition's state is rebuilt from its first tick (docs/features.md)"
        )
    arrays_at = 16 + text_len
    with np.load(io.BytesIO(raw[arrays_at : arrays_at + arrays_len]), allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    concept = raw[arrays_at + arrays_len :]
    return SignalPipeline.from_state(text["state"], arrays, concept), int(text["offset"])


def messages(blob: bytes, partition: int, offset: int) -> list[tuple[bytes, bytes, list]]:
    """(key, value, headers) of each chunk of a checkpoint."""
    parts = [blob[i : i + CHUNK] for i in range(0, len(blob), CHUNK)] or [b""]
    key = str(partition).encode()
    mark = str(offset).encode()
    return [
        (key, part, [(OFFSET_HEADER, mark), (CHUNK_HEADER, f"{i}/{len(parts)}".encode())])
        for i, part in enumerate(parts)
    ]


def latest(
    consumer_factory,
    topic: str,
    partitions: list[int],
    key: bytes,
    timeout: float = 60.0,
    below: dict[int, int] | None = None,
) -> dict[int, tuple[SignalPipeline, int] | None]:
    """The newest complete, correctly signed checkpoint of each partition: (pipeline,
    offset), or None. One reader for all of them; each is read back from its end, further
    back only while no complete checkpoint is found.

    ``below``: partition -> the group's committed offset. A checkpoint is used only if every
    tick it includes is committed (its offset is below that). A newer one was written in a
    batch whose commit never came (the worker died first): the outputs of its last ticks may
    never have reached the broker, and resuming after it would skip them for good."""
    found: dict[int, tuple[SignalPipeline, int] | None] = dict.fromkeys(partitions)
    consumer = consumer_factory()
    try:
        bounds = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in partitions
        }
        todo = {p for p, (low, high) in bounds.items() if high > low}  # empty: no checkpoint
        back = 64
        while todo:
            starts = {p: max(bounds[p][0], bounds[p][1] - back) for p in todo}
            chunks = _read(consumer, topic, starts, timeout)
            for p in sorted(todo):
                limit = None if below is None else below.get(p, -1)
                found[p] = _newest(chunks.get(p, {}), key, topic, p, limit)
            todo = {p for p in todo if found[p] is None and starts[p] > bounds[p][0]}
            back *= 4
        return found
    finally:
        consumer.close()


def _read(consumer, topic: str, starts: dict[int, int], timeout: float) -> dict:
    """partition -> checkpoint offset -> (chunk count, {index: bytes}), from ``starts`` to
    each partition's end."""
    consumer.assign([TopicPartition(topic, p, o) for p, o in starts.items()])
    out: dict[int, dict] = {}
    pending = set(starts)
    deadline = time.monotonic() + timeout
    while pending:
        if time.monotonic() > deadline:
            raise SparkError(f"reading checkpoints from {topic} took over {timeout:.0f}s")
        for msg in consumer.consume(1000, timeout=0.2):
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    pending.discard(msg.partition())
                    continue
                raise SparkError(f"reading {topic}: {msg.error().str()}")
            headers = dict(msg.headers() or [])
            try:
                offset = int(headers[OFFSET_HEADER])
                index, count = (int(v) for v in headers[CHUNK_HEADER].split(b"/"))
            except (KeyError, ValueError):
                continue  # not a checkpoint chunk
            entry = out.setdefault(msg.partition(), {}).setdefault(offset, (count, {}))
            entry[1][index] = msg.value() or b""
    return out


def _newest(chunks: dict, key: bytes, topic: str, partition: int, below: int | None = None):
    for offset in sorted(chunks, reverse=True):
        if below is not None and offset >= below:
            log.warning(
                "checkpoint at offset %d of %s/%d skipped: past the committed offset %d "
                "(its batch was not committed); an older one is used",
                offset,
                topic,
                partition,
                below,
            )
            continue
        count, parts = chunks[offset]
        if set(parts) != set(range(count)):
            continue
        blob = b"".join(parts[i] for i in range(count))
        try:
            return decode(blob, key, partition)
        except CheckpointRejected as exc:
            log.warning(
                "checkpoint at offset %d of %s/%d skipped: %s", offset, topic, partition, exc
            )
    return None
