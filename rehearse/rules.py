"""The verdict rules: each finding carries its evidence (what was measured) and a safe rewrite.

- ``blocking`` (FAIL): a statement kept the app's reads or appends out of a table longer than the
  table's budget, at the measured size or extrapolated to the production size.
- ``lock_timeout`` (FAIL): app queries queued behind a statement's waiting lock (it waited behind the
  long transaction, ``--long-transaction``) longer than the table's blocking budget, measured: with no
  lock_timeout the queue lasts as long as the long transaction; with one, each try queues the app for up
  to the timeout. The timeout is read from the migration's session (a command's is inferred from the
  waits the sampler saw), so a tool that sets it in its own code is judged by what it really set.
- ``lock_retries`` (FAIL): a statement gave up on its lock_timeout on every try; the transaction it
  waited for is named. Only lock timeouts are retried: a statement whose last try failed for another
  reason is ``failed``, its earlier lock timeouts shown as its tries.
- ``wal`` (FAIL): a statement's WAL, extrapolated to the production size, takes a replica applying
  ``replica_apply_mb_s`` longer than ``lag_allowed_s`` to apply (the ``wal`` budget).
- ``residue`` (FAIL): the migration left an INVALID or not-ready index, a constraint the release's
  models declare left NOT VALID, or a sequence nothing owns or uses; the statement and the fix named.
- ``failed`` / ``timed_out`` (FAIL): the migration did not complete; the statement is named, and for
  a hang, what it was waiting for.
- ``app_errors`` (FAIL): the app's requests failed while the migration ran or after it, and none
  failed before it: the migration broke the running app (a table or column it uses renamed or
  dropped, a deadlock, a prepared statement whose result type changed). When requests failed before
  the migration too, the load does not fit the before-schema and the failures cannot be laid at the
  migration's door (WARN).
- ``load_saturated`` (ERROR): requests of the live load due while the rehearsal watched were never sent:
  the clients were still working off a queue of their own when the load stopped, so the server does not
  serve this load at this rate (the application's own slow queries, or ``--rate`` too high). A queue the
  load builds by itself hides the one the migration builds: ``blocking`` cannot be told from it.
- ``sampler`` (ERROR): the lock sampler lost its connection before the migration ended, so the
  locks after that moment were not seen and ``blocking`` could not judge them. Without it a lost
  sampler would read as "nothing blocked"; the rehearsal has to run again.
"""

from __future__ import annotations

import math

from chatbench.rehearse import advice
from chatbench.rehearse.budgets import Budgets
from chatbench.rehearse.locks import short
from chatbench.rehearse.result import (
    AppWindow,
    Attempt,
    Estimate,
    Queued,
    RuleFinding,
    SizeRun,
    StatementRun,
    WalEstimate,
)


def judge(sizes: tuple[SizeRun, ...], estimates: tuple[Estimate, ...], budgets: Budgets,
          wal: tuple[WalEstimate, ...] = ()) -> tuple[RuleFinding, ...]:
    findings: list[RuleFinding] = list(_residue(sizes))
    for size in sizes:
        if size.outcome != "completed":
            failed, tries = _stopped(size)
            if failed is not None and tries and tries[-1].outcome == "lock timeout":
                findings.append(RuleFinding(
                    "lock_retries", "FAIL", failed.index, failed.sql, None, None, failed.waited_s, None, None,
                    f"at {size.messages:,} messages: {size.failure}; tries: {attempts_text(failed)}",
                    advice.LOCK_RETRIES))
                findings += _queue(sizes, budgets)
                return tuple(findings)
            shown = f"; tries: {tries_text(tries)}" if tries else ""
            findings.append(RuleFinding(
                "timed_out" if size.outcome == "timed out" else "failed", "FAIL",
                failed.index if failed else None, failed.sql if failed else "", None, None, size.migration_s, None,
                None, f"at {size.messages:,} messages: {size.failure}{shown}",
                "fix the statement (or raise --command-timeout if the migration is just slow) and rehearse again"))
            return tuple(findings)
    findings += [f for f in map(_app_errors, sizes) if f is not None]
    findings += [f for f in map(_saturated, sizes) if f is not None]
    for size in sizes:
        if size.sampler_error is not None:
            findings.append(RuleFinding(
                "sampler", "ERROR", None, "", None, None, None, None, None,
                f"at {size.messages:,} messages: {size.sampler_error}; the locks after it were not seen",
                "rehearse again; the sampler's session must not be terminated (pg_terminate_backend, an idle or "
                "statement timeout set for every role) and the server must stay up"))
    large = sizes[-1]
    runs = {s.index: s for s in large.statements}
    grouped: dict[tuple[int, str], list[Estimate]] = {}
    for estimate in estimates:
        grouped.setdefault((estimate.statement, estimate.table), []).append(estimate)
    for (index, table), items in sorted(grouped.items()):
        run = runs[index]
        over = [e for e in items if max(e.large_s, e.extrapolated_s) > budgets.budget(table, e.access)]
        if not over:
            continue
        worst = max(over, key=lambda e: e.extrapolated_s)
        accesses = " and ".join(e.access for e in over)
        blocked = "; ".join(f"{run.blocked[e.access].count} app {e.access} seen blocked, longest "
                            f"{run.blocked[e.access].longest_s:.3f} s" for e in over)
        kind = "extrapolated" if worst.scales else "constant in size, so"
        evidence = (f"`{run.sql[:160]}` held {short(worst.mode)} on {table} for {worst.large_s:.3f} s at "
                    f"{worst.large_messages:,} messages, blocking {accesses} ({blocked}); {kind} "
                    f"{worst.extrapolated_s:.2f} s at {worst.production_messages:,} messages (linear extrapolation "
                    f"from {worst.small_messages:,} and {worst.large_messages:,}: {worst.basis}); budget "
                    f"{budgets.budget(table, worst.access):g} s")
        findings.append(RuleFinding("blocking", "FAIL", index, run.sql, table, worst.mode, worst.large_s,
                                    worst.extrapolated_s, budgets.budget(table, worst.access), evidence,
                                    advice.suggest(run, table)))
    findings += _queue(sizes, budgets)
    findings += _wal(large, wal, budgets)
    return tuple(findings)


