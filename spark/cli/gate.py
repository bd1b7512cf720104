"""``spark gate``: operator commands to the drift gates."""

from __future__ import annotations

import click

from spark.cli.app import CONTEXT, cli
from spark.commands import send_command


@cli.group(context_settings=CONTEXT)
def gate() -> None:
    """Open or close a symbol's drift gate by hand (workers apply it within a second)."""


def _gate_command(action: str, symbol: str, reason: str, operator: str | None) -> None:
    from spark.ticks.model import SYMBOL

    symbol = symbol.upper()
    if not SYMBOL.match(symbol):
        raise click.BadParameter(f"{symbol!r} is not a symbol", param_hint="SYMBOL")
    fields = {"symbol": symbol, "action": action, "reason": reason}
    send_command("gate_commands", fields, operator, symbol.encode())
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
