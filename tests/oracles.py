"""Specifications of compiled stages: the pure-Python implementations they replaced.

``tests/test_pipeline.py`` checks the compiled features (``spark.features.kernel``) and
PSI detectors (``spark.drift.kernel``) against these, value by value. They are the
readable definitions (docs/features.md, docs/drift.md); nothing in the product uses them.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from dataclasses import asdict, dataclass, field

from spark.ticks.model import Tick

SAME_BP = 1e-6  # a mid this close (bp) to the previous one is it: float rounding, not a move


@dataclass
class TimeEWMean:
    """Exponentially weighted mean with a time constant ``tau_s`` (seconds)."""

    tau_s: float
    mean: float = 0.0
    last_t: float | None = None

    def update(self, x: float, t: float) -> float:
        if self.last_t is None:
            self.mean = x
        else:
            alpha = 1.0 - math.exp(-max(t - self.last_t, 0.0) / self.tau_s)
            self.mean += alpha * (x - self.mean)
        self.last_t = t
        return self.mean


@dataclass
class TimeEWVar:
    """Exponentially weighted variance (West's update) with time constant ``tau_s``."""

    tau_s: float
    mean: float = 0.0
    var: float = 0.0
    last_t: float | None = None

    def update(self, x: float, t: float) -> float:
        if self.last_t is None:
            self.mean, self.var = x, 0.0
        else:
            alpha = 1.0 - math.exp(-max(t - self.last_t, 0.0) / self.tau_s)
            diff = x - self.mean
            incr = alpha * diff
            self.mean += incr
            self.var = (1.0 - alpha) * (self.var + diff * incr)
        self.last_t = t
        return self.var


@dataclass
class DecayedCount:
    """Sum of weights decaying with ``tau_s``: with weight 1 per tick and tau 60 s it
    approximates ticks per minute; with trade sizes, volume per minute."""

    tau_s: float
    total: float = 0.0
    last_t: float | None = None

    def update(self, weight: float, t: float) -> float:
        if self.last_t is not None:
            self.total *= math.exp(-max(t - self.last_t, 0.0) / self.tau_s)
        self.total += weight
        self.last_t = t
        return self.total


FEATURE_SET = "v4"
CORE_FEATURE_NAMES = (
    "ret_bp",  # log return of the mid since the previous tick, bp
    "spread_bp",  # (ask - bid) / mid, bp (0 without a two-sided quote)
    "spread_z",  # spread against its 5-minute EW mean, in EW standard deviations
    "d_bid_bp",  # change of the bid since the previous tick, bp of mid
    "d_ask_bp",  # change of the ask since the previous tick, bp of mid
    "dt_s",  # seconds since the previous tick
    "activity_1m",  # ticks in the last minute (time-decayed count, tau 60 s)
    "volume_1m",  # traded size in the last minute (time-decayed, tau 60 s)
    "rsi_14",  # Wilder's RSI over the last 14 mid changes, centred: RSI - 50
    "vol_bp",  # EW standard deviation of ret_bp, tau 60 s
    "mom_bp",  # mid minus its 30-second EW mean, bp
    "mom_20_bp",  # sum of the last 20 returns, bp
    "imbalance",  # (bid_size - ask_size) / (bid_size + ask_size); 0 without sizes
    "last_move_sign",  # sign of the last non-zero mid change: -1, 0, +1
    "last_move_age_s",  # seconds since the mid last changed
    "trade_sign_1m",  # EW mean of trade signs (+1 at/above ask side, -1 at/below bid), tau 60 s
    "reversal",  # last_move_sign * spread-normalized size of that move (bid-ask bounce proxy)
)
# v2: quote-dynamics features (docs/features.md, docs/ml.md: +0.03..0.07 AUC with boosted trees)
SIDE_FEATURES = (
    "dev_05s_bp",  # side minus its 0.5-second EW mean, bp of mid
    "dev_2s_bp",  # ... 2-second EW mean
    "dev_10s_bp",  # ... 10-second EW mean
    "dev_60s_bp",  # ... 60-second EW mean
    "pos_10",  # position of the side in the range of its last 10 values: 0 low .. 1 high
    "dmed_10_bp",  # side minus the median of its last 10 values, bp of mid
    "last_change_bp",  # the side's last non-zero change, bp of mid
    "range_10_bp",  # max - min of the side's last 10 values, bp of mid
)
QUOTE_FEATURE_NAMES = (
    "mid_dev_1s",  # mid minus its 1-second EW mean, in spreads
    "mid_dev_5s",  # ... 5-second EW mean, in spreads
    "mid_dev_20s",  # ... 20-second EW mean, in spreads
    "bid_flow_2s",  # time-decayed sum of bid changes (tau 2 s), in spreads
    "ask_flow_2s",  # time-decayed sum of ask changes (tau 2 s), in spreads
    "bid_flow_10s",  # ... tau 10 s
    "ask_flow_10s",  # ... tau 10 s
    "updown_5s",  # time-decayed sum of the signs of quote changes (bid + ask moves), tau 5 s
    "activity_5s",  # time-decayed tick count, tau 5 s
    "spread_rel",  # spread over its 5-minute EW mean
    "d_spread_bp",  # change of the spread since the previous tick, bp
    "last_bid_sign",  # sign of the bid's last non-zero change
    "last_ask_sign",  # sign of the ask's last non-zero change
    "bid_age_s",  # seconds since the bid last changed
    "ask_age_s",  # seconds since the ask last changed
) + tuple(f"{side}_{name}" for side in ("bid", "ask") for name in SIDE_FEATURES)
# v3: order flow from quote sizes and trades (docs/features.md, session 22)
BOOK_FEATURE_NAMES = (
    "ofi_1s",  # order-flow imbalance at the best quotes, time-decayed (tau 1 s), in EW depths
    "ofi_10s",  # ... tau 10 s
    "tflow_5s",  # signed trade volume over trade volume, time-decayed (tau 5 s): -1 .. +1
    "tflow_60s",  # ... tau 60 s
)
# v4: the regime of the mid's moves (docs/features.md, session 23)
REGIME_FEATURE_NAMES = (
    "persist_20",  # last_move_sign * (1 - 2 * EW share of moves reversing the one before, span 20)
    "persist_200",  # ... span 200: the next move's expected sign, +1 up, -1 down
)
REVERSAL_SPANS = (20.0, 200.0)
FEATURE_NAMES = CORE_FEATURE_NAMES + QUOTE_FEATURE_NAMES + BOOK_FEATURE_NAMES + REGIME_FEATURE_NAMES
RSI_N = 14
MOM_N = 20
SIDE_N = 10
_SIDE_TAUS = (0.5, 2.0, 10.0, 60.0)


@dataclass
class SideState:
    """One side of the book (bid or ask): its short EW means, last 10 values, last change."""

    means: list = field(default_factory=lambda: [TimeEWMean(tau) for tau in _SIDE_TAUS])
    recent: deque = field(default_factory=lambda: deque(maxlen=SIDE_N))
    last: float | None = None
    last_change_bp: float = 0.0
    last_change_t: float | None = None

    def update(self, price: float | None, t: float, mid: float) -> list[float]:
        """The side's features at ``t`` (all 0 while the side is unknown), then its age."""
        if price is None:
            return [0.0] * (len(SIDE_FEATURES) + 1)
        devs = [(price - m.update(price, t)) / mid * 1e4 for m in self.means]
        self.recent.append(price)
        low, high = min(self.recent), max(self.recent)
        pos = (price - low) / (high - low) if high > low else 0.5
        median = sorted(self.recent)[len(self.recent) // 2]
        if self.last is not None and price != self.last:
            self.last_change_bp = (price - self.last) / mid * 1e4
            self.last_change_t = t
        self.last = price
        age = t - self.last_change_t if self.last_change_t is not None else 0.0
        return [
            *devs,
            pos,
            (price - median) / mid * 1e4,
            self.last_change_bp,
            (high - low) / mid * 1e4,
            age,
        ]

    def to_state(self) -> dict:
        return {
            "means": [asdict(m) for m in self.means],
            "recent": list(self.recent),
            "last": self.last,
            "last_change_bp": self.last_change_bp,
            "last_change_t": self.last_change_t,
        }

    @classmethod
    def from_state(cls, state: dict) -> SideState:
        return cls(
            means=[TimeEWMean(**m) for m in state["means"]],
            recent=deque(state["recent"], maxlen=SIDE_N),
            last=state["last"],
            last_change_bp=state["last_change_bp"],
            last_change_t=state["last_change_t"],
        )


@dataclass
class TickFeatures:
    """Per-symbol feature state. ``update`` returns the feature dict of every valid tick
    (changes are 0 on a symbol's first tick); ``prev_mid`` is then the tick's mid:
    bid/ask carried forward from earlier ticks, else the last trade, else the one side."""

    prev_ts: int | None = None
    prev_mid: float = 0.0
    prev_bid: float | None = None
    prev_ask: float | None = None
    last_move_sign: float = 0.0
    last_move_ts: int | None = None
    last_move_bp: float = 0.0
    avg_gain: float = 0.0
    avg_loss: float = 0.0
    rsi_count: int = 0
    activity: DecayedCount = field(default_factory=lambda: DecayedCount(60.0))
    volume: DecayedCount = field(default_factory=lambda: DecayedCount(60.0))
    ret_var: TimeEWVar = field(default_factory=lambda: TimeEWVar(60.0))
    spread_var: TimeEWVar = field(default_factory=lambda: TimeEWVar(300.0))
    mid_mean: TimeEWMean = field(default_factory=lambda: TimeEWMean(30.0))
    trade_sign: TimeEWMean = field(default_factory=lambda: TimeEWMean(60.0))
    recent_returns: deque = field(default_factory=lambda: deque(maxlen=MOM_N))
    recent_sum: float = 0.0
    prev_spread_bp: float | None = None
    mid_means: list = field(default_factory=lambda: [TimeEWMean(t) for t in (1.0, 5.0, 20.0)])
    flows: list = field(default_factory=lambda: [DecayedCount(t) for t in (2.0, 2.0, 10.0, 10.0)])
    updown: DecayedCount = field(default_factory=lambda: DecayedCount(5.0))
    activity_5s: DecayedCount = field(default_factory=lambda: DecayedCount(5.0))
    bid_side: SideState = field(default_factory=SideState)
    ask_side: SideState = field(default_factory=SideState)
    # v3
    prev_bid_size: float | None = None
    prev_ask_size: float | None = None
    ofi: list = field(default_factory=lambda: [DecayedCount(t) for t in (1.0, 10.0)])
    depth: TimeEWMean = field(default_factory=lambda: TimeEWMean(60.0))
    signed_volume: list = field(default_factory=lambda: [DecayedCount(t) for t in (5.0, 60.0)])
    trade_volume: list = field(default_factory=lambda: [DecayedCount(t) for t in (5.0, 60.0)])
    # v4: per span, an EW mean of "this mid move reverses the one before" (1) or not (0)
    reversals: list = field(default_factory=lambda: [0.5, 0.5])

    def update(self, tick: Tick) -> dict[str, float] | None:
        t = tick.ts / 1e6
        bid = tick.bid if tick.bid is not None else self.prev_bid
        ask = tick.ask if tick.ask is not None else self.prev_ask
        # a one-sided quote completes the book carried forward from earlier ticks
        two_sided = bid is not None and ask is not None
        mid = (bid + ask) / 2 if two_sided else tick.last or bid or ask
        if mid is None or mid <= 0:
            return None
        if self.prev_ts is not None and abs(mid - self.prev_mid) <= SAME_BP * 1e-4 * self.prev_mid:
            mid = self.prev_mid  # float rounding of (bid + ask) / 2, not a move
        spread_bp = (ask - bid) / mid * 1e4 if bid is not None and ask is not None else 0.0
        activity = self.activity.update(1.0, t)
        volume = self.volume.update(tick.last_size or 0.0, t)
        spread_var = self.spread_var.update(spread_bp, t)
        spread_z = (
            (spread_bp - self.spread_var.mean) / math.sqrt(spread_var)
            if spread_var > 1e-12
            else 0.0
        )
        mid_mean = self.mid_mean.update(mid, t)
        if tick.last is not None:
            reference = (bid + ask) / 2 if bid is not None and ask is not None else self.prev_mid
            sign = 1.0 if tick.last > reference else (-1.0 if tick.last < reference else 0.0)
            self.trade_sign.update(sign, t)
            size = tick.last_size if tick.last_size is not None else 1.0
            for signed, traded in zip(self.signed_volume, self.trade_volume, strict=True):
                signed.update(sign * size, t)
                traded.update(size, t)

        first = self.prev_ts is None
        ret_bp = 0.0 if first else math.log(mid / self.prev_mid) * 1e4
        d_bid = (
            (bid - self.prev_bid) / mid * 1e4
            if bid is not None and self.prev_bid is not None
            else 0.0
        )
        d_ask = (
            (ask - self.prev_ask) / mid * 1e4
            if ask is not None and self.prev_ask is not None
            else 0.0
        )
        dt_s = 0.0 if first else (tick.ts - self.prev_ts) / 1e6
        if ret_bp != 0.0:
            sign = 1.0 if ret_bp > 0 else -1.0
            if self.last_move_sign != 0.0:
                flip = float(sign != self.last_move_sign)
                self.reversals = [
                    r + 2.0 / (span + 1.0) * (flip - r)
                    for r, span in zip(self.reversals, REVERSAL_SPANS, strict=True)
                ]
            self.last_move_sign = sign
            self.last_move_ts = tick.ts
            self.last_move_bp = ret_bp
        if not first:
            gain, loss = max(ret_bp, 0.0), max(-ret_bp, 0.0)
            self.rsi_count += 1
            n = min(self.rsi_count, RSI_N)
            self.avg_gain += (gain - self.avg_gain) / n
            self.avg_loss += (loss - self.avg_loss) / n
            if len(self.recent_returns) == MOM_N:
                self.recent_sum -= self.recent_returns[0]
            self.recent_returns.append(ret_bp)
            self.recent_sum += ret_bp
        vol_var = self.ret_var.update(ret_bp, t) if not first else 0.0

        quote = self._quote_features(t, mid, bid, ask, spread_bp, d_bid, d_ask)
        book = self._book_features(tick, t, bid, ask, first)
        self.prev_ts, self.prev_mid, self.prev_bid, self.prev_ask = tick.ts, mid, bid, ask
        self.prev_spread_bp = spread_bp
        total = self.avg_gain + self.avg_loss
        rsi = 100.0 * self.avg_gain / total if total > 0 else 50.0
        sizes = (tick.bid_size or 0.0) + (tick.ask_size or 0.0)
        imbalance = ((tick.bid_size or 0.0) - (tick.ask_size or 0.0)) / sizes if sizes > 0 else 0.0
        age = (tick.ts - self.last_move_ts) / 1e6 if self.last_move_ts is not None else dt_s
        scale = max(spread_bp, 1e-9)
        return {
            "ret_bp": ret_bp,
            "spread_bp": spread_bp,
            "spread_z": spread_z,
            "d_bid_bp": d_bid,
            "d_ask_bp": d_ask,
            "dt_s": dt_s,
            "activity_1m": activity,
            "volume_1m": volume,
            "rsi_14": rsi - 50.0,
            "vol_bp": math.sqrt(max(vol_var, 0.0)),
            "mom_bp": (mid - mid_mean) / mid * 1e4,
            "mom_20_bp": self.recent_sum,
            "imbalance": imbalance,
            "last_move_sign": self.last_move_sign,
            "last_move_age_s": age,
            "trade_sign_1m": self.trade_sign.mean,
            "reversal": self.last_move_sign * min(abs(self.last_move_bp) / scale, 10.0),
            **quote,
            **book,
            **{
                name: self.last_move_sign * (1.0 - 2.0 * r)
                for name, r in zip(REGIME_FEATURE_NAMES, self.reversals, strict=True)
            },
        }

    def _book_features(self, tick: Tick, t, bid, ask, first) -> dict[str, float]:
        """The v3 features: OFI (Cont, Kukanov and Stoikov 2014) of this update over the EW
        depth, and the share of signed trade volume (trades update it in ``update``)."""
        bid_size = tick.bid_size if tick.bid_size is not None else self.prev_bid_size
        ask_size = tick.ask_size if tick.ask_size is not None else self.prev_ask_size
        known = (bid, ask, self.prev_bid, self.prev_ask, bid_size, ask_size)
        e = 0.0
        if not first and None not in known + (self.prev_bid_size, self.prev_ask_size):
            if bid >= self.prev_bid:
                e += bid_size
            if bid <= self.prev_bid:
                e -= self.prev_bid_size
            if ask <= self.prev_ask:
                e -= ask_size
            if ask >= self.prev_ask:
                e += self.prev_ask_size
        if bid_size is not None and ask_size is not None:
            self.depth.update(0.5 * (bid_size + ask_size), t)
        depth = self.depth.mean if self.depth.last_t is not None else 0.0
        ofi = [o.update(e, t) / depth if depth > 0 else 0.0 for o in self.ofi]
        flow = [
            s.total / v.total if v.total > 0 else 0.0
            for s, v in zip(self.signed_volume, self.trade_volume, strict=True)
        ]
        self.prev_bid_size, self.prev_ask_size = bid_size, ask_size
        return dict(zip(BOOK_FEATURE_NAMES, ofi + flow, strict=True))

    def _quote_features(self, t, mid, bid, ask, spread_bp, d_bid, d_ask) -> dict[str, float]:
        """The v2 quote-dynamics features (QUOTE_FEATURE_NAMES) of this tick."""
        scale = max(spread_bp, 1e-9)
        devs = [(mid - m.update(mid, t)) / mid * 1e4 / scale for m in self.mid_means]
        flows = [
            f.update(change, t) / scale
            for f, change in zip(self.flows, (d_bid, d_ask, d_bid, d_ask), strict=True)
        ]
        moved = d_bid + d_ask
        still = abs(moved) <= SAME_BP
        updown = self.updown.update(0.0 if still else math.copysign(1.0, moved), t)
        activity_5s = self.activity_5s.update(1.0, t)
        typical = self.spread_var.mean
        bid_side = self.bid_side.update(bid, t, mid)
        ask_side = self.ask_side.update(ask, t, mid)
        sign = lambda v: 0.0 if v == 0 else math.copysign(1.0, v)  # noqa: E731
        values = [
            *devs,
            *flows,
            updown,
            activity_5s,
            spread_bp / typical if typical > 0 else 1.0,
            0.0 if self.prev_spread_bp is None else spread_bp - self.prev_spread_bp,
            sign(self.bid_side.last_change_bp),
            sign(self.ask_side.last_change_bp),
            bid_side[-1],
            ask_side[-1],
            *bid_side[:-1],
            *ask_side[:-1],
        ]
        return dict(zip(QUOTE_FEATURE_NAMES, values, strict=True))

    def to_state(self) -> dict:
        """Plain JSON-able state (for a Faust table backed by a changelog topic)."""
        state = asdict(self)
        state["recent_returns"] = list(self.recent_returns)
        state["bid_side"] = self.bid_side.to_state()
        state["ask_side"] = self.ask_side.to_state()
        return state

    @classmethod
    def from_state(cls, state: dict) -> TickFeatures:
        state = dict(state)
        nested = {
            "activity": DecayedCount,
            "volume": DecayedCount,
            "ret_var": TimeEWVar,
            "spread_var": TimeEWVar,
            "mid_mean": TimeEWMean,
            "trade_sign": TimeEWMean,
        }
        for name, kind in nested.items():
            state[name] = kind(**state[name])
        state["recent_returns"] = deque(state["recent_returns"], maxlen=MOM_N)
        if "bid_side" not in state:  # a v1 state: the v2 quote features start fresh
            return cls(**state)
        state["mid_means"] = [TimeEWMean(**m) for m in state["mid_means"]]
        state["flows"] = [DecayedCount(**f) for f in state["flows"]]
        state["updown"] = DecayedCount(**state["updown"])
        state["activity_5s"] = DecayedCount(**state["activity_5s"])
        state["bid_side"] = SideState.from_state(state["bid_side"])
        state["ask_side"] = SideState.from_state(state["ask_side"])
        if "ofi" in state:  # v3; a v2 state starts the v3 features fresh
            for name in ("ofi", "signed_volume", "trade_volume"):
                state[name] = [DecayedCount(**d) for d in state[name]]
            state["depth"] = TimeEWMean(**state["depth"])
        return cls(**state)


@dataclass
class PSIDetector:
    window: int = 2000
    bins: int = 10
    threshold: float = 0.25
    check_every: int = 250
    name: str = "psi"
    statistic: float = 0.0
    _reference: list[float] = field(default_factory=list)
    _edges: list[float] = field(default_factory=list)
    _ref_share: list[float] = field(default_factory=list)
    _current: deque = field(default_factory=deque)
    _counts: list[int] = field(default_factory=list)
    _since_check: int = 0

    def _set_reference(self, values: list[float]) -> None:
        ordered = sorted(values)
        n = len(ordered)
        self._edges = sorted(
            {ordered[min(n - 1, (n * k) // self.bins)] for k in range(1, self.bins)}
        )
        counts = [0] * (len(self._edges) + 1)
        for v in values:
            counts[bisect.bisect_right(self._edges, v)] += 1
        self._ref_share = [max(c / n, 1e-4) for c in counts]
        self._counts = [0] * len(counts)
        self._current = deque()
        self._since_check = 0

    def update(self, value: float) -> bool:
        if not self._edges:
            self._reference.append(value)
            if len(self._reference) >= self.window:
                self._set_reference(self._reference)
                self._reference = []
            return False
        slot = bisect.bisect_right(self._edges, value)
        self._current.append(slot)
        self._counts[slot] += 1
        if len(self._current) > self.window:
            self._counts[self._current.popleft()] -= 1
        self._since_check += 1
        if len(self._current) < self.window or self._since_check < self.check_every:
            return False
        self._since_check = 0
        n = len(self._current)
        psi = 0.0
        for count, ref in zip(self._counts, self._ref_share, strict=True):
            cur = max(count / n, 1e-4)
            psi += (cur - ref) * math.log(cur / ref)
        self.statistic = psi
        if psi > self.threshold:
            # learn a new reference (and new bin edges) from the values that follow,
            # so one shift raises one alarm
            self._edges = []
            self._reference = []
            return True
        return False


class Confirmed:
    """Drift when every feature's PSI detector alarmed within ``within`` vectors of the others.

    >>> c = Confirmed({"a": PSIDetector(window=100, bins=5, threshold=0.25, check_every=10),
    ...                "b": PSIDetector(window=100, bins=5, threshold=0.25, check_every=10)}, 50)
    >>> any(c.update_vector({"a": float(i % 7), "b": float(i % 5)}) for i in range(600))
    False
    >>> any(c.update_vector({"a": 50.0 + i % 7, "b": float(i % 5)}) for i in range(600))  # a only
    False
    >>> any(c.update_vector({"a": float(i % 7), "b": 50.0 + i % 5}) for i in range(600))  # both
    True
    """

    def __init__(self, detectors: dict[str, PSIDetector], within: int) -> None:
        self.detectors = detectors
        self.within = within
        self.name = "psi_confirmed"
        self.statistic = 0.0
        self._count = 0
        self._last: dict[str, int] = {}

    @property
    def features(self) -> str:
        return "&".join(self.detectors)

    def update_vector(self, x: dict[str, float]) -> bool:
        self._count += 1
        for feature, detector in self.detectors.items():
            value = x.get(feature)
            if value is not None and detector.update(value):
                self._last[feature] = self._count
        if len(self._last) < len(self.detectors):
            return False
        if self._count - min(self._last.values()) > self.within:
            return False
        self.statistic = max(d.statistic for d in self.detectors.values())
        self._last = {}  # re-arm: every feature must alarm again
        return True


def confirmed_spread_vol() -> Confirmed:
    """The gate's data-drift rule (docs/drift.md): PSI on spread_bp (window 2,000,
    threshold 4) confirmed by PSI on vol_bp (window 1,500, threshold 3, checked every
    100) within 250 ticks."""
    return Confirmed(
        {
            "spread_bp": PSIDetector(window=2000, threshold=4.0, check_every=250),
            "vol_bp": PSIDetector(window=1500, threshold=3.0, check_every=100),
        },
        within=250,
    )


@dataclass
class BreakDetector:
    """A jump of the mid or a frozen quote, one symbol (spark.drift.breaks is its compiled
    form): fed each tick's ``ret_bp``, returns "jump", "frozen" or None.

    >>> b = BreakDetector(jump=50.0, frozen=20.0, move_span=10, rate_span=1000, warm=100)
    >>> [b.update(0.5 if i % 2 else -0.4) for i in range(300)].count(None)
    300
    >>> b.update(100.0)  # 200 typical moves at once
    'jump'
    >>> b = BreakDetector(jump=50.0, frozen=20.0, move_span=10, rate_span=1000, warm=100)
    >>> _ = [b.update(0.5 if i % 2 else -0.4) for i in range(300)]
    >>> [b.update(0.0) for _ in range(25)].index("frozen")  # 21 gaps of about one tick
    20
    """

    jump: float
    frozen: float
    move_span: int
    rate_span: int
    warm: int
    size: float = 0.0  # typical |ret_bp| of a move: EW mean over moves
    moves: int = 0
    rate: float = 1.0  # moves per tick: EW mean over ticks
    run: int = 0  # ticks since the mid last moved
    seen: int = 0
    fired: bool = False  # frozen alarmed in this run
    statistic: float = 0.0

    def update(self, ret_bp: float) -> str | None:
        a = abs(ret_bp)
        self.run = 0 if a > 0 else self.run + 1
        self.seen += 1
        warm = self.seen <= self.warm
        jump = 0.0 if warm or not self.moves else a / self.size
        frozen = 0.0 if warm else self.run * self.rate
        if jump > self.jump:
            self.statistic = jump
            fresh = BreakDetector(self.jump, self.frozen, self.move_span, self.rate_span, self.warm)
            vars(self).update(vars(fresh), statistic=jump)  # a new instrument: start again
            return "jump"
        alarm = None
        if frozen > self.frozen and not self.fired:
            self.statistic, self.fired, alarm = frozen, True, "frozen"
        if a > 0:
            self.fired = False
            self.size = (
                a if not self.moves else self.size + 2 / (self.move_span + 1) * (a - self.size)
            )
            self.moves += 1
        self.rate += 2 / (self.rate_span + 1) * ((1.0 if a > 0 else 0.0) - self.rate)
        return alarm


# --- the signal policy (spark.ml.signals.decide is its compiled batch form) -------------
class SignalPolicy:
    def __init__(self, band: float = 0.1) -> None:
        if not 0 < band < 0.5:
            raise ValueError("the band must be between 0 and 0.5")
        self.band = band
        self.last_side: dict[str, str] = {}

    def decide(
        self, symbol: str, prob_up: float, commit: bool = True
    ) -> tuple[str, float, str] | None:
        """(side, strength, reason) when the symbol's intent changes, else None.

        With ``commit=False`` the side is not remembered (a signal the gate suppresses
        never reached the execution system, so it must not count as sent).
        """
        if prob_up >= 0.5 + self.band:
            side, rule = "BUY", f"prob_up {prob_up:.3f} >= {0.5 + self.band:.2f}"
        elif prob_up <= 0.5 - self.band:
            side, rule = "SELL", f"prob_up {prob_up:.3f} <= {0.5 - self.band:.2f}"
        else:
            side, rule = (
                "FLAT",
                f"prob_up {prob_up:.3f} inside {0.5 - self.band:.2f}..{0.5 + self.band:.2f}",
            )
        if side == self.last_side.get(symbol, "FLAT"):
            return None
        if commit:
            self.last_side[symbol] = side
        return side, min(abs(prob_up - 0.5) * 2, 1.0), rule


class CostedPolicy:
    """The cost-aware policy (``spark.ml.signals.decide_costed``), one tick at a time."""

    def __init__(
        self, band: float, fee_bp: float, min_edge: float, min_hold_us: int, passive: bool = False
    ) -> None:
        """``fee_bp``: one way; ``passive``: the fill model does not cross the spread, so a
        round trip costs its two fees only (docs/costs.md)."""
        self.band, self.fee_bp, self.min_edge, self.min_hold_us = (
            band,
            fee_bp,
            min_edge,
            min_hold_us,
        )
        self.passive = passive
        self.side: dict[str, str] = {}
        self.since: dict[str, int] = {}

    def decide(
        self, symbol: str, ts: int, prob_up: float, beta: float, bid: float, ask: float,
        commit: bool = True,
    ) -> str | None:  # fmt: skip
        """The side to send, or None to keep the one held."""
        held = self.side.get(symbol, "FLAT")
        if prob_up >= 0.5 + self.band:
            towards = "BUY"
        elif prob_up <= 0.5 - self.band:
            towards = "SELL"
        else:
            return None  # no view: hold
        if towards == held:
            return None
        spread = 0.0 if self.passive else (ask - bid) / ((ask + bid) / 2) * 1e4
        cost = spread + 2 * self.fee_bp
        edge = abs(2 * prob_up - 1) * beta
        if not (math.isnan(edge) or math.isnan(cost)) and edge > 0 and edge >= self.min_edge * cost:
            want = towards
        elif held != "FLAT":
            want = "FLAT"  # the model turned against the position and the other side won't pay
        else:
            return None
        if held != "FLAT" and ts - self.since[symbol] < self.min_hold_us:
            return None
        if commit:
            self.side[symbol], self.since[symbol] = want, ts
        return want


def move_betas(
    ticks, horizon_us: int, probs, span: float, min_labels: int, moves: int = 0
) -> list[float]:
    """For each tick of one two-sided symbol, the fit of the mid's move over the horizon (bp)
    on the lean 2p - 1 of the model's prediction ``probs`` (least squares through 0), over
    the labels resolved up to it: a vector made at t resolves at the first tick later than
    t + H, against the mid before that tick (ties count, as a move of 0); with ``moves`` > 0
    (event time) at the tick of the symbol's ``moves``-th mid move after t, against that
    tick's mid. Running means over the first ``span`` labels, exponential after. NaN before
    ``min_labels`` labels."""
    queue: list[tuple[int, float, float]] = []
    out, ms, ss, count, last_mid, moved = [], 0.0, 0.0, 0, None, 0
    for t, p in zip(ticks, probs, strict=True):
        mid = (t.bid + t.ask) / 2
        if last_mid is not None and abs(mid - last_mid) <= SAME_BP * 1e-4 * last_mid:
            mid = last_mid  # float rounding, not a move
        if mid != last_mid:
            moved += 1
        # event time: due after `moves` mid moves, against this tick's mid; clock time: due
        # once a tick later than t + H comes, against the mid before it
        now, wait, against = (moved, moves - 1, mid) if moves else (t.ts, horizon_us, last_mid)
        while queue and queue[0][0] + wait < now:
            _, mid0, lean = queue.pop(0)
            count += 1
            move = (against - mid0) / mid0 * 1e4
            ms += (move * lean - ms) / min(count, span)
            ss += (lean * lean - ss) / min(count, span)
        out.append(ms / ss if count >= min_labels and ss > 0 else math.nan)
        queue.append((moved if moves else t.ts, mid, 2 * p - 1))
        last_mid = mid
    return out


def passive_round_trips(
    ticks, probs, band: float, timeout_us: int, cross: bool, maker_bp: float, taker_bp: float,
    slippage, notional: float, span: float, min_legs: int, counts: dict | None = None,
) -> list[float]:  # fmt: skip
    """For each tick, the cost of a passive round trip for its symbol measured so far on
    shadow orders (``spark.execution.passive_cost``): one per side and symbol, posted at the
    touch of a tick where none rests and the model leans that way (``probs``: prob_up per
    tick, past 0.5 ± ``band``), walked on the symbol's later ticks by the executor's
    ``QueueOrder`` after a timeout check; a fill costs its price against the mid it fills at
    plus the maker fee, a timeout crossed what the executor's ``slippage``
    (``SlippageModel``) makes an order of ``notional`` pay against the mid then plus the
    taker fee, a cancelled one nothing. Two legs' mean (running over ``span`` legs, exponential
    after), NaN before ``min_legs`` legs. Quotes as the pipeline sees them: a side missing
    from a tick is carried forward; the mid is (bid + ask) / 2, else the trade, else the one
    side known; a tick without a mid is skipped (NaN). ``counts``, if given, gets per symbol
    [legs, fills, timeouts]."""
    from spark.execution.costs import QueueOrder

    def nan(v):
        return math.nan if v is None else v

    resting: dict[tuple[str, int], tuple[QueueOrder, int]] = {}
    mean: dict[str, float] = {}
    legs: dict[str, int] = {}
    book: dict[str, tuple[float, float]] = {}
    out = []
    for t, prob in zip(ticks, probs, strict=True):
        bid, ask = book.get(t.symbol, (math.nan, math.nan))
        bid, ask = (
            nan(t.bid) if t.bid is not None else bid,
            nan(t.ask) if t.ask is not None else ask,
        )
        if bid == bid and ask == ask:
            mid = (bid + ask) / 2
        else:
            mid = next((v for v in (nan(t.last), bid) if v == v and v != 0), ask)
        if not (mid > 0):
            out.append(math.nan)
            continue
        book[t.symbol] = bid, ask
        for direction in (1, -1):
            shown = nan(t.bid_size if direction > 0 else t.ask_size)
            key = (t.symbol, direction)
            if key in resting:
                order, deadline = resting[key]
                leg, ended = None, False
                if t.ts >= deadline:
                    ended = True
                    if cross:
                        other = nan(t.ask_size if direction > 0 else t.bid_size)
                        qty = max(1.0, float(round(notional / mid)))
                        paid = slippage.price(direction, qty, bid, ask, mid, other)
                        leg = direction * (paid - mid) / mid * 1e4 + taker_bp
                elif order.on_row(t.ts, bid, ask, shown, nan(t.last), nan(t.last_size)):
                    ended = True
                    leg = direction * (order.price - mid) / mid * 1e4 + maker_bp
                if ended:
                    tally = counts.setdefault(t.symbol, [0, 0, 0]) if counts is not None else None
                    if tally is not None:
                        tally[0] += leg is not None
                        tally[1 if t.ts < deadline else 2] += 1
                    del resting[key]
                    if leg is not None:
                        legs[t.symbol] = n = legs.get(t.symbol, 0) + 1
                        m = mean.get(t.symbol, 0.0)
                        mean[t.symbol] = m + (leg - m) / min(n, span)
            own = bid if direction > 0 else ask
            leans = prob >= 0.5 + band if direction > 0 else prob <= 0.5 - band
            if key not in resting and own == own and leans:
                ahead = shown if shown == shown else math.inf
                resting[key] = (QueueOrder(direction, own, ahead, t.ts), t.ts + timeout_us)
        enough = legs.get(t.symbol, 0) >= min_legs
        out.append(2 * mean[t.symbol] if enough else math.nan)
    return out


@dataclass
class ProfileDetector:
    """The spread and move size against a time-of-day profile, one symbol
    (spark.drift.profile is its compiled form): fed each tick's UTC time (µs), ``spread_bp``
    and ``ret_bp``, returns the alarms raised: "spread_up", "move_up" (above the upper
    limit), "spread_down", "move_down" (below the lower one).

    ``profile``: per 30-minute bucket of the UTC day, (spread median, move median) or None;
    ``limits``: (upper spread, upper move, lower spread, lower move), None for none.
    ``locked``: "floor" (a locked or crossed quote enters the spread at 1e-7) or "skip" (it
    leaves the spread statistic as it was). ``lag`` (with ``slow``): the residual is taken
    against the slow mean as it was ``lag`` residuals before (the first one's, until then).

    >>> flat = [(math.log(2e-4), math.log(1e-4))] * 48
    >>> d = ProfileDetector(flat, (0.015, 0.1, -0.015, None), hold=2, slow=0, margin=1.0,
    ...                     warm=5)
    >>> [d.update(k, 2.0, 1.0 if k % 2 else -1.0) for k in range(10)].count([])
    10
    >>> [d.update(10 + k, 6.0, 1.0) for k in range(4)]  # the spread x3: its fast mean rises
    [[], [], ['spread_up'], []]
    >>> [d.update(14 + k, 0.5, 1.0) for k in range(30)].index(['spread_down'])  # then narrow
    5
    """

    profile: list
    limits: tuple
    hold: int
    slow: float
    margin: float
    warm: int
    locked: str = "floor"
    lag: int = 0
    fast_spread: float | None = None
    fast_move: float = 0.0
    moves: int = 0
    seen: int = 0
    slow_mean: list = field(default_factory=lambda: [None, None])
    runs: list = field(default_factory=lambda: [0, 0, 0, 0])
    fired: list = field(default_factory=lambda: [False] * 4)
    residuals: list = field(default_factory=lambda: [None, None])
    means_before: list = field(default_factory=lambda: [[], []])  # per residual, with a lag

    NAMES = ("spread_up", "move_up", "spread_down", "move_down")

    def update(self, ts_us: int, spread_bp: float, ret_bp: float) -> list[str]:
        if spread_bp > 0 or self.locked == "floor":
            x = math.log(max(spread_bp * 1e-4, 1e-7))
            self.fast_spread = (
                x
                if self.fast_spread is None
                else self.fast_spread + 2 / 201 * (x - self.fast_spread)
            )
        move = abs(ret_bp) * 1e-4 if self.seen > 0 else 0.0
        if move > 0:
            m = math.log(move)
            self.fast_move = (
                m if self.moves == 0 else self.fast_move + 2 / 21 * (m - self.fast_move)
            )
            self.moves += 1
        self.seen += 1
        base = self.profile[(ts_us % 86_400_000_000) // 1_800_000_000]
        alarms = []
        for j in range(2):
            value = self.fast_spread if j == 0 else (self.fast_move if self.moves else None)
            self.residuals[j] = None
            if value is None or base is None or base[j] is None:
                for k in (j, j + 2):
                    self.runs[k], self.fired[k] = 0, False
                continue
            r = value - base[j]
            if self.slow > 0:
                if self.slow_mean[j] is None:
                    self.slow_mean[j] = r
                reference = self.slow_mean[j]
                if self.lag:
                    past = self.means_before[j]
                    if past:
                        reference = past[max(len(past) - self.lag, 0)]
                    past.append(self.slow_mean[j])
                r, self.slow_mean[j] = (
                    r - reference,
                    self.slow_mean[j] + 2 / (self.slow + 1) * (r - self.slow_mean[j]),
                )
            self.residuals[j] = r
            for k in (j, j + 2):
                limit = self.limits[k]
                if limit is None:
                    beyond = False
                elif k < 2:
                    beyond = r > limit + math.log(self.margin)
                else:
                    beyond = r < limit - math.log(self.margin)
                if beyond:
                    self.runs[k] += 1
                else:
                    self.runs[k], self.fired[k] = 0, False
                if self.runs[k] >= self.hold and self.seen > self.warm and not self.fired[k]:
                    self.fired[k] = True
                    alarms.append(self.NAMES[k])
        return alarms
