"""The people's side of a sign-off: progress while stages run, a line per stage, the final table.

Only presentation lives here, so the pipeline never formats and the reports never depend on rich.
Everything goes through ``chatbench.output``: live progress and tables on a terminal, whole plain
lines in a CI log (a stage's start and end, "still running" lines at a sane rate, one line per stage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chatbench.output import Output, Stage
from chatbench.reports.signoff import Signoff, StageTiming

_STYLE: Mapping[str, str] = {"ok": "", "failed": "red", "inconclusive": "yellow", "error": "yellow",
                             "skipped": "dim"}
_VERDICT_STYLE: Mapping[str, str] = {"PASS": "bold green", "FAIL": "bold red", "INCONCLUSIVE": "bold yellow",
                                     "ERROR": "bold yellow"}


class Display:
    """One line per finished stage, live progress while stages run."""

    ICON: Mapping[str, str] = {"ok": "✓", "failed": "✗", "inconclusive": "?", "error": "!", "skipped": "-"}
    ICON_STYLE: Mapping[str, str] = {"ok": "green", "failed": "red", "inconclusive": "yellow", "error": "yellow",
                                     "skipped": "dim"}

    def __init__(self, out: Output, *, show_label: bool = False) -> None:
        self.out = out
        self.show_label = show_label

    @property
    def console(self) -> Console:
        """The console underneath (for a rule between servers, a traceback)."""
        return self.out.console

    def note(self, message: str) -> None:
        self.out.note(message)

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        """A stage in progress; yields the callback that says what it is doing now."""
        with self.out.stage(message) as stage:
            yield stage.step

    def stage(self, message: str, *, total: int | None = None, unit: str = "") -> contextlib.AbstractContextManager[
            Stage]:
        """A stage in progress that counts (``Stage.advance``), e.g. benchmark scenarios."""
        return self.out.stage(message, total=total, unit=unit)

    def stage_done(self, label: str, timing: StageTiming) -> None:
        self.out.line(Text.assemble(
            "  ", (self.ICON[timing.status], self.ICON_STYLE[timing.status]), f" {timing.stage:<11} ",
            f"{timing.seconds:7.2f} s  ", (timing.detail, "dim"),
            (f"  ({label})" if label and self.show_label else "", "dim"),
        ))


def summary_table(signoff: Signoff) -> Table:
    """Seconds per stage (one column per server) and the verdicts: printed at the end of every run."""
    table = Table(title=f"chatbench sign-off: {signoff.verdict}", title_justify="left")
    table.add_column("stage", no_wrap=True)
    for target in signoff.targets:
        table.add_column(target.label, justify="right", no_wrap=True)
    for name in _stage_names(signoff):
        cells = []
        for target in signoff.targets:
            timing = target.stage(name)
            cells.append(Text("") if timing is None else Text(_seconds(timing), _STYLE[timing.status]))
        table.add_row(name, *cells)
    table.add_section()
    table.add_row(Text("total", "bold"), *[Text(f"{t.seconds:.2f} s", "bold") for t in signoff.targets])
    table.add_row(Text("verdict", "bold"), *[Text(t.verdict, _VERDICT_STYLE[t.verdict]) for t in signoff.targets])
    return table


def summary_lines(signoff: Signoff) -> list[Text]:
    """The summary table in a log: one line per stage (every server on it), then each server's total and verdict."""
    several = len(signoff.targets) > 1
    lines = []
    for name in _stage_names(signoff):
        cells = []
        for target in signoff.targets:
            timing = target.stage(name)
            if timing is not None:
                cells.append(_seconds(timing) + (f" ({target.label})" if several else ""))
        lines.append(Text(f"stage {name}: {', '.join(cells)}"))
    for target in signoff.targets:
        lines.append(Text.assemble(f"total {target.seconds:.2f} s, verdict ", (target.verdict,
                                   _VERDICT_STYLE[target.verdict]), f" ({target.label})"))
    return lines


def show_summary(signoff: Signoff, out: Output) -> None:
    out.table(summary_table(signoff), summary_lines(signoff))


def _stage_names(signoff: Signoff) -> list[str]:
    names: list[str] = []
    for target in signoff.targets:
        names += [s.stage for s in target.stages if s.stage not in names]
    return names


def _seconds(timing: StageTiming) -> str:
    mark = {"ok": "", "failed": " ✗", "inconclusive": " ?", "error": " !", "skipped": " –"}[timing.status]
    return f"{timing.seconds:.2f} s{mark}"
