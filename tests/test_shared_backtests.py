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


def _bare(metrics: dict) -> dict:
    """Figures comparable across runs: no wall time, NaN as a string."""
    return {k: ("NaN" if v != v else v) for k, v in metrics.items() if not k.endswith("seconds")}


def test_a_backtest_request_with_variants_answers_each_as_its_own_request():
    """What a fanned-out sweep's child runs (spark.jobs.fanout, session 33): the request's
    own strategy and its variants over the same ticks; the metrics hold each one's figures,
    equal to its own request's, variant j's under ``variant<j>.``, across two model runs."""
    from spark.jobs.backtest import run_request
    from spark.jobs.fanout import of_variant

    data = {"data": [EURUSD.path], "limit": 4000, "gate": False}
    own = {"band": 0.05, "min_edge": 0.0, "horizon_moves": 1}
    variants = [
        {"band": 0.15, "min_edge": 0.0, "horizon_moves": 1},  # shares the model run
        {"band": 0.05, "min_edge": 0.0, "horizon_moves": 3},  # a second model run
        {"band": 0.15, "min_edge": 0.0, "horizon_moves": 1, "fee_bp": 0.0},
    ]
    out = run_request(data | own | {"variants": variants}, restrict=False)
    alone = [run_request(data | p, restrict=False)["metrics"] for p in [own, *variants]]
    assert len({m["pnl"] for m in alone}) == 4  # four different backtests
    for j, expected in enumerate(alone):
        assert _bare(of_variant(out["metrics"], j)) == _bare(expected), j
    assert out["summary"]["params"]["band"] == 0.05  # the report is the request's own


@pytest.mark.parametrize(
    "variants, says",
    [
        ("x", "must be a list of 1 to 64"),
        ([], "must be a list of 1 to 64"),
        ([{}] * 65, "must be a list of 1 to 64"),
        ([{"band": 0.1}, {"data": "x.zip"}], "variant 2: only strategy parameters"),
        ([{"band": 0.1}, {"bnad": 0.1}], "variant 2: unknown parameters ['bnad']"),
        (["x"], "variant 1: parameters must be a JSON object"),
    ],
)
def test_wrong_variants_are_refused_before_anything_runs(variants, says):
    from spark.jobs.backtest import check_request

    with pytest.raises(InvalidParams) as refused:
        check_request({"data": [EURUSD.path], "variants": variants}, restrict=False)
    assert says in str(refused.value)


def test_a_sweep_sends_one_child_per_model_run():
    """The coordinator's plan: combinations that share a model run go to one child (at most
    MAX_SHARED), in the order of their first member; a sweep may not name variants."""
    from spark.jobs.fanout import MAX_SHARED, child_groups
    from spark.jobs.optimizer import check_sweep, combinations

    combos = combinations({}, {"band": [0.05, 0.1], "horizon_moves": [1, 3]})
    assert child_groups(combos) == [[0, 2], [1, 3]]
    big = combinations({}, {"band": [0.01 * k for k in range(1, 2 * MAX_SHARED + 2)]})
    assert [len(g) for g in child_groups(big)] == [MAX_SHARED, MAX_SHARED, 1]
    with pytest.raises(InvalidParams, match="a sweep takes"):
        check_sweep({"data": [EURUSD.path], "grid": {"band": [0.1]}, "variants": [{}]}, False)
    with pytest.raises(InvalidParams, match="cannot be swept"):
        combinations({}, {"variants": [[{}]]})
