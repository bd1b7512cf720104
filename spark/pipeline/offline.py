"""Recorded ticks through SignalPipelines as the live worker would run them.

The live worker keeps one pipeline per tick partition, and a symbol's partition is the
murmur2 of its name (``spark.kafka.partitioner``). ``OfflineRun`` does the same with a
TickBatch: it splits each chunk by partition, steps each partition's pipeline on its ticks
in their order, and hands back every result with the positions of its ticks in the
chunk. So ``spark backtest run``, ``spark model eval`` and ``spark drift eval`` compute
what the worker computes, record for record (tests/test_parity.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np

from spark.kafka.partitioner import partition_of
from spark.pipeline.batch import TickBatch
from spark.pipeline.pipeline import SignalPipeline, StepResult
from spark.settings import Settings
from spark.topics import catalog

CHUNK = 20_000


class OfflineRun:
    def __init__(
        self, settings: Settings, partitions: int | None = None, variants: Sequence[Settings] = ()
    ) -> None:
        """``variants``: other policies each pipeline decides for too (``SignalPipeline``),
        their results in each result's ``variants``."""
        self.settings = settings
        self.variants = tuple(variants)
        self.partitions = partitions or catalog()["ticks"].partitions
        self.pipelines: dict[int, SignalPipeline] = {}
        self._partition_of: dict[str, int] = {}

    def partition(self, symbol: str) -> int:
        p = self._partition_of.get(symbol)
        if p is None:
            p = self._partition_of[symbol] = partition_of(symbol.encode(), self.partitions)
        return p

    def step(self, batch: TickBatch) -> list[tuple[np.ndarray, StepResult]]:
        """(positions in ``batch``, result) for each partition the batch has ticks of."""
        table = np.array([self.partition(s) for s in batch.symbols], np.int64)
        where = table[batch.code] if len(batch) else np.zeros(0, np.int64)
        out = []
        for p in np.unique(where).tolist():
            idx = np.flatnonzero(where == p)
            part = batch if len(idx) == len(batch) else batch.select(idx)
            pipeline = self.pipelines.get(p)
            if pipeline is None:
                pipeline = self.pipelines[p] = SignalPipeline(self.settings, self.variants)
            result = pipeline.step(part)
            if result.kept is not None:  # the price screen refused some (their positions:
                result.screened = [(int(idx[i]), r, d) for i, r, d in result.screened]
                idx = idx[result.kept]  # now in ``batch``)
            out.append((idx, result))
        return out

    def run(
        self, batch: TickBatch, chunk: int = CHUNK, on_chunk: Callable[[int], None] | None = None
    ) -> Iterator[tuple[int, np.ndarray, StepResult]]:
        """(first position of the chunk, positions in it, result) over the whole batch."""
        for lo in range(0, len(batch), chunk):
            part = batch.take(lo, lo + chunk)
            for idx, result in self.step(part):
                yield lo, idx, result
            if on_chunk is not None:
                on_chunk(min(lo + chunk, len(batch)))
