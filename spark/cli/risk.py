"""``spark risk``: the paper executor's kill switch, limits and status."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli
from spark.commands import send_command


@cli.group(context_settings=CONTEXT)
def risk() -> None:
    """The paper executor's kill switch and risk limits (workers apply them within a second).

    Limits: max_position_notional, max_gross_notional (quote currency),
    max_orders_per_minute, max_daily_drawdown (quote currency). Configured defaults
    come from SPARK_MAX_POSITION_NOTIONAL etc.; docs/executor.md explains each.
    """


def _risk_command(action: str, reason: str, operator: str | None, limit=None, value=None) -> None:
    fields = {"action": action, "limit_name": limit, "value": value, "reason": reason}
    send_command("risk_commands", fields, operator)
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

    from spark.execution.paper import saved_view
    from spark.settings import Settings

    view = saved_view(Settings.from_env())
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
    if view["commands"]:
        click.echo("commands taken (last offset per command topic), per tick partition:")
    for part, ack in sorted(view["commands"].items(), key=lambda kv: int(kv[0])):
        taken = ", ".join(f"{k}@{v}" for k, v in sorted(ack["commands_applied"].items()))
        kill = "kill switch ENGAGED" if ack.get("kill_switch") else "kill switch off"
        click.echo(f"  partition {part}: {taken} ({kill}) on worker {ack['worker']}")
