"""Cost and fill models of the paper executor: fees, latency, slippage, passive queue fills.

Pure objects, no Kafka; the executor (``spark.execution.paper``) calls them for every order,
so backtest, research and paper trading run the same ones. Design and defaults:
docs/costs.md.

>>> fees = FeeSchedule.parse("EURUSD=0.2/0,*USD=0.3/0,BAC=0.6/-0.2", taker_bp=0.5)
>>> fees.rate("EURUSD", "taker"), fees.rate("NZDUSD", "taker"), fees.rate("BAC", "maker")
(0.2, 0.3, -0.2)
>>> fees.rate("IBM", "taker"), fees.rate("IBM", "maker")
(0.5, 0.0)
>>> s = SlippageModel(slippage_bp=0.0, depth_spreads=1.0)
>>> s.price(+1, 300.0, 100.0, 100.02, 100.01, shown=100.0)  # 200 of 300 fill one spread deeper
100.03333333333333
>>> q = QueueOrder(side=+1, price=100.0, ahead=500.0, posted=0)
>>> q.on_row(1, 100.0, 100.02, 400.0, float("nan"), float("nan"))  # the level shrank
False
>>> q.ahead, q.on_row(2, 100.0, 100.02, 400.0, 100.0, 450.0)  # 450 traded at our price
(400.0, True)
"""

from __future__ import annotations

import fnmatch
import hashlib
import math
from dataclasses import dataclass, field

LIQUIDITY = ("maker", "taker")
FILL_MODELS = ("taker", "passive")
ON_TIMEOUT = ("cross", "cancel")


class CostModelError(ValueError):
    """A cost or fill model setting that cannot be used; the message says which."""


def _bp(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise CostModelError(f"{what} must be a number of basis points, not {text!r}") from None
    if not math.isfinite(value) or abs(value) >= 1_000:
        raise CostModelError(f"{what} must be a finite number of bp below 1000, not {text!r}")
    return value


@dataclass(frozen=True)
class FeeSchedule:
    """Fees in bp of a fill's notional, by liquidity, with per-symbol (or ``venue:symbol``)
    overrides: ``(pattern, taker_bp, maker_bp)``, the first matching pattern wins."""

    taker_bp: float = 0.5
    maker_bp: float = 0.0
    overrides: tuple[tuple[str, float, float], ...] = ()
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, spec: str, taker_bp: float = 0.5, maker_bp: float = 0.0) -> FeeSchedule:
        """``PATTERN=TAKER[/MAKER],...``; CostModelError names a bad entry."""
        overrides = []
        for entry in (e.strip() for e in (spec or "").split(",")):
            if not entry:
                continue
            pattern, sep, rates = entry.partition("=")
            if not sep or not pattern.strip():
                raise CostModelError(
                    f"fee schedule entry {entry!r} must be PATTERN=TAKER[/MAKER], "
                    "e.g. EURUSD=0.2/0 or *USD=0.3"
                )
            taker_text, _, maker_text = rates.partition("/")
            taker = _bp(taker_text.strip(), f"taker fee of {pattern.strip()}")
            if taker < 0:
                raise CostModelError(f"taker fee of {pattern.strip()} must be >= 0, not {taker}")
            maker = (
                _bp(maker_text.strip(), f"maker fee of {pattern.strip()}")
                if maker_text
                else maker_bp
            )
            overrides.append((pattern.strip().upper(), taker, maker))
        return cls(taker_bp, maker_bp, tuple(overrides))

    def rate(self, symbol: str, liquidity: str, venue: str | None = None) -> float:
        key = (symbol, venue)
        rates = self._cache.get(key)
        if rates is None:
            rates = (self.taker_bp, self.maker_bp)
            names = [symbol.upper()] + ([f"{venue}:{symbol}".upper()] if venue else [])
            for pattern, taker, maker in self.overrides:
                if any(fnmatch.fnmatchcase(name, pattern) for name in names):
                    rates = (taker, maker)
                    break
            self._cache[key] = rates
        return rates[0] if liquidity == "taker" else rates[1]

    def describe(self) -> dict:
        return {
            "taker_bp": self.taker_bp,
            "maker_bp": self.maker_bp,
            "overrides": [f"{p}={t:g}/{m:g}" for p, t, m in self.overrides],
        }


@dataclass(frozen=True)
class LatencyModel:
    """Signal → earliest tradable quote: ``base_ms`` plus a deterministic jitter in
    [0, ``jitter_ms``) drawn from a hash of (symbol, signal time)."""

    base_ms: float = 20.0
    jitter_ms: float = 0.0

    def delay_us(self, symbol: str, ts: int) -> float:
        if self.jitter_ms <= 0:
            return self.base_ms * 1000
        digest = hashlib.blake2b(f"{symbol}\0{ts}".encode(), digest_size=8).digest()
        u = int.from_bytes(digest, "big") / 2**64
        return (self.base_ms + u * self.jitter_ms) * 1000

    def describe(self) -> dict:
        return {"base_ms": self.base_ms, "jitter_ms": self.jitter_ms}


