"""The stall watchdog behind /health: each status, from the loop's own clocks and the lag."""

from __future__ import annotations

import pytest

from spark.stream.health import Watchdog


@pytest.mark.parametrize(
    "alive, ready, since_round, since_messages, lag, status",
    [
        (True, True, 0.5, 0.5, 100, "ok"),  # busy
        (True, True, 0.5, 3600, 0, "ok"),  # idle, nothing to read
        (True, True, 0.5, 61, 3, "stalled"),  # messages wait, none taken
        (True, True, 61, 61, 0, "stalled"),  # stuck inside a call
        (False, True, 0.5, 0.5, 0, "dead"),
        (True, False, 0.5, 300, 50, "starting"),  # restoring partitions takes its time
    ],
)
def test_statuses(alive, ready, since_round, since_messages, lag, status):
    now = 10_000.0
    got = Watchdog(60).assess(now, alive, ready, now - since_round, now - since_messages, lag)
    assert got["status"] == status
    assert bool(got["reason"]) == (status != "ok")
    assert got["lag"] == lag
