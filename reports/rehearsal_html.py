"""``rehearsal.html``: the rehearsal as one self-contained page (inline CSS and SVG, nothing fetched).

``section`` is the rehearsal's evidence without the page around it: ``rehearsal.html`` is that section
under a banner, and a sign-off with ``--migration`` carries the same section in ``signoff.html``.
"""

from __future__ import annotations

from chatbench.rehearse.result import Rehearsal
from chatbench.reports.html_page import CSS, e
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


def _table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def section(r: Rehearsal, level: int = 2) -> str:
    """The rehearsal's evidence, its headings at ``level``: findings, timeline, tables, verification, notes."""
    h = f"h{level}"
    size = r.measured
    parts = [f"<p>migration <code>{e(r.migration)}</code> on {e(r.before)}; PostgreSQL {e(r.server.get('version'))} "
             f"({e(r.server.get('backend'))}); app load: {e(size.load)}; budgets: {e(r.budgets_source)}</p>"]
    for title, severity, fix in FINDING_SECTIONS:
        css = "warnings" if severity == "WARN" else "failing"
        items = [f for f in r.findings if f.severity == severity]
        if items:
            parts.append(f"<{h}>{title}</{h}><ul class='{css}'>" + "".join(
                f"<li><b>{e(f.rule)}</b>: {e(f.evidence)}<br><i>{fix}</i>: {e(f.rewrite)}</li>" for f in items)
                + "</ul>")
    # lazy: matplotlib costs 0.6 s to import (-X importtime); only the HTML page draws, and every command
    # that prints a report imports this module
    from chatbench.reports.rehearsal_plot import timeline

    svg = timeline(size)
    parts.append(f"<{h}>Timeline</{h}>" + (f"<figure>{svg}<figcaption>locks held by the migration on top; the app's "
                                           "latency and blocked queries below, on one time axis</figcaption></figure>"
                                           if svg else "<p>nothing was sampled</p>"))
    parts.append(f"<{h}>Statements at {size.messages:,} messages ({e(size.profile)})</{h}>" + _table(statements(size)))
    if r.estimates:
        parts.append(f"<{h}>Blocking time extrapolated to {r.production_messages:,} messages</{h}><p>An extrapolation, "
                     "not a measurement: linear through the two measured sizes for statements whose work grows with "
                     "the table, constant for metadata-only ones.</p>" + _table(estimates(r)))
    if r.wal_estimates:
        parts.append(f"<{h}>WAL per statement, extrapolated to {r.production_messages:,} messages</{h}><p>The LSN "
                     "difference around each statement, extrapolated like blocking time; replica lag is that WAL at "
                     "the replica's apply rate.</p>" + _table(wal(r)))
    surroundings = [line for s in r.sizes for line in context(s)]
    if surroundings:
        parts.append(f"<{h}>Long transaction, WAL and residue</{h}><ul>"
                     + "".join(f"<li>{e(line)}</li>" for line in surroundings) + "</ul>")
    parts.append(f"<{h}>The app before, during and after</{h}>" + _table(phases(size)))
    parts.append(f"<{h}>Sizes measured</{h}>" + _table(sizes(r)))
    for s in r.sizes:
        if s.app_errors:
            parts.append(f"<{h}>Errors the app saw at {s.messages:,} messages (first {len(s.app_errors)})</{h}><ul>"
                         + "".join(f"<li><code>{e(error)}</code></li>" for error in s.app_errors) + "</ul>")
    if r.verification is not None:
        verification = "<p>" + ("passed" if r.verification.passed else "failed") + "</p><ul>" + "".join(
            f"<li>{e(f.message())}</li>" for f in r.verification.errors) + "</ul>"
    elif r.verified_by:
        verification = f"<p>by {e(r.verified_by)}</p>"
    else:
        verification = "<p>not run (the migration did not complete)</p>"
    parts.append(f"<{h}>Verification of the migrated schema</{h}>" + verification)
    if r.notes:
        parts.append(f"<{h}>Notes</{h}><ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
    return "".join(parts)


def render_rehearsal(r: Rehearsal) -> str:
    banner = "PASS" if r.verdict == "WARN" else r.verdict
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>chatbench rehearsal: {e(r.verdict)}"
            f"</title><style>{CSS}</style></head><body><h1>Migration rehearsal</h1>"
            f'<div class="banner {banner}"><div class="verdict">{e(r.verdict)}</div>{e(r.headline())}</div>'
            f"{section(r)}<footer>{e(r.command)} · {e(r.created_at)}</footer></body></html>\n")
