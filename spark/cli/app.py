"""The ``spark`` command group and how it turns failures into one line.

Every failure a user can act on is one line on stderr and a non-zero exit;
``--debug`` shows the traceback.
"""

from __future__ import annotations

import json
import sys

import click

from spark.errors import SparkError

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


def print_json(obj) -> None:
    click.echo(json.dumps(obj, default=str))