def _stopped(size: SizeRun) -> tuple[StatementRun | None, tuple[Attempt, ...]]:
    """The statement that stopped a migration that did not complete, and the tries that decide the rule.

    Only the last try says why it stopped: ``lock_retries`` when it gave up on its lock_timeout, else the
    statement failed (``failed``/``timed_out``), even after earlier lock timeouts. A command's tries are its
    runs: when its last run failed otherwise, a statement that gave up in an earlier run did not stop it.
    """
    failed = next((s for s in size.statements if s.error), None)
    if size.command_tries:
        gave_up = size.command_tries[-1].outcome == "lock timeout"
        return (failed if gave_up else None), size.command_tries
    return failed, failed.attempts if failed is not None else ()


def attempts_text(run: StatementRun) -> str:
    """A statement's tries, one clause each: when, how long, how it ended, whom it waited for."""
    return tries_text(run.attempts)


def tries_text(attempts: tuple[Attempt, ...]) -> str:
    return "; ".join(f"{a.number}: at {a.start_s:.2f} s, {a.outcome} after {a.duration_s:.2f} s"
                     + (f" at statement {a.block_stopped_at}, its transaction block rolled back"
                        if a.block_stopped_at is not None else "")
                     + (f" (waited for {a.waited_for})" if a.waited_for and a.outcome != "completed" else "")
                     for a in attempts)


def queue_text(queue: tuple[Queued, ...]) -> str:
    return "; ".join(f"{q.count} app {q.access} on {q.table} (longest {q.longest_s:.3f} s)" for q in queue)


def _queue(sizes: tuple[SizeRun, ...], budgets: Budgets) -> list[RuleFinding]:
    """``lock_timeout``: the app queued behind a statement's waiting lock longer than the budget, at either size
    (the queue depends on the long transaction, not on the table's size: the worse size is the evidence)."""
    worst: dict[str, tuple[float, SizeRun, StatementRun, Queued]] = {}
    for size in sizes:
        for run in size.statements:
            for q in run.queue:
                over = q.longest_s - budgets.budget(q.table, q.access)
                if over > 0 and over > worst.get(run.sql, (0.0,))[0]:
                    worst[run.sql] = (over, size, run, q)
    findings = []
    large = {r.sql: r.index for r in sizes[-1].statements}
    for _over, size, run, q in sorted(worst.values(), key=lambda w: w[2].index):
        budget = budgets.budget(q.table, q.access)
        timeout = "unknown" if run.lock_timeout is None else run.lock_timeout
        source = f", {run.lock_timeout_source}" if run.lock_timeout_source else ""
        behind = run.waited_for or next((a.waited_for for a in run.attempts if a.waited_for), None)
        held = size.long_transaction.describe() if size.long_transaction is not None else "a transaction"
        tries = f"; tries: {attempts_text(run)}" if run.attempts else ""
        lock = next((h for h in run.locks if h.table == q.table and h.waited_s > 0), None)
        what = f"{short(lock.mode)} on {lock.relation}" if lock is not None else f"its lock on {q.table}"
        evidence = (f"at {size.messages:,} messages `{run.sql[:160]}` waited up to {run.waited_s:.3f} s for {what} "
                    f"behind {behind or held} with lock_timeout = {timeout}{source}; queued behind its waiting lock: "
                    f"{queue_text(run.queue)}{tries}; budget {budget:g} s")
        rewrite = advice.LOCK_TIMEOUT if timeout in ("0", "0ms", "unknown") else advice.LOWER_TIMEOUT
        # numbered as at the profile's size (a command's statements are numbered as the sampler saw them there)
        findings.append(RuleFinding("lock_timeout", "FAIL", large.get(run.sql), run.sql, q.table,
                                    lock.mode if lock else None, q.longest_s, None, budget, evidence, rewrite))
    return findings


