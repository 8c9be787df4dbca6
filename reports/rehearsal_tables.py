"""The rehearsal report's tables as rows of text, shared by the Markdown and HTML renderers."""

from __future__ import annotations

import math

from chatbench.rehearse.locks import short
from chatbench.rehearse.result import ACCESSES, Access, Latency, Rehearsal, SizeRun, StatementRun
from chatbench.rehearse.rules import attempts_text, queue_text, wal_size

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
    # Held from the moment it was granted; the time it waited to be granted (the queue's) is said apart.
    return "; ".join(f"{h.relation}: {short(h.mode)} {max(0.0, h.held_s - h.waited_s):.3f} s"
                     + (f" after waiting {h.waited_s:.3f} s" if h.waited_s else "")
                     + (f" (blocks {', '.join(h.blocks)})" if h.blocks else "") for h in run.locks)


def _blocked(run: StatementRun, access: Access) -> str:
    """``n, longest s`` and which of the load's operations they were (the application's own: ``app:QUERY``)."""
    if access not in run.blocked:
        return "–"
    blocked = run.blocked[access]
    named = f" ({', '.join(blocked.operations)})" if blocked.operations else ""
    return f"{blocked.count}, {blocked.longest_s:.3f}{named}"


def statements(size: SizeRun) -> Table:
    header = ("#", "statement", "duration s", "strongest lock per relation (held s)", "rewrite",
              "reads blocked (n, longest s)", "appends blocked (n, longest s)", "app while it ran",
              "lock_timeout", "waited for its lock s", "queued behind its waiting lock", "tries", "WAL")
    rows = []
    for run in size.statements:
        blocked = tuple(_blocked(run, a) for a in ACCESSES)
        rows.append((str(run.index) + (f" (line {run.line})" if run.line else ""), run.sql[:200] + (
            f" — ERROR {run.error}" if run.error else ""), f"{run.duration_s:.3f}", _locks(run),
                     ", ".join(run.rewrites) or "no", *blocked,
                     f"reads {_latency(run.app.reads)}; appends {_latency(run.app.appends)}",
                     ("unknown" if run.lock_timeout is None else run.lock_timeout)
                     + (f" ({run.lock_timeout_source})" if run.lock_timeout_source else ""),
                     f"{run.waited_s:.3f}", queue_text(run.queue) or "none", attempts_text(run) or "1",
                     "unknown" if run.wal_bytes is None else wal_size(run.wal_bytes)))
    return header, rows


def wal(rehearsal: Rehearsal) -> Table:
    header = ("#", "at smaller size", "at profile size", "extrapolated to production", "basis", "replica lag",
              "lag allowed")
    allowed = rehearsal.wal_budget.get("lag_allowed_s", math.nan)
    rate = rehearsal.wal_budget.get("replica_apply_mb_s", math.nan)
    return header, [("migration" if e.statement is None else str(e.statement),
                     f"{wal_size(e.small_bytes)} ({e.small_messages:,})",
                     f"{wal_size(e.large_bytes)} ({e.large_messages:,})",
                     f"{wal_size(e.extrapolated_bytes)} ({e.production_messages:,})", e.basis,
                     f"{e.lag_s:,.1f} s at {rate:g} MB/s", f"{allowed:g} s") for e in rehearsal.wal_estimates]


def context(size: SizeRun) -> list[str]:
    """What surrounded the migration at one size: the long transaction, the residue, the WAL level."""
    lines = []
    if size.long_transaction is not None:
        lines.append(f"at {size.messages:,} messages: {size.long_transaction.describe()}")
    lines += [f"at {size.messages:,} messages: left behind: {r.kind} {r.name}: {r.detail}" for r in size.residue]
    lines += [f"at {size.messages:,} messages: run {a.number} of the command at {a.start_s:.2f} s: {a.outcome} after "
              f"{a.duration_s:.2f} s" + (f", waiting for {a.waited_for}" if a.waited_for else "")
              for a in size.command_tries]
    if size.migration_wal_bytes is not None:
        lines.append(f"at {size.messages:,} messages: {wal_size(size.migration_wal_bytes)} of WAL from the migration's "
                     f"start to its end (wal_level = {size.wal_level or 'unknown'})")
    return lines


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
