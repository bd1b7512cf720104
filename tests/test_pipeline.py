"""The SignalPipeline and its compiled stages, without Kafka.

Each compiled stage is checked against the implementation it replaced (kept as the
specification: the Python features and PSI detectors, river's logistic regression,
LightGBM's own prediction); the pipeline is checked for the property everything rests on:
where a batch is cut never changes a record.
"""

from __future__ import annotations

import itertools
import threading
from concurrent import futures
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark.pipeline import SignalPipeline, TickBatch, learners
from spark.settings import Settings
from spark.ticks.model import Tick
from spark.ticks.replay import valid_ticks

BUNDLED = Path(__file__).resolve().parent.parent / "spark/data"
EURUSD = BUNDLED / "fxcm/eurusd/20140501_quote.zip"
IBM = BUNDLED / "equity/ibm/20131007_quote.zip"


def ticks_of(path: Path, n: int, fmt: str = "lean-quote"):
    return list(itertools.islice(valid_ticks([path], fmt), n))


@pytest.fixture(scope="module")
def mixed_ticks():
    """Real FX quotes and one-sided equity quotes, merged in time order as replay does."""
    fx, equity = ticks_of(EURUSD, 6000), ticks_of(IBM, 3000)
    return sorted(fx + equity, key=lambda t: t.ts)


def test_compiled_features_equal_the_python_definition(mixed_ticks):
    _compare_features(mixed_ticks)


def test_compiled_order_flow_features_equal_the_python_definition(shared_data):
    """The v3 features on a stock's real quotes (with sizes) and trades, merged in time
    order: OFI moves on quote updates, the trade flow on trades, and both stay within
    their ranges."""
    from spark.features import kernel

    day = shared_data / "equity/ibm"
    quotes = ticks_of(day / "20131008_quote.zip", 60_000)
    trades = ticks_of(day / "20131008_trade.zip", 20_000, "lean-trade")
    end = min(quotes[-1].ts, trades[-1].ts)
    ticks = sorted((t for t in quotes + trades if t.ts <= end), key=lambda t: t.ts)
    rows = _compare_features(ticks)
    names = list(kernel.FEATURE_NAMES)
    ofi, flow = rows[:, names.index("ofi_10s")], rows[:, names.index("tflow_60s")]
    assert np.count_nonzero(ofi) > len(ticks) // 2 and ofi.min() < 0 < ofi.max()
    assert flow.min() < 0 < flow.max() and np.abs(flow).max() <= 1.0
    assert len(ticks) > 40_000 and sum(t.last is not None for t in ticks) > 1_000


def test_order_flow_features_are_zero_without_sizes_or_trades(mixed_ticks):
    from spark.features import kernel

    fx = [t for t in mixed_ticks if t.bid_size is None and t.last is None]
    rows = _compare_features(fx)
    book = [list(kernel.FEATURE_NAMES).index(n) for n in kernel.BOOK_FEATURE_NAMES]
    assert len(fx) > 1_000 and not rows[:, book].any()


def test_regime_features_tell_trending_moves_from_bouncing_ones(mixed_ticks):
    """v4's persist features (equal to the readable definition, bit for bit, through
    ``_compare_features``) expect the next mid move's sign: after a mid that only rose, up
    (+1); after one that bounced, the other way from its last move (up after a fall). On
    real FX quotes they take both signs within [-1, 1]."""
    from spark.features import kernel

    names = list(kernel.FEATURE_NAMES)
    fast, slow = names.index("persist_20"), names.index("persist_200")

    def made_up(steps: list[float]) -> np.ndarray:
        mids = 1.1 + np.cumsum([0.0, *steps])
        ticks = [Tick("X", 1_000_000 * (k + 1), m - 0.0001, m + 0.0001) for k, m in enumerate(mids)]
        return _compare_features(ticks)

    trend = made_up([0.0001] * 300)
    fell_last = made_up([0.0001, -0.0001] * 150)
    rose_last = made_up([-0.0001, 0.0001] * 150)
    assert trend[-1, fast] > 0.99 and trend[-1, slow] > 0.5
    assert fell_last[-1, fast] > 0.99 and fell_last[-1, slow] > 0.5
    assert rose_last[-1, fast] < -0.99 and rose_last[-1, slow] < -0.5
    assert trend[0, fast] == 0.0 and trend[1, fast] == 0.0  # no move yet: no expectation
    assert trend[2, fast] > 0 > rose_last[2, fast]  # one move continued / reversed
    fx = _compare_features([t for t in mixed_ticks if t.bid_size is None and t.last is None])
    for col in (fast, slow):
        assert fx[:, col].min() < 0 < fx[:, col].max() and np.abs(fx[:, col]).max() <= 1.0


