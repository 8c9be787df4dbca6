"""How chatbench talks to people: the one output helper every command, stage and suite goes through.

A terminal gets rich tables at its real width and live progress (a spinner, a bar, the time). Anything
else (a CI log, a pipe, a file) gets whole lines: one finding per line with every identifier in full
(never wrapped, never truncated, no table rules, no colour codes) and plain progress lines at a sane
rate: one when a long stage starts, one when it ends, and in between at most one
``WHAT: still running: STEP, DONE/TOTAL UNIT, N s`` line per ``progress_seconds`` (a machine setting,
``CHATBENCH_PROGRESS_SECONDS``), so a log shows that a ten-minute seed is alive without thousands of
lines. A table that would not fit a narrow terminal whole is printed as lines there too.

Why here, in the base layer: loadgen's seed progress, verify's report, the benchmark table, the
comparison and the sign-off display all print, and all must follow the same rule; the stages below
the commands cannot import the commands.

``--format json`` (the ``format`` setting) is the commands' business: the result document goes to
stdout through ``print_document``, and everything people read stays on stderr.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.measure import Measurement
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from chatbench.errors import redact
from chatbench.settings import current

__all__ = ["Output", "Stage", "print_document", "stderr", "stdout"]


class _Console(Console):
    """A rich console that never wraps a line it writes to a pipe (a terminal still wraps between words).

    Every ``print`` through it follows the rule, including those of code that holds the console itself
    (a traceback, a rule between servers), not only those that go through ``Output``.
    """

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        super().print(*objects, soft_wrap=not self.is_terminal if soft_wrap is None else soft_wrap, **kwargs)


def console_for(*, stderr: bool = False, file: IO[str] | None = None, terminal: bool | None = None,
                width: int | None = None) -> Console:
    """A console on the process's stderr or stdout (looked up at each write, so redirections hold), or on
    ``file``; ``terminal`` and ``width`` say what it is when the caller knows better (pytest's terminal)."""
    return _Console(stderr=stderr, file=file, force_terminal=terminal, width=width, highlight=False)


def _fits(console: Console, table: Table) -> bool:
    """Whether ``table`` fits ``console``'s width without splitting a word or truncating a cell."""
    needed = Measurement.get(console, console.options.update_width(100_000), table).minimum
    return needed <= console.width


@dataclass
class _StageState:
    what: str
    started: float
    step: str = ""
    done: int = 0
    total: int | None = None
    unit: str = ""
    task: TaskID | None = None

    def far(self) -> str:
        if self.total is None:
            return ""
        return f"{self.done:,}/{self.total:,}" + (f" {self.unit}" if self.unit else "")


class Output:
    """One stream people read: rich on a terminal, whole plain lines anywhere else.

    ``progress_seconds``: the least time between two progress lines on a pipe (None: the
    ``progress_seconds`` setting, read when the first stage starts).
    """

    def __init__(self, console: Console, *, progress_seconds: float | None = None) -> None:
        self.console = console
        self._progress_seconds = progress_seconds
        self._lock = threading.RLock()
        self._stages: list[_StageState] = []
        self._live: Progress | None = None
        self._ticker: threading.Thread | None = None
        self._ticker_stop = threading.Event()
        self._last_line = 0.0

    @property
    def terminal(self) -> bool:
        return self.console.is_terminal

    @property
    def progress_seconds(self) -> float:
        if self._progress_seconds is None:
            self._progress_seconds = float(current("progress_seconds"))
        return self._progress_seconds

    # -- lines -----------------------------------------------------------------------------------

    def line(self, text: str | Text = "", *, style: str = "") -> None:
        """One line, as given: never read as markup, never wrapped on a pipe."""
        shown = text if isinstance(text, Text) else Text(text, style=style)
        with self._lock:
            self.console.print(shown, soft_wrap=not self.terminal, highlight=False)
            self._last_line = time.monotonic()

    def note(self, text: str) -> None:
        """A line of lesser importance (dim on a terminal)."""
        self.line(text, style="dim")

    def table(self, table: Table, lines: Iterable[str | Text]) -> None:
        """``table`` where it fits the terminal whole; otherwise (a pipe, a narrow terminal) ``lines``,
        one per row, each carrying its row's identifiers in full."""
        if self.terminal and _fits(self.console, table):
            with self._lock:
                self.console.print(table)
            return
        for line in lines:
            self.line(line)

    def rule(self, title: str) -> None:
        """A separator between parts of a run (a line of its own with the title whole, on a pipe)."""
        if self.terminal:
            self.console.rule(title)
        else:
            self.line(f"== {title} ==")

    # -- progress --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def stage(self, what: str, *, total: int | None = None, unit: str = "", ticker: bool = True) -> Iterator[Stage]:
        """A long stage: live on a terminal; on a pipe a line when it starts and ends and, in between, at
        most one "still running" line per ``progress_seconds`` (from a timer while nothing else is
        printed, so a long silent step shows too; ``ticker=False`` only on a step, for callers whose
        stream is captured between steps, such as a pytest run)."""
        state = _StageState(what, time.monotonic(), total=total, unit=unit)
        self._open(state, ticker=ticker)
        outcome = "failed"
        try:
            yield Stage(self, state)
            outcome = "done"
        except KeyboardInterrupt:
            outcome = "interrupted"
            raise
        finally:
            self._close(state, outcome)

    def _open(self, state: _StageState, *, ticker: bool) -> None:
        with self._lock:
            self._stages.append(state)
            if self.terminal:
                if self._live is None:
                    self._live = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                          TextColumn("{task.fields[far]}"), TimeElapsedColumn(),
                                          console=self.console, transient=True)
                    self._live.start()
                state.task = self._live.add_task(state.what, total=state.total, far=state.far())
                return
            self.line(f"{state.what}: started" + (f" ({state.far()})" if state.total is not None else ""))
            if ticker and self._ticker is None:
                self._ticker_stop.clear()
                self._ticker = threading.Thread(target=self._tick, name="chatbench-progress", daemon=True)
                self._ticker.start()

    def _close(self, state: _StageState, outcome: str) -> None:
        with self._lock:
            self._stages.remove(state)
            if self._live is not None and state.task is not None:
                self._live.remove_task(state.task)
                if not self._stages:
                    self._live.stop()
                    self._live = None
            elif not self.terminal:
                seconds = time.monotonic() - state.started
                verb = {"done": "done in", "failed": "stopped after", "interrupted": "interrupted after"}[outcome]
                self.line(f"{state.what}: {verb} {seconds:.1f} s")
            ticker = self._ticker if not self._stages else None
            if ticker is not None:
                self._ticker = None
                self._ticker_stop.set()
        if ticker is not None and ticker is not threading.current_thread():
            ticker.join(timeout=1)

    def _update(self, state: _StageState, *, step_changed: bool) -> None:
        with self._lock:
            if self._live is not None and state.task is not None:
                description = f"{state.what}: {state.step}" if state.step else state.what
                self._live.update(state.task, description=description, total=state.total,
                                  completed=state.done, far=state.far())
            elif step_changed and not self.terminal and self._due():
                self._still_running(state)

    def _due(self) -> bool:
        return time.monotonic() - self._last_line >= self.progress_seconds

    def _still_running(self, state: _StageState) -> None:
        parts = [part for part in (state.step, state.far()) if part]
        parts.append(f"{time.monotonic() - state.started:.0f} s")
        self.line(f"{state.what}: still running: {', '.join(parts)}")

    def _tick(self) -> None:
        interval = self.progress_seconds
        while not self._ticker_stop.wait(min(interval, 0.5)):
            with self._lock:
                if self._stages and self._due():
                    self._still_running(self._stages[-1])


