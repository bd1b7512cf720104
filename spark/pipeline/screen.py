"""Prices far from their symbol's recent level: refused before they reach the features.

A contract-valid tick can still carry a price off by a factor (a decimal shifted, cents for
dollars, a fat finger): it would pass every absolute check and poison the features, the
labels and the executor's marks. Each symbol keeps a reference mid: the mid of its last
accepted tick (both sides: their mean; one side or a trade: that price). A tick any of whose
prices is further than ``band`` from the reference in log terms
(|ln(price / reference)| > ln(1 + band)) is refused as ``price_jump``. If
``relearn`` ticks in a row are refused, the last of them is accepted and its mid becomes
the reference: the market did move (or the reference was the bad one), and a symbol is
never refused for ever. The state (reference, refusals in a row) is the pipeline's, per
symbol slot, checkpointed with it, so a re-processed batch is screened the same way.

>>> import numpy as np
>>> ref, run = np.full(1, np.nan), np.zeros(1, np.int64)
>>> px = np.array([1.10, 1.11, 11.1, 1.12])  # the third is a decimal shifted
>>> keep, ratio = np.ones(4, np.bool_), np.zeros(4)
>>> screen(np.zeros(4, np.int64), px, px, np.full(4, np.nan), ref, run, np.log(1.5), 20,
...        keep, ratio)
>>> keep.tolist(), round(float(ratio[2]), 2), round(float(ref[0]), 2)
([True, True, False, True], 10.0, 1.12)
"""

from __future__ import annotations

import math

from numba import njit


@njit(cache=True)
def screen(slot, bid, ask, last, ref, run, limit, relearn, keep, ratio) -> None:
    """Screen a batch in tick order (module docstring): ``keep[i]`` False for a refused
    tick, ``ratio[i]`` its worst price / reference; ``ref``/``run`` per slot, updated."""
    for i in range(slot.shape[0]):
        s = slot[i]
        b, a, t = bid[i], ask[i], last[i]
        if not math.isnan(b) and not math.isnan(a):
            mid = (b + a) / 2
        elif not math.isnan(t):
            mid = t
        elif not math.isnan(b):
            mid = b
        else:
            mid = a
        if math.isnan(mid) or mid <= 0:
            continue
        r = ref[s]
        if not math.isnan(r):
            worst, far = 0.0, 1.0
            for p in (b, a, t):
                if not math.isnan(p) and p > 0:
                    d = abs(math.log(p / r))
                    if d > worst:
                        worst, far = d, p / r
            if worst > limit:
                run[s] += 1
                if run[s] < relearn:
                    keep[i] = False
                    ratio[i] = far
                    continue
        run[s] = 0
        ref[s] = mid
