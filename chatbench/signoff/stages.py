"""The verification, seeding and scaling stages that need more than a few lines of the pipeline.

Each takes the server and the ``Recorder`` and turns what ``chatbench.verify`` / ``loadgen`` report
into checks; the order in which they run is the pipeline's business.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import Any

import psycopg

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.provision.databases import temporary_database
from chatbench.reports.signoff import ScalingPoint, StageTiming
from chatbench.signoff.display import Display
from chatbench.signoff.measure import measure
from chatbench.signoff.options import SCALING_SCENARIOS, SignoffOptions
from chatbench.signoff.recorder import Recorder, one_line


def drift(
    server: Server, seed_result: SeedResult | None, rec: Recorder, state: dict[str, Any], display: Display
) -> None:
    from chatbench.verify import verify

    with rec.stage("drift") as info:
        with display.status("drift") as update:
            result = verify(server, seed_result, only=["drift"], progress=update)
        _findings(result, rec, "drift")
        state.setdefault("verification", {})["drift"] = result.to_json()
        info["detail"] = f"{len(result.checks)} checks, {len(result.errors)} errors"
        info["status"] = rec.status_of("drift")


def health_and_plans(
    server: Server, seed_result: SeedResult, rec: Recorder, state: dict[str, Any], display: Display
) -> None:
    """One verification call for both (one catalog read); its own timings split the wall time."""
    from chatbench.verify import verify

    started = time.perf_counter()
    try:
        with display.status("index health and plan contracts") as update:
            result = verify(server, seed_result, only=["health", "plans"], progress=update)
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
    state.setdefault("verification", {})["health_plans"] = result.to_json()


def _findings(result: Any, rec: Recorder, group: str) -> None:
    """Findings become checks (error fails, warning shows); checks with no finding are recorded as passed."""
    for finding in result.findings:
        if finding.check != group or finding.severity == "info":
            continue
        rec.check(group, finding.object, False, finding.message(), finding.severity)
    for outcome in result.checks:
        if outcome.name.startswith(group + ".") and outcome.passed and not outcome.warnings:
            rec.check(group, outcome.name, True, outcome.doc)


def seed_detail(result: SeedResult) -> str:
    how = "snapshot/template cache hit" if result.from_cache else "seeded now"
    seconds = sum(v for v in result.timings.values())
    return f"{result.counts.get('messages', 0):,} messages, {how} ({seconds:.2f} s in loadgen)"


def seed_summary(result: SeedResult) -> dict[str, Any]:
    return {
        "profile": result.profile,
        "seed": result.seed,
        "order": result.order,
        "counts": dict(result.counts),
        "checksum": result.checksum,
        "from_cache": result.from_cache,
        "cache_key": result.cache_key,
        "timings": {k: round(v, 4) for k, v in result.timings.items()},
        "created_at_correlation": result.created_at_correlation,
        "whales": len(result.params.whales),
    }


def seed_prebuilt(
    server: Server, spec: Any, options: SignoffOptions, display: Display, stack: contextlib.ExitStack
) -> SeedResult:
    """Seed a canonical sibling (cache), then load its rows into the schema the application built."""
    from chatbench import loadgen
    from chatbench.loadgen.transplant import transplant

    sibling = stack.enter_context(temporary_database(server, "cbs_seed"))
    result = loadgen.seed(sibling, spec, seed=options.seed, use_cache=options.use_cache, progress=True)
    source = (
        sibling if result.database == sibling.database else sibling.with_database(result.database, owns_database=True)
    )
    with display.status("loading the seeded rows into the pre-built schema"):
        transplant(source, server)
    return replace(result, database=server.database)


def main_points(seed_result: SeedResult, run: BenchmarkRun, profile: str) -> list[ScalingPoint]:
    """The main run's own points of the scaling plot (its data size)."""
    messages = int(seed_result.counts.get("messages", 0))
    return [
        ScalingPoint(r.scenario, messages, r.stats.p50, r.stats.p95, profile)
        for r in run.scenarios
        if r.scenario in SCALING_SCENARIOS
    ]


def scaling(server: Server, options: SignoffOptions, display: Display, rec: Recorder) -> list[ScalingPoint]:
    """A few scenarios again on smaller seeded databases (cached), for the scaling-by-size plot.

    Evidence, not a check: a failure here is shown as a warning and does not fail the sign-off.
    """
    from chatbench import loadgen
    points: list[ScalingPoint] = []
    started = time.perf_counter()
    measured = []
    try:
        for profile in options.scaling():
            with temporary_database(server, "cbs_scale") as sibling:
                small = loadgen.seed(
                    sibling, loadgen.load_spec(profile), seed=options.seed, use_cache=options.use_cache, progress=False
                )
                target = (
                    sibling
                    if small.database == sibling.database
                    else sibling.with_database(small.database, owns_database=True)
                )
                small_run = measure(
                    target,
                    small,
                    options,
                    display,
                    profile=profile,
                    only=SCALING_SCENARIOS,
                    rounds=options.scaling_rounds,
                    warmup=max(10, options.scaling_rounds // 10),
                )
            points += [
                ScalingPoint(r.scenario, int(small.counts.get("messages", 0)), r.stats.p50, r.stats.p95, profile)
                for r in small_run.scenarios
            ]
            measured.append(f"{profile} ({small.counts.get('messages', 0):,} messages)")
        rec.add(
            StageTiming(
                "scaling",
                time.perf_counter() - started,
                "ok",
                f"{len(SCALING_SCENARIOS)} scenarios re-measured on {', '.join(measured)}",
            )
        )
    except (ChatbenchError, psycopg.Error, LookupError) as exc:
        rec.add(StageTiming("scaling", time.perf_counter() - started, "failed", one_line(exc)))
        rec.check("scaling", "scaling", False, f"scaling by data size not measured: {one_line(exc)}", "warning")
    return points
