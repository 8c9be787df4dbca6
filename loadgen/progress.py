"""Progress of a seed on stderr (``chatbench.output``): live on a terminal, plain lines in a log, or nothing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from types import TracebackType

from chatbench import output
from chatbench.faults import checkpoint
from chatbench.output import Stage


class Reporter:
    """Times phases (always) and shows them as one stage (when enabled); ``timings`` holds seconds per phase."""

    def __init__(self, enabled: bool, what: str = "seed") -> None:
        self.timings: dict[str, float] = {}
        self._stages = contextlib.ExitStack()
        self._enabled, self._what = enabled, what
        self._progress: Stage | None = None

    def __enter__(self) -> Reporter:
        if self._enabled:
            self._progress = self._stages.enter_context(output.stderr().stage(self._what))
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._progress = None
        self._stages.__exit__(kind, value, traceback)

    @contextlib.contextmanager
    def phase(self, name: str, total: int | None = None) -> Iterator[_PhaseHandle]:
        if self._progress is not None:
            self._progress.step(name)
            self._progress.reset(total, "rows")
        handle = _PhaseHandle(self._progress, name)
        checkpoint(f"seed.{name}")
        started = time.perf_counter()
        try:
            yield handle
        finally:
            self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - started


class _PhaseHandle:
    def __init__(self, progress: Stage | None, name: str = "") -> None:
        self._progress = progress
        self._name = name

    def advance(self, rows: int) -> None:
        checkpoint(f"seed.{self._name}.rows")
        if self._progress is not None:
            self._progress.advance(rows)
