"""The terminal side of a sign-off: progress while stages run, a line per stage, the final table.

Only presentation lives here, so the pipeline never formats and the reports never depend on rich.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from chatbench.reports.signoff import Signoff, StageTiming


class Display:
    """The terminal side: one line per finished stage, spinners and bars while stages run."""

    ICON: Mapping[str, str] = {
        "ok": "[green]✓[/green]",
        "failed": "[red]✗[/red]",
        "inconclusive": "[yellow]?[/yellow]",
        "error": "[yellow]![/yellow]",
        "skipped": "[dim]-[/dim]",
    }

    def __init__(self, console: Console, *, show_label: bool = False) -> None:
        self.console = console
        self.show_label = show_label

    def note(self, message: str) -> None:
        self.console.print(f"[dim]{message}[/dim]")

    @contextlib.contextmanager
    def status(self, message: str) -> Iterator[Callable[[str], None]]:
        with self.console.status(message) as status:
            yield lambda text: status.update(f"{message}: {text}")

    def progress(self) -> Progress:
        return Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )

    def stage_done(self, label: str, timing: StageTiming) -> None:
        self.console.print(
            f"  {self.ICON[timing.status]} {timing.stage:<11} {timing.seconds:7.2f} s  "
            f"[dim]{timing.detail}[/dim]" + (f"  [dim]({label})[/dim]" if label and self.show_label else "")
        )


def summary_table(signoff: Signoff) -> Table:
    """Seconds per stage (one column per server) and the verdicts: printed at the end of every run."""
    table = Table(title=f"chatbench sign-off: {signoff.verdict}", title_justify="left")
    table.add_column("stage")
    for target in signoff.targets:
        table.add_column(target.label, justify="right")
    names: list[str] = []
    for target in signoff.targets:
        names += [s.stage for s in target.stages if s.stage not in names]
    style = {"ok": "", "failed": "red", "inconclusive": "yellow", "error": "yellow", "skipped": "dim"}
    for name in names:
        cells = []
        for target in signoff.targets:
            timing = target.stage(name)
            if timing is None:
                cells.append("")
            else:
                mark = {"ok": "", "failed": " ✗", "inconclusive": " ?", "error": " !", "skipped": " –"}[timing.status]
                text = f"{timing.seconds:.2f} s{mark}"
                cells.append(f"[{style[timing.status]}]{text}[/]" if style[timing.status] else text)
        table.add_row(name, *cells)
    table.add_section()
    table.add_row("[b]total[/b]", *[f"[b]{t.seconds:.2f} s[/b]" for t in signoff.targets])
    colors = {"PASS": "green", "FAIL": "red", "INCONCLUSIVE": "yellow", "ERROR": "yellow"}
    table.add_row("[b]verdict[/b]", *[f"[b {colors[t.verdict]}]{t.verdict}[/]" for t in signoff.targets])
    return table
