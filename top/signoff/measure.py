"""The measuring stages: benchmarks vs targets, scaling by data size, the optional short load.

They measure nothing themselves: the benchmarks enter the session through
``benchmarks.session.measure_scenarios``, the function ``chatbench bench`` measures through (the Citus
connection and refusals included), so a sign-off's numbers are taken as ``chatbench bench`` takes them.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial

import psycopg

from chatbench import loadgen
from chatbench.benchmarks.app_scenarios import is_app
from chatbench.benchmarks.loadtest.mix import DEFAULT_WEIGHTS, parameter_pools
from chatbench.benchmarks.loadtest.runner import LoadConfig, run_load
from chatbench.benchmarks.results import BenchmarkRun, LoadResult, MachineLoad, PlanRecord
from chatbench.benchmarks.scenarios import SCENARIOS, SCENARIOS_BY_NAME, Scenario
from chatbench.benchmarks.session import MeasuredRun, TimedRounds, measure_scenarios, rounds_for, time_rounds
from chatbench.benchmarks.targets import load_targets
from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.provision.databases import temporary_database
from chatbench.reports.signoff import ScalingPoint, StageTiming
from chatbench.signoff.build import build_application_schema
from chatbench.signoff.display import Display
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.options import CONTRAST_ROUNDS, SCALING_SCENARIOS, SIGNOFF_ROUNDS, SignoffOptions
from chatbench.signoff.recorder import one_line
from chatbench.verify.mapped import not_run_on


def benchmarks_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    options, rec = ctx.options, ctx.rec
    seed = evidence.need_seed()
    with rec.stage("benchmarks") as note:
        measured = measure(evidence.need_server(), seed, options, ctx.display, profile=options.profile)
        run = measured.run
        # The verification's plans travel with the run, so a later comparison sees plan shapes too.
        verified = evidence.verification.health_plans
        if verified is not None and verified.plans:
            run = replace(run, plans=tuple(
                PlanRecord(p.scenario, p.query, p.mode, p.buffers, p.shape, p.description, p.execution_ms)
                for p in verified.plans))
        for result in run.scenarios:
            if result.verdict == "INCONCLUSIVE":
                rec.undecided("benchmarks", result.scenario, "; ".join(result.undecided))
                continue
            passed_lines = [j.line(result.scenario) for j in result.latency if j.decision == "PASS"]
            message = "; ".join(result.failures) if result.failures else (
                "; ".join(passed_lines) if passed_lines
                else f"{result.scenario}: p95 {result.stats.p95:.3f} ms, p99 {result.stats.p99:.3f} ms"
                + (" (no target)" if result.target is None else " within target")
            )
            rec.check(
                "benchmarks",
                result.scenario,
                result.verdict != "FAIL",
                message,
                "error" if result.target is not None else "info",
            )
        for name, why in run.skipped.items():
            if name not in measured.not_run:
                rec.check("benchmarks", name, False, f"{name}: not measured: {why}", "warning")
        for query, (names, why) in _by_query(measured.not_run).items():  # by design: one line per query
            rec.skipped("benchmarks", query, f"{query} ({', '.join(names)}): {why}")
        rounds = run.settings.rounds if run.settings is not None else None
        undecided = sum(r.verdict == "INCONCLUSIVE" for r in run.scenarios)
        note.detail = (
            f"{len(run.scenarios)} scenarios × {rounds} rounds, "
            f"{sum(r.verdict == 'FAIL' for r in run.scenarios)} over target"
            + (f", {undecided} undecided (noise)" if undecided else "")
        )
        note.status = rec.status_of("benchmarks")
    return replace(evidence, benchmark=run, scaling=(*evidence.scaling, *main_points(seed, run, options.profile)))


def _by_query(not_run: Mapping[str, str]) -> dict[str, tuple[list[str], str]]:
    """Canonical scenarios not run on a schema whose roles the map renames, by their query: query -> (scenarios,
    why); the reason is the query's."""
    out: dict[str, tuple[list[str], str]] = {}
    for name, why in not_run.items():
        out.setdefault(SCENARIOS_BY_NAME[name].query, ([], why))[0].append(name)
    return out


