"""Pure streams/ML logic: features, delayed labels, quality metrics, progressive evaluation."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from spark.features import FEATURE_NAMES, TickFeatures
from spark.ml.evaluate import Progressive, evaluate
from spark.ml.labels import DelayedLabels
from spark.ml.models import MODELS, make_model
from spark.ml.quality import exact_auc, precision_at_top
from spark.ticks.model import Tick
from spark.ticks.readers import read

BUNDLED = Path(__file__).resolve().parent.parent / "spark/data/fxcm/eurusd/20140501_quote.zip"


def real_ticks(limit: int | None = None) -> list[Tick]:
    rows = (r.tick for r in read(BUNDLED, "lean-quote") if r.tick)
    return list(itertools.islice(rows, limit))


def test_features_have_the_documented_names_and_are_finite():
    f = TickFeatures()
    vectors = [x for t in real_ticks(5000) if (x := f.update(t)) is not None]
    assert len(vectors) == 5000  # one per tick
    for x in vectors:
        assert tuple(x) == FEATURE_NAMES
        assert all(math.isfinite(v) for v in x.values())
    rsi = [x["rsi_14"] for x in vectors]
    assert min(rsi) >= -50 and max(rsi) <= 50
    assert max(x["activity_1m"] for x in vectors) > 10


def test_feature_state_is_constant_size_and_round_trips_through_json():
    ticks = real_ticks(3000)
    f = TickFeatures()
    for t in ticks[:1000]:
        f.update(t)
    size_at_1000 = len(json.dumps(f.to_state()))
    restored = TickFeatures.from_state(json.loads(json.dumps(f.to_state())))
    for t in ticks[1000:]:
        assert f.update(t) == restored.update(t)
    assert abs(len(json.dumps(f.to_state())) - size_at_1000) < 200  # no growing windows


def test_delayed_labels_use_the_mid_prevailing_at_the_horizon():
    q = DelayedLabels(horizon_us=10)
    q.add(0, 1.0, "t0")
    assert q.resolve(3, 1.1) == []
    q.add(3, 1.1, "t3")
    assert q.resolve(10, 0.9) == []  # 0 + 10 is not before 10: the mid at 10 may still change
    q.add(10, 0.9, "t10a")
    assert q.resolve(10, 1.2) == []  # another tick at 10: still not final
    q.add(10, 1.2, "t10b")
    # at ts 11 the mid prevailing at 10 is final: 1.2, from the last tick at 10
    assert q.resolve(11, 1.0) == [("t0", 1)]
    q.add(11, 1.0, "t11")
    assert q.resolve(14, 1.1) == [("t3", 0)]  # mid prevailing at 13 is 1.0 (from ts 11) < 1.1
    q.add(14, 1.1, "t14")
    # mids prevailing at 20, 20, 21 and 24 are all 1.1 (from ts 14)
    assert q.resolve(30, 1.1) == [("t10a", 1), ("t10b", 0), ("t11", 1)]
    assert q.ties == 1 and len(q) == 0  # t14: 1.1 -> 1.1


def test_label_ties_are_skipped():
    q = DelayedLabels(horizon_us=5)
    q.add(0, 1.0, "a")
    q.add(1, 1.0, "b")
    assert q.resolve(100, 1.0) == [] and q.ties == 2


@pytest.mark.parametrize("name", ["logreg", "gbm"])
def test_no_look_ahead_changing_the_future_never_changes_past_predictions(name):
    ticks = real_ticks(6000)
    cut = 4000
    future = [dataclasses.replace(t, bid=t.bid * 1.01, ask=t.ask * 1.02) for t in ticks[cut:]]

    def predictions(stream):
        run = Progressive(make_model(name), horizon_s=2.0)
        out = [out[1] if (out := run.step(t)) else None for t in stream]
        return out, run

    original, run = predictions(ticks)
    altered, _ = predictions(ticks[:cut] + future)
    assert original[:cut] == altered[:cut]  # every prediction before the first changed tick
    assert original[cut + 200 :] != altered[cut + 200 :]  # and the change does matter afterwards
    if name == "gbm":  # the trees were refit (conftest: every 1,000 labels) before the cut
        assert run.learner.model.estimator.fits >= 3


def test_gbm_snapshot_keeps_the_trees_not_the_window():
    import pickle

    from spark.ml.boosted import WindowedBoosting
    from spark.ml.models import OnlineModel

    model = OnlineModel("gbm", WindowedBoosting(window=1000, refit_every=400, min_leaf=20))
    rng = np.random.default_rng(3)
    rows = [{"a": float(rng.normal()), "b": float(rng.normal())} for _ in range(1700)]
    for x in rows[:900]:
        model.learn(x, int(x["a"] * x["b"] > 0))  # an interaction, learned by the trees
    booster = model.estimator
    assert booster.fits == 2 and booster.booster is not None
    for x in rows[900:950]:  # the one-row fast path gives exactly LightGBM's predict
        slow = booster.booster.predict(booster._row(x).reshape(1, -1))[0]
        assert booster.predict_proba_one(x)[1] == slow
    blob = pickle.dumps(booster)
    assert len(blob) < 200_000  # the window (1000 rows) is not in it
    restored = pickle.loads(blob)
    assert [restored.predict_proba_one(x) for x in rows[900:1300]] == [
        booster.predict_proba_one(x) for x in rows[900:1300]
    ]
    assert restored.predict_proba_one({"a": 1.0, "b": 1.0})[1] > 0.7
    assert restored.predict_proba_one({"a": 1.0, "b": -1.0})[1] < 0.3
    assert booster.fit_rows == restored.fit_rows == 800
    for x in rows[900:1300]:  # 400 new labels: refit_every, but fewer than the trees had
        restored.learn_one(x, int(x["a"] * x["b"] > 0))
    assert restored.fits == 2
    for x in rows[1300:1700]:  # the window holds 800 again: it refits
        restored.learn_one(x, int(x["a"] * x["b"] > 0))
    assert restored.fits == 3 and restored.fit_rows == 800


def test_exact_auc_matches_brute_force():
    rng = np.random.default_rng(1)
    scores = np.round(rng.random(300), 2)  # with ties
    labels = (rng.random(300) < scores).astype(int)
    pairs = [
        (s1 > s0) + 0.5 * (s1 == s0)
        for s1, y1 in zip(scores, labels, strict=True)
        if y1
        for s0, y0 in zip(scores, labels, strict=True)
        if not y0
    ]
    assert exact_auc(scores, labels) == pytest.approx(np.mean(pairs))


def test_precision_at_20_over_blocks():
    scores = np.full(2500, 0.5)
    labels = np.zeros(2500, dtype=int)
    scores[:20] = 0.9  # block 1: top 20 say up and are right
    labels[:20] = 1
    scores[1000:1020] = 0.95  # block 2: top 20 say up and are wrong
    # the last 500 are not a full block and are ignored
    scores[2000:2020] = 0.99
    assert precision_at_top(scores, labels) == pytest.approx(0.5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_learns_something_simple(name):
    model = make_model(name)
    rng = np.random.default_rng(0)
    for _ in range(600):
        v = float(rng.normal())
        model.learn({"a": v, "b": float(rng.normal())}, int(v > 0))
    assert model.prob_up({"a": 2.0, "b": 0.0}) > model.prob_up({"a": -2.0, "b": 0.0})


def test_evaluate_counts_every_resolved_label_once():
    ticks = real_ticks(3000)
    result = evaluate(ticks, horizon_s=2.0)
    predictions = len(ticks)
    # every prediction is scored, a tie, or still pending at the end of the data
    assert result.n + result.ties <= predictions
    assert predictions - (result.n + result.ties) < 50
    assert 0.0 <= result.auc <= 1.0


def test_model_eval_cli_json(shared_data):
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.ticks.replay import valid_ticks

    day = shared_data / "fxcm/eurusd/20140504_quote.zip"  # a short real day
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "eval",
            "--data",
            str(day),
            "--format",
            "lean-quote",
            "--horizon",
            "2",
            "--model",
            "logreg",  # the fastest learner: this tests the CLI (gbm live = offline: test_streams)
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert {"n", "auc", "precision_at_20"} <= set(out)
    direct = evaluate(valid_ticks([day], "lean-quote"), horizon_s=2.0, model="logreg")
    assert (out["n"], out["auc"]) == (direct.n, direct.auc)  # the CLI runs exactly that code
    assert out["ticks"] == direct.ticks == 7_851  # every valid tick of the day


def test_model_eval_cli_errors_are_one_line(tmp_path):
    from click.testing import CliRunner

    from spark.cli import cli

    result = CliRunner().invoke(
        cli, ["model", "eval", "--data", str(tmp_path / "x.zip"), "--format", "lean-quote"]
    )
    assert result.exit_code == 1 and result.output.startswith("error: no such file")
    result = CliRunner().invoke(
        cli, ["model", "eval", "--data", str(BUNDLED), "--format", "lean-quote", "--model", "gpt"]
    )
    assert result.exit_code == 2 and "gpt" in result.output


def test_model_eval_per_file_carries_the_model_and_scores_each_day(shared_data):
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.ticks.replay import valid_ticks

    # the two short days, given out of order: name (date) order wins
    days = [shared_data / f"fxcm/eurusd/201405{d}_quote.zip" for d in ("11", "04")]
    args = ["model", "eval", "--format", "lean-quote", "--model", "logreg", "--per-file"]
    for day in days:
        args += ["--data", str(day)]
    result = CliRunner().invoke(cli, [*args, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    first, second = out["files"]
    assert [Path(f["file"]).name for f in (first, second)] == [d.name for d in reversed(days)]
    alone = evaluate(valid_ticks([days[1]], "lean-quote"), horizon_s=1.0, model="logreg")
    assert (first["n"], first["auc"]) == (alone.n, alone.auc)  # the first day starts fresh
    assert first["n"] + second["n"] == out["n"]  # every scored label in exactly one day
    assert first["ticks"] + second["ticks"] == out["ticks"]
    # the second day is scored with the model carried from the first: not a fresh run
    fresh = evaluate(valid_ticks([days[0]], "lean-quote"), horizon_s=1.0, model="logreg")
    assert second["auc"] != fresh.auc
