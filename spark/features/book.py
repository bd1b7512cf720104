"""Feature state of many symbols, applied exactly once per Kafka message.

Kafka delivery is at least once: after a crash a worker re-reads messages
after the last committed offset, while its saved state may already include
some of them. Each symbol's state remembers the (partition, offset) of the
last message applied, and a message at or before it is skipped, so replays
never apply a tick twice and a restarted worker computes identical features.

>>> from spark.ticks.model import Tick
>>> book = FeatureBook()
>>> tick = Tick("EURUSD", 1_000_000, bid=1.1, ask=1.2)
>>> book.apply(tick, partition=0, offset=0)["ret_bp"]
0.0
>>> book.apply(tick, partition=0, offset=0) is None  # the same message again
True
"""

from __future__ import annotations

from spark.features.ticks import TickFeatures
from spark.ticks.model import Tick


class FeatureBook:
    """Symbol -> TickFeatures, plus which symbols changed since the last ``take_dirty``."""

    def __init__(self) -> None:
        self._features: dict[str, TickFeatures] = {}
        self._applied: dict[str, tuple[int, int]] = {}
        self._dirty: set[str] = set()

    def apply(self, tick: Tick, partition: int, offset: int) -> dict[str, float] | None:
        """Update ``tick.symbol``'s state; None if this message was applied before."""
        last = self._applied.get(tick.symbol)
        if last is not None and last[0] == partition and offset <= last[1]:
            return None
        features = self._features.get(tick.symbol)
        if features is None:
            features = self._features[tick.symbol] = TickFeatures()
        vector = features.update(tick)
        self._applied[tick.symbol] = (partition, offset)
        self._dirty.add(tick.symbol)
        return vector

    def state(self, symbol: str) -> dict:
        """Saved form of a symbol's state (JSON-able)."""
        partition, offset = self._applied[symbol]
        return {
            "partition": partition,
            "offset": offset,
            "features": self._features[symbol].to_state(),
        }

    def mid(self, symbol: str) -> float:
        """Mid of the symbol's last applied tick (one-sided quotes completed)."""
        return self._features[symbol].prev_mid

    def bid(self, symbol: str) -> float | None:
        """Best bid after the symbol's last tick (carried forward), None if never quoted."""
        return self._features[symbol].prev_bid

    def ask(self, symbol: str) -> float | None:
        """Best ask after the symbol's last tick (carried forward), None if never quoted."""
        return self._features[symbol].prev_ask

    def applied(self, symbol: str) -> tuple[int, int] | None:
        return self._applied.get(symbol)

    def load(self, symbol: str, saved: dict) -> None:
        """Replace a symbol's state with a saved one (after a restart or a rebalance)."""
        self._features[symbol] = TickFeatures.from_state(saved["features"])
        self._applied[symbol] = (saved["partition"], saved["offset"])

    def take_dirty(self) -> set[str]:
        dirty, self._dirty = self._dirty, set()
        return dirty
