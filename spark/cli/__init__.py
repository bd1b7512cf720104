"""``spark``: run the platform, move ticks, look inside topics.

One module per command group; each turns options into a call of the library and its
result into lines or JSON, nothing more. Every failure a user can act on is one line on
stderr and a non-zero exit; ``--debug`` shows the traceback (``spark.cli.app``).
"""

from __future__ import annotations

from spark.cli import (  # noqa: F401 - importing a module registers its commands
    backtest,
    broker,
    consume,
    drift,
    export,
    gate,
    job,
    model,
    optimize,
    research,
    risk,
    run,
    schemas,
    ticks,
    topics,
)
from spark.cli.app import cli


def main() -> None:
    cli(prog_name="spark")


__all__ = ["cli", "main"]
