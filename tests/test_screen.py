"""The pipeline's price screen (spark.pipeline.screen): contract-valid prices far from their
symbol's level are refused as price_jump, the rest runs as if they had never come, wherever
batches are cut and across a checkpoint; a lasting new level is learned."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark.pipeline import SignalPipeline, TickBatch
from spark.pipeline.offline import OfflineRun
from spark.settings import Settings
from spark.ticks.model import Tick
from tests.test_policy import EURUSD, ticks_of

SETTINGS = Settings().with_models(model="logreg", min_edge=0.0)
CLEAN = ticks_of(EURUSD, 6000)
POISON_AT = (700, 2500, 2501, 4100)  # shifted copies go in after these ticks


def shifted(t: Tick, factor: float) -> Tick:
    return replace(t, bid=t.bid * factor, ask=t.ask * factor)


def poisoned() -> tuple[list[Tick], list[int]]:
    out, where = [], []
    for i, t in enumerate(CLEAN):
        out.append(t)
        if i in POISON_AT:
            where.append(len(out))
            out.append(shifted(t, 100.0 if i % 2 else 0.01))
    return out, where


def run(ticks: list[Tick], cuts=()) -> tuple[list, np.ndarray, list, list]:
    pipeline = SignalPipeline(SETTINGS)
    batch = TickBatch.from_ticks(ticks)
    bounds = [0, *sorted(set(cuts)), len(batch)]
    screened, features, signals, executions = [], [], [], []
    for lo, hi in itertools.pairwise(bounds):
        r = pipeline.step(batch.take(lo, hi))
        screened += [(lo + i, reason) for i, reason, _ in r.screened]
        kept = np.arange(hi - lo) if r.kept is None else r.kept
        features.append(r.features[r.valid])
        signals += [(int(r.batch.offset[i]), s["side"]) for i, s in r.signals]
        executions += [(int(r.batch.offset[i]), k) for i, k, _ in r.executions]
        assert len(kept) == len(r.batch)
    return screened, np.concatenate(features), signals, executions


def test_shifted_prices_are_refused_and_the_rest_runs_as_if_they_never_came():
    ticks, where = poisoned()
    screened, features, signals, executions = run(ticks)
    assert screened == [(i, "price_jump") for i in where]
    clean_screened, clean_features, clean_signals, clean_executions = run(CLEAN)
    assert clean_screened == []
    assert np.array_equal(features, clean_features)
    # offsets differ by the poison inserted before them; the decisions are the same
    assert [s for _, s in signals] == [s for _, s in clean_signals] and signals
    assert [k for _, k in executions] == [k for _, k in clean_executions]


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=1, max_value=6003), max_size=8))
def test_where_a_batch_is_cut_never_changes_what_is_screened(cuts):
    ticks, _ = poisoned()
    whole = run(ticks)
    cut = run(ticks, cuts)
    assert cut[0] == whole[0] and np.array_equal(cut[1], whole[1]) and cut[2:] == whole[2:]


def test_a_lasting_new_level_is_learned_after_relearn_ticks_and_the_screen_can_be_off():
    ticks = CLEAN[:1000] + [shifted(t, 3.0) for t in CLEAN[1000:1100]]
    screened, *_ = run(ticks)
    relearn = SETTINGS.price_relearn
    assert [i for i, _ in screened] == list(range(1000, 1000 + relearn - 1))
    pipeline = SignalPipeline(replace(SETTINGS, price_band=0.0))
    r = pipeline.step(TickBatch.from_ticks(ticks))
    assert r.screened == [] and r.kept is None


def test_the_screen_carries_on_across_a_checkpoint():
    from spark.stream import checkpoint

    ticks, where = poisoned()
    batch = TickBatch.from_ticks(ticks)
    key = b"k" * 32
    original = SignalPipeline(SETTINGS)
    original.step(batch.take(0, 2500))
    restored, _ = checkpoint.decode(checkpoint.encode(original, 0, 2499, key), key, 0)
    a, b = original.step(batch.take(2500, len(batch))), restored.step(batch.take(2500, len(batch)))
    assert [i + 2500 for i, _, _ in a.screened] == [w for w in where if w >= 2500]
    assert a.screened == b.screened and np.array_equal(a.features, b.features)


def test_offline_runs_map_screened_ticks_back_to_the_batch():
    ticks, where = poisoned()
    batch = TickBatch.from_ticks(ticks)
    run_ = OfflineRun(SETTINGS)
    refused, kept = [], []
    for idx, r in run_.step(batch):
        refused += [i for i, _, _ in r.screened]
        kept += idx.tolist()
    assert sorted(refused) == where
    assert sorted(kept + refused) == list(range(len(batch)))
