"""One model run for many policies (``run_backtests``, ``SignalPipeline(variants=...)``,
docs/policy.md, session 32): each policy's figures equal those of its own ``run_backtest``
to the last digit, wherever the data is cut, on real ticks, with gates that close."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from spark.backtest.engine import BacktestParams, InvalidParams, run_backtest, run_backtests
from spark.drift.evaluate import one_stream
from spark.pipeline import SignalPipeline, TickBatch
from spark.research.drift import follow, same_level
from spark.research.select import Candidate, Day, load_day, score_day
from spark.settings import Settings

BUNDLED = Path(__file__).resolve().parent.parent / "spark/data"
EURUSD = Day("EURUSD", "2014-05-01", str(BUNDLED / "fxcm/eurusd/20140501_quote.zip"))
IBM = Day("IBM", "2013-10-07", str(BUNDLED / "equity/ibm/20131007_quote.zip"))


def switched(n: int) -> TickBatch:
    """``n`` real EURUSD ticks, then ``n`` IBM ticks under its name, at its level: the
    default gate rule closes on the switch, so the policies' suppressed counts differ."""
    first = load_day(EURUSD, n)
    stream = one_stream(first, follow(first, load_day(IBM, n)))
    return same_level(stream, len(first))


def policies(model: str) -> list[BacktestParams]:
    """Band and cost-aware policies, taker and passive; fees off where the cost-aware one
    would otherwise make no trade on these ticks."""
    out = []
    for edge, band, fee in ((0.0, 0.1, 0.5), (0.0, 0.05, 0.5), (0.3, 0.1, 0.0), (1.0, 0.1, 0.5)):
        for fill in ("taker", "passive"):
            out.append(
                BacktestParams(
                    model=model,
                    band=band,
                    min_edge=edge,
                    min_hold_s=1.0 if edge else 0.0,
                    fill_model=fill,
                    fee_bp=fee,
                    maker_fee_bp=0.0 if fee == 0 else -0.1,
                )
            )
    return out


def same(a, b) -> list[str]:
    """The figures, rejections, trades and equity curve in which two results differ."""
    ma, mb = a.metrics(), b.metrics()
    out = [
        k
        for k in ma
        if k != "seconds" and not (ma[k] == mb[k] or (math.isnan(ma[k]) and math.isnan(mb[k])))
    ]
    for name in ("rejections", "trades", "equity_curve", "cost_models", "params"):
        if getattr(a, name) != getattr(b, name):
            out.append(name)
    return out


@pytest.mark.parametrize("model,n", [("logreg", 6_000), ("gbm", 6_000)])
def test_each_policy_of_a_shared_run_equals_its_own_backtest(model, n):
    batch = switched(n)
    params = policies(model)
    for chunk in (20_000, 3_000):
        alone = [run_backtest(batch, p, settings=Settings(), chunk=chunk) for p in params]
        # the check can fail: the policies differ in what they did, and gates closed
        assert len({(r.fills, r.signals, r.pnl) for r in alone}) >= 6
        assert sum(r.fills > 0 for r in alone) >= 6
        assert len({r.suppressed for r in alone if r.suppressed}) >= 2
        shared = run_backtests(batch, params, settings=Settings(), chunk=chunk)
        for p, mine, theirs in zip(params, shared, alone, strict=True):
            assert same(mine, theirs) == [], (chunk, p)


def test_the_first_policys_records_are_those_of_its_own_run():
    batch = switched(5_000)
    params = policies("logreg")
    mine, theirs = [], []
    run_backtests(batch, params, settings=Settings(), on_records=mine.extend)
    run_backtest(batch, params[0], settings=Settings(), on_records=theirs.extend)
    assert mine == theirs
    kinds = {topic for _, topic, _ in mine}
    assert {"signals", "gate_state", "fills"} <= kinds, kinds


