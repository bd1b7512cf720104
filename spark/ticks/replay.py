"""Replay recorded tick files onto the tick topic, in event-time order, at a chosen pace."""

from __future__ import annotations

import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from spark.errors import SparkError
from spark.ticks.producer import TickProducer
from spark.ticks.readers import Row, input_size, read


@dataclass
class ReplayResult:
    rows: int = 0
    produced: int = 0
    dead_lettered: int = 0
    reasons: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)  # lines that are no tick, by kind
    seconds: float = 0.0
    first_ts: int | None = None
    last_ts: int | None = None

    @property
    def accounted(self) -> bool:
        """Every row read is on the tick topic, on its dead-letter topic, or counted as
        skipped (a kind of line that is no tick, e.g. a Binance depth update)."""
        return self.produced + self.dead_lettered + sum(self.skipped.values()) == self.rows


class Pacer:
    """Holds a loop to ``max_rate`` rows/s, or to ``speed`` x the recorded event time."""

    def __init__(self, max_rate: float = 0.0, speed: float | None = None) -> None:
        if max_rate < 0:
            raise SparkError("--max-rate must be >= 0 (0 = as fast as possible)")
        if speed is not None and speed <= 0:
            raise SparkError("--speed must be > 0 (1 = real time, 10 = ten times faster)")
        self.max_rate = max_rate
        self.speed = speed
        self.start: float | None = None  # the clock starts at the first row, not at setup
        self.first_ts: int | None = None
        self.n = 0

    def wait(self, ts: int) -> None:
        if self.start is None:
            self.start = time.monotonic()
        self.n += 1
        if self.speed is not None:
            if self.first_ts is None:
                self.first_ts = ts
            due = self.start + (ts - self.first_ts) / 1e6 / self.speed
        elif self.max_rate:
            due = self.start + self.n / self.max_rate
        else:
            return
        ahead = due - time.monotonic()
        if ahead > 0.002:  # sleep in slices of >= 2 ms; the OS timer is no finer
            time.sleep(ahead)


def merged_rows(paths: Iterable[Path], fmt: str, symbol: str | None, tz: str | None):
    """Rows of all files merged by event time (each file is in time order)."""
    streams = [read(Path(p), fmt, symbol, tz) for p in paths]
    return heapq.merge(*streams, key=lambda row: row.ts)


def replay(
    paths: list[Path],
    fmt: str,
    *,
    symbol: str | None = None,
    tz: str | None = None,
    max_rate: float = 0.0,
    speed: float | None = None,
    limit: int | None = None,
    producer: TickProducer | None = None,
    on_row: Callable[[ReplayResult, Row], None] | None = None,
) -> ReplayResult:
    """Produce every row of ``paths`` as a tick or a dead letter; return the counts.

    Rows whose event time goes back for their symbol are dead-lettered as
    ``out_of_order``: downstream state assumes time only moves forward.
    """
    if not paths:
        raise SparkError("no input files given")
    if limit is not None and limit < 0:
        raise SparkError("--limit must be >= 0")
    pacer = Pacer(max_rate, speed)
    rows = merged_rows(paths, fmt, symbol, tz)  # local file problems surface before Kafka ones
    feed = producer or TickProducer(stage="replay")
    result = ReplayResult()
    last_ts: dict[str, int] = {}
    started = time.monotonic()
    for row in rows:
        if limit is not None and result.rows >= limit:
            break
        result.rows += 1
        tick = row.tick
        if row.skipped is not None:
            result.skipped[row.skipped] += 1
        elif tick is not None:
            if tick.ts < last_ts.get(tick.symbol, 0):
                feed.dead_letter(
                    tick.symbol.encode(),
                    row.raw,
                    "out_of_order",
                    f"ts {tick.ts} is before {last_ts[tick.symbol]} for {tick.symbol}",
                    row.origin,
                )
            else:
                pacer.wait(tick.ts)
                last_ts[tick.symbol] = tick.ts
                if tick.source is None:
                    tick.source = feed.source
                feed.send_validated(tick, row.raw, row.origin)  # the reader validated it
                result.first_ts = result.first_ts or tick.ts
                result.last_ts = tick.ts
        else:
            feed.dead_letter(row.key, row.raw, row.reason, row.detail, row.origin)
        if result.rows % 1000 == 0:
            feed.poll()
        if on_row is not None:
            on_row(result, row)
    counts = feed.flush()
    result.produced, result.dead_lettered = counts.produced, counts.dead_lettered
    result.reasons = Counter(feed.reasons)
    result.seconds = time.monotonic() - started
    return result


def total_input_bytes(paths: list[Path]) -> int:
    return sum(input_size(Path(p)) for p in paths)


def valid_ticks(
    paths: list[Path],
    fmt: str,
    symbol: str | None = None,
    tz: str | None = None,
    on_row: Callable[[Row], None] | None = None,
):
    """The ticks replay would produce from ``paths``, in the same order, without Kafka.

    Rows replay would dead-letter (invalid, or going back in time) are skipped.
    """
    last_ts: dict[str, int] = {}
    for row in merged_rows(paths, fmt, symbol, tz):
        if on_row is not None:
            on_row(row)
        tick = row.tick
        if tick is None or tick.ts < last_ts.get(tick.symbol, 0):
            continue
        last_ts[tick.symbol] = tick.ts
        yield tick
