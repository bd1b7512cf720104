"""The compiled per-tick loop of a SignalPipeline: features → labels → learn → predict.

For every tick, in order (``run``):

1. the symbol's features (``spark.features.kernel.update``); a tick without a mid gives
   no vector and changes nothing;
2. its due labels, without look-ahead: the label of the vector made at t is the sign of
   (mid prevailing at t + H) − (mid at t), and the mid prevailing at t + H is certain only
   once a tick later than t + H arrives; so a queued vector resolves when such a tick
   comes, against the mid *before* that tick. Ties (mid unchanged) carry no label and are
   counted and dropped. Each label is learned by every model, and recorded as an event
   (the tick that resolved it, the label, and what each model predicted back then) for
   scores, drift and gates; every resolved vector, tie or not, also updates each model's
   move fit for the symbol: the move in bp against the model's lean 2p − 1 back then (the
   cost-aware policy's edge, ``spark.ml.signals``);
3. each model's prediction for this tick's vector;
4. the vector, its mid and the predictions join the symbol's label queue.

Model kinds: ``LINEAR`` (``spark.ml.linear``) and ``GBM`` (trees from
``spark.ml.trees``; until its first trees the model's own linear warm-up answers and
learns). A gbm model also appends every label to its window.

A symbol not seen for more than ``idle`` ticks of the pipeline starts fresh when it
returns: its feature state is reset and its queued vectors dropped (their labels would
span the gap), and the tick is marked in ``reset`` for the later stages (detectors,
signal side, concept drift). The pipeline may free an idle symbol's memory between steps;
the rule makes that invisible (docs/hot-path.md, bounded memory).

The loop stops early, before touching tick ``i``, when a model's label count reaches its
next refit or swap point, or when the queue's item pool is empty: the caller acts (starts
a refit, installs trees, grows the pool) and resumes at ``i``. Stops fall on tick
boundaries defined by label counts only, so where a batch ends never changes a result.

Queued vectors live in a pool of items shared by all symbols (``pool_*`` arrays, a free
list in ``pool_next``), each symbol's queue a linked list from ``q_head`` to ``q_tail``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from spark.features import kernel as features
from spark.ml import linear, trees

LINEAR, GBM = 0, 1
DONE, STOP_MODEL, STOP_POOL = 0, 1, 2
NONE = -1
MOVE_SPAN = 2_000.0  # labels in the running means of the move fit (then exponential)
MOVE_MIN_LABELS = 500  # labels a symbol's move fit needs before it is used
SAME = features.SAME_BP * 1e-4  # a label's mids this close (a share of the mid) are a tie
# gbm's prob_up: (1 - GBM_BLEND) x its trees + GBM_BLEND x its own online logreg, which keeps
# learning every label after the first trees (until them it answers alone, the warm-up).
# Chosen by bench/gbm_blend.py (session 34, the gbm benches' rule of session 27, on the train
# day-files): +0.0076 mean train AUC, below the trees alone on 0 of 16; test +0.0050.
GBM_BLEND = 0.25


@njit(cache=True)
def answer(kind, has_trees, forest, tree_range, lin, m, x) -> float:
    """Model ``m``'s prob_up for vector ``x``: logreg, or gbm's blend of its trees and its own
    logreg (its logreg alone until the first trees). The loop and the HTTP predict ask it."""
    if kind[m] == GBM and has_trees[m]:
        grown = trees.predict(forest, tree_range[m, 0], tree_range[m, 1], x)
        return (1.0 - GBM_BLEND) * grown + GBM_BLEND * linear.predict(lin[m], x)
    return linear.predict(lin[m], x)


@njit(cache=True)
def _learn(kind, lin, counts, gidx, has_trees, win_x, win_y, win_pos, m, x, y) -> None:
    linear.learn(lin[m], x, y)  # logreg, and gbm's own logreg (warm-up, then GBM_BLEND)
    if kind[m] == GBM:
        g = gidx[m]
        at = win_pos[g, 0]
        win_x[g, at] = x
        win_y[g, at] = y
        size = win_x.shape[1]
        win_pos[g, 0] = (at + 1) % size
        win_pos[g, 1] = min(win_pos[g, 1] + 1, size)
    counts[m] += 1


@njit(cache=True)
def _release(s, q_head, q_tail, pool_next, free) -> None:
    """Every vector queued for symbol ``s`` back to the free list."""
    item = q_head[s]
    while item != NONE:
        after = pool_next[item]
        pool_next[item] = free[0]
        free[0] = item
        free[1] += 1
        item = after
    q_head[s] = NONE
    q_tail[s] = NONE


@njit(cache=True)
def run(start, batch, feats, labels, models, forest, out, seen):
    """Process ticks ``start..`` of ``batch``; returns (status, next tick to process).
    ``seen``: (number of ticks before this batch, idle limit, each slot's last tick number)."""
    slot, ts, bid, ask, bid_size, ask_size, last, last_size = batch
    first_seq, idle, last_seq = seen
    fstate, istate = feats
    (
        horizon,
        q_head,
        q_tail,
        q_mid,
        q_ties,
        q_move,
        q_count,
        pool_ts,
        pool_mid,
        pool_x,
        pool_p,
        pool_next,
        free,
    ) = labels
    kind, lin, counts, gidx, has_trees, tree_range, win_x, win_y, win_pos, refit_at, swap_at = (
        models
    )
    x_out, quote_out, valid, p_out, ev_tick, ev_y, ev_p, ev_n, reset, move_out = out
    n_models = kind.shape[0]
    moves = -horizon  # a horizon < 0: |horizon| mid moves of the symbol (event time)
    for i in range(start, slot.shape[0]):
        for m in range(n_models):
            if (swap_at[m] != NONE and counts[m] >= swap_at[m]) or (
                refit_at[m] != NONE and counts[m] >= refit_at[m]
            ):
                return STOP_MODEL, i
        if free[1] == 0:
            return STOP_POOL, i
        s = slot[i]
        seq = first_seq + i
        if last_seq[s] >= 0 and seq - last_seq[s] > idle:  # back after a long silence
            features.reset(fstate[s], istate[s])
            _release(s, q_head, q_tail, pool_next, free)
            q_mid[s] = 0.0
            q_move[s] = 0.0
            q_count[s] = 0
            reset[i] = True
        last_seq[s] = seq
        x = x_out[i]
        ok = features.update(
            fstate[s],
            istate[s],
            ts[i],
            bid[i],
            ask[i],
            bid_size[i],
            ask_size[i],
            last[i],
            last_size[i],
            x,
        )
        valid[i] = ok
        if not ok:
            continue
        mid = fstate[s, features.PREV_MID]
        if mid != q_mid[s]:
            q_count[s] += 1
        quote_out[i, 0] = mid
        quote_out[i, 1] = fstate[s, features.PREV_BID]
        quote_out[i, 2] = fstate[s, features.PREV_ASK]
        # the mid the labels due now resolve against: in clock time, the mid prevailing at
        # t + H (the one before this tick); in event time, the mid of this tick's move
        at = mid if moves > 0 else q_mid[s]
        item = q_head[s]
        while item != NONE and (
            pool_ts[item] + moves <= q_count[s] if moves > 0 else pool_ts[item] + horizon < ts[i]
        ):
            following = pool_next[item]
            # each model's move fit: move (bp, ties as 0) ~ beta x (2 p - 1), least squares
            # through 0 over running means of move x (2p - 1) and (2p - 1)^2
            moved = (at - pool_mid[item]) / pool_mid[item] * 1e4
            for m in range(n_models):
                fit = q_move[s, m]
                fit[2] += 1.0
                lean = 2.0 * pool_p[item, m] - 1.0
                rate = 1.0 / min(fit[2], MOVE_SPAN)
                fit[0] += (moved * lean - fit[0]) * rate
                fit[1] += (lean * lean - fit[1]) * rate
            if abs(at - pool_mid[item]) > SAME * pool_mid[item]:  # else a tie
                y = 1 if at > pool_mid[item] else 0
                e = ev_n[0]
                ev_tick[e] = i
                ev_y[e] = y
                ev_p[e] = pool_p[item]
                ev_n[0] = e + 1
                for m in range(n_models):
                    _learn(
                        kind,
                        lin,
                        counts,
                        gidx,
                        has_trees,
                        win_x,
                        win_y,
                        win_pos,
                        m,
                        pool_x[item],
                        y,
                    )
            else:
                q_ties[s] += 1
            pool_next[item] = free[0]  # back to the free list
            free[0] = item
            free[1] += 1
            item = following
        q_head[s] = item
        if item == NONE:
            q_tail[s] = NONE
        q_mid[s] = mid
        for m in range(n_models):
            fit = q_move[s, m]
            ok = fit[2] >= MOVE_MIN_LABELS and fit[1] > 0
            move_out[i, m] = fit[0] / fit[1] if ok else np.nan
        for m in range(n_models):
            p_out[i, m] = answer(kind, has_trees, forest, tree_range, lin, m, x)
        item = free[0]  # queue the vector for its label
        free[0] = pool_next[item]
        free[1] -= 1
        pool_ts[item] = q_count[s] if moves > 0 else ts[i]
        pool_mid[item] = mid
        pool_x[item] = x
        pool_p[item] = p_out[i]
        pool_next[item] = NONE
        if q_tail[s] == NONE:
            q_head[s] = item
        else:
            pool_next[q_tail[s]] = item
        q_tail[s] = item
    return DONE, slot.shape[0]


def release(slots: np.ndarray, q_head: np.ndarray, q_tail: np.ndarray, pool: tuple) -> None:
    """Return every vector queued for ``slots`` to the free list (symbols gone quiet)."""
    for s in slots.tolist():
        _release(s, q_head, q_tail, pool[4], pool[5])


def new_pool(size: int, n_features: int, models: int) -> tuple:
    """An item pool of ``size`` free items."""
    free = np.array([NONE, 0], np.int64)
    empty = (
        np.zeros(0, np.int64),
        np.zeros(0),
        np.zeros((0, n_features)),
        np.zeros((0, models)),
        np.zeros(0, np.int64),
        free,
    )
    return grow_pool(empty, size)


def grow_pool(pool: tuple, extra: int) -> tuple:
    """The pool arrays with ``extra`` more free items (the free list's head first)."""
    pool_ts, pool_mid, pool_x, pool_p, pool_next, free = pool
    size = pool_ts.shape[0]
    ts = np.concatenate([pool_ts, np.zeros(extra, np.int64)])
    mid = np.concatenate([pool_mid, np.zeros(extra)])
    x = np.concatenate([pool_x, np.zeros((extra, pool_x.shape[1]))])
    p = np.concatenate([pool_p, np.zeros((extra, pool_p.shape[1]))])
    following = np.concatenate([pool_next, np.arange(size + 1, size + extra + 1, dtype=np.int64)])
    following[-1] = free[0]  # the new items go in front of the old free list
    free = np.array([size, free[1] + extra], np.int64)
    return ts, mid, x, p, following, free
