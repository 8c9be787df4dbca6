"""``rehearsal.md``: the migration rehearsal as a PR comment or a CI step summary.

``section`` is the rehearsal's evidence without the title around it: ``rehearsal.md`` is that section
under its title, and a sign-off with ``--migration`` carries the same section in ``signoff.md``.
"""

from __future__ import annotations

from chatbench.rehearse.result import Rehearsal
from chatbench.reports.rehearsal_tables import (
    FINDING_SECTIONS,
    Table,
    context,
    estimates,
    phases,
    sizes,
    statements,
    wal,
)

ICON = {"PASS": "✅", "WARN": "⚠️", "FAIL": "❌", "ERROR": "⛔"}


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(table: Table) -> list[str]:
    header, rows = table
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*lines, ""]


def section(r: Rehearsal, level: int = 2) -> list[str]:
    """The rehearsal's evidence as lines, its headings at ``level``: what ran, findings, tables, notes."""
    h = "#" * level
    size = r.measured
    lines = [f"- migration: `{r.migration}`", f"- before-schema: {r.before}",
             f"- server: PostgreSQL {r.server.get('version', '?')} ({r.server.get('backend', '?')})",
             f"- app load: {size.load}", f"- budgets: {r.budgets_source} [rehearsal]", ""]
    for title, severity, fix in FINDING_SECTIONS:
        items = [f for f in r.findings if f.severity == severity]
        if items:
            lines += [f"{h} {title}", ""]
            lines += [f"- **{f.rule}** ({'statement ' + str(f.statement) if f.statement else 'migration'}): "
                      f"{f.evidence}  \n  *{fix}*: {f.rewrite}" for f in items]
            lines.append("")
    lines += [f"{h} Statements at {size.messages:,} messages ({size.profile})", "", *_table(statements(size))]
    if r.estimates:
        lines += [f"{h} Blocking time extrapolated to {r.production_messages:,} messages", "",
                  "An extrapolation, not a measurement: linear in the number of messages through the two measured "
                  "sizes for statements whose work grows with the table, constant for metadata-only ones.", ""]
        lines += _table(estimates(r))
    if r.wal_estimates:
        lines += [f"{h} WAL per statement, extrapolated to {r.production_messages:,} messages", "",
                  "The LSN difference around each statement (the app's appends write a little of it), extrapolated "
                  "like blocking time; replica lag is that WAL at the replica's apply rate.", ""]
        lines += _table(wal(r))
    surroundings = [line for s in r.sizes for line in context(s)]
    if surroundings:
        lines += [f"{h} Long transaction, WAL and residue", ""] + [f"- {line}" for line in surroundings] + [""]
    lines += [f"{h} The app before, during and after the migration", "", *_table(phases(size))]
    lines += [f"{h} Sizes measured", "", *_table(sizes(r))]
    for s in r.sizes:
        if s.app_errors:
            lines += [f"{h} Errors the app saw at {s.messages:,} messages (first {len(s.app_errors)})", ""]
            lines += [f"- `{error}`" for error in s.app_errors] + [""]
    lines += [f"{h} Verification of the migrated schema", ""]
    if r.verification is not None:
        lines.append("passed" if r.verification.passed else f"failed: {len(r.verification.errors)} error(s)")
        lines += [f"- {f.message()}" for f in r.verification.errors]
    elif r.verified_by:
        lines.append(f"by {r.verified_by}")
    else:
        lines.append("not run (the migration did not complete)")
    lines.append("")
    if r.notes:
        lines += [f"{h} Notes", ""] + [f"- {n}" for n in r.notes] + [""]
    return lines


def render_rehearsal(r: Rehearsal) -> str:
    lines = [f"# {ICON.get(r.verdict, '')} Migration rehearsal: {r.verdict}", "", r.headline(), "", *section(r)]
    if r.command:
        lines += [f"`{r.command}`", ""]
    return "\n".join(lines)
