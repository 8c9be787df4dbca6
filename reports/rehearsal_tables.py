"""The rehearsal report's tables as rows of text, shared by the Markdown and HTML renderers."""

from __future__ import annotations

import math

from chatbench.rehearse.locks import short
from chatbench.rehearse.result import ACCESSES, Latency, Rehearsal, SizeRun, StatementRun

Table = tuple[tuple[str, ...], list[tuple[str, ...]]]
# The findings' sections, in the order the reports show them: (heading, severity, what the fix is called).
FINDING_SECTIONS = (("Failing", "FAIL", "safe rewrite"), ("Could not judge", "ERROR", "what to do"),
                    ("Warnings", "WARN", "safe rewrite"))


def ms(value: float) -> str:
    return "–" if not math.isfinite(value) else f"{value:.1f}"


def _latency(latency: Latency) -> str:
    return f"{latency.requests} req, p50 {ms(latency.p50_ms)} / p99 {ms(latency.p99_ms)} ms, {latency.errors} err"


def _locks(run: StatementRun) -> str:
    if not run.locks:
        return "none seen"
    return "; ".join(f"{h.relation}: {short(h.mode)} {h.held_s:.3f} s"
                     + (f" (blocks {', '.join(h.blocks)})" if h.blocks else "") for h in run.locks)


def statements(size: SizeRun) -> Table:
    header = ("#", "statement", "duration s", "strongest lock per relation (held s)", "rewrite",
              "reads blocked (n, longest s)", "appends blocked (n, longest s)", "app while it ran",
              "lock_timeout")
    rows = []
    for run in size.statements:
        blocked = tuple(f"{run.blocked[a].count}, {run.blocked[a].longest_s:.3f}" if a in run.blocked else "–"
                        for a in ACCESSES)
        rows.append((str(run.index) + (f" (line {run.line})" if run.line else ""), run.sql[:200] + (
            f" — ERROR {run.error}" if run.error else ""), f"{run.duration_s:.3f}", _locks(run),
                     ", ".join(run.rewrites) or "no", *blocked,
                     f"reads {_latency(run.app.reads)}; appends {_latency(run.app.appends)}",
                     "unknown" if run.lock_timeout is None else run.lock_timeout))
    return header, rows


def estimates(rehearsal: Rehearsal) -> Table:
    header = ("#", "table", "blocks", "lock", "at smaller size", "at profile size", "extrapolated to production",
              "basis", "budget")
    rows: list[tuple[str, ...]] = [(str(e.statement), e.table, str(e.access), short(e.mode) if e.mode else "?",
             f"{e.small_s:.3f} s ({e.small_messages:,})", f"{e.large_s:.3f} s ({e.large_messages:,})",
             f"{e.extrapolated_s:.2f} s ({e.production_messages:,})", e.basis,
             f"{rehearsal.budgets.get(e.table, rehearsal.budgets.get('default', {})).get(e.access, math.nan):g} s")
            for e in rehearsal.estimates]
    return header, rows


def phases(size: SizeRun) -> Table:
    header = ("phase", "reads", "appends")
    return header, [(name, _latency(window.reads), _latency(window.appends)) for name, window in size.phases.items()]


def sizes(rehearsal: Rehearsal) -> Table:
    header = ("size", "messages", "outcome", "migration s", "lock samples (mean interval)", "app load")
    return header, [(s.profile, f"{s.messages:,}", s.outcome + (f": {s.failure}" if s.failure else ""),
                     f"{s.migration_s:.3f}", f"{s.samples} ({s.sample_interval_ms:.1f} ms)", s.load)
                    for s in rehearsal.sizes]
