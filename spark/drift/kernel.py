"""PSI drift detectors per symbol, compiled and stepped over a batch of feature rows.

Each detector watches one feature of one symbol: the Population Stability Index of a
sliding window of ``window`` values against a reference window (10 quantile bins of the
first ``window`` values), checked every ``check_every`` values; O(1) per value. After an
alarm the next ``window`` values become the new reference, so one shift raises one
alarm. Detectors can form a *confirmed* group: the group alarms when every member has
alarmed within ``within`` vectors of the others (the gate's default rule, docs/drift.md:
PSI on ``spread_bp`` confirmed by PSI on ``vol_bp``); a member's own alarms are not
reported. The readable definitions are in ``tests/oracles.py``; a test compares them
alarm by alarm.

``DetectorSet`` holds the configuration and every symbol's state in arrays;
``run(...)`` steps all detectors of each tick's symbol and returns the alarms as
(tick, detector or D + group, statistic).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

BINS = 10
FLOOR = 1e-4


@dataclass(frozen=True)
class Detector:
    feature: int  # column of the feature row
    window: int
    threshold: float
    check_every: int
    group: int = -1  # index of its confirmed group, -1 if it reports on its own


@njit(cache=True)
def _set_reference(values, edges, ref_share, counts) -> int:
    """Quantile bin edges of ``values`` (duplicates dropped) and each bin's share; returns
    the number of edges."""
    n = values.shape[0]
    ordered = np.sort(values)
    k_edges = 0
    for k in range(1, BINS):
        candidate = ordered[min(n - 1, (n * k) // BINS)]
        if k_edges == 0 or candidate != edges[k_edges - 1]:
            edges[k_edges] = candidate
            k_edges += 1
    counts[:] = 0
    for v in values:
        counts[np.searchsorted(edges[:k_edges], v, side="right")] += 1
    for b in range(BINS):
        ref_share[b] = max(counts[b] / n, FLOOR) if b <= k_edges else FLOOR
    counts[:] = 0
    return k_edges


@njit(cache=True)
def _update(value, window, threshold, check_every, ref, ring, ints, edges, ref_share, counts, stat):
    """One value into one detector; True on an alarm. ``ints``: values of the reference
    collected (-1 once monitoring), ring head, ring length, values since the last check,
    number of bin edges."""
    if ints[0] >= 0:  # collecting the reference
        ref[ints[0]] = value
        ints[0] += 1
        if ints[0] >= window:
            ints[4] = _set_reference(ref[:window], edges, ref_share, counts)
            ints[0] = -1
            ints[1] = ints[2] = ints[3] = 0
        return False
    k_edges = ints[4]
    b = np.searchsorted(edges[:k_edges], value, side="right")
    if ints[2] == window:  # drop the oldest
        counts[ring[ints[1]]] -= 1
        ring[ints[1]] = b
        ints[1] = (ints[1] + 1) % window
    else:
        ring[(ints[1] + ints[2]) % window] = b
        ints[2] += 1
    counts[b] += 1
    ints[3] += 1
    if ints[2] < window or ints[3] < check_every:
        return False
    ints[3] = 0
    n = ints[2]
    psi = 0.0
    for k in range(k_edges + 1):
        cur = max(counts[k] / n, FLOOR)
        psi += (cur - ref_share[k]) * math.log(cur / ref_share[k])
    stat[0] = psi
    if psi > threshold:
        ints[0] = 0  # learn a new reference from the values that follow
        return True
    return False


@njit(cache=True)
def run(slot, x, valid, reset, config, state, out_tick, out_det, out_stat):
    """Step every detector of each valid tick's symbol; returns the number of alarms. A
    symbol that starts fresh (``reset``) starts collecting new references."""
    feature, window, threshold, check_every, group, offset, within = config
    ref, ring, ints, edges, ref_share, counts, stat, group_count, group_last, group_stat = state
    n_det = feature.shape[0]
    n_groups = within.shape[0]
    alarms = 0
    for i in range(slot.shape[0]):
        s = slot[i]
        if reset[i]:
            ints[s] = 0
            stat[s] = 0.0
            group_count[s] = 0
            group_last[s] = -1
            group_stat[s] = 0.0
        if not valid[i]:
            continue
        for g in range(n_groups):
            group_count[s, g] += 1
        for d in range(n_det):
            lo, w = offset[d], window[d]
            fired = _update(
                x[i, feature[d]],
                w,
                threshold[d],
                check_every[d],
                ref[s, lo : lo + w],
                ring[s, lo : lo + w],
                ints[s, d],
                edges[s, d],
                ref_share[s, d],
                counts[s, d],
                stat[s, d : d + 1],
            )
            if not fired:
                continue
            g = group[d]
            if g < 0:
                out_tick[alarms], out_det[alarms], out_stat[alarms] = i, d, stat[s, d]
                alarms += 1
            else:
                group_last[s, d] = group_count[s, g]
        for g in range(n_groups):
            oldest, members, best = -1, 0, 0.0
            complete = True
            for d in range(n_det):
                if group[d] != g:
                    continue
                members += 1
                best = max(best, stat[s, d])
                if group_last[s, d] < 0:
                    complete = False
                elif oldest < 0 or group_last[s, d] < oldest:
                    oldest = group_last[s, d]
            if members == 0 or not complete or group_count[s, g] - oldest > within[g]:
                continue
            group_stat[s, g] = best
            for d in range(n_det):  # re-arm: every member must alarm again
                if group[d] == g:
                    group_last[s, d] = -1
            out_tick[alarms], out_det[alarms], out_stat[alarms] = i, n_det + g, best
            alarms += 1
    return alarms


class DetectorSet:
    """The configuration of a pipeline's PSI detectors and their state for every symbol."""

    def __init__(self, detectors: list[Detector], within: list[int]) -> None:
        self.detectors = detectors
        self.within = within
        windows = np.array([d.window for d in detectors], np.int64)
        offsets = np.concatenate([[0], np.cumsum(windows)[:-1]]).astype(np.int64)
        self.config = (
            np.array([d.feature for d in detectors], np.int64),
            windows,
            np.array([d.threshold for d in detectors], np.float64),
            np.array([d.check_every for d in detectors], np.int64),
            np.array([d.group for d in detectors], np.int64),
            offsets,
            np.array(within, np.int64),
        )
        self.span = int(windows.sum())
        self.state = self._empty(0)

    def _empty(self, symbols: int) -> tuple:
        d, g = len(self.detectors), len(self.within)
        return (
            np.zeros((symbols, self.span)),
            np.zeros((symbols, self.span), np.int8),
            np.zeros((symbols, d, 5), np.int64),
            np.zeros((symbols, d, BINS - 1)),
            np.zeros((symbols, d, BINS)),
            np.zeros((symbols, d, BINS), np.int64),
            np.zeros((symbols, d)),
            np.zeros((symbols, g), np.int64),
            np.full((symbols, d), -1, np.int64),
            np.zeros((symbols, g)),
        )

    @property
    def symbols(self) -> int:
        return self.state[0].shape[0]

    def grow(self, symbols: int) -> None:
        """Room for ``symbols`` symbols (new ones start collecting their reference)."""
        old = self.state
        new = self._empty(symbols)
        for a, b in zip(old, new, strict=True):
            b[: a.shape[0]] = a
        self.state = new

    def reset(self, rows: np.ndarray) -> None:
        """Forget the symbols in ``rows`` (their slots are reused)."""
        for a, blank in zip(self.state, self._empty(1), strict=True):
            a[rows] = blank[0]

    def step(self, slot, x, valid, reset=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(tick, detector or len(detectors) + group, statistic) of every alarm."""
        most = len(slot) * (len(self.detectors) + len(self.within))  # room for every alarm
        tick, det, stat = np.empty(most, np.int64), np.empty(most, np.int64), np.empty(most)
        reset = np.zeros(len(slot), np.bool_) if reset is None else reset
        count = run(slot, x, valid, reset, self.config, self.state, tick, det, stat)
        return tick[:count], det[:count], stat[:count]
