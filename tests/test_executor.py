"""The paper executor's logic: fills, PnL, every risk limit, the kill switch, state. No Kafka."""

from __future__ import annotations

import json

import pytest

from spark.execution.paper import InvalidSignal, PaperExecutor, Position
from spark.execution.risk import ExecutionSettings, Limits, execution_from_env, limits_from_env

T0 = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
MS = 1000


def make(limits: Limits | None = None, **settings) -> PaperExecutor:
    base = {"order_notional": 1000.0, "fee_bp": 1.0, "latency_ms": 20.0, "fill_model": "taker"}
    return PaperExecutor(ExecutionSettings(**(base | settings)), limits or Limits())


def signal(side: str, ts: int, symbol: str = "EURUSD") -> dict:
    return {"symbol": symbol, "ts": ts, "side": side, "model_version": 3}


def quote(ex: PaperExecutor, ts: int, bid: float, ask: float, symbol: str = "EURUSD"):
    return ex.on_quote(symbol, ts, bid, ask, (bid + ask) / 2)


def kinds(out):
    return [kind for kind, _ in out]


def test_fill_is_the_opposite_side_of_the_first_quote_after_the_latency():
    ex = make()
    quote(ex, T0, 0.99, 1.01)
    assert ex.on_signal(signal("BUY", T0)) == []
    assert quote(ex, T0 + 10 * MS, 1.00, 1.02) == []  # inside the 20 ms latency
    out = quote(ex, T0 + 30 * MS, 1.01, 1.03)
    assert kinds(out) == ["order", "fill", "position"]
    order, fill, position = (record for _, record in out)
    assert order["side"] == "BUY" and order["quantity"] == 1000.0  # 1,000 / mid 1.00
    assert order["signal_ts"] == T0 and order["model_version"] == 3
    assert fill["price"] == 1.03 and fill["latency_ms"] == 30.0 and fill["ts"] == T0 + 30 * MS
    assert fill["fee"] == pytest.approx(1e-4 * 1000 * 1.03)
    assert position["quantity"] == 1000.0 and position["avg_price"] == 1.03
    assert position["realized_pnl"] == pytest.approx(-fill["fee"])
    assert position["unrealized_pnl"] == pytest.approx(1000 * (1.02 - 1.03))


def test_the_result_does_not_depend_on_whether_signal_or_quotes_arrive_first():
    quotes = [(T0 + i * 7 * MS, 1.0 + i * 1e-4, 1.0002 + i * 1e-4) for i in range(40)]
    signals = [
        signal("BUY", T0 + 50 * MS),
        signal("SELL", T0 + 120 * MS),
        signal("FLAT", T0 + 200 * MS),
    ]

    early = make()  # signals first, then all quotes
    out_early = [r for s in signals for r in early.on_signal(s)]
    for ts, bid, ask in quotes:
        out_early += quote(early, ts, bid, ask)

    late = make()  # all quotes first, then the signals
    out_late = []
    for ts, bid, ask in quotes:
        out_late += quote(late, ts, bid, ask)
    for s in signals:
        out_late += late.on_signal(s)

    fills = [r for k, r in out_early if k == "fill"]
    assert len(fills) == 3
    assert fills == [r for k, r in out_late if k == "fill"]
    assert [f["side"] for f in fills] == ["BUY", "SELL", "BUY"]
    assert early.positions["EURUSD"].quantity == late.positions["EURUSD"].quantity == 0.0


def test_position_math_realizes_on_close_and_flip():
    p = Position()
    p.apply(100, 10.0, 0.0)
    p.apply(100, 12.0, 0.0)
    assert (p.quantity, p.avg_price) == (200, 11.0)
    p.apply(-300, 13.0, 1.0)  # close 200 at +2 each, open 100 short at 13
    assert p.quantity == -100 and p.avg_price == 13.0
    assert p.realized == pytest.approx(400 - 1.0)
    p.mark = 12.5
    assert p.unrealized == pytest.approx(50.0)
    p.apply(100, 12.0, 0.0)
    assert p.quantity == 0 and p.avg_price == 0.0 and p.realized == pytest.approx(499.0)