def test_each_decider_counts_its_own_suppressed_signals_in_the_gates():
    """The gates hold the pipeline's own count (it goes into GateState records and
    checkpoints); a variant keeps its own, equal to what its own pipeline's gates hold."""
    batch = switched(6_000)
    first = Settings().with_models(model="logreg", min_edge=0.0, band=0.05)
    second = Settings().with_models(model="logreg", min_edge=0.0, band=0.2)
    shared = SignalPipeline(first, [second])
    alone = [SignalPipeline(first), SignalPipeline(second)]
    for part in batch.chunks(2_500):
        shared.step(part)
        for pipeline in alone:
            pipeline.step(part)
    counts = [
        {s: g.suppressed for s, g in pipeline.drift.gates.items() if g.suppressed}
        for pipeline in alone
    ]
    assert counts[0] and counts[1] and counts[0] != counts[1]
    assert {s: g.suppressed for s, g in shared.drift.gates.items() if g.suppressed} == counts[0]
    assert {s: c for s, c in shared.variants[0].gate_counts.items() if c} == counts[1]


def test_policies_of_different_models_are_refused():
    batch = load_day(EURUSD, 500)
    with pytest.raises(InvalidParams, match="share the model"):
        run_backtests(batch, [BacktestParams(model="logreg"), BacktestParams(model="gbm")])
    with pytest.raises(InvalidParams, match="share the model"):
        run_backtests(batch, [BacktestParams(horizon_s=1.0), BacktestParams(horizon_s=60.0)])
    assert run_backtests(batch, []) == []
    with pytest.raises(ValueError, match="only in its policy"):
        SignalPipeline(Settings(), [Settings().with_models(horizon_moves=2)])


def test_a_pipeline_with_variants_is_not_saved():
    variant = Settings().with_models(band=0.2)
    pipeline = SignalPipeline(Settings(), [variant])
    pipeline.step(load_day(EURUSD, 1_000))
    with pytest.raises(ValueError, match="not saved"):
        pipeline.state()
    assert SignalPipeline(Settings()).state()


def test_the_selection_scores_a_day_with_one_model_run_per_learner_and_horizon():
    from spark.research.select import FIGURES

    candidates = (
        Candidate("logreg", 1.0, 0.0, "taker"),
        Candidate("logreg", 60.0, 1.0, "passive"),
        Candidate("logreg", 1.0, 2.0, "passive"),
        Candidate("logreg", 60.0, 0.0, "taker"),
    )
    day, rows = score_day((EURUSD, candidates, 6_000))
    assert day == EURUSD and [r["candidate"] for r in rows] == [c.name for c in candidates]
    batch = load_day(EURUSD, 6_000)
    for c, row in zip(candidates, rows, strict=True):
        params = c.params()
        alone = run_backtest(batch, params, keep_trades=False, settings=Settings())
        expected = {k: float(getattr(alone, k)) for k in FIGURES}
        assert {k: row[k] for k in FIGURES} == pytest.approx(expected, nan_ok=True, abs=0), c.name
    assert rows[0]["fills"] > 0  # the band policy trades on these ticks


def test_a_symbol_is_freed_only_when_no_policy_holds_it():
    """EURUSD, then IBM long enough for EURUSD to count as idle, then EURUSD again: the
    band policy holds EURUSD across the silence, the cost-aware one (taker fees) never
    trades; run together, the band policy's figures are still its own run's."""
    eur, ibm = load_day(EURUSD, 6_000), load_day(IBM, 3_000)
    ibm = follow(eur.take(0, 3_000), ibm)
    later = follow(ibm, eur.take(3_000, 6_000))
    batch = TickBatch.concat([eur.take(0, 3_000), ibm, later])
    base = replace(Settings(), idle_evict_ticks=1_000)
    quiet = BacktestParams(model="logreg", min_edge=4.0, fill_model="taker")
    band = BacktestParams(model="logreg", min_edge=0.0, fill_model="passive")
    alone = run_backtest(batch, band, settings=base, chunk=1_500)
    assert alone.fills > 0
    assert run_backtest(batch, quiet, settings=base, chunk=1_500).fills == 0
    shared = run_backtests(batch, [quiet, band], settings=base, chunk=1_500)[1]
    assert same(shared, alone) == []
