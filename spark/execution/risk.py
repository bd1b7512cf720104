"""Pre-trade risk limits of the paper executor, and their settings.

Every limit is checked before every order (docs/executor.md):

* ``max_position_notional``: |position after the order| × mark, per symbol;
* ``max_gross_notional``: the sum over symbols of |position| × mark, after the order;
* ``max_orders_per_minute``: orders accepted in the last 60 s of event time;
* ``max_daily_drawdown``: today's (UTC, event time) equity high-water mark minus equity now.

An order that only reduces a position is never refused by the position, gross
notional or drawdown limits (refusing it would keep the risk on); the kill
switch refuses every order.

>>> limits = Limits()
>>> limits.set("max_orders_per_minute", 10).max_orders_per_minute
10.0
>>> limits.set("max_leverage", 2)
Traceback (most recent call last):
...
ValueError: unknown limit 'max_leverage'; limits: max_position_notional, max_gross_notional, \
max_orders_per_minute, max_daily_drawdown
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, replace

LIMIT_NAMES = (
    "max_position_notional",
    "max_gross_notional",
    "max_orders_per_minute",
    "max_daily_drawdown",
)
LIMIT_ENV = {name: f"SPARK_{name.upper()}" for name in LIMIT_NAMES}


@dataclass(frozen=True)
class Limits:
    """Risk limits; notional and drawdown in the quote currency (one currency is assumed)."""

    max_position_notional: float = 250_000.0
    max_gross_notional: float = 1_000_000.0
    max_orders_per_minute: float = 60.0
    max_daily_drawdown: float = 5_000.0

    def set(self, name: str, value: float) -> Limits:
        """A copy with limit ``name`` changed; a clear ValueError for a bad name or value."""
        if name not in LIMIT_NAMES:
            raise ValueError(f"unknown limit {name!r}; limits: {', '.join(LIMIT_NAMES)}")
        value = float(value)
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"limit {name} must be a finite number >= 0, not {value!r}")
        return replace(self, **{name: value})

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class ExecutionSettings:
    """How signals become paper orders and fills."""

    order_notional: float = 100_000.0  # target position size, quote currency
    fee_bp: float = 0.5  # taker fee per fill, basis points of the fill's notional
    latency_ms: float = 20.0  # a fill uses the first quote at least this long after the signal
    # quotes kept per symbol for signals that arrive after later quotes (the executor reads
    # quotes and signals from two topics; in a fast replay it can be thousands of quotes ahead)
    retain_quotes: int = 50_000
    # cost and fill models (spark.execution.costs, docs/costs.md)
    maker_fee_bp: float = 0.0  # passive fills; negative: a rebate
    fee_schedule: str = ""  # PATTERN=TAKER[/MAKER],... per symbol or venue:symbol
    latency_jitter_ms: float = 0.0
    slippage_bp: float = 0.0  # taker fills, bp of mid
    depth_spreads: float = 1.0  # spreads paid by the part of an order beyond the shown size
    # passive (or taker): chosen by `spark research select` (docs/policy.md, run 10)
    fill_model: str = "passive"
    passive_timeout_ms: float = 5_000.0
    passive_on_timeout: str = "cross"  # or cancel
    # a signal held back by earlier orders of its symbol that reaches its fill quote later
    # than this after it was made is refused (signal_expired; 0: no limit): twice the
    # passive timeout, docs/executor.md, session 31
    signal_ttl_ms: float = 10_000.0


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, not {raw!r}")
    return value


def limits_from_env() -> Limits:
    """Limits from ``SPARK_MAX_POSITION_NOTIONAL`` etc., defaults where unset."""
    defaults = Limits()
    return Limits(**{n: _env_float(LIMIT_ENV[n], getattr(defaults, n)) for n in LIMIT_NAMES})


def execution_from_env() -> ExecutionSettings:
    """Settings from ``SPARK_ORDER_NOTIONAL``, ``SPARK_FEE_BP``, ``SPARK_FILL_LATENCY_MS``."""
    d = ExecutionSettings()
    return ExecutionSettings(
        order_notional=_env_float("SPARK_ORDER_NOTIONAL", d.order_notional),
        fee_bp=_env_float("SPARK_FEE_BP", d.fee_bp),
        latency_ms=_env_float("SPARK_FILL_LATENCY_MS", d.latency_ms),
        retain_quotes=d.retain_quotes,
    )
