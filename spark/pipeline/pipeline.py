"""SignalPipeline: the one place where the stages are composed (docs/hot-path.md).

A pipeline owns, per symbol, the feature state, the label queue, the drift detectors,
the gate and the signal side; and, for all its symbols, the learners (champion and
challengers) and the paper executor. ``step(batch)`` runs, over a TickBatch:

1. the compiled loop (``spark.pipeline.core``): features, labels, learning, predictions;
2. scores and promotions: each model's rolling AUC over its last 2,000 labels; every
   1,000 labels the promotion rule compares challengers with the champion, and a
   promoted challenger drives the signals from the next tick on;
3. the drift stage (``spark.drift.stage``): alerts, gates, and which ticks may signal;
4. the signal policy (``spark.ml.signals``) on the champion's probability;
5. the paper executor (``spark.execution.paper``) on quotes and signals.

It is pure: no Kafka, no clock, no randomness. The records of ``step(a + b)`` equal those
of ``step(a)`` then ``step(b)``, wherever a batch is cut; the live worker (one pipeline per
tick partition), ``spark backtest run``, ``spark model eval``, ``spark drift eval`` and
the optimizer all call it.

>>> from spark.ticks.model import Tick
>>> from spark.settings import Settings
>>> p = SignalPipeline(Settings().with_models(model="logreg"))
>>> ticks = [Tick("EURUSD", 1_000_000 * k, bid=1.1 + k * 1e-5, ask=1.1002 + k * 1e-5)
...          for k in range(1, 6)]
>>> r = p.step(TickBatch.from_ticks(ticks))
>>> int(r.valid.sum()), r.probs[:, 0].round(3).tolist()  # nothing learned yet at tick 2
(5, [0.5, 0.5, 0.5, 0.5, 0.5])
>>> r.labels.y.tolist()  # ticks 1..3 resolved by ticks 3..5 (H = 1 s): the mid went up
[1, 1, 1]
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from spark.drift.stage import DriftStage
from spark.execution.paper import PaperExecutor
from spark.features import kernel as features
from spark.ml.quality import exact_auc, precision_at_top
from spark.ml.signals import SIDES, SIGNAL, SUPPRESSED, decide
from spark.pipeline import core
from spark.pipeline.batch import TickBatch
from spark.pipeline.learners import Learners
from spark.settings import Settings

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
    features: np.ndarray  # (ticks, 48)
    quotes: np.ndarray  # (ticks, 3): mid, bid, ask after the tick (NaN: side unknown)
    probs: np.ndarray  # (ticks, models): each model's prob_up
    champion: np.ndarray  # index of the champion model at each tick
    models: list[tuple[str, int]]  # (model_id, version) of each column of probs
    labels: LabelEvents
    ties: int
    alerts: list[tuple[int, dict]] = field(default_factory=list)
    gates: list[tuple[int, dict]] = field(default_factory=list)
    signals: list[tuple[int, dict]] = field(default_factory=list)
    suppressed: dict[str, int] = field(default_factory=dict)
    executions: list[tuple[int, str, dict]] = field(default_factory=list)
    model_events: list[tuple[int, dict]] = field(default_factory=list)

    def role(self, m: int, i: int) -> str:
        return "champion" if self.champion[i] == m else "challenger"


class RollingScores:
    """Each model's last ROLLING (prob_up, label) pairs and its count of labels."""

    def __init__(self, models: int) -> None:
        self.p = np.zeros((models, ROLLING))
        self.y = np.zeros((models, ROLLING), np.int8)
        self.filled = 0
        self.at = 0
        self.labels = 0

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
            self.labels += k

    def window(self, m: int) -> tuple[np.ndarray, np.ndarray]:
        idx = (self.at - self.filled + np.arange(self.filled)) % ROLLING
        return self.p[m, idx], self.y[m, idx]

    def metrics(self, m: int) -> dict[str, float]:
        p, y = self.window(m)
        return {
            "auc": exact_auc(p, y),
            "precision_at_20": precision_at_top(p, y),
            "labels": float(self.labels),
        }


