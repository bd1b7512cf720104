"""The break detectors (spark.drift.breaks): the default gate rule since session 14."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from spark.drift.breaks import FROZEN, JUMP, KINDS, BreakSet
from spark.drift.evaluate import one_stream
from spark.drift.profile import KINDS as PROFILE_KINDS
from spark.features.kernel import FEATURE_NAMES
from spark.pipeline import SignalPipeline, TickBatch
from spark.research.drift import follow, synthetic
from spark.settings import BreakSettings, Settings, SettingsError
from spark.ticks.replay import valid_ticks

BUNDLED = Path(__file__).resolve().parents[1] / "spark/data"
EURUSD = BUNDLED / "fxcm/eurusd/20140501_quote.zip"
IBM = BUNDLED / "equity/ibm/20131007_quote.zip"
RET = FEATURE_NAMES.index("ret_bp")


def ticks_of(path: Path, n: int) -> TickBatch:
    return TickBatch.from_ticks(list(itertools.islice(valid_ticks([path], "lean-quote"), n)))


@pytest.fixture(scope="module")
def switches() -> tuple[TickBatch, int, int]:
    """EURUSD, then its own next ticks frozen, then IBM: one stream under one symbol; the
    ticks where the frozen part and IBM start."""
    fx = ticks_of(EURUSD, 15_000)
    first, frozen = fx.take(0, 12_000), synthetic(fx.take(12_000, 15_000), "frozen")
    head = one_stream(first, frozen)
    stream = one_stream(head, follow(head, ticks_of(IBM, 6_000)))
    return stream, 12_000, 15_000


def test_compiled_break_detectors_equal_the_readable_one(switches):
    from tests.oracles import BreakDetector

    stream, frozen_at, ibm_at = switches
    result = SignalPipeline(Settings(gate=False).with_models(model="logreg")).step(stream)
    ret = result.features[:, RET]
    settings = BreakSettings(jump=200.0, frozen=20.0, move_span=100, rate_span=2_000, warm=2_000)
    readable = BreakDetector(200.0, 20.0, 100, 2_000, 2_000)
    expected = []
    for i in np.flatnonzero(result.valid).tolist():
        kind = readable.update(float(ret[i]))
        if kind:
            expected.append((i, kind, readable.statistic))
    compiled = BreakSet(settings)
    compiled.grow(1)
    got = []
    rows = len(ret)  # the ticks the price screen kept (it refuses 19 after the switch)
    assert rows == len(result.valid) < len(stream)
    for lo in range(0, rows, 777):  # in batches: the state spans them
        hi = min(lo + 777, rows)
        tick, kind, stat, _ = compiled.step(
            np.zeros(hi - lo, np.int64), ret[lo:hi], result.valid[lo:hi]
        )
        got += [
            (lo + t, KINDS[k], v)
            for t, k, v in zip(tick.tolist(), kind.tolist(), stat, strict=True)
        ]
    assert [(i, k) for i, k, _ in got] == [(i, k) for i, k, _ in expected]
    with pytest.raises(ValueError, match="per tick"):  # the kernel would read past the end
        compiled.step(np.zeros(3, np.int64), ret[:2], result.valid[:3])
    assert np.allclose([v for *_, v in got], [v for *_, v in expected], rtol=1e-12)
    kinds = {k: [i for i, kk, _ in got if kk == k] for k in KINDS}
    assert kinds["jump"] and kinds["jump"][-1] == ibm_at  # the instrument switch, at once
    assert any(frozen_at < i < ibm_at for i in kinds["frozen"])  # the frozen quote


def test_the_default_gate_rule_closes_the_gate_on_a_frozen_quote_and_a_switch(switches):
    stream, frozen_at, ibm_at = switches
    settings = replace(Settings().with_models(model="logreg"), trading=False)
    rule = settings.drift.rule  # with the shipped kinds of market since session 31
    assert rule == "break+dt_spread+profile" and settings.drift.breaks == BreakSettings()
    result = SignalPipeline(settings).step(stream)
    at = result.kept  # stream position of each tick the price screen let through
    warnings = [(int(at[i]), a) for i, a in result.alerts if a["severity"] == "warning"]
    breaks = [(i, a) for i, a in warnings if a["detector"] in KINDS]
    # the default thresholds (chosen on the train streams): nothing on the 12,000 real
    # EURUSD ticks, the frozen quote within 2,000 ticks, the switch to IBM on the first IBM
    # tick the price screen accepts (it refuses price_relearn - 1 = 19 in a row first)
    assert [a["detector"] for _, a in breaks] == ["frozen", "jump"]
    (frozen, alarm), (jump, _) = breaks
    assert frozen_at < frozen < frozen_at + 2_000
    assert jump == ibm_at + settings.price_relearn - 1 and at[0] == 0
    assert [s[0] for s in result.screened] == list(range(ibm_at, jump))
    assert alarm["feature"] == "ret_bp"
    assert alarm["statistic"] > alarm["threshold"] == settings.drift.breaks.frozen
    # the rule's other parts, PSI on dt_s confirmed by PSI on spread_bp and the shipped fx
    # kind (warm after 15,000 ticks: on IBM's larger moves), quiet before
    assert all(i >= frozen_at for i, _ in warnings)
    assert all(i >= ibm_at for i, a in warnings if a["detector"].startswith("profile_"))
    assert {a["detector"] for _, a in warnings} <= {*KINDS, *PROFILE_KINDS, "psi_confirmed"}
    states = [(int(at[i]), g["state"]) for i, g in result.gates]
    assert states[0] == (frozen, "closed")


def test_gate_rules_combine_with_plus_and_bad_ones_say_what_is_known():
    from spark.drift.stage import DriftStage

    both = DriftStage(Settings.from_env({"SPARK_GATE_RULE": "break + dt_spread"}).drift)
    assert both.breaks is not None and both.rule_features == "dt_s&spread_bp"
    psi = DriftStage(Settings.from_env({"SPARK_GATE_RULE": "spread_bp"}).drift)
    assert psi.breaks is None and len(psi.detectors.detectors) == psi.n_info + 1
    for bad in ("magic", "dt_spread+confirmed", "+"):
        with pytest.raises(SettingsError, match="SPARK_GATE_RULE"):
            DriftStage(Settings.from_env({"SPARK_GATE_RULE": bad}).drift)


def test_frozen_statistic_counts_gaps_between_moves():
    """Ticks that alternate move / no move: a usual gap of 2 ticks; a run of 40 unchanged
    ticks is about 20 of them."""
    detectors = BreakSet(BreakSettings(jump=1e9, frozen=15.0, move_span=10, rate_span=10_000,
                                       warm=100))  # fmt: skip
    detectors.grow(1)
    ret = np.array([0.3 * (i % 2) for i in range(100_000)] + [0.0] * 40)
    tick, kind, stat, stats = detectors.step(
        np.zeros(len(ret), np.int64), ret, np.ones(len(ret), bool)
    )
    assert kind.tolist() == [FROZEN] and JUMP not in kind.tolist()
    assert 100_000 + 28 <= tick[0] <= 100_000 + 32  # 15 gaps of ~2 ticks, the rate decaying
    assert stats[-1, FROZEN] == pytest.approx(40 * 0.5 * (1 - 2 / 10_001) ** 40, rel=0.05)


def test_a_checkpoint_carries_the_break_detectors_on(switches):
    """Cut in the middle of the frozen quote: the restored pipeline raises the same frozen
    and jump alarms as the one that went on; a checkpoint from before the break detectors
    restores them fresh (warming up)."""
    from spark.drift.stage import DriftStage
    from tests.helpers import checkpointed_at

    stream, frozen_at, _ = switches
    settings = replace(Settings().with_models(model="logreg"), trading=False)
    # cut before the frozen alarm (about 50 ticks in on EURUSD)
    original, a, b = checkpointed_at(settings, stream, frozen_at + 20)
    kinds = [(i, x["detector"]) for i, x in a.alerts if x["detector"] in KINDS]
    assert [k for _, k in kinds] == ["frozen", "jump"]
    assert kinds == [(i, x["detector"]) for i, x in b.alerts if x["detector"] in KINDS]
    meta, arrays, concept = original.drift.state()
    assert "drift.breaks" in arrays
    del arrays["drift.breaks"]
    old = DriftStage(settings.drift)
    old.grow(original.drift.detectors.symbols)
    old.restore(meta, arrays, concept)
    assert old.breaks.state.shape == original.drift.breaks.state.shape
    assert (old.breaks.state == BreakSet._empty(old.breaks.symbols)).all()
