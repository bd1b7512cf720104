"""Scheduled release windows (spark.drift.releases, session 35): the payrolls days by the
BLS's rule, their windows in UTC, and the kind entry's limits learnt with them left out."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from spark.drift.profile import build_kind
from spark.drift.releases import AFTER_S, BEFORE_S, inside, payrolls, payrolls_day, windows
from tests.test_breaks import switches  # noqa: F401 (the fixture: a stream with a jump)

US = 1_000_000


@pytest.mark.parametrize(
    ("year", "month", "day"),
    [  # published release days the rule gives
        (2013, 10, dt.date(2013, 10, 4)),  # scheduled so; the shutdown delayed it
        (2014, 3, dt.date(2014, 3, 7)),
        (2014, 4, dt.date(2014, 4, 4)),
        (2014, 5, dt.date(2014, 5, 2)),  # the shared data's release (its train days)
        (2014, 6, dt.date(2014, 6, 6)),
    ],
)
def test_payrolls_day_by_the_rule(year, month, day):
    assert payrolls_day(year, month) == day
    assert day.weekday() == 4  # a Friday


def test_payrolls_are_at_half_past_eight_new_york_in_utc():
    got = payrolls(dt.date(2014, 3, 1), dt.date(2014, 5, 31))
    assert got == [  # 13:30 UTC before US summer time (it began on 2014-03-09), 12:30 after
        dt.datetime(2014, 3, 7, 13, 30, tzinfo=dt.UTC),
        dt.datetime(2014, 4, 4, 12, 30, tzinfo=dt.UTC),
        dt.datetime(2014, 5, 2, 12, 30, tzinfo=dt.UTC),
    ]
    assert payrolls(dt.date(2014, 5, 3), dt.date(2014, 6, 5)) == []


def test_a_window_runs_from_before_the_release_to_after_it():
    release = int(dt.datetime(2014, 5, 2, 12, 30, tzinfo=dt.UTC).timestamp()) * US
    ts = release + np.array([-BEFORE_S - 1, -BEFORE_S, 0, AFTER_S - 1, AFTER_S, 86_400]) * US
    spans = windows(ts)
    assert [release - BEFORE_S * US, release + AFTER_S * US] in spans.tolist()
    assert inside(ts, spans).tolist() == [False, True, True, True, False, False]
    assert not inside(ts, windows(ts[:0])).any()


def _day(date: dt.date, spike: slice | None, n: int = 40_000, seed: int = 0):
    """A made-up FX day: a quote every 0.5 s from 10:00 UTC, the mid a random walk on a
    0.00001 grid, the spread 1 or 2 steps; ``spike``: those ticks at 8 steps."""
    rng = np.random.default_rng(seed)
    start = int(dt.datetime.combine(date, dt.time(10), dt.UTC).timestamp()) * US
    ts = start + np.arange(n, dtype=np.int64) * 500_000
    mid = 1.3 + np.cumsum(rng.choice([-1, 0, 0, 1], n)) * 1e-5
    half = rng.choice([1, 2], n) * 0.5e-5
    if spike is not None:
        half[spike] = 4e-5
    return (date.isoformat(), ts, mid - half, mid + half)


def test_a_kind_learns_its_limits_without_the_release_windows():
    """A spread spike inside a payrolls window sets the upper spread limit; left out
    (``quiet``, by default), the limit is the everyday one, as if the spike were not
    there."""
    release = dt.date(2014, 5, 2)  # payrolls at 12:30 UTC: ticks 18,000.. from 10:00
    spiked = {
        "AAA": [_day(release, slice(18_000, 21_000)), _day(dt.date(2014, 5, 5), None, seed=1)]
    }
    calm = {"AAA": [_day(release, None), _day(dt.date(2014, 5, 5), None, seed=1)]}
    spans = windows(np.concatenate([d[1][[0, -1]] for d in spiked["AAA"]]))
    assert inside(spiked["AAA"][0][1][18_000:21_000], spans).all()  # the spike is in the window
    loud = build_kind(spiked, quiet=None).limits
    muted = build_kind(spiked).limits  # the default: the payrolls windows of its days
    np.testing.assert_array_equal(muted, build_kind(spiked, quiet=spans).limits)
    assert loud[0] > muted[0] + 0.5  # the spike set the upper spread limit
    # with the window out, the upper spread limit is the calm days'. (The lower one is not:
    # after the window the slow mean still holds the spike, and the spread is under it.)
    assert muted[0] == pytest.approx(build_kind(calm, quiet=spans).limits[0], abs=0.02)


def _at(stream, tick: int, when: dt.datetime):
    """``stream`` moved in time so that its tick ``tick`` comes at ``when``."""
    moved = stream.take(0, len(stream))
    moved.ts = stream.ts + (int(when.timestamp()) * US - int(stream.ts[tick]))
    return moved


def _gate_alerts(stream, env: dict, parts=("jump", "frozen")) -> list[tuple[int, str, str]]:
    from dataclasses import replace

    from spark.pipeline import SignalPipeline
    from spark.settings import Settings

    settings = replace(Settings.from_env(env).with_models(model="logreg"), trading=False)
    result = SignalPipeline(settings).step(stream)
    at = result.kept if result.kept is not None else np.arange(len(stream))
    return [(int(at[i]), a["detector"], a["severity"]) for i, a in result.alerts
            if a["detector"] in parts or a["detector"].startswith(parts)]  # fmt: skip


def test_a_jump_or_a_frozen_feed_in_a_release_window_still_closes_the_gate(switches):  # noqa: F811
    """The break part's alarms on a stream (tests/test_breaks.py: EURUSD, its ticks frozen,
    then IBM), moved so that each comes 5 minutes after the payrolls release: both stay
    warnings and close the gate. No release moves the mid by a thousand of its usual moves
    in one tick, nor freezes a feed (session 35 muted the jump; session 36 does not)."""
    stream, _, ibm_at = switches
    release = dt.datetime(2014, 5, 2, 12, 35, tzinfo=dt.UTC)
    jump_at = ibm_at + 19  # the price screen refuses 19 IBM ticks first (test_breaks)
    default = _gate_alerts(_at(stream, jump_at, release), {})
    assert (jump_at, "jump", "warning") in default
    frozen = next(i for i, d, _ in default if d == "frozen")
    assert (frozen, "frozen", "warning") in _gate_alerts(_at(stream, frozen, release), {})


@pytest.fixture(scope="module")
def vol_switch():
    """NZDUSD's last day-file, its moves ×3 after 50,000 ticks (the stream of
    tests/test_profile_shipped.py): the tick of the default worker's first warning, the fx
    kind's ``profile_move_up``."""
    from spark.research.drift import _stream
    from spark.research.select import Day
    from tests.test_profile_shipped import SHARED_DATA

    paths = sorted((SHARED_DATA / "fxcm/nzdusd").glob("*_quote.zip"))
    if not paths:
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    day = Day("NZDUSD", paths[-1].name[:8], str(paths[-1]))
    stream, switch = _stream(day, None, "vol_x3", 50_000, 20_000)
    found = [a for a in _gate_alerts(stream, {}, ("profile",)) if a[2] == "warning"]
    assert found and found[0][1] == "profile_move_up" and found[0][0] > switch
    return stream, found[0][0]


