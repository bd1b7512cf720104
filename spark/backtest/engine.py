"""Backtest: recorded ticks through exactly the live code, tick by tick, in event time.

Per tick: features (``TickFeatures``), the paper executor sees the quote
(fills of signals waiting for it), the model predicts and learns from
delayed labels (``Learner``), the drift gate observes (``GateKeeper``, unless
``gate`` is off), the signal policy decides, and a signal the gate lets
through goes to the executor (``PaperExecutor``), which fills it at a later
quote. The same objects run in the worker's agents, so a backtest is what
the live pipeline would have done on those ticks (up to Kafka's interleaving
of symbols, which the event-time executor makes irrelevant to fills).

Figures (docs/jobs.md): PnL (realized with fees, unrealized marked to mid),
fees, maximum drawdown of the equity curve, an annualised Sharpe ratio of
hourly equity changes, counts of signals, orders, fills and rejections, and
the model's AUC and precision@20 over the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields

from spark.drift.keeper import GateKeeper, keeper_settings
from spark.execution.paper import PaperExecutor
from spark.execution.risk import LIMIT_NAMES, ExecutionSettings, Limits, limits_from_env
from spark.features import TickFeatures
from spark.ml.evaluate import Learner
from spark.ml.models import DEFAULT_MODEL, MODELS, make_model
from spark.ml.signals import SignalPolicy
from spark.ticks.model import Tick

HOUR_US = 3_600_000_000
HOURS_PER_YEAR = 252 * 24  # annualisation of the hourly Sharpe ratio (documented approximation


class InvalidParams(ValueError):
    """Backtest parameters that cannot be used; the message says which and why."""

    reason = "invalid_params"


@dataclass(frozen=True)
class BacktestParams:
    """What a backtest runs; every field has the live worker's default."""

    model: str = DEFAULT_MODEL
    horizon_s: float = 1.0
    band: float = 0.1
    gate: bool = True
    order_notional: float = 100_000.0
    fee_bp: float = 0.5
    latency_ms: float = 20.0
    limits: dict[str, float] = field(default_factory=dict)  # over the configured limits

    @classmethod
    def from_dict(cls, given: dict) -> BacktestParams:
        """Parameters from a JSON object; InvalidParams names anything wrong."""
        if not isinstance(given, dict):
            raise InvalidParams("parameters must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise InvalidParams(f"unknown parameters {unknown}; known: {', '.join(sorted(known))}")
        values = {k: v for k, v in given.items() if k in known}
        params = cls(**values)
        params.check()
        return params

    def check(self) -> None:
        if self.model not in MODELS:
            raise InvalidParams(f"model must be one of {', '.join(MODELS)}, not {self.model!r}")
        for name in ("horizon_s", "order_notional", "fee_bp", "latency_ms", "band"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParams(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidParams(f"{name} must be a finite number >= 0, not {value!r}")
        if self.horizon_s <= 0 or self.order_notional <= 0:
            raise InvalidParams("horizon_s and order_notional must be > 0")
        if not 0 < self.band < 0.5:
            raise InvalidParams(f"band must be between 0 and 0.5, not {self.band!r}")
        if not isinstance(self.gate, bool):
            raise InvalidParams(f"gate must be true or false, not {self.gate!r}")
        if not isinstance(self.limits, dict):
            raise InvalidParams("limits must be an object of limit name -> number")
        for name, value in self.limits.items():
            if name not in LIMIT_NAMES:
                raise InvalidParams(f"unknown limit {name!r}; limits: {', '.join(LIMIT_NAMES)}")
            try:
                Limits().set(name, value)
            except (ValueError, TypeError) as exc:
                raise InvalidParams(str(exc)) from None

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class BacktestResult:
    params: dict
    ticks: int = 0
    symbols: int = 0
    signals: int = 0
    suppressed: int = 0
    orders: int = 0
    fills: int = 0
    rejected: int = 0
    no_change: int = 0  # signals whose target position was already held
    pending: int = 0  # signals still waiting for a later quote when the data ended
    rejections: dict[str, int] = field(default_factory=dict)
    pnl: float = 0.0
    realized_pnl: float = 0.0
    unrealized_pnl: float = 0.0
    fees: float = 0.0
    max_drawdown: float = 0.0
    sharpe: float = float("nan")
    hours: int = 0
    auc: float = float("nan")
    precision_at_20: float = float("nan")
    labels: int = 0
    seconds: float = 0.0
    equity_curve: list[tuple[int, float]] = field(default_factory=list)  # (hour start µs, equity)
    trades: list[dict] = field(default_factory=list)  # fills, in order

    def metrics(self) -> dict[str, float]:
        """The numeric figures (JobResult.metrics); NaN where undefined."""
        keys = (
            "ticks", "symbols", "signals", "suppressed", "orders", "fills", "rejected",
            "no_change", "pending", "pnl",
            "realized_pnl", "unrealized_pnl", "fees", "max_drawdown", "sharpe", "hours", "auc",
            "precision_at_20", "labels", "seconds",
        )  # fmt: skip
        return {k: float(getattr(self, k)) for k in keys}

    def summary(self) -> dict:
        """JSON-able figures (NaN as null) with the parameters and rejections by limit."""
        out = {k: (None if v != v else v) for k, v in self.metrics().items()}
        out["rejections"] = dict(self.rejections)
        out["params"] = self.params
        return out


def sharpe_ratio(equity_by_hour: list[float]) -> float:
    """Annualised Sharpe of hourly equity changes (risk-free 0); NaN below two changes."""
    changes = [b - a for a, b in zip(equity_by_hour, equity_by_hour[1:], strict=False)]
    if len(changes) < 2:
        return float("nan")
    mean = sum(changes) / len(changes)
    var = sum((c - mean) ** 2 for c in changes) / (len(changes) - 1)
    if var <= 0:
        return float("nan")
    return mean / math.sqrt(var) * math.sqrt(HOURS_PER_YEAR)


def run_backtest(
    ticks: Iterable[Tick],
    params: BacktestParams | None = None,
    on_tick: Callable[[int], None] | None = None,
    keep_trades: bool = True,
) -> BacktestResult:
    """Run ``params`` over ``ticks`` (time-ordered, validated); ``on_tick(n)`` for progress."""
    params = params or BacktestParams()
    started = time.monotonic()
    limits = limits_from_env()
    for name, value in params.limits.items():
        limits = limits.set(name, value)
    executor = PaperExecutor(
        ExecutionSettings(
            order_notional=params.order_notional,
            fee_bp=params.fee_bp,
            latency_ms=params.latency_ms,
        ),
        limits,
    )
    learner = Learner(make_model(params.model), params.horizon_s)
    keeper = GateKeeper(**keeper_settings()) if params.gate else None
    policy = SignalPolicy(params.band)
    books: dict[str, TickFeatures] = {}
    result = BacktestResult(params.as_dict())
    peak = 0.0
    hour = None
    curve: list[tuple[int, float]] = []

    def take(outputs) -> None:
        for kind, record in outputs:
            if kind == "fill":
                result.fills += 1
                result.fees += record["fee"]
                if keep_trades:
                    result.trades.append(record)
            elif kind == "order":
                result.orders += 1
            elif kind == "rejection":
                result.rejected += 1

    for tick in ticks:
        result.ticks += 1
        if on_tick is not None:
            on_tick(result.ticks)
        symbol, ts = tick.symbol, tick.ts
        book = books.get(symbol)
        if book is None:
            book = books[symbol] = TickFeatures()
        x = book.update(tick)
        if x is None:
            continue
        mid = book.prev_mid
        take(executor.on_quote(symbol, ts, book.prev_bid, book.prev_ask, mid))
        equity = executor.equity()
        peak = max(peak, equity)
        result.max_drawdown = max(result.max_drawdown, peak - equity)
        bucket = ts // HOUR_US
        if bucket != hour:
            if hour is None or bucket > hour:
                curve.append((bucket * HOUR_US, equity))
                hour = bucket
        else:
            curve[-1] = (curve[-1][0], equity)  # equity at the end of the hour so far
        p = learner.step(symbol, ts, mid, x)
        allowed = True
        if keeper is not None:
            keeper.observe(symbol, ts, x, learner.last_resolved, params.model, 1)
            allowed = keeper.allows(symbol)
        decision = policy.decide(symbol, p, commit=allowed)
        if decision is None:
            continue
        if not allowed:
            result.suppressed += 1
            continue
        result.signals += 1
        side, strength, _reason = decision
        take(
            executor.on_signal(
                {"symbol": symbol, "ts": ts, "side": side, "strength": strength,
                 "model_version": 1}
            )
        )  # fmt: skip

    positions = executor.positions.values()
    result.symbols = len(books)
    result.realized_pnl = sum(p.realized for p in positions)
    result.unrealized_pnl = sum(p.unrealized for p in positions)
    result.pnl = result.realized_pnl + result.unrealized_pnl
    result.rejections = dict(executor.rejections)
    result.no_change = executor.unchanged
    result.pending = sum(len(q) for q in executor.pending.values())
    result.equity_curve = curve
    result.hours = len(curve)
    result.sharpe = sharpe_ratio([0.0] + [e for _, e in curve])
    quality = learner.quality
    result.labels = len(quality)
    if len(quality):
        result.auc = quality.auc()
        result.precision_at_20 = quality.precision_at_20()
    result.seconds = time.monotonic() - started
    return result
