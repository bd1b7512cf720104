"""Scheduled releases: windows of time around them, in which a drift alarm is expected.

The profile part's limits are set by the tail of the train days, and that tail is a
release: the US payrolls report of 2014-05-02 (docs/drift.md, sessions 28 and 33). A
spread ×3 or the lagged form of the residual would be caught if the limits were not set
by it. Desks close trading around such releases anyway ("news blackout"). This module
gives the windows; ``spark.drift.profile.build_kind`` can leave them out of the days it
learns limits on (``quiet``), and the benches can leave the alarms inside them out of
the false alarms they count.

Only one kind of release is known here, by rule: the US Employment Situation (payrolls),
08:30 New York time, on the third Friday after the week (Sunday to Saturday) that holds the
12th of the month before. That is the BLS's usual rule; it has exceptions (2014-01-10, a
week later than the rule; 2013-10-04, delayed by the shutdown), so a live calendar should
be the published schedule. Measured, not shipped (session 35).
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import numpy as np

NEW_YORK = ZoneInfo("America/New_York")
BEFORE_S, AFTER_S = 300, 1800  # a window from 5 minutes before a release to 30 after


def payrolls_day(year: int, month: int) -> dt.date:
    """The day the payrolls report of the month before ``month`` comes out, by the rule."""
    ref_year, ref_month = (year, month - 1) if month > 1 else (year - 1, 12)
    twelfth = dt.date(ref_year, ref_month, 12)
    saturday = twelfth + dt.timedelta(days=(5 - twelfth.weekday()) % 7)  # the week's end
    first_friday = saturday + dt.timedelta(days=6)
    return first_friday + dt.timedelta(weeks=2)


def payrolls(start: dt.date, end: dt.date) -> list[dt.datetime]:
    """Every payrolls release (UTC) on a day from ``start`` to ``end``, both included."""
    out = []
    year, month = start.year, start.month
    while (year, month) <= (end.year, end.month):
        day = payrolls_day(year, month)
        if start <= day <= end:
            local = dt.datetime.combine(day, dt.time(8, 30), NEW_YORK)
            out.append(local.astimezone(dt.UTC))
        year, month = (year, month + 1) if month < 12 else (year + 1, 1)
    return sorted(out)


def windows(ts: np.ndarray, before_s: int = BEFORE_S, after_s: int = AFTER_S) -> np.ndarray:
    """(k, 2) int64 microseconds: [start, end) of each release window that can touch the
    times ``ts`` (microseconds since the epoch, UTC)."""
    if not len(ts):
        return np.zeros((0, 2), np.int64)
    lo = dt.datetime.fromtimestamp(int(ts.min()) / 1e6, dt.UTC).date()
    hi = dt.datetime.fromtimestamp(int(ts.max()) / 1e6, dt.UTC).date()
    at = [int(t.timestamp()) * 1_000_000 for t in payrolls(lo - dt.timedelta(days=31),
                                                          hi + dt.timedelta(days=31))]  # fmt: skip
    return np.array([(t - before_s * 1_000_000, t + after_s * 1_000_000) for t in at],
                    np.int64).reshape(-1, 2)  # fmt: skip


def inside(ts: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per time of ``ts``: is it inside one of ``spans`` (``windows``' form, sorted)?"""
    if not len(spans):
        return np.zeros(len(ts), np.bool_)
    k = np.searchsorted(spans[:, 0], ts, side="right") - 1
    return (k >= 0) & (ts < spans[np.maximum(k, 0), 1])