class SignalPipeline:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.symbols: list[str] = []  # slot -> symbol ("" = free)
        self.slot_of: dict[str, int] = {}
        self.free_slots: list[int] = []
        self.fstate, self.istate = features.new_state(0)
        self.last_ts = np.zeros(0, np.int64)  # each slot's latest tick
        self.last_side = np.zeros(0, np.int8)
        self.q_head = np.zeros(0, np.int64)
        self.q_tail = np.zeros(0, np.int64)
        self.q_mid = np.zeros(0)
        self.q_ties = np.zeros(0, np.int64)
        self.learners = Learners(settings.models)
        m = len(self.learners.slots)
        self.pool = core.new_pool(POOL_START, features.N_FEATURES, m)
        self.drift = DriftStage(settings.drift)
        self.executor = PaperExecutor(settings.execution, settings.limits)
        self.scores = RollingScores(m)
        self.next_promotion_check = PROMOTION_EVERY
        self.next_eviction_ts = 0

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
        self.last_ts = np.concatenate([self.last_ts, np.zeros(pad, np.int64)])
        self.last_side = np.concatenate([self.last_side, np.zeros(pad, np.int8)])
        self.q_head = np.concatenate([self.q_head, np.full(pad, core.NONE, np.int64)])
        self.q_tail = np.concatenate([self.q_tail, np.full(pad, core.NONE, np.int64)])
        self.q_mid = np.concatenate([self.q_mid, np.zeros(pad)])
        self.q_ties = np.concatenate([self.q_ties, np.zeros(pad, np.int64)])
        self.drift.grow(size)
        self.symbols += [""] * pad
        self.free_slots += list(range(size - 1, old, -1))
        return old

    # --- the step -----------------------------------------------------------------------------
    def step(self, batch: TickBatch) -> StepResult:
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
        ties_before = int(self.q_ties.sum())
        columns = (slot, batch.ts, batch.bid, batch.ask, batch.bid_size, batch.ask_size,
                   batch.last, batch.last_size)  # fmt: skip
        out = (x, quotes, valid, probs, ev_tick, ev_y, ev_p, ev_n)
        start = 0
        while True:
            labels = (self.settings.models.horizon_us, self.q_head, self.q_tail, self.q_mid,
                      self.q_ties, *self.pool)  # fmt: skip
            status, start = core.run(start, columns, (self.fstate, self.istate), labels,
                                     learners.arrays(), learners.forest, out)  # fmt: skip
            if status == core.DONE:
                break
            if status == core.STOP_POOL:
                self.pool = core.grow_pool(self.pool, len(self.pool[0]))
            else:
                learners.at_boundary()
        count = int(ev_n[0])
        events = LabelEvents(ev_tick[:count], ev_y[:count], ev_p[:count])
        if n:
            np.maximum.at(self.last_ts, slot[valid], batch.ts[valid])
        champion, model_events = self._score(events, n, batch.ts)
        result = StepResult(
            batch, slot, valid, x, quotes, probs, champion,
            [(s.model_id, s.version) for s in learners.slots], events,
            int(self.q_ties.sum()) - ties_before, model_events=model_events,
        )  # fmt: skip
        self._decide(result)
        if n:
            self._evict(int(batch.ts[valid].max()) if valid.any() else 0)
        return result

    def _score(self, events: LabelEvents, n: int, ts: np.ndarray) -> tuple[np.ndarray, list]:
        """Rolling scores, and a promotion check at every PROMOTION_EVERY labels (after all
        labels of the tick that reached it; a promoted model is champion from the next
        tick). Returns the champion of each tick and the model events."""
        champion = np.full(n, self.learners.champion, np.int64)
        out: list[tuple[int, dict]] = []
        done = 0
        while len(self.learners.slots) > 1:
            need = self.next_promotion_check - self.scores.labels
            if need > len(events) - done:
                break
            at = int(events.tick[done + need - 1])
            upto = done + int(np.searchsorted(events.tick[done:], at, side="right"))
            self.scores.add(events.p[done:upto], events.y[done:upto])
            done = upto
            self.next_promotion_check = (
                self.scores.labels // PROMOTION_EVERY + 1
            ) * PROMOTION_EVERY
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
                (tick, {"model_id": s.model_id, "version": s.version, "event": e,
                        "reason": reason, "ts": ts})
                for s, e in ((slot, "promoted"), (slots[champ], "demoted"))
            ]  # fmt: skip
        return []

    def _decide(self, r: StepResult) -> None:
        """Drift and gates, the signal policy, the paper executor."""
        n, ts = len(r.batch), r.batch.ts
        symbols = self.symbols
        if self.settings.gate:
            r.alerts, r.gates, allowed = self.drift.step(
                symbols=symbols, slot=r.slot, ts=ts, x=r.features, valid=r.valid,
                events=(r.labels.tick, r.labels.y, r.labels.p), champion=r.champion,
                models=r.models,
            )  # fmt: skip
        else:
            allowed = np.ones(n, np.bool_)
        p = r.probs[np.arange(n), r.champion]
        decision, side = np.zeros(n, np.int8), np.zeros(n, np.int8)
        band = self.settings.models.band
        decide(r.slot, r.valid, p, allowed, band, self.last_side, decision, side)
        if self.settings.gate:
            held = np.flatnonzero(decision == SUPPRESSED)
            r.suppressed = self.drift.count_suppressed(symbols, r.slot, held, r.gates)
        for i in np.flatnonzero(decision == SIGNAL).tolist():
            prob, name = float(p[i]), SIDES[side[i]]
            if name == "BUY":
                reason = f"prob_up {prob:.3f} >= {0.5 + band:.2f}"
            elif name == "SELL":
                reason = f"prob_up {prob:.3f} <= {0.5 - band:.2f}"
            else:
                reason = f"prob_up {prob:.3f} inside {0.5 - band:.2f}..{0.5 + band:.2f}"
            model_id, version = r.models[r.champion[i]]
            r.signals.append((i, {
                "symbol": symbols[r.slot[i]], "ts": int(ts[i]), "side": name,
                "strength": min(abs(prob - 0.5) * 2, 1.0), "model_id": model_id,
                "model_version": version, "reason": reason, "prob_up": prob, "emitted_at": None,
            }))  # fmt: skip
        r.executions = self.executor.on_ticks(
            symbols, self.slot_of, r.slot, ts, r.quotes[:, 1], r.quotes[:, 2], r.quotes[:, 0],
            r.valid, r.signals,
        )  # fmt: skip

    # --- bounded memory -----------------------------------------------------------------------
    def _evict(self, now: int) -> None:
        """Forget symbols idle for ``idle_evict_s`` of event time that hold no position and
        no waiting signal: their slot, state and queued vectors are reused. Checked when the
        latest event time passes a quarter of that period, so where batches end never
        matters."""
        period = round(self.settings.idle_evict_s * 1e6)
        if period <= 0 or now < self.next_eviction_ts:
            return
        self.next_eviction_ts = (now // (period // 4 + 1) + 1) * (period // 4 + 1)
        executor = self.executor
        idle = [
            s for s, symbol in enumerate(self.symbols)
            if symbol and self.last_ts[s] < now - period
            and not executor.pending.get(symbol)
            and not (symbol in executor.positions and executor.positions[symbol].quantity)
            and (symbol not in self.drift.gates or self.drift.gates[symbol].allows_signals)
        ]  # fmt: skip
        if not idle:
            return
        rows = np.array(idle)
        core.release(rows, self.q_head, self.q_tail, self.pool)
        self.fstate[rows], self.istate[rows] = features.new_state(len(rows))
        self.last_side[rows] = 0
        self.last_ts[rows] = 0
        self.q_mid[rows] = 0.0
        self.q_ties[rows] = 0
        names = [self.symbols[s] for s in idle]
        self.drift.forget(rows, names)
        for s, symbol in zip(idle, names, strict=True):
            del self.slot_of[symbol]
            self.symbols[s] = ""
            executor.forget(symbol)
        self.free_slots += idle
