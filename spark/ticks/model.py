"""The Tick record and the rules a tick must pass before anything learns from it.

>>> validate(Tick("EURUSD", 1_398_920_000_000_000, bid=1.38727, ask=1.38729))
>>> validate(Tick("EURUSD", 1_398_920_000_000_000, bid=1.4, ask=1.3))
Traceback (most recent call last):
...
spark.ticks.model.InvalidTick: crossed_book: bid 1.4 > ask 1.3
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields

SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._:/-]{0,31}$")
# Event times outside [1970, 2200) are a unit mistake (seconds or ns for µs), not data.
MAX_TS_US = 7_258_118_400_000_000
# Above these a price or size is a unit or encoding mistake, not a market (the dearest
# traded instrument is quoted near 1e6; 1e12 units of size is more than any book holds).
# A contract-valid 1.7e308 would overflow the features to inf and poison a model.
MAX_PRICE = 1e9
MAX_SIZE = 1e12


class InvalidTick(ValueError):
    """A row or record that cannot be a valid tick. ``reason`` goes into dead-letter headers."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Tick:
    """One quote and/or trade. ``ts`` is event time in microseconds since the epoch, UTC."""

    symbol: str
    ts: int
    bid: float | None = None
    ask: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last: float | None = None
    last_size: float | None = None
    venue: str | None = None
    source: str | None = None

    def to_record(self) -> dict:
        # Explicit: dataclasses.asdict deep-copies and cost half of replay's time.
        return {
            "symbol": self.symbol,
            "ts": self.ts,
            "bid": self.bid,
            "ask": self.ask,
            "bid_size": self.bid_size,
            "ask_size": self.ask_size,
            "last": self.last,
            "last_size": self.last_size,
            "venue": self.venue,
            "source": self.source,
        }

    @classmethod
    def from_record(cls, record: dict) -> Tick:
        return cls(**{f.name: record.get(f.name) for f in fields(cls)})

    @property
    def mid(self) -> float | None:
        """Mid of a two-sided quote, else the last trade price."""
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2
        return self.last


def validate(tick: Tick) -> None:
    """Raise InvalidTick with a reason code if ``tick`` must not enter the pipeline."""
    if not isinstance(tick.symbol, str) or not SYMBOL.match(tick.symbol):
        raise InvalidTick("bad_symbol", f"symbol {tick.symbol!r} is not 1-32 of A-Z 0-9 . _ : / -")
    if not isinstance(tick.ts, int) or not 0 < tick.ts < MAX_TS_US:
        raise InvalidTick("bad_timestamp", f"ts {tick.ts!r} is not microseconds since 1970 UTC")
    prices = {"bid": tick.bid, "ask": tick.ask, "last": tick.last}
    if all(v is None for v in prices.values()):
        raise InvalidTick("no_price", "a tick needs a bid, an ask or a last trade price")
    for name, value in prices.items():
        if value is None:
            continue
        if not math.isfinite(value):
            raise InvalidTick("non_finite_price", f"{name} is {value}")
        if value <= 0:
            raise InvalidTick("non_positive_price", f"{name} {value} <= 0")
        if value > MAX_PRICE:
            raise InvalidTick("absurd_price", f"{name} {value} is above {MAX_PRICE:g}")
    for name in ("bid_size", "ask_size", "last_size"):
        value = getattr(tick, name)
        if value is not None and not (math.isfinite(value) and 0 <= value <= MAX_SIZE):
            raise InvalidTick("bad_size", f"{name} {value} is not a size from 0 to {MAX_SIZE:g}")
    if tick.bid is not None and tick.ask is not None and tick.bid > tick.ask:
        raise InvalidTick("crossed_book", f"bid {tick.bid} > ask {tick.ask}")