def _compare_features(ticks) -> np.ndarray:
    """Every tick's compiled features against the readable ones, bit for bit; the rows."""
    from spark.features import kernel
    from tests.oracles import TickFeatures

    reference: dict[str, TickFeatures] = {}
    state = {}
    row = np.zeros(kernel.N_FEATURES)
    nan = float("nan")
    rows = []
    for t in ticks:
        expected = reference.setdefault(t.symbol, TickFeatures()).update(t)
        f, i = state.setdefault(t.symbol, kernel.new_state(1))
        ok = kernel.update(
            f[0],
            i[0],
            t.ts,
            *(
                nan if v is None else v
                for v in (t.bid, t.ask, t.bid_size, t.ask_size, t.last, t.last_size)
            ),
            row,
        )
        assert ok == (expected is not None)
        if ok:
            assert list(expected) == list(kernel.FEATURE_NAMES)
            assert row.tolist() == list(expected.values())  # bit for bit
            rows.append(row.copy())
    assert len(rows) == len(ticks)
    return np.array(rows)


def test_compiled_logreg_learns_like_rivers_pipeline(mixed_ticks):
    from river import linear_model, optim, preprocessing

    from spark.features.kernel import FEATURE_NAMES
    from spark.ml import linear

    result = SignalPipeline(Settings(gate=False).with_models(model="logreg")).step(
        TickBatch.from_ticks(mixed_ticks[:3000])
    )
    rows = result.features[result.valid]
    river_model = preprocessing.StandardScaler() | linear_model.LogisticRegression(
        optimizer=optim.SGD(0.01), l2=1e-4
    )
    mine = linear.new_params(len(FEATURE_NAMES))
    labels = np.random.default_rng(1).integers(0, 2, len(rows))
    for row, y in zip(rows, labels, strict=True):
        x = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
        theirs = river_model.predict_proba_one(x).get(True, 0.5)
        assert linear.predict(mine, row) == pytest.approx(theirs, abs=1e-12)
        river_model.learn_one(x, bool(y))
        linear.learn(mine, row, int(y))


def test_compiled_trees_predict_what_lightgbm_predicts():
    import lightgbm

    from spark.ml import trees
    from spark.pipeline.learners import GBM_PARAMS

    rng = np.random.default_rng(7)
    x = rng.normal(size=(4000, 6))
    y = ((x[:, 0] > 0) != (x[:, 1] > 0)).astype(int)
    x[rng.random(x.shape) < 0.02] = 0.0
    booster = lightgbm.train(
        dict(GBM_PARAMS, min_data_in_leaf=20), lightgbm.Dataset(x, y), num_boost_round=30
    )
    forest = trees.Forest.from_booster(booster)
    arrays, ranges = trees.concat([forest])
    probe = rng.normal(size=(500, 6))
    probe[rng.random(probe.shape) < 0.05] = np.nan  # missing values take the default way
    probe[rng.random(probe.shape) < 0.05] = 0.0
    mine = [trees.predict(arrays, ranges[0, 0], ranges[0, 1], row) for row in probe]
    assert mine == booster.predict(probe).tolist()  # exactly


