"""``spark research``: the selection protocol of the defaults (docs/policy.md)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from spark.cli.app import CONTEXT, cli, print_json
from spark.cli.common import HorizonType


@cli.group(context_settings=CONTEXT)
def research() -> None:
    """Research at scale on recorded days: how the shipped defaults were chosen."""


def _emit(page: str, figures: dict, output, pdf, write_pdf, as_json: bool) -> None:
    """A research report: Markdown to ``output``, a PDF to ``pdf``, and on stdout the JSON
    figures or the Markdown."""
    if output is not None:
        output.write_text(page)
    if pdf is not None:
        write_pdf(pdf)
    if as_json:
        print_json(figures)
    else:
        click.echo(page, nl=False)


@research.command("select")
@click.option(
    "--data",
    "root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Folder holding fxcm/{eurusd,nzdusd}/ and equity/{bac,aig,ibm}/ LEAN quote "
    "day-files (the layout of ../shared/data).",
)
@click.option(
    "--max-ticks",
    type=click.IntRange(min=1_000),
    default=None,
    help="Use at most this many ticks of each day-file, from its start (equities: from "
    "09:30 New York). Default: whole day-files (the protocol since run 13; ~42 minutes on 2 "
    "cores; 50000 takes ~8 minutes).",
)
@click.option(
    "--train-share",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.4,
    show_default=True,
    help="Share of each instrument's days (the first ones) the choice is made on.",
)
@click.option(
    "--instrument",
    "instruments",
    multiple=True,
    help="Only these instruments (repeat): EURUSD NZDUSD BAC AIG IBM.",
)
@click.option("--model", "models", multiple=True, help="Only these learners (repeat).")
@click.option(
    "--horizon",
    "horizons",
    type=HorizonType(),
    multiple=True,
    help="Only these horizons (repeat): 1, 60, 300 (seconds), 1move, 2moves.",
)
@click.option(
    "--min-edge", "edges", type=float, multiple=True, help="Only these policies (repeat; 0: band)."
)
@click.option(
    "--fill",
    "fills",
    type=click.Choice(("taker", "passive")),
    multiple=True,
    help="Only these fill models (repeat; docs/costs.md).",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=os.cpu_count() or 1,
    show_default="this machine's cores",
    help="Day-files scored in parallel.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the report as Markdown (e.g. docs/selection.md).",
)
@click.option(
    "--pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the report as a PDF with charts of AUC and net PnL per test day.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the whole selection as JSON.")
@click.option(
    "--save-scores",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write every day-file's figures as JSON, to choose again later with --scores.",
)
@click.option(
    "--scores",
    "saved",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Run nothing: choose and report again from a --save-scores file.",
)
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
)
def research_select(
    root, max_ticks, train_share, instruments, models, horizons, edges, fills, jobs, output, pdf,
    as_json, save_scores, saved, progress,
) -> None:  # fmt: skip
    """Score every candidate (learner x horizon x policy x fill model) on every instrument and
    day-file,
    choose on the train days only, report the choice on the later days: per instrument mean,
    worst and spread of AUC, precision@20 and net PnL, and every candidate's figures."""
    from spark.progress import progress_once_known
    from spark.research.select import CANDIDATES, markdown, run_selection, write_pdf

    candidates = tuple(
        c
        for c in CANDIDATES
        if (not models or c.model in models)
        and (not horizons or c.horizon in horizons)
        and (not edges or c.min_edge in edges)
        and (not fills or c.fill in fills)
    )
    if not candidates:
        raise click.UsageError(
            "no candidate left; learners: logreg gbm, horizons: 1 60 300 1move 2moves, "
            "min edges: 0 1 2 4, fills: taker passive"
        )
    show = sys.stderr.isatty() if progress is None else progress
    with progress_once_known(show, "research select", "day-files") as advance:
        selection = run_selection(
            root,
            max_ticks=max_ticks,
            train_share=train_share,
            candidates=candidates,
            instruments=instruments or None,
            jobs=jobs,
            on_day=advance,
            save_scores=save_scores,
            saved=saved,
        )
    _emit(
        markdown(selection),
        selection.as_dict(),
        output,
        pdf,
        lambda p: write_pdf(selection, p),
        as_json,
    )