def test_no_order_when_the_target_is_already_held():
    ex = make(latency_ms=0)
    quote(ex, T0, 0.99, 1.01)
    ex.on_signal(signal("FLAT", T0))
    assert kinds(quote(ex, T0 + MS, 0.99, 1.01)) == ["no_change"]  # flat already
    assert ex.orders == 0 and ex.unchanged == 1


def run_signals(ex: PaperExecutor, sides, start=T0, step_us=1_000_000, symbol="EURUSD"):
    out = []
    for i, side in enumerate(sides):
        ts = start + i * step_us
        out += quote(ex, ts, 0.99, 1.01, symbol)
        out += ex.on_signal(signal(side, ts, symbol))
        out += quote(ex, ts + 500_000, 0.99, 1.01, symbol)
    return out


def rejections(out):
    return [r for k, r in out if k == "rejection"]


def test_max_position_notional_rejects_with_the_values_compared():
    ex = make(Limits(max_position_notional=800.0))
    out = run_signals(ex, ["BUY"])
    [rejected] = rejections(out)
    assert rejected["limit_name"] == "max_position_notional"
    assert "1,000.00 > limit 800.00" in rejected["reason"]
    assert rejected["order_id"] == f"EURUSD-{T0}-r1" and rejected["quantity"] == 1000.0
    assert "EURUSD" not in ex.positions or ex.positions["EURUSD"].quantity == 0


def test_max_gross_notional_counts_every_symbol():
    ex = make(Limits(max_gross_notional=1500.0))
    assert not rejections(run_signals(ex, ["BUY"], symbol="EURUSD"))
    out = run_signals(ex, ["BUY"], start=T0 + 5_000_000, symbol="GBPUSD")
    [rejected] = rejections(out)
    assert rejected["limit_name"] == "max_gross_notional" and rejected["symbol"] == "GBPUSD"


def test_max_orders_per_minute_in_event_time():
    ex = make(Limits(max_orders_per_minute=2))
    out = run_signals(ex, ["BUY", "SELL", "BUY"], step_us=10_000_000)
    assert [r["limit_name"] for r in rejections(out)] == ["max_orders_per_minute"]
    # a minute after the first order the window has room again
    later = run_signals(ex, ["BUY"], start=T0 + 61_000_000)
    assert kinds(later).count("fill") == 1


def test_daily_drawdown_blocks_new_risk_but_not_reducing_it():
    ex = make(Limits(max_daily_drawdown=50.0), order_notional=10_000.0, fee_bp=0.0, latency_ms=0)
    run_signals(ex, ["BUY"])  # long 10,000 at 1.01
    quote(ex, T0 + 2_000_000, 0.995, 0.997)  # mark 0.996: -140 from the peak
    assert ex.drawdown() >= 50.0
    out = quote(ex, T0 + 3_000_000, 0.995, 0.997)
    out += ex.on_signal(signal("SELL", T0 + 3_000_000))  # long -> short adds risk
    out += quote(ex, T0 + 3_500_000, 0.995, 0.997)
    assert [r["limit_name"] for r in rejections(out)] == ["max_daily_drawdown"]
    out = ex.on_signal(signal("FLAT", T0 + 4_000_000)) + quote(ex, T0 + 4_500_000, 0.995, 0.997)
    assert kinds(out) == ["order", "fill", "position"]  # closing is allowed
    # a new UTC day starts a new high-water mark
    next_day = T0 + 86_400_000_000
    out = run_signals(ex, ["BUY"], start=next_day)
    assert not rejections(out) and ex.positions["EURUSD"].quantity > 0


