"""Cost and fill models (docs/costs.md): fee schedules, latency with jitter, slippage against
size and spread, passive orders filled by queue position. The executor's logic without
Kafka, then the same models through the SignalPipeline on real IBM quotes and trades."""

from __future__ import annotations

import heapq
import itertools
import json
import math
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spark.cli import cli
from spark.execution.costs import CostModelError, CostModels, FeeSchedule, LatencyModel
from spark.execution.paper import PaperExecutor
from spark.execution.risk import ExecutionSettings, Limits
from spark.pipeline import SignalPipeline, TickBatch
from spark.settings import Settings, SettingsError
from spark.ticks.replay import valid_ticks
from tests.conftest import SHARED_DATA

T0 = 1_700_000_000_000_000
MS = 1000
NAN = math.nan


def make(**settings) -> PaperExecutor:
    base = {"order_notional": 1000.0, "fee_bp": 1.0, "latency_ms": 20.0, "fill_model": "taker"}
    return PaperExecutor(ExecutionSettings(**(base | settings)), Limits())


def signal(side: str, ts: int, symbol: str = "EURUSD") -> dict:
    return {"symbol": symbol, "ts": ts, "side": side, "model_version": 1}


def tick(ex, ts, bid, ask, bid_size=None, ask_size=None, last=None, last_size=None):
    return ex.on_quote(
        "EURUSD", ts, bid, ask, (bid + ask) / 2, (bid_size, ask_size, last, last_size)
    )


def records(out, kind):
    return [r for k, r in out if k == kind]


# --- the objects ---------------------------------------------------------------------------------
def test_fee_schedule_first_match_wins_and_bad_entries_say_why():
    fees = FeeSchedule.parse("EUR*=0.2/-0.1, Q:IBM=0.4, *=0.9/0.3", taker_bp=0.5, maker_bp=0.05)
    assert fees.rate("EURUSD", "taker") == 0.2 and fees.rate("EURUSD", "maker") == -0.1
    assert fees.rate("IBM", "taker", venue="Q") == 0.4
    assert fees.rate("IBM", "maker", venue="Q") == 0.05  # no maker given: the default maker fee
    assert fees.rate("IBM", "taker", venue="N") == 0.9  # the catch-all
    for bad, says in [
        ("EURUSD", "PATTERN=TAKER"),
        ("EURUSD=abc", "number of basis points"),
        ("EURUSD=-1", "must be >= 0"),
        ("EURUSD=1/inf", "finite"),
    ]:
        with pytest.raises(CostModelError, match=says):
            FeeSchedule.parse(bad)


def test_latency_jitter_is_deterministic_and_bounded():
    model = LatencyModel(base_ms=20.0, jitter_ms=10.0)
    delays = [model.delay_us("EURUSD", T0 + i) for i in range(2000)]
    assert delays == [model.delay_us("EURUSD", T0 + i) for i in range(2000)]
    assert 20_000 <= min(delays) < 20_100 and 29_900 < max(delays) < 30_000
    assert len(set(delays)) > 1900
    assert LatencyModel(20.0).delay_us("X", T0) == 20_000


def test_cost_settings_from_the_environment_are_checked():
    s = Settings.from_env(
        {
            "SPARK_FILL_MODEL": "passive",
            "SPARK_MAKER_FEE_BP": "-0.2",
            "SPARK_FEE_SCHEDULE": "BAC=0.6/-0.25",
            "SPARK_PASSIVE_ON_TIMEOUT": "cancel",
        }
    )
    models = CostModels.from_settings(s.execution)
    assert models.fill.passive and models.fill.on_timeout == "cancel"
    assert models.fees.rate("BAC", "maker") == -0.25 and models.fees.rate("IBM", "maker") == -0.2
    for env, says in [
        ({"SPARK_FILL_MODEL": "iceberg"}, "fill model must be one of taker, passive"),
        ({"SPARK_PASSIVE_ON_TIMEOUT": "wait"}, "cross, cancel"),
        ({"SPARK_FEE_SCHEDULE": "BAC"}, "PATTERN=TAKER"),
        ({"SPARK_SLIPPAGE_BP": "-1"}, "SPARK_SLIPPAGE_BP"),
    ]:
        with pytest.raises(SettingsError, match=says):
            Settings.from_env(env)