def test_a_profile_alarm_in_a_payrolls_window_is_info(vol_switch):
    """That warning moved to 5 minutes after the payrolls release: info, and the gate stays
    open; SPARK_DRIFT_RELEASES=none: a warning, as a day later."""
    release = dt.datetime(2014, 5, 2, 12, 35, tzinfo=dt.UTC)
    _muted_there_only(*vol_switch, release, release + dt.timedelta(days=1))


def _muted_there_only(stream, tick: int, there: dt.datetime, elsewhere: dt.datetime,
                      env: dict | None = None) -> None:  # fmt: skip
    """The profile warning at ``tick`` of ``stream``, moved to come at ``there``, is info;
    a warning with SPARK_DRIFT_RELEASES=none, and a warning moved to ``elsewhere``
    (``env``: the worker's other settings)."""
    env = env or {}
    moved = _at(stream, tick, there)
    assert (tick, "profile_move_up", "info") in _gate_alerts(moved, env, ("profile",))
    loud = _gate_alerts(moved, {**env, "SPARK_DRIFT_RELEASES": "none"}, ("profile",))
    assert (tick, "profile_move_up", "warning") in loud
    other = _at(stream, tick, elsewhere)
    assert (tick, "profile_move_up", "warning") in _gate_alerts(other, env, ("profile",))


