"""The signal policy: when a prediction becomes a trading signal.

Policy (documented in docs/streams-ml.md): with band θ (default 0.1), the
desired side is BUY when prob_up ≥ 0.5 + θ, SELL when prob_up ≤ 0.5 − θ, else
FLAT. A signal is emitted only when a symbol's desired side differs from the
last side emitted for it (initially FLAT), so the execution system sees
changes of intent, not a stream of repeats. Strength = |prob_up − 0.5| × 2.

Compiled and stepped over a batch (``decide``); the readable per-tick definition it
is tested against is ``tests/oracles.py``'s ``SignalPolicy``.

The cost-aware policy (``decide_costed``, on when ``SPARK_MIN_EDGE`` > 0; docs/policy.md)
asks more of an entry: the predicted edge of a side, β × |2·prob_up − 1| in bp, where β is
the symbol's fit of the mid's move over the horizon on the model's lean 2·prob_up − 1
(least squares through 0 over the labels resolved so far: ``spark.pipeline.core``), must
be positive and reach ``min_edge`` × the cost of a round trip (bp: for a taker the quote's
spread + two fees; for passive fills what shadow orders measured, ``spark.execution.
passive_cost``). A model whose leans do not come true has β ≤ 0 and never trades. A position is
left (FLAT) when the model turns against it (prob_up past the band on the other side) and
the other side does not pay; it is flipped when the other side pays. A position is held at
least ``min_hold`` µs of event time before it may change. Between those, it is held.

>>> import numpy as np
>>> p = np.array([0.55, 0.7, 0.72, 0.5])
>>> n = len(p); decision, side = np.zeros(n, np.int8), np.zeros(n, np.int8)
>>> decide(np.zeros(n, np.int64), np.ones(n, np.bool_), np.zeros(n, np.bool_), p,
...        np.ones(n, np.bool_), 0.1, np.zeros(1, np.int8), decision, side)
>>> [SIDES[s] if d == SIGNAL else None for d, s in zip(decision, side)]
[None, 'BUY', None, 'FLAT']
"""

from __future__ import annotations

from numba import njit

SIDES = ("FLAT", "BUY", "SELL")  # side codes of ``decide`` (0 = FLAT, a symbol's start)
NO_DECISION, SIGNAL, SUPPRESSED = 0, 1, 2


@njit(cache=True)
def decide(slot, valid, reset, prob_up, allowed, band, last_side, decision, side) -> None:
    """The policy over a batch: for each valid tick the desired side (codes of
    SIDES); where it differs from the symbol's last side sent, ``SIGNAL`` if the tick is
    ``allowed`` (and the side is remembered) else ``SUPPRESSED`` (not remembered). A symbol
    that starts fresh (``reset``) starts FLAT."""
    up, down = 0.5 + band, 0.5 - band
    for i in range(slot.shape[0]):
        s = slot[i]
        if reset[i]:
            last_side[s] = 0
        if not valid[i]:
            continue
        p = prob_up[i]
        want = 1 if p >= up else (2 if p <= down else 0)
        if want == last_side[s]:
            continue
        side[i] = want
        if allowed[i]:
            decision[i] = SIGNAL
            last_side[s] = want
        else:
            decision[i] = SUPPRESSED


@njit(cache=True)
def decide_costed(
    slot,
    valid,
    reset,
    prob_up,
    allowed,
    band,
    last_side,
    decision,
    side,
    costs,
    last_ts,
) -> None:
    """The cost-aware policy over a batch (module docstring). ``costs``: (ts, beta, bid,
    ask, mid, round-trip fees in bp per tick (passive: the whole measured round trip), the
    share of the spread a round trip pays, min_edge, min_hold µs); ``last_ts``: per slot,
    the event time of the last side sent."""
    ts, beta, bid, ask, mid, fees, spread_weight, min_edge, min_hold = costs
    up, down = 0.5 + band, 0.5 - band
    for i in range(slot.shape[0]):
        s = slot[i]
        if reset[i]:
            last_side[s] = 0
        if not valid[i]:
            continue
        p = prob_up[i]
        towards = 1 if p >= up else (2 if p <= down else 0)
        held = last_side[s]
        if towards == 0 or towards == held:
            continue
        cost = spread_weight * (ask[i] - bid[i]) / mid[i] * 1e4 + fees[i]
        edge = abs(2.0 * p - 1.0) * beta[i]
        if edge > 0 and edge >= min_edge * cost:  # NaN (no spread or fit yet) never pays
            want = towards
        elif held != 0:
            want = 0
        else:
            continue
        if held != 0 and ts[i] - last_ts[s] < min_hold:
            continue
        side[i] = want
        if allowed[i]:
            decision[i] = SIGNAL
            last_side[s] = want
            last_ts[s] = ts[i]
        else:
            decision[i] = SUPPRESSED