# --- taker fills ---------------------------------------------------------------------------------
def test_a_taker_fill_pays_slippage_and_walks_past_the_shown_size():
    ex = make(slippage_bp=2.0, depth_spreads=1.0, fee_schedule="EURUSD=0.3")
    tick(ex, T0, 0.99, 1.01, 5000, 5000)
    ex.on_signal(signal("BUY", T0))  # 1,000 units: inside the 250 shown? no: see below
    out = tick(ex, T0 + 30 * MS, 1.00, 1.02, 800, 250)
    (fill,) = records(out, "fill")
    # touch 1.02 + 2 bp of mid 1.01 + one spread (0.02) on the 750 of 1,000 beyond the 250 shown
    assert fill["price"] == pytest.approx(1.02 + 2e-4 * 1.01 + 0.02 * 750 / 1000)
    assert fill["fee"] == pytest.approx(0.3e-4 * 1000 * fill["price"])
    assert fill["liquidity"] == "taker"


def test_the_fill_waits_for_its_jittered_latency():
    ex = make(latency_ms=20.0, latency_jitter_ms=50.0)
    delay = ex.costs.latency.delay_us("EURUSD", T0)
    tick(ex, T0, 0.99, 1.01)
    ex.on_signal(signal("BUY", T0))
    assert tick(ex, T0 + int(delay) - 1, 1.0, 1.02) == []
    out = tick(ex, T0 + int(delay) + 1, 1.0, 1.02)
    assert records(out, "fill")[0]["latency_ms"] == pytest.approx((int(delay) + 1) / 1000)


# --- passive fills -------------------------------------------------------------------------------
def test_a_passive_buy_fills_when_trades_at_its_price_consume_the_queue_ahead():
    ex = make(fill_model="passive", maker_fee_bp=-0.5)
    tick(ex, T0, 0.99, 1.01, 300, 300)
    ex.on_signal(signal("BUY", T0))
    (order,) = records(tick(ex, T0 + 30 * MS, 1.00, 1.02, 500, 400), "order")
    assert order["limit_price"] == 1.00 and order["ts"] == T0 + 30 * MS
    assert tick(ex, T0 + 40 * MS, 1.00, 1.02, 350, 400) == []  # cancels: 350 ahead at most
    assert tick(ex, T0 + 50 * MS, 1.00, 1.02, 900, 400) == []  # joiners behind: still 350
    assert tick(ex, T0 + 60 * MS, 1.00, 1.02, None, None, 1.00, 350) == []  # 350 traded: 0 ahead
    out = tick(ex, T0 + 70 * MS, 1.00, 1.02, None, None, 1.00, 1)  # the next trade is ours
    (fill,) = records(out, "fill")
    assert fill["price"] == 1.00 and fill["liquidity"] == "maker"
    assert fill["fee"] == pytest.approx(-0.5e-4 * 1000 * 1.00)  # a rebate
    assert fill["ts"] == T0 + 70 * MS and fill["latency_ms"] == 70.0
    assert ex.positions["EURUSD"].quantity == 1000.0 and not ex.resting


def test_a_passive_order_fills_when_the_market_moves_through_it():
    ex = make(fill_model="passive")
    tick(ex, T0, 0.99, 1.01)  # no sizes: nobody knows the queue, only a move through fills
    ex.on_signal(signal("SELL", T0))
    (order,) = records(tick(ex, T0 + 30 * MS, 1.00, 1.02), "order")
    assert order["limit_price"] == 1.02
    assert tick(ex, T0 + 40 * MS, 1.01, 1.02, None, None, 1.02, 10_000) == []  # at the price
    out = tick(ex, T0 + 50 * MS, 1.02, 1.03)  # the bid reached the order's ask
    assert records(out, "fill")[0]["price"] == 1.02
    assert ex.positions["EURUSD"].quantity == -1000.0