def test_the_release_setting_says_what_it_takes():
    from spark.settings import Settings, SettingsError

    assert Settings.from_env({}).drift.releases == "payrolls"
    assert Settings.from_env({"SPARK_DRIFT_RELEASES": " None "}).drift.releases == "none"
    with pytest.raises(SettingsError, match="cannot read the calendar of releases nfp"):
        Settings.from_env({"SPARK_DRIFT_RELEASES": "nfp"})  # not a word it knows: a file


def test_a_calendar_file_gives_windows_and_says_what_is_wrong(tmp_path):
    from spark.drift.releases import Calendar, ReleasesError, read_calendar

    path = tmp_path / "releases.csv"
    path.write_text(
        "when,name,before,after\n"
        "# the ECB's decision and press conference\n"
        "2014-05-08T11:45:00Z,ECB rate decision,5,60\n"
        "2014-05-08T14:30:00+02:00,ECB press conference,0,60\n"  # 12:30 UTC: overlaps
        "\n"
        "2014-05-15T12:30:00Z,US CPI\n"
    )
    ecb = int(dt.datetime(2014, 5, 8, 11, 40, tzinfo=dt.UTC).timestamp()) * US
    cpi = int(dt.datetime(2014, 5, 15, 12, 30, tzinfo=dt.UTC).timestamp()) * US
    assert read_calendar(path).tolist() == [
        [ecb, ecb + 110 * 60 * US],  # 11:40 to 13:30, the two joined
        [cpi - BEFORE_S * US, cpi + AFTER_S * US],
    ]
    both = Calendar.parse(f"payrolls, {path}")
    ts = np.array([ecb, int(dt.datetime(2014, 5, 2, 12, 30, tzinfo=dt.UTC).timestamp()) * US])
    assert inside(ts, both.windows(ts)).all()
    assert inside(ts, Calendar.parse(str(path)).windows(ts)).tolist() == [True, False]
    assert Calendar.parse("none").empty and not Calendar.parse("").empty
    bad = {
        "2014-05-08 11:45,no zone\n": "line 1: '2014-05-08 11:45' has no zone",
        "when,name\nsoon,x\n": "line 2: 'soon' is not an ISO-8601 time",
        "2014-05-08T11:45:00Z,x,five,30\n": "line 1: minutes before and after must be numbers",
    }
    for text, said in bad.items():
        path.write_text(text)
        with pytest.raises(ReleasesError, match=said):
            read_calendar(path)
    with pytest.raises(ReleasesError, match="none cannot be joined"):
        Calendar.parse(f"none,{path}")
    with pytest.raises(ReleasesError, match="cannot read the calendar of releases"):
        Calendar.parse(str(tmp_path / "missing.csv"))


def test_a_worker_mutes_the_releases_of_its_calendar_file(vol_switch, tmp_path):
    """The warning above moved to 2014-05-08 12:40 UTC (the ECB's press conference, not a
    payrolls day): a warning by default, info with a calendar file that lists the
    conference; a bad file is refused at the start with the line to fix."""
    from spark.settings import Settings, SettingsError

    stream, tick = vol_switch
    moved = _at(stream, tick, dt.datetime(2014, 5, 8, 12, 40, tzinfo=dt.UTC))
    path = tmp_path / "releases.csv"
    path.write_text("2014-05-08T12:30:00Z,ECB press conference,0,60\n")
    assert (tick, "profile_move_up", "warning") in _gate_alerts(moved, {}, ("profile",))
    muted = _gate_alerts(moved, {"SPARK_DRIFT_RELEASES": f"payrolls,{path}"}, ("profile",))
    assert (tick, "profile_move_up", "info") in muted
    path.write_text("2014-05-08T12:30,ECB\n")
    with pytest.raises(SettingsError, match=r"releases.csv, line 1: .* has no zone"):
        Settings.from_env({"SPARK_DRIFT_RELEASES": str(path)})


