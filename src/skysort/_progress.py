"""Progress bars for long work: items done, rate and time left, on standard error."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

_console = Console(stderr=True)


class _RateColumn(ProgressColumn):
    """Items per second (rich's own speed column shows bytes)."""

    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        if speed is None and task.elapsed:
            speed = task.completed / task.elapsed
        return Text(f"   -- {self.unit}/s" if speed is None else f"{speed:8.0f} {self.unit}/s")


@contextlib.contextmanager
def progress_bar(total: int, description: str, unit: str = "obj", enabled: bool = True) -> Iterator[Callable[[int], None]]:
    """Show a bar for ``total`` items; yields ``advance(n)`` to report ``n`` more items done."""
    if not enabled:
        yield lambda n: None
        return
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _RateColumn(unit),
        TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    )
    progress = Progress(*columns, console=_console, transient=False)
    refresher = None
    try:
        with progress:
            task = progress.add_task(description, total=total)
            refresher = getattr(progress.live, "_refresh_thread", None)
            try:
                yield lambda n: progress.advance(task, n)
            except BaseException:
                # A failed command ends with its one error line, not a half-filled bar above it.
                progress.update(task, visible=False)
                if not _console.is_terminal:
                    # A log file would get the hidden bar's final render, a blank line.
                    _console.quiet = True  # restored below, once the bar has stopped
                raise
    finally:
        _console.quiet = False
        # rich stops its refresh thread without waiting for it; a command that fails just after
        # starting a bar would then exit with that thread still running, which aborts the
        # interpreter now and then (exit status 134 instead of the error line's 2).
        if refresher is not None:
            refresher.join(timeout=5.0)
