"""Features, delayed labels, learners, quality metrics and progressive evaluation, as the
SignalPipeline computes them (no Kafka)."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest

from spark.features import FEATURE_NAMES
from spark.features import kernel as features
from spark.ml.evaluate import evaluate
from spark.ml.quality import exact_auc, precision_at_top
from spark.pipeline import SignalPipeline, TickBatch
from spark.settings import MODEL_NAMES, Settings
from spark.ticks.model import Tick
from spark.ticks.readers import read

BUNDLED = Path(__file__).resolve().parent.parent / "spark/data/fxcm/eurusd/20140501_quote.zip"
SCORING = Settings(gate=False, trading=False)


def real_ticks(limit: int | None = None) -> list[Tick]:
    rows = (r.tick for r in read(BUNDLED, "lean-quote") if r.tick)
    return list(itertools.islice(rows, limit))


def step(ticks, settings=SCORING):
    return SignalPipeline(settings).step(TickBatch.from_ticks(ticks))


def test_features_have_the_documented_names_and_are_finite():
    result = step(real_ticks(5000))
    assert result.valid.all()  # one vector per tick
    assert result.features.shape == (5000, len(FEATURE_NAMES)) and len(FEATURE_NAMES) == 54
    assert np.isfinite(result.features).all()
    rsi = result.features[:, FEATURE_NAMES.index("rsi_14")]
    assert rsi.min() >= -50 and rsi.max() <= 50
    assert result.features[:, FEATURE_NAMES.index("activity_1m")].max() > 10


def test_feature_state_is_a_fixed_size_row_per_symbol():
    f, i = features.new_state(1)
    row = np.zeros(features.N_FEATURES)
    for t in real_ticks(3000):
        features.update(f[0], i[0], t.ts, t.bid, t.ask, math.nan, math.nan, math.nan, math.nan, row)
    assert f.shape == (1, features.FLOATS) and i.shape == (1, features.INTS)  # no growing windows
    assert f.nbytes + i.nbytes == 121 * 8 + 10 * 8  # 1,048 bytes (v3: 16 more doubles, v4: 2)


def labels_of(
    ticks: list[tuple[int, float]], horizon_us: int = 1, moves: int = 0
) -> list[tuple[int, int]]:
    """(index of the tick the label belongs to, label) resolved over one-symbol mids."""
    settings = Settings(gate=False, trading=False).with_models(
        model="logreg", horizon_s=horizon_us / 1e6, horizon_moves=moves
    )
    batch = TickBatch.from_ticks(Tick("X", 1_000_000 + ts, bid=mid, ask=mid) for ts, mid in ticks)
    result = SignalPipeline(settings).step(batch)
    assert result.ties + len(result.labels) <= len(batch)
    # which queued vector each label belongs to: the oldest pending ones resolve first
    queued, out = [], []
    for i in range(len(batch)):
        for e in np.flatnonzero(result.labels.tick == i).tolist():
            out.append((queued.pop(0), int(result.labels.y[e])))
        queued.append(i)
    return out


def test_delayed_labels_use_the_mid_prevailing_at_the_horizon():
    # H = 10 µs; (ts, mid): a label is final only once a tick later than t + H arrives, and it
    # compares the mid prevailing at t + H (the last tick at or before it) with the mid at t
    ticks = [(0, 1.0), (3, 1.1), (10, 0.9), (10, 1.2), (11, 1.0), (14, 1.1), (30, 1.1)]
    resolved = labels_of(ticks, horizon_us=10)
    # t0 resolves at ts 11 against 1.2 (the last tick at 10): up; t3 at 14 against 1.0: down;
    # at 30, t10a (0.9 -> 1.1) up, t10b (1.2 -> 1.1) down, t11 (1.0 -> 1.1) up; t14 is a tie
    assert resolved == [(0, 1), (1, 0), (2, 1), (3, 0), (4, 1)]


def test_labels_in_event_time_compare_the_mid_after_the_next_moves():
    # (ts, mid); the clock plays no part: a vector's label is the sign of the mid after the
    # symbol's mid has moved `moves` times since it, known at that tick
    ticks = [(0, 1.0), (1, 1.0), (2, 1.1), (3, 1.1), (4, 1.0), (5, 1.2), (6, 1.2), (9, 1.2)]
    # one move: t0, t1 resolve at t2 (1.1: up); t2, t3 at t4 (down); t4 at t5 (up); t5,
    # t6, t7 wait for a move
    assert labels_of(ticks, moves=1) == [(0, 1), (1, 1), (2, 0), (3, 0), (4, 1)]
    stretched = [(ts * 10**6, mid) for ts, mid in ticks]  # seconds apart, not microseconds
    assert labels_of(stretched, horizon_us=1, moves=1) == labels_of(ticks, moves=1)
    # two moves: t0, t1 resolve at t4 (1.0 again: ties, no label); t2, t3 at t5 (1.2: up)
    settings = Settings(gate=False, trading=False).with_models(model="logreg", horizon_moves=2)
    batch = TickBatch.from_ticks(Tick("X", 1_000_000 + ts, bid=mid, ask=mid) for ts, mid in ticks)
    result = SignalPipeline(settings).step(batch)
    assert result.ties == 2
    assert result.labels.tick.tolist() == [5, 5] and result.labels.y.tolist() == [1, 1]


def test_label_ties_are_skipped():
    settings = Settings(gate=False, trading=False).with_models(
        model="logreg", horizon_s=5e-6, horizon_moves=0
    )
    batch = TickBatch.from_ticks(Tick("X", 1_000_000 + ts, bid=1.0, ask=1.0) for ts in (0, 1, 100))
    result = SignalPipeline(settings).step(batch)
    assert len(result.labels) == 0 and result.ties == 2


def test_float_rounding_of_the_mid_is_not_a_move():
    # OANDA quotes often move the bid up and the ask down by one step: the mid is the same,
    # but (1.38711 + 1.38725) / 2 is 2.2e-16 above (1.38710 + 1.38726) / 2 in floats. Until
    # session 34 that counted as a mid move with a random sign: a label, a move for the
    # event-time horizon, ret_bp != 0, last_move_sign, updown_5s.
    quotes = [(1.38710, 1.38726), (1.38711, 1.38725)]
    assert sum(quotes[0]) / 2 != sum(quotes[1]) / 2  # the rounding the test is about
    ticks = [
        Tick("EURUSD", 1_000_000 + k * 600_000, bid=b, ask=a)
        for k, (b, a) in enumerate(quotes[k % 2] for k in range(40))
    ]
    for moves in (0, 1):
        settings = SCORING.with_models(model="logreg", horizon_s=1.0, horizon_moves=moves)
        result = SignalPipeline(settings).step(TickBatch.from_ticks(ticks))
        assert len(result.labels) == 0  # every label a tie; event time: no move at all
    x = step(ticks).features
    for name in ("ret_bp", "last_move_sign", "updown_5s", "mom_20_bp", "persist_20"):
        assert not x[:, FEATURE_NAMES.index(name)].any(), name
    # a real move of half a step right after is one
    moved = [*ticks, Tick("EURUSD", ticks[-1].ts + 600_000, bid=1.38712, ask=1.38725)]
    assert step(moved).features[-1, FEATURE_NAMES.index("last_move_sign")] == 1.0


@pytest.mark.parametrize(("name", "moves"), [*((m, 0) for m in MODEL_NAMES), ("gbm", 1)])
def test_no_look_ahead_changing_the_future_never_changes_past_predictions(name, moves):
    ticks = real_ticks(6000)
    cut = 4000
    future = [Tick(t.symbol, t.ts, bid=t.bid * 1.01, ask=t.ask * 1.02) for t in ticks[cut:]]
    settings = SCORING.with_models(
        model=name,
        horizon_s=2.0,
        horizon_moves=moves,
        gbm_window=1000,
        gbm_refit=400,
        gbm_swap=100,
    )

    def predictions(stream):
        pipeline = SignalPipeline(settings)
        return pipeline.step(TickBatch.from_ticks(stream)).probs[:, 0], pipeline

    original, pipeline = predictions(ticks)
    altered, _ = predictions(ticks[:cut] + future)
    assert (original[:cut] == altered[:cut]).all()  # every prediction before the change
    assert (original[cut + 200 :] != altered[cut + 200 :]).any()  # and it matters after
    if name == "gbm":  # trees were refit (every 400 labels) before the cut
        assert pipeline.learners.slots[0].fits >= 3


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


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_every_model_learns_something_simple(name):
    # a symbol whose mid moves in the direction its spread says: up after a wide quote
    rng = np.random.default_rng(0)
    mid, ticks = 100.0, []
    for k in range(4000):
        wide = bool(rng.random() < 0.5)
        spread = 0.04 if wide else 0.01
        ticks.append(Tick("X", 1_000_000 * (k + 1), bid=mid - spread / 2, ask=mid + spread / 2))
        mid += 0.01 if wide else -0.01
    settings = SCORING.with_models(model=name, gbm_window=2000, gbm_refit=1000, gbm_swap=0)
    result = step(ticks, settings)
    late = result.labels.tick > 2000
    assert exact_auc(result.labels.p[late, 0], result.labels.y[late]) > 0.9


def test_evaluate_counts_every_resolved_label_once():
    ticks = real_ticks(3000)
    result = evaluate(
        TickBatch.from_ticks(ticks), SCORING.with_models(horizon_s=2.0, horizon_moves=0)
    )
    # every prediction is scored, a tie, or still pending at the end of the data
    assert result.n + result.ties <= len(ticks) == result.ticks
    assert len(ticks) - (result.n + result.ties) < 50
    assert 0.0 <= result.auc <= 1.0


def test_model_eval_cli_json(shared_data):
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.ticks.columns import read_batch

    day = shared_data / "fxcm/eurusd/20140504_quote.zip"  # a short real day
    args = ["model", "eval", "--data", str(day), "--format", "lean-quote", "--horizon", "2"]
    result = CliRunner().invoke(cli, [*args, "--model", "logreg", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert {"n", "auc", "precision_at_20"} <= set(out)
    batch, _ = read_batch([day], "lean-quote")
    direct = evaluate(
        batch, Settings.from_env().with_models(model="logreg", horizon_s=2.0, horizon_moves=0)
    )
    assert (out["n"], out["auc"]) == (direct.n, direct.auc)  # the CLI runs exactly that code
    assert out["ticks"] == direct.ticks == 7_851  # every valid tick of the day
    # in event time: every vector but the last few gets a label, and none is a tie
    moves = CliRunner().invoke(cli, [*args[:-1], "1 move", "--model", "logreg", "--json"])
    out = json.loads(moves.output.strip().splitlines()[-1])
    direct = evaluate(batch, Settings.from_env().with_models(model="logreg", horizon_moves=1))
    assert (out["n"], out["auc"], out["horizon"]) == (direct.n, direct.auc, "1 move")
    assert out["ties"] == 0 and 7_800 < out["n"] < 7_851 and out["horizon_moves"] == 1


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
    for bad in ("0moves", "soon", "-1"):
        result = CliRunner().invoke(
            cli,
            ["model", "eval", "--data", str(BUNDLED), "--format", "lean-quote", "--horizon", bad],
        )
        assert result.exit_code == 2 and "Invalid value for '--horizon'" in result.output, bad


def test_model_eval_per_file_carries_the_model_and_scores_each_day(shared_data):
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.ticks.columns import read_batch

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
    settings = Settings.from_env().with_models(model="logreg")
    alone = evaluate(read_batch([days[1]], "lean-quote")[0], settings)
    assert (first["n"], first["auc"]) == (alone.n, alone.auc)  # the first day starts fresh
    assert first["n"] + second["n"] == out["n"]  # every scored label in exactly one day
    assert first["ticks"] + second["ticks"] == out["ticks"]
    # the second day is scored with the model carried from the first: not a fresh run
    fresh = evaluate(read_batch([days[0]], "lean-quote")[0], settings)
    assert second["auc"] != fresh.auc


def test_model_eval_per_file_fresh_scores_each_day_as_if_alone(shared_data):
    """`--per-file --fresh`: each file from a new model and feature state, so each row
    equals `spark model eval` on that file alone (the issue's check, one command)."""
    from click.testing import CliRunner

    from spark.cli import cli
    from spark.ticks.columns import read_batch

    days = [shared_data / f"fxcm/eurusd/201405{d}_quote.zip" for d in ("04", "11")]
    args = ["model", "eval", "--format", "lean-quote", "--model", "logreg", "--per-file"]
    for day in days:
        args += ["--data", str(day)]
    result = CliRunner().invoke(cli, [*args, "--fresh", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output.strip().splitlines()[-1])
    assert out["fresh_per_file"] is True
    settings = Settings.from_env().with_models(model="logreg")
    for row, day in zip(out["files"], days, strict=True):
        alone = evaluate(read_batch([day], "lean-quote")[0], settings)
        assert (row["n"], row["auc"], row["precision_at_20"]) == (
            alone.n, alone.auc, alone.precision_at_20
        )  # fmt: skip
    assert out["n"] == sum(row["n"] for row in out["files"])
    text = CliRunner().invoke(cli, [*args, "--fresh"]).output
    assert "(each from a fresh model)" in text
    refused = CliRunner().invoke(cli, ["model", "eval", "--data", str(days[0]), "--format",
                                       "lean-quote", "--fresh"])  # fmt: skip
    assert refused.exit_code == 2 and "--per-file" in refused.output


def test_model_eval_per_file_summarises_and_charts(shared_data, tmp_path):
    from click.testing import CliRunner

    from spark.cli import cli

    days = [shared_data / f"fxcm/eurusd/201405{d}_quote.zip" for d in ("04", "11")]
    args = ["model", "eval", "--format", "lean-quote", "--model", "logreg", "--per-file"]
    for day in days:
        args += ["--data", str(day)]
    pdf = tmp_path / "auc.pdf"
    out = json.loads(CliRunner().invoke(cli, [*args, "--json", "--pdf", str(pdf)]).output)
    aucs = [f["auc"] for f in out["files"]]
    summary = out["summary"]
    assert summary["auc"]["worst"] == min(aucs) and summary["files"] == 2
    assert summary["auc"]["spread"] == pytest.approx(max(aucs) - min(aucs))
    assert summary["meeting_targets"] == sum(
        f["auc"] >= 0.62 and f["precision_at_20"] >= 0.58 for f in out["files"]
    )
    assert pdf.read_bytes().startswith(b"%PDF")
    text = CliRunner().invoke(cli, args).output
    assert "per file: AUC mean" in text and "targets" in text.splitlines()[0]
    refused = CliRunner().invoke(cli, ["model", "eval", "--data", str(days[0]), "--format",
                                       "lean-quote", "--pdf", str(tmp_path / "x.pdf")])  # fmt: skip
    assert refused.exit_code == 2 and "--per-file" in refused.output


@pytest.mark.parametrize("pair", ["eurusd", "nzdusd"])
def test_the_shipped_defaults_meet_the_issues_bar_on_a_held_out_day(shared_data, pair, monkeypatch):
    """The issue's check as written, `spark model eval` with the shipped defaults on a whole
    day-file, on a test day of the selection split (2014-05-11: no default was chosen on
    it): AUC >= 0.62 and precision@20 >= 0.58 (docs/ml.md, session 29: 0.6782 / 0.6429
    EURUSD, 0.6517 / 0.7844 NZDUSD). A change that makes the model or its features worse
    on real ticks fails here."""
    from click.testing import CliRunner

    from spark.cli import cli

    for name in ("SPARK_GBM_WINDOW", "SPARK_GBM_REFIT"):  # the shipped window, not the tests'
        monkeypatch.delenv(name, raising=False)
    day = shared_data / f"fxcm/{pair}/20140511_quote.zip"
    result = CliRunner().invoke(
        cli, ["model", "eval", "--data", str(day), "--format", "lean-quote", "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["model"] == "gbm" and out["horizon"] == "1s" and out["n"] > 5_000
    assert out["auc"] >= 0.62 and out["precision_at_20"] >= 0.58, out


def test_per_file_tables_name_the_folder_where_two_files_share_a_name():
    from spark.cli.model import shown_names

    assert shown_names(["d/eurusd/20140501_quote.zip", "d/eurusd/20140502_quote.zip"]) == [
        "20140501_quote.zip",
        "20140502_quote.zip",
    ]
    assert shown_names(["d/eurusd/20140501_quote.zip", "d/nzdusd/20140501_quote.zip"]) == [
        "eurusd/20140501_quote.zip",
        "nzdusd/20140501_quote.zip",
    ]


def test_eval_commands_say_so_in_one_line_when_no_tick_is_valid(tmp_path, shared_data):
    """A wrong --format or a file of garbage: one line naming the files, the format and the
    rejected rows, exit 1; not a report of 0 ticks."""
    from click.testing import CliRunner

    from spark.cli import cli

    bad = tmp_path / "bad.csv"
    bad.write_text("garbage,1,2\n")
    day = str(shared_data / "fxcm/eurusd/20140511_quote.zip")
    runs = {
        "model": ["model", "eval", "--data", str(bad), "--format", "csv"],
        "drift": ["drift", "eval", "--data", day, "--then", str(bad), "--format", "csv"],
        "format": ["model", "eval", "--data", day, "--format", "lean-trade", "--json"],
    }
    for name, args in runs.items():
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 1, (name, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and "no valid ticks in" in lines[0], (name, lines)
        assert "Traceback" not in result.output and "rows rejected: unparsable" in lines[0]


def test_drift_eval_runs_with_or_without_its_progress_bar(shared_data):
    from click.testing import CliRunner

    from spark.cli import cli

    days = [str(shared_data / f"fxcm/{p}/20140511_quote.zip") for p in ("eurusd", "nzdusd")]
    args = ["drift", "eval", "--data", days[0], "--then", days[1], "--format", "lean-quote"]
    out = {}
    for flag in ("--progress", "--no-progress"):
        result = CliRunner().invoke(cli, [*args, flag, "--json"])
        assert result.exit_code == 0, result.output
        out[flag] = json.loads(result.output.strip().splitlines()[-1])
    assert out["--progress"] == out["--no-progress"]
    assert out["--no-progress"]["delay_ticks"] == 20  # the jump, as the price screen passes it
