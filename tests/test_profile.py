"""The profile detectors (spark.drift.profile): the spread and move size against the
instrument's time-of-day profile of earlier days (docs/drift.md, session 27)."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from spark.drift.evaluate import one_stream
from spark.drift.profile import (
    KINDS,
    Profile,
    ProfileError,
    ProfileSet,
    build,
    day_stats,
    held_residuals,
)
from spark.features.kernel import FEATURE_NAMES
from spark.pipeline import SignalPipeline
from spark.research.drift import follow, same_level
from spark.research.select import Day, load_day
from spark.settings import Settings, SettingsError

RET, SPREAD = FEATURE_NAMES.index("ret_bp"), FEATURE_NAMES.index("spread_bp")


def _day(shared_data: Path, pair: str, date: str, ticks: int = 10**12):
    path = shared_data / f"fxcm/{pair.lower()}/{date}_quote.zip"
    return load_day(Day(pair, date, str(path)), ticks)


@pytest.fixture(scope="module")
def nzdusd():
    """A profile of NZDUSD's day-files before its last (2014-05-15); a stream of that day:
    50,000 ticks, then 20,000 of EURUSD's last day at NZDUSD's price level (a test stream of
    the bench, caught 1,063 ticks in by a fall of the spread, session 28)."""
    from tests.conftest import SHARED_DATA as shared_data

    if not shared_data.is_dir():
        pytest.skip(f"real tick data not found at {shared_data}")
    dates = sorted(p.name[:8] for p in (shared_data / "fxcm/nzdusd").glob("*_quote.zip"))
    entries = []
    for date in dates[:-1]:
        b = _day(shared_data, "NZDUSD", date)
        entries.append((date, b.ts, b.bid, b.ask))
    profile = build({"NZDUSD": entries})
    first = _day(shared_data, "NZDUSD", dates[-1], 50_000)
    then = _day(shared_data, "EURUSD", dates[-1], 20_000)
    stream = same_level(one_stream(first, follow(first, then)), 50_000)
    return profile, stream, 50_000, [d for d, *_ in entries]


@pytest.mark.parametrize("locked", ["floor", "skip"])
def test_compiled_profile_detectors_equal_the_readable_one(nzdusd, locked):
    """Alarm by alarm and residual by residual, in batches of 777 ticks, with limits close
    enough that both statistics alarm many times, on both sides; locked quotes (spread 0,
    about one NZDUSD tick in ten) at the floor or skipped."""
    from tests.oracles import ProfileDetector

    profile, stream, _, _ = nzdusd
    result = SignalPipeline(Settings(gate=False).with_models(model="logreg")).step(stream)
    ts = result.batch.ts
    medians, _ = profile.symbols["NZDUSD"]
    # limits inside the stream's own residuals (the 20th and 80th percentiles): many alarms
    b = result.batch
    residuals = held_residuals(ts, day_stats(ts, b.bid, b.ask, locked), medians, 1, 5_000)
    upper, lower = np.nanpercentile(residuals, [80, 20], axis=0)
    limits = np.r_[upper, lower]
    tight = Profile({"NZDUSD": (medians, limits)}, hold=100, slow=5_000, margin=1.1, warm=2_000,
                    locked=locked)  # fmt: skip
    readable = ProfileDetector(
        [None if np.isnan(row).any() else tuple(row) for row in medians],
        tuple(limits), hold=100, slow=5_000, margin=1.1, warm=2_000, locked=locked,
    )  # fmt: skip
    expected, residuals = [], np.full((len(ts), 2), np.nan)
    for i in np.flatnonzero(result.valid).tolist():
        for name in readable.update(int(ts[i]), float(result.features[i, SPREAD]),
                                    float(result.features[i, RET])):  # fmt: skip
            expected.append((i, name))
        residuals[i] = [np.nan if r is None else r for r in readable.residuals]
    compiled = ProfileSet(tight)
    got, stats = [], np.empty((len(ts), 2))
    for lo in range(0, len(ts), 777):
        hi = min(lo + 777, len(ts))
        tick, kind, _, part = compiled.step(
            ["NZDUSD"], np.zeros(hi - lo, np.int64), ts[lo:hi],
            result.features[lo:hi, SPREAD], result.features[lo:hi, RET], result.valid[lo:hi],
        )  # fmt: skip
        names = [ProfileDetector.NAMES[k] for k in kind.tolist()]
        got += [(lo + t, name) for t, name in zip(tick.tolist(), names, strict=True)]
        stats[lo:hi] = part
    assert len({k for _, k in expected}) == 4 and len(expected) > 8
    assert (result.features[result.valid, SPREAD] <= 0).mean() > 0.02  # locked quotes in it
    assert got == expected
    assert np.allclose(stats, residuals, rtol=1e-9, atol=1e-12, equal_nan=True)


def test_the_profile_part_closes_the_gate_on_a_switch_to_a_tighter_instrument(nzdusd, tmp_path):
    """The shipped settings on a test stream of the bench (NZDUSD, then EURUSD at its price
    level), which the default rule misses: no warning before the switch, then the spread's
    fall below its lower limit within 2,000 ticks, and the gate shut."""
    profile, stream, switch, _ = nzdusd
    path = tmp_path / "profile.json"
    profile.save(path)
    env = {"SPARK_GATE_RULE": "profile", "SPARK_DRIFT_PROFILE": str(path)}
    settings = replace(Settings.from_env(env).with_models(model="logreg"), trading=False)
    result = SignalPipeline(settings).step(stream)
    at = result.kept if result.kept is not None else np.arange(len(stream))
    warnings = [(int(at[i]), a) for i, a in result.alerts if a["severity"] == "warning"]
    assert warnings, "no alarm"
    first, alert = warnings[0]
    assert switch < first <= switch + 2_000
    assert alert["detector"] == "profile_spread_down" and alert["feature"] == "spread_bp"
    assert alert["statistic"] < alert["threshold"] < 0
    assert alert["window"] == profile.hold
    assert [g["state"] for _, g in result.gates][0] == "closed"


def test_a_profile_saves_loads_and_says_what_is_wrong(nzdusd, tmp_path, shared_data):
    profile, *_, dates = nzdusd
    medians, limits = profile.symbols["NZDUSD"]
    assert np.isfinite(limits).all() and np.isfinite(medians).sum() > 40
    path = tmp_path / "p.json"
    profile.save(path)
    again = Profile.load(path)
    assert again.days == {"NZDUSD": dates}
    assert np.allclose(again.symbols["NZDUSD"][0], medians, atol=1e-6, equal_nan=True)
    assert (again.hold, again.slow, again.margin, again.warm) == (1_000, 0, 1.5, 5_000)
    assert again.budget == 1.0 and again.locked == "skip"
    # a file written before session 28 has no "locked": its statistics took the floor
    saved = json.loads(path.read_text())
    del saved["locked"], saved["budget"]
    (tmp_path / "old.json").write_text(json.dumps(saved))
    old = Profile.load(tmp_path / "old.json")
    assert old.locked == "floor" and old.budget is None and old.config()[4] == 0.0
    assert again.config()[4] == 1.0
    saved["locked"] = "ignore"
    (tmp_path / "odd.json").write_text(json.dumps(saved))
    with pytest.raises(ProfileError, match="locked must be one of floor, skip"):
        Profile.load(tmp_path / "odd.json")
    assert np.allclose(again.symbols["NZDUSD"][1], limits, atol=1e-6)
    # a symbol with one day has no out-of-sample limit: it is left out
    one = _day(shared_data, "NZDUSD", "20140501")
    assert build({"X": [("d", one.ts, one.bid, one.ask)]}).symbols == {}
    with pytest.raises(ProfileError, match="spark drift profile"):
        Profile.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"format": 99}')
    with pytest.raises(ProfileError, match="format"):
        Profile.load(tmp_path / "bad.json")
    with pytest.raises(SettingsError, match="SPARK_DRIFT_PROFILE"):
        from spark.drift.stage import DriftStage

        off = {"SPARK_GATE_RULE": "break+profile", "SPARK_DRIFT_PROFILE": "none"}
        DriftStage(Settings.from_env(off).drift)


def test_day_statistics_are_the_fast_means_of_log_spread_and_log_move():
    n = 500
    bid = np.full(n, 1.0)
    ask = np.full(n, 1.0002)
    bid[250:] += 0.0001  # one move of the mid, at tick 250
    ask[250:] += 0.0001
    ts = np.arange(n, dtype=np.int64) * 1_000_000
    stats = day_stats(ts, bid, ask)
    assert stats[0, 0] == pytest.approx(math.log(0.0002 / 1.0001))
    assert np.isnan(stats[:250, 1]).all()
    assert stats[250, 1] == pytest.approx(math.log(abs(math.log(1.0002 / 1.0001))))
    assert stats[-1, 1] == stats[250, 1]  # no move since
    # a locked quote (bid = ask) at tick 100: at the floor it drags the spread's fast mean
    # down; skipped, it leaves it as it was; the move statistic is the same either way
    ask[100] = bid[100]
    floor, skip = day_stats(ts, bid, ask, "floor"), day_stats(ts, bid, ask, "skip")
    assert floor[100, 0] < floor[99, 0] - 0.05 and skip[100, 0] == skip[99, 0]
    assert (
        np.array_equal(skip[:100], floor[:100], equal_nan=True)
        and (skip[101:250, 0] > floor[101:250, 0]).all()
    )
    ask[:3] = bid[:3]  # locked from the start, skipped: no spread statistic until a spread
    skip = day_stats(ts, bid, ask, "skip")
    assert np.isnan(skip[:3, 0]).all() and skip[3, 0] == pytest.approx(math.log(0.0002 / 1.0001))


def test_a_checkpoint_carries_the_profile_detectors_on(nzdusd, tmp_path):
    from tests.helpers import checkpointed_at

    profile, stream, switch, _ = nzdusd
    path = tmp_path / "profile.json"
    profile.save(path)
    env = {"SPARK_GATE_RULE": "break+profile", "SPARK_DRIFT_PROFILE": str(path)}
    settings = replace(Settings.from_env(env).with_models(model="logreg"), trading=False)
    # cut within the run that raises the alarm
    _, a, b = checkpointed_at(settings, stream, switch + 500)
    kinds = [(i, x["detector"]) for i, x in a.alerts if x["detector"] in KINDS]
    assert kinds and kinds == [(i, x["detector"]) for i, x in b.alerts if x["detector"] in KINDS]


def test_spark_drift_profile_writes_what_a_worker_loads(tmp_path):
    """Two IBM days in the regular session: a profile with the 13 buckets of 09:30-16:00 and
    finite limits, which the gate rule's profile part loads; one day alone is refused with
    the reason, a malformed session too."""
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.drift.stage import DriftStage
    from tests.conftest import SHARED_DATA

    days = [SHARED_DATA / f"equity/ibm/2013100{d}_quote.zip" for d in (7, 8)]
    if not all(d.exists() for d in days):
        pytest.skip("real tick data not found")
    out = tmp_path / "profiles" / "ibm.json"
    runner = CliRunner()
    made = runner.invoke(cli, ["drift", "profile", "--data", *map(str, days), "--session",
                               "09:30-16:00", "--out", str(out), "--json"])  # fmt: skip
    assert made.exit_code == 0, made.output
    report = json.loads(made.output)
    ibm = report["symbols"]["IBM"]
    assert ibm["days"] == ["2013-10-07", "2013-10-08"] and report["left_out"] == []
    assert sum(v is not None for v in ibm["spread"]) == 13  # 13:30-20:00 UTC
    assert all(v is not None for v in ibm["upper"] + ibm["lower"])
    env = {"SPARK_DRIFT_PROFILE": str(out)}  # a profile and no rule: the default + profile
    assert Settings.from_env(env).drift.rule == "break+dt_spread+profile"
    stage = DriftStage(Settings.from_env(env).drift)
    assert set(stage.profiles.profile.symbols) == {"IBM"}
    alone = runner.invoke(cli, ["drift", "profile", "--data", str(days[0]), "--out",
                                str(tmp_path / "x.json")])  # fmt: skip
    assert alone.exit_code == 1 and "no instrument has two days" in alone.output
    assert "IBM" in alone.output and "left out" in alone.output
    bad = runner.invoke(cli, ["drift", "profile", "--data", str(days[0]), "--session", "9-x",
                              "--out", str(tmp_path / "y.json")])  # fmt: skip
    assert bad.exit_code == 2 and "HH:MM-HH:MM" in bad.output


def test_spark_drift_eval_measures_the_profile_part_when_given_one(nzdusd, tmp_path):
    from spark.drift.evaluate import drift_eval

    profile, stream, switch, _ = nzdusd
    path = tmp_path / "profile.json"
    profile.save(path)
    first, then = stream.take(0, switch), stream.take(switch, len(stream))
    with_profile = Settings.from_env({"SPARK_DRIFT_PROFILE": str(path)}).with_models(model="logreg")
    result = drift_eval(first, then, with_profile, detectors=["gate", "profile", "break"])
    gate, part = result["detectors"]["gate"], result["detectors"]["profile"]
    assert gate["watches"] == "break+dt_spread+profile"
    assert part["false_alarms"] == 0 and 0 < part["delay_ticks"] <= 2_000
    assert gate["delay_ticks"] <= part["delay_ticks"] and gate["false_alarms"] == 0
    off = Settings.from_env({"SPARK_DRIFT_PROFILE": "none"}).with_models(model="logreg")
    plain = drift_eval(first, then, off)
    assert "profile" not in plain["detectors"]
    assert plain["detectors"]["gate"]["delay_ticks"] is None  # no profile misses this one
    with pytest.raises(ValueError, match="SPARK_DRIFT_PROFILE"):
        drift_eval(first, then, off, detectors=["profile"])


def test_a_worker_with_a_missing_profile_says_so_in_one_line(tmp_path):
    """Checked before the worker touches the broker: the user learns what to do at once."""
    import os
    import subprocess

    from tests.conftest import spark_cmd

    env = dict(os.environ, SPARK_DRIFT_PROFILE=str(tmp_path / "nope.json"),
               KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")  # fmt: skip
    proc = subprocess.run(spark_cmd("worker"), capture_output=True, text=True, env=env,
                          timeout=120)  # fmt: skip
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and "nope.json" in lines[0] and "spark drift profile" in lines[0]


def test_the_limits_offline_form_alarms_where_the_live_detector_does(nzdusd):
    """``build`` sets the limits from ``held_residuals`` (the least, or greatest, residual of
    the last ``hold``); the live detector counts a run of ticks beyond a limit. Both must put
    the first alarm of each kind on the same tick, or the limits would not mean live what
    they meant on the profile days."""
    profile, stream, _, _ = nzdusd
    medians, limits = profile.symbols["NZDUSD"]
    ts = stream.ts
    stats = day_stats(ts, stream.bid, stream.ask)
    extra = math.log(profile.margin)
    up = held_residuals(ts, stats, medians, profile.hold, profile.slow)
    down = held_residuals(ts, stats, medians, profile.hold, profile.slow, low=True)
    with np.errstate(invalid="ignore"):
        beyond = np.hstack([up > limits[:2] + extra, down < limits[2:] - extra])
    beyond[: profile.warm] = False
    offline = {k: int(np.argmax(beyond[:, k])) for k in range(4) if beyond[:, k].any()}
    mid = (stream.bid + stream.ask) / 2
    ret = np.r_[0.0, np.log(mid[1:] / mid[:-1]) * 1e4]
    spread = (stream.ask - stream.bid) / mid * 1e4
    tick, kind, _, _ = ProfileSet(profile).step(
        ["NZDUSD"], np.zeros(len(ts), np.int64), ts, spread, ret, np.ones(len(ts), bool)
    )
    live: dict[int, int] = {}
    for t, k in zip(tick.tolist(), kind.tolist(), strict=True):
        live.setdefault(k, t)
    assert offline and live == offline


def _rises(series: list[np.ndarray], limit: float) -> int:
    """Rises above ``limit``, counted the plain way: a tick above it after one that was not
    (or NaN), or the first tick."""
    count = 0
    for x in series:
        above = np.nan_to_num(x, nan=-np.inf) > limit
        count += int(above[0]) + int((above[1:] & ~above[:-1]).sum())
    return count


def test_a_budgeted_limit_allows_that_many_rises_at_and_above_it():
    from spark.drift.profile import budgeted

    x = np.array([0.0, 5.0, 0.0, 3.0, 0.0, 3.0, np.nan, 1.0, 0.0, 2.0, 0.0])
    per_100k = 1e5 / len(x)  # a budget of one rise over the whole series
    assert budgeted([x], 0.0) == 5.0  # nothing may rise: the largest value
    assert budgeted([x], per_100k) == 3.0  # only the 5 rises above 3
    assert budgeted([x], 2 * per_100k) == 3.0  # at 2.0 the 5 and both 3s rise: three
    assert budgeted([x], 3 * per_100k) == 2.0  # 5, 3, 3 above 2; the 2 rises above 1 too
    # over several series the budget is of all their ticks together
    assert budgeted([x, x], 2 * per_100k / 2) == 3.0
    assert math.isnan(budgeted([np.full(4, np.nan)], 1.0))
    rng = np.random.default_rng(7)
    for _ in range(40):
        series = [
            np.where(rng.random(n) < 0.05, np.nan, np.cumsum(rng.normal(size=n)))
            for n in rng.integers(50, 400, size=3)
        ]
        ticks = sum(len(s) for s in series)
        budget = float(rng.choice([0.0, 1.0, 3.0, 8.0])) * 1e5 / ticks
        limit = budgeted(series, budget)
        allowed = math.floor(budget * ticks / 1e5 + 1e-9)
        values = np.unique(np.concatenate([s[np.isfinite(s)] for s in series]))
        at_or_above = values[values >= limit]
        assert all(_rises(series, v) <= allowed for v in at_or_above)
        below = values[values < limit]
        if len(below):  # the next value down would allow too many
            assert _rises(series, below[-1]) > allowed


def test_budgeted_limits_are_lower_than_the_largest_and_alarm_within_budget(nzdusd):
    """On real days: a budgeted limit is at most the largest held residual, and the days it
    was set on, each against the other days' profile, alarm at most that often."""
    from spark.drift.profile import left_out, limits, limits_of

    profile, _stream, _switch, dates = nzdusd
    from tests.conftest import SHARED_DATA as shared_data

    scored = []
    for date in dates[-4:]:
        b = _day(shared_data, "NZDUSD", date)
        scored.append((b.ts, day_stats(b.ts, b.bid, b.ask)))
    for low in (False, True):
        held = left_out(scored, low=low)
        largest = limits_of(held, low)
        assert np.allclose(largest, limits(scored, low=low), equal_nan=True)
        ticks = sum(len(h) for h in held)
        for budget in (0.25, 1.0):
            bound = limits_of(held, low, budget)
            sign = -1 if low else 1
            assert (sign * bound <= sign * largest).all()
            for j in range(2):
                series = [sign * h[:, j] for h in held]
                assert _rises(series, sign * bound[j]) <= budget * ticks / 1e5
    assert (limits_of(held, True, 1.0) > limits_of(held, True)).any()  # strictly tighter


