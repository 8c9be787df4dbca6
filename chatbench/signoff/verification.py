"""The verification stages: drift on its own, then index health and plan contracts from one call.

Each turns what ``chatbench.verify`` reports into checks; the verification results travel on in
``Evidence.verification`` (and the plans with the benchmark run, for an exact comparison later).
"""

from __future__ import annotations

import time
from dataclasses import replace

from chatbench.reports.signoff import StageTiming
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.recorder import Recorder
from chatbench.verify.result import VerificationResult


def drift_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """Drift against the package in the run's mode (before the seed when the application built the schema):
    exactly against ``--models`` (and the canonical contracts), else the canonical schema, exact when
    chatbench built it and contract when the application or a migration did."""
    from chatbench.verify.schema_check import verify_schema

    rec, options = ctx.rec, ctx.options
    with rec.stage("drift") as note:
        with ctx.display.status(f"drift ({options.drift_mode})") as update:
            result = verify_schema(evidence.need_server(), evidence.seed, package=options.package,
                                   mode=options.drift_mode, only=["drift"], progress=update)
        _findings(result, rec, "drift")
        note.detail = (f"{len(result.checks)} checks, {len(result.errors)} errors "
                       f"({result.mode} against {result.expected})")
        note.status = rec.status_of("drift")
    return replace(evidence, verification=replace(evidence.verification, drift=result))


def health_and_plans_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """One verification call for both (one catalog read); its own timings split the wall time."""
    from chatbench.verify.schema_check import verify_schema

    rec = ctx.rec
    started = time.perf_counter()
    try:
        with ctx.display.status("index health and plan contracts") as update:
            result = verify_schema(evidence.need_server(), evidence.need_seed(), package=ctx.options.package,
                                   mode=ctx.options.drift_mode, only=["health", "plans"], progress=update)
    except Exception as exc:
        raise rec.failed("health", time.perf_counter() - started, exc) from exc
    wall = time.perf_counter() - started
    health_s = sum(v for k, v in result.timings.items() if k.startswith("health."))
    for group, seconds in (("health", health_s), ("plans", max(0.0, wall - health_s))):
        _findings(result, rec, group)
        errors = sum(1 for f in result.findings if f.check == group and f.severity == "error")
        checks = sum(1 for c in result.checks if c.name.startswith(group + "."))
        detail = f"{checks} checks, {errors} errors"
        if group == "plans":
            detail += f", {len(result.plans)} plans judged ({result.params_source} scenarios)"
        rec.add(StageTiming(group, seconds, rec.status_of(group), detail))
    return replace(evidence, verification=replace(evidence.verification, health_plans=result))


def _findings(result: VerificationResult, rec: Recorder, group: str) -> None:
    """Findings become checks (error fails, warning shows); checks with no finding are recorded as passed."""
    for finding in result.findings:
        if finding.check != group or finding.severity == "info":
            continue
        rec.check(group, finding.object, False, finding.message(), finding.severity)
    for outcome in result.checks:
        if outcome.name.startswith(group + ".") and outcome.passed and not outcome.warnings:
            rec.check(group, outcome.name, True, outcome.doc)
