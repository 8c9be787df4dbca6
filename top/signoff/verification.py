"""The verification stages: drift on its own, then index health and plan contracts from one call, then (in a
Citus sign-off) distribution readiness.

Each turns what ``chatbench.verify`` reports into checks; the verification results travel on in
``Evidence.verification`` (and the plans with the benchmark run, for an exact comparison later).

On a Citus cluster (``--backend citus`` or a ``--dsn`` coordinator: the seed stage distributed the tables as
``citus_distribution``) drift does not fail the keys the distribution step changed on purpose
(``verify.citus.declared_by_variant``), and the plan
contracts are not judged: the coordinator's plan of every query is one ``Custom Scan (Citus Adaptive)``
and Citus cannot plan a parameterised ``append_message`` at all; the readiness stage judges routing there,
and the single node beside the cluster judges the plan contracts on the same rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

import psycopg

from chatbench.benchmarks.citus import query_costs
from chatbench.reports.signoff import StageTiming
from chatbench.schema.distributed import variant
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.recorder import Recorder
from chatbench.verify.appcheck import merged_result, verify_app_queries
from chatbench.verify.citus import declared_by_variant, judging
from chatbench.verify.mapped import SKIPPED
from chatbench.verify.result import VerificationResult
from chatbench.verify.schema_check import verify_schema

READINESS_GROUP = "citus"
APP_GROUP = "queries"
"""The check of the application's queries (``verify.appcheck``): recorded as rows of the plans stage."""
DECLARED = "the distribution step's key"


def drift_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """Drift against the package in the run's mode (before the seed when the application built the schema):
    exactly against ``--models`` (and the canonical contracts), else the canonical schema, exact when
    chatbench built it and contract when the application or a migration did."""
    rec, options = ctx.rec, ctx.options
    with rec.stage("drift") as note:
        with ctx.display.status(f"drift ({options.drift_mode})") as update:
            result = verify_schema(evidence.need_server(), evidence.seed, package=options.package,
                                   mode=options.drift_mode, only=["drift"], progress=update, roles=options.roles)
        _findings(result, rec, "drift", declared=options.citus_distribution if ctx.on_cluster else None)
        on_purpose = sum(1 for c in rec.checks if c.stage == "drift" and c.passed and DECLARED in c.message)
        note.detail = (f"{len(result.checks)} checks, {len(result.errors) - on_purpose} errors "
                       f"({result.mode} against {result.expected})"
                       + (f"; {on_purpose} differences the distribution step made on purpose" if on_purpose else ""))
        note.status = rec.status_of("drift")
    return replace(evidence, verification=replace(evidence.verification, drift=result))


def health_and_plans_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """One verification call for both (one catalog read); its own timings split the wall time."""
    rec, cluster = ctx.rec, ctx.on_cluster
    started = time.perf_counter()
    try:
        with ctx.display.status("index health and plan contracts") as update:
            result = verify_schema(evidence.need_server(), evidence.need_seed(), package=ctx.options.package,
                                   mode=ctx.options.drift_mode, only=["health"] if cluster else ["health", "plans"],
                                   progress=update, roles=ctx.options.roles)
            if ctx.options.queries is not None and not cluster:
                result = _judge_app_queries(ctx, evidence, result, update)
    except Exception as exc:
        raise rec.failed("health", time.perf_counter() - started, exc) from exc
    wall = time.perf_counter() - started
    health_s = sum(v for k, v in result.timings.items() if k.startswith("health."))
    groups = (("health", health_s),) if cluster else (("health", health_s), ("plans", max(0.0, wall - health_s)))
    for group, seconds in groups:
        _findings(result, rec, group)
        errors = sum(1 for f in result.findings if f.check == group and f.severity == "error")
        checks = sum(1 for c in result.checks if c.name.startswith(group + "."))
        detail = f"{checks} checks, {errors} errors"
        if group == "plans":
            detail += f", {len(result.plans)} plans judged ({result.params_source} scenarios)"
            if ctx.options.queries is not None and not cluster:  # the application's queries: rows of this stage
                _findings(result, rec, APP_GROUP, stage="plans")
                mine = [f for f in result.findings if f.check == APP_GROUP and f.severity == "error"]
                detail += (f"; {len(ctx.options.queries)} application queries ({ctx.options.queries.source}), "
                           f"{len(mine)} errors")
        rec.add(StageTiming(group, seconds, rec.status_of(group), detail))
    if cluster:
        rec.add(StageTiming("plans", 0.0, "skipped", "not on a cluster: the readiness stage judges routing; the "
                                                     "single node beside it judges the plan contracts"))
    return replace(evidence, verification=replace(evidence.verification, health_plans=result))


