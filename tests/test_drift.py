"""Drift detectors and the measured-delay evaluation (pure, real ticks)."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from click.testing import CliRunner
from river import drift as river_drift

from spark.cli import cli
from spark.drift.evaluate import DETECTORS, drift_eval
from spark.drift.kernel import Detector, DetectorSet
from spark.pipeline import TickBatch
from spark.settings import Settings
from spark.ticks.replay import valid_ticks
from tests.test_pipeline import BUNDLED


def test_psi_quiet_on_one_distribution_and_fires_once_on_a_shift():
    rng = np.random.default_rng(3)
    detectors = DetectorSet([Detector(0, window=500, threshold=0.5, check_every=50)], [])
    detectors.grow(1)

    def run(values):
        x = values.reshape(-1, 1)
        return detectors.step(np.zeros(len(x), np.int64), x, np.ones(len(x), bool))

    assert len(run(rng.normal(0, 1, 20_000))[0]) == 0
    ticks, _, stats = run(rng.normal(3, 1, 5_000))
    assert len(ticks) == 1  # then a new reference is learned from the new regime
    assert ticks[0] < 1000 and stats[0] > 0.5


def test_adwin_sees_a_jump_in_errors():
    rng = np.random.default_rng(4)
    detector = river_drift.ADWIN(delta=1e-4)  # as the drift stage runs it per symbol and model

    def alarms(errors):
        out = []
        for e in errors:
            detector.update(float(e))
            out.append(detector.drift_detected)
        return out

    assert sum(alarms(rng.uniform(0.0, 0.4, 5_000))) <= 1 and any(
        alarms(rng.uniform(0.5, 1.0, 2_000))
    )


def _error_streams():
    """Prediction-error-like streams with shifts: uniform, normal, 0/1 and a constant run."""
    for seed in range(8):
        rng = np.random.default_rng(seed)
        n = 4_000
        x = np.concatenate(
            [
                rng.uniform(0, 0.3 + 0.1 * (seed % 3), n),
                rng.uniform(0.3, 1.0, n),
                np.abs(rng.normal(0.5, 0.2, n)),
                np.full(500, 0.25),
            ]
        )
        yield (x > 0.5).astype(float) if seed % 4 == 0 else x


def test_compiled_adwin_is_rivers_adwin_step_for_step():
    """Detections, window width, total and variance equal river's ADWIN after every value,
    and a detector read from river's serialized state mid-stream carries on as river's."""
    from spark.drift import adwin

    detections = 0
    for stream in _error_streams():
        theirs = river_drift.ADWIN(delta=1e-4)
        mine = adwin.AdwinSet(1, 1)
        scal, ints, count, buckets = (a[0, 0] for a in mine.state)
        for i, value in enumerate(stream.tolist()):
            theirs.update(value)
            found = adwin.update(value, scal, ints, count, buckets)
            assert found == theirs.drift_detected, i
            assert scal[adwin.WIDTH] == theirs.width, i
            assert scal[adwin.TOTAL] == theirs._helper.get_total(), i
            assert scal[adwin.VARIANCE] == theirs._helper.get_variance(), i
            detections += found
            if i == 5_000:  # from river's own bytes, then both go on
                read = adwin.from_river(theirs._helper.__getstate__(), theirs.drift_detected)
                for a, b in zip((scal, ints, count, buckets), read, strict=True):
                    assert np.array_equal(a, b), i
    assert detections >= 16  # at least the two shifts of each stream
    # the bytes a detector holds, as docs/hot-path.md gives them per symbol and model
    one = adwin.AdwinSet(1, 1)
    assert sum(a[0, 0].nbytes for a in one.state) == adwin.BYTES_PER_DETECTOR == 3_376


def test_rivers_adwin_state_in_another_layout_is_refused():
    from spark.drift import adwin

    theirs = river_drift.ADWIN(delta=1e-4)
    for v in range(100):
        theirs.update(v % 3 / 2)
    state = theirs._helper.__getstate__()
    with pytest.raises(ValueError, match="layout"):
        adwin.from_river(state + b"\0" * 8, False)
    other = river_drift.ADWIN(delta=0.002)
    other.update(1.0)
    with pytest.raises(ValueError, match="other settings"):
        adwin.from_river(other._helper.__getstate__(), False)


def test_drift_eval_reports_delay_and_false_alarms_per_detector():
    fx = list(
        itertools.islice(
            valid_ticks([BUNDLED / "fxcm/eurusd/20140501_quote.zip"], "lean-quote"), 60_000
        )
    )
    equity = list(
        itertools.islice(
            valid_ticks([BUNDLED / "equity/ibm/20131007_quote.zip"], "lean-quote"), 10_000
        )
    )
    result = drift_eval(TickBatch.from_ticks(fx), TickBatch.from_ticks(equity), Settings())
    assert (result["ticks_before"], result["ticks_after"]) == (len(fx), len(equity))
    # every detector, the profile part with the shipped kinds of market (session 31)
    assert set(result["detectors"]) == set(DETECTORS)
    profile = result["detectors"]["profile"]  # EURUSD watched by the fx kind: no false alarm
    assert profile["false_alarms"] == 0
    spread = result["detectors"]["psi_spread"]  # ~0.2 bp FX spreads vs ~0.5+ bp IBM spreads
    assert spread["delay_ticks"] is not None and spread["delay_ticks"] < 6000
    assert spread["delay_s"] >= 0
    for report in result["detectors"].values():
        assert report["false_alarms_per_100k"] == report["false_alarms"] / len(fx) * 1e5
    assert result["delay_ticks"] == result["detectors"][result["detector"]]["delay_ticks"]
    # the gate's default rule on this switch: its break part sees the jump at once, on the
    # first IBM tick the price screen accepts (it refuses 19 in a row first)
    assert result["detector"] == "gate"
    assert result["detectors"]["gate"]["watches"] == "break+dt_spread+profile"
    assert result["delay_ticks"] == result["detectors"]["break"]["delay_ticks"] == 20
    assert result["false_alarms_per_100k"] == 0
    assert result["detectors"]["break"]["watches"] == "ret_bp"
    # the confirmed part is measured beside it: the session-7 default unless one is named
    assert result["detectors"]["psi_confirmed"]["watches"] == "dt_s&spread_bp"
    assert result["detectors"]["psi_confirmed"]["delay_ticks"] < 2000
    named = drift_eval(
        TickBatch.from_ticks(fx[:20_000]),
        TickBatch.from_ticks(equity[:3000]),
        Settings.from_env({"SPARK_GATE_RULE": "confirmed"}),
    )
    assert named["detectors"]["gate"]["watches"] == "confirmed"
    assert named["detectors"]["psi_confirmed"]["watches"] == "spread_bp&vol_bp"
    assert named["delay_ticks"] == named["detectors"]["psi_confirmed"]["delay_ticks"]


def test_drift_eval_cli_json_and_pdf(shared_data, tmp_path):
    # the CLI's wiring, on a short day (the bundled day's figures are checked above)
    data = str(shared_data / "fxcm/eurusd/20140504_quote.zip")
    then = str(BUNDLED / "equity/ibm/20131007_quote.zip")

    def drift_eval_cli(*extra: str):
        args = ["drift", "eval", "--data", data, "--then", then, "--format", "lean-quote"]
        return CliRunner().invoke(cli, [*args, *extra])

    pdf = tmp_path / "drift.pdf"
    out = drift_eval_cli("--detector", "psi_spread", "--detector", "adwin", "--json",
                         "--pdf", str(pdf))  # fmt: skip
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert {"delay_ticks", "false_alarms_per_100k", "detectors"} <= set(result)
    assert list(result["detectors"]) == ["psi_spread", "adwin"]
    assert pdf.read_bytes().startswith(b"%PDF") and pdf.stat().st_size > 2000
    # the chart's bars: a detector that never alarmed is drawn as the worst, not at 0
    from spark.drift.evaluate import delay_bars

    labels, delays = delay_bars(result)
    for label, delay, (name, d) in zip(labels, delays, result["detectors"].items(), strict=True):
        if d["delay_ticks"] is None:
            assert label == f"{name} (none)" and delay == result["ticks_after"]
        else:
            assert label == name and delay == d["delay_ticks"]
    d = result["detectors"]["psi_spread"]
    never = dict(result, detectors={"x": dict(d, delay_ticks=None, delay_s=None)})
    assert delay_bars(never) == (["x (none)"], [float(result["ticks_after"])])
    bad = drift_eval_cli("--detector", "magic")
    assert bad.exit_code == 2 and "unknown detectors" in bad.output


@pytest.mark.parametrize("watch", ["none", "all", "spread_bp,vol_bp"])
def test_drift_settings_name_features(watch):
    from spark.drift.stage import watched_features

    assert (
        watched_features(watch)
        == {
            "none": (),
            "all": watched_features("all"),
            "spread_bp,vol_bp": ("spread_bp", "vol_bp"),
        }[watch]
    )
    with pytest.raises(Exception, match="unknown features"):
        watched_features("spread_bp,magic")
