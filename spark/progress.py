"""Progress display for long CLI jobs (rich, on stderr)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from spark.ticks.replay import ReplayResult, replay, total_input_bytes


def replay_progress(console: Console | None = None) -> Progress:
    return Progress(
        TextColumn("[bold]replay[/]"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[counts]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        transient=False,
    )


def replay_with_progress(paths: list[Path], fmt: str, *, show: bool, **kwargs) -> ReplayResult:
    """``replay`` with a progress bar over the input bytes when ``show``."""
    with row_progress(paths, show, "replay") as advance:
        return replay(paths, fmt, on_row=lambda _result, row: advance(row), **kwargs)


@contextmanager
def row_progress(paths: list[Path], show: bool, label: str) -> Iterator:
    """A progress bar over the input bytes of ``paths``; yields ``advance(row)``."""
    if not show:
        yield lambda _row: None
        return
    total = total_input_bytes(paths)
    progress = replay_progress()
    progress.columns[0].text_format = f"[bold]{label}[/]"
    with progress:
        task = progress.add_task(label, total=total, counts="")
        state = {"bytes": 0, "rows": 0}

        def advance(row) -> None:
            state["bytes"] += row.nbytes
            state["rows"] += 1
            if state["rows"] % 2000 == 0:
                progress.update(task, completed=state["bytes"], counts=f"{state['rows']:,} rows")

        yield advance
        progress.update(task, completed=total, counts=f"{state['rows']:,} rows")


@contextmanager
def tick_progress(total: int, show: bool, label: str, unit: str = "ticks") -> Iterator:
    """A progress bar over ``total`` ticks (or other ``unit``); yields ``advance(done)``."""
    if not show:
        yield lambda _done: None
        return
    progress = Progress(
        TextColumn(f"[bold]{label}[/]"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.completed:,.0f} " + unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=False,
    )
    with progress:
        task = progress.add_task(label, total=total)
        yield lambda done: progress.update(task, completed=done)
        progress.update(task, completed=total)


@contextmanager
def spinner(label: str, show: bool | None = None) -> Iterator:
    """A spinner with elapsed time on stderr while waiting (only on a terminal by default);
    yields ``tick(note=None)`` to call while waiting (``note``: shown after the label)."""
    import sys

    if not (sys.stderr.isatty() if show is None else show):
        yield lambda note=None: None
        return
    from rich.progress import SpinnerColumn, TextColumn, TimeElapsedColumn

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task(label, total=None)
        yield lambda note=None: progress.update(
            task, description=f"{label} ({note})" if note else label
        )


@contextmanager
def progress_once_known(show: bool, label: str, unit: str = "ticks") -> Iterator:
    """A progress bar whose total is known only at the first report: yields
    ``advance(done, total)``; the bar appears then and is closed on exit."""
    state: dict = {}

    def advance(done: int, total: int) -> None:
        if "bar" not in state:
            state["bar"] = tick_progress(total, show, label=label, unit=unit)
            state["advance"] = state["bar"].__enter__()
        state["advance"](done)

    try:
        yield advance
    finally:
        if "bar" in state:
            state["bar"].__exit__(None, None, None)
