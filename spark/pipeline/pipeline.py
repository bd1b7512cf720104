"""SignalPipeline: the one place where the stages are composed (docs/hot-path.md).

A pipeline owns, per symbol, the feature state, the label queue, the drift detectors and
the gate; for all its symbols, the learners (champion and challengers); and a
``Decider``: the signal side per symbol and the paper executor. ``step(batch)`` runs,
over a TickBatch:

1. the compiled loop (``spark.pipeline.core``): features, labels, learning, predictions;
2. scores and promotions: each model's rolling AUC over its last 2,000 labels; every
   1,000 labels the promotion rule compares challengers with the champion, and a
   promoted challenger drives the signals from the next tick on;
3. the drift stage (``spark.drift.stage``): alerts, gates, and which ticks may signal;
4. the signal policy (``spark.ml.signals``) on the champion's probability;
5. the paper executor (``spark.execution.paper``) on quotes and signals.

Steps 4 and 5 are the decider's. A research run may give the pipeline more deciders
(``variants``: other bands, edges, fills, costs, limits), each deciding on the same
steps 1–3, which then run once for all of them (``run_backtests``).

It is pure: no Kafka, no clock, no randomness. The records of ``step(a + b)`` equal those
of ``step(a)`` then ``step(b)``, wherever a batch is cut; the live worker (one pipeline per
tick partition), ``spark backtest run``, ``spark model eval``, ``spark drift eval`` and
the optimizer all call it.

>>> from spark.ticks.model import Tick
>>> from spark.settings import Settings
>>> p = SignalPipeline(Settings().with_models(model="logreg", horizon_moves=0))  # H = 1 s
>>> ticks = [Tick("EURUSD", 1_000_000 * k, bid=1.1 + k * 1e-5, ask=1.1002 + k * 1e-5)
...          for k in range(1, 6)]
>>> r = p.step(TickBatch.from_ticks(ticks))
>>> r.labels.y.tolist(), r.labels.tick.tolist()  # ticks 0..2 resolved by ticks 2..4: up
([1, 1, 1], [2, 3, 4])
>>> r.probs[:, 0].round(3).tolist()  # predicted before learning: 0.5 until the first label
[0.5, 0.5, 0.501, 0.635, 0.725]
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from spark.drift.stage import DriftStage
from spark.execution import passive_cost
from spark.execution.paper import PaperExecutor
from spark.execution.risk import Limits
from spark.features import kernel as features
from spark.ml.quality import exact_auc, precision_at_top
from spark.ml.signals import SIDES, SIGNAL, SUPPRESSED, decide, decide_costed
from spark.pipeline import core
from spark.pipeline.batch import TickBatch
from spark.pipeline.learners import Learners
from spark.pipeline.screen import screen
from spark.settings import ExecutionSettings, Settings

ROLLING = 2_000  # labels in each model's rolling scores
PROMOTION_EVERY = 1_000  # labels between promotion checks
POOL_START = 1_024


@dataclass
class LabelEvents:
    """Labels resolved in a step: the tick that resolved each, the label, and what each
    model had predicted for it."""

    tick: np.ndarray
    y: np.ndarray
    p: np.ndarray  # (labels, models)

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class StepResult:
    batch: TickBatch
    slot: np.ndarray  # the pipeline's symbol slot of each tick
    valid: np.ndarray  # the tick gave a feature vector
    features: np.ndarray  # (ticks, N_FEATURES)
    quotes: np.ndarray  # (ticks, 3): mid, bid, ask after the tick (NaN: side unknown)
    # (ticks, models): each model's move fit for the tick's symbol: the expected mid move over
    # the horizon (bp) is beta x (2 prob_up - 1) (NaN: fewer than 500 labels yet)
    beta: np.ndarray
    probs: np.ndarray  # (ticks, models): each model's prob_up
    champion: np.ndarray  # index of the champion model at each tick
    models: list[tuple[str, int]]  # (model_id, version) of each column of probs
    labels: LabelEvents
    ties: int
    reset: np.ndarray  # the tick's symbol came back after a long silence and started fresh
    symbols: list[str]  # slot -> symbol, as they were during the step
    alerts: list[tuple[int, dict]] = field(default_factory=list)
    gates: list[tuple[int, dict]] = field(default_factory=list)
    signals: list[tuple[int, dict]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
    executions: list[tuple[int, str, dict]] = field(default_factory=list)
    model_events: list[tuple[int, dict]] = field(default_factory=list)
    # ticks of the batch given to ``step`` refused by the price screen (spark.pipeline.screen):
    # (position in that batch, reason, detail); ``kept``: the positions of ``batch``'s ticks
    # in it (None: every tick was kept, ``batch`` is the one given)
    screened: list[tuple[int, str, str]] = field(default_factory=list)
    kept: np.ndarray | None = None
    # the measured cost of a passive round trip for the tick's symbol, bp (NaN: not yet);
    # only with the passive fill model under the cost-aware policy (else None)
    passive_cost: np.ndarray | None = None
    # what each of the pipeline's other deciders (``SignalPipeline(variants=...)``) made of the
    # same step: its own signals, suppressed, executions, gate records and passive costs
    variants: list[StepResult] = field(default_factory=list)

    def role(self, m: int, i: int) -> str:
        return "champion" if self.champion[i] == m else "challenger"


class RollingScores:
    """Each model's last ROLLING (prob_up, label) pairs, the labels scored in all (``total``)
    and each model's count (``labels``: a model added later starts at 0)."""

    def __init__(self, models: int) -> None:
        self.p = np.zeros((models, ROLLING))
        self.y = np.zeros((models, ROLLING), np.int8)
        self.filled = 0
        self.at = 0
        self.total = 0
        self.labels = np.zeros(models, np.int64)

    def add(self, p: np.ndarray, y: np.ndarray) -> None:
        """Append labels (``p``: (labels, models))."""
        for lo in range(0, len(y), ROLLING):
            chunk_p, chunk_y = p[lo : lo + ROLLING], y[lo : lo + ROLLING]
            k = len(chunk_y)
            idx = (self.at + np.arange(k)) % ROLLING
            self.p[:, idx] = chunk_p.T
            self.y[:, idx] = chunk_y
            self.at = (self.at + k) % ROLLING
            self.filled = min(self.filled + k, ROLLING)
            self.total += k
            self.labels += k

    def window(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        idx = (self.at - self.filled + np.arange(self.filled)) % ROLLING
        return self.p[m, idx], self.y[m, idx]

    def metrics(self, m: int) -> dict[str, float]:
        p, y = self.window(m)
        return {
            "auc": exact_auc(p, y),
            "precision_at_20": precision_at_top(p, y),
            "labels": float(self.labels[m]),
        }


def model_side(settings: Settings) -> Settings:
    """``settings`` without what only a ``Decider`` reads (the policy's band, min_edge and
    min_hold_s, the execution and the limits): two settings equal here step the same
    features, labels, models, champion and gates."""
    return replace(
        settings,
        models=replace(settings.models, band=0.1, min_edge=0.0, min_hold_s=0.0),
        execution=ExecutionSettings(),
        limits=Limits(),
    )


class Decider:
    """What turns a step's predictions into signals and orders for one set of policy
    settings: per symbol slot the last side sent and its time, the shadow orders that
    measure a passive round trip's cost (``spark.execution.passive_cost``); and the paper
    executor. A pipeline has one; a research run gives it more (``variants``), one per
    policy, so the model is stepped once for all of them (docs/policy.md, session 32)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.last_side = np.zeros(0, np.int8)
        self.last_ts = np.zeros(0, np.int64)  # event time of the last side sent
        self.passive = passive_cost.new_state(0)
        self.executor = PaperExecutor(settings.execution, settings.limits)
        # suppressed signals counted since each gate last opened: a variant's own (the
        # pipeline's decider counts in the gates themselves: None)
        self.gate_counts: dict[str, int] | None = None

    def grow(self, pad: int) -> None:
        self.last_side = np.concatenate([self.last_side, np.zeros(pad, np.int8)])
        self.last_ts = np.concatenate([self.last_ts, np.zeros(pad, np.int64)])
        self.passive = tuple(
            np.concatenate([a, b])
            for a, b in zip(self.passive, passive_cost.new_state(pad), strict=True)
        )

    def holds(self, symbol: str) -> bool:
        """A waiting signal, a resting order or a position of ``symbol``."""
        executor = self.executor
        position = executor.positions.get(symbol)
        return bool(
            executor.pending.get(symbol)
            or symbol in executor.resting
            or (position is not None and position.quantity)
        )

    def forget(self, rows: np.ndarray, names: list[str]) -> None:
        self.last_side[rows] = 0
        self.last_ts[rows] = 0
        passive_cost.clear(self.passive, rows)
        for symbol in names:
            self.executor.forget(symbol)
            if self.gate_counts is not None:
                self.gate_counts.pop(symbol, None)

    def _passive_costs(self, r: StepResult, symbols, models, prob_up: np.ndarray) -> np.ndarray:
        """Step the shadow orders over the batch: per tick, the measured cost of a passive
        round trip for its symbol (bp; NaN: not measured yet)."""
        n, b = len(r.batch), r.batch
        if models.fees.overrides:
            maker = np.array([models.fees.rate(s, "maker") for s in symbols])[r.slot]
            taker = np.array([models.fees.rate(s, "taker") for s in symbols])[r.slot]
        else:
            maker = np.full(n, models.fees.rate("", "maker"))
            taker = np.full(n, models.fees.rate("", "taker"))
        fill = models.fill
        timeout = round(fill.timeout_ms * 1000)
        slip, cross = models.slippage, fill.on_timeout == "cross"
        notional, band = self.settings.execution.order_notional, self.settings.models.band
        crossing = (float(slip.slippage_bp), float(slip.depth_spreads), float(notional))
        rule = (timeout, cross, *crossing, band, passive_cost.SPAN, float(passive_cost.MIN_LEGS))
        quotes = (r.quotes[:, 1], r.quotes[:, 2], r.quotes[:, 0])
        book = (b.bid_size, b.ask_size, b.last, b.last_size)
        batch = (r.slot, b.ts, r.valid, r.reset, *quotes, *book, prob_up)
        out = np.empty(n)
        passive_cost.step(batch, (maker, taker), rule, self.passive, out)
        return out

    def decide(self, r: StepResult, allowed: np.ndarray, symbols, slot_of, drift) -> None:
        """The signal policy on the champion's probability where ``allowed``, and the paper
        executor on the quotes and the signals: into ``r``'s signals, suppressed, executions
        and passive_cost."""
        n, ts = len(r.batch), r.batch.ts
        p = r.probs[np.arange(n), r.champion]
        decision, side = np.zeros(n, np.int8), np.zeros(n, np.int8)
        rule, models = self.settings.models, self.executor.costs
        band = rule.band
        mid, bid, ask = r.quotes[:, 0], r.quotes[:, 1], r.quotes[:, 2]
        if rule.min_edge > 0:
            hold_us = round(rule.min_hold_s * 1e6)
            beta = r.beta[np.arange(n), r.champion]
            if models.fill.passive:  # a round trip's spread cost and fees, measured
                fees = r.passive_cost = self._passive_costs(r, symbols, models, p)
            elif models.fees.overrides:  # round-trip fees per symbol, then per tick
                fees = np.array([models.round_trip_fee_bp(s) for s in symbols])[r.slot]
            else:
                fees = np.full(n, models.round_trip_fee_bp(""))
            weight = models.spread_weight
            costs = (ts, beta, bid, ask, mid, fees, weight, rule.min_edge, hold_us)
            decide_costed(
                r.slot, r.valid, r.reset, p, allowed, band, self.last_side, decision, side,
                costs, self.last_ts,
            )  # fmt: skip
        else:
            decide(r.slot, r.valid, r.reset, p, allowed, band, self.last_side, decision, side)
        if self.settings.gate:
            held = np.flatnonzero(decision == SUPPRESSED)
            r.suppressed = drift.count_suppressed(symbols, r.slot, held, r.gates, self.gate_counts)
        for i in np.flatnonzero(decision == SIGNAL).tolist():
            prob, name = float(p[i]), SIDES[side[i]]
            if rule.min_edge > 0:
                reason = _costed_reason(
                    prob, name, float(beta[i]), bid[i] , ask[i], mid[i], rule.min_edge,
                    float(fees[i]), weight,
                )  # fmt: skip
            elif name == "BUY":
                reason = f"prob_up {prob:.3f} >= {0.5 + band:.2f}"
            elif name == "SELL":
                reason = f"prob_up {prob:.3f} <= {0.5 - band:.2f}"
            else:
                reason = f"prob_up {prob:.3f} inside {0.5 - band:.2f}..{0.5 + band:.2f}"
            model_id, version = r.models[r.champion[i]]
            r.signals.append(
                (
                    i,
                    {
                        "symbol": symbols[r.slot[i]],
                        "ts": int(ts[i]),
                        "side": name,
                        "strength": min(abs(prob - 0.5) * 2, 1.0),
                        "model_id": model_id,
                        "model_version": version,
                        "reason": reason,
                        "prob_up": prob,
                        "emitted_at": None,
                    },
                )
            )
        b = r.batch
        r.executions = self.executor.on_ticks(
            symbols,
            slot_of,
            r.slot,
            ts,
            r.quotes[:, 1],
            r.quotes[:, 2],
            r.quotes[:, 0],
            r.valid,
            r.signals,
            (b.bid_size, b.ask_size, b.last, b.last_size),
        )


class SignalPipeline:
    def __init__(self, settings: Settings, variants: Sequence[Settings] = ()) -> None:
        self.settings = settings
        self.symbols: list[str] = []  # slot -> symbol ("" = free)
        self.slot_of: dict[str, int] = {}
        self.free_slots: list[int] = []
        self.fstate, self.istate = features.new_state(0)
        self.seq = 0  # ticks stepped so far
        # operator commands taken: "<command topic id>/<partition>" -> last offset
        # (spark.stream.commands); saved with the rest, so a restart takes each once
        self.commands_applied: dict[str, int] = {}
        self.last_seq = np.zeros(0, np.int64)  # each slot's latest tick number (-1: none)
        self.q_head = np.zeros(0, np.int64)
        self.q_tail = np.zeros(0, np.int64)
        self.q_mid = np.zeros(0)
        self.q_ties = np.zeros(0, np.int64)
        self.q_count = np.zeros(0, np.int64)  # each slot's mid moves (event-time labels)
        self.ref_mid = np.zeros(0)  # the price screen's reference mid (NaN: none yet)
        self.jumps = np.zeros(0, np.int64)  # ticks refused by it in a row
        # the policy's state and the paper executor (``Decider``); research runs may add
        # deciders of other policy settings that share this pipeline's model (``variants``)
        self.decider = Decider(settings)
        for other in variants:
            if model_side(other) != model_side(settings):
                raise ValueError(
                    "a variant may differ from the pipeline's settings only in its policy "
                    "(band, min_edge, min_hold_s), execution and limits"
                )
        self.variants = [Decider(other) for other in variants]
        for decider in self.variants:
            decider.gate_counts = {}
        self.learners = Learners(settings.models)
        m = len(self.learners.slots)
        # per slot and model, the move fit (spark.pipeline.core): running means of
        # move x lean and lean^2 (lean = 2 prob_up - 1), labels in them
        self.q_move = np.zeros((0, m, 3))
        self.pool = core.new_pool(POOL_START, features.N_FEATURES, m)
        self.drift = DriftStage(settings.drift, models=m)
        self.scores = RollingScores(m)
        self.next_promotion_check = PROMOTION_EVERY

    @property
    def executor(self) -> PaperExecutor:
        """The pipeline's own decider's paper executor."""
        return self.decider.executor

    def deciders(self) -> list[Decider]:
        return [self.decider, *self.variants]

    # --- symbols ----------------------------------------------------------------------------
    def _slots(self, batch: TickBatch) -> np.ndarray:
        """The pipeline slot of each of the batch's symbols (new ones get one)."""
        table = np.empty(len(batch.symbols), np.int64)
        for k, symbol in enumerate(batch.symbols):
            slot = self.slot_of.get(symbol)
            if slot is None:
                slot = self.free_slots.pop() if self.free_slots else self._grow()
                self.slot_of[symbol] = slot
                self.symbols[slot] = symbol
            table[k] = slot
        return table[batch.code] if len(batch) else np.zeros(0, np.int64)

    def _grow(self) -> int:
        old = len(self.symbols)
        size = max(8, old * 2)
        fstate, istate = features.new_state(size)
        fstate[:old], istate[:old] = self.fstate, self.istate
        self.fstate, self.istate = fstate, istate
        pad = size - old
        self.last_seq = np.concatenate([self.last_seq, np.full(pad, -1, np.int64)])
        self.q_head = np.concatenate([self.q_head, np.full(pad, core.NONE, np.int64)])
        self.q_tail = np.concatenate([self.q_tail, np.full(pad, core.NONE, np.int64)])
        self.q_mid = np.concatenate([self.q_mid, np.zeros(pad)])
        self.q_ties = np.concatenate([self.q_ties, np.zeros(pad, np.int64)])
        self.q_count = np.concatenate([self.q_count, np.zeros(pad, np.int64)])
        self.q_move = np.concatenate([self.q_move, np.zeros((pad, *self.q_move.shape[1:]))])
        self.ref_mid = np.concatenate([self.ref_mid, np.full(pad, math.nan)])
        self.jumps = np.concatenate([self.jumps, np.zeros(pad, np.int64)])
        for decider in self.deciders():
            decider.grow(pad)
        self.drift.grow(size)
        self.symbols += [""] * pad
        self.free_slots += list(range(size - 1, old, -1))
        return old

    # --- the step -----------------------------------------------------------------------------
    def step(self, batch: TickBatch) -> StepResult:
        screened, kept = [], None
        if self.settings.price_band > 0 and len(batch):
            batch, screened, kept = self._screen(batch)
        result, _ = self._step(batch)
        result.screened, result.kept = screened, kept
        return result

    def steps(self, batch: TickBatch) -> Iterator[StepResult]:
        """``step`` in pieces, for a caller with work of its own: where the batch reaches a
        swap point whose trees are still training, the ticks before it come back first, and
        the step goes on (and waits, if it must) only when the next piece is asked for. The
        stream loop encodes a piece's outputs while the refit finishes. The pieces' records
        are one step's (where a batch is cut never changes a record; a test). Every piece
        carries its ticks (``batch``, with their offsets); ``screened`` is on the first,
        ``kept`` on each (positions in the batch given; None: all of it, uncut)."""
        screened, kept = [], None
        if self.settings.price_band > 0 and len(batch):
            batch, screened, kept = self._screen(batch)
        done, total = 0, len(batch)
        while True:
            result, rest = self._step(batch, wait=False)
            cut = rest is not None or done > 0
            if cut or kept is not None:
                at = np.arange(done, done + len(result.batch))
                result.kept = kept[at] if kept is not None else at
            result.screened = screened if done == 0 else []
            done += len(result.batch)
            yield result
            if rest is None:
                assert done == total
                return
            batch = rest

    def _screen(self, batch: TickBatch) -> tuple[TickBatch, list, np.ndarray | None]:
        """The batch without the ticks the price screen refuses, and those."""
        slot = self._slots(batch)
        keep, ratio = np.ones(len(batch), np.bool_), np.zeros(len(batch))
        limit = math.log1p(self.settings.price_band)
        relearn = self.settings.price_relearn
        state = (self.ref_mid, self.jumps)
        screen(slot, batch.bid, batch.ask, batch.last, *state, limit, relearn, keep, ratio)
        if keep.all():
            return batch, [], None
        refused = np.flatnonzero(~keep)
        screened = [
            (
                i,
                "price_jump",
                f"a price {ratio[i]:.4g} x its symbol's reference mid; more than "
                f"{self.settings.price_band:g} away (SPARK_PRICE_BAND)",
            )
            for i in refused.tolist()
        ]
        kept = np.flatnonzero(keep)
        return batch.select(kept), screened, kept

    def _step(self, batch: TickBatch, wait: bool = True) -> tuple[StepResult, TickBatch | None]:
        """The batch stepped, and None; or (``wait`` False) the ticks before the first swap
        point that would wait for its trees stepped, and the ticks from it on."""
        n = len(batch)
        slot = self._slots(batch)
        learners = self.learners
        m = len(learners.slots)
        x = np.empty((n, features.N_FEATURES))
        quotes = np.full((n, 3), math.nan)
        valid = np.zeros(n, np.bool_)
        probs = np.zeros((n, m))
        room = len(self.pool[0]) - int(self.pool[5][1]) + n  # labels this step can resolve
        ev_tick, ev_y, ev_p = np.empty(room, np.int64), np.empty(room, np.int8), np.empty((room, m))
        ev_n = np.zeros(1, np.int64)
        reset = np.zeros(n, np.bool_)
        beta = np.full((n, m), math.nan)
        ties_before = int(self.q_ties.sum())
        columns = (
            slot,
            batch.ts,
            batch.bid,
            batch.ask,
            batch.bid_size,
            batch.ask_size,
            batch.last,
            batch.last_size,
        )
        out = (x, quotes, valid, probs, ev_tick, ev_y, ev_p, ev_n, reset, beta)
        seen = (self.seq, self.settings.idle_evict_ticks, self.last_seq)
        start = 0
        while True:
            labels = (
                self.settings.models.label_horizon,
                self.q_head,
                self.q_tail,
                self.q_mid,
                self.q_ties,
                self.q_move,
                self.q_count,
                *self.pool,
            )
            status, start = core.run(
                start,
                columns,
                (self.fstate, self.istate),
                labels,
                learners.arrays(),
                learners.forest,
                out,
                seen,
            )
            if status == core.DONE:
                break
            if status == core.STOP_POOL:
                self.pool = core.grow_pool(self.pool, len(self.pool[0]))
            elif not wait and start > 0 and learners.blocked():
                break
            else:
                learners.at_boundary()
        rest = None
        if start < n:  # stopped at a swap point still training: hand back ticks 0..start-1
            rest, batch, n, slot = batch.take(start, n), batch.take(0, start), start, slot[:start]
            x, quotes, valid, probs = x[:n], quotes[:n], valid[:n], probs[:n]
            reset, beta = reset[:n], beta[:n]
        count = int(ev_n[0])
        events = LabelEvents(ev_tick[:count], ev_y[:count], ev_p[:count])
        self.seq += n
        champion, model_events = self._score(events, n, batch.ts)
        result = StepResult(
            batch,
            slot,
            valid,
            x,
            quotes,
            beta,
            probs,
            champion,
            [(s.model_id, s.version) for s in learners.slots],
            events,
            int(self.q_ties.sum()) - ties_before,
            reset,
            self.symbols,
            model_events=model_events,
        )
        self._decide(result)
        self._evict()
        return result, rest

    def _score(self, events: LabelEvents, n: int, ts: np.ndarray) -> tuple[np.ndarray, list]:
        """Rolling scores, and a promotion check at every PROMOTION_EVERY labels (after all
        labels of the tick that reached it; a promoted model is champion from the next
        tick). Returns the champion of each tick and the model events."""
        champion = np.full(n, self.learners.champion, np.int64)
        out: list[tuple[int, dict]] = []
        done = 0
        while len(self.learners.slots) > 1:
            need = self.next_promotion_check - self.scores.total
            if need > len(events) - done:
                break
            at = int(events.tick[done + need - 1])
            upto = done + int(np.searchsorted(events.tick[done:], at, side="right"))
            self.scores.add(events.p[done:upto], events.y[done:upto])
            done = upto
            self.next_promotion_check = (self.scores.total // PROMOTION_EVERY + 1) * PROMOTION_EVERY
            promoted = self._maybe_promote(at, int(ts[at]))
            if promoted:
                champion[at + 1 :] = self.learners.champion
                out += promoted
        self.scores.add(events.p[done:], events.y[done:])
        return champion, out

    def _maybe_promote(self, tick: int, ts: int) -> list[tuple[int, dict]]:
        rule = self.settings.models
        slots = self.learners.slots
        champ = self.learners.champion
        mine = self.scores.metrics(champ)
        for m, slot in enumerate(slots):
            if slot.role != "challenger":
                continue
            theirs = self.scores.metrics(m)
            if min(mine["labels"], theirs["labels"]) < rule.promotion_min_labels:
                continue
            if math.isnan(mine["auc"]) or math.isnan(theirs["auc"]):
                continue
            if theirs["auc"] < mine["auc"] + rule.promotion_margin:
                continue
            reason = (
                f"rolling AUC {theirs['auc']:.4f} >= {mine['auc']:.4f} + "
                f"{rule.promotion_margin} over >= {rule.promotion_min_labels} labels"
            )
            slot.role, slots[champ].role = "champion", "challenger"
            return [
                (
                    tick,
                    {
                        "model_id": s.model_id,
                        "version": s.version,
                        "event": e,
                        "reason": reason,
                        "ts": ts,
                    },
                )
                for s, e in ((slot, "promoted"), (slots[champ], "demoted"))
            ]
        return []

    def _decide(self, r: StepResult) -> None:
        """Drift and gates, then each decider: the signal policy and the paper executor."""
        n = len(r.batch)
        if self.settings.gate:
            r.alerts, r.gates, allowed = self.drift.step(
                symbols=self.symbols,
                slot=r.slot,
                ts=r.batch.ts,
                x=r.features,
                valid=r.valid,
                events=(r.labels.tick, r.labels.y, r.labels.p),
                champion=r.champion,
                models=r.models,
                reset=r.reset,
            )
        else:
            allowed = np.ones(n, np.bool_)
        if not self.settings.trading:
            return
        # each variant's own copy of what a decider writes (the gate records' counts too)
        r.variants = [
            replace(
                r,
                gates=[(i, dict(record)) for i, record in r.gates],
                signals=[],
                suppressed={},
                executions=[],
                passive_cost=None,
                variants=[],
            )
            for _ in self.variants
        ]
        self.decider.decide(r, allowed, self.symbols, self.slot_of, self.drift)
        for decider, mine in zip(self.variants, r.variants, strict=True):
            decider.decide(mine, allowed, self.symbols, self.slot_of, self.drift)

    # --- registered models ----------------------------------------------------------------------
    def add_model(
        self, model_id: str, version: int, learned: tuple[dict, dict] | None = None
    ) -> int:
        """Run another model as a challenger from the next step (e.g. one registered by
        ``spark model train``); vectors already queued count as predicted at 0.5 by it."""
        m = self.learners.add(model_id)
        self.learners.slots[m].version = version
        if learned is not None:
            self.learners.adopt(m, *learned)
        ts, mid, x, p, following, free = self.pool
        self.pool = (ts, mid, x, np.hstack([p, np.full((len(p), 1), 0.5)]), following, free)
        fits = self.q_move
        self.q_move = np.concatenate([fits, np.zeros((len(fits), 1, 3))], axis=1)
        scores = RollingScores(m + 1)
        scores.p[:m], scores.y[:m] = self.scores.p, self.scores.y
        scores.p[m] = 0.5
        scores.y[m] = scores.y[0] if m else 0
        scores.filled, scores.at, scores.total = (
            self.scores.filled,
            self.scores.at,
            self.scores.total,
        )
        scores.labels[:m] = self.scores.labels
        self.scores = scores
        return m

    # --- one-off predictions (the HTTP API) ----------------------------------------------------
    def predict(self, asked) -> dict:
        """The champion's prob_up for feature values (name -> number) or for a Tick, whose
        features come from its symbol's live state, which is not changed."""
        if isinstance(asked, dict):
            x = np.array([asked[n] for n in features.FEATURE_NAMES], np.float64)
        else:
            slot = self.slot_of.get(asked.symbol)
            if slot is None:
                state, ints = features.new_state(1)
            else:
                state, ints = (
                    self.fstate[slot : slot + 1].copy(),
                    self.istate[slot : slot + 1].copy(),
                )
            x = np.zeros(features.N_FEATURES)
            nan = math.nan
            sides = [
                nan if v is None else float(v)
                for v in (
                    asked.bid,
                    asked.ask,
                    asked.bid_size,
                    asked.ask_size,
                    asked.last,
                    asked.last_size,
                )
            ]
            if not features.update(state[0], ints[0], asked.ts, *sides, x):
                raise ValueError("the tick gives no mid price")
        learners = self.learners
        m = learners.champion
        slot = learners.slots[m]
        prob = core.answer(
            learners.kind, learners.has_trees, learners.forest, learners.tree_range,
            learners.lin, m, x,
        )  # fmt: skip
        return {
            "prob_up": float(prob),
            "model_id": slot.model_id,
            "model_version": slot.version,
            "features": dict(zip(features.FEATURE_NAMES, x.tolist(), strict=True)),
        }

    # --- state ---------------------------------------------------------------------------------
    _ARRAYS = ("fstate", "istate", "last_seq", "last_side", "q_head", "q_tail", "q_mid", "q_ties")
    # added later: a checkpoint without them restores them empty
    _ARRAYS_SINCE_V2 = ("q_move", "last_ts", "ref_mid", "jumps", "q_count")
    _DECIDER = ("last_side", "last_ts")  # saved under these names, held by the decider

    def state(self) -> tuple[dict, dict[str, np.ndarray], bytes]:
        """Everything the pipeline holds: (JSON-able part, arrays, b""; before session 16 the
        last part held the ADWIN detectors pickled). ``from_state`` continues exactly where
        this one is, and reads the older form too. A research pipeline with ``variants``
        has no saved form (ValueError)."""
        if self.variants:
            raise ValueError("a pipeline with variants (a research run) is not saved")
        learners_meta, learners_arrays = self.learners.state()
        drift_meta, drift_arrays, concept = self.drift.state()
        meta = {
            "feature_set": features.FEATURE_SET,
            "settings": self.settings.as_dict(),
            "symbols": self.symbols,
            "free_slots": self.free_slots,
            "learners": learners_meta,
            "drift": drift_meta,
            "executor": self.executor.state(),
            "scores": {
                "filled": self.scores.filled,
                "at": self.scores.at,
                "total": self.scores.total,
                "labels": self.scores.labels.tolist(),
            },
            "next_promotion_check": self.next_promotion_check,
            "seq": self.seq,
            "commands_applied": self.commands_applied,
        }
        arrays = {
            name: getattr(self.decider if name in self._DECIDER else self, name)
            for name in self._ARRAYS + self._ARRAYS_SINCE_V2
        }
        arrays.update({f"pool.{k}": a for k, a in enumerate(self.pool)})
        arrays.update({f"passive.{k}": a for k, a in enumerate(self.decider.passive)})
        arrays.update({f"learners.{k}": a for k, a in learners_arrays.items()})
        arrays.update(drift_arrays)
        arrays["scores.p"], arrays["scores.y"] = self.scores.p, self.scores.y
        return meta, arrays, concept

    @classmethod
    def from_state(
        cls, meta: dict, arrays: dict[str, np.ndarray], concept: bytes
    ) -> SignalPipeline:
        self = cls(Settings.from_dict(meta["settings"]))
        self.symbols = list(meta["symbols"])
        self.slot_of = {s: k for k, s in enumerate(self.symbols) if s}
        self.free_slots = list(meta["free_slots"])
        for name in self._ARRAYS:
            setattr(self.decider if name in self._DECIDER else self, name, arrays[name].copy())
        size = len(self.symbols)
        fits = (size, len(self.learners.slots), 3)
        self.q_move = arrays["q_move"].copy() if "q_move" in arrays else np.zeros(fits)
        decider = self.decider
        decider.last_ts = (
            arrays["last_ts"].copy() if "last_ts" in arrays else np.zeros(size, np.int64)
        )
        self.ref_mid = arrays["ref_mid"].copy() if "ref_mid" in arrays else np.full(size, math.nan)
        self.jumps = arrays["jumps"].copy() if "jumps" in arrays else np.zeros(size, np.int64)
        self.q_count = arrays["q_count"].copy() if "q_count" in arrays else np.zeros(size, np.int64)
        self.pool = tuple(arrays[f"pool.{k}"].copy() for k in range(6))
        if "passive.0" in arrays:  # since session 19
            decider.passive = tuple(arrays[f"passive.{k}"].copy() for k in range(4))
        else:
            decider.passive = passive_cost.new_state(size)
        learned = {
            k.removeprefix("learners."): a.copy()
            for k, a in arrays.items()
            if k.startswith("learners.")
        }
        self.learners = Learners.from_state(meta["learners"], learned)
        self.drift.grow(len(self.symbols))
        self.drift.restore(
            meta["drift"],
            {k: a.copy() for k, a in arrays.items()},
            concept,
            self.symbols,
            [slot.model_id for slot in self.learners.slots],
        )
        self.executor.load(meta["executor"])
        self.scores.p, self.scores.y = arrays["scores.p"].copy(), arrays["scores.y"].copy()
        self.scores.filled, self.scores.at = meta["scores"]["filled"], meta["scores"]["at"]
        self.scores.total = meta["scores"]["total"]
        self.scores.labels = np.array(meta["scores"]["labels"], np.int64)
        self.next_promotion_check = meta["next_promotion_check"]
        self.seq = meta["seq"]
        self.commands_applied = dict(meta.get("commands_applied", {}))
        return self

    # --- bounded memory ---------------------------------------------------------------------
    def _evict(self) -> None:
        """Free the slots of symbols idle for more than ``idle_evict_ticks`` ticks that hold no
        position, no waiting signal and no gate that is not open. Such a symbol starts fresh
        if it returns whether or not it was freed (``spark.pipeline.core``), so freeing it
        between any two steps changes no record."""
        idle = self.settings.idle_evict_ticks
        candidates = np.flatnonzero((self.last_seq >= 0) & (self.seq - self.last_seq > idle))
        gone = [
            s
            for s in candidates.tolist()
            if not any(decider.holds(self.symbols[s]) for decider in self.deciders())
            and (
                self.symbols[s] not in self.drift.gates
                or self.drift.gates[self.symbols[s]].allows_signals
            )
        ]
        if not gone:
            return
        rows = np.array(gone)
        core.release(rows, self.q_head, self.q_tail, self.pool)
        self.fstate[rows], self.istate[rows] = features.new_state(len(rows))
        self.last_seq[rows] = -1
        self.q_mid[rows] = 0.0
        self.q_move[rows] = 0.0
        self.q_count[rows] = 0
        self.ref_mid[rows] = math.nan
        self.jumps[rows] = 0
        names = [self.symbols[s] for s in gone]
        for decider in self.deciders():
            decider.forget(rows, names)
        self.drift.forget(rows, names)
        self.symbols = list(self.symbols)  # a result of an earlier step keeps the old names
        for s, symbol in zip(gone, names, strict=True):
            del self.slot_of[symbol]
            self.symbols[s] = ""
        self.free_slots += gone


def _costed_reason(
    prob: float,
    side: str,
    beta: float,
    bid: float,
    ask: float,
    mid: float,
    k: float,
    fees: float,
    spread_weight: float = 1.0,
) -> str:
    """Why the cost-aware policy sent ``side`` (its figures, in bp; ``fees``: a round
    trip's)."""
    spread = spread_weight * (ask - bid) / mid * 1e4
    cost = spread + fees
    edge = abs(2 * prob - 1) * beta
    if spread_weight:
        paid = f"spread {spread:.3f} + fees {fees:g}"
    else:  # passive: ``fees`` is the round trip measured on shadow orders
        paid = "passive, measured on shadow orders"
    figures = f"edge {edge:.3f}bp, cost {cost:.3f}bp ({paid})"
    if side == "FLAT":
        return f"prob_up {prob:.3f} turned against the position, {figures}: out"
    return f"prob_up {prob:.3f}: {figures}, edge >= {k:g} x cost"