def _wal(large: SizeRun, estimates: tuple[WalEstimate, ...], budgets: Budgets) -> list[RuleFinding]:
    """``wal``: a statement whose WAL at the production size a replica cannot apply within the lag allowed."""
    runs = {s.index: s for s in large.statements}
    findings = []
    budget = budgets.wal
    for e in estimates:
        if e.lag_s <= budget.lag_allowed_s:
            continue
        run = runs.get(e.statement) if e.statement is not None else None
        what = f"`{run.sql[:160]}`" if run is not None else "the migration (a command: all its statements together)"
        evidence = (f"{what} wrote {wal_size(e.large_bytes)} of WAL at {e.large_messages:,} messages and "
                    f"{wal_size(e.small_bytes)} at {e.small_messages:,} ({e.basis}); extrapolated "
                    f"{wal_size(e.extrapolated_bytes)} at {e.production_messages:,} messages, which a replica applying "
                    f"{budget.replica_apply_mb_s:g} MB/s needs {e.lag_s:,.0f} s to apply; lag allowed "
                    f"{budget.lag_allowed_s:g} s")
        findings.append(RuleFinding("wal", "FAIL", e.statement, run.sql if run is not None else "", None, None, None,
                                    e.lag_s, budget.lag_allowed_s, evidence, advice.suggest_wal(run)))
    return findings


def wal_size(n: float) -> str:
    """Bytes of WAL as people read them."""
    return f"{n / 1e9:,.2f} GB" if n >= 1e9 else f"{n / 1e6:,.2f} MB" if n >= 1e5 else f"{n:,.0f} B"


def _residue(sizes: tuple[SizeRun, ...]) -> list[RuleFinding]:
    """``residue``: what the migration left behind, at the first size it was seen (the same at both)."""
    seen: set[tuple[str, str]] = set()
    findings = []
    for size in sizes:
        for r in size.residue:
            if (r.kind, r.name) in seen:
                continue
            seen.add((r.kind, r.name))
            by = f"; left by statement {r.statement}: `{r.sql[:160]}`" if r.statement is not None else ""
            findings.append(RuleFinding("residue", "FAIL", r.statement, r.sql, r.table, None, None, None, None,
                                        f"at {size.messages:,} messages: {r.detail}{by}", r.fix))
    return findings


SATURATED_MIN_REQUESTS = 5
SATURATED_SHARE = 0.05
"""A load is saturated when at least this many, and this share, of the requests due were never sent: at the
stop each client may leave the one request due during its last in flight, which is no queue."""


def _saturated(size: SizeRun) -> RuleFinding | None:
    """The live load not kept up with at one size (see the module docstring)."""
    before, during, after = (size.phases.get(name, AppWindow()) for name in ("before", "during", "after"))
    unserved = before.unserved + during.unserved + after.unserved
    due = before.requests + during.requests + after.requests
    if unserved < max(SATURATED_MIN_REQUESTS, SATURATED_SHARE * due):
        return None  # a request due while each client finished its last one is not a queue
    waited = "; ".join(f"{name}: p50 {w.reads.p50_ms:.0f} ms" for name, w in (("before it", before),
                                                                              ("during it", during))
                       if w.reads.requests and not math.isnan(w.reads.p50_ms))
    return RuleFinding(
        "load_saturated", "ERROR", None, "", None, None, None, None, None,
        f"at {size.messages:,} messages: {unserved} of the {due} app requests due around the migration were never "
        f"sent, the clients still working off their own queue when the load stopped (reads "
        f"{waited or 'not measured'}): what the migration blocked cannot be told from a queue the load builds by "
        "itself",
        "lower --rate, or fix the app's slow queries (the verification names them), and rehearse again")


def _app_errors(size: SizeRun) -> RuleFinding | None:
    """The app failing during or after the migration at one size (see the module docstring)."""
    before, during, after = (size.phases.get(name, AppWindow()) for name in ("before", "during", "after"))
    if not during.errors and not after.errors:
        return None
    first = f"; first: {size.app_errors[0]}" if size.app_errors else ""
    counts = (f"{during.errors} of {during.requests} app requests failed while the migration ran and "
              f"{after.errors} of {after.requests} after it")
    if before.errors:
        return RuleFinding(
            "app_errors", "WARN", None, "", None, None, None, None, None,
            f"at {size.messages:,} messages: {counts}, but {before.errors} of {before.requests} failed before it "
            f"too: the live load does not fit the before-schema, so these failures are not laid at the "
            f"migration's door{first}",
            "rehearse from the schema the app runs on today (--from / --from-cmd)")
    return RuleFinding(
        "app_errors", "FAIL", None, "", None, None, None, None, None,
        f"at {size.messages:,} messages: {counts}, none of {before.requests} before it: the migration broke the "
        f"running app{first}",
        advice.PREPARED_RESULT_TYPE if any(advice.PREPARED_ERROR in e for e in size.app_errors)
        else advice.EXPAND_CONTRACT)
