"""The paper executor in a real worker on the real broker: the pipeline's gated signals
become orders filled at the next quote, a limit breach and the kill switch stop orders, a
restart keeps positions, kill switch and limits, and bad commands are dead-lettered."""

from __future__ import annotations

import bisect
import json

import pytest
from click.testing import CliRunner

from spark.broker.embedded import free_port
from spark.cli import cli
from spark.consume import messages
from spark.kafka import clients
from spark.kafka.dlq import decode_headers
from spark.ticks.producer import default_serde
from spark.topics import catalog
from tests.conftest import WorkerProcess, wait_for
from tests.test_gate_worker import records
from tests.test_model_registry import http
from tests.test_streams import BUNDLED, produce, ticks_of

pytestmark = pytest.mark.broker
LATENCY_MS = 20


def executor_view(worker: WorkerProcess) -> dict:
    """The executor of the partition that holds EURUSD (/executor shows one per partition)."""
    from spark.kafka.partitioner import partition_of

    p = partition_of(b"EURUSD", catalog()["ticks"].partitions)
    return http(worker.web_port, "/executor")[1]["partitions"].get(str(p), {})


def caught_up(worker: WorkerProcess, n_ticks: int) -> bool:
    """The executor has seen every quote of ``n_ticks`` ticks and every signal sent."""
    signals_sent = worker.metric("spark_events_out_total", topic="signals")
    view = executor_view(worker)
    return view.get("quotes_read", 0) >= n_ticks and view["signals_read"] >= signals_sent


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def settle(worker: WorkerProcess, n_ticks: int) -> dict:
    """Wait until the executor caught up and its state stopped changing; return its view."""
    wait_for(lambda: caught_up(worker, n_ticks), what="executor caught up")
    last = {}

    def stable():
        nonlocal last
        view = executor_view(worker)
        same = view == last
        last = view
        return view if same else None

    return wait_for(stable, what="executor state to settle", interval=1.0)


def test_executor_fills_limits_kill_switch_and_restart(broker, tmp_path, monkeypatch):
    monkeypatch.setenv("SPARK_SIGNAL_BAND", "0.02")  # plenty of signals from few ticks
    monkeypatch.setenv("SPARK_MIN_EDGE", "0")  # the band policy: signals from few ticks
    monkeypatch.setenv("SPARK_GATE_RULE", "spread_bp")
    monkeypatch.setenv("SPARK_DRIFT_THRESHOLD", "1000")  # no gate in the way here
    monkeypatch.setenv("SPARK_FILL_LATENCY_MS", str(LATENCY_MS))
    monkeypatch.setenv("SPARK_FILL_MODEL", "taker")  # fills checked against the latency rule
    monkeypatch.setenv("SPARK_MAX_ORDERS_PER_MINUTE", "4")
    fx = ticks_of(BUNDLED / "fxcm/eurusd/20140501_quote.zip", 4000)
    first, second, third = fx[:2000], fx[2000:3000], fx[3000:]
    worker = WorkerProcess(free_port(), tmp_path / "w1.log")
    worker.wait_ready()
    try:
        produce(first)
        view = settle(worker, len(first))
        orders = records("orders", "PaperOrder")
        fills = records("fills", "PaperFill")
        rejections = records("order_rejections", "OrderRejection")
        assert orders and len(fills) == len(orders)
        assert [f["order_id"] for f in fills] == [o["order_id"] for o in orders]
        # every fill is at the opposite side of the first quote after signal + latency
        times = [t.ts for t in first]
        for order, fill in zip(orders, fills, strict=True):
            due = order["signal_ts"] + LATENCY_MS * 1000
            i = bisect.bisect_left(times, due)
            while times[i] <= order["signal_ts"]:
                i += 1
            quote = first[i]
            assert fill["ts"] == quote.ts
            assert fill["price"] == (quote.ask if order["side"] == "BUY" else quote.bid)
            assert fill["fee"] == pytest.approx(0.5e-4 * fill["quantity"] * fill["price"])
        # the orders-per-minute limit (4) refused some, saying so
        assert rejections and {r["limit_name"] for r in rejections} == {"max_orders_per_minute"}
        assert "limit 4" in rejections[0]["reason"]
        # the position is the sum of the signed fills; the positions topic agrees
        signed = sum(f["quantity"] * (1 if f["side"] == "BUY" else -1) for f in fills)
        assert view["positions"]["EURUSD"]["quantity"] == pytest.approx(signed)
        published = [p for p in records("positions", "Position") if p["symbol"] == "EURUSD"]
        assert published[-1]["quantity"] == pytest.approx(signed)
        assert worker.metric("spark_order_rejections_total", limit="max_orders_per_minute") == len(
            rejections
        )

        # the kill switch, and a limit set by command
        invoke("risk", "kill", "--reason", "test halt")
        invoke("risk", "set-limit", "max_gross_notional", "400000", "--reason", "test")
        wait_for(lambda: executor_view(worker)["kill_switch"], what="kill switch engaged")
        wait_for(
            lambda: executor_view(worker)["limits"]["max_gross_notional"] == 400000,
            what="limit set",
        )
        assert worker.metric("spark_kill_switch_engaged") == 1
        produce(second)
        settle(worker, len(first) + len(second))
        after_kill = records("order_rejections", "OrderRejection")[len(rejections) :]
        assert after_kill and {r["limit_name"] for r in after_kill} == {"kill_switch"}
        assert "test halt" in after_kill[0]["reason"]
        assert len(records("orders", "PaperOrder")) == len(orders)  # not one more order
    finally:
        worker.stop()

    restarted = WorkerProcess(free_port(), tmp_path / "w2.log")
    try:
        restarted.wait_ready()
        view = wait_for(
            lambda: (lambda v: v if v.get("kill_switch") else None)(executor_view(restarted)),
            what="state restored",
        )
        assert view["kill_switch"]["reason"] == "test halt"
        assert view["limit_overrides"] == {"max_gross_notional": 400000.0}
        assert view["positions"]["EURUSD"]["quantity"] == pytest.approx(signed)
        status = json.loads(invoke("risk", "status", "--json"))
        assert status["positions"]["EURUSD"]["quantity"] == pytest.approx(signed)
        before_restart = len(records("orders", "PaperOrder"))

        invoke("risk", "clear", "--reason", "resume")
        wait_for(lambda: executor_view(restarted)["kill_switch"] is None, what="cleared")
        assert restarted.metric("spark_kill_switch_engaged") == 0
        produce(third)
        wait_for(
            lambda: len(records("orders", "PaperOrder")) > before_restart, what="orders resume"
        )
    finally:
        restarted.stop()
    # nothing was executed twice across the restart
    order_ids = [o["order_id"] for o in records("orders", "PaperOrder")]
    assert len(order_ids) == len(set(order_ids))


