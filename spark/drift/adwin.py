"""ADWIN on prediction errors, per symbol and model, compiled: the drift stage's concept detectors.

ADWIN (Bifet and Gavaldà, 2007) keeps an exponential histogram of a stream: level ``i``
holds up to ``MAX_BUCKETS`` buckets (a total and a variance) of ``2**i`` values each; a
new value enters level 0, and a full level merges its two oldest buckets into one of the
next level. Every ``CLOCK`` values (once ``GRACE`` are in) it tries every cut of the window
into an older and a newer part, oldest buckets first, and drops the oldest bucket while
the two parts' means differ by more than the bound ε(δ); a drop is a detection. After a
detection the next value starts a fresh window, as ``river.drift.ADWIN`` does.

The arithmetic follows river's implementation step for step (the same operations in the
same order, in float64), so the detections, widths and estimations are river's own: a
test runs both on the same streams. Compiled, one batch of labels costs one call, not a
Python call per label and model (docs/hot-path.md).

State, one detector per (symbol slot, model): ``scal`` (total, variance, width),
``ints`` (clock tick, levels in use, detected at the last value), ``count`` (buckets per
level) and ``buckets`` (level, bucket, total/variance). A fresh detector is all zeros
with one level. ``LEVELS`` levels hold 5 × 2³¹ values, more than any window reaches;
the state is 3,376 bytes a detector.

``from_river`` reads the state of river's detector (its serialized bytes) into these
arrays: a checkpoint written before session 16 held river's detectors, pickled.
"""

from __future__ import annotations

import math
import struct

import numpy as np
from numba import njit

DELTA = 1e-4
CLOCK = 32
MAX_BUCKETS = 5
MIN_WINDOW = 5.0
GRACE = 10.0
LEVELS = 32
SLOTS = MAX_BUCKETS + 1  # a level briefly holds one bucket more before it merges
TOTAL, VARIANCE, WIDTH = 0, 1, 2
TICK, USED, DETECTED = 0, 1, 2
ARRAYS = ("scal", "ints", "count", "buckets")  # a checkpoint's names, drift.adwin.<name>
BYTES_PER_DETECTOR = 8 * (3 + 3 + LEVELS + LEVELS * SLOTS * 2)


@njit(cache=True)
def _fresh(scal, ints, count, buckets) -> None:
    scal[:] = 0.0
    ints[:] = 0
    ints[USED] = 1
    count[:] = 0
    buckets[:] = 0.0


@njit(cache=True)
def _drop(count, buckets, level, n) -> None:
    """Remove a level's ``n`` oldest buckets."""
    have = count[level]
    for k in range(n, have):
        buckets[level, k - n, 0] = buckets[level, k, 0]
        buckets[level, k - n, 1] = buckets[level, k, 1]
    for k in range(max(have - n, 0), have):
        buckets[level, k, 0] = 0.0
        buckets[level, k, 1] = 0.0
    count[level] = have - n


@njit(cache=True)
def _insert(value, scal, ints, count, buckets) -> None:
    buckets[0, count[0], 0] = value
    buckets[0, count[0], 1] = 0.0
    count[0] += 1
    width = scal[WIDTH] + 1.0
    scal[WIDTH] = width
    incremental = 0.0
    if width > 1.0:
        d = value - scal[TOTAL] / (width - 1.0)
        incremental = (width - 1.0) * d * d / width
    scal[VARIANCE] += incremental
    scal[TOTAL] += value
    level = 0
    while count[level] == MAX_BUCKETS + 1:  # full: merge its two oldest into the next level
        n1 = float(1 << level)
        t0, t1 = buckets[level, 0, 0], buckets[level, 1, 0]
        mu1, mu2 = t0 / n1, t1 / n1
        merged_var = (
            buckets[level, 0, 1] + buckets[level, 1, 1] + n1 * 0.5 * (mu1 - mu2) * (mu1 - mu2)
        )
        if level + 1 >= ints[USED]:
            ints[USED] = level + 2
        nxt = level + 1
        buckets[nxt, count[nxt], 0] = t0 + t1
        buckets[nxt, count[nxt], 1] = merged_var
        count[nxt] += 1
        _drop(count, buckets, level, 2)
        if count[nxt] <= MAX_BUCKETS:
            break
        level = nxt