def _omp_spin_count(env: dict, shared: bool) -> int:
    """How long an idle thread of the OpenMP runtime LightGBM loads spins before it sleeps
    (libgomp's GOMP_SPINCOUNT: 300,000 when nothing is set, 0 under a passive wait policy,
    30 billion under an active one),
    in a fresh process that trains a refit (``shared``: after ``share_cores()``, as a
    worker and a research pool's processes do)."""
    import os
    import subprocess
    import sys

    code = (
        "import numpy as np; from spark.pipeline.learners import N_FEATURES, fit_forest, "
        f"share_cores; {'share_cores(); ' if shared else ''}"
        "x = np.random.default_rng(0).normal(size=(400, N_FEATURES)); "
        "assert fit_forest(x, (x[:, 0] > 0).astype(int)) is not None"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**base, "OMP_DISPLAY_ENV": "VERBOSE", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    shown = [line for line in done.stderr.splitlines() if "GOMP_SPINCOUNT" in line]
    return int(shown[0].split("=")[1].strip(" '"))


def test_refit_threads_sleep_when_idle_where_cores_are_shared():
    # spinning OpenMP threads took the cores of the tick loop and of a second worker
    # (docs/hot-path.md, session 20): where cores are shared an idle thread spins only
    # briefly (session 21: not never, which puts a fit's threads to sleep at each of its
    # parallel regions and slows every fit)
    assert _omp_spin_count({}, shared=True) == learners.SHARED_SPIN
    assert _omp_spin_count({}, shared=False) == 300_000  # alone (a backtest): libgomp's own
    # the user's say
    assert _omp_spin_count({"OMP_WAIT_POLICY": "ACTIVE"}, shared=True) > 300_000
    assert _omp_spin_count({"OMP_WAIT_POLICY": "PASSIVE"}, shared=True) == 0
    assert _omp_spin_count({"GOMP_SPINCOUNT": "5"}, shared=True) == 5


def test_the_worker_and_research_pools_share_cores():
    import inspect

    from spark.agents import worker
    from spark.research import drift, select

    assert "share_cores()" in inspect.getsource(worker.run_foreground)
    for module in (select, drift):
        assert "Pool(jobs, share_cores)" in inspect.getsource(module)


def test_gbm_fits_do_not_depend_on_the_thread_count(mixed_ticks, monkeypatch):
    """Fits train on two threads (a backtest waits for each one); the trees must be the
    ones one thread grows, or a replay on another machine setting could differ."""
    from spark.features.kernel import FEATURE_NAMES
    from spark.pipeline import learners

    result = SignalPipeline(Settings(gate=False).with_models(model="logreg")).step(
        TickBatch.from_ticks(mixed_ticks)
    )
    x = result.features[result.valid]
    y = (np.roll(x[:, FEATURE_NAMES.index("ret_bp")], -1) > 0).astype(np.int8)
    assert len(y) > 8000 and 0.2 < y.mean() < 0.8
    forests = []
    for threads in (1, 2):
        monkeypatch.setitem(learners.GBM_PARAMS, "num_threads", threads)
        forests.append(learners.fit_forest(x, y))
    assert forests[0].trees == learners.GBM_TREES
    for mine, theirs in zip(forests[0].arrays(), forests[1].arrays(), strict=True):
        assert np.array_equal(mine, theirs)


def test_a_fit_with_a_half_life_follows_the_recent_rows(monkeypatch):
    """GBM_HALF_LIFE: a window row's weight halves every that many rows of age. Where the
    older 60 % of the window says the opposite of the newest 40 %, equal weights follow the
    older rows, a short half-life the newer ones."""
    from spark.features.kernel import N_FEATURES
    from spark.ml.trees import predict
    from spark.pipeline import learners

    rng = np.random.default_rng(3)
    x = rng.normal(size=(10_000, N_FEATURES))
    up = x[:, 0] > 0
    y = np.where(np.arange(10_000) < 6_000, up, ~up).astype(np.int32)  # oldest first
    probe = np.zeros(N_FEATURES)
    probe[0] = 1.0
    prob_up = {}
    for half_life in (0, 500):
        monkeypatch.setattr(learners, "GBM_HALF_LIFE", half_life)
        forest = learners.fit_forest(x, y)
        prob_up[half_life] = predict(forest.arrays(), 0, forest.trees, probe)
    assert prob_up[0] > 0.5 > prob_up[500]


def test_compiled_psi_detectors_equal_the_python_ones(mixed_ticks):
    from spark.drift.kernel import Detector, DetectorSet
    from spark.features.kernel import FEATURE_NAMES
    from tests.oracles import PSIDetector, confirmed_spread_vol

    result = SignalPipeline(Settings(gate=False).with_models(model="logreg")).step(
        TickBatch.from_ticks([t for t in mixed_ticks if t.symbol == "EURUSD"])
    )
    rows = result.features[result.valid]
    watch = ("spread_bp", "ret_bp", "activity_1m")
    python = [PSIDetector(window=500, threshold=0.5, check_every=50) for _ in watch]
    rule = confirmed_spread_vol()
    expected = []
    for i, row in enumerate(rows):
        x = dict(zip(FEATURE_NAMES, row.tolist(), strict=True))
        expected += [
            (i, d, det.statistic) for d, det in enumerate(python) if det.update(x[watch[d]])
        ]
        if rule.update_vector(x):
            expected.append((i, len(watch) + 2, rule.statistic))
    index = FEATURE_NAMES.index
    rule_members = [
        Detector(index("spread_bp"), 2000, 4.0, 250, group=0),
        Detector(index("vol_bp"), 1500, 3.0, 100, group=0),
    ]
    compiled = DetectorSet([Detector(index(f), 500, 0.5, 50) for f in watch] + rule_members, [250])
    compiled.grow(1)
    got = []
    for lo in range(0, len(rows), 333):  # in batches: a detector's state spans them
        part = rows[lo : lo + 333]
        tick, det, stat = compiled.step(
            np.zeros(len(part), np.int64), part, np.ones(len(part), bool)
        )
        got += [
            (lo + a, b, c)
            for a, b, c in zip(tick.tolist(), det.tolist(), stat.tolist(), strict=True)
        ]
    assert len(expected) >= 3
    assert got == expected


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),
            st.floats(0, 1),
            st.booleans(),
            st.booleans(),
        ),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from([0.05, 0.1, 0.2]),
)
def test_compiled_policy_decides_as_the_readable_one(rows, band):
    """``decide`` against ``SignalPolicy`` tick by tick: a suppressed decision (gate
    closed) is not remembered, an invalid tick decides nothing."""
    from spark.ml.signals import SIDES, SIGNAL, SUPPRESSED, decide
    from tests.oracles import SignalPolicy

    n = len(rows)
    slot = np.array([r[0] for r in rows], np.int64)
    p = np.array([r[1] for r in rows])
    allowed = np.array([r[2] for r in rows])
    valid = np.array([r[3] for r in rows])
    decision, side = np.zeros(n, np.int8), np.zeros(n, np.int8)
    decide(
        slot, valid, np.zeros(n, np.bool_), p, allowed, band, np.zeros(3, np.int8), decision, side
    )
    policy = SignalPolicy(band)
    for i, (s, prob, ok, is_valid) in enumerate(rows):
        if not is_valid:
            assert decision[i] == 0
            continue
        expected = policy.decide(str(s), prob, commit=ok)
        if expected is None:
            assert decision[i] == 0
        else:
            assert decision[i] == (SIGNAL if ok else SUPPRESSED)
            assert SIDES[side[i]] == expected[0]


