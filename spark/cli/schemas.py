"""``spark schemas``: check, release and list the Avro contracts."""

from __future__ import annotations

import sys

import click

from spark.cli.app import CONTEXT, cli
from spark.errors import SparkError


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