@dataclass
class Stage:
    """A stage in progress, as its code reports it: what it does now and how far it got."""

    output: Output
    state: _StageState = field(repr=False)

    def step(self, text: str) -> None:
        """What the stage is doing now (a callback for the stages' ``progress=`` parameters)."""
        changed = text != self.state.step
        self.state.step = text
        self.output._update(self.state, step_changed=changed)

    def reset(self, total: int | None, unit: str = "") -> None:
        """Count ``unit`` from 0 towards ``total`` (None: no count)."""
        self.state.done, self.state.total, self.state.unit = 0, total, unit
        self.output._update(self.state, step_changed=False)

    def advance(self, amount: int = 1) -> None:
        self.state.done += amount
        self.output._update(self.state, step_changed=False)


_OUTPUTS: dict[str, Output] = {}


def stderr() -> Output:
    """What people read while a command runs: progress, findings, verdicts."""
    return _OUTPUTS.setdefault("stderr", Output(console_for(stderr=True)))


def stdout() -> Output:
    """A command's report, when stdout is where it belongs (``compare``, ``load``)."""
    return _OUTPUTS.setdefault("stdout", Output(console_for(stderr=False)))


def print_document(text: str) -> None:
    """A result document (``--format json``) on stdout, alone, ending with one newline; scrubbed of every
    secret the run knows, like the report files."""
    shown = redact(text)
    sys.stdout.write(shown if shown.endswith("\n") else shown + "\n")
    sys.stdout.flush()