def test_an_unfilled_passive_order_crosses_or_is_cancelled_at_its_timeout():
    for on_timeout in ("cross", "cancel"):
        ex = make(fill_model="passive", passive_timeout_ms=100, passive_on_timeout=on_timeout)
        tick(ex, T0, 0.99, 1.01)
        ex.on_signal(signal("BUY", T0))
        tick(ex, T0 + 30 * MS, 1.00, 1.02)
        ex.on_signal(signal("FLAT", T0 + 40 * MS))  # waits behind the resting order
        assert tick(ex, T0 + 129 * MS, 1.00, 1.02) == []
        out = tick(ex, T0 + 130 * MS, 1.01, 1.03)
        if on_timeout == "cross":
            fill = records(out, "fill")[0]
            assert fill["price"] == 1.03 and fill["liquidity"] == "taker"
            assert [k for k, _ in out][:3] == ["fill", "position", "order"]  # then the FLAT
            assert ex.resting["EURUSD"].order["side"] == "SELL"
        else:
            (cancel,) = records(out, "cancel")
            assert (
                cancel["limit_name"] == "passive_unfilled"
                and "not filled in 100 ms" in (cancel["reason"])
            )
            assert ex.rejections == {"passive_unfilled": 1} and ex.cancelled == 1
            assert ex.positions["EURUSD"].quantity == 0.0
            assert records(out, "no_change")  # the FLAT found nothing to close


def test_a_resting_order_survives_a_json_round_trip():
    def run(split: bool):
        ex = make(fill_model="passive")
        out = []
        tick(ex, T0, 0.99, 1.01, 100, 100)
        ex.on_signal(signal("BUY", T0))
        out += tick(ex, T0 + 30 * MS, 1.00, 1.02, 200, 100)
        out += tick(ex, T0 + 40 * MS, 1.00, 1.02, None, None, 1.00, 150)
        if split:
            saved = json.loads(json.dumps(ex.state()))
            ex = make(fill_model="passive")
            ex.load(saved)
        out += tick(ex, T0 + 50 * MS, 1.00, 1.02, None, None, 1.00, 60)
        return out, ex

    (whole, a), (split, b) = run(False), run(True)
    assert whole == split and records(whole, "fill")[0]["ts"] == T0 + 50 * MS
    assert a.state() == b.state()


# --- through the pipeline, on real quotes and trades ---------------------------------------------
PASSIVE = replace(
    Settings().with_models(model="logreg", min_edge=0.0),
    execution=replace(
        Settings().execution, fill_model="passive", passive_timeout_ms=20_000, latency_ms=5.0
    ),
    limits=Limits(max_daily_drawdown=1e12, max_orders_per_minute=1e9),
    gate=False,
)


def ibm_ticks(n: int):
    day = SHARED_DATA / "equity/ibm"
    if not day.is_dir():
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    quotes = valid_ticks([day / "20131007_quote.zip"], "lean-quote")
    trades = valid_ticks([day / "20131007_trade.zip"], "lean-trade")
    return list(itertools.islice(heapq.merge(quotes, trades, key=lambda t: t.ts), n))


def passive_run(batch: TickBatch, cuts: list[int]):
    pipeline = SignalPipeline(PASSIVE)
    bounds = [0, *sorted(set(cuts)), len(batch)]
    executions, quotes = [], []
    for lo, hi in itertools.pairwise(bounds):
        r = pipeline.step(batch.take(lo, hi))
        executions += [(lo + i, k, e) for i, k, e in r.executions]
        quotes.append(r.quotes)
    return executions, np.concatenate(quotes)


@pytest.fixture(scope="module")
def passive_whole():
    batch = TickBatch.from_ticks(ibm_ticks(30_000))
    return batch, passive_run(batch, [])


def readable_passive_end(batch: TickBatch, quotes, posted: int, limit: float, side: int, deadline):
    """Where a passive order posted at tick ``posted`` ends, walking the ticks one by one
    with the rules of docs/costs.md: (tick, "fill" | "timeout") or None."""
    shown_at = batch.bid_size if side > 0 else batch.ask_size
    ahead = shown_at[posted] if not math.isnan(shown_at[posted]) else math.inf
    for i in range(posted + 1, len(batch)):
        if batch.ts[i] >= deadline:
            return i, "timeout"
        last, size = batch.last[i], batch.last_size[i]
        if not math.isnan(last):
            if (last < limit) if side > 0 else (last > limit):
                return i, "fill"
            if last == limit and not math.isnan(size):
                ahead -= size
                if ahead < 0:
                    return i, "fill"
        own, other = (quotes[i, 1], quotes[i, 2]) if side > 0 else (quotes[i, 2], quotes[i, 1])
        if not math.isnan(other) and ((other <= limit) if side > 0 else (other >= limit)):
            return i, "fill"
        if not math.isnan(own):
            if own == limit and not math.isnan(shown_at[i]):
                ahead = min(ahead, shown_at[i])
            elif (own < limit) if side > 0 else (own > limit):
                ahead = 0.0
    return None