@njit(cache=True)
def _delete_oldest(scal, ints, count, buckets) -> None:
    last = ints[USED] - 1
    n = float(1 << last)
    u, v = buckets[last, 0, 0], buckets[last, 0, 1]
    mu = u / n
    scal[WIDTH] -= n
    scal[TOTAL] -= u
    width = scal[WIDTH]
    mu_window = scal[TOTAL] / width
    scal[VARIANCE] -= v + n * width * (mu - mu_window) * (mu - mu_window) / (n + width)
    _drop(count, buckets, last, 1)
    if count[last] == 0:
        ints[USED] = last


@njit(cache=True)
def _cut(scal, n0, n1, delta_mean) -> bool:
    width = scal[WIDTH]
    delta_prime = math.log(2.0 * math.log(width) / DELTA)
    m_recip = 1.0 / (n0 - MIN_WINDOW + 1.0) + 1.0 / (n1 - MIN_WINDOW + 1.0)
    epsilon = (
        math.sqrt(2.0 * m_recip * (scal[VARIANCE] / width) * delta_prime)
        + 2.0 / 3.0 * delta_prime * m_recip
    )
    return abs(delta_mean) > epsilon


@njit(cache=True)
def _detect(scal, ints, count, buckets) -> bool:
    detected = False
    ints[TICK] += 1
    if ints[TICK] % CLOCK != 0 or not scal[WIDTH] > GRACE:
        return False
    again = True
    while again:
        again = False
        n0, n1, u0, u1 = 0.0, scal[WIDTH], 0.0, scal[TOTAL]
        stop = False
        for level in range(ints[USED] - 1, -1, -1):  # oldest buckets first
            size = float(1 << level)
            have = count[level]
            for k in range(have):
                n0 += size
                n1 -= size
                t = buckets[level, k, 0]
                u0 += t
                u1 -= t
                if level == 0 and k == have - 1:
                    stop = True
                    break
                delta_mean = (u0 / n0) - (u1 / n1)
                if n1 >= MIN_WINDOW and n0 >= MIN_WINDOW and _cut(scal, n0, n1, delta_mean):
                    again = True
                    detected = True
                    if scal[WIDTH] > 0.0:
                        _delete_oldest(scal, ints, count, buckets)
                        stop = True
                        break
            if stop:
                break
    return detected


@njit(cache=True)
def update(value, scal, ints, count, buckets) -> bool:
    """One value into one detector; True when it detects a change."""
    if ints[DETECTED]:
        _fresh(scal, ints, count, buckets)
    _insert(value, scal, ints, count, buckets)
    found = _detect(scal, ints, count, buckets)
    ints[DETECTED] = 1 if found else 0
    return found


@njit(cache=True)
def run(ev_slot, errors, lo, hi, scal, ints, count, buckets, out_e, out_m, out_v) -> int:
    """Events ``lo:hi`` (label events in tick order; ``errors``: each model's |p − y|) into
    the detectors of (their slot, each model). Writes (event, model, estimation, width) of
    every detection; returns how many."""
    found = 0
    for e in range(lo, hi):
        s = ev_slot[e]
        for m in range(errors.shape[1]):
            if update(errors[e, m], scal[s, m], ints[s, m], count[s, m], buckets[s, m]):
                width = scal[s, m, WIDTH]
                out_e[found] = e
                out_m[found] = m
                out_v[found, 0] = scal[s, m, TOTAL] / width if width else 0.0
                out_v[found, 1] = width
                found += 1
    return found


