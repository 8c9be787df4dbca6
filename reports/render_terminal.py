"""A comparison for people (``chatbench compare``): the verdict first, then one row per scenario.

Through ``chatbench.output``: a terminal gets a rich table at its real width; a pipe (a CI log) gets one
finding per line with whole identifiers, no wrapping and no table rules, so ``grep`` finds a scenario
and its reason on one line.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from chatbench.output import Output
from chatbench.reports.compare import JUDGED, STATUS_ORDER, Comparison, ScenarioComparison

_STYLE = {
    "regressed": "bold red",
    "error": "bold yellow",
    "inconclusive": "yellow",
    "changed": "dim",
    "missing": "dim",
    "new": "dim",
    "improved": "green",
    "unchanged": "",
}
_VERDICT_STYLE = {"REGRESSION": "bold red", "COULD NOT COMPARE": "bold yellow", "INCONCLUSIVE": "bold yellow",
                  "NO REGRESSION": "bold green"}


def render_comparison(comparison: Comparison, out: Output, *, title: str) -> None:
    """Print ``comparison`` on ``out``: a table on a terminal, plain lines on a pipe."""
    items = sorted(comparison.all_items, key=lambda item: STATUS_ORDER.index(item.status))
    out.line(f"{title}: {comparison.verdict}", style=_VERDICT_STYLE[comparison.verdict])
    out.line(comparison.conclusion())
    for difference in comparison.environment:
        out.line(f"environment: {difference.describe()}")
    out.table(_table(items), [Text(item.line(), _STYLE[item.status]) for item in items])
    for note in comparison.notes:
        out.note(f"note: {note}")


def _table(items: list[ScenarioComparison]) -> Table:
    table = Table(show_lines=False, title_justify="left")
    table.add_column("status", no_wrap=True)
    table.add_column("scenario", no_wrap=True)
    table.add_column("p10 change [95% CI] (judged)", justify="right", no_wrap=True)
    table.add_column("p50 change", justify="right", no_wrap=True)
    table.add_column("why")
    for item in items:
        fast, p50 = item.change(JUDGED), item.change("p50")
        table.add_row(
            Text(item.status, _STYLE[item.status]),
            item.scenario,
            "–" if fast is None else f"{fast.change:+.1%} [{fast.ci_low - 1:+.0%}, {fast.ci_high - 1:+.0%}]",
            "–" if p50 is None else f"{p50.change:+.1%}",
            item.reason,
        )
    return table
