"""Break detectors per symbol: a jump of the mid and a frozen quote, compiled, over a batch.

Both read one feature, ``ret_bp`` (the mid's log return since the symbol's previous tick),
and both are scale-free: a move is measured against the symbol's own moves, so the price
level does not matter, only a change no ordinary tick makes (docs/drift.md, session 14).
Same-level switches are the PSI rules' part of the gate.

* **jump**: ``|ret_bp|`` over the symbol's typical move size, an exponentially weighted
  mean of ``|ret_bp|`` over its non-zero moves (span ``move_span`` moves). A feed that
  switches instrument moves the mid by thousands of typical moves in one tick. On the
  real days of ``spark research drift`` no tick before a switch went above 100.
* **frozen**: the run of ticks without a mid change, times the symbol's rate of mid changes
  per tick (an exponentially weighted mean over ``rate_span`` ticks, which keeps decaying
  during the run, so the statistic peaks near rate_span / (2e)): the run in units of the
  usual gap between moves. It alarms once per run; a move re-arms it.

Neither says anything for the first ``warm`` ticks of a symbol. After a jump alarm the
symbol starts again (a new instrument has a new move size and rate), so one switch raises
one alarm. The readable definition is ``tests/oracles.BreakDetector``; a test compares
them alarm by alarm on real ticks.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from spark.settings import BreakSettings

JUMP, FROZEN = 0, 1
KINDS = ("jump", "frozen")  # the alert's detector names, in alarm-code order
# per-symbol state (doubles)
SIZE, MOVES, RATE, RUN, SEEN, FIRED = range(6)
N_STATE = 6


def config_of(settings: BreakSettings) -> np.ndarray:
    s = settings
    return np.array([s.jump, s.frozen, s.move_span, s.rate_span, s.warm], np.float64)


@njit(cache=True)
def _fresh(state) -> None:
    state[SIZE] = 0.0
    state[MOVES] = 0.0
    state[RATE] = 1.0
    state[RUN] = 0.0
    state[SEEN] = 0.0
    state[FIRED] = 0.0


@njit(cache=True)
def run(slot, ret, valid, reset, config, state, out_stat, out_tick, out_kind, out_value) -> int:
    """Step each valid tick's symbol; ``out_stat[i]`` gets tick i's (jump, frozen)
    statistics (0 while warming up); returns the number of alarms written to ``out_*``."""
    jump_at, frozen_at, move_span, rate_span, warm = config
    a_move, a_rate = 2.0 / (move_span + 1.0), 2.0 / (rate_span + 1.0)
    alarms = 0
    for i in range(slot.shape[0]):
        st = state[slot[i]]
        if reset[i]:
            _fresh(st)
        if not valid[i] or not math.isfinite(ret[i]):
            continue
        a = abs(ret[i])
        st[RUN] = 0.0 if a > 0 else st[RUN] + 1.0
        st[SEEN] += 1.0
        jump = frozen = 0.0
        if st[SEEN] > warm:
            if st[MOVES] > 0:
                jump = a / st[SIZE]
            frozen = st[RUN] * st[RATE]
        out_stat[i, JUMP], out_stat[i, FROZEN] = jump, frozen
        if jump > jump_at:
            out_tick[alarms], out_kind[alarms], out_value[alarms] = i, JUMP, jump
            alarms += 1
            _fresh(st)
            continue
        if frozen > frozen_at and st[FIRED] == 0.0:
            out_tick[alarms], out_kind[alarms], out_value[alarms] = i, FROZEN, frozen
            alarms += 1
            st[FIRED] = 1.0
        if a > 0:
            st[FIRED] = 0.0
            st[SIZE] = a if st[MOVES] == 0 else st[SIZE] + a_move * (a - st[SIZE])
            st[MOVES] += 1.0
        st[RATE] += a_rate * ((1.0 if a > 0 else 0.0) - st[RATE])
    return alarms


class BreakSet:
    """The break detectors' settings and every symbol's state."""

    def __init__(self, settings: BreakSettings) -> None:
        self.settings = settings
        self.config = config_of(settings)
        self.state = self._empty(0)

    @staticmethod
    def _empty(symbols: int) -> np.ndarray:
        state = np.zeros((symbols, N_STATE))
        state[:, RATE] = 1.0
        return state

    @property
    def symbols(self) -> int:
        return self.state.shape[0]

    def grow(self, symbols: int) -> None:
        new = self._empty(symbols)
        new[: self.symbols] = self.state
        self.state = new

    def reset(self, rows: np.ndarray) -> None:
        self.state[rows] = self._empty(1)[0]

    def restore(self, state: np.ndarray | None, symbols: int) -> None:
        """A checkpoint's state, or (None: a checkpoint from before the break rule) every
        one of ``symbols`` warming up afresh."""
        self.state = self._empty(symbols) if state is None else state

    def step(self, slot, ret, valid, reset=None) -> tuple[np.ndarray, ...]:
        """(tick, kind (JUMP/FROZEN), statistic) of every alarm, and every tick's
        statistics (n × 2)."""
        n = len(slot)
        if not len(ret) == len(valid) == n or (reset is not None and len(reset) != n):
            # the kernel does not check bounds: a short array would be read past its end
            raise ValueError(f"one slot, ret and valid per tick: {n}, {len(ret)}, {len(valid)}")
        stats = np.zeros((n, 2))
        tick, kind, value = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n)
        reset = np.zeros(n, np.bool_) if reset is None else reset
        count = run(
            slot,
            np.ascontiguousarray(ret, np.float64),
            valid,
            reset,
            self.config,
            self.state,
            stats,
            tick,
            kind,
            value,
        )
        return tick[:count], kind[:count], value[:count], stats