def _switch_options(command):
    """The options of the commands that measure switch streams (drift, gate)."""
    options = [
        click.option(
            "--data",
            "root",
            type=click.Path(exists=True, file_okay=False, path_type=Path),
            required=True,
            help="Folder with the protocol's instruments (the layout of ../shared/data).",
        ),
        *(
            click.option(
                f"--{side}",
                type=click.IntRange(min=low),
                default=default,
                show_default=True,
                help=f"Ticks {side} each switch.",
            )
            for side, low, default in (("before", 1_000, 50_000), ("after", 100, 20_000))
        ),
        click.option(
            "--jobs",
            type=click.IntRange(min=1),
            default=os.cpu_count() or 1,
            show_default="this machine's cores",
            help="Streams measured in parallel.",
        ),
        click.option(
            "--instrument",
            "instruments",
            multiple=True,
            help="Only these instruments (repeat): EURUSD NZDUSD BAC AIG IBM.",
        ),
        click.option(
            "--output",
            type=click.Path(dir_okay=False, path_type=Path),
            help="Write the report as Markdown.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON."),
        click.option(
            "--progress/--no-progress", default=None, help="Progress bar (default: on a terminal)."
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _over_streams(label, run, progress, root, before, after, jobs, instruments) -> dict:
    """``run`` (``run_matrix``, ``run_gate_effect``) over the switch streams, with a
    progress bar over them on a terminal."""
    from spark.progress import progress_once_known

    show = sys.stderr.isatty() if progress is None else progress
    with progress_once_known(show, f"research {label}", "streams") as advance:
        return run(
            root,
            before=before,
            after=after,
            jobs=jobs,
            instruments=instruments or None,
            on_stream=advance,
        )


@research.command("drift")
@_switch_options
@click.option(
    "--pdf",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write a PDF with the best detectors' delays per stream as charts.",
)
@click.option(
    "--day-ticks",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Ticks of each day-file for the whole-day false-alarm check (0: the whole day).",
)
@click.option(
    "--profile/--no-profile",
    default=True,
    show_default=True,
    help="Also the gate rule with its profile part on the test streams, the profile built "
    "from each instrument's day-files before the test day (what `spark drift profile` "
    "writes), and on every whole day-file with two earlier ones, against their profile; "
    "and, as for an instrument never seen, with only its kind of market's entry learnt on "
    "the other instruments of its kind (`spark drift profile --kind`).",
)
def research_drift(
    root, before, after, jobs, instruments, output, pdf, day_ticks, profile, as_json, progress
) -> None:
    """Every drift detector on every ordered pair of instruments (A then B in one stream,
    as read and at the same price level) and on synthetic switches of real days
    (volatility x3, spread x3, a drifting mid, a frozen feed): delay after the switch and
    false alarms per 100k ticks before it; rules ranked on the train streams (each
    instrument's first day), reported on the test streams (its last day); and the shipped
    gate rule's alarms on every whole real day-file. With a profile (the default) the test
    streams and the whole day-files also run the gate rule with its profile part, the
    profile of the instrument's earlier day-files (docs/drift.md, sessions 27-29), and with
    only its kind of market's entry, as for an instrument never seen (session 30)."""
    from functools import partial

    from spark.research.drift import markdown, run_matrix, write_pdf

    run = partial(run_matrix, day_ticks=day_ticks, profile=profile)
    matrix = _over_streams("drift", run, progress, root, before, after, jobs, instruments)
    _emit(markdown(matrix), matrix, output, pdf, lambda p: write_pdf(matrix, p), as_json)


@research.command("gate")
@_switch_options
def research_gate(root, before, after, jobs, instruments, output, as_json, progress) -> None:
    """The shipped drift gate's effect on PnL: every test-day stream of `spark research
    drift` (instrument pairs, synthetic switches) backtested with the gate and without,
    under the cost-aware default policy and the band policy (docs/gate-effect.md)."""
    from spark.research.gate import markdown, run_gate_effect

    figures = _over_streams(
        "gate", run_gate_effect, progress, root, before, after, jobs, instruments
    )
    _emit(markdown(figures), figures, output, None, None, as_json)