def records(results) -> dict:
    """Everything a pipeline produced, in a comparable form, ticks numbered globally."""
    out: dict[str, list] = {
        k: []
        for k in (
            "features",
            "probs",
            "signals",
            "alerts",
            "gates",
            "executions",
            "labels",
            "models",
        )
    }
    base = 0
    for r in results:
        out["features"] += r.features[r.valid].tolist()
        out["probs"] += r.probs[r.valid].tolist()
        for key in ("signals", "alerts", "gates", "model_events"):
            out.setdefault(key, []).extend((base + i, rec) for i, rec in getattr(r, key))
        out["executions"] += [(base + i, k, rec) for i, k, rec in r.executions]
        out["labels"] += list(
            zip(
                (r.labels.tick + base).tolist(),
                r.labels.y.tolist(),
                r.labels.p.tolist(),
                strict=True,
            )
        )
        out["models"] += [r.models[c] for c in r.champion[r.valid]]
        base += len(r.batch)
    return out


def run_in_pieces(settings_, batch: TickBatch, cuts: list[int]) -> dict:
    pipeline = SignalPipeline(settings_)
    bounds = [0, *sorted(set(cuts)), len(batch)]
    return records([pipeline.step(batch.take(lo, hi)) for lo, hi in itertools.pairwise(bounds)])


GBM_SMALL = Settings().with_models(
    model="gbm",
    challengers=("logreg",),
    gbm_window=1000,
    gbm_refit=400,
    promotion_min_labels=300,
    min_edge=0.0,  # the band policy: signals and fills on every few hundred ticks
)