def test_the_fx_rollover_runs_from_before_five_pm_new_york_in_utc():
    """17:00 New York is 21:00 UTC in US summer time and 22:00 in winter; the window runs
    from ROLLOVER_BEFORE_S before it to the minutes after; 0 minutes: none."""
    from spark.drift.releases import ROLLOVER_BEFORE_S, rollovers

    summer = int(dt.datetime(2014, 5, 5, 12, tzinfo=dt.UTC).timestamp()) * US
    winter = int(dt.datetime(2014, 1, 15, 12, tzinfo=dt.UTC).timestamp()) * US
    at = int(dt.datetime(2014, 5, 5, 21, tzinfo=dt.UTC).timestamp()) * US
    spans = rollovers(np.array([summer]), ROLLOVER_BEFORE_S, 90 * 60)
    assert [at - 300 * US, at + 5_400 * US] in spans.tolist()
    ts = at + np.array([-301, -300, 0, 5_399, 5_400]) * US
    assert inside(ts, spans).tolist() == [False, True, True, True, False]
    at = int(dt.datetime(2014, 1, 15, 22, tzinfo=dt.UTC).timestamp()) * US
    assert [at - 300 * US, at + 60 * US] in rollovers(np.array([winter]), 300, 60).tolist()
    assert rollovers(np.array([summer]), 300, 0).shape == (0, 2)


def test_a_kind_learns_its_limits_without_the_rollover_it_is_given():
    """A spread spike at the rollover (21:10 UTC on a summer day) sets the upper spread
    limit; with ``rollover`` = 90 it is left out, and the limit is the calm days'."""
    days = [dt.date(2014, 5, 5), dt.date(2014, 5, 6)]

    def fx(spike):  # ticks every 0.5 s from 10:00 UTC: 21:10 is tick 80,400
        return {"AAA": [_day(d, spike, n=100_000, seed=k) for k, d in enumerate(days)]}

    spiked, calm = fx(slice(80_400, 83_000)), fx(None)
    loud = build_kind(spiked).limits
    muted = build_kind(spiked, rollover=90).limits
    assert loud[0] > muted[0] + 0.5
    assert muted[0] == pytest.approx(build_kind(calm, rollover=90).limits[0], abs=0.02)
    assert build_kind(spiked, rollover=90).rollover == 90


def test_a_worker_mutes_a_currency_pair_at_the_rollover_but_not_a_stock(
    vol_switch,
    switches,  # noqa: F811
    tmp_path,
):
    """The warning above at 21:30 UTC on a summer day (17:30 New York), with a profile whose
    fx kind has a rollover of 90 minutes (``spark drift profile --rollover fx=90``): info
    for the currency pair, a warning with SPARK_DRIFT_RELEASES=none and three hours earlier.
    Its stock kind has none. A jump there (an instrument switch) still closes the gate. The
    shipped file has no window (the eleventh run, session 37): a warning there by default."""
    from spark.drift.profile import Profile, ProfileSet
    from spark.research.drift import SHIPPED_SETTINGS
    from spark.settings import BUNDLED_PATH

    assert "rollover" not in SHIPPED_SETTINGS["fx"]
    assert "rollover" not in json.loads(BUNDLED_PATH.read_text())["kinds"]["fx"]
    text = json.loads(BUNDLED_PATH.read_text())
    text["kinds"]["fx"]["rollover"] = 90
    path = tmp_path / "fx-rollover.json"
    path.write_text(json.dumps(text))
    windowed = ProfileSet(Profile.load(path))
    assert (windowed.rollover("NZDUSD"), windowed.rollover("IBM"), windowed.rollover("ES=F")) == (
        90, 0, 0)  # fmt: skip
    assert ProfileSet(Profile.load(BUNDLED_PATH)).rollover("NZDUSD") == 0
    env = {"SPARK_DRIFT_PROFILE": str(path)}
    rollover = dt.datetime(2014, 5, 5, 21, 30, tzinfo=dt.UTC)
    _muted_there_only(*vol_switch, rollover, rollover - dt.timedelta(hours=3), env)
    stream, tick = vol_switch
    shipped = _gate_alerts(_at(stream, tick, rollover), {}, ("profile",))
    assert (tick, "profile_move_up", "warning") in shipped
    switched, _, ibm_at = switches
    assert switched.symbols == ["EURUSD"]
    jump = _at(switched, ibm_at + 19, rollover)
    assert (ibm_at + 19, "jump", "warning") in _gate_alerts(jump, env)