def test_kill_switch_stops_every_order_until_cleared():
    ex = make()
    run_signals(ex, ["BUY"])
    assert "engaged" in ex.command("kill", None, None, "desk halt", T0)
    out = run_signals(ex, ["FLAT"], start=T0 + 2_000_000)  # even a closing order
    assert [r["limit_name"] for r in rejections(out)] == ["kill_switch"]
    assert "desk halt" in rejections(out)[0]["reason"]
    assert ex.command("clear", None, None, "resume", T0) == "kill switch cleared"
    out = run_signals(ex, ["FLAT"], start=T0 + 4_000_000)
    assert kinds(out) == ["order", "fill", "position"]


def test_commands_are_checked():
    ex = make()
    with pytest.raises(ValueError, match="kill, clear or set_limit"):
        ex.command("pause", None, None, "", T0)
    with pytest.raises(ValueError, match="unknown limit"):
        ex.command("set_limit", "max_leverage", 2.0, "", T0)
    with pytest.raises(ValueError, match="needs limit_name and value"):
        ex.command("set_limit", "max_gross_notional", None, "", T0)
    with pytest.raises(ValueError, match=">= 0"):
        ex.command("set_limit", "max_gross_notional", -1.0, "", T0)


def test_invalid_signals_are_refused_with_a_reason():
    ex = make()
    with pytest.raises(InvalidSignal, match="side must be one of"):
        ex.on_signal(signal("HOLD", T0))
    with pytest.raises(InvalidSignal, match="symbol"):
        ex.on_signal({"symbol": "", "ts": T0, "side": "BUY"})


def test_state_survives_a_json_round_trip_and_continues_identically():
    first = make(Limits(max_orders_per_minute=5))
    run_signals(first, ["BUY", "SELL"])
    first.command("set_limit", "max_gross_notional", 5000.0, "", T0)
    first.command("kill", None, None, "halt", T0)
    first.on_signal(signal("FLAT", T0 + 9_000_000))  # waits for its quote
    assert first.fresh("signals", 0, 7) and not first.fresh("signals", 0, 7)

    restored = make(Limits(max_orders_per_minute=5))
    restored.load(json.loads(json.dumps(first.state())))
    assert restored.limits.max_gross_notional == 5000.0 and restored.kill["reason"] == "halt"
    assert not restored.fresh("signals", 0, 7) and restored.fresh("signals", 0, 8)
    for ex in (first, restored):
        ex.command("clear", None, None, "", T0)
    a = quote(first, T0 + 9_100_000, 0.99, 1.01)
    b = quote(restored, T0 + 9_100_000, 0.99, 1.01)
    assert a == b and kinds(a) == ["order", "fill", "position"]
    assert vars(first.positions["EURUSD"]) == vars(restored.positions["EURUSD"])


def test_limits_and_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("SPARK_MAX_GROSS_NOTIONAL", "2e6")
    monkeypatch.setenv("SPARK_FILL_LATENCY_MS", "5")
    assert limits_from_env().max_gross_notional == 2e6
    assert execution_from_env().latency_ms == 5.0
    monkeypatch.setenv("SPARK_MAX_ORDERS_PER_MINUTE", "lots")
    with pytest.raises(ValueError, match="SPARK_MAX_ORDERS_PER_MINUTE must be a number"):
        limits_from_env()


def test_a_signal_older_than_the_quotes_kept_is_refused_as_stale():
    ex = make(retain_quotes=3, latency_ms=0)
    for i in range(5):
        quote(ex, T0 + i * MS, 0.99, 1.01)
    [(kind, rejected)] = ex.on_signal(signal("BUY", T0))  # its fill quote was pushed out
    assert kind == "rejection" and rejected["limit_name"] == "stale_signal"
    assert rejected["side"] == "BUY" and rejected["quantity"] == 1000.0
    assert "retain_quotes" in rejected["reason"]
    # one still inside the buffer fills at the quote right after it
    out = ex.on_signal(signal("BUY", T0 + 3 * MS))
    assert kinds(out) == ["order", "fill", "position"] and out[1][1]["ts"] == T0 + 4 * MS


