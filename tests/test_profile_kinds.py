"""The profile part's kinds of market (spark.drift.profile, session 30): an instrument the
profile has no days of, watched by the entry of its kind, its statistics against their own
recent level and limits learnt on the other instruments of that kind."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from spark.drift.profile import (
    ANY,
    KIND_HOLD,
    KIND_MARGIN,
    N_BUCKETS,
    KindEntry,
    Profile,
    ProfileError,
    ProfileSet,
    build,
    build_kind,
    day_stats,
    held_residuals,
)
from spark.pipeline import SignalPipeline
from spark.research.drift import _stream
from spark.research.select import Day, load_day
from spark.settings import Settings
from tests.conftest import SHARED_DATA


def _days(pair: str) -> list[Day]:
    paths = sorted((SHARED_DATA / f"fxcm/{pair.lower()}").glob("*_quote.zip"))
    return [Day(pair, p.name[:8], str(p)) for p in paths]


@pytest.fixture(scope="module")
def fx_kind():
    """The kind entry of EURUSD's day-files before its last, as ``spark drift profile --kind
    fx=EURUSD`` makes it, and NZDUSD's last day (an instrument it has no day of)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    entries = []
    for day in _days("EURUSD")[:-1]:
        b = load_day(day, 10**12)
        entries.append((day.date, b.ts, b.bid, b.ask))
    return build_kind({"EURUSD": entries}), _days("NZDUSD")[-1]


def _features(batch):
    """Per tick: spread_bp and ret_bp (the mid's log return since the symbol's previous
    tick, 0 on its first), as the feature kernel makes them for valid quotes."""
    mid = (batch.bid + batch.ask) / 2
    spread = (batch.ask - batch.bid) / mid * 1e4
    ret = np.zeros(len(mid))
    ret[1:] = np.log(mid[1:] / mid[:-1]) * 1e4
    return spread, ret


@pytest.mark.parametrize("lag", [0, 300])
def test_settings_per_symbol_compiled_equal_the_readable_one(fx_kind, lag):
    """Two symbols in one stream, cut in batches of 777: NZDUSD by its own entry (hold 100,
    no slow offset, margin 1.1), EURUSD by a kind's (hold 40, slow 5,000, margin 1.02, warm
    2,000, the slow mean lagged by ``lag``); limits inside each one's residuals, so both
    alarm many times. Each equals a readable detector with its own entry's settings, alarm
    by alarm."""
    from tests.oracles import ProfileDetector

    _, nz_day = fx_kind
    nz = load_day(nz_day, 30_000)
    eu = load_day(Day("EURUSD", nz_day.date, nz_day.path.replace("nzdusd", "eurusd")), 30_000)
    own = np.zeros((N_BUCKETS, 2))
    own[:] = np.nanmedian(day_stats(nz.ts, nz.bid, nz.ask), axis=0)
    nz_held = held_residuals(nz.ts, day_stats(nz.ts, nz.bid, nz.ask), own, 1, 0)
    eu_held = held_residuals(eu.ts, day_stats(eu.ts, eu.bid, eu.ask), own * 0, 1, 5_000, lag=lag)
    nz_limits = np.r_[np.nanpercentile(nz_held, [80, 20], axis=0)].ravel()
    eu_limits = np.r_[np.nanpercentile(eu_held, [80, 20], axis=0)].ravel()
    kind = KindEntry(eu_limits, ["X"], 2, hold=40, slow=5_000, margin=1.02, warm=2_000, lag=lag)
    profile = Profile({"NZDUSD": (own, nz_limits)}, hold=100, slow=0, margin=1.1, warm=2_000,
                      kinds={"fx": kind}, unseen={"EURUSD": "fx"})  # fmt: skip
    readable = {
        "NZDUSD": ProfileDetector([tuple(r) for r in own], tuple(nz_limits), hold=100, slow=0,
                                  margin=1.1, warm=2_000, locked="skip"),
        "EURUSD": ProfileDetector([(0.0, 0.0)] * N_BUCKETS, tuple(eu_limits), hold=40,
                                  slow=5_000, margin=1.02, warm=2_000, locked="skip", lag=lag),
    }  # fmt: skip
    # one stream, the two symbols' ticks in time order
    ts = np.r_[nz.ts, eu.ts]
    slot = np.r_[np.zeros(len(nz), np.int64), np.ones(len(eu), np.int64)]
    spread, ret = (np.r_[a, b] for a, b in zip(_features(nz), _features(eu), strict=True))
    order = np.argsort(ts, kind="stable")
    ts, slot, spread, ret = ts[order], slot[order], spread[order], ret[order]
    names = ["NZDUSD", "EURUSD"]
    expected = []
    for i in range(len(ts)):
        for name in readable[names[slot[i]]].update(int(ts[i]), spread[i], ret[i]):
            expected.append((i, names[slot[i]], name))
    compiled, got = ProfileSet(profile), []
    for lo in range(0, len(ts), 777):
        hi = min(lo + 777, len(ts))
        tick, kind_code, _, _ = compiled.step(names, slot[lo:hi], ts[lo:hi], spread[lo:hi],
                                              ret[lo:hi], np.ones(hi - lo, np.bool_))  # fmt: skip
        got += [(lo + t, names[slot[lo + t]], ProfileDetector.NAMES[k])
                for t, k in zip(tick.tolist(), kind_code.tolist(), strict=True)]  # fmt: skip
    for symbol in names:
        assert len([e for e in expected if e[1] == symbol]) > 8, symbol
    assert got == expected
    assert compiled.config[1][:5].tolist() == [40, 5_000, 1.02, 2_000, 1.0]
    assert compiled.config[1][7] == lag