def test_risk_commands_reach_every_worker_and_bad_ones_are_dead_lettered(worker, tmp_path):
    """Two workers share the tick partitions; `spark risk kill` reaches every partition of
    both (a broadcast read, not a shared group), each acknowledges it in the state topic,
    and commands that are malformed, unsigned, wrongly signed, stale or replayed are each
    dead-lettered once with their reason."""
    import time

    from spark.commands import sign
    from spark.ml.snapshots import registry_key

    second = WorkerProcess(free_port(), tmp_path / "w2.log")
    try:
        second.wait_ready()
        both = (worker, second)

        def split():
            held = [set(http(w.web_port, "/ml/health")[1]["partitions"]) for w in both]
            return held if all(held) and sum(len(h) for h in held) == 6 else None

        wait_for(split, what="the two workers to share the six tick partitions")
        invoke("risk", "kill", "--reason", "broadcast test")

        def all_killed():
            views = [http(w.web_port, "/executor")[1]["partitions"] for w in both]
            engaged = [v["kill_switch"] for view in views for v in view.values()]
            return len(engaged) == 6 and all(engaged)

        wait_for(all_killed, what="every partition of both workers to take the kill")
        acks = wait_for(
            lambda: (lambda c: c if len(c) == 6 else None)(
                json.loads(invoke("risk", "status", "--json"))["commands"]
            ),
            what="an acknowledgement from every partition",
        )
        assert all(a["kill_switch"] and a["commands_applied"] for a in acks.values())
        assert len({a["worker"] for a in acks.values()}) == 2

        serde, key = default_serde(), registry_key()
        commands = catalog()["risk_commands"]
        now = int(time.time() * 1e6)
        base = dict.fromkeys(["limit_name", "value", "nonce", "key_id", "signature"])
        base |= {"action": "kill", "reason": "?", "operator": "t", "ts": now}
        signed = sign({k: v for k, v in base.items() if k != "signature"}, key)
        first_kill = next(
            m.value() for m in messages(commands, from_beginning=True)
        )  # the CLI's signed kill, produced again as it was: a replay
        bad = [
            b"garbage",
            serde.encode(commands.name, commands.value,
                         dict(base, action="set_limit", limit_name="max_leverage", value=2.0)),
            serde.encode(commands.name, commands.value, base),  # unsigned
            serde.encode(commands.name, commands.value, sign(
                {k: v for k, v in base.items() if k != "signature"}, bytes(32))),  # other key
            serde.encode(commands.name, commands.value, dict(signed, action="clear")),
            serde.encode(commands.name, commands.value, sign(
                {k: v for k, v in dict(base, ts=now - 3_600_000_000).items()
                 if k != "signature"}, key)),  # issued an hour before the broker took it
            first_kill,
        ]  # fmt: skip
        producer = clients.producer()
        for value in bad:
            producer.produce(commands.name, value)
        producer.flush(10)

        def dead():
            got = list(messages(catalog()[commands.dlq], from_beginning=True))
            return got if len(got) >= len(bad) else None

        got = wait_for(dead, what="every bad risk command dead-lettered")
        time.sleep(1.0)  # and no second copy from the other worker
        got = list(messages(catalog()[commands.dlq], from_beginning=True))
        reasons = sorted(decode_headers(m.headers())["spark.dlq.reason"] for m in got)
        assert reasons == sorted(
            ["bad_magic_byte", "invalid_command", "unsigned_command", "unknown_key",
             "bad_signature", "stale_command", "replayed_command"]
        )  # fmt: skip
        details = {decode_headers(m.headers())["spark.dlq.detail"] for m in got}
        assert any("unknown limit 'max_leverage'" in d for d in details)
        # the refused ones changed nothing: the kill still holds everywhere
        assert all_killed()
    finally:
        second.stop()


def test_risk_cli_rejects_bad_arguments_in_one_line():
    result = CliRunner().invoke(cli, ["risk", "set-limit", "max_leverage", "2", "--reason", "x"])
    assert result.exit_code == 2 and "max_leverage" in result.output
    result = CliRunner().invoke(
        cli, ["risk", "set-limit", "max_gross_notional", "-5", "--reason", "x"]
    )
    assert result.exit_code == 2 and "-5" in result.output