def test_no_tiny_order_to_resize_a_position_after_the_mid_moved():
    ex = make(Limits(max_orders_per_minute=1), latency_ms=0)
    run_signals(ex, ["SELL"])  # short 1,000 at mid 1.00
    out = run_signals(ex, ["FLAT"], start=T0 + 10_000_000)  # refused: one order a minute
    assert [r["limit_name"] for r in rejections(out)] == ["max_orders_per_minute"]
    # a minute later, SELL again at mid 1.01: target -990, held -1,000: no 10-unit order
    out = []
    ts = T0 + 70_000_000
    out += quote(ex, ts, 1.00, 1.02)
    out += ex.on_signal(signal("SELL", ts))
    out += quote(ex, ts + 500_000, 1.00, 1.02)
    assert kinds(out) == ["no_change"] and ex.positions["EURUSD"].quantity == -1000.0


def test_risk_decisions_do_not_depend_on_how_far_ahead_the_quotes_were_read():
    """The drawdown limit, decided with quotes read just in time or all read first."""
    quotes = [(T0 + i * 100 * MS, 1.0 - i * 1e-4, 1.0002 - i * 1e-4) for i in range(300)]
    sides = ["BUY", "SELL", "BUY", "FLAT", "BUY", "SELL"] * 5
    signals = [signal(side, T0 + (5 + 9 * k) * 100 * MS) for k, side in enumerate(sides)]
    limits = Limits(max_daily_drawdown=120.0)

    def run(quotes_first: bool) -> list:
        ex = make(limits, order_notional=100_000.0, latency_ms=0)
        out = []
        if quotes_first:
            for ts, bid, ask in quotes:
                out += quote(ex, ts, bid, ask)
            for s in signals:
                out += ex.on_signal(s)
        else:
            pending = list(signals)
            for ts, bid, ask in quotes:
                while pending and pending[0]["ts"] <= ts:
                    out += ex.on_signal(pending.pop(0))
                out += quote(ex, ts, bid, ask)
        return [(k, r.get("order_id"), r.get("limit_name")) for k, r in out if k != "position"]

    just_in_time, all_first = run(False), run(True)
    assert "rejection" in {k for k, _, _ in just_in_time}  # the limit is reached on the way
    assert sorted(just_in_time) == sorted(all_first)


def test_order_ids_are_unique_even_for_signals_at_the_same_time():
    """Ticks share timestamps, so two signals of one symbol can too: their orders still get
    different ids, and the same ids again when the same events are processed again."""

    def run():
        ex = make()
        out = quote(ex, T0, 0.99, 1.01)
        out += ex.on_signal(signal("BUY", T0 + 10 * MS))
        out += quote(ex, T0 + 40 * MS, 0.99, 1.01)
        out += ex.on_signal(signal("SELL", T0 + 10 * MS))  # the same signal time
        out += quote(ex, T0 + 80 * MS, 0.99, 1.01)
        return [r["order_id"] for kind, r in out if kind == "order"]

    ids = run()
    assert len(ids) == 2 and len(set(ids)) == 2, ids
    assert run() == ids


def _queued_run(ttl_ms: float, signals_first: bool, quotes_first: bool = False):
    """A passive order resting 5 s at a time (quotes never reach its price), and a signal
    every second flipping the side: signals queue behind the working orders. Signals first
    then the quotes, the quotes first then the signals, or both in event order (as
    ``on_ticks`` gives them). Returns the executor and its outputs."""
    ex = make(fill_model="passive", passive_timeout_ms=5_000, signal_ttl_ms=ttl_ms)
    quotes = [(T0 + i * 100 * MS, 1.0000, 1.0002) for i in range(600)]  # 60 s, a still market
    sides = ["BUY", "SELL"]
    signals = [signal(sides[k % 2], T0 + k * 1_000 * MS + 50 * MS) for k in range(50)]
    out = []
    if signals_first:
        out += [r for s in signals for r in ex.on_signal(s)]
        for ts, bid, ask in quotes:
            out += quote(ex, ts, bid, ask)
        return ex, out
    if quotes_first:
        for ts, bid, ask in quotes:
            out += quote(ex, ts, bid, ask)
        out += [r for s in signals for r in ex.on_signal(s)]
        return ex, out
    events = sorted([(ts, 0, (ts, bid, ask)) for ts, bid, ask in quotes]
                    + [(s["ts"], 1, s) for s in signals], key=lambda e: e[:2])  # fmt: skip
    for _, kind, event in events:
        out += quote(ex, *event) if kind == 0 else ex.on_signal(event)
    return ex, out