def test_passive_fills_on_real_ticks_are_where_the_queue_rules_put_them(passive_whole):
    batch, (executions, quotes) = passive_whole
    orders = {r["order_id"]: (i, r) for i, k, r in executions if k == "order"}
    ends = {r["order_id"]: (i, k, r) for i, k, r in executions if k in ("fill", "cancel")}
    makers = [e for e in ends.values() if e[2].get("liquidity") == "maker"]
    takers = [e for e in ends.values() if e[2].get("liquidity") == "taker"]
    assert len(makers) >= 5 and len(takers) >= 1, (len(makers), len(takers))
    timeout_us = PASSIVE.execution.passive_timeout_ms * 1000
    for order_id, (posted, order) in orders.items():
        side = 1 if order["side"] == "BUY" else -1
        assert order["limit_price"] == quotes[posted, 1 if side > 0 else 2]
        assert batch.ts[posted] == order["ts"]
        expected = readable_passive_end(
            batch, quotes, posted, order["limit_price"], side, order["ts"] + timeout_us
        )
        if expected is None:
            assert order_id not in ends
            continue
        at, how = expected
        i, _, fill = ends[order_id]
        assert i == at, (order_id, i, at)
        if how == "fill":
            assert fill["liquidity"] == "maker" and fill["price"] == order["limit_price"]
        else:
            assert fill["liquidity"] == "taker"
            assert fill["price"] == quotes[at, 2 if side > 0 else 1] or fill["quantity"] > 0


@settings(
    max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(cuts=st.lists(st.integers(min_value=1, max_value=29_999), max_size=12))
def test_where_a_batch_is_cut_never_changes_a_passive_fill(passive_whole, cuts):
    batch, (whole, _) = passive_whole
    assert passive_run(batch, cuts)[0] == whole


def test_a_backtest_says_which_cost_models_ran(tmp_path):
    day = SHARED_DATA / "equity/ibm"
    if not day.is_dir():
        pytest.skip(f"real tick data not found at {SHARED_DATA}")
    args = ["backtest", "run", "--data", str(day / "20131007_quote.zip")]
    args += ["--data", str(day / "20131007_trade.zip"), "--limit", "40000", "--min-edge", "0"]
    args += ["--no-gate", "--set-limit", "max_daily_drawdown=1e12", "--model", "logreg"]
    result = CliRunner().invoke(cli, [*args, "--fill", "passive", "--maker-fee-bp", "-0.2"])
    assert result.exit_code == 0, result.output
    assert "cost models: fill passive (queue position, 5000 ms then cross)" in result.output
    assert "fees taker 0.5 / maker -0.2 bp" in result.output
    assert "maker (passive, by queue position)" in result.output
    report = tmp_path / "r.json"
    result = CliRunner().invoke(cli, [*args, "--fill", "passive", "--json", "--report", report])
    out = json.loads(result.output)
    assert out["cost_models"]["fill"]["kind"] == "passive"
    assert out["maker_fills"] > 0 and out["maker_fills"] + out["taker_fills"] == out["fills"]
    assert out["gross_pnl"] == pytest.approx(out["pnl"] + out["fees"] + out["spread_cost"])
    saved = json.loads(report.read_text())
    assert {t["liquidity"] for t in saved["trades"]} == {"maker", "taker"}
    assert out["passive_cost_bp"] is None  # the band policy prices nothing
    # the cost-aware policy prices a passive round trip by shadow orders (quotes and trades)
    costed = CliRunner().invoke(cli, [*args, "--fill", "passive", "--min-edge", "1"])
    assert "the policy priced a passive round trip at" in costed.output, costed.output
    costed = CliRunner().invoke(cli, [*args, "--fill", "passive", "--min-edge", "1", "--json"])
    assert json.loads(costed.output)["passive_cost_bp"] > 0
    bad = CliRunner().invoke(cli, [*args, "--fee-schedule", "IBM"])
    assert bad.exit_code == 2 and "PATTERN=TAKER" in bad.output
