"""What several command groups share: option sets, reading tick files, the settings of a
learner, resolving a topic, printing a backtest."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import click

from spark.cli.app import print_json
from spark.errors import SparkError
from spark.execution.costs import FILL_MODELS, ON_TIMEOUT
from spark.execution.risk import ExecutionSettings
from spark.settings import DEFAULT_MODEL, MODEL_NAMES, ModelSettings
from spark.ticks.readers import FORMATS

FORMAT_HELP = (
    "lean-quote/lean-trade: QuantConnect LEAN tick files (zip or plain); lean: either, "
    "by file name (*_trade.* are trades), to merge a stock's quotes and trades; csv: "
    "ts,symbol,bid,ask[,bid_size,ask_size,last,last_size] with ts ISO-8601 or epoch ms; "
    "binance: websocket JSON lines (combined-stream or bare, optional receive-ns prefix, "
    "plain or gzip): bookTicker, trade and aggTrade become ticks, other kinds are skipped."
)


def expand_paths(values) -> tuple[Path, ...]:
    """Paths as given, with glob patterns (``*``, ``?``, ``[``) expanded in sorted order; a
    pattern that matches nothing is an error that says so."""
    out: list[Path] = []
    for value in values:
        text = str(value)
        if any(c in text for c in "*?["):
            found = sorted(glob.glob(os.path.expanduser(text), recursive=True))
            if not found:
                raise click.BadParameter(f"no file matches {text!r}")
            out.extend(Path(f) for f in found if not Path(f).is_dir())
        else:
            out.append(Path(text))
    return tuple(out)


class PathsOption(click.Option):
    """A repeatable option that also takes several values after one flag, as shells expand
    globs: ``--data a.zip b.zip``, ``--data a.zip --data b.zip`` and ``--data 'x/*.zip'``
    are the same. Values end at the next token that starts with ``-``."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("multiple", True)
        kwargs.setdefault("metavar", "PATH...")
        kwargs.setdefault("type", click.Path(path_type=Path))
        kwargs.setdefault("callback", lambda _ctx, _param, value: expand_paths(value))
        super().__init__(*args, **kwargs)

    def add_to_parser(self, parser, ctx) -> None:
        super().add_to_parser(parser, ctx)
        for name in self.opts:
            parsed = parser._long_opt.get(name) or parser._short_opt.get(name)
            if parsed is None:
                continue
            take_one = parsed.process

            def take_all(value, state, take_one=take_one) -> None:
                take_one(value, state)
                while state.rargs and not state.rargs[0].startswith("-"):
                    take_one(state.rargs.pop(0), state)

            parsed.process = take_all


def paths_option(flag: str, dest: str, help: str, required: bool = True):
    return click.option(flag, dest, cls=PathsOption, required=required, help=help)


def format_option(required: bool):
    fmt = {"required": True} if required else {"default": "lean-quote", "show_default": True}
    return click.option(
        "--format", "fmt", type=click.Choice(FORMATS), help=f"Input format. {FORMAT_HELP}", **fmt
    )


def tick_data_options(format_required: bool) -> list:
    """--data, --format, --symbol, --tz: which recorded ticks a command reads."""
    return [
        paths_option(
            "--data",
            "paths",
            "Tick files, merged in time order: several after one --data, repeated --data, "
            "or glob patterns ('data/*.zip').",
        ),
        format_option(format_required),
        click.option("--symbol", help="Symbol to use (LEAN files default to their folder's name)."),
        click.option(
            "--tz",
            help="Time zone of LEAN times (default: the market folder's in the path: oanda, "
            "crypto UTC, fxcm UTC-05:00; else UTC-05:00 for 3-column FX quotes, New York for "
            "equities).",
        ),
    ]


class HorizonType(click.ParamType):
    """A label horizon: seconds ("1", "0.5s") or mid moves in event time ("1move")."""

    name = "H"

    def convert(self, value, param, ctx):
        from spark.settings import parse_horizon

        if isinstance(value, dict):
            return value
        try:
            return parse_horizon(value)
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


HORIZON_HELP = (
    "Label horizon H: seconds (1, 0.5s: is the mid higher H later?) or mid moves in event "
    "time (1move, 3moves: is the mid higher after the next moves?). Default: "
    "SPARK_HORIZON_MOVES / SPARK_HORIZON_S, else the shipped default (docs/ml.md)."
)


def learner_options() -> list:
    """--horizon, --model: the online learner, as the predictor runs it."""
    return [
        click.option("--horizon", type=HorizonType(), default=None, help=HORIZON_HELP),
        click.option(
            "--model",
            "model_name",
            type=click.Choice(MODEL_NAMES),
            default=DEFAULT_MODEL,
            show_default=True,
            help="Online learner (docs/ml.md compares them).",
        ),
    ]


def apply(command, options: list):
    for option in reversed(options):
        command = option(command)
    return command


def ml_data_options(command):
    """Options shared by `model eval` and `model train`: the data and the learner."""
    progress = click.option(
        "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
    )
    return apply(command, [*tick_data_options(True), *learner_options(), progress])


def read_ticks(paths, fmt, symbol, tz):
    """The valid ticks of files, merged in time order, as columns; none at all is an error
    that says which files and what was wrong with their rows (a wrong --format, mostly)."""
    from spark.ticks.columns import read_batch

    batch, rejected = read_batch(
        [Path(p) for p in paths], fmt, symbol.upper() if symbol else None, tz
    )
    if not len(batch):
        shown = ", ".join(str(p) for p in list(paths)[:3]) + (" ..." if len(paths) > 3 else "")
        why = ", ".join(f"{reason} {n:,}" for reason, n in rejected.most_common(3))
        raise SparkError(
            f"no valid ticks in {shown} read as --format {fmt}"
            + (f" (rows rejected: {why})" if why else " (no rows)")
            + "; check --format (--help lists them) and the files"
        )
    return batch


def learner_settings(model_name: str, horizon: dict | None):
    """The environment's settings (read once here) with the command's learner; ``horizon``:
    the --horizon given (None: the environment's or the default)."""
    from spark.settings import Settings

    return Settings.from_env().with_models(model=model_name, challengers=(), **(horizon or {}))


def resolve_topic(name: str):
    from spark.topics import catalog

    try:
        return catalog().resolve(name)
    except KeyError as exc:
        raise SparkError(exc.args[0]) from None


def cost_options() -> list:
    """The cost and fill model options (docs/costs.md); defaults as the live worker's."""
    d = ExecutionSettings()
    return [
        click.option(
            "--fill",
            "fill_model",
            type=click.Choice(FILL_MODELS),
            default=d.fill_model,
            show_default=True,
            help="taker: cross the spread at the first quote past the latency; passive: rest "
            "at the own-side touch and fill by queue position (docs/costs.md).",
        ),
        click.option(
            "--maker-fee-bp",
            type=click.FloatRange(-999, 999),
            default=d.maker_fee_bp,
            show_default=True,
            help="Fee of a passive (maker) fill, bp; negative for a rebate.",
        ),
        click.option(
            "--fee-schedule",
            default=d.fee_schedule,
            metavar="PATTERN=TAKER[/MAKER],...",
            help="Per-symbol fees in bp, first match wins, e.g. 'EURUSD=0.2/0,BAC=0.6/-0.2'.",
        ),
        click.option(
            "--slippage-bp",
            type=click.FloatRange(0, 999),
            default=d.slippage_bp,
            show_default=True,
            help="Taker fills: this many bp of mid past the touch.",
        ),
        click.option(
            "--depth-spreads",
            type=click.FloatRange(0, 999),
            default=d.depth_spreads,
            show_default=True,
            help="Taker fills: the part of an order beyond the size shown at the touch pays "
            "this many spreads more (where the feed has sizes).",
        ),
        click.option(
            "--latency-jitter-ms",
            type=click.FloatRange(min=0),
            default=d.latency_jitter_ms,
            show_default=True,
            help="Add a deterministic 0..N ms to each signal's latency.",
        ),
        click.option(
            "--passive-timeout-ms",
            type=click.FloatRange(min=0),
            default=d.passive_timeout_ms,
            show_default=True,
            help="Passive orders: event-time ms to wait for a fill.",
        ),
        click.option(
            "--on-timeout",
            "passive_on_timeout",
            type=click.Choice(ON_TIMEOUT),
            default=d.passive_on_timeout,
            show_default=True,
            help="Passive orders unfilled at the timeout: cross the spread, or cancel.",
        ),
    ]


def backtest_options(command):
    options = [
        *tick_data_options(False),
        click.option("--limit", type=click.IntRange(min=1), help="Only the first N valid ticks."),
        *learner_options(),
        click.option(
            "--band",
            type=click.FloatRange(0, 0.5, min_open=True, max_open=True),
            default=0.1,
            show_default=True,
            help="Signal band: BUY at prob_up >= 0.5+band, SELL <= 0.5-band.",
        ),
        click.option(
            "--min-edge",
            type=click.FloatRange(0, 1000, max_open=True),
            default=ModelSettings.min_edge,
            show_default=True,
            help="Cost-aware policy: enter only where the predicted edge is at least this "
            "many times the round trip's cost (taker: spread + 2 fees; passive: measured on "
            "shadow orders, docs/costs.md); 0: the band alone decides "
            "(docs/policy.md).",
        ),
        click.option(
            "--min-hold",
            "min_hold_s",
            type=click.FloatRange(0, 86_400, max_open=True),
            default=ModelSettings.min_hold_s,
            show_default=True,
            help="Cost-aware policy: seconds a position is held before it may change.",
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
            help="Taker fee per fill, basis points of notional.",
        ),
        click.option(
            "--latency-ms",
            type=click.FloatRange(min=0),
            default=20.0,
            show_default=True,
            help="Fill at the first quote this long after a signal.",
        ),
        *cost_options(),
        click.option(
            "--set-limit",
            "set_limits",
            multiple=True,
            metavar="NAME=VALUE",
            help="Override a risk limit, e.g. --set-limit max_daily_drawdown=1e9 (repeat).",
        ),
    ]
    return apply(command, options)


def backtest_params(
    paths,
    fmt,
    symbol,
    tz,
    limit,
    model_name,
    horizon,
    band,
    min_edge,
    min_hold_s,
    gate,
    order_notional,
    fee_bp,
    latency_ms,
    set_limits,
    fill_model="taker",
    maker_fee_bp=0.0,
    fee_schedule="",
    slippage_bp=0.0,
    depth_spreads=1.0,
    latency_jitter_ms=0.0,
    passive_timeout_ms=5_000.0,
    passive_on_timeout="cross",
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
        **(horizon or {}),  # horizon_s / horizon_moves; none: the backtest's defaults
        "band": band,
        "min_edge": min_edge,
        "min_hold_s": min_hold_s,
        "gate": gate,
        "order_notional": order_notional,
        "fee_bp": fee_bp,
        "latency_ms": latency_ms,
        "limits": limits,
        "fill_model": fill_model,
        "maker_fee_bp": maker_fee_bp,
        "fee_schedule": fee_schedule,
        "slippage_bp": slippage_bp,
        "depth_spreads": depth_spreads,
        "latency_jitter_ms": latency_jitter_ms,
        "passive_timeout_ms": passive_timeout_ms,
        "passive_on_timeout": passive_on_timeout,
    }
    from spark.backtest.engine import InvalidParams
    from spark.jobs.backtest import check_request

    try:
        check_request(params, restrict=False)
    except InvalidParams as exc:
        raise click.UsageError(str(exc)) from None
    return params


def print_backtest(metrics: dict, rejections: dict | None = None) -> None:
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
        f"gross {fmt('gross_pnl')} at mid - fees {fmt('fees')} - spread {fmt('spread_cost')} "
        f"= net {fmt('pnl')}; per round trip: edge {fmt('edge_bp', '.3f')} bp, break-even "
        f"{fmt('break_even_edge_bp', '.3f')} bp"
    )
    if metrics.get("maker_fills") or metrics.get("unfilled"):
        click.echo(
            f"fills: {fmt('taker_fills', ',.0f')} taker, {fmt('maker_fills', ',.0f')} maker "
            f"(passive, by queue position), {fmt('unfilled', ',.0f')} passive orders unfilled"
        )
    if fmt("passive_cost_bp") != "n/a":
        click.echo(
            f"the policy priced a passive round trip at {fmt('passive_cost_bp', '.3f')} bp "
            "(mean; measured on shadow orders: adverse fills, timeouts, fees)"
        )
    models = metrics.get("cost_models")
    if models:
        click.echo("cost models: " + describe_costs(models))
    click.echo(
        f"model AUC {fmt('auc', '.4f')}, precision@20 {fmt('precision_at_20', '.4f')} over "
        f"{fmt('labels', ',.0f')} labels; {fmt('seconds', '.1f')}s"
    )