def test_a_kind_entry_watches_an_instrument_the_profile_has_no_days_of(fx_kind, tmp_path):
    """A profile with EURUSD's days only, its kind entry given every other instrument: a
    NZDUSD stream whose moves grow ×3 after 50,000 ticks (a test stream of the fifth run,
    caught there after 1,003 ticks) alarms within 2,000 ticks of the switch and not before;
    the alert carries the kind's hold and margin. The same profile without ``unseen``
    leaves NZDUSD unwatched."""
    kind, nz_day = fx_kind
    stream, switch = _stream(nz_day, None, "vol_x3", 50_000, 20_000)
    env = {"SPARK_GATE_RULE": "profile"}

    def warnings(profile):
        path = tmp_path / "p.json"
        profile.save(path)
        s = Settings.from_env({**env, "SPARK_DRIFT_PROFILE": str(path)})
        result = SignalPipeline(replace(s.with_models(model="logreg"), trading=False)).step(stream)
        at = result.kept if result.kept is not None else np.arange(len(stream))
        return [(int(at[i]), a) for i, a in result.alerts if a["severity"] == "warning"]

    watched = warnings(Profile({}, kinds={"fx": kind}, unseen={ANY: "fx"}))
    assert watched, "no alarm"
    first, alert = watched[0]
    assert switch < first <= switch + 2_000
    assert alert["detector"] == "profile_move_up" and alert["window"] == KIND_HOLD
    # the file keeps limits to 6 decimals
    assert alert["threshold"] == pytest.approx(kind.limits[1] + np.log(KIND_MARGIN), abs=1e-6)
    assert warnings(Profile({}, kinds={"fx": kind})) == []


