"""Scheduled releases: windows of time around them, in which a drift alarm is expected.

The profile part's limits are set by the tail of the train days, and that tail is a
release: the US payrolls report of 2014-05-02 (docs/drift.md, sessions 28 and 33). A
spread ×3 or the lagged form of the residual would be caught if the limits were not set
by it. Desks close trading around such releases anyway ("news blackout"). This module
gives the windows: the drift stage makes the gate rule's warnings inside them info
(``spark.drift.stage``), and ``spark.drift.profile.build_kind`` leaves the payrolls ones
out of the days it learns a kind's limits on (``quiet``; docs/drift.md, session 35).

One kind of release is known by rule: the US Employment Situation (payrolls), 08:30 New
York time, on the third Friday after the week (Sunday to Saturday) that holds the 12th of
the month before. That is the BLS's usual rule; it has exceptions (2014-01-10, a week later
than the rule; 2013-10-04, delayed by the shutdown). Any other release, or the published
schedule, comes from a calendar file (``read_calendar``): one release a line,
``when,name[,minutes before,minutes after]``, ``when`` ISO-8601 with its zone. A worker
takes them from ``SPARK_DRIFT_RELEASES`` (``Calendar.parse``): ``payrolls`` (the default),
``none``, or files, joined by commas (``payrolls,/etc/spark/releases.csv``).

The FX day's rollover (17:00 New York, every day; ``rollovers``) is a window too, for the
symbols whose kind of market has one (``KindEntry.rollover``, from 5 minutes before;
``spark drift profile --rollover``). Session 36 shipped the fx kind with 90 minutes (the
eighth run of bench/drift_self_rule.py); session 37's eleventh run, which also counts
switches inside the window, took it out, so the shipped file has none. The stage mutes it
unless SPARK_DRIFT_RELEASES is ``none``. No window mutes the break part: a
jump of a thousand usual moves, or a frozen feed, is not a release.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np

from spark.errors import SparkError

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


ROLLOVER = dt.time(17, 0)  # the FX day's rollover, New York time, every day
ROLLOVER_BEFORE_S = 300  # its window starts 5 minutes before


def rollovers(ts: np.ndarray, before_s: int, after_s: int) -> np.ndarray:
    """``windows``' form: from ``before_s`` before to ``after_s`` after the FX day's rollover
    (17:00 New York) on every day that can touch the times ``ts``; none if ``after_s`` is 0.
    Spreads widen there and stay wide until Asia opens (docs/drift.md, session 36)."""
    if not len(ts) or after_s <= 0:
        return np.zeros((0, 2), np.int64)
    day = dt.datetime.fromtimestamp(int(ts.min()) / 1e6, dt.UTC).date() - dt.timedelta(days=1)
    last = dt.datetime.fromtimestamp(int(ts.max()) / 1e6, dt.UTC).date() + dt.timedelta(days=1)
    out = []
    while day <= last:
        at = int(dt.datetime.combine(day, ROLLOVER, NEW_YORK).timestamp()) * 1_000_000
        out.append((at - before_s * 1_000_000, at + after_s * 1_000_000))
        day += dt.timedelta(days=1)
    return np.array(out, np.int64).reshape(-1, 2)


def inside(ts: np.ndarray, spans: np.ndarray) -> np.ndarray:
    """Per time of ``ts``: is it inside one of ``spans`` (``windows``' form, sorted)?"""
    if not len(spans):
        return np.zeros(len(ts), np.bool_)
    k = np.searchsorted(spans[:, 0], ts, side="right") - 1
    return (k >= 0) & (ts < spans[np.maximum(k, 0), 1])


class ReleasesError(SparkError):
    """A calendar of releases that cannot be used."""


def read_calendar(path: str | Path) -> np.ndarray:
    """A calendar file's windows ((k, 2) µs, sorted and merged): one release a line,
    ``when,name[,minutes before,minutes after]`` (the default window: BEFORE_S, AFTER_S);
    ``when`` is ISO-8601 with its zone (``2014-05-08T12:30:00Z``, ``...+02:00``). Blank
    lines, lines starting with ``#`` and a header line starting ``when`` are skipped."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ReleasesError(f"cannot read the calendar of releases {path}: "
                            f"{exc.strerror or exc}") from None  # fmt: skip
    spans = []
    for n, row in enumerate(csv.reader(text.splitlines()), 1):
        if not row or not row[0].strip() or row[0].lstrip().startswith("#"):
            continue
        if n == 1 and row[0].strip().lower() == "when":
            continue
        where = f"{path}, line {n}"
        try:
            when = dt.datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
        except ValueError:
            raise ReleasesError(f"{where}: {row[0].strip()!r} is not an ISO-8601 time "
                                "(e.g. 2014-05-08T12:30:00Z)") from None  # fmt: skip
        if when.tzinfo is None:
            raise ReleasesError(f"{where}: {row[0].strip()!r} has no zone; add one "
                                "(Z for UTC, or +02:00)")  # fmt: skip
        try:
            before, after = (
                (float(v) for v in row[2:4]) if len(row) >= 4 else (BEFORE_S / 60, AFTER_S / 60)
            )
        except ValueError:
            raise ReleasesError(f"{where}: minutes before and after must be numbers, "
                                f"not {row[2:4]}") from None  # fmt: skip
        if before < 0 or after <= 0:
            raise ReleasesError(f"{where}: minutes before must be >= 0 and after > 0")
        at = int(when.timestamp() * 1e6)
        spans.append((at - int(before * 60e6), at + int(after * 60e6)))
    return merged(np.array(spans, np.int64).reshape(-1, 2))


def merged(spans: np.ndarray) -> np.ndarray:
    """``spans`` sorted, overlapping ones joined (``inside`` needs them so)."""
    out: list[list[int]] = []
    for lo, hi in sorted(spans.tolist()):
        if out and lo <= out[-1][1]:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([lo, hi])
    return np.array(out, np.int64).reshape(-1, 2)


class Calendar:
    """The releases a worker mutes the gate rule in: the payrolls rule, calendar files; and
    (``rollover``) the FX day's rollover of each symbol whose kind of market has one
    (``spark.drift.profile.KindEntry.rollover``), unless SPARK_DRIFT_RELEASES is none."""

    def __init__(self, payrolls: bool = True, fixed: np.ndarray | None = None,
                 rollover: bool = True):  # fmt: skip
        self.payrolls = payrolls
        self.fixed = np.zeros((0, 2), np.int64) if fixed is None else fixed
        self.rollover = rollover

    @classmethod
    def parse(cls, value: str) -> Calendar:
        """A SPARK_DRIFT_RELEASES value: ``payrolls``, ``none``, or calendar files, joined
        by commas."""
        parts = [p.strip() for p in value.split(",") if p.strip()] or ["payrolls"]
        if "none" in (p.lower() for p in parts):
            if len(parts) > 1:
                raise ReleasesError("SPARK_DRIFT_RELEASES: none cannot be joined with others")
            return cls(False, rollover=False)
        files = [p for p in parts if p.lower() != "payrolls"]
        fixed = [read_calendar(f) for f in files]
        return cls(len(files) < len(parts), merged(np.concatenate([np.zeros((0, 2), np.int64),
                                                                    *fixed])))  # fmt: skip

    @property
    def empty(self) -> bool:
        return not self.payrolls and not len(self.fixed) and not self.rollover

    def windows(self, ts: np.ndarray) -> np.ndarray:
        """The windows (``windows``' form, merged) that can touch the times ``ts``."""
        rule = windows(ts) if self.payrolls else np.zeros((0, 2), np.int64)
        return merged(np.concatenate([rule, self.fixed]))
