"""``rehearsal.html``: the rehearsal as one self-contained page (inline CSS and SVG, nothing fetched)."""

from __future__ import annotations

from chatbench.rehearse.result import Rehearsal
from chatbench.reports.rehearsal_plot import timeline
from chatbench.reports.rehearsal_tables import Table, estimates, phases, sizes, statements
from chatbench.reports.render_html import _CSS, e


def _table(table: Table) -> str:
    header, rows = table
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_rehearsal(r: Rehearsal) -> str:
    size = r.measured
    banner = "PASS" if r.verdict in ("PASS", "WARN") else "FAIL"
    parts = [f'<div class="banner {banner}"><div class="verdict">{e(r.verdict)}</div>{e(r.headline())}</div>',
             f"<p>migration <code>{e(r.migration)}</code> on {e(r.before)}; PostgreSQL {e(r.server.get('version'))} "
             f"({e(r.server.get('backend'))}); app load: {e(size.load)}; budgets: {e(r.budgets_source)}</p>"]
    for title, severity, css in (("Failing", "FAIL", "failing"), ("Warnings", "WARN", "warnings")):
        items = [f for f in r.findings if f.severity == severity]
        if items:
            parts.append(f"<h2>{title}</h2><ul class='{css}'>" + "".join(
                f"<li><b>{e(f.rule)}</b>: {e(f.evidence)}<br><i>safe rewrite</i>: {e(f.rewrite)}</li>" for f in items)
                + "</ul>")
    svg = timeline(size)
    parts.append("<h2>Timeline</h2>" + (f"<figure>{svg}<figcaption>locks held by the migration on top; the app's "
                                         "latency and blocked queries below, on one time axis</figcaption></figure>"
                                         if svg else "<p>nothing was sampled</p>"))
    parts.append(f"<h2>Statements at {size.messages:,} messages ({e(size.profile)})</h2>" + _table(statements(size)))
    if r.estimates:
        parts.append(f"<h2>Blocking time extrapolated to {r.production_messages:,} messages</h2><p>An extrapolation, "
                     "not a measurement: linear through the two measured sizes for statements whose work grows with "
                     "the table, constant for metadata-only ones.</p>" + _table(estimates(r)))
    parts.append("<h2>The app before, during and after</h2>" + _table(phases(size)))
    parts.append("<h2>Sizes measured</h2>" + _table(sizes(r)))
    if r.verification is None:
        verification = "<p>not run (the migration did not complete)</p>"
    else:
        verification = "<p>" + ("passed" if r.verification.passed else "failed") + "</p><ul>" + "".join(
            f"<li>{e(f.message())}</li>" for f in r.verification.errors) + "</ul>"
    parts.append("<h2>Verification of the migrated schema</h2>" + verification)
    if r.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in r.notes) + "</ul>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>chatbench rehearsal: {e(r.verdict)}"
            f"</title><style>{_CSS}</style></head><body><h1>Migration rehearsal</h1>{''.join(parts)}"
            f"<footer>{e(r.command)} · {e(r.created_at)}</footer></body></html>\n")
