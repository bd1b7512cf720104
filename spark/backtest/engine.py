"""Backtest: recorded ticks through the SignalPipeline, exactly as the live worker runs them.

The ticks go through ``spark.pipeline.offline.OfflineRun``: one SignalPipeline per live
tick partition (symbols grouped as the tick topic groups them), stepped on chunks — the
same features, labels, learners, drift gate, signal policy and paper executor as the
worker, so a backtest is what the live pipeline computes on those ticks, record for
record (tests/test_parity.py checks it against a worker on the broker).

Figures (docs/jobs.md): PnL (realized with fees, unrealized marked to mid), fees, maximum
drawdown of the equity curve (equity after every tick), an annualised Sharpe ratio of
hourly equity changes, counts of signals, orders, fills and rejections, and the
champion's AUC and precision@20 over the run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, fields, replace

import numpy as np
from numba import njit

from spark.execution.costs import CostModelError, CostModels
from spark.execution.risk import LIMIT_NAMES, ExecutionSettings, Limits
from spark.ml.quality import exact_auc, precision_at_top
from spark.pipeline.batch import TickBatch
from spark.pipeline.offline import CHUNK, OfflineRun
from spark.pipeline.pipeline import StepResult, model_side
from spark.pipeline.records import all_records
from spark.settings import DEFAULT_MODEL, MODEL_NAMES, ModelSettings, Settings
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
    horizon_moves: int = ModelSettings.horizon_moves  # > 0: labels in event time (docs/ml.md)
    band: float = 0.1
    min_edge: float = ModelSettings.min_edge  # > 0: the cost-aware policy (docs/policy.md)
    min_hold_s: float = ModelSettings.min_hold_s
    gate: bool = True
    order_notional: float = 100_000.0
    fee_bp: float = 0.5  # taker
    latency_ms: float = 20.0
    limits: dict[str, float] = field(default_factory=dict)  # over the configured limits
    # cost and fill models (docs/costs.md); defaults as the live worker's
    maker_fee_bp: float = ExecutionSettings.maker_fee_bp
    fee_schedule: str = ExecutionSettings.fee_schedule
    latency_jitter_ms: float = ExecutionSettings.latency_jitter_ms
    slippage_bp: float = ExecutionSettings.slippage_bp
    depth_spreads: float = ExecutionSettings.depth_spreads
    fill_model: str = ExecutionSettings.fill_model
    passive_timeout_ms: float = ExecutionSettings.passive_timeout_ms
    passive_on_timeout: str = ExecutionSettings.passive_on_timeout

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
        if self.model not in MODEL_NAMES:
            raise InvalidParams(
                f"model must be one of {', '.join(MODEL_NAMES)}, not {self.model!r}"
            )
        for name in (
            "horizon_s",
            "order_notional",
            "fee_bp",
            "latency_ms",
            "band",
            "min_edge",
            "min_hold_s",
            "latency_jitter_ms",
            "slippage_bp",
            "depth_spreads",
            "passive_timeout_ms",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidParams(f"{name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise InvalidParams(f"{name} must be a finite number >= 0, not {value!r}")
        if self.horizon_s <= 0 or self.order_notional <= 0:
            raise InvalidParams("horizon_s and order_notional must be > 0")
        moves = self.horizon_moves
        if isinstance(moves, bool) or not isinstance(moves, int) or not 0 <= moves <= 1_000:
            raise InvalidParams(f"horizon_moves must be a whole number 0..1000, not {moves!r}")
        if not 0 < self.band < 0.5:
            raise InvalidParams(f"band must be between 0 and 0.5, not {self.band!r}")
        if self.min_edge >= 1_000 or self.min_hold_s >= 86_400:
            raise InvalidParams("min_edge must be below 1000 and min_hold_s below 86400")
        for name in ("fee_schedule", "fill_model", "passive_on_timeout"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > 2_000:
                raise InvalidParams(f"{name} must be a string of at most 2000 characters")
        maker = self.maker_fee_bp
        if isinstance(maker, bool) or not isinstance(maker, int | float):
            raise InvalidParams(f"maker_fee_bp must be a number, not {maker!r}")
        try:
            CostModels.from_settings(self._execution(ExecutionSettings()))
        except (CostModelError, TypeError, ValueError) as exc:
            raise InvalidParams(str(exc)) from None
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

    def _execution(self, base: ExecutionSettings) -> ExecutionSettings:
        """``base`` with what these parameters set."""
        return replace(
            base,
            order_notional=self.order_notional,
            fee_bp=self.fee_bp,
            latency_ms=self.latency_ms,
            maker_fee_bp=float(self.maker_fee_bp),
            fee_schedule=self.fee_schedule,
            latency_jitter_ms=self.latency_jitter_ms,
            slippage_bp=self.slippage_bp,
            depth_spreads=self.depth_spreads,
            fill_model=self.fill_model,
            passive_timeout_ms=self.passive_timeout_ms,
            passive_on_timeout=self.passive_on_timeout,
        )


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
    # what fills paid against the mid of their quote: (price - mid) x quantity for a buy,
    # (mid - price) x quantity for a sell; negative where passive fills earned the spread
    spread_cost: float = 0.0
    gross_pnl: float = 0.0  # pnl + fees + spread_cost: the PnL at mid, before costs
    traded_notional: float = 0.0
    break_even_edge_bp: float = float("nan")  # costs per round trip, bp of its notional
    edge_bp: float = float("nan")  # gross PnL per round trip, bp of its notional
    max_drawdown: float = 0.0
    sharpe: float = float("nan")
    hours: int = 0
    auc: float = float("nan")
    precision_at_20: float = float("nan")
    labels: int = 0
    seconds: float = 0.0
    taker_fills: int = 0
    maker_fills: int = 0  # passive orders filled by queue position
    unfilled: int = 0  # passive orders cancelled unfilled at their timeout
    working: int = 0  # passive orders still resting when the data ended
    # passive fills under the cost-aware policy: the round trip it charged, measured on
    # shadow orders (spark.execution.passive_cost), mean over the ticks it was known at, bp
    passive_cost_bp: float = float("nan")
    cost_models: dict = field(default_factory=dict)  # which ran, with which figures
    equity_curve: list[tuple[int, float]] = field(default_factory=list)  # (hour start µs, equity)
    trades: list[dict] = field(default_factory=list)  # fills, in order

    def metrics(self) -> dict[str, float]:
        """The numeric figures (JobResult.metrics); NaN where undefined."""
        keys = (
            "ticks",
            "symbols",
            "signals",
            "suppressed",
            "orders",
            "fills",
            "rejected",
            "no_change",
            "pending",
            "pnl",
            "realized_pnl",
            "unrealized_pnl",
            "fees",
            "spread_cost",
            "gross_pnl",
            "traded_notional",
            "break_even_edge_bp",
            "edge_bp",
            "max_drawdown",
            "sharpe",
            "hours",
            "auc",
            "precision_at_20",
            "labels",
            "seconds",
            "taker_fills",
            "maker_fills",
            "unfilled",
            "working",
            "passive_cost_bp",
        )
        return {k: float(getattr(self, k)) for k in keys}

    def summary(self) -> dict:
        """JSON-able figures (NaN as null) with the parameters and rejections by limit."""
        out = {k: (None if v != v else v) for k, v in self.metrics().items()}
        out["rejections"] = dict(self.rejections)
        out["params"] = self.params
        out["cost_models"] = self.cost_models
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


@njit(cache=True)
def _equity_path(
    code, valid, mid, fill_tick, fill_code, fill_q, fill_avg, fill_realized, state, out
):
    """Equity after each valid tick: realized PnL plus every open position marked to its
    symbol's last mid; positions change at fills (their Position records, ``fill_*`` in
    tick order). ``state`` per symbol: quantity, average price, realized, mark; carried
    from chunk to chunk."""
    total = 0.0
    for s in range(state.shape[0]):
        total += state[s, 2] + (
            state[s, 0] * (state[s, 3] - state[s, 1]) if state[s, 0] != 0 else 0.0
        )
    f = 0
    for i in range(code.shape[0]):
        s = code[i]
        while f < fill_tick.shape[0] and fill_tick[f] == i:
            c = fill_code[f]
            total -= state[c, 2] + (
                state[c, 0] * (state[c, 3] - state[c, 1]) if state[c, 0] != 0 else 0.0
            )
            state[c, 0], state[c, 1], state[c, 2] = fill_q[f], fill_avg[f], fill_realized[f]
            state[c, 3] = mid[i]
            total += state[c, 2] + (
                state[c, 0] * (state[c, 3] - state[c, 1]) if state[c, 0] != 0 else 0.0
            )
            f += 1
        if not valid[i]:
            out[i] = np.nan
            continue
        if state[s, 0] != 0:
            total += state[s, 0] * (mid[i] - state[s, 3])
        state[s, 3] = mid[i]
        out[i] = total


def _settings(params: BacktestParams, base: Settings) -> Settings:
    limits = base.limits
    for name, value in params.limits.items():
        limits = limits.set(name, value)
    return replace(
        base.with_models(
            model=params.model,
            challengers=(),
            horizon_s=params.horizon_s,
            horizon_moves=params.horizon_moves,
            band=params.band,
            min_edge=params.min_edge,
            min_hold_s=params.min_hold_s,
        ),
        execution=params._execution(base.execution),
        limits=limits,
        gate=params.gate,
    )


def per_round_trip_bp(amount: float, traded_notional: float) -> float:
    """``amount`` per round trip, in bp of the round trip's notional: a round trip trades
    its notional twice. NaN when nothing traded."""
    return amount * 2e4 / traded_notional if traded_notional > 0 else math.nan


def run_backtest(
    ticks: TickBatch | Iterable[Tick],
    params: BacktestParams | None = None,
    on_tick: Callable[[int], None] | None = None,
    keep_trades: bool = True,
    settings: Settings | None = None,
    on_records: Callable[[list[tuple[int, str, dict]]], None] | None = None,
    chunk: int = CHUNK,
) -> BacktestResult:
    """Run ``params`` over ``ticks`` (time-ordered, valid: a TickBatch or Ticks);
    ``on_tick(n)`` reports progress; ``settings`` (default: the environment's) give
    everything ``params`` does not; ``on_records`` receives every record the pipelines
    produce (tick position, topic id, record) chunk by chunk, by tick. ``chunk``: ticks a
    step (the records never depend on it; the equity path's sums may, in the last bits)."""
    params = params or BacktestParams()
    return run_backtests(ticks, [params], on_tick, keep_trades, settings, on_records, chunk)[0]


def run_backtests(
    ticks: TickBatch | Iterable[Tick],
    params: list[BacktestParams],
    on_tick: Callable[[int], None] | None = None,
    keep_trades: bool = True,
    settings: Settings | None = None,
    on_records: Callable[[list[tuple[int, str, dict]]], None] | None = None,
    chunk: int = CHUNK,
) -> list[BacktestResult]:
    """``run_backtest`` of each of ``params``, which differ only in their policy (band,
    min_edge, min_hold_s), costs, fills and limits: the model is stepped once and each
    policy decides on its results (``SignalPipeline``'s variants), so each result equals its
    own ``run_backtest``'s to the last digit (a test) in a fraction of the time
    (docs/policy.md, session 32). ``on_records``: the first policy's records. Each result's
    ``seconds`` is the whole run's. InvalidParams if two of ``params`` differ in the model
    (model, horizon, gate). ``chunk``: as ``run_backtest``'s."""
    if not params:
        return []
    started = time.monotonic()
    batch = ticks if isinstance(ticks, TickBatch) else TickBatch.from_ticks(ticks)
    base = settings or Settings.from_env()
    chosen = [_settings(p, base) for p in params]
    if any(model_side(s) != model_side(chosen[0]) for s in chosen[1:]):
        raise InvalidParams(
            "backtests run together must share the model, horizon and gate; "
            "only the policy, costs, fills and limits may differ"
        )
    run = OfflineRun(chosen[0], variants=chosen[1:])
    tallies = [_Tally(p, s, batch) for p, s in zip(params, chosen, strict=True)]
    produced = []
    step = chunk
    for lo in range(0, len(batch), step):
        chunk = batch.take(lo, lo + step)
        for tally in tallies:
            tally.start(chunk)
        for idx, r in run.step(chunk):
            for tally, mine in zip(tallies, [r, *r.variants], strict=True):
                tally.take(lo, idx, mine)
            if on_records is not None:
                horizon_ms = run.settings.models.horizon_ms
                symbols = run.pipelines[run.partition(chunk.symbols[chunk.code[idx[0]]])].symbols
                produced += [
                    (lo + int(idx[i]), t, rec) for i, t, rec in all_records(r, symbols, horizon_ms)
                ]
        if on_records is not None:
            produced.sort(key=lambda r: r[0])
            on_records(produced)
            produced = []
        for tally in tallies:
            tally.end(lo, chunk)
        if on_tick is not None:
            on_tick(lo + len(chunk))
    out = []
    for k, tally in enumerate(tallies):
        executors = [pipeline.deciders()[k].executor for pipeline in run.pipelines.values()]
        out.append(tally.finish(batch, executors, keep_trades))
    seconds = time.monotonic() - started
    for result in out:
        result.seconds = seconds
    return out


def shared_runs(params: list[BacktestParams], settings: Settings | None = None) -> list[list[int]]:
    """The positions of ``params`` in groups that ``run_backtests`` can run together (the
    same model, horizon and gate), each group in the order given, groups by first member."""
    base = settings or Settings.from_env()
    groups: dict[Settings, list[int]] = {}
    for k, p in enumerate(params):
        groups.setdefault(model_side(_settings(p, base)), []).append(k)
    return list(groups.values())


def run_grouped(
    ticks: TickBatch | Iterable[Tick],
    params: list[BacktestParams],
    on_tick: Callable[[int], None] | None = None,
    keep_trades: bool = True,
    settings: Settings | None = None,
    on_group: Callable[[int], None] | None = None,
) -> list[BacktestResult]:
    """Each of ``params`` over ``ticks`` in as few model runs as they allow
    (``shared_runs``, then ``run_backtests`` per group): the results in the order given,
    each ``seconds`` its share of its model run. ``on_tick`` follows the first run;
    ``on_group(n)`` is called after each run with the number of results it gave."""
    batch = ticks if isinstance(ticks, TickBatch) else TickBatch.from_ticks(ticks)
    results: list = [None] * len(params)
    for n, group in enumerate(shared_runs(params, settings)):
        ran = run_backtests(
            batch,
            [params[i] for i in group],
            on_tick if n == 0 else None,
            keep_trades,
            settings,
        )
        for i, result in zip(group, ran, strict=True):
            result.seconds /= len(group)
            results[i] = result
        if on_group is not None:
            on_group(len(group))
    return results


class _Tally:
    """One policy's figures over a run, result by result (``run_backtests``)."""

    def __init__(self, params: BacktestParams, settings: Settings, batch: TickBatch) -> None:
        result = self.result = BacktestResult(params.as_dict())
        result.ticks, result.symbols = len(batch), len(batch.symbols)
        result.cost_models = CostModels.from_settings(settings.execution).describe()
        self.positions = np.zeros((len(batch.symbols), 4))  # quantity, avg price, realized, mark
        self.equity = np.full(len(batch), np.nan)
        self.scored_p, self.scored_y, self.scored_at, self.fills = [], [], [], []
        self.passive_sum, self.passive_n = 0.0, 0

    def start(self, chunk: TickBatch) -> None:
        self.code = chunk.code
        self.valid = np.zeros(len(chunk), np.bool_)
        self.mid = np.full(len(chunk), np.nan)
        self.moves = []  # (tick in chunk, order, symbol code, Position record) of every fill

    def take(self, lo: int, idx: np.ndarray, r: StepResult) -> None:
        """A pipeline's result for the chunk's ticks ``idx`` (the chunk starts at ``lo``)."""
        result, fills = self.result, self.fills
        self.valid[idx], self.mid[idx] = r.valid, r.quotes[:, 0]
        result.signals += len(r.signals)
        result.suppressed += sum(r.suppressed.values())
        if r.passive_cost is not None:
            known = r.passive_cost[~np.isnan(r.passive_cost)]
            self.passive_sum += float(known.sum())
            self.passive_n += len(known)
        if len(r.labels):
            champion = r.champion[r.labels.tick]
            self.scored_p.append(r.labels.p[np.arange(len(r.labels)), champion])
            self.scored_y.append(r.labels.y)
            self.scored_at.append(lo + idx[r.labels.tick])
        code = self.code
        for i, kind, record in r.executions:
            if kind == "order":
                result.orders += 1
            elif kind == "rejection":
                result.rejected += 1
            elif kind == "cancel":
                result.unfilled += 1
            elif kind == "fill":
                fills.append((lo + int(idx[i]), len(fills), record))
                direction = 1.0 if record["side"] == "BUY" else -1.0
                paid = direction * (record["price"] - r.quotes[i, 0]) * record["quantity"]
                result.spread_cost += paid
                if record.get("liquidity") == "maker":
                    result.maker_fills += 1
                else:
                    result.taker_fills += 1
                result.traded_notional += record["price"] * record["quantity"]
            elif kind == "position":
                self.moves.append((int(idx[i]), len(self.moves), code[idx[i]], record))

    def end(self, lo: int, chunk: TickBatch) -> None:
        moves = sorted(self.moves, key=lambda m: m[:2])
        _equity_path(
            chunk.code,
            self.valid,
            self.mid,
            np.array([m[0] for m in moves], np.int64),
            np.array([m[2] for m in moves], np.int64),
            np.array([m[3]["quantity"] for m in moves]),
            np.array([m[3]["avg_price"] for m in moves]),
            np.array([m[3]["realized_pnl"] for m in moves]),
            self.positions,
            self.equity[lo : lo + len(chunk)],
        )

    def finish(self, batch: TickBatch, executors: list, keep_trades: bool) -> BacktestResult:
        result, fills = self.result, self.fills
        fills.sort(key=lambda f: f[:2])
        result.fills = len(fills)
        result.fees = sum(f[2]["fee"] for f in fills)
        if keep_trades:
            result.trades = [f[2] for f in fills]
        if self.scored_y:
            order = np.argsort(np.concatenate(self.scored_at), kind="stable")
            p = np.concatenate(self.scored_p)[order]
            y = np.concatenate(self.scored_y)[order]
            result.labels = len(y)
            result.auc, result.precision_at_20 = exact_auc(p, y), precision_at_top(p, y)
        held = [p for ex in executors for p in ex.positions.values()]
        result.realized_pnl = sum(p.realized for p in held)
        result.unrealized_pnl = sum(p.unrealized for p in held)
        result.pnl = result.realized_pnl + result.unrealized_pnl
        result.gross_pnl = result.pnl + result.fees + result.spread_cost
        if result.traded_notional > 0:
            result.break_even_edge_bp = per_round_trip_bp(
                result.fees + result.spread_cost, result.traded_notional
            )
            result.edge_bp = per_round_trip_bp(result.gross_pnl, result.traded_notional)
        if self.passive_n:
            result.passive_cost_bp = self.passive_sum / self.passive_n
        for ex in executors:
            for name, count in ex.rejections.items():
                result.rejections[name] = result.rejections.get(name, 0) + count
        result.no_change = sum(ex.unchanged for ex in executors)
        result.pending = sum(len(q) for ex in executors for q in ex.pending.values())
        result.working = sum(len(ex.resting) for ex in executors)
        _curve(result, batch.ts, self.equity)
        return result


def _curve(result: BacktestResult, ts: np.ndarray, equity: np.ndarray) -> None:
    """Maximum drawdown over every tick's equity, and the hourly curve (equity at the end of
    each hour, hours in the order they first appear, a tick of an earlier hour ignored)."""
    ok = ~np.isnan(equity)
    values, times = equity[ok], ts[ok]
    if not len(values):
        result.sharpe = float("nan")
        return
    peak = np.maximum.accumulate(np.maximum(values, 0.0))
    result.max_drawdown = float(max((peak - values).max(), 0.0))
    bucket = times // HOUR_US
    current = np.maximum.accumulate(bucket)
    counted = bucket == current
    hours, last = np.unique(current[counted][::-1], return_index=True)
    last = np.count_nonzero(counted) - 1 - last
    curve_values = values[counted][last]
    result.equity_curve = [
        (int(h) * HOUR_US, float(e)) for h, e in zip(hours, curve_values, strict=True)
    ]
    result.hours = len(result.equity_curve)
    result.sharpe = sharpe_ratio([0.0] + [e for _, e in result.equity_curve])
