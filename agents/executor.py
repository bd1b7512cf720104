"""The executor agent: gated signals and quotes in; paper orders, fills, rejections and
positions out, under pre-trade risk limits (``spark.execution``, docs/executor.md).

The agent reads the signals topic. Quotes (each feature vector's bid and ask,
FeatureVector v3) come from the predictor agent of the same worker, which
decodes every feature vector anyway and hands it to ``on_feature_vector``
below: a second Faust agent on the features topic left one message unacked
after a restart in 3 of 3 tries (the worker then hung 30 s on shutdown and its
committed offset stalled), and decoding every vector twice cost throughput.
So the executor runs in the worker that runs the predictor (the default).
Both handlers run on the worker's event loop without awaiting in between, one
message at a time; the executor works in event time, so whether a signal or
the quote after it is seen first does not change a fill. Signals that do not
decode or cannot be acted on go to the signals DLQ.

State (positions, pending signals, kill switch, limit overrides, the last
offset applied per partition) is saved once per batch to a compacted
changelog and loaded when the worker starts, so a restarted worker keeps
positions, kill switch and limits, and never applies a redelivered message
twice. Risk commands (kill, clear, set_limit) arrive on their own topic.

Known limit: the executor's limits are portfolio-wide, but with several
workers sharing the partitions each worker runs an executor over its own
symbols, with its own limits and state key (last writer wins). One worker
(the default, ``spark up``/``spark demo``) is correct; scaled-out execution
needs a single executor process, not built yet (docs/executor.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time

import faust
from faust.web import Request, Response, View

from spark.agents.dead_letters import dead_letter
from spark.execution.paper import OUTCOMES, REJECTION_REASONS, PaperExecutor
from spark.execution.risk import LIMIT_NAMES, execution_from_env, limits_from_env
from spark.kafka.state import latest_json
from spark.metrics import (
    BATCH_SECONDS,
    EVENTS_IN,
    EVENTS_OUT,
    EXECUTOR_SIGNALS,
    KILL_SWITCH,
    LAST_BATCH,
    ORDER_REJECTIONS,
    PAPER_DRAWDOWN,
    PAPER_FILLS,
    PAPER_GROSS_NOTIONAL,
    PAPER_OPEN_POSITIONS,
    PAPER_ORDERS,
    PAPER_PNL,
    RISK_LIMIT,
)
from spark.ticks.producer import default_serde
from spark.topics import catalog

log = logging.getLogger("spark.agents.executor")
BATCH = 1000
WITHIN_S = 0.2
STATE_KEY = b"executor"
MARK_INTERVAL_S = 5.0  # open positions are re-published marked to mid this often


def summary(executor: PaperExecutor) -> dict:
    """What GET /executor and `spark risk status` show."""
    return {
        "kill_switch": executor.kill,
        "limits": executor.limits.as_dict(),
        "limit_overrides": dict(executor.overrides),
        "orders": executor.orders,
        "signals_without_order": executor.unchanged,
        "rejections": dict(executor.rejections),
        "equity": executor.equity(),
        "daily_drawdown": executor.drawdown(),
        "gross_notional": executor.gross_notional(),
        "positions": {
            s: {
                "quantity": p.quantity,
                "avg_price": p.avg_price,
                "realized_pnl": p.realized,
                "unrealized_pnl": p.unrealized,
                "fees": p.fees,
                "mark": p.mark,
            }
            for s, p in sorted(executor.positions.items())
        },
        "pending_signals": sum(len(q) for q in executor.pending.values()),
        "quotes_read": executor.quotes_read,
        "signals_read": executor.signals_read,
    }


def register(app: faust.App) -> None:
    topics = catalog()
    signals = topics["signals"]
    orders, fills = topics["orders"], topics["fills"]
    rejections, positions = topics["order_rejections"], topics["positions"]
    commands, state_spec = topics["risk_commands"], topics["executor_state"]
    raw = {"key_serializer": "raw", "value_serializer": "raw"}
    source = app.topic(signals.name, **raw)
    signals_dlq = app.topic(topics[signals.dlq].name, **raw)
    commands_in = app.topic(commands.name, **raw)
    commands_dlq = app.topic(topics[commands.dlq].name, **raw)
    out = {
        "order": (app.topic(orders.name, **raw), orders),
        "fill": (app.topic(fills.name, **raw), fills),
        "rejection": (app.topic(rejections.name, **raw), rejections),
        "position": (app.topic(positions.name, **raw), positions),
    }
    state_out = app.topic(state_spec.name, **raw)
    serde = default_serde()
    executor = PaperExecutor(execution_from_env(), limits_from_env())
    app.spark_executor = executor
    # every label value known up front, so dashboards show 0 rather than no data
    for reason in REJECTION_REASONS:
        ORDER_REJECTIONS.labels(reason)
    for outcome in OUTCOMES:
        EXECUTOR_SIGNALS.labels(outcome)
    for outcome in ("accepted", "rejected"):
        PAPER_ORDERS.labels(outcome)
    restored = asyncio.Event()
    clock = {"last_mark": time.monotonic()}
    signals_in = EVENTS_IN.labels(signals.id)
    batch_timer = BATCH_SECONDS.labels("executor")
    last_batch = LAST_BATCH.labels("executor")

    def update_gauges() -> None:
        PAPER_PNL.labels("realized").set(sum(p.realized for p in executor.positions.values()))
        PAPER_PNL.labels("unrealized").set(sum(p.unrealized for p in executor.positions.values()))
        PAPER_DRAWDOWN.set(executor.drawdown())
        PAPER_GROSS_NOTIONAL.set(executor.gross_notional())
        PAPER_OPEN_POSITIONS.set(sum(p.quantity != 0 for p in executor.positions.values()))
        KILL_SWITCH.set(1 if executor.kill else 0)
        for name in LIMIT_NAMES:
            RISK_LIMIT.labels(name).set(getattr(executor.limits, name))

    def save_state() -> None:
        state_out.send_soon(key=STATE_KEY, value=json.dumps(executor.state()).encode())

    def emit(outputs: list[tuple[str, dict]]) -> None:
        for kind, record in outputs:
            if kind == "no_change":
                EXECUTOR_SIGNALS.labels("no_change").inc()
                continue
            channel, spec = out[kind]
            channel.send_soon(
                key=record["symbol"].encode(), value=serde.encode(spec.name, spec.value, record)
            )
            EVENTS_OUT.labels(spec.id).inc()
            if kind == "order":
                PAPER_ORDERS.labels("accepted").inc()
                EXECUTOR_SIGNALS.labels("order").inc()
            elif kind == "fill":
                PAPER_FILLS.inc()
            elif kind == "rejection":
                PAPER_ORDERS.labels("rejected").inc()
                EXECUTOR_SIGNALS.labels("rejected").inc()
                ORDER_REJECTIONS.labels(record["limit_name"]).inc()
                log.info("order %s refused: %s", record["order_id"], record["reason"])

    def publish_marks() -> None:
        for symbol, position in executor.positions.items():
            if position.quantity:
                ts = executor.quotes[symbol][-1][0] if executor.quotes.get(symbol) else 0
                emit([("position", position.record(symbol, ts))])
        clock["last_mark"] = time.monotonic()

    @app.on_partitions_assigned.connect
    async def restore_state(app, assigned, **_kwargs) -> None:  # noqa: ARG001 - signal
        if restored.is_set():
            return  # the executor's state lives on across rebalances in this process
        loop = asyncio.get_running_loop()
        saved = await loop.run_in_executor(None, latest_json, state_spec.name, [0])
        # no await from here on: nothing sees a half-loaded executor
        if STATE_KEY.decode() in saved:
            executor.load(saved[STATE_KEY.decode()])
            log.info(
                "executor state loaded: %d positions, kill switch %s",
                len(executor.positions),
                "engaged" if executor.kill else "off",
            )
        update_gauges()
        restored.set()

    def on_feature_vector(message, vector: dict) -> None:
        """A decoded feature vector from the predictor agent: the quote it carries."""
        if not executor.fresh(message.topic, message.partition, message.offset):
            return  # applied before a restart
        emit(
            executor.on_quote(
                vector["symbol"], vector["ts"], vector.get("bid"), vector.get("ask"), vector["mid"]
            )
        )
        dirty["quotes"] = True

    def after_predictor_batch() -> None:
        if dirty.pop("quotes", False):
            if time.monotonic() - clock["last_mark"] >= MARK_INTERVAL_S:
                publish_marks()
            save_state()
            update_gauges()

    # the predictor waits for ``restored`` before its batches, so no quote is missed
    app.spark_quote_hooks = (on_feature_vector, after_predictor_batch, restored)
    dirty: dict[str, bool] = {}

    @app.agent(source, name="executor")
    async def execute(stream):
        async for events in stream.take_events(BATCH, within=WITHIN_S):
            await restored.wait()
            started = time.perf_counter()
            for event in events:
                message = event.message
                if not executor.fresh(message.topic, message.partition, message.offset):
                    continue  # applied before a restart; its outputs were sent then
                signals_in.inc()
                try:
                    outputs = executor.on_signal(serde.decode(message.value, signals.value))
                except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                    reason = getattr(exc, "reason", "unexpected_error")
                    dead_letter(signals_dlq, message, signals, "executor", reason, str(exc))
                    continue
                emit(outputs)
            if time.monotonic() - clock["last_mark"] >= MARK_INTERVAL_S:
                publish_marks()
            save_state()
            update_gauges()
            batch_timer.observe(time.perf_counter() - started)
            last_batch.set_to_current_time()

    @app.agent(commands_in, name="risk-commands")
    async def risk_commands(stream):
        async for events in stream.take_events(100, within=WITHIN_S):
            await restored.wait()
            for event in events:
                message = event.message
                if not executor.fresh(message.topic, message.partition, message.offset):
                    continue
                try:
                    command = serde.decode(message.value, commands.value)
                    done = executor.command(
                        command["action"],
                        command.get("limit_name"),
                        command.get("value"),
                        command["reason"],
                        command["ts"],
                    )
                except Exception as exc:  # noqa: BLE001 - every failure is dead-lettered
                    reason = getattr(exc, "reason", "invalid_command")
                    dead_letter(commands_dlq, message, commands, "executor", reason, str(exc))
                    continue
                log.warning(
                    "risk command by %s: %s (%s)",
                    command.get("operator") or "unknown",
                    done,
                    command["reason"],
                )
            save_state()
            update_gauges()

    @app.page("/executor")
    class ExecutorView(View):
        async def get(self, request: Request) -> Response:  # noqa: ARG002 - Faust signature
            return self.json(summary(executor))