@pytest.fixture(scope="module")
def whole_run(mixed_ticks):
    batch = TickBatch.from_ticks(mixed_ticks)
    return batch, run_in_pieces(GBM_SMALL, batch, [])


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=8999), max_size=12))
def test_where_a_batch_is_cut_never_changes_a_record(whole_run, cuts):
    batch, whole = whole_run
    assert run_in_pieces(GBM_SMALL, batch, cuts) == whole


def test_a_step_that_waits_for_its_trees_counts_the_wait(whole_run):
    """A step reaching a swap point before its refit is trained waits for the trees and
    counts the wait (the worker's spark_refit_wait_seconds_total); one that never reaches
    a swap point with trees still training counts nothing."""
    batch, whole = whole_run
    pipeline = SignalPipeline(GBM_SMALL)
    held = threading.Event()
    busy = [learners._trainer().submit(held.wait) for _ in range(learners.TRAINERS)]
    threading.Timer(0.5, held.set).start()  # the refits start once the threads are free
    results = [pipeline.step(batch)]
    futures.wait(busy)
    assert pipeline.learners.waited_s >= 0.4
    assert records(results) == whole  # waiting changes nothing
    unhurried = SignalPipeline(GBM_SMALL)
    for part in batch.chunks(100):
        # fewer labels than the swap delay: a step never holds both a refit and its swap
        assert len(unhurried.step(part).labels) < GBM_SMALL.models.swap
        for slot in unhurried.learners.slots:
            if slot.training is not None:
                slot.training.result()
    assert unhurried.learners.waited_s == 0.0


def test_steps_hand_back_the_ticks_before_a_swap_still_training(whole_run):
    """``steps`` (the stream loop's form) stops at a swap point whose trees are not trained
    yet and hands back the ticks before it; the next piece waits for them. The records of
    the pieces are one step's, and no piece is handed back before its ticks are stepped."""
    batch, whole = whole_run
    pipeline = SignalPipeline(GBM_SMALL)
    held = threading.Event()
    busy = [learners._trainer().submit(held.wait) for _ in range(learners.TRAINERS)]
    pieces = pipeline.steps(batch)
    first = next(pieces)  # the trainers are held: the first swap point cannot be passed
    assert 0 < len(first.batch) < len(batch) and pipeline.learners.blocked()
    assert (first.kept == np.arange(len(first.batch))).all()
    held.set()
    futures.wait(busy)
    results = [first, *pieces]
    assert sum(len(r.batch) for r in results) == len(batch)
    assert (np.concatenate([r.batch.offset for r in results]) == batch.offset).all()
    assert records(results) == whole
    # nothing held: pieces only where a fit was still running, the same records
    assert records(list(SignalPipeline(GBM_SMALL).steps(batch))) == whole


@pytest.fixture(scope="module")
def gaps():
    """IBM silent for 2,000 ticks twice: past the idle limit below, so it starts fresh and
    may be freed between steps; EURUSD silent for 1,000, within it."""
    fx, equity = ticks_of(EURUSD, 6000), ticks_of(IBM, 3000)
    ticks = [
        t
        for k in range(3)
        for t in fx[2000 * k : 2000 * (k + 1)] + equity[1000 * k : 1000 * (k + 1)]
    ]
    settings = replace(GBM_SMALL, idle_evict_ticks=1500)
    batch = TickBatch.from_ticks(ticks)
    return settings, batch, run_in_pieces(settings, batch, [])


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=8999), max_size=12))
def test_symbols_back_from_a_silence_start_fresh_wherever_batches_are_cut(gaps, cuts):
    settings_, batch, whole = gaps
    assert run_in_pieces(settings_, batch, cuts) == whole


def test_a_silent_symbol_is_forgotten_and_starts_fresh(gaps):
    settings_, batch, _ = gaps
    pipeline = SignalPipeline(settings_)
    results = [pipeline.step(part) for part in batch.chunks(500)]
    resets = [r.batch.symbol_at(i) for r in results for i in np.flatnonzero(r.reset).tolist()]
    assert resets.count("IBM") <= 2 and "EURUSD" not in resets  # freed, or reset on return
    fresh = SignalPipeline(settings_).step(batch.take(8000, 9000))  # IBM's last 1,000 alone
    assert (results[-1].features[results[-1].valid] == fresh.features[fresh.valid][-500:]).all()