def describe_costs(models: dict) -> str:
    """One line saying which cost and fill models ran (``CostModels.describe()``)."""
    fill, fees = models["fill"], models["fees"]
    how = (
        "taker"
        if fill["kind"] == "taker"
        else (f"passive (queue position, {fill['timeout_ms']:g} ms then {fill['on_timeout']})")
    )
    overrides = f", {len(fees['overrides'])} per-symbol" if fees["overrides"] else ""
    slip, lat = models["slippage"], models["latency"]
    jitter = f" + 0..{lat['jitter_ms']:g}" if lat["jitter_ms"] else ""
    return (
        f"fill {how}; fees taker {fees['taker_bp']:g} / maker {fees['maker_bp']:g} bp{overrides}; "
        f"slippage {slip['slippage_bp']:g} bp + {slip['depth_spreads']:g} spread beyond the "
        f"shown size; latency {lat['base_ms']:g}{jitter} ms"
    )


def submit_job(kind: str, what: str, params: dict, wait: bool, timeout: float, as_json: bool):
    """Send a job to the workers; its ok JobResult to print, or None when there is nothing
    more to print (not waited for, or printed as JSON). A failed job is a SparkError."""
    from spark.jobs.client import submit

    result = submit(kind, params, wait=wait, timeout=timeout)
    if result is None:
        return None
    if as_json:
        print_json(result)
        return None
    if result["status"] != "ok":
        raise SparkError(f"{what} {result['job_id']} failed: {result['error']}")
    return result
