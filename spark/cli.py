"""``spark``: run the platform, move ticks, look inside topics.

Every failure a user can act on is one line on stderr and a non-zero exit;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from spark.errors import SparkError
from spark.settings import DEFAULT_MODEL, MODEL_NAMES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class SparkGroup(click.Group):
    """Turns known failures into one clear line instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:  # `spark consume ... | head`: the reader left, not an error
            import os

            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            ctx.exit(0)
        except Exception as exc:  # noqa: BLE001 - the one place errors become lines
            if (ctx.obj or {}).get("debug"):
                raise
            if isinstance(exc, SparkError):
                click.echo(f"error: {exc}", err=True)
            else:
                from confluent_kafka import KafkaException

                if isinstance(exc, KafkaException):
                    click.echo(f"error: Kafka said: {exc.args[0].str()}", err=True)
                else:
                    click.echo(
                        f"error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
                        err=True,
                    )
            ctx.exit(1)


@click.group(cls=SparkGroup, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show tracebacks and client logs on errors.")
@click.version_option(package_name="spark-signals", prog_name="spark")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Spark: a streaming trading-signal platform on Kafka.

    \b
    Quick start:   spark demo
    Run it:        spark up            (broker + topics + worker; Ctrl-C stops)
    Feed it:       spark ticks replay FILE... --format lean-quote
    Look inside:   spark status | spark consume market.ticks --from-beginning
    Trade (paper): spark risk status | spark risk kill --reason ...
    Research:      spark backtest run --data FILE --report out.xlsx

    Kafka is the embedded broker unless KAFKA_BOOTSTRAP_SERVERS is set
    (see `spark broker --help` and docs/).
    """
    ctx.obj = {"debug": debug}
    if debug:
        import logging

        logging.basicConfig(level=logging.DEBUG, format="%(name)s %(levelname)s %(message)s")
        logging.getLogger("spark.kafka").propagate = True


def _print_json(obj) -> None:
    click.echo(json.dumps(obj, default=str))


# ----------------------------------------------------------------------------- broker
@cli.group(context_settings=CONTEXT)
def broker() -> None:
    """The embedded Kafka-compatible broker (Tansu), for machines without a cluster.

    When KAFKA_BOOTSTRAP_SERVERS is set, Spark uses that cluster and these
    commands start nothing.
    """


@broker.command("start")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9092,
    show_default=True,
    help="Port on 127.0.0.1; a free one is taken if it is busy.",
)
@click.option(
    "--storage",
    default="memory://tansu/",
    show_default=True,
    help="Storage engine: memory:// (lost on stop) or s3://BUCKET/ (durable; "
    "needs AWS_ENDPOINT and keys in the environment).",
)
def broker_start(port: int, storage: str) -> None:
    """Start the embedded broker in the background and record where it runs."""
    from spark.broker import embedded
    from spark.config import external_bootstrap

    if external_bootstrap():
        click.echo(
            f"KAFKA_BOOTSTRAP_SERVERS={external_bootstrap()} is set: Spark uses that "
            "cluster and starts no broker"
        )
        return
    if not storage.startswith(("memory://", "s3://")):
        raise click.BadParameter(
            "this Tansu build stores in memory:// or s3:// only", param_hint="--storage"
        )
    st = embedded.start(port, storage)
    click.echo(
        f"embedded broker answering at {st.address} (pid {st.pid}, storage {st.storage}, "
        f"log {st.log})"
    )


@broker.command("stop")
def broker_stop() -> None:
    """Stop the embedded broker (its in-memory data is gone)."""
    from spark.broker import embedded

    click.echo("embedded broker stopped" if embedded.stop() else "no embedded broker was running")


@broker.command("status")
def broker_status() -> None:
    """Say whether the broker answers; exit 1 if it does not."""
    from spark.status import broker_info

    info = broker_info()
    if info["kind"] == "external":
        from spark.kafka import clients

        clients.ensure_reachable()
        click.echo(f"external cluster {info['address']}: answering")
        return
    if not info["running"]:
        click.echo(f"embedded broker: {info['detail']} (start it with `spark broker start`)")
        sys.exit(1)
    click.echo(
        f"embedded broker at {info['address']}: answering (pid {info['pid']}, "
        f"storage {info['storage']}, log {info['log']})"
    )


# ----------------------------------------------------------------------------- topics
@cli.group(context_settings=CONTEXT)
def topics() -> None:
    """The topic catalog (topics/catalog.toml) and the topics on the broker."""


@topics.command("create")
def topics_create() -> None:
    """Create every catalog topic that does not exist yet (idempotent)."""
    from spark.kafka.topics import create_topics

    outcome = create_topics()
    created = [n for n, s in outcome.items() if s == "created"]
    for name in sorted(outcome):
        click.echo(f"{outcome[name]:8} {name}")
    click.echo(f"{len(created)} created, {len(outcome) - len(created)} already there")


@topics.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
def topics_list(as_json: bool) -> None:
    """Every catalog topic, and whether it exists on the broker."""
    from spark.kafka import clients
    from spark.topics import catalog

    existing = clients.ensure_reachable().topics
    for spec in catalog().values():
        exists = spec.name in existing
        if as_json:
            _print_json(
                {
                    "id": spec.id,
                    "name": spec.name,
                    "exists": exists,
                    "partitions": spec.partitions,
                    "cleanup": spec.cleanup,
                    "value": spec.value,
                }
            )
        else:
            mark = "yes" if exists else "MISSING"
            click.echo(
                f"{spec.name:28} {spec.partitions:>2}p {spec.cleanup:8} {spec.value:16} {mark}"
            )


@topics.command("describe")
@click.argument("topic", required=False)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per topic.")
def topics_describe(topic: str | None, as_json: bool) -> None:
    """Catalog entry, partitions and end offsets of TOPIC (id or name), or of all."""
    from spark.kafka import clients
    from spark.kafka.topics import end_offsets
    from spark.topics import catalog

    cat = catalog()
    specs = [_resolve_topic(topic)] if topic else list(cat.values())
    existing = clients.ensure_reachable().topics
    for spec in specs:
        meta = existing.get(spec.name)
        ends = end_offsets(spec.name, len(meta.partitions)) if meta else {}
        record = {
            "id": spec.id,
            "name": spec.name,
            "exists": meta is not None,
            "partitions": len(meta.partitions) if meta else 0,
            "catalog_partitions": spec.partitions,
            "config": spec.kafka_config(),
            "key": spec.key,
            "value": spec.value,
            "dlq": cat[spec.dlq].name if spec.dlq else None,
            "doc": spec.doc,
            "end_offsets": ends,
            "messages": sum(ends.values()),
        }
        if as_json:
            _print_json(record)
            continue
        click.echo(f"{spec.name}  ({spec.id}) — {spec.doc}")
        click.echo(
            f"  key {spec.key}, value {spec.value}, {spec.cleanup}, "
            f"config {spec.kafka_config()}, dead letters -> {record['dlq'] or 'none'}"
        )
        if meta is None:
            click.echo("  not created on the broker (spark topics create)")
        else:
            offsets = " ".join(f"p{p}:{o}" for p, o in sorted(ends.items()))
            click.echo(
                f"  {len(meta.partitions)} partitions, {record['messages']} messages ({offsets})"
            )


def _resolve_topic(name: str):
    from spark.topics import catalog

    try:
        return catalog().resolve(name)
    except KeyError as exc:
        raise SparkError(exc.args[0]) from None


# ----------------------------------------------------------------------------- schemas
@cli.group(context_settings=CONTEXT)
def schemas() -> None:
    """The Avro contracts in schemas/ and their compatibility."""


@schemas.command("check")
def schemas_check() -> None:
    """Every schema parses, the catalog names only existing schemas, and every schema is
    BACKWARD compatible with each released version in schemas/history. Exit 1 if not."""
    from spark.serde.schema_check import check_all

    problems, summary = check_all()
    for line in summary:
        click.echo(line)
    if problems:
        for problem in problems:
            click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    click.echo("all schemas parse and are BACKWARD compatible with their released versions")


@schemas.command("release")
def schemas_release() -> None:
    """Record each schema that changed since its last released version as the next version
    (schemas/history/NAME/vN.avsc). Run it in a checkout, then commit the new files."""
    from spark.serde.schema_check import check_all, release

    problems, _ = check_all()
    if problems:
        raise SparkError(f"fix these first ({len(problems)}): {problems[0]}")
    written = release()
    for path in written:
        click.echo(f"released {path}")
    click.echo(
        f"{len(written)} schemas released" if written else "nothing changed since the last release"
    )


@schemas.command("ids")
def schemas_ids() -> None:
    """Schema ids of the embedded registry (for producers in other languages)."""
    from spark.serde.registry import EmbeddedRegistry

    for name, sid in sorted(EmbeddedRegistry().ids().items()):
        click.echo(f"{name:16} {sid}")


# ----------------------------------------------------------------------------- ticks
@cli.group(context_settings=CONTEXT)
def ticks() -> None:
    """Put ticks on the tick topic."""


@ticks.command("replay")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["csv", "lean-quote", "lean-trade"]),
    help="lean-quote/lean-trade: QuantConnect LEAN tick files (zip or plain); csv: "
    "ts,symbol,bid,ask[,bid_size,ask_size,last,last_size] with ts ISO-8601 or epoch ms.",
)
@click.option("--symbol", help="Symbol to use (LEAN files default to their folder's name).")
@click.option(
    "--tz", help="Time zone of LEAN times (default: UTC-05:00 for FX, New York for equities)."
)
@click.option(
    "--max-rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Ticks per second at most; 0 = as fast as possible.",
)
@click.option(
    "--speed",
    type=float,
    help="Pace by recorded event time: 1 = real time, 60 = a minute a second.",
)
@click.option("--limit", type=click.IntRange(min=0), help="Stop after N input rows.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as one JSON object.")
def ticks_replay(paths, fmt, symbol, tz, max_rate, speed, limit, progress, as_json) -> None:
    """Replay recorded tick files onto the tick topic in event-time order.

    Rows that cannot be valid ticks (unparsable, price <= 0, bid > ask, flagged
    suspicious, time going back) go to the dead-letter topic with the reason in
    headers. The summary accounts for every row: produced + dead-lettered = read.
    """
    from spark.progress import replay_with_progress

    if max_rate and speed:
        raise click.UsageError("use --max-rate or --speed, not both")
    if symbol:
        symbol = symbol.upper()
    show = sys.stderr.isatty() if progress is None else progress
    result = replay_with_progress(
        list(paths),
        fmt,
        symbol=symbol,
        tz=tz,
        max_rate=max_rate,
        speed=speed,
        limit=limit,
        show=show,
    )
    from spark.topics import catalog

    ticks_spec = catalog()["ticks"]
    if as_json:
        _print_json(
            {
                "rows": result.rows,
                "produced": result.produced,
                "dead_lettered": result.dead_lettered,
                "reasons": dict(result.reasons),
                "seconds": round(result.seconds, 3),
                "topic": ticks_spec.name,
                "dlq": catalog()[ticks_spec.dlq].name,
            }
        )
    else:
        rate = result.rows / result.seconds if result.seconds else 0
        reasons = ", ".join(f"{r} {n}" for r, n in result.reasons.most_common())
        click.echo(
            f"read {result.rows} rows in {result.seconds:.1f}s ({rate:,.0f}/s): "
            f"{result.produced} produced to {ticks_spec.name}, {result.dead_lettered} "
            f"dead-lettered to {catalog()[ticks_spec.dlq].name}"
            + (f" ({reasons})" if reasons else "")
        )
    if not result.accounted:
        raise SparkError("produced + dead-lettered does not equal rows read")


# ----------------------------------------------------------------------------- consume
@cli.command(context_settings=CONTEXT)
@click.argument("topic")
@click.option(
    "--from-beginning", is_flag=True, help="Start at the oldest message (default: the end)."
)
@click.option("--limit", type=click.IntRange(min=1), help="Stop after N messages.")
@click.option("--follow", "-f", is_flag=True, help="Keep waiting for new messages (Ctrl-C stops).")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Full JSON per line: topic, partition, offset, timestamp, key, value.",
)
def consume(
    topic: str, from_beginning: bool, limit: int | None, follow: bool, as_json: bool
) -> None:
    """Print messages of TOPIC (catalog id or name) decoded as JSON lines.

    For a dead-letter topic it prints the spark.dlq.* reason headers and the raw
    payload in base64. Without --follow it stops at the end of the topic.
    """
    from spark.consume import messages, render
    from spark.ticks.producer import default_serde

    spec = _resolve_topic(topic)
    serde = default_serde()
    count = 0
    for msg in messages(spec, from_beginning=from_beginning, follow=follow, limit=limit):
        record = render(spec, serde, msg)
        count += 1
        if as_json:
            _print_json(record)
        else:
            body = {
                k: record[k] for k in ("value", "headers", "raw_base64", "error") if k in record
            }
            click.echo(
                f"{record['partition']}@{record['offset']} {record['key']} "
                f"{json.dumps(body.get('value', body), default=str)}"
            )
    if count == 0 and not from_beginning:
        click.echo(f"no new messages on {spec.name} (use --from-beginning or --follow)", err=True)


# ----------------------------------------------------------------------------- model
@cli.group(context_settings=CONTEXT)
def model() -> None:
    """Online models: evaluate on recorded ticks with the live feature and model code."""


def _tick_data_options(format_required: bool) -> list:
    """--data, --format, --symbol, --tz: which recorded ticks a command reads."""
    fmt = {"required": True} if format_required else {"default": "lean-quote", "show_default": True}
    return [
        click.option(
            "--data",
            "paths",
            multiple=True,
            required=True,
            type=click.Path(path_type=Path),
            help="Tick files (repeat for several; merged in time order).",
        ),
        click.option(
            "--format",
            "fmt",
            type=click.Choice(["csv", "lean-quote", "lean-trade"]),
            help="Input format.",
            **fmt,
        ),
        click.option("--symbol", help="Symbol to use (LEAN files default to their folder's name)."),
        click.option(
            "--tz", help="Time zone of LEAN times (default: UTC-05:00 FX, New York equities)."
        ),
    ]


def _learner_options() -> list:
    """--horizon, --model: the online learner, as the predictor runs it."""
    return [
        click.option(
            "--horizon",
            type=click.FloatRange(min=0, min_open=True),
            default=1.0,
            show_default=True,
            help="Label horizon H in seconds: is the mid higher H later? (docs/ml.md)",
        ),
        click.option(
            "--model",
            "model_name",
            type=click.Choice(MODEL_NAMES),
            default=DEFAULT_MODEL,
            show_default=True,
            help="Online learner (docs/ml.md compares them).",
        ),
    ]


def _apply(command, options: list):
    for option in reversed(options):
        command = option(command)
    return command


def _ml_data_options(command):
    """Options shared by `model eval` and `model train`: the data and the learner."""
    progress = click.option(
        "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
    )
    return _apply(command, [*_tick_data_options(True), *_learner_options(), progress])


@model.command("eval")
@_ml_data_options
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: n, auc, precision_at_20 (and details).",
)
@click.option(
    "--per-file",
    is_flag=True,
    help="Score each file on its own (files in name order, i.e. by day for LEAN files), the "
    "model and features carried from one to the next as a live worker carries them.",
)
def model_eval(paths, fmt, symbol, tz, horizon, model_name, progress, as_json, per_file) -> None:
    """Progressive test-then-train evaluation with delayed labels: every tick is predicted
    before its label is known, and learned from only once its horizon has passed.

    Prints n (scored predictions), AUC and precision@20 (share correct among the 20
    most confident of each block of 1,000 predictions, averaged over blocks).
    """
    from spark.ml.evaluate import evaluate
    from spark.progress import tick_progress

    show = sys.stderr.isatty() if progress is None else progress
    settings = _learner_settings(model_name, horizon)
    if per_file:
        _model_eval_per_file(paths, fmt, symbol, tz, settings, show, as_json)
        return
    batch = _read_ticks(paths, fmt, symbol, tz)
    with tick_progress(len(batch), show, label="eval") as advance:
        result = evaluate(batch, settings, on_tick=advance)
    if as_json:
        _print_json(result.as_dict())
    else:
        click.echo(
            f"{result.model}, H={result.horizon_s:g}s: n={result.n:,} AUC={result.auc:.4f} "
            f"precision@20={result.precision_at_20:.4f} ({result.ticks:,} ticks, "
            f"{result.ties:,} ties skipped, {result.seconds:.1f}s)"
        )


def _read_ticks(paths, fmt, symbol, tz):
    """The valid ticks of files, merged in time order, as columns."""
    from spark.ticks.columns import read_batch

    return read_batch([Path(p) for p in paths], fmt, symbol.upper() if symbol else None, tz)[0]


def _learner_settings(model_name: str, horizon: float):
    """The environment's settings (read once here) with the command's learner."""
    from spark.settings import Settings

    return Settings.from_env().with_models(model=model_name, challengers=(), horizon_s=horizon)


def _model_eval_per_file(paths, fmt, symbol, tz, settings, show, as_json) -> None:
    from spark.ml.evaluate import evaluate_per_file
    from spark.progress import tick_progress

    ordered = sorted(paths, key=lambda p: Path(p).name)  # LEAN names start with the date
    files = [(str(p), _read_ticks([p], fmt, symbol, tz)) for p in ordered]
    with tick_progress(sum(len(b) for _, b in files), show, label="eval") as advance:
        rows, total = evaluate_per_file(files, settings, on_tick=advance)
    if as_json:
        out = total.as_dict()
        out["files"] = [{"file": name, **r.as_dict()} for name, r in rows]
        _print_json(out)
        return
    for name, r in rows:
        click.echo(
            f"{Path(name).name}: n={r.n:,} AUC={r.auc:.4f} precision@20={r.precision_at_20:.4f}"
        )
    click.echo(
        f"{total.model}, H={total.horizon_s:g}s, all files: n={total.n:,} AUC={total.auc:.4f} "
        f"precision@20={total.precision_at_20:.4f} ({total.seconds:.1f}s)"
    )


@model.command("train")
@_ml_data_options
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def model_train(paths, fmt, symbol, tz, horizon, model_name, progress, as_json) -> None:
    """Fit a model version on recorded ticks and publish it to the registry: champion if
    there is none yet, else a challenger that workers run in shadow from their next start.

    The metrics printed are progressive (each tick predicted before it was learned).
    """
    from spark.ml_jobs import train_and_register
    from spark.progress import tick_progress

    show = sys.stderr.isatty() if progress is None else progress
    batch = _read_ticks(paths, fmt, symbol, tz)
    with tick_progress(len(batch), show, label="train") as advance:
        done = train_and_register(batch, _learner_settings(model_name, horizon), on_tick=advance)
    r = done.result
    if as_json:
        _print_json(
            {"model_id": done.model_id, "version": done.version, "role": done.role, **r.as_dict()}
        )
    else:
        click.echo(
            f"registered {done.model_id} v{done.version} as {done.role}: n={r.n:,} "
            f"AUC={r.auc:.4f} precision@20={r.precision_at_20:.4f} ({r.ticks:,} ticks)"
        )


# ----------------------------------------------------------------------------- drift
@cli.group(context_settings=CONTEXT)
def drift() -> None:
    """Drift detection: measure detectors on a real regime change."""


@drift.command("eval")
@click.option(
    "--data",
    "paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Ticks before the switch (repeat for several files).",
)
@click.option(
    "--then",
    "then_paths",
    multiple=True,
    required=True,
    type=click.Path(path_type=Path),
    help="Ticks after the switch: another instrument, venue or day.",
)
@click.option(
    "--format",
    "fmt",
    required=True,
    type=click.Choice(["csv", "lean-quote", "lean-trade"]),
    help="Input format.",
)
@click.option(
    "--horizon",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Label horizon H in seconds for the model's errors.",
)
@click.option(
    "--detector",
    "detectors",
    multiple=True,
    help="Detectors to run (repeat; default: all). See docs/drift.md.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object: delay_ticks and false_alarms_per_100k of the default "
    "detector, and the same per detector under detectors.",
)
def drift_eval_command(paths, then_paths, fmt, horizon, detectors, as_json) -> None:
    """Stream --data, then --then, through the live feature, model and drift code and report,
    per detector, the delay to the first alarm after the switch (ticks and seconds) and the
    false alarms per 100,000 ticks before it."""
    from spark.drift.evaluate import drift_eval

    settings = _learner_settings("logreg", horizon)
    try:
        result = drift_eval(
            _read_ticks(paths, fmt, None, None),
            _read_ticks(then_paths, fmt, None, None),
            settings,
            detectors=list(detectors) or None,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--detector") from None
    if as_json:
        _print_json(result)
        return
    click.echo(
        f"{result['ticks_before']:,} ticks before the switch, {result['ticks_after']:,} after"
    )
    for name, d in result["detectors"].items():
        delay = (
            "no alarm after the switch"
            if d["delay_ticks"] is None
            else f"delay {d['delay_ticks']:,} ticks ({d['delay_s']:.0f}s)"
        )
        mark = " (default)" if name == result["detector"] else ""
        click.echo(
            f"  {name:14} {delay}, {d['false_alarms_per_100k']:.1f} false alarms "
            f"per 100k ticks{mark}"
        )


@cli.group(context_settings=CONTEXT)
def gate() -> None:
    """Open or close a symbol's drift gate by hand (workers apply it within a second)."""


def _send_command(topic_id: str, fields: dict, operator: str | None, key: bytes | None = None):
    """Produce an operator command (gate or risk) with who and when; fail if not acked."""
    import getpass
    import time as _time

    from spark.kafka import clients
    from spark.ticks.producer import default_serde
    from spark.topics import catalog

    spec = catalog()[topic_id]
    clients.ensure_reachable()
    record = fields | {"operator": operator or getpass.getuser(), "ts": int(_time.time() * 1e6)}
    producer = clients.producer()
    producer.produce(spec.name, default_serde().encode(spec.name, spec.value, record), key)
    if producer.flush(10):
        raise SparkError(f"the command was not acknowledged by Kafka ({spec.name})")


def _gate_command(action: str, symbol: str, reason: str, operator: str | None) -> None:
    from spark.ticks.model import SYMBOL

    symbol = symbol.upper()
    if not SYMBOL.match(symbol):
        raise click.BadParameter(f"{symbol!r} is not a symbol", param_hint="SYMBOL")
    fields = {"symbol": symbol, "action": action, "reason": reason}
    _send_command("gate_commands", fields, operator, symbol.encode())
    click.echo(f"sent: {action} {symbol} ({reason}); see GET /ml/gates on a worker")


@gate.command("open")
@click.argument("symbol")
@click.option("--reason", required=True, help="Why; kept in the gate state.")
@click.option("--operator", help="Who (default: your user name).")
def gate_open(symbol: str, reason: str, operator: str | None) -> None:
    """Open SYMBOL's gate: its signals flow again, whatever the detectors said."""
    _gate_command("open", symbol, reason, operator)


@gate.command("close")
@click.argument("symbol")
@click.option("--reason", required=True, help="Why; kept in the gate state.")
@click.option("--operator", help="Who (default: your user name).")
def gate_close(symbol: str, reason: str, operator: str | None) -> None:
    """Close SYMBOL's gate: its signals are suppressed until `spark gate open`."""
    _gate_command("close", symbol, reason, operator)


# ----------------------------------------------------------------------------- backtest
@cli.group(context_settings=CONTEXT)
def backtest() -> None:
    """Backtests: recorded ticks through the live features, model, drift gate, signal policy
    and paper executor (docs/jobs.md). `run` works here; `submit` asks the workers."""


def _backtest_options(command):
    options = [
        *_tick_data_options(False),
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N valid ticks."),
        *_learner_options(),
        click.option(
            "--band",
            type=click.FloatRange(0, 0.5, min_open=True, max_open=True),
            default=0.1,
            show_default=True,
            help="Signal band: BUY at prob_up >= 0.5+band, SELL <= 0.5-band.",
        ),
        click.option(
            "--gate/--no-gate",
            default=True,
            show_default=True,
            help="Run the drift gate between predictions and signals.",
        ),
        click.option(
            "--order-notional",
            type=click.FloatRange(min=0, min_open=True),
            default=100_000.0,
            show_default=True,
            help="Target position size, quote ccy.",
        ),
        click.option(
            "--fee-bp",
            type=click.FloatRange(min=0),
            default=0.5,
            show_default=True,
            help="Fee per fill, basis points of notional.",
        ),
        click.option(
            "--latency-ms",
            type=click.FloatRange(min=0),
            default=20.0,
            show_default=True,
            help="Fill at the first quote this long after a signal.",
        ),
        click.option(
            "--set-limit",
            "set_limits",
            multiple=True,
            metavar="NAME=VALUE",
            help="Override a risk limit, e.g. --set-limit max_daily_drawdown=1e9 (repeat).",
        ),
    ]
    return _apply(command, options)


def _backtest_params(
    paths,
    fmt,
    symbol,
    tz,
    limit,
    model_name,
    horizon,
    band,
    gate,
    order_notional,
    fee_bp,
    latency_ms,
    set_limits,
) -> dict:
    limits = {}
    for item in set_limits:
        name, sep, value = item.partition("=")
        try:
            limits[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise click.BadParameter(f"{item!r} is not NAME=VALUE", param_hint="--set-limit")
    params = {
        "data": [str(Path(p).expanduser().resolve()) for p in paths],
        "format": fmt,
        "symbol": symbol.upper() if symbol else None,
        "tz": tz,
        "limit": limit,
        "model": model_name,
        "horizon_s": horizon,
        "band": band,
        "gate": gate,
        "order_notional": order_notional,
        "fee_bp": fee_bp,
        "latency_ms": latency_ms,
        "limits": limits,
    }
    from spark.backtest.engine import InvalidParams
    from spark.jobs.backtest import check_request

    try:
        check_request(params, restrict=False)
    except InvalidParams as exc:
        raise click.UsageError(str(exc)) from None
    return params


def _print_backtest(metrics: dict, rejections: dict | None = None) -> None:
    def fmt(key, spec=",.2f"):
        value = metrics.get(key)
        return "n/a" if value is None or value != value else format(value, spec)

    click.echo(
        f"{fmt('ticks', ',.0f')} ticks, {fmt('signals', ',.0f')} signals "
        f"({fmt('suppressed', ',.0f')} suppressed by the gate): {fmt('orders', ',.0f')} orders, "
        f"{fmt('rejected', ',.0f')} rejected, {fmt('no_change', ',.0f')} needed no order"
    )
    if rejections:
        click.echo("rejected by: " + ", ".join(f"{k} {v:,}" for k, v in sorted(rejections.items())))
    click.echo(
        f"PnL {fmt('pnl')} (realized {fmt('realized_pnl')} incl. fees {fmt('fees')}, "
        f"unrealized {fmt('unrealized_pnl')}); max drawdown {fmt('max_drawdown')}; "
        f"Sharpe {fmt('sharpe', '.2f')} (hourly, annualised, {fmt('hours', ',.0f')} h)"
    )
    click.echo(
        f"model AUC {fmt('auc', '.4f')}, precision@20 {fmt('precision_at_20', '.4f')} over "
        f"{fmt('labels', ',.0f')} labels; {fmt('seconds', '.1f')}s"
    )


@backtest.command("run")
@_backtest_options
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    help="Also write a JSON report with the equity curve and every fill.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object with every figure.")
@click.option(
    "--records",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write every record the pipeline produced (predictions, signals, orders, fills, "
    "positions, alerts, gate states) as JSON lines: what a worker would put on its topics.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def backtest_run(report, as_json, records, progress, **options) -> None:
    """Run a backtest here, on files on this machine; prints PnL, drawdown, Sharpe, counts."""
    from spark.export.reports import format_of
    from spark.jobs.backtest import run_request
    from spark.progress import tick_progress

    params = _backtest_params(**options)
    if report is not None:
        try:
            format_of(report)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--report") from None
    show = sys.stderr.isatty() if progress is None else progress
    state: dict = {}

    def advance(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tick_progress(total, show, label="backtest")
            state["advance"] = state["bar"].__enter__()
        state["advance"](done)

    try:
        out = run_request(params, report, restrict=False, on_tick=advance, records=records)
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
    if as_json:
        _print_json(out["summary"] | {"artifact_uri": out["artifact_uri"]})
        return
    _print_backtest(out["summary"], out["summary"]["rejections"])
    if report:
        click.echo(f"report: {report}")


@backtest.command("submit")
@_backtest_options
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="Wait for the result on the results topic.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=600.0,
    show_default=True,
    help="Seconds to wait for the result.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as one JSON object.")
def backtest_submit(wait, timeout, as_json, **options) -> None:
    """Send the backtest to the workers (a JobRequest on the backtest requests topic).

    File paths are read by the worker: they must exist there, inside its data folders
    (SPARK_DATA_DIRS; default the bundled sample data and $SPARK_HOME/data).
    """
    from spark.jobs.client import submit

    params = _backtest_params(**options)
    result = submit("backtest", params, wait=wait, timeout=timeout)
    if result is None:
        return
    if as_json:
        _print_json(result)
        return
    if result["status"] != "ok":
        raise SparkError(f"backtest {result['job_id']} failed: {result['error']}")
    _print_backtest(result["metrics"])
    if result.get("artifact_uri"):
        click.echo(f"report on the worker: {result['artifact_uri']}")


# ----------------------------------------------------------------------------- export
@cli.group(context_settings=CONTEXT)
def export() -> None:
    """Backtest reports as CSV/XLSX/PDF files, made by the workers (Export@Scale).
    Locally, `spark backtest run --report FILE.xlsx` does the same."""


@export.command("submit")
@_backtest_options
@click.option(
    "--output",
    type=click.Choice(["csv", "xlsx", "pdf", "json"]),
    default="xlsx",
    show_default=True,
    help="Report format.",
)
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=600.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as one JSON object.")
def export_submit(output, wait, timeout, as_json, **options) -> None:
    """Send an export job: the backtest runs on a worker, which writes the report file
    under its $SPARK_HOME/jobs and answers with its location (artifact_uri)."""
    from spark.jobs.client import submit

    params = _backtest_params(**options) | {"output": output}
    result = submit("export", params, wait=wait, timeout=timeout)
    if result is None:
        return
    if as_json:
        _print_json(result)
        return
    if result["status"] != "ok":
        raise SparkError(f"export {result['job_id']} failed: {result['error']}")
    click.echo(f"report on the worker: {result['artifact_uri']}")


# ----------------------------------------------------------------------------- optimize
@cli.group(context_settings=CONTEXT)
def optimize() -> None:
    """Parameter sweeps: one backtest per combination over the same ticks, ranked by an
    objective (docs/jobs.md). `run` works here; `submit` asks the workers."""


def _sweep_options(command):
    options = [
        click.option(
            "--grid",
            "grid",
            multiple=True,
            required=True,
            metavar="NAME=V1,V2,...",
            help="Values to try for a backtest parameter (band, fee_bp, model, gate, "
            "latency_ms, order_notional, horizon_s, limits.<limit>); repeat for more.",
        ),
        click.option(
            "--objective",
            type=click.Choice(["pnl", "sharpe", "neg_max_drawdown"]),
            default="pnl",
            show_default=True,
            help="What the ranking maximises.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return _backtest_options(command)


def _sweep_params(grid, objective, **options) -> dict:
    params = _backtest_params(**options)
    sweep = {}
    for item in grid:
        name, sep, values = item.partition("=")
        if not sep or not values:
            raise click.BadParameter(f"{item!r} is not NAME=V1,V2,...", param_hint="--grid")
        parsed = []
        for raw in values.split(","):
            try:
                parsed.append(json.loads(raw))
            except json.JSONDecodeError:
                parsed.append(raw.strip())
        sweep[name.strip()] = parsed
    params.update(grid=sweep, objective=objective)
    from spark.backtest.engine import InvalidParams
    from spark.jobs.optimizer import check_sweep

    try:
        check_sweep(params, restrict=False)
    except InvalidParams as exc:
        raise click.UsageError(str(exc)) from None
    return params


def _print_ranking(ranking: list[dict], objective: str, grid: dict) -> None:
    def value_of(params: dict, name: str):
        if name.startswith("limits."):
            return params["limits"].get(name.removeprefix("limits."))
        return params[name]

    click.echo(f"{len(ranking)} combinations, best first by {objective}:")
    for row in ranking[:10]:
        chosen = ", ".join(f"{n}={value_of(row['params'], n)}" for n in sorted(grid))
        m = row["metrics"]
        value = "n/a" if row["objective"] is None else f"{row['objective']:,.2f}"
        click.echo(
            f"  {objective} {value:>12}  [{chosen}]  orders {m['orders']:,.0f}, "
            f"PnL {m['pnl']:,.2f}, max DD {m['max_drawdown']:,.2f}"
        )


@optimize.command("run")
@_sweep_options
@click.option("--report", type=click.Path(path_type=Path), help="Also write the ranking as JSON.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object: the ranking and the best.")
def optimize_run(report, as_json, **options) -> None:
    """Run a sweep here, on files on this machine; prints the ranking (progress on stderr)."""
    from spark.jobs.optimizer import run_sweep

    params = _sweep_params(**options)
    show = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if show:
            click.echo(f"\r{done}/{total} combinations", nl=False, err=True)

    out = run_sweep(params, report, restrict=False, on_combo=progress)
    if show:
        click.echo("", err=True)
    if as_json:
        _print_json({k: out[k] for k in ("objective", "best", "ranking", "artifact_uri")})
        return
    _print_ranking(out["ranking"], out["objective"], params["grid"])


@optimize.command("submit")
@_sweep_options
@click.option("--wait/--no-wait", default=True, show_default=True)
@click.option("--timeout", type=click.FloatRange(min=1), default=1800.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the JobResult as one JSON object.")
def optimize_submit(wait, timeout, as_json, **options) -> None:
    """Send the sweep to the workers (a JobRequest on the optimizer requests topic); the
    ranking is in the JSON report on the worker (artifact_uri)."""
    from spark.jobs.client import submit

    params = _sweep_params(**options)
    result = submit("optimizer", params, wait=wait, timeout=timeout)
    if result is None:
        return
    if as_json:
        _print_json(result)
        return
    if result["status"] != "ok":
        raise SparkError(f"sweep {result['job_id']} failed: {result['error']}")
    click.echo(f"{result['metrics'].get('combinations', 0):.0f} combinations; the best:")
    _print_backtest(result["metrics"])
    click.echo(f"ranking on the worker: {result['artifact_uri']}")


# ----------------------------------------------------------------------------- risk
@cli.group(context_settings=CONTEXT)
def risk() -> None:
    """The paper executor's kill switch and risk limits (workers apply them within a second).

    Limits: max_position_notional, max_gross_notional (quote currency),
    max_orders_per_minute, max_daily_drawdown (quote currency). Configured defaults
    come from SPARK_MAX_POSITION_NOTIONAL etc.; docs/executor.md explains each.
    """


def _risk_command(action: str, reason: str, operator: str | None, limit=None, value=None) -> None:
    fields = {"action": action, "limit_name": limit, "value": value, "reason": reason}
    _send_command("risk_commands", fields, operator)
    what = f"{action} {limit}={value:g}" if action == "set_limit" else action
    click.echo(f"sent: {what} ({reason}); see `spark risk status` or GET /executor on a worker")


@risk.command("kill")
@click.option("--reason", required=True, help="Why; logged by the worker.")
@click.option("--operator", help="Who (default: your user name).")
def risk_kill(reason: str, operator: str | None) -> None:
    """Engage the kill switch: every order is refused until `spark risk clear`."""
    _risk_command("kill", reason, operator)


@risk.command("clear")
@click.option("--reason", required=True, help="Why; logged by the worker.")
@click.option("--operator", help="Who (default: your user name).")
def risk_clear(reason: str, operator: str | None) -> None:
    """Lift the kill switch."""
    _risk_command("clear", reason, operator)


@risk.command("set-limit")
@click.argument(
    "limit",
    type=click.Choice(
        [
            "max_position_notional",
            "max_gross_notional",
            "max_orders_per_minute",
            "max_daily_drawdown",
        ]
    ),
)
@click.argument("value", type=click.FloatRange(min=0))
@click.option("--reason", required=True, help="Why; logged by the worker.")
@click.option("--operator", help="Who (default: your user name).")
def risk_set_limit(limit: str, value: float, reason: str, operator: str | None) -> None:
    """Set LIMIT to VALUE (kept across worker restarts, over the configured default)."""
    _risk_command("set_limit", reason, operator, limit, value)


@risk.command("status")
@click.option("--json", "as_json", is_flag=True, help="The executor's saved state as JSON.")
def risk_status(as_json: bool) -> None:
    """Kill switch, limits, positions and PnL, as the executor last saved them."""
    import json as _json

    from spark.execution.paper import PaperExecutor, combined, summary
    from spark.kafka import clients
    from spark.kafka.state import latest_json
    from spark.settings import Settings
    from spark.topics import catalog

    clients.ensure_reachable()
    saved = latest_json(catalog()["executor_state"].name, [0])
    settings = Settings.from_env()
    views = {}
    for key, state in sorted(saved.items()):
        if key.startswith("partition:"):
            executor = PaperExecutor(settings.execution, settings.limits)
            executor.load(state)
            views[key.removeprefix("partition:")] = summary(executor)
    if not views:
        raise SparkError("no executor state yet: start a worker (spark up) and send ticks")
    view = combined(views)
    if as_json:
        click.echo(_json.dumps(view))
        return
    kill = view["kill_switch"]
    click.echo(f"kill switch: {'ENGAGED: ' + kill['reason'] if kill else 'off'}")
    for name, value in view["limits"].items():
        mark = " (set by command)" if name in view["limit_overrides"] else ""
        click.echo(f"  {name:22} {value:,.2f}{mark}")
    rejected = ", ".join(f"{k} {v:,}" for k, v in sorted(view["rejections"].items())) or "none"
    click.echo(f"orders {view['orders']:,}; rejected: {rejected}")
    click.echo(
        f"equity {view['equity']:,.2f}, drawdown today {view['daily_drawdown']:,.2f}, "
        f"gross notional {view['gross_notional']:,.2f} (quote currency)"
    )
    for symbol, p in view["positions"].items():
        click.echo(
            f"  {symbol:10} qty {p['quantity']:>12,.0f} avg {p['avg_price']:<12.6g} "
            f"realized {p['realized_pnl']:>12,.2f} unrealized {p['unrealized_pnl']:>10,.2f}"
        )


# ----------------------------------------------------------------------------- worker, up, down
AGENT_CHOICE = click.Choice(["pipeline", "jobs"])


@cli.command(context_settings=CONTEXT)
@click.option(
    "--agent",
    "agents",
    multiple=True,
    type=AGENT_CHOICE,
    help="Roles to run (repeat; default: both): pipeline (ticks to signals and paper orders, "
    "commands, HTTP API) or jobs (backtest, optimizer and export requests).",
)
@click.option(
    "--web-port",
    type=click.IntRange(1, 65535),
    default=6066,
    show_default=True,
    help="Port of /metrics; a free one is taken if it is busy.",
)
@click.option(
    "--loglevel",
    type=click.Choice(["crit", "error", "warn", "info", "debug"]),
    default="warn",
    show_default=True,
)
def worker(agents, web_port, loglevel) -> None:
    """Run a Faust worker in the foreground (Ctrl-C stops it cleanly).

    Start more workers, on this machine or others, to share the partitions.
    """
    from spark.agents.app import AGENTS
    from spark.agents.worker import run_foreground
    from spark.kafka import clients

    clients.ensure_reachable()
    run_foreground(tuple(agents) or AGENTS, web_port, loglevel)


def _ensure_broker(port: int = 9092, storage: str = "memory://tansu/") -> str:
    """Use KAFKA_BOOTSTRAP_SERVERS, or start the embedded broker; return a line saying which."""
    from spark.broker import embedded
    from spark.config import external_bootstrap
    from spark.kafka import clients

    if external_bootstrap():
        clients.ensure_reachable()
        return f"using Kafka at {external_bootstrap()}"
    st = embedded.start(port, storage)
    return f"embedded broker at {st.address}"


@cli.command(context_settings=CONTEXT)
@click.option("--detach", "-d", is_flag=True, help="Run the worker in the background.")
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=9092,
    show_default=True,
    help="Embedded broker port (ignored with KAFKA_BOOTSTRAP_SERVERS).",
)
@click.option(
    "--storage", default="memory://tansu/", show_default=True, help="Embedded broker storage."
)
@click.option(
    "--web-port",
    type=click.IntRange(1, 65535),
    default=6066,
    show_default=True,
    help="Worker /metrics port.",
)
def up(detach: bool, port: int, storage: str, web_port: int) -> None:
    """Start the broker (when embedded), create the topics and run the worker."""
    from spark.agents.app import AGENTS
    from spark.agents.worker import run_foreground, start_detached, wait_ready
    from spark.broker import embedded
    from spark.config import external_bootstrap
    from spark.kafka.topics import create_topics

    started_broker = not external_bootstrap() and not embedded.status().running
    click.echo(_ensure_broker(port, storage))
    outcome = create_topics()
    click.echo(
        f"topics: {sum(s == 'created' for s in outcome.values())} created, "
        f"{len(outcome)} in the catalog"
    )
    if detach:
        record = start_detached(AGENTS, web_port)
        wait_ready(record)
        click.echo(
            f"worker running (pid {record['pid']}, metrics on "
            f"http://127.0.0.1:{record['web_port']}/metrics, log {record['log']}); "
            "`spark down` stops everything"
        )
        return
    click.echo("worker starting; Ctrl-C stops it" + (" and the broker" if started_broker else ""))
    try:
        run_foreground(AGENTS, web_port)
    finally:
        if started_broker:
            embedded.stop()
            click.echo("embedded broker stopped")


@cli.command(context_settings=CONTEXT)
def down() -> None:
    """Stop the background worker and the embedded broker that `spark up` started."""
    from spark.agents.worker import stop_detached
    from spark.broker import embedded

    click.echo("worker stopped" if stop_detached() else "no worker was running")
    click.echo("embedded broker stopped" if embedded.stop() else "no embedded broker was running")


@cli.command(context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="Everything as one JSON object.")
def status(as_json: bool) -> None:
    """Broker, worker, topics with end offsets, consumer groups with lag."""
    from spark.status import collect

    st = collect()
    if as_json:
        _print_json(
            {"broker": st.broker, "worker": st.worker, "topics": st.topics, "groups": st.groups}
        )
        return
    b = st.broker
    where = b["address"] if b["kind"] == "external" else f"{b['address']} ({b['detail']})"
    click.echo(f"broker   {b['kind']} {where}")
    w = st.worker
    if w:
        state = "running" if w["running"] else "not running"
        click.echo(f"worker   {state} (pid {w['pid']}, metrics :{w['web_port']}, log {w['log']})")
    else:
        click.echo("worker   none started by `spark up --detach` (others may run elsewhere)")
    click.echo("topics")
    for t in st.topics:
        if t["exists"]:
            click.echo(f"  {t['name']:28} {t['partitions']:>2}p {t['messages']:>10} messages")
        else:
            click.echo(f"  {t['name']:28} missing (spark topics create)")
    click.echo("groups")
    for g in st.groups:
        click.echo(f"  {g['group']} on {g['topic']}: committed {g['committed']}, lag {g['lag']}")


@cli.command(context_settings=CONTEXT)
@click.option(
    "--rate",
    type=float,
    default=0.0,
    show_default=True,
    help="Replay rate in ticks/s (0 = as fast as the broker takes them).",
)
@click.option("--keep", is_flag=True, help="Leave broker and worker running afterwards.")
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=20_000,
    show_default=True,
    help="Rows to replay (0 = all 61,053 bundled rows; the worker handles ~600/s).",
)
@click.option(
    "--data",
    "paths",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Replay these LEAN quote files instead of the bundled slice.",
)
@click.option("--json", "as_json", is_flag=True, help="Also print the summary as one JSON line.")
def demo(rate: float, keep: bool, limit: int, paths, as_json: bool) -> None:
    """The whole pipeline on a bundled slice of real ticks: broker, topics, worker, replay,
    live status, then a summary that accounts for every row."""
    from spark.demo import run_demo

    summary = run_demo(rate=rate, keep=keep, paths=list(paths) or None, limit=limit or None)
    if as_json:
        _print_json(summary)


def main() -> None:
    cli(prog_name="spark")


if __name__ == "__main__":
    main()
