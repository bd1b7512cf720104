"""A batch of ticks in columns: what a SignalPipeline steps on.

>>> from spark.ticks.model import Tick
>>> b = TickBatch.from_ticks([Tick("EURUSD", 1_000_000, bid=1.1, ask=1.2),
...                           Tick("IBM", 1_000_001, last=180.0)])
>>> len(b), b.symbols, b.code.tolist(), b.last.tolist()
(2, ['EURUSD', 'IBM'], [0, 1], [nan, 180.0])
>>> b.take(1, 2).ts.tolist(), b.take(1, 2).symbol_at(0)
([1000001], 'IBM')
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields

import numpy as np

from spark.ticks.model import Tick

PRICES = ("bid", "ask", "bid_size", "ask_size", "last", "last_size")
NAN = float("nan")


@dataclass
class TickBatch:
    """Ticks as columns. ``code[i]`` indexes ``symbols``; missing prices and sizes are NaN;
    ``offset`` is where each tick came from (its Kafka offset, or its row in a file) and
    ``received`` its broker timestamp in µs (0 when unknown)."""

    symbols: list[str]
    code: np.ndarray  # int32
    ts: np.ndarray  # int64, µs since the epoch
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    last: np.ndarray
    last_size: np.ndarray
    offset: np.ndarray  # int64
    received: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.ts)

    def symbol_at(self, i: int) -> str:
        return self.symbols[self.code[i]]

    def take(self, lo: int, hi: int) -> TickBatch:
        """Ticks lo..hi-1 (views, not copies)."""
        return TickBatch(
            self.symbols,
            *(getattr(self, f.name)[lo:hi] for f in fields(self) if f.name != "symbols"),
        )

    def select(self, idx: np.ndarray) -> TickBatch:
        """The ticks at positions ``idx`` (copies), in that order."""
        return TickBatch(
            self.symbols,
            *(getattr(self, f.name)[idx] for f in fields(self) if f.name != "symbols"),
        )

    def chunks(self, size: int) -> Iterable[TickBatch]:
        for lo in range(0, len(self), size):
            yield self.take(lo, lo + size)

    @classmethod
    def empty(cls) -> TickBatch:
        return cls.from_columns([], [], [], {})

    @classmethod
    def from_columns(
        cls,
        symbols: Sequence[str],
        code: Sequence[int] | np.ndarray,
        ts: Sequence[int] | np.ndarray,
        prices: dict[str, np.ndarray],
        offset: np.ndarray | None = None,
        received: np.ndarray | None = None,
    ) -> TickBatch:
        n = len(ts)
        columns = {
            name: np.asarray(prices[name], np.float64) if name in prices else np.full(n, NAN)
            for name in PRICES
        }
        return cls(
            list(symbols),
            np.asarray(code, np.int32),
            np.asarray(ts, np.int64),
            **columns,
            offset=np.arange(n, dtype=np.int64) if offset is None else np.asarray(offset, np.int64),
            received=np.zeros(n, np.int64) if received is None else np.asarray(received, np.int64),
        )

    @classmethod
    def from_ticks(cls, ticks: Iterable[Tick], offsets: Iterable[int] | None = None) -> TickBatch:
        ticks = list(ticks)
        index: dict[str, int] = {}
        code = [index.setdefault(t.symbol, len(index)) for t in ticks]
        prices = {
            name: np.array([NAN if getattr(t, name) is None else getattr(t, name) for t in ticks])
            for name in PRICES
        }
        offset = None if offsets is None else np.fromiter(offsets, np.int64, len(ticks))
        return cls.from_columns(list(index), code, [t.ts for t in ticks], prices, offset)

    @classmethod
    def concat(cls, batches: Sequence[TickBatch]) -> TickBatch:
        """One batch of several (their symbol tables merged)."""
        index: dict[str, int] = {}
        codes = []
        for b in batches:
            remap = np.array([index.setdefault(s, len(index)) for s in b.symbols], np.int32)
            codes.append(remap[b.code] if len(b.symbols) else b.code)
        joined = {
            f.name: np.concatenate([getattr(b, f.name) for b in batches])
            for f in fields(cls)
            if f.name not in ("symbols", "code")
        }
        return cls(list(index), np.concatenate(codes).astype(np.int32), **joined)
