"""The partition a keyed message goes to, as Kafka's Java client (and librdkafka's
``murmur2_random``, which Spark's producers use) computes it: murmur2 of the key, top bit
cleared, modulo the partition count. ``spark backtest run`` groups symbols by it, so a
backtest runs one pipeline per live partition (docs/hot-path.md); a test checks it
against where the broker puts messages.

>>> partition_of(b"EURUSD", 6) == partition_of(b"EURUSD", 6)
True
>>> murmur2(b"21")  # Kafka's own test vector (org.apache.kafka.common.utils.UtilsTest)
-973932308
"""

from __future__ import annotations

M = 0x5BD1E995
MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Kafka's 32-bit murmur2 (seed 0x9747b28c), as a signed int like Java's."""
    length = len(data)
    h = (0x9747B28C ^ length) & MASK
    whole = length - length % 4
    for i in range(0, whole, 4):
        k = int.from_bytes(data[i : i + 4], "little")
        k = (k * M) & MASK
        k ^= k >> 24
        k = (k * M) & MASK
        h = (h * M) & MASK
        h ^= k
    rest = length % 4
    if rest == 3:
        h ^= data[whole + 2] << 16
    if rest >= 2:
        h ^= data[whole + 1] << 8
    if rest >= 1:
        h ^= data[whole]
        h = (h * M) & MASK
    h ^= h >> 13
    h = (h * M) & MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_of(key: bytes, partitions: int) -> int:
    """Partition of a message with ``key`` among ``partitions`` (Java's toPositive % n)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
