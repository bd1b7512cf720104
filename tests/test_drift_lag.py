"""bench/drift_self_rule.py's lagged reference (the sixth run, session 33, docs/drift.md):
with no lag it is the shipped residual; with a lag a step is seen whole for the lag."""

from __future__ import annotations

import numpy as np

from spark.drift.profile import _slow_dev, lagged_dev


def test_no_lag_is_the_shipped_residual_and_nans_are_skipped():
    rng = np.random.default_rng(7)
    x = rng.normal(size=4_000)
    x[rng.random(4_000) < 0.1] = np.nan
    got, shipped = lagged_dev(x, 500.0, 0), _slow_dev(x, 500.0)
    assert np.array_equal(np.isnan(got), np.isnan(shipped))
    assert np.array_equal(got[~np.isnan(got)], shipped[~np.isnan(shipped)])


def test_a_step_is_seen_whole_for_the_lag_then_followed():
    step = np.r_[np.zeros(10_000), np.ones(3_000)]
    lagged, following = lagged_dev(step, 5_000.0, 1_000), lagged_dev(step, 5_000.0, 0)
    assert np.all(lagged[10_000:11_001] == 1.0)  # against the mean before the step
    assert 0.8 < lagged[11_500] < 0.85  # then against a mean that has moved for 500 ticks
    assert following[10_000] == 1.0 and 0.66 < following[10_999] < 0.68  # the shipped form
    # NaNs do not count in the lag
    gappy = np.r_[np.zeros(10_000), np.full(50, np.nan), np.ones(1_000)]
    assert np.all(lagged_dev(gappy, 5_000.0, 1_000)[10_050:] == 1.0)
