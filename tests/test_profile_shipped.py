"""The shipped default profile (session 31): kinds of market only, in ``spark/drift/kinds.json``,
watching currency pairs and stock tickers by the shape of their symbol; what a worker runs
when SPARK_DRIFT_PROFILE is unset."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from spark.drift.profile import ANY, PAIR, TICKER, KindEntry, Profile, ProfileError, shape_of
from spark.drift.stage import DriftStage
from spark.pipeline import SignalPipeline
from spark.research.drift import _stream
from spark.research.select import Day
from spark.settings import BUNDLED, BUNDLED_PATH, NO_PROFILE, Settings, SettingsError
from tests.conftest import SHARED_DATA
from tests.test_profile_kinds import profile_command


@pytest.mark.parametrize(
    "symbol, shape",
    [
        ("EURUSD", PAIR), ("EUR/USD", PAIR), ("eur_usd", PAIR), ("USD-JPY", PAIR),
        ("NZDUSD", PAIR), ("XAUUSD", None), ("BTCUSDT", None), ("BTCUSD", None),
        ("EURUSDX", None), ("BAC", TICKER), ("IBM", TICKER), ("GOOGL", TICKER),
        ("BRK.B", TICKER), ("BF-B", TICKER), ("A", TICKER), ("bac", None),
        ("TOOLONG", None), ("ES=F", None), ("BRK.BB", None), ("", None), ("ÄBC", None),
    ],
)  # fmt: skip
def test_a_symbols_shape(symbol, shape):
    assert shape_of(symbol) == shape


def _entry() -> KindEntry:
    return KindEntry(np.array([0.5, 0.5, -0.5, -0.5]), ["X"], 2)


def test_a_symbol_is_looked_up_by_name_then_shape_then_any():
    kinds = {"fx": _entry(), "stock": _entry(), "other": _entry()}
    profile = Profile({}, kinds=kinds, unseen={PAIR: "fx", TICKER: "stock", "EURUSD": "other"})
    assert profile.kind_of("EURUSD") == "other"  # its own name first
    assert profile.kind_of("GBPUSD") == "fx" and profile.kind_of("GBP/USD") == "fx"
    assert profile.kind_of("BAC") == "stock"
    assert profile.kind_of("BTCUSDT") is None and profile.entry("BTCUSDT") is None
    profile.unseen[ANY] = "other"
    assert profile.kind_of("BTCUSDT") == "other" and profile.kind_of("AUDUSD") == "fx"
    with pytest.raises(ProfileError, match="@future.*shapes: @pair, @ticker"):
        Profile({}, kinds=kinds, unseen={"@future": "fx"})


def test_workers_run_the_shipped_kinds_by_default_and_none_turns_them_off():
    default = Settings.from_env({})
    assert default.drift.profile == BUNDLED and default.drift.rule == "break+dt_spread+profile"
    assert Settings().drift == default.drift
    stage = DriftStage(default.drift)
    shipped = stage.profiles.profile
    assert shipped.symbols == {} and set(shipped.kinds) == {"fx", "stock"}
    assert shipped.unseen == {PAIR: "fx", TICKER: "stock"}
    assert shipped.kinds["fx"].instruments == ["EURUSD", "NZDUSD"]
    assert shipped.entry("GBPUSD")[3] == "fx" and shipped.entry("MSFT")[3] == "stock"
    assert shipped.entry("BTCUSDT") is None
    off = Settings.from_env({"SPARK_DRIFT_PROFILE": " None "})
    assert off.drift.profile == NO_PROFILE and off.drift.rule == "break+dt_spread"
    assert DriftStage(off.drift).profiles is None
    with pytest.raises(SettingsError, match="SPARK_DRIFT_PROFILE is none"):
        DriftStage(Settings.from_env({"SPARK_DRIFT_PROFILE": "none",
                                      "SPARK_GATE_RULE": "break+profile"}).drift)  # fmt: skip


def test_the_shipped_file_is_what_the_train_days_give():
    """``bench/drift_kinds_file.py`` writes the file from the data: regenerated here, it is
    the same byte for byte, and learnt on train days only (FX to 2014-05-06, stocks to
    2013-10-09: the later days are out of sample for it)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    from spark.research.drift import shipped_kinds

    profile, dates = shipped_kinds(SHARED_DATA)
    assert BUNDLED_PATH.read_text() == json.dumps(profile.as_dict(), indent=1) + "\n"
    assert max(d for n in ("EURUSD", "NZDUSD") for d in dates[n]) == "2014-05-06"
    assert max(d for n in ("AIG", "BAC", "IBM") for d in dates[n]) == "2013-10-09"
    assert min(len(d) for d in dates.values()) == 3