def test_a_symbol_the_profile_lacks_is_named_once_in_the_log(nzdusd, tmp_path, caplog):
    """A worker given a profile that lacks a symbol says so once, however many batches carry
    it; a profiled symbol is not named."""
    profile, stream, _switch, _ = nzdusd
    path = tmp_path / "profile.json"
    profile.save(path)
    env = {"SPARK_GATE_RULE": "break+profile", "SPARK_DRIFT_PROFILE": str(path)}
    settings = replace(Settings.from_env(env).with_models(model="logreg"), trading=False)
    pipeline = SignalPipeline(settings)
    first = stream.take(0, 3_000)
    other = replace(first, symbols=["AUDUSD"])  # the same ticks under a name not profiled
    with caplog.at_level("WARNING", logger="spark.drift.profile"):
        pipeline.step(first)
        pipeline.step(other)
        pipeline.step(replace(stream.take(3_000, 6_000), symbols=["AUDUSD"]))
    named = [r.getMessage() for r in caplog.records if "no profile for" in r.getMessage()]
    assert named == [
        "drift profile: no profile for AUDUSD, so the gate rule's profile part does not "
        "watch it (the other parts do); add its earlier days to `spark drift profile`, or "
        "give it to a kind of market there (--kind, --unseen), and restart"
    ]