def _judge_app_queries(ctx: StageContext, evidence: Evidence, result: VerificationResult,
                       progress: Callable[[str], None]) -> VerificationResult:
    """``result`` with the application's queries judged as ``chatbench verify --queries`` judges them (plan
    contracts in both plan modes, page walks, a proven index for each missing one), on the seeded database.

    ``verify`` reaches the same two calls through ``chatbench.commands.appqueries.judge_app_queries``; the
    sign-off may not import the commands (one-way layers), so it calls ``verify.appcheck`` itself."""
    options = ctx.options
    assert options.queries is not None
    judged = verify_app_queries(evidence.need_server(), evidence.need_seed().params, options.queries,
                                roles=options.roles, production_messages=options.production_messages,
                                progress=progress)
    return merged_result(result, judged)


def readiness_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """Distribution readiness (the ``citus`` verify group) and each read scenario's buffers and routing.

    On the cluster a violated rule fails the sign-off; on the single node beside it the static rules are a
    preview (``info``) of what Citus would refuse. The buffers (every shard's counted) and routing are taken
    here, on each server, for the side-by-side ``benchmarks.citus.side_by_side`` builds from the two."""
    rec, server, seed = ctx.rec, evidence.need_server(), evidence.need_seed()
    with rec.stage("readiness") as note:
        with ctx.display.status("distribution readiness") as update:
            with judging(ctx.options.citus_distribution):  # the single node's preview: against the sign-off's
                result = verify_schema(server, seed, package=ctx.options.package, mode=ctx.options.drift_mode,
                                       only=[READINESS_GROUP], progress=update)
            with psycopg.connect(server.conninfo(), autocommit=True) as conn:
                costs = query_costs(conn, seed.params)
        _findings(result, rec, READINESS_GROUP, stage="readiness")
        errors = sum(1 for f in result.findings if f.check == READINESS_GROUP and f.severity == "error")
        routed = [c for c in costs if c.tasks != 0]
        routing = (f", {sum(c.router for c in routed)} of {len(routed)} read scenarios router" if routed
                   else ", a preview on a single node")
        note.detail = (f"{len(result.findings)} findings, {errors} errors{routing}; "
                       f"variant {ctx.options.citus_distribution}")
        note.status = rec.status_of("readiness")
    return replace(evidence, verification=replace(evidence.verification, readiness=result), query_costs=costs)


def _findings(result: VerificationResult, rec: Recorder, group: str, *, stage: str | None = None,
              declared: str | None = None) -> None:
    """Findings become checks (error fails, warning shows, a canonical query not run on a schema whose roles the
    map renames is skipped, with why); checks with no finding are recorded as passed.

    ``stage``: the stage they are recorded under (default ``group``); ``declared``: the variant the tables were
    distributed as, whose drift findings the distribution step made on purpose are recorded as passed, with
    what they are."""
    stage = stage or group
    chosen = variant(declared)
    for finding in result.findings:
        if finding.check == group and finding.kind == SKIPPED:
            rec.skipped(stage, finding.object, f"{finding.object}: {finding.actual}")
            continue
        if finding.check != group or finding.severity == "info":
            continue
        if declared is not None and declared_by_variant(finding, chosen):
            rec.check(stage, finding.object, True, f"{finding.message()} ({DECLARED}, variant {chosen.name})")
            continue
        rec.check(stage, finding.object, False, finding.message(), finding.severity)
    for outcome in result.checks:
        if outcome.name.startswith(group + ".") and outcome.passed and not outcome.warnings:
            rec.check(stage, outcome.name, True, outcome.doc)