@dataclass(frozen=True)
class SlippageModel:
    """How far a taker fill is from the touch: ``slippage_bp`` of mid, plus the part of the
    order beyond the size shown at the touch filling ``depth_spreads`` spreads deeper."""

    slippage_bp: float = 0.0
    depth_spreads: float = 1.0

    def price(
        self, direction: int, qty: float, bid, ask, mid: float, shown: float | None = None
    ) -> float:
        """Average fill price of a taker order (direction +1 buy, −1 sell) of ``qty``."""
        touch = ask if direction > 0 else bid
        if touch is None or touch != touch:  # trade-only data: the trade price
            touch = mid
        slip = self.slippage_bp * 1e-4 * mid
        if (
            self.depth_spreads > 0
            and shown is not None
            and shown == shown
            and shown > 0
            and qty > shown
            and bid is not None
            and ask is not None
            and ask == ask
            and bid == bid
        ):
            slip += self.depth_spreads * (ask - bid) * (qty - shown) / qty
        return touch + direction * slip

    def describe(self) -> dict:
        return {"slippage_bp": self.slippage_bp, "depth_spreads": self.depth_spreads}


@dataclass
class QueueOrder:
    """A resting passive order's place in the queue (risk-averse model, docs/costs.md):
    ``ahead`` is the size in front of it (inf: unknown)."""

    side: int  # +1 buy (rests on the bid), -1 sell (rests on the ask)
    price: float
    ahead: float
    posted: int  # event time, µs

    def on_row(self, ts: int, bid, ask, shown, last, last_size) -> bool:
        """One tick of the order's symbol after it was posted: True when it fills.
        ``shown``: the size shown on the order's side of this tick (NaN unknown)."""
        if last == last:  # a trade
            through = last < self.price if self.side > 0 else last > self.price
            if through:
                return True
            if last == self.price and last_size == last_size:
                self.ahead -= last_size
                if self.ahead < 0:
                    return True
        own, other = (bid, ask) if self.side > 0 else (ask, bid)
        if (
            other is not None
            and other == other
            and ((other <= self.price) if self.side > 0 else (other >= self.price))
        ):
            return True  # the market moved through the order
        if own is not None and own == own:
            if own == self.price and shown == shown:
                self.ahead = min(self.ahead, shown)
            elif (own < self.price) if self.side > 0 else (own > self.price):
                self.ahead = 0.0  # the level emptied: nobody is ahead any more
        return False

    def state(self) -> list:
        return [self.side, self.price, self.ahead, self.posted]

    @classmethod
    def load(cls, saved: list) -> QueueOrder:
        side, price, ahead, posted = saved
        return cls(int(side), float(price), float(ahead), int(posted))


@dataclass(frozen=True)
class FillModel:
    """``taker``: cross at the first quote past the latency; ``passive``: rest at the
    own-side touch there, fill by queue position, after ``timeout_ms`` cross or cancel."""

    kind: str = "taker"
    timeout_ms: float = 5_000.0
    on_timeout: str = "cross"

    @property
    def passive(self) -> bool:
        return self.kind == "passive"

    def describe(self) -> dict:
        if not self.passive:
            return {"kind": "taker"}
        return {
            "kind": "passive",
            "queue": "risk-averse (trades at the price and shrinking size advance it)",
            "timeout_ms": self.timeout_ms,
            "on_timeout": self.on_timeout,
            "partial_fills": False,
        }


@dataclass(frozen=True)
class CostModels:
    fees: FeeSchedule
    latency: LatencyModel
    slippage: SlippageModel
    fill: FillModel

    @classmethod
    def from_settings(cls, settings) -> CostModels:
        """From an ``ExecutionSettings``; CostModelError names a bad setting."""
        if settings.fill_model not in FILL_MODELS:
            raise CostModelError(
                f"fill model must be one of {', '.join(FILL_MODELS)}, not {settings.fill_model!r}"
            )
        if settings.passive_on_timeout not in ON_TIMEOUT:
            raise CostModelError(
                "passive_on_timeout must be one of "
                f"{', '.join(ON_TIMEOUT)}, not {settings.passive_on_timeout!r}"
            )
        if not math.isfinite(settings.maker_fee_bp) or abs(settings.maker_fee_bp) >= 1_000:
            raise CostModelError(
                f"maker fee must be a finite bp figure, not {settings.maker_fee_bp}"
            )
        return cls(
            FeeSchedule.parse(settings.fee_schedule, settings.fee_bp, settings.maker_fee_bp),
            LatencyModel(settings.latency_ms, settings.latency_jitter_ms),
            SlippageModel(settings.slippage_bp, settings.depth_spreads),
            FillModel(
                settings.fill_model, settings.passive_timeout_ms, settings.passive_on_timeout
            ),
        )

    def describe(self) -> dict:
        """What a report says ran."""
        return {
            "fees": self.fees.describe(),
            "latency": self.latency.describe(),
            "slippage": self.slippage.describe(),
            "fill": self.fill.describe(),
        }

    def round_trip_fee_bp(self, symbol: str) -> float:
        """Fees of a round trip (in and out) under the fill model. A taker's is what the
        cost-aware policy adds to the spread; a passive round trip is charged what shadow
        orders measure instead (fees, adverse fills, timeouts: spark.execution.passive_cost)."""
        liquidity = "maker" if self.fill.passive else "taker"
        return 2.0 * self.fees.rate(symbol, liquidity)

    @property
    def spread_weight(self) -> float:
        """How much of the quote's spread the policy charges a round trip: all of it for a
        taker; none for passive, whose measured cost has it (spark.execution.passive_cost)."""
        return 0.0 if self.fill.passive else 1.0
