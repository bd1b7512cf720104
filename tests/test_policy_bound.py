"""bench/policy_bound.py's arithmetic on hand-made quotes: what a perfect forecast earns
after the spread and fees, and the accuracy a sign forecaster needs."""

from __future__ import annotations

import numpy as np
import pytest

from bench.policy_bound import FEE_BP, day_figures


def test_a_perfect_forecast_pays_only_where_the_move_beats_the_spread_and_fees():
    # mid 100.00 with a 0.02 spread (2 bp); 1 s later it is 100.10 (+10 bp), then back
    ts = np.array([0, 1_000_000, 2_000_000, 3_000_000], np.int64)
    bid = np.array([99.99, 100.09, 99.99, 99.99])
    ask = np.array([100.01, 100.11, 100.01, 100.01])
    got = day_figures(ts, bid, ask, 1)
    assert got["ticks"] == 3  # the last tick's horizon runs past the day
    # tick 0: long earns (100.09 - 100.01) / 100 = 8 bp, less 2 fees of 0.5 bp
    # tick 1: short earns (100.09 - 100.01) / 100.10 = 7.992 bp, less 1 bp
    # tick 2: the mid does not move: any trade loses the spread and fees; no trade
    assert got["paying"] == 2 and got["still"] == 1
    assert got["best_sum"] == pytest.approx(7.0 + (0.08 / 100.10 * 1e4 - 2 * FEE_BP))
    assert got["move_sum"] == pytest.approx(10.0 + 0.10 / 100.10 * 1e4)
    # each round trip pays two half spreads (1 bp each here) and two fees
    assert got["cost_sum"] == pytest.approx(2.0 + 2.0 * 100 / 100.10 + 2.0 + 3 * 2 * FEE_BP)


def test_a_horizon_reads_the_last_quote_at_or_before_it():
    ts = np.array([0, 400_000, 900_000, 1_500_000], np.int64)
    bid = np.array([100.0, 101.0, 102.0, 103.0])
    ask = bid + 0.01
    got = day_figures(ts, bid, ask, 1)
    # tick 0's horizon ends at 1.0 s: the quote of 0.9 s (mid +2.00); tick 1's at 1.4 s: the
    # quote of 0.9 s too (+1.00); tick 2's at 1.9 s runs past the last tick (1.5 s)
    assert got["ticks"] == 2
    assert got["move_sum"] == pytest.approx(2.0 / 100.005 * 1e4 + 1.0 / 101.005 * 1e4)