def test_the_whole_run_exercises_every_stage(whole_run):
    _, whole = whole_run
    assert len(whole["features"]) == 9000
    assert len(whole["signals"]) > 100
    assert {k for _, k, _ in whole["executions"]} >= {"order", "fill", "position"}
    assert whole["alerts"], "no drift alert in the run"
    assert whole["model_events"], "no promotion in the run"  # logreg vs gbm, 300 labels


def test_refits_are_deterministic_and_counted_in_labels(mixed_ticks):
    pipeline = SignalPipeline(GBM_SMALL)
    labels = 0
    for part in TickBatch.from_ticks(mixed_ticks).chunks(777):
        labels += len(pipeline.step(part).labels)
    gbm = pipeline.learners.slots[0]
    assert gbm.model_id == "gbm" and pipeline.learners.counts[0] == labels
    # a refit starts every 400 labels and its trees answer from 400 labels later
    assert gbm.fits == labels // 400 - 1


def test_numba_caches_are_dropped_when_a_compiled_module_changes(tmp_path):
    """The tick loop inlines the feature kernel, and numba's cache of the loop knows only
    the loop's file: a changed kernel must drop every cached function (``spark``'s import
    does), and an unchanged tree must keep them."""
    from spark import STAMP, fresh_numba_cache

    package = tmp_path / "pkg"
    (package / "features" / "__pycache__").mkdir(parents=True)
    (package / "__pycache__").mkdir()
    kernel, loop, plain = package / "features/kernel.py", package / "loop.py", package / "cli.py"
    kernel.write_text("from numba import njit\nWIDTH = 48\n")
    loop.write_text("import numba\n")
    plain.write_text("print('no compiled code')\n")
    cached = [
        package / "__pycache__/loop.run-10.py311.nbi",
        package / "__pycache__/loop.run-10.py311.1.nbc",
    ]

    def cache() -> None:
        for path in cached:
            path.write_bytes(b"machine code")

    cache()
    assert fresh_numba_cache(package)  # no stamp yet: dropped
    assert not any(p.exists() for p in cached) and (package / "__pycache__" / STAMP).is_file()
    cache()
    assert not fresh_numba_cache(package) and all(p.exists() for p in cached)
    plain.write_text("print('changed, still no compiled code')\n")
    assert not fresh_numba_cache(package) and all(p.exists() for p in cached)
    kernel.write_text("from numba import njit\nWIDTH = 52\n")
    assert fresh_numba_cache(package) and not any(p.exists() for p in cached)


def test_gbm_answers_a_blend_of_its_trees_and_its_own_logreg(mixed_ticks):
    """bench/gbm_blend.py's choice (session 34): once gbm has trees, its prob_up is
    0.75 x the trees + 0.25 x its own logreg, which goes on learning every label as a logreg
    challenger learning the same labels does (so the blend is the protocol's candidate)."""
    from spark.ml import linear, trees
    from spark.pipeline import core

    settings = Settings(gate=False, trading=False).with_models(
        model="gbm", challengers=("logreg",), horizon_s=1.0, horizon_moves=0, gbm_refit=1_000
    )
    pipeline = SignalPipeline(settings)
    result = pipeline.step(TickBatch.from_ticks(mixed_ticks))
    learned = pipeline.learners
    assert core.GBM_BLEND == 0.25 and learned.has_trees[0] and learned.slots[0].fits >= 2
    assert np.array_equal(learned.lin[0], learned.lin[1])  # one logreg, two slots
    lo, hi = learned.tree_range[0]
    for x in result.features[-50:]:
        grown = trees.predict(learned.forest, lo, hi, x)
        want = 0.75 * grown + 0.25 * linear.predict(learned.lin[1], x)
        asked = pipeline.predict(dict(zip(learners.FEATURE_NAMES, x.tolist(), strict=True)))
        assert asked["prob_up"] == pytest.approx(want, abs=1e-12)
    # the loop's own answer at the last tick (its labels learned first, then predicted)
    last = int(np.flatnonzero(result.valid)[-1])
    x = result.features[last]
    grown = trees.predict(learned.forest, lo, hi, x)
    want = 0.75 * grown + 0.25 * linear.predict(learned.lin[0], x)
    assert result.probs[last, 0] == pytest.approx(want, abs=1e-12)
    assert result.probs[last, 0] != pytest.approx(grown, abs=1e-6)  # not the trees alone