def test_a_signal_that_waited_past_its_time_to_live_is_refused_not_filled_late():
    """Without a bound the queue behind 5 s passive orders grows and orders go out ever
    later (here over 30 s after their signal); with SPARK_SIGNAL_TTL_MS no order is sent
    later than the bound, the others end as signal_expired rejections saying how late they
    were, every signal is accounted for, and the outcome is the same whether the signals
    come first or in event order with the quotes."""
    unbounded, out = _queued_run(0, signals_first=False)
    lags = [(r["ts"] - r["signal_ts"]) / 1e6 for k, r in out if k == "order"]
    assert max(lags) > 30 and "signal_expired" not in unbounded.rejections
    runs = []
    for first in (False, True):
        ex, out = _queued_run(10_000, signals_first=first)
        orders = [r for k, r in out if k == "order"]
        expired = [r for k, r in out if k == "rejection" and r["limit_name"] == "signal_expired"]
        assert orders and expired
        assert max(r["ts"] - r["signal_ts"] for r in orders) <= 10_000 * MS
        assert "held back by earlier orders of EURUSD: over SPARK_SIGNAL_TTL_MS = 10,000 ms" in (
            expired[0]["reason"])  # fmt: skip
        waiting = sum(len(q) for q in ex.pending.values())
        done = len(orders) + len(expired) + ex.unchanged
        assert done + waiting == 50  # each signal: an outcome (a resting order is one), or waiting
        runs.append(out)
    assert runs[0] == runs[1]


def test_signals_read_after_quotes_far_ahead_wait_for_the_order_before_them():
    """The executor fed from two topics may read a symbol's quotes well past its next
    signals. An earlier passive order then ends at a quote already read, and a signal made
    while that order rested still waits for it, as in event order: the same orders,
    fills, cancels and refusals, each at the same quote (only the order in which they are
    returned differs)."""
    _, in_order = _queued_run(10_000, signals_first=False)
    ex, ahead = _queued_run(10_000, signals_first=False, quotes_first=True)
    assert ex.rejections.get("signal_expired")
    assert sorted(map(repr, ahead)) == sorted(map(repr, in_order))


def test_a_quiet_market_alone_does_not_expire_a_signal():
    """The bound is on a wait caused by earlier orders, not on the wait for the next
    quote: in a market quiet for 30 s, taker signals 1 s apart all become orders at the
    first quote after it. With passive fills the first order only rests from that quote
    on, and the signals behind it reach their quote 34 s late: refused (a venue would have
    had the first order rest from 0.07 s; the quotes-only simulation cannot)."""
    for fill in ("taker", "passive"):
        ex = make(fill_model=fill, signal_ttl_ms=10_000, passive_timeout_ms=5_000)
        quote(ex, T0, 1.0000, 1.0002)
        out = []
        for k, side in enumerate(["BUY", "SELL", "BUY", "SELL"]):
            out += ex.on_signal(signal(side, T0 + k * 1_000 * MS + 50 * MS))
        for i in range(300):  # then 30 s of quotes; passive orders time out and cross
            out += quote(ex, T0 + (30_000 + i * 100) * MS, 1.0000, 1.0002)
        sides = [r["side"] for k, r in out if k == "order"]
        if fill == "taker":
            assert sides == ["BUY", "SELL", "BUY", "SELL"] and not ex.rejections
        else:
            # the two SELLs refused; the second BUY needs no order (its target is held)
            assert sides == ["BUY"] and ex.rejections == {"signal_expired": 2}, sides
            assert ex.unchanged == 1
            expired = [r for k, r in out if k == "rejection"]
            assert "reached its fill quote 34.0 s after it was made" in expired[0]["reason"]
