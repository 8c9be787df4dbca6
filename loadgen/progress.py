"""Progress of a seed on stderr: one line per phase and a rows/s bar for the COPY (or nothing)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class _RowsPerSecond(ProgressColumn):
    """Rows, and rows/s, for phases that move rows; nothing for the others."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        if not task.fields.get("rows") or not elapsed or not task.completed:
            return Text("")
        return Text(f"{task.completed:,.0f} rows  {task.completed / elapsed:,.0f} rows/s", style="cyan")


class Reporter:
    """Times phases (always) and shows them (when enabled); ``timings`` holds seconds per phase."""

    def __init__(self, enabled: bool, console: Console | None = None) -> None:
        self.timings: dict[str, float] = {}
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description:<16}"), BarColumn(),
                _RowsPerSecond(), TimeElapsedColumn(),
                console=console or Console(stderr=True, highlight=False), transient=False,
            )

    def __enter__(self) -> Reporter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    @contextlib.contextmanager
    def phase(self, name: str, total: int | None = None) -> Iterator[_PhaseHandle]:
        task = (
            self._progress.add_task(name, total=total or 1, rows=total is not None)
            if self._progress is not None else None
        )
        handle = _PhaseHandle(self._progress, task)
        started = time.perf_counter()
        finished = False
        try:
            yield handle
            finished = True
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started
            if self._progress is not None and task is not None:
                if finished:  # an interrupted phase keeps the count it reached
                    self._progress.update(task, completed=total or 1)
                self._progress.stop_task(task)


class _PhaseHandle:
    def __init__(self, progress: Progress | None, task: object) -> None:
        self._progress = progress
        self._task = task

    def advance(self, rows: int) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, rows)  # type: ignore[arg-type]