class AdwinSet:
    """Every (symbol slot, model) ADWIN detector of a pipeline, as arrays."""

    def __init__(self, models: int, symbols: int = 0) -> None:
        self.models = models
        self.state = self._empty(symbols)

    def _empty(self, symbols: int) -> tuple[np.ndarray, ...]:
        shape = (symbols, self.models)
        ints = np.zeros((*shape, 3), np.int64)
        ints[..., USED] = 1
        return (
            np.zeros((*shape, 3)),
            ints,
            np.zeros((*shape, LEVELS), np.int64),
            np.zeros((*shape, LEVELS, SLOTS, 2)),
        )

    @property
    def symbols(self) -> int:
        return self.state[0].shape[0]

    def grow(self, symbols: int) -> None:
        new = self._empty(symbols)
        for mine, old in zip(new, self.state, strict=True):
            mine[: old.shape[0]] = old
        self.state = new

    def reset(self, slots) -> None:
        """Fresh detectors for every model of these slots."""
        fresh = self._empty(1)
        for mine, empty in zip(self.state, fresh, strict=True):
            mine[slots] = empty[0]

    def step(self, ev_slot: np.ndarray, errors: np.ndarray, lo: int, hi: int):
        """Events ``lo:hi`` in; (event, model, estimation, width) of each detection out."""
        n = (hi - lo) * self.models
        out_e, out_m, out_v = np.empty(n, np.int64), np.empty(n, np.int64), np.empty((n, 2))
        if len(ev_slot) != len(errors) or errors.shape[1] != self.models or hi > len(ev_slot):
            raise ValueError(f"events {len(ev_slot)}, errors {errors.shape}, up to {hi}")
        if len(ev_slot) and ev_slot.max(initial=0) >= self.symbols:
            raise ValueError(f"slot {ev_slot.max()} of {self.symbols}")
        found = run(ev_slot, errors, lo, hi, *self.state, out_e, out_m, out_v)
        return out_e[:found], out_m[:found], out_v[:found]

    def arrays(self) -> dict[str, np.ndarray]:
        return {f"drift.adwin.{n}": a for n, a in zip(ARRAYS, self.state, strict=True)}

    def load(self, arrays: dict[str, np.ndarray]) -> bool:
        """A checkpoint's detectors; False if it has none (written before session 16)."""
        if f"drift.adwin.{ARRAYS[0]}" not in arrays:
            return False
        self.state = tuple(arrays[f"drift.adwin.{n}"] for n in ARRAYS)
        return True

    def put(self, slot: int, model: int, detector: tuple) -> None:
        for mine, value in zip(self.state, detector, strict=True):
            mine[slot, model] = value


def from_river(helper_bytes: bytes, detected: bool) -> tuple[np.ndarray, ...]:
    """One detector's arrays from river's ``AdaptiveWindowing`` serialized state (bincode:
    its fields in declaration order, little-endian, u64 lengths; then its settings again, as
    river 0.26 writes them). A layout other than that is refused, not guessed at."""
    at = 0

    def take(fmt: str):
        nonlocal at
        values = struct.unpack_from("<" + fmt, helper_bytes, at)
        at += struct.calcsize("<" + fmt)
        return values

    delta, clock, max_buckets, min_window, grace = take("dIQdd")
    if (delta, clock, max_buckets, min_window, grace) != (
        DELTA, CLOCK, MAX_BUCKETS, MIN_WINDOW, GRACE
    ):  # fmt: skip
        raise ValueError(f"an ADWIN with other settings: {delta, clock, max_buckets}")
    total, variance, width, _total_width = take("dddd")
    _n_buckets, _max_n_buckets, tick, _n_detections = take("iiii")
    (levels,) = take("Q")
    scal = np.array([total, variance, width])
    ints = np.array([tick, levels, int(detected)], np.int64)
    count = np.zeros(LEVELS, np.int64)
    buckets = np.zeros((LEVELS, SLOTS, 2))
    for level in range(levels):
        _max_size, current = take("QQ")
        for k in range(2):
            (n,) = take("Q")
            buckets[level, :n, k] = take(f"{n}d")
        count[level] = current
    if len(helper_bytes) - at == struct.calcsize("<dIQii"):  # river's Python-facing copy
        delta, clock, max_buckets, min_window, grace = take("dIQii")  # of the settings
        if (delta, clock, max_buckets, min_window, grace) != (DELTA, CLOCK, MAX_BUCKETS, 5, 10):
            raise ValueError(f"an ADWIN with other settings: {delta, clock, max_buckets}")
    if at != len(helper_bytes):
        raise ValueError("river's ADWIN state has a layout this version does not read")
    return scal, ints, count, buckets
