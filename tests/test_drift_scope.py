"""bench/drift_self_rule.py's eleventh run (session 37, docs/drift.md): what the rollover
window leaves out of a currency pair's held residuals, by scope, and nothing of a stock's."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

import bench.drift_self_rule as rule

US = 1_000_000


@pytest.fixture
def pair_day():
    """Held residuals every minute of 2014-05-05 (US summer time: 17:00 New York is 21:00
    UTC), with the ticks from 20:55 to 22:30 UTC inside a 90-minute window."""
    start = int(dt.datetime(2014, 5, 5, tzinfo=dt.UTC).timestamp()) * US
    ts = start + np.arange(24 * 60) * 60 * US
    minute = np.arange(24 * 60)
    inside = (minute >= 20 * 60 + 55) & (minute < 22 * 60 + 30)
    high, low = np.ones((len(ts), 2)), -np.ones((len(ts), 2))
    return ts, (high, low), inside


@pytest.mark.parametrize(
    ("scope", "high_cols", "low_cols"),
    [("all", [0, 1], [0, 1]), ("spread", [0], [0]), ("up", [0, 1], []), ("spread up", [0], [])],
)
def test_each_scope_leaves_out_its_statistics_and_sides_in_the_window(
    pair_day, monkeypatch, scope, high_cols, low_cols
):
    ts, pair, inside = pair_day
    monkeypatch.setattr(rule, "ROLLOVER_OF", 90)
    monkeypatch.setattr(rule, "SCOPE_OF", scope)
    high, low = rule.rolled(ts, pair, "EURUSD")
    for got, cols in ((high, high_cols), (low, low_cols)):
        for c in (0, 1):
            nan = np.isnan(got[:, c])
            assert nan.tolist() == (inside if c in cols else np.zeros_like(inside)).tolist()
    assert not np.isnan(pair[0]).any() and not np.isnan(pair[1]).any()  # copies
    monkeypatch.setattr(rule, "ROLLOVER_OF", 0)
    assert rule.rolled(ts, pair, "EURUSD") is pair  # no window: as it was
    monkeypatch.setattr(rule, "ROLLOVER_OF", 90)
    assert rule.rolled(ts, pair, "IBM") is pair  # a stock has none


def test_the_rule_weighs_both_placements_and_ties_go_to_the_most_left_out():
    """scope_rank: a setting that alarms before a switch at 17:00 does not qualify; more
    catches over both placements win; a tie goes to the scope that leaves the most out,
    then to the shorter window."""

    def row(scope, rollover, caught, caught_1700, false_1700=0, worst=0.0):
        def lines(n, false=0):
            return [{"instrument": "EURUSD", "caught": k < n, "false_alarm": k < false}
                    for k in range(16)]  # fmt: skip

        return {"scope": scope, "rollover": rollover,
                "train_day_worst_by_instrument": {"EURUSD": worst, "IBM": 9.0},
                "train": {"lines": lines(caught)},
                "train" + rule.AT_1700: {"lines": lines(caught_1700, false_1700)}}  # fmt: skip

    best = max([row("none", 0, 11, 11), row("all", 90, 12, 0), row("spread up", 90, 12, 9)],
                key=rule.scope_rank)  # fmt: skip
    assert (best["scope"], best["rollover"]) == ("none", 0)
    assert rule.scope_rank(row("all", 90, 16, 16, false_1700=1))[0] is False
    assert rule.scope_rank(row("all", 90, 16, 16, worst=1.2))[0] is False
    tie = [row("spread", 30, 12, 10), row("up", 60, 12, 10), row("up", 30, 12, 10)]
    best = max(tie, key=rule.scope_rank)
    assert (best["scope"], best["rollover"]) == ("up", 30)


def test_a_real_rollover_stream_switches_at_the_first_tick_of_17_new_york():
    """bench/drift_rollover_cost's real placement: the first tick at or after 17:00 New
    York (21:00 UTC in summer) with enough ticks before and after; none without them."""
    from bench.drift_rollover_cost import rollover_tick

    start = int(dt.datetime(2014, 5, 5, 20, tzinfo=dt.UTC).timestamp()) * US
    ts = start + np.arange(0, 3 * 3600, 7) * US  # 20:00 to 23:00 UTC, a tick every 7 s
    k = rollover_tick(ts, 10, 10)
    at = int(dt.datetime(2014, 5, 5, 21, tzinfo=dt.UTC).timestamp()) * US
    assert ts[k] >= at > ts[k - 1]
    assert rollover_tick(ts, k + 1, 10) is None  # not enough before it, and no later one
    assert rollover_tick(ts, 10, len(ts) - k + 1) is None  # not enough after it


def test_the_twelfth_rule_weighs_real_rollovers_and_a_tie_goes_to_flat():
    def row(shape, caught, at_rollover, worst=0.0, false=0):
        def lines(n, count, false=0):
            return [{"instrument": "NZDUSD", "caught": k < n, "false_alarm": k < false}
                    for k in range(count)]  # fmt: skip

        return {"shape": shape, "train_day_worst_by_instrument": {"NZDUSD": worst},
                "train": {"lines": lines(caught, 16)},
                "train" + rule.AT_ROLLOVER: {"lines": lines(at_rollover, 12, false)}}  # fmt: skip

    assert max([row("kind", 11, 11), row("flat", 11, 11)], key=rule.real_rank)["shape"] == "flat"
    assert max([row("kind", 12, 11), row("flat", 11, 11)], key=rule.real_rank)["shape"] == "kind"
    assert rule.real_rank(row("kind", 16, 12, worst=1.49))[0] is False
    assert rule.real_rank(row("kind", 16, 12, false=1))[0] is False
    assert rule.base_role("train rollover") == rule.base_role("train 17:00") == "train"
