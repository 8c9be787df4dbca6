"""Recording one server's stages and checks as they happen.

Every stage goes through ``Recorder.stage`` so timing, the ok/failed/error distinction and the
"a stage that cannot run stops this server" rule are decided in one place.
"""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field

import psycopg

from chatbench.errors import ChatbenchError, redact
from chatbench.faults import checkpoint
from chatbench.reports.signoff import CheckItem, Severity, StageStatus, StageTiming
from chatbench.signoff.display import Display


class StageError(Exception):
    """A stage could not run: the target stops here (recorded; teardown still runs)."""


@dataclass
class StageNote:
    """What a running stage says about itself: its one-line detail and its status (ok unless it set one)."""

    detail: str = ""
    status: StageStatus = "ok"


@dataclass
class Recorder:
    """Collects one target's stages and checks as they happen (mutable; frozen into TargetSignoff)."""

    display: Display
    label: str = ""
    stages: list[StageTiming] = field(default_factory=list)
    checks: list[CheckItem] = field(default_factory=list)
    error: str | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[StageNote]:
        """Time a stage. The body may set ``note.detail`` and ``note.status`` (default ok)."""
        note = StageNote()
        started = time.perf_counter()
        try:
            checkpoint(f"signoff.{name}")
            yield note
        except (KeyboardInterrupt, SystemExit):
            self.add(StageTiming(name, time.perf_counter() - started, "error", "interrupted"))
            raise
        except Exception as exc:
            raise self.failed(name, time.perf_counter() - started, exc) from exc
        self.add(StageTiming(name, time.perf_counter() - started, note.status, note.detail))

    def failed(self, name: str, seconds: float, exc: Exception) -> StageError:
        """Record a stage that could not run; the caller raises the returned error to stop the target."""
        message = one_line(exc)
        if not isinstance(exc, ChatbenchError | psycopg.Error):
            self.display.console.print(f"[red]{name}: unexpected error (a bug); traceback follows[/red]")
            self.display.console.print(redact(traceback.format_exc()))
        self.add(StageTiming(name, seconds, "error", message))
        self.error = f"{name}: {message}"
        return StageError(message)

    def add(self, timing: StageTiming) -> None:
        self.stages.append(timing)
        self.display.stage_done(self.label, timing)

    def check(self, stage: str, name: str, passed: bool, message: str, severity: Severity = "error") -> None:
        self.checks.append(CheckItem(stage, name, "passed" if passed else "failed", redact(message), severity))

    def skipped(self, stage: str, name: str, message: str) -> None:
        """An item not run by design, with why (a canonical query on a schema whose roles the map renames):
        neither a failure nor a pass."""
        self.checks.append(CheckItem(stage, name, "skipped", redact(message), "info"))

    def undecided(self, stage: str, name: str, message: str) -> None:
        """An item that ran but that the measured noise left undecided (INCONCLUSIVE, not a failure)."""
        self.checks.append(CheckItem(stage, name, "inconclusive", redact(message)))

    def status_of(self, stage: str) -> StageStatus:
        mine = [c for c in self.checks if c.stage == stage]
        if any(c.failing for c in mine):
            return "failed"
        return "inconclusive" if any(c.undecided for c in mine) else "ok"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not isinstance(exc, ChatbenchError):
        text = f"{type(exc).__name__}: {text}"
    return redact(text)