def scaling_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    """A few scenarios again on smaller seeded databases (cached), for the scaling-by-size plot.

    Evidence, not a check: a failure here is shown as a warning and does not fail the sign-off.
    """
    options, rec, server = ctx.options, ctx.rec, evidence.need_server()
    if ctx.on_cluster:  # the smaller seeds would sit undistributed on the coordinator: not the cluster's figures
        rec.add(StageTiming("scaling", 0.0, "skipped", "not on a cluster: the single node beside it measures "
                                                       "scaling by data size"))
        return evidence
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        not_run = not_run_on(conn, options.roles)  # the canonical queries the role map keeps from running
    kept = [name for name in SCALING_SCENARIOS if SCENARIOS_BY_NAME[name].query not in not_run]
    if not kept and options.queries is None:  # nothing to re-measure: not worth seeding the smaller databases
        why = not_run[SCENARIOS_BY_NAME[SCALING_SCENARIOS[0]].query]
        rec.add(StageTiming("scaling", 0.0, "skipped",
                            f"its canonical scenarios are not run on this schema ({SCALING_SCENARIOS[0]}: {why})"))
        return evidence
    points: list[ScalingPoint] = []
    started = time.perf_counter()
    measured = []
    app_names: set[str] = set()
    try:
        for profile, spec in zip(options.scaling(), ctx.scaling_specs, strict=True):
            with temporary_database(server, "cbs_scale") as sibling:
                built = build_application_schema(sibling, options)  # the application's schema, as the main seed's
                small = loadgen.seed(sibling, spec, seed=options.seed, use_cache=options.use_cache, progress=False,
                                     package=options.package, prebuilt=built, roles=options.roles)
                target = small.server_for(sibling)
                small_run = measure(  # the canonical reads this schema runs (``kept``) and the application's queries
                    target,
                    small,
                    options,
                    ctx.display,
                    profile=profile,
                    only=kept,
                    with_app=True,
                    rounds=options.scaling_rounds,
                    warmup=max(10, options.scaling_rounds // 10),
                    retries=0,
                ).run
            points += [
                ScalingPoint(r.scenario, int(small.counts.get("messages", 0)), r.stats.p50, r.stats.p95, profile)
                for r in small_run.scenarios
            ]
            app_names = {r.scenario for r in small_run.scenarios if is_app(r.scenario)}
            for name, why in small_run.skipped.items():  # e.g. a role the smaller data has no conversation for
                rec.check("scaling", name, False, f"{name}: not measured on {profile}: {why}", "warning")
            measured.append(f"{profile} ({small.counts.get('messages', 0):,} messages)")
        rec.add(
            StageTiming(
                "scaling",
                time.perf_counter() - started,
                "ok",
                f"{len(kept) + len(app_names)} scenarios re-measured on {', '.join(measured)}",
            )
        )
    except (ChatbenchError, psycopg.Error, LookupError) as exc:
        rec.add(StageTiming("scaling", time.perf_counter() - started, "failed", one_line(exc)))
        rec.check("scaling", "scaling", False, f"scaling by data size not measured: {one_line(exc)}", "warning")
    return replace(evidence, scaling=(*evidence.scaling, *points))


def load_stage(ctx: StageContext, evidence: Evidence) -> Evidence:
    rec = ctx.rec
    with rec.stage("load") as note:
        load = run_load_stage(evidence.need_server(), evidence.need_seed(), ctx.options, ctx.display)
        ok = load.errors == 0
        first = f"; first: {load.error_samples[0]}" if load.error_samples else ""
        rec.check("load", "errors", ok, f"load: {load.errors} errors in {load.total} operations{first}")
        for name, why in load.not_measured.items():  # refused by Citus: the readiness stage fails it, with the fix
            rec.check("load", name, False, f"load: {name} {why}", "warning")
        note.detail = (
            f"{load.clients} clients, {load.throughput_per_s:.0f} ops/s, "
            f"p99 {load.overall.percentiles_ms.get('p99', float('nan')):.3f} ms, {load.errors} errors"
        )
        note.status = rec.status_of("load")
    return replace(evidence, benchmark=replace(evidence.need_benchmark(), load=load))


def measure(
    server: Server,
    seed_result: SeedResult,
    options: SignoffOptions,
    display: Display,
    *,
    profile: str,
    only: Sequence[str] | None = None,
    with_app: bool | None = None,
    select: Callable[[str], bool] | None = None,
    rounds: int | None = None,
    warmup: int | None = None,
    retries: int | None = None,
) -> MeasuredRun:
    """Run the benchmark scenarios through ``measure_scenarios`` (``chatbench bench``'s path into the session),
    with the application's queries (``--queries``) as ``app:QUERY/ROLE`` scenarios in the main run; the
    canonical scenarios the role map keeps from running are in ``MeasuredRun.not_run``.

    ``only``: the canonical scenarios to measure (None: all); ``with_app``: the application's scenarios too
    (None: only when ``only`` is None; the scaling stage asks for them with its canonical few); ``select``:
    which of those to measure, by name (None: all; the confirm stage re-measures its suspects only).
    ``retries``: re-measurements of an undecided scenario (None: the options'; the scaling stage, whose
    numbers are evidence and not judged, passes 0)."""
    targets = load_targets(options.targets_file)
    scenarios = [s for s in SCENARIOS if only is None or s.name in only]
    load_before = os.getloadavg()[0]
    default_rounds, default_warmup = rounds_for(profile)
    if rounds is None:
        rounds = options.rounds if options.rounds is not None else min(default_rounds, SIGNOFF_ROUNDS[0])
    if warmup is None:
        warmup = options.warmup if options.warmup is not None else min(default_warmup, SIGNOFF_ROUNDS[1])
    with display.stage(f"benchmarks ({profile})", total=len(scenarios), unit="scenarios") as progress:
        measured = measure_scenarios(
            server,
            seed_result,
            profile=profile,
            targets=targets,
            scenarios=scenarios,
            pin_mode=options.pin_mode,  # type: ignore[arg-type]
            rounds=rounds,
            warmup=warmup,
            retries=options.retries if retries is None else retries,
            retry_budget_s=options.retry_budget_s,
            timed=budgeted_rounds(options.scenario_budget_s),
            rounds_of=partial(contrast_rounds, rounds, warmup),
            progress=progress,
            app=options.queries if (only is None if with_app is None else with_app) else None,
            roles=options.roles,
            select=select,
        )
    run = measured.run
    # The machine's load while measuring: a comparison warns when either run shared the machine.
    machine = run.machine if run.machine is not None else MachineLoad(os.cpu_count() or 1)
    machine = replace(machine, before=round(load_before, 2), after=round(os.getloadavg()[0], 2),
                      cpus=os.cpu_count() or 1)
    settings = None if run.settings is None else replace(run.settings, scenario_budget_s=options.scenario_budget_s)
    return replace(measured, run=replace(run, machine=machine, settings=settings, data_checksum=seed_result.checksum))


def contrast_rounds(rounds: int, warmup: int, scenario: Scenario) -> tuple[int, int]:
    """A scenario's (rounds, warm-up): fewer for the OFFSET contrast scenarios (``CONTRAST_ROUNDS``)."""
    if "contrast" in scenario.statement.tags:
        return min(rounds, CONTRAST_ROUNDS[0]), min(warmup, CONTRAST_ROUNDS[1])
    return rounds, warmup


def main_points(seed_result: SeedResult, run: BenchmarkRun, profile: str) -> list[ScalingPoint]:
    """The main run's own points of the scaling plot (its data size)."""
    messages = int(seed_result.counts.get("messages", 0))
    return [
        ScalingPoint(r.scenario, messages, r.stats.p50, r.stats.p95, profile)
        for r in run.scenarios
        if r.scenario in SCALING_SCENARIOS or is_app(r.scenario)
    ]


def budgeted_rounds(budget_s: float | None) -> TimedRounds:
    """``benchmarks.session.time_rounds`` cut after ``budget_s`` seconds (None: every round).

    A function of the budget alone, so ``BenchSession.measure`` takes it as its timing loop; the
    loop itself (and its minimum of ``MIN_BUDGET_ROUNDS``) lives in ``benchmarks.session``.
    """
    return time_rounds if budget_s is None else partial(time_rounds, budget_s=budget_s)


def run_load_stage(server: Server, seed_result: SeedResult, options: SignoffOptions, display: Display) -> LoadResult:
    weights = dict(DEFAULT_WEIGHTS)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        pools = parameter_pools(conn, seed_result.params, weights)
    config = LoadConfig(
        clients=options.load_clients, duration_s=options.load_seconds, weights=weights, seed=options.seed
    )
    with display.status("load") as update:
        return run_load(server.conninfo(), config, pools, progress=update)
