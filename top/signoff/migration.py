"""The migration stage (``--migration`` / ``--migration-cmd``): the release's migration rehearsed under live
load, and the schema it produces handed on to the rest of the sign-off.

The before-schema (``--from`` / ``--from-cmd``, default canonical) is seeded at the profile's size and
at the next smaller one, and the migration runs on each while the app's reads and appends run
(``chatbench.rehearse.rehearsed``: the same code and checks as ``chatbench rehearse``). The database
migrated at the profile's size is kept: drift, health, plan contracts, benchmarks, load and the
comparison judge it, so the schema the sign-off verifies is the one the release reaches the way
production reaches it. A migration that does not complete leaves nothing to verify: the remaining
stages are recorded as not run and the verdict is FAIL (it ran and failed), not ERROR. A rehearsal
whose lock sampler stopped before the migration ended (verdict ERROR) cannot vouch for it: the stage
errs with that reason, the rehearsal is kept in the reports, and the remaining stages do not run.

Every finding becomes a check of stage ``migration`` (FAIL rules fail the sign-off, WARN rules are
warnings), with its evidence (statement, lock, blocked time, extrapolation) and the safe rewrite.
"""

from __future__ import annotations

from dataclasses import replace

from chatbench.rehearse.result import Rehearsal
from chatbench.rehearse.stage import rehearsed
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.recorder import Recorder

VERIFIED_BY = "the sign-off's drift, health, plans and later stages"
STAGE = "migration"


def migration_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    plan = ctx.options.migration
    assert plan is not None  # the stage applies only with a migration
    plan = replace(plan, verify=False, verified_by=VERIFIED_BY)
    with ctx.rec.stage(STAGE) as note:
        with ctx.display.status(f"rehearsing {plan.migration_source}") as update:
            done = ctx.stack.enter_context(rehearsed(evidence.need_server(), plan, progress=update))
        rehearsal = done.rehearsal
        migration_checks(rehearsal, ctx.rec)
        note.detail = detail(rehearsal)
        note.status = ctx.rec.status_of(STAGE)
        if rehearsal.verdict == "ERROR":
            note.status = "error"
            note.detail = unjudged(rehearsal)
            ctx.rec.error = f"{STAGE}: {note.detail}"  # as ``Recorder.failed`` words a stage that errs
            return replace(evidence, migration=rehearsal, halted="the rehearsal's lock evidence is incomplete")
    if done.migrated is None or done.seed is None:
        return replace(evidence, migration=rehearsal, halted=f"the migration {rehearsal.measured.outcome}")
    return replace(evidence, server=done.migrated, seed=done.seed, migration=rehearsal)


def unjudged(rehearsal: Rehearsal) -> str:
    """Why a rehearsal with verdict ERROR could not judge the migration, in one line."""
    lost = [s for s in rehearsal.sizes if s.sampler_error is not None]
    sizes = " and ".join(f"{s.messages:,}" for s in lost)
    return f"lock evidence incomplete at {sizes} messages: {lost[0].sampler_error}; rehearse again"


def migration_checks(rehearsal: Rehearsal, rec: Recorder) -> None:
    """One item per statement (its findings, or passed), and one per finding no statement holds."""
    size = rehearsal.measured
    named: set[int] = set()
    for run in size.statements:
        name = f"statement {run.index}: {run.sql[:120]}"  # the test case CI dashboards show
        findings = [f for f in rehearsal.findings if f.statement == run.index]
        named.add(run.index)
        if not findings:
            rec.check(STAGE, name, True, f"statement {run.index}: `{run.sql[:160]}` ran {run.duration_s:.3f} s at "
                                         f"{size.messages:,} messages, within the [rehearsal] budgets measured and "
                                         f"extrapolated to {rehearsal.production_messages:,} messages")
        for finding in findings:
            rec.check(STAGE, name, False, finding.describe(), "error" if finding.severity == "FAIL" else "warning")
    for finding in rehearsal.findings:
        if finding.severity == "ERROR":
            continue  # not a check that failed: the stage errs with it (``migration_stage``)
        if finding.statement is None or finding.statement not in named:
            rec.check(STAGE, "migration" if finding.statement is None else f"statement {finding.statement}", False,
                      finding.describe(), "error" if finding.severity == "FAIL" else "warning")
    if not size.statements and not rehearsal.findings:
        rec.check(STAGE, "migration", True, f"{rehearsal.migration}: no statement seen, nothing blocked the app")


def detail(rehearsal: Rehearsal) -> str:
    """The stage's line: verdict, statements, sizes and findings."""
    fails = sum(f.severity == "FAIL" for f in rehearsal.findings)
    warns = sum(f.severity == "WARN" for f in rehearsal.findings)
    sizes = " and ".join(f"{s.messages:,}" for s in rehearsal.sizes)
    return (f"{rehearsal.verdict}: {len(rehearsal.measured.statements)} statement(s) at {sizes} messages under live "
            f"load, {fails} failing, {warns} warning(s)")
