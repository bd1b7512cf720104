"""The cost-aware signal policy, the backtest's cost accounting and the selection protocol
(docs/policy.md), without Kafka."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark.pipeline import SignalPipeline, TickBatch
from spark.settings import Settings, SettingsError
from spark.ticks.replay import valid_ticks

BUNDLED = Path(__file__).resolve().parent.parent / "spark/data"
EURUSD = BUNDLED / "fxcm/eurusd/20140501_quote.zip"
IBM = BUNDLED / "equity/ibm/20131007_quote.zip"


def ticks_of(path: Path, n: int):
    return list(itertools.islice(valid_ticks([path], "lean-quote"), n))


# cheap enough to trade at a 1 s horizon on EURUSD, so the policy acts often
COSTED = replace(
    Settings().with_models(model="logreg", min_edge=0.3, min_hold_s=2.0),
    execution=replace(Settings().execution, fee_bp=0.0, fill_model="taker"),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # symbol slot
            st.integers(0, 3_000_000),  # µs since the previous tick
            st.floats(0, 1),  # prob_up
            st.one_of(st.just(math.nan), st.floats(-2, 3)),  # move fit, bp
            st.floats(0, 2),  # spread, bp
            st.booleans(),  # allowed by the gate
        ),
        min_size=1,
        max_size=80,
    ),
    st.sampled_from([0.05, 0.1]),
    st.sampled_from([0.0, 0.5]),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from([0, 1_000_000, 5_000_000]),
    st.booleans(),
)
def test_compiled_costed_policy_decides_as_the_readable_one(rows, band, fee, k, hold, passive):
    from spark.ml.signals import SIDES, SIGNAL, SUPPRESSED, decide_costed
    from tests.oracles import CostedPolicy

    n = len(rows)
    slot = np.array([r[0] for r in rows], np.int64)
    ts = np.cumsum([r[1] for r in rows]).astype(np.int64) + 1_000_000
    p = np.array([r[2] for r in rows])
    move = np.array([r[3] for r in rows])
    mid = np.full(n, 1.25)
    bid = mid * (1 - np.array([r[4] for r in rows]) / 2e4)
    ask = mid * (1 + np.array([r[4] for r in rows]) / 2e4)
    mid = (bid + ask) / 2
    allowed = np.array([r[5] for r in rows])
    decision, side = np.zeros(n, np.int8), np.zeros(n, np.int8)
    decide_costed(
        slot, np.ones(n, np.bool_), np.zeros(n, np.bool_), p, allowed, band,
        np.zeros(3, np.int8), decision, side,
        (ts, move, bid, ask, mid, np.full(n, 2 * fee), 0.0 if passive else 1.0, k, hold),
        np.zeros(3, np.int64),
    )  # fmt: skip
    oracle = CostedPolicy(band, fee, k, hold, passive)
    for i, r in enumerate(rows):
        expected = oracle.decide(
            str(r[0]), int(ts[i]), r[2], r[3], float(bid[i]), float(ask[i]), commit=r[5]
        )
        if expected is None:
            assert decision[i] == 0, i
        else:
            assert decision[i] == (SIGNAL if r[5] else SUPPRESSED), i
            assert SIDES[side[i]] == expected, i


@pytest.mark.parametrize("moves", [0, 1, 3])  # labels in clock time; in event time
def test_the_move_fit_is_learned_from_resolved_labels_only(moves):
    """The pipeline's move fit per tick (what the policy's edge rests on) equals the readable
    definition on real quotes: no look-ahead, ties included, 500 labels of warm-up."""
    from tests.oracles import move_betas

    ticks = ticks_of(EURUSD, 8000)
    settings_ = Settings().with_models(model="logreg", horizon_moves=moves)
    r = SignalPipeline(settings_).step(TickBatch.from_ticks(ticks))
    horizon = settings_.models.horizon_us
    expected = move_betas(ticks, horizon, r.probs[:, 0], 2_000.0, 500, moves)
    assert np.allclose(r.beta[:, 0], expected, rtol=1e-9, equal_nan=True)
    assert np.isnan(r.beta[:500, 0]).all() and (~np.isnan(r.beta[:, 0])).sum() > 5000
    assert np.nanmax(np.abs(r.beta)) > 0


def costed_run(batch: TickBatch, cuts: list[int]):
    pipeline = SignalPipeline(COSTED)
    bounds = [0, *sorted(set(cuts)), len(batch)]
    signals, executions = [], []
    for lo, hi in itertools.pairwise(bounds):
        r = pipeline.step(batch.take(lo, hi))
        signals += [(lo + i, s) for i, s in r.signals]
        executions += [(lo + i, k, e) for i, k, e in r.executions]
    return signals, executions


@pytest.fixture(scope="module")
def costed_whole():
    batch = TickBatch.from_ticks(ticks_of(EURUSD, 8000))
    return batch, costed_run(batch, [])


def test_the_costed_policy_enters_only_where_the_edge_pays_and_holds(costed_whole):
    batch, (signals, executions) = costed_whole
    assert len(signals) > 20, "the policy should act on this day at these costs"
    assert {k for _, k, _ in executions} >= {"order", "fill"}
    r = SignalPipeline(COSTED).step(batch)
    p = r.probs[np.arange(len(batch)), r.champion]
    mid, bid, ask = r.quotes.T
    last: dict[str, tuple[str, int]] = {}
    for i, s in signals:
        edge = abs(2 * p[i] - 1) * r.beta[i, r.champion[i]]
        cost = (ask[i] - bid[i]) / mid[i] * 1e4
        if s["side"] != "FLAT":
            assert edge > 0 and edge >= 0.3 * cost, (i, s)
            assert "edge >= 0.3 x cost" in s["reason"]
        else:
            assert "turned against the position" in s["reason"]
        held, since = last.get(s["symbol"], ("FLAT", 0))
        if held != "FLAT":  # a position is held at least min_hold_s
            assert s["ts"] - since >= 2_000_000
        last[s["symbol"]] = (s["side"], s["ts"])


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=7999), max_size=10))
def test_where_a_batch_is_cut_never_changes_a_costed_decision(costed_whole, cuts):
    batch, whole = costed_whole
    assert costed_run(batch, cuts) == whole


def test_a_checkpoint_carries_the_costed_policy_on():
    from spark.stream import checkpoint

    key = b"k" * 32
    batch = TickBatch.from_ticks(ticks_of(EURUSD, 6000))
    original = SignalPipeline(COSTED)
    original.step(batch.take(0, 3000))
    restored, _ = checkpoint.decode(checkpoint.encode(original, 0, 2999, key), key, 0)
    a, b = original.step(batch.take(3000, 6000)), restored.step(batch.take(3000, 6000))
    assert a.signals and a.signals == b.signals and a.executions == b.executions
    assert np.array_equal(a.beta, b.beta, equal_nan=True)


# --- the measured cost of a passive round trip (spark.execution.passive_cost) -------------------
def passive(settings_: Settings, on_timeout: str = "cross") -> Settings:
    execution = replace(settings_.execution, fill_model="passive", passive_on_timeout=on_timeout)
    return replace(settings_, execution=execution)


@pytest.mark.parametrize("path", [EURUSD, IBM])  # quotes without sizes; with sizes
@pytest.mark.parametrize("on_timeout", ["cross", "cancel"])
def test_the_passive_cost_is_measured_on_shadow_orders_as_the_executor_fills(path, on_timeout):
    """Per tick, the pipeline's measured passive round trip equals the readable definition
    built on the executor's own queue model, on real quotes; with no maker fee it is still
    positive: a resting order fills when the market has moved through it."""
    from spark.execution import passive_cost
    from spark.execution.costs import SlippageModel
    from tests.oracles import passive_round_trips

    ticks = ticks_of(path, 12000)
    settings_ = passive(
        replace(COSTED, execution=replace(COSTED.execution, fee_bp=0.7)), on_timeout
    )
    r = SignalPipeline(settings_).step(TickBatch.from_ticks(ticks))
    e, p = settings_.execution, r.probs[np.arange(len(ticks)), r.champion]
    expected = passive_round_trips(
        ticks, p, settings_.models.band, round(e.passive_timeout_ms * 1000),
        on_timeout == "cross", e.maker_fee_bp, e.fee_bp,
        SlippageModel(e.slippage_bp, e.depth_spreads), e.order_notional, passive_cost.SPAN,
        passive_cost.MIN_LEGS,
    )  # fmt: skip
    assert np.allclose(r.passive_cost, expected, rtol=1e-9, equal_nan=True)
    measured = r.passive_cost[~np.isnan(r.passive_cost)]
    assert len(measured) > 1000 and e.maker_fee_bp == 0
    assert (measured[-1000:] > 0).all()
    if on_timeout == "cross":  # the timeouts pay the taker fee on top
        assert measured[-1] > 0.7


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 1),  # symbol
            st.integers(0, 2_000_000),  # µs since the previous tick
            st.integers(-1, 1),  # mid, ticks of 0.5 from 100
            st.integers(1, 3),  # spread, ticks
            st.one_of(st.just(math.nan), st.integers(0, 4).map(float)),  # sizes shown
            # a trade: at the bid (0) or the ask (1), a quarter tick away or not
            st.one_of(st.none(), st.tuples(st.integers(0, 1), st.integers(-1, 1))),
            st.integers(1, 3).map(float),  # its size
            st.sampled_from([0.2, 0.5, 0.6, 0.8]),  # prob_up: leans down, not, just up, up
        ),
        min_size=1,
        max_size=120,
    ),
    st.sampled_from([True, False]),
)
def test_compiled_shadow_orders_walk_trades_and_sizes_as_the_queue_model(rows, cross):
    """Trades at, through and away from a resting shadow order, shrinking shown sizes and
    emptied levels: the compiled walk ends each order where ``QueueOrder`` does; a crossed
    one pays what ``SlippageModel`` charges an order deeper than the size shown."""
    from spark.execution import passive_cost
    from spark.execution.costs import SlippageModel
    from spark.ticks.model import Tick
    from tests.oracles import passive_round_trips

    ticks, ts = [], 1_000_000
    for symbol, gap, mid, spread, shown, trade, size, _ in rows:
        ts += gap
        bid, ask = 100 + 0.5 * mid - 0.25 * spread, 100 + 0.5 * mid + 0.25 * spread
        last = None if trade is None else (bid, ask)[trade[0]] + 0.25 * trade[1]
        size_ = None if shown != shown else shown
        ticks.append(
            Tick(str(symbol), ts, bid, ask, size_, size_, last, None if last is None else size)
        )
    n = len(ticks)
    col = np.array
    batch = (
        col([int(t.symbol) for t in ticks], np.int64),
        col([t.ts for t in ticks], np.int64),
        np.ones(n, np.bool_),
        np.zeros(n, np.bool_),
        col([t.bid for t in ticks]),
        col([t.ask for t in ticks]),
        col([(t.bid + t.ask) / 2 for t in ticks]),
        col([math.nan if t.bid_size is None else t.bid_size for t in ticks]),
        col([math.nan if t.ask_size is None else t.ask_size for t in ticks]),
        col([math.nan if t.last is None else t.last for t in ticks]),
        col([math.nan if t.last_size is None else t.last_size for t in ticks]),
        col([r[-1] for r in rows]),
    )
    out, state = np.empty(n), passive_cost.new_state(2)
    # orders of 5 at ~100 (deeper than the sizes shown), a short span and warm-up
    rule = (1_500_000, cross, 0.2, 1.0, 500.0, 0.1, 4.0, 2.0)
    passive_cost.step(batch, (np.full(n, 0.1), np.full(n, 0.6)), rule, state, out)
    counts: dict = {}
    expected = passive_round_trips(
        ticks, [r[-1] for r in rows], 0.1, 1_500_000, cross, 0.1, 0.6, SlippageModel(0.2, 1.0),
        500.0, 4.0, 2, counts,
    )  # fmt: skip
    assert np.allclose(out, expected, rtol=1e-9, atol=0, equal_nan=True)
    fit = state[3]  # legs, fills, timeouts per symbol: where each order ended
    for symbol in range(2):
        assert fit[symbol, 1:].tolist() == counts.get(str(symbol), [0, 0, 0])


def test_where_a_batch_is_cut_or_a_checkpoint_taken_never_changes_the_passive_cost():
    from spark.stream import checkpoint

    settings_ = passive(COSTED)
    batch = TickBatch.from_ticks(ticks_of(IBM, 6000))
    whole = SignalPipeline(settings_).step(batch)
    assert (~np.isnan(whole.passive_cost)).sum() > 1000
    cut = SignalPipeline(settings_)
    parts = [cut.step(batch.take(lo, hi)) for lo, hi in ((0, 1234), (1234, 3000))]
    key = b"k" * 32
    restored, _ = checkpoint.decode(checkpoint.encode(cut, 0, 2999, key), key, 0)
    parts.append(restored.step(batch.take(3000, 6000)))
    joined = np.concatenate([p.passive_cost for p in parts])
    assert np.array_equal(joined, whole.passive_cost, equal_nan=True)
    signals = [
        (lo + i, s) for lo, p in zip((0, 1234, 3000), parts, strict=True) for i, s in p.signals
    ]
    assert signals == whole.signals


def test_policy_settings_are_read_and_checked():
    s = Settings.from_env({"SPARK_MIN_EDGE": "1.5", "SPARK_MIN_HOLD_S": "30"})
    assert (s.models.min_edge, s.models.min_hold_s) == (1.5, 30.0)
    with pytest.raises(SettingsError, match="SPARK_MIN_EDGE"):
        Settings.from_env({"SPARK_MIN_EDGE": "-1"})
    with pytest.raises(SettingsError, match="SPARK_MIN_EDGE"):
        Settings().with_models(min_edge=5000)
    moves = Settings.from_env({"SPARK_HORIZON_MOVES": "2"}).models
    assert (moves.horizon_moves, moves.label_horizon, moves.horizon_ms) == (2, -2, 0)
    assert moves.horizon_name == "2 moves"
    seconds = Settings.from_env({"SPARK_HORIZON_MOVES": "0", "SPARK_HORIZON_S": "2"}).models
    assert (seconds.label_horizon, seconds.horizon_ms, seconds.horizon_name) == (2e6, 2000, "2s")
    saved = Settings().as_dict()  # a checkpoint's settings from before event-time labels
    del saved["models"]["horizon_moves"]
    assert Settings.from_dict(saved).models.label_horizon == 1_000_000  # H = 1 s, as then
    assert Settings.from_dict(Settings().as_dict()) == Settings()
    for bad in ("-1", "1.5", "5000"):
        with pytest.raises(SettingsError, match="SPARK_HORIZON_MOVES"):
            Settings.from_env({"SPARK_HORIZON_MOVES": bad})
    # a challenger is another model: one ADWIN, one registry row per (symbol, model id)
    assert Settings.from_env({"SPARK_MODEL": "gbm", "SPARK_CHALLENGERS": "logreg"})
    for champion, challengers in (("logreg", "logreg"), ("gbm", "logreg,logreg")):
        with pytest.raises(SettingsError, match="a challenger is another model"):
            Settings.from_env({"SPARK_MODEL": champion, "SPARK_CHALLENGERS": challengers})


# --- the backtest's cost accounting ------------------------------------------------------------
def test_backtest_splits_net_into_gross_fees_and_spread():
    from spark.backtest.engine import BacktestParams, run_backtest

    batch = TickBatch.from_ticks(ticks_of(EURUSD, 15000))
    taker = {"model": "logreg", "fill_model": "taker"}  # every fill crosses the spread
    band = run_backtest(batch, BacktestParams(**taker, min_edge=0.0), settings=Settings())
    assert band.fills > 10
    assert band.gross_pnl - band.fees - band.spread_cost == pytest.approx(band.pnl, abs=1e-6)
    assert band.spread_cost > 0 and band.fees > 0
    # every fill crosses half the spread of its quote: spread cost = sum |price - mid| x qty
    notional = sum(t["price"] * t["quantity"] for t in band.trades)
    assert band.traded_notional == pytest.approx(notional)
    assert band.break_even_edge_bp == pytest.approx((band.fees + band.spread_cost) / notional * 2e4)
    assert band.fees / notional * 1e4 == pytest.approx(0.5)  # the fee is 0.5 bp a fill
    costed = run_backtest(
        batch, BacktestParams(**taker, min_edge=1.0, min_hold_s=1.0), settings=Settings()
    )
    assert costed.fills < band.fills
    assert costed.gross_pnl - costed.fees - costed.spread_cost == pytest.approx(costed.pnl)


def test_backtest_cli_prints_the_cost_split(tmp_path):
    from spark.cli import cli

    out = CliRunner().invoke(
        cli,
        ["backtest", "run", "--data", str(EURUSD), "--limit", "8000", "--model", "logreg",
         "--min-edge", "0.5", "--min-hold", "5", "--json"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    figures = json.loads(out.output)
    assert figures["params"]["min_edge"] == 0.5 and figures["params"]["min_hold_s"] == 5
    for key in ("gross_pnl", "spread_cost", "break_even_edge_bp", "edge_bp"):
        assert key in figures
    bad = CliRunner().invoke(cli, ["backtest", "run", "--data", str(EURUSD), "--min-edge", "-1"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output


# --- the selection protocol ----------------------------------------------------------------
def test_the_choice_reads_train_days_only():
    from spark.research.select import Day, choose

    train = [Day("A", "2014-05-01", "a1"), Day("B", "2013-10-07", "b1")]
    test = [Day("A", "2014-05-02", "a2")]
    scores = {}
    for d in train + test:
        scores[(d.path, "x")] = {"pnl": -10.0, "auc": 0.60}
        scores[(d.path, "y")] = {"pnl": -1.0, "auc": 0.55}
    assert choose(scores, train, ["x", "y"]) == "y"
    scores[("a2", "x")] = {"pnl": 1e9, "auc": 0.99}  # a test day can't change the choice
    assert choose(scores, train, ["x", "y"]) == "y"
    scores[("a1", "x")] = {"pnl": -1.0, "auc": 0.60}
    scores[("b1", "x")] = {"pnl": -1.0, "auc": 0.60}
    assert choose(scores, train, ["x", "y"]) == "x"  # equal PnL: the better train AUC


def test_a_train_profit_counts_only_where_it_stands_clear_of_noise():
    """Run 8 chose a learner with a train AUC of 0.50 for a profit made by a few fills on a
    few days. A mean profit counts only where it is MIN_T standard errors above 0 over the
    train day-files; else it ties with making no trade. Losses count as they are."""
    from spark.research.select import MIN_T, Day, choose, evidenced_mean

    train = [Day("A", f"2014-05-{k + 1:02d}", f"a{k}") for k in range(10)]
    lucky = [100.0] + [0.0] * 9  # mean 10, one standard error 10
    steady = [3.0, 4.0] * 5
    assert evidenced_mean(lucky) == 0.0 and evidenced_mean(steady) == pytest.approx(3.5)
    assert evidenced_mean([-5.0, 5.0, -10.0]) == pytest.approx(-10 / 3)  # a loss stays
    assert evidenced_mean([7.0]) == 0.0  # one day-file: no evidence
    assert MIN_T == 2.0
    assert evidenced_mean([5.0, 1.0]) == 0.0  # mean 3, one standard error 2: t = 1.5
    assert evidenced_mean([2.5, 3.0, 3.5]) == pytest.approx(3.0)  # t = 10.4
    scores = {}
    for k, d in enumerate(train):
        scores[(d.path, "lucky")] = {"pnl": lucky[k], "auc": 0.50}
        scores[(d.path, "flat")] = {"pnl": 0.0, "auc": 0.62}
        scores[(d.path, "steady")] = {"pnl": steady[k], "auc": 0.55}
    assert choose(scores, train, ["lucky", "flat"]) == "flat"  # a tie, then the AUC
    assert choose(scores, train, ["lucky", "flat", "steady"]) == "steady"
    # equal on every train figure: taker before passive, then the higher min_edge
    quiet = {"pnl": 0.0, "auc": 0.6, "gross_pnl": 0.0, "traded_notional": 0.0}
    names = ["gbm h=1s edge>=2xcost passive", "gbm h=1s edge>=2xcost", "gbm h=1s edge>=4xcost"]
    names.append("gbm h=1s band")
    for d in train:
        for name in names:
            scores[(d.path, name)] = dict(quiet)
    assert choose(scores, train, names[:3]) == "gbm h=1s edge>=4xcost"
    assert choose(scores, train, names[:2]) == "gbm h=1s edge>=2xcost"


def test_ties_go_to_the_most_edge_before_costs_not_to_an_auc_of_another_horizon():
    """Two candidates that make no trade tie on net PnL. The AUCs answer different questions
    (1 s vs the next mid move), so the tie goes to the learner and horizon whose band-policy
    trades earned more per round trip before costs, on the train days only."""
    from spark.research.select import Day, band_edge, choose

    train = [Day("A", "2014-05-01", "a1"), Day("A", "2014-05-02", "a2")]
    test = [Day("A", "2014-05-05", "a5")]
    quiet = {"pnl": 0.0, "gross_pnl": 0.0, "traded_notional": 0.0}
    gbm, logreg = "gbm h=1s edge>=4xcost", "logreg h=1mv edge>=4xcost"
    scores = {}
    for d in train + test:
        scores[(d.path, gbm)] = quiet | {"auc": 0.63}
        scores[(d.path, logreg)] = quiet | {"auc": 0.66}
        # band policy, 1e6 notional a day: gbm 1 s earns 3 bp a round trip gross, logreg 1 bp
        scores[(d.path, "gbm h=1s band")] = {
            "pnl": -50.0,
            "gross_pnl": 150.0,
            "traded_notional": 1e6,
            "auc": 0.63,
        }
        scores[(d.path, "logreg h=1mv band")] = {
            "pnl": -90.0,
            "gross_pnl": 50.0,
            "traded_notional": 1e6,
            "auc": 0.66,
        }
    assert band_edge(scores, train, gbm) == pytest.approx(3.0)
    assert band_edge(scores, train, logreg) == pytest.approx(1.0)
    assert choose(scores, train, [logreg, gbm]) == gbm  # not the higher AUC
    scores[("a5", "logreg h=1mv band")]["gross_pnl"] = 1e6  # a test day changes nothing
    assert choose(scores, train, [logreg, gbm]) == gbm
    scores[("a1", "logreg h=1mv band")]["gross_pnl"] = 1e3  # a train day does
    assert choose(scores, train, [logreg, gbm]) == logreg
    # without a band candidate of its horizon, an edge is unknown: ranked below a known one
    del scores[("a1", "gbm h=1s band")]
    assert band_edge(scores, train, gbm) != band_edge(scores, train, gbm)  # NaN
    assert choose(scores, train, [gbm, logreg]) == logreg


def test_split_keeps_each_instruments_first_days_for_training():
    from spark.research.select import Day, split

    days = [Day("A", f"2014-05-{d:02d}", f"a{d}") for d in range(1, 11)]
    days += [Day("B", f"2013-10-{d:02d}", f"b{d}") for d in (7, 8)]
    parts = split(days, 0.4)
    assert [d.path for d in parts["train"]] == ["a1", "a2", "a3", "a4", "b7"]
    for inst in "AB":
        last_train = max(d.date for d in parts["train"] if d.instrument == inst)
        assert all(d.date > last_train for d in parts["test"] if d.instrument == inst)


def test_research_select_runs_the_protocol_end_to_end(shared_data, tmp_path):
    from spark.cli import cli

    out = tmp_path / "selection.md"
    result = CliRunner().invoke(
        cli,
        ["research", "select", "--data", str(shared_data), "--instrument", "EURUSD",
         "--instrument", "IBM", "--max-ticks", "2000", "--model", "logreg", "--horizon", "1",
         "--jobs", "1", "--output", str(out), "--pdf", str(tmp_path / "s.pdf"), "--json",
         "--save-scores", str(tmp_path / "scores.json")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    selection = json.loads(result.output)
    names = [c["candidate"] for c in selection["candidates"]]
    policies = ("band", *(f"edge>={k}xcost" for k in (1, 2, 4)))
    assert names == [f"logreg h=1s {p}{f}" for p in policies for f in ("", " passive")]
    assert selection["chosen"] in names
    assert {r["instrument"] for r in selection["test_days"]} == {"EURUSD", "IBM"}
    assert len(selection["test_days"]) == 8 + 3  # 13 and 5 days, the first 40 % to train
    train = {(d["instrument"], d["date"]) for d in selection["train_days"]}
    assert not train & {(r["instrument"], r["date"]) for r in selection["test_days"]}
    assert all(r["ticks"] == 2000 for r in selection["test_days"])
    assert "## The chosen candidate on the test days, per instrument" in out.read_text()
    pdf = (tmp_path / "s.pdf").read_bytes()
    assert pdf.startswith(b"%PDF") and b"Spark selection report" in pdf
    none = CliRunner().invoke(cli, ["research", "select", "--data", str(tmp_path)])
    assert none.exit_code == 1 and "no day-files" in none.output
    # walked forward over days: 2 first train days (IBM's 40 % of 5), 13 - 2 folds
    walk = selection["walk_forward"]
    assert walk["summary"]["first_train_days"] == 2 and walk["summary"]["folds"] == 11
    assert [len(f["test_days"]) for f in walk["folds"]] == [2, 2, 2] + [1] * 8
    assert all(f["chosen"] in names for f in walk["folds"])
    assert "## The choice walked forward over days" in out.read_text()
    # chosen again from the saved figures: nothing runs (no data folder), the same answer
    empty = tmp_path / "nothing"
    empty.mkdir()
    again = CliRunner().invoke(
        cli,
        ["research", "select", "--data", str(empty), "--scores", str(tmp_path / "scores.json"),
         "--model", "logreg", "--horizon", "1", "--max-ticks", "2000", "--json"],
    )  # fmt: skip
    assert again.exit_code == 0, again.output
    redone = json.loads(again.output)
    for key in ("chosen", "candidates", "test_days", "per_instrument", "walk_forward"):
        assert redone[key] == selection[key], key
    more = CliRunner().invoke(
        cli,
        ["research", "select", "--data", str(empty), "--scores", str(tmp_path / "scores.json"),
         "--max-ticks", "2000"],
    )  # fmt: skip
    assert more.exit_code == 1 and "run it again" in more.output  # the file has logreg 1 s only
    other = CliRunner().invoke(
        cli, ["research", "select", "--data", str(empty), "--scores", str(tmp_path / "scores.json")]
    )  # the default, whole day-files: not the figures the file holds
    assert other.exit_code == 1 and "--max-ticks 2000" in other.output
    assert "holds figures of at most 2000 ticks a day-file, not whole day-files" in other.output


def test_walking_forward_over_days_chooses_on_earlier_days_only():
    """Each fold chooses on the days before its test days, never on them: changing a test
    day's figures changes that fold's out-of-sample figure, never its choice."""
    from spark.research.select import Day, walk_forward_days

    days = [Day("FX", f"2014-05-0{i}", f"fx{i}") for i in range(1, 5)]
    days += [Day("EQ", f"2013-10-0{i}", f"eq{i}") for i in range(1, 4)]
    # candidate "a" earns early on, "b" later
    pnl = {"a": [5, 5, -9, -9], "b": [1, 1, 3, 3]}

    def scores(pnl):
        out = {}
        for d in days:
            i = int(d.path[2:]) - 1
            for name, values in pnl.items():
                out[(d.path, name)] = {"pnl": values[i], "auc": 0.6, "fills": 1.0}
        return out

    walk = walk_forward_days(scores(pnl), days, ["a", "b"], first=1)
    folds = walk["folds"]
    assert [f["test_days"] for f in folds] == [
        ["EQ 2013-10-02", "FX 2014-05-02"], ["EQ 2013-10-03", "FX 2014-05-03"],
        ["FX 2014-05-04"],
    ]  # fmt: skip
    assert [f["train_days"] for f in folds] == [2, 4, 6]
    # a: 5 a day on one and two train days; on three, a makes 1/3 a day (t = 0.2: counts as
    # 0) and b 5/3 (t = 3.9)
    assert [f["chosen"] for f in folds] == ["a", "a", "b"]
    assert [f["out_of_sample_pnl"] for f in folds] == [5, -9, 3]
    assert [f["best_on_test_pnl"] for f in folds] == [5, 3, 3]
    assert walk["summary"]["oos_pnl_per_day_file"] == pytest.approx((2 * 5 - 2 * 9 + 3) / 5)
    # the test days' figures change the out-of-sample figures, never the choices
    pnl["a"][2], pnl["a"][3] = 100, 100
    again = walk_forward_days(scores(pnl), days, ["a", "b"], first=1)
    assert [f["chosen"] for f in again["folds"]][:2] == ["a", "a"]
    assert again["folds"][1]["out_of_sample_pnl"] == 100


# --- drift rules across instruments and synthetic switches ---------------------------------
def test_synthetic_switches_change_what_they_say_and_nothing_else():
    from spark.research.drift import follow, price_grid, synthetic

    batch = TickBatch.from_ticks(ticks_of(EURUSD, 3000))
    step = price_grid(batch)
    assert step == 1e-5
    assert price_grid(TickBatch.from_ticks(ticks_of(IBM, 3000))) == 0.01

    def on_grid(b):
        for side in (b.bid, b.ask):
            assert np.allclose(side / step, np.round(side / step), rtol=0, atol=1e-6)

    mid, spread = (batch.bid + batch.ask) / 2, batch.ask - batch.bid
    vol = synthetic(batch, "vol_x3")
    wanted = mid[0] + 3 * (mid - mid[0])  # within half a step: the bid is kept on the grid
    assert np.abs((vol.bid + vol.ask) / 2 - wanted).max() <= step / 2 + 1e-12
    assert np.abs(np.diff((vol.bid + vol.ask) / 2)).sum() > 2.5 * np.abs(np.diff(mid)).sum()
    assert np.allclose(vol.ask - vol.bid, spread)
    wide = synthetic(batch, "spread_x3")
    assert np.allclose(wide.ask - wide.bid, 3 * spread) and np.allclose(
        (wide.bid + wide.ask) / 2, mid
    )
    drift = synthetic(batch, "mid_drift")
    minutes = (batch.ts[-1] - batch.ts[0]) / 60e6
    moved = ((drift.bid[-1] + drift.ask[-1]) / 2) / mid[-1] - 1
    assert moved == pytest.approx(1e-4 * minutes, abs=step / mid[-1])
    assert np.allclose(drift.ask - drift.bid, spread)
    frozen = synthetic(batch, "frozen")
    for changed in (vol, wide, drift, frozen):
        on_grid(changed)
    assert (frozen.bid == frozen.bid[0]).all() and (frozen.ask == frozen.ask[0]).all()
    assert np.array_equal(frozen.ts, batch.ts) and np.array_equal(
        vol.bid_size, batch.bid_size, equal_nan=True
    )
    later = follow(batch.take(0, 1000), TickBatch.from_ticks(ticks_of(IBM, 500)))
    assert later.ts[0] == batch.ts[999] + 1_000_000 and (np.diff(later.ts) >= 0).all()
    with pytest.raises(ValueError, match="unknown switch"):
        synthetic(batch, "vol_x9")


def test_research_drift_measures_every_detector_on_every_stream(shared_data, tmp_path):
    from spark.cli import cli
    from spark.research.drift import PROFILED

    result = CliRunner().invoke(
        cli,
        ["research", "drift", "--data", str(shared_data), "--instrument", "EURUSD",
         "--instrument", "IBM", "--before", "5200", "--after", "1800", "--jobs", "1", "--json",
         "--pdf", str(tmp_path / "d.pdf"), "--day-ticks", "2000", "--output",
         str(tmp_path / "d.md")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    matrix = json.loads(result.output)
    assert list(matrix["streams"]) == [
        "EURUSD -> IBM", "IBM -> EURUSD",
        "EURUSD -> IBM same_level", "IBM -> EURUSD same_level",
        "EURUSD vol_x3", "EURUSD spread_x3", "EURUSD mid_drift", "EURUSD frozen",
        "IBM vol_x3", "IBM spread_x3", "IBM mid_drift", "IBM frozen",
    ]  # fmt: skip
    for row in matrix["streams"].values():
        assert row["switch_tick"] == 5200
        assert {"psi_confirmed (spread_bp & vol_bp)", "adwin", PROFILED} <= set(row["detectors"])
    summary = {r["detector"]: r for r in matrix["summary"]}
    chosen = matrix["breaks"][0]  # the break rule the train streams ranked first
    assert f"chosen: {chosen['rule']}" in summary and len(summary) == 7 * 4 + 2 + 1 + 1
    # the gate rule with its profile part, the profile of the days before the test day
    dates = matrix["profile_days"]
    assert {n: len(d) for n, d in dates.items()} == {"EURUSD": 12, "IBM": 4}
    assert max(dates["IBM"]) < "2013-10-11" and max(dates["EURUSD"]) < "2014-05-15"  # test days
    profiled = matrix["profile_by_kind"]
    assert sum(f["streams"] for f in profiled.values()) == 12
    for kind in ("same_level", "vol_x3"):  # which the break rule alone misses here
        assert profiled[kind]["caught"] > matrix["chosen_by_kind"][kind]["caught"]
    assert all(f["false"] == 0 for f in profiled.values())
    assert "with its profile part" in (tmp_path / "d.md").read_text()
    assert chosen["train"]["streams"] == chosen["test"]["streams"] == 12
    assert chosen["train"]["worst_false_per_100k"] <= 1.0  # the protocol's first condition
    kinds = matrix["chosen_by_kind"]
    assert {k: f["streams"] for k, f in kinds.items()} == {
        "pair": 2, "same_level": 2, "vol_x3": 2, "spread_x3": 2, "mid_drift": 2, "frozen": 2
    }  # fmt: skip
    assert sum(f["caught"] for f in kinds.values()) == chosen["test"]["caught_within_target"]
    spread = summary["psi_spread_bp_w2000_t2"]
    assert spread["streams"] == 12 and spread["caught_within_target"] >= 1
    assert (tmp_path / "d.pdf").read_bytes().startswith(b"%PDF")
    # the shipped gate rule on every day-file of the two instruments, no switch in them
    days = matrix["whole_days"]
    assert len(days) == 13 + 5 and matrix["gate_rule"] == Settings().drift.rule
    assert {d["instrument"] for d in days.values()} == {"EURUSD", "IBM"}
    assert all(d["ticks"] == 2000 for d in days.values())
    for d in days.values():
        assert d["false_per_100k"] == sum(d["alarms"].values()) / 2000 * 1e5
    # the gate rule with its profile part on every day-file with two earlier ones, each
    # against the profile of its instrument's earlier day-files
    profiled = matrix["whole_days_profiled"]
    dates = {
        i: sorted(d["date"] for d in days.values() if d["instrument"] == i)
        for i in ("EURUSD", "IBM")
    }
    assert list(profiled) == [f"{i} {d}" for i in ("EURUSD", "IBM") for d in dates[i][2:]]
    for name, d in profiled.items():
        earlier = dates[d["instrument"]]
        assert d["profile_dates"] == earlier[: earlier.index(d["date"])], name
        assert d["ticks"] == 2000
    assert "with its profile part `break+dt_spread+profile`" in (tmp_path / "d.md").read_text()
    assert len(matrix["train_streams"]) == 12
    assert all(n.startswith("train: ") for n in matrix["train_streams"])
    first_days = {r["switch_tick"] for r in matrix["train_streams"].values()}
    assert first_days == {5200}
    assert not any(PROFILED in r["detectors"] for r in matrix["train_streams"].values())
    assert matrix["combined"] and {"rule", "train", "test"} <= set(matrix["combined"][0])
    # EURUSD and IBM are each alone in their kind of market: no kind entry to learn
    assert matrix["kind_learnt_from"] == {} and matrix["whole_days_kind"] == {}
    assert "never seen" not in (tmp_path / "d.md").read_text()


def test_research_drift_runs_an_instrument_never_seen_with_its_kind_of_market(shared_data):
    """Two stocks: each test stream and each whole day-file of one runs the gate rule with a
    profile holding only the stock kind's entry, learnt on the other's day-files before its
    test day, and not its own; the report says so."""
    from spark.drift.profile import Profile
    from spark.research.drift import (
        KIND_PROFILED,
        days_by_instrument,
        earlier_days,
        kind_profiles,
        markdown,
        run_matrix,
    )

    matrix = run_matrix(shared_data, before=5_200, after=1_800, instruments=("BAC", "AIG"),
                        day_ticks=2_000)  # fmt: skip
    assert matrix["kind_learnt_from"] == {"BAC": ["AIG"], "AIG": ["BAC"]}
    assert all(KIND_PROFILED in r["detectors"] for r in matrix["streams"].values())
    assert not any(KIND_PROFILED in r["detectors"] for r in matrix["train_streams"].values())
    assert sum(f["streams"] for f in matrix["kind_by_kind"].values()) == 12
    days = matrix["whole_days_kind"]
    assert len(days) == 10 and all(d["ticks"] == 2_000 for d in days.values())
    assert "## An instrument never seen" in markdown(matrix)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        loaded = earlier_days(days_by_instrument(shared_data, ("BAC", "AIG")))
        loaded["EURUSD"] = loaded["AIG"][:2]  # an FX pair, alone in its kind here
        made = kind_profiles(loaded, Path(folder))
        assert set(made) == {"BAC", "AIG"}
        bac = Profile.load(made["BAC"][0])
        assert bac.symbols == {} and bac.kind_of("BAC") == "stock"
        assert bac.kinds["stock"].instruments == ["AIG"] and bac.kinds["stock"].days == 4


def test_a_whole_day_runs_the_profile_part_only_with_a_profile(shared_data, tmp_path):
    """`measure_day` with a profile path: the gate rule with its profile part, as a worker
    given that profile runs it. A day whose spread is 10x its usual raises the profile's
    spread alarm; the same day without the profile raises none, and the real day none."""
    import zipfile

    from spark.drift.profile import build
    from spark.research.drift import measure_day
    from spark.research.select import Day, find_days, load_day

    days = [d for d in find_days(shared_data) if d.instrument == "EURUSD"]
    earlier = {"EURUSD": []}
    for d in days[:2]:
        b = load_day(d, 10**12)
        earlier["EURUSD"].append((d.date, b.ts, b.bid, b.ask))
    build(earlier).save(tmp_path / "profile.json")
    real = days[3]
    with zipfile.ZipFile(real.path) as z:
        member = z.namelist()[0]
        rows = z.read(member).decode().splitlines()[:20_000]
    wide = []
    for row in rows:  # time_ms, bid, ask: the spread 10x around the same mid
        t, bid, ask = row.split(",")[:3]
        half = 4.5 * (float(ask) - float(bid))
        wide.append(f"{t},{float(bid) - half:.5f},{float(ask) + half:.5f}")
    path = tmp_path / "eurusd" / Path(real.path).name
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, "\n".join(wide) + "\n")
    day = Day("EURUSD", real.date, str(path))
    profile = str(tmp_path / "profile.json")
    _, with_profile = measure_day(("wide", day, 0, profile))
    assert with_profile["alarms"] == {"profile_spread_up": 1}
    assert with_profile["false_per_100k"] == 1 / with_profile["ticks"] * 1e5
    assert measure_day(("wide", day, 0))[1]["alarms"] == {}
    assert measure_day(("real", real, 20_000, profile))[1]["alarms"] == {}


def test_research_gate_backtests_every_switch_with_and_without_the_gate(shared_data):
    """`spark research gate`: every test-day stream backtested under both policies with
    the shipped gate and without; the effect is the difference; a gate that held nothing
    back changes nothing; instrument switches go on at the same price level."""
    from spark.cli import cli
    from spark.research.drift import _stream, same_level, streams
    from spark.research.gate import POLICIES

    result = CliRunner().invoke(
        cli,
        ["research", "gate", "--data", str(shared_data), "--instrument", "EURUSD",
         "--instrument", "IBM", "--before", "3000", "--after", "1500", "--jobs", "1", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    figures = json.loads(result.output)
    assert len(figures["streams"]) == 10 and figures["settings"]["model"] == "logreg"
    for name, row in figures["streams"].items():
        assert set(row["policies"]) == set(POLICIES), name
        for policy, runs in row["policies"].items():
            gate, none = runs["gate"], runs["no_gate"]
            assert runs["effect"] == pytest.approx(gate["pnl"] - none["pnl"])
            assert none["suppressed"] == 0  # no gate, nothing held back
            if gate["suppressed"] == 0:  # the gate never closed: the same run
                assert gate == none, (name, policy)
    band = figures["summary"]["band (min_edge 0)"]
    assert band["instrument pairs"]["streams"] == 2
    assert sum(s["streams"] for s in band.values()) == 10
    # an instrument switch keeps B's moves but not its price level (1.38 -> 180)
    name, a, b, kind = streams(shared_data, ("EURUSD", "IBM"), "last")[0]
    stream, switch = _stream(a, b, kind, 3000, 1500)
    mid = lambda s: (s.bid + s.ask) / 2  # noqa: E731
    assert mid(stream)[switch] / mid(stream)[switch - 1] > 50  # EURUSD then IBM, as read
    level = same_level(stream, switch)
    assert mid(level)[switch] == pytest.approx(mid(level)[switch - 1])
    moves = np.diff(np.log(mid(stream)[switch:]))
    assert np.allclose(np.diff(np.log(mid(level)[switch:])), moves)


def test_a_confirmed_rule_alarms_when_both_alarm_close_together():
    from spark.research.drift import confirm

    assert confirm([100, 5000], [300, 9000], 250) == [300]
    assert confirm([100, 5000], [300, 9000], 100) == []
    # after a confirmation both must alarm again (as the kernel's confirmed groups re-arm)
    assert confirm([100, 150, 200, 2000], [120, 2100], 250) == [120, 2100]
    assert confirm([100, 150], [120, 130], 250) == [120, 150]  # both alarmed again: 130, 150


def test_the_loop_counts_every_output_topic_from_the_start():
    """With the cost-aware default an hour without signals is normal: the signals counter
    exists at 0 from the start, so the dashboard panel says 0, not "no data"."""
    from prometheus_client import REGISTRY

    from spark.stream.stats import LoopStats

    LoopStats()
    for topic in ("signals", "predictions", "fills", "orders", "drift_alerts"):
        value = REGISTRY.get_sample_value("spark_events_out_total", {"topic": topic})
        assert value is not None, topic


def test_the_demo_says_which_policy_made_its_signals(monkeypatch):
    from spark.demo import _policy, _policy_text

    monkeypatch.delenv("SPARK_MIN_EDGE", raising=False)
    default = _policy()
    assert default["min_edge"] == 4.0 and "cost-aware policy" in _policy_text(default)
    monkeypatch.setenv("SPARK_MIN_EDGE", "0")
    assert _policy_text(_policy()).startswith("band policy")


def test_the_dt_spread_gate_rule_is_dt_s_confirmed_by_spread_bp():
    """The gate rule `spark research drift` chose on train streams in session 7 (the default
    until session 14): PSI on dt_s (window 2,000, threshold 2) and PSI on spread_bp (window
    2,000, threshold 4), both checked every 250 vectors, within 1,000 of each other; its
    alarms in the pipeline are the readable rule's, on a real switch of instrument."""
    from spark.drift.evaluate import one_stream
    from spark.features.kernel import FEATURE_NAMES
    from spark.research.drift import follow
    from tests.oracles import Confirmed, PSIDetector

    first = TickBatch.from_ticks(ticks_of(EURUSD, 12000))
    stream = one_stream(first, follow(first, TickBatch.from_ticks(ticks_of(IBM, 8000))))
    base = Settings.from_env({"SPARK_GATE_RULE": "dt_spread"})
    settings_ = replace(base.with_models(model="logreg"), trading=False)
    r = SignalPipeline(settings_).step(stream)
    got = [i for i, a in r.alerts if a["detector"] == "psi_confirmed"]
    assert got and all(a["feature"] == "dt_s&spread_bp" for _, a in r.alerts if a["detector"]
                       == "psi_confirmed")  # fmt: skip
    rule = Confirmed(
        {
            "dt_s": PSIDetector(window=2000, threshold=2.0, check_every=250),
            "spread_bp": PSIDetector(window=2000, threshold=4.0, check_every=250),
        },
        within=1000,
    )
    expected = [
        i
        for i in np.flatnonzero(r.valid).tolist()
        if rule.update_vector(dict(zip(FEATURE_NAMES, r.features[i].tolist(), strict=True)))
    ]
    assert got == expected
