"""Progress display for long CLI jobs (rich, on stderr)."""

from __future__ import annotations

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
    if not show:
        return replay(paths, fmt, **kwargs)
    total = total_input_bytes(paths)
    with replay_progress() as progress:
        task = progress.add_task("replay", total=total, counts="")
        done = 0

        def on_row(result: ReplayResult, row) -> None:
            nonlocal done
            done += row.nbytes
            if result.rows % 2000 == 0:
                progress.update(task, completed=done, counts=f"{result.rows:,} rows")

        result = replay(paths, fmt, on_row=on_row, **kwargs)
        progress.update(task, completed=total, counts=f"{result.rows:,} rows")
    return result
