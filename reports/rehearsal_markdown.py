"""``rehearsal.md``: the migration rehearsal as a PR comment or a CI step summary."""

from __future__ import annotations

from chatbench.rehearse.result import Rehearsal
from chatbench.reports.rehearsal_tables import Table, estimates, phases, sizes, statements

ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def render_rehearsal(r: Rehearsal) -> str:
    size = r.measured
    lines = [f"# {ICON.get(r.verdict, '')} Migration rehearsal: {r.verdict}", "", r.headline(), "",
             f"- migration: `{r.migration}`", f"- before-schema: {r.before}",
             f"- server: PostgreSQL {r.server.get('version', '?')} ({r.server.get('backend', '?')})",
             f"- app load: {size.load}", f"- budgets: {r.budgets_source} [rehearsal]", ""]
    failing = [f for f in r.findings if f.severity == "FAIL"]
    warnings = [f for f in r.findings if f.severity == "WARN"]
    for title, items in (("Failing", failing), ("Warnings", warnings)):
        if items:
            lines += [f"## {title}", ""]
            lines += [f"- **{f.rule}** ({'statement ' + str(f.statement) if f.statement else 'migration'}): "
                      f"{f.evidence}  \n  *safe rewrite*: {f.rewrite}" for f in items]
            lines.append("")
    lines += [f"## Statements at {size.messages:,} messages ({size.profile})", "", *_table(statements(size))]
    if r.estimates:
        lines += [f"## Blocking time extrapolated to {r.production_messages:,} messages", "",
                  "An extrapolation, not a measurement: linear in the number of messages through the two measured "
                  "sizes for statements whose work grows with the table, constant for metadata-only ones.", ""]
        lines += _table(estimates(r))
    lines += ["## The app before, during and after the migration", "", *_table(phases(size))]
    lines += ["## Sizes measured", "", *_table(sizes(r))]
    lines += ["## Verification of the migrated schema", ""]
    if r.verification is None:
        lines.append("not run (the migration did not complete)")
    else:
        lines.append("passed" if r.verification.passed else f"failed: {len(r.verification.errors)} error(s)")
        lines += [f"- {f.message()}" for f in r.verification.errors]
    lines.append("")
    if r.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    if r.command:
        lines += [f"`{r.command}`", ""]
    return "\n".join(lines)