def test_kinds_save_load_and_say_what_is_wrong(fx_kind, tmp_path):
    kind, _ = fx_kind
    assert np.isfinite(kind.limits).all() and kind.instruments == ["EURUSD"]
    assert kind.limits[0] > 0 > kind.limits[2]  # a rise above, a fall below its own level
    profile = Profile({}, kinds={"fx": kind}, unseen={ANY: "fx", "AUDUSD": "fx"})
    path = tmp_path / "p.json"
    profile.save(path)
    again = Profile.load(path)
    assert again.unseen == {ANY: "fx", "AUDUSD": "fx"}
    k = again.kinds["fx"]
    assert np.allclose(k.limits, kind.limits, atol=1e-6)
    assert (k.instruments, k.days, k.hold, k.slow, k.margin, k.warm, k.budget) == (
        ["EURUSD"], 12, 1_000, 5_000, 1.5, 15_000, 0.25)  # fmt: skip
    assert again.kind_of("GBPUSD") == "fx" and again.entry("GBPUSD")[3] == "fx"
    # a file of format 2 (before kinds) still loads, with none
    saved = json.loads(path.read_text())
    old = {k: v for k, v in saved.items() if k not in ("kinds", "unseen")} | {"format": 2}
    (tmp_path / "old.json").write_text(json.dumps(old))
    assert Profile.load(tmp_path / "old.json").entry("GBPUSD") is None
    saved["unseen"] = {ANY: "stock"}
    (tmp_path / "odd.json").write_text(json.dumps(saved))
    with pytest.raises(ProfileError, match="kind.*stock.*no entry of"):
        Profile.load(tmp_path / "odd.json")
    with pytest.raises(ProfileError, match="two days"):
        b = load_day(_days("EURUSD")[0], 1_000)
        build_kind({"EURUSD": [("d", b.ts, b.bid, b.ask)]})
    # an instrument with its own entry keeps it, whatever ``unseen`` says
    own = build({"NZDUSD": [("a", b.ts, b.bid, b.ask), ("b", b.ts, b.bid, b.ask)]})
    both = Profile(own.symbols, kinds={"fx": kind}, unseen={"NZDUSD": "fx"})
    assert both.kind_of("NZDUSD") is None and both.entry("NZDUSD")[3] is None


def profile_command(out) -> list[str]:
    """``spark drift profile`` on two days each of BAC and AIG (regular session) into
    ``out``, its other options still to give."""
    days = [SHARED_DATA / f"equity/{s}/2013100{d}_quote.zip" for s in ("bac", "aig")
            for d in (7, 8)]  # fmt: skip
    if not all(d.exists() for d in days):
        pytest.skip("real tick data not found")
    base = ["drift", "profile", "--session", "09:30-16:00", "--out", str(out)]
    for d in days:
        base += ["--data", str(d)]
    return base


def test_spark_drift_profile_learns_a_kind_and_says_what_is_wrong(tmp_path):
    """``--kind`` and ``--unseen`` on real days: the file has the kind and whom it watches,
    the worker's stage watches an unseen symbol by it; a wrong option is one line."""
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.drift.stage import DriftStage

    out = tmp_path / "p.json"
    runner = CliRunner()
    base = profile_command(out)
    made = runner.invoke(cli, [*base, "--kind", "stock=BAC,AIG", "--unseen", "stock"])
    assert made.exit_code == 0, made.output
    assert "kind stock: 4 days of AIG, BAC" in made.output
    assert "watches: every other instrument" in made.output
    saved = json.loads(out.read_text())
    assert saved["unseen"] == {ANY: "stock"} and saved["kinds"]["stock"]["days"] == 4
    stage = DriftStage(Settings.from_env({"SPARK_DRIFT_PROFILE": str(out)}).drift)
    assert stage.profiles.profile.entry("IBM")[3] == "stock"
    assert stage.profiles.profile.entry("BAC")[3] is None  # its own days
    own = runner.invoke(cli, [*base, "--kind", "stock=BAC,AIG", "--unseen", "BAC=stock"])
    assert own.exit_code == 0 and "BAC" in own.output
    assert "has its own days here, so its own entry watches it" in own.output
    for args, says in [
        (["--unseen", "fx"], "no kind 'fx' is learnt here; add --kind fx=SYMBOL,SYMBOL"),
        (["--kind", "stock=BAC,IBM"], "kind stock: no days of IBM in the data"),
        (["--kind", "stock"], "give NAME=SYMBOL,SYMBOL"),
        (["--kind", "a=BAC", "--kind", "b=AIG", "--unseen", "a", "--unseen", "b"],
         "every other instrument given to two kinds"),
    ]:  # fmt: skip
        wrong = runner.invoke(cli, [*base, *args])
        assert wrong.exit_code == 2 and says in wrong.output, wrong.output
        assert "Traceback" not in wrong.output
