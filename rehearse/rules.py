"""The verdict rules: each finding carries its evidence (what was measured) and a safe rewrite.

- ``blocking`` (FAIL): a statement kept the app's reads or appends out of a table longer than the
  table's budget, at the measured size or extrapolated to the production size.
- ``lock_timeout`` (WARN): a statement took a lock that conflicts with the app's reads or appends
  while ``lock_timeout`` was 0: waiting for its lock behind a long query would queue every app query
  behind it, however quick the statement itself.
- ``failed`` / ``timed_out`` (FAIL): the migration did not complete; the statement is named, and for
  a hang, what it was waiting for.
- ``app_errors`` (FAIL): the app's requests failed while the migration ran or after it, and none
  failed before it: the migration broke the running app (a table or column it uses renamed or
  dropped, a deadlock, a prepared statement whose result type changed). When requests failed before
  the migration too, the load does not fit the before-schema and the failures cannot be laid at the
  migration's door (WARN).
- ``sampler`` (ERROR): the lock sampler lost its connection before the migration ended, so the
  locks after that moment were not seen and ``blocking`` could not judge them. Without it a lost
  sampler would read as "nothing blocked"; the rehearsal has to run again.
"""

from __future__ import annotations

from chatbench.rehearse import advice
from chatbench.rehearse.budgets import Budgets
from chatbench.rehearse.locks import short
from chatbench.rehearse.result import AppWindow, Estimate, RuleFinding, SizeRun


def judge(sizes: tuple[SizeRun, ...], estimates: tuple[Estimate, ...], budgets: Budgets) -> tuple[RuleFinding, ...]:
    findings: list[RuleFinding] = []
    for size in sizes:
        if size.outcome != "completed":
            failed = next((s for s in size.statements if s.error), None)
            findings.append(RuleFinding(
                "timed_out" if size.outcome == "timed out" else "failed", "FAIL",
                failed.index if failed else None, failed.sql if failed else "", None, None, size.migration_s, None,
                None, f"at {size.messages:,} messages: {size.failure}",
                "fix the statement (or raise --command-timeout if the migration is just slow) and rehearse again"))
            return tuple(findings)
    findings += [f for f in map(_app_errors, sizes) if f is not None]
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
    for run in large.statements:
        if run.strong() and run.lock_timeout in ("0", "0ms"):
            hold = max(run.locks, key=lambda h: (bool(h.blocks), h.held_s))
            findings.append(RuleFinding(
                "lock_timeout", "WARN", run.index, run.sql, hold.table, hold.mode, hold.held_s, None, None,
                f"`{run.sql[:160]}` took {short(hold.mode)} on {hold.relation} (blocks the app's "
                f"{' and '.join(hold.blocks)}) with lock_timeout = 0", advice.LOCK_TIMEOUT))
    return tuple(findings)


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