def test_the_default_worker_catches_a_volatility_switch_it_missed_before():
    """NZDUSD's last day (after every train day of the shipped file), its moves ×3 after
    50,000 ticks: the default rule with the shipped kinds alarms within 2,000 ticks by the
    fx kind's move rise and not before; without a profile (the default until session 31)
    it does not alarm at all."""
    paths = sorted((SHARED_DATA / "fxcm/nzdusd").glob("*_quote.zip"))
    if not paths:
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    day = Day("NZDUSD", paths[-1].name[:8], str(paths[-1]))
    stream, switch = _stream(day, None, "vol_x3", 50_000, 20_000)

    def warnings(env):
        s = Settings.from_env(env).with_models(model="logreg")
        result = SignalPipeline(replace(s, trading=False)).step(stream)
        at = result.kept if result.kept is not None else np.arange(len(stream))
        return [(int(at[i]), a["detector"]) for i, a in result.alerts
                if a["severity"] == "warning"]  # fmt: skip

    caught = warnings({})
    assert caught and switch < caught[0][0] <= switch + 2_000, caught
    assert caught[0][1] == "profile_move_up"
    assert warnings({"SPARK_DRIFT_PROFILE": "none"}) == []


def test_spark_drift_profile_kinds_only_by_shape(tmp_path):
    """``--kinds-only --unseen @ticker=stock``: a file with no instrument's own entry that
    watches every ticker, BAC too; a shape that does not exist is one line."""
    from click.testing import CliRunner

    from spark.cli import cli

    out = tmp_path / "p.json"
    runner = CliRunner()
    base = profile_command(out)
    made = runner.invoke(cli, [*base, "--kinds-only", "--kind", "stock=BAC,AIG",
                               "--unseen", "@ticker=stock"])  # fmt: skip
    assert made.exit_code == 0, made.output
    assert "wrote" in made.output and "watches: every stock ticker" in made.output
    saved = Profile.load(out)
    assert saved.symbols == {} and saved.unseen == {TICKER: "stock"}
    assert saved.entry("BAC")[3] == "stock" and saved.entry("EURUSD") is None
    rolled = runner.invoke(cli, [*base, "--kinds-only", "--kind", "stock=BAC,AIG", "--unseen",
                                 "@ticker=stock", "--rollover", "stock=60"])  # fmt: skip
    assert rolled.exit_code == 0 and "for 65 minutes (rollover)" in rolled.output, rolled.output
    assert Profile.load(out).kinds["stock"].rollover == 60
    for args, says in [
        (["--kinds-only"], "--kinds-only writes the --kind entries only: give --kind"),
        (["--kind", "stock=BAC,AIG", "--unseen", "@future=stock"],
         "no shape '@future'; shapes: @pair, @ticker"),
        (["--kind", "stock=BAC,AIG", "--rollover", "fx=90"], "no kind 'fx' is learnt here"),
        (["--kind", "stock=BAC,AIG", "--rollover", "stock=soon"], "give KIND=MINUTES"),
    ]:  # fmt: skip
        wrong = runner.invoke(cli, [*base, *args])
        assert wrong.exit_code == 2 and says in wrong.output, wrong.output
        assert "Traceback" not in wrong.output


def test_the_shipped_file_is_package_data():
    """A wheel carries the file the default reads (pyproject's package-data)."""
    import tomllib

    root = Path(__file__).resolve().parent.parent
    data = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert BUNDLED_PATH.name in data["package-data"]["spark.drift"]
    assert BUNDLED_PATH.parent == root / "spark" / "drift" and BUNDLED_PATH.is_file()


def test_a_checkpoint_carries_the_lagged_means_on():
    """The shipped kinds take the residual against the slow mean of 1,000 values before
    (session 35), kept in a ring per symbol. NZDUSD's moves ×3 (as above), cut 500 ticks
    after the switch: the restored worker raises the same alarms as the one never stopped.
    A checkpoint without the ring (the layout before) starts the profile part afresh: every
    symbol warms up again, rather than take its residuals against means it does not have."""
    from spark.drift.profile import KINDS as PROFILE_KINDS
    from spark.drift.profile import SEEN
    from tests.helpers import checkpointed_at

    paths = sorted((SHARED_DATA / "fxcm/nzdusd").glob("*_quote.zip"))
    if not paths:
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    day = Day("NZDUSD", paths[-1].name[:8], str(paths[-1]))
    stream, switch = _stream(day, None, "vol_x3", 50_000, 5_000)
    settings = replace(Settings.from_env({}).with_models(model="logreg"), trading=False)
    original, a, b = checkpointed_at(settings, stream, switch + 500)
    profile = [(i, x["detector"]) for i, x in a.alerts if x["detector"] in PROFILE_KINDS]
    assert profile and profile == [(i, x["detector"]) for i, x in b.alerts
                                   if x["detector"] in PROFILE_KINDS]  # fmt: skip
    ring = original.drift.profiles.ring
    assert ring.shape[1:] == (2, 1_000) and np.count_nonzero(ring) > 0
    stage = original.drift
    meta, arrays, concept = stage.state()
    del arrays["drift.profiles_ring"]
    stage.restore(meta, arrays, concept)
    assert stage.profiles.ring.shape[1:] == (2, 1_000)
    assert not stage.profiles.state[:, SEEN].any()
