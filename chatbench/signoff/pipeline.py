"""The order of the stages on one server, and one run over every chosen server.

A stage that cannot run stops that server's pipeline (``StageError``): the remaining stages are
recorded as skipped and teardown still runs; a stage that ran and found problems goes on.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.errors import redact
from chatbench.provision import Server, provision
from chatbench.reports.compare import compare_runs
from chatbench.reports.signoff import Signoff, StageTiming, TargetSignoff
from chatbench.signoff.baseline import comparison_checks, load_baselines, pick_baseline
from chatbench.signoff.display import Display
from chatbench.signoff.measure import measure, run_load_stage
from chatbench.signoff.options import ServerChoice, SignoffOptions, planned_stages
from chatbench.signoff.recorder import Recorder, StageError, one_line
from chatbench.signoff.servers import choice_text
from chatbench.signoff.stages import (
    drift,
    health_and_plans,
    main_points,
    scaling,
    seed_detail,
    seed_prebuilt,
    seed_summary,
)


def run_signoff(options: SignoffOptions, display: Display) -> tuple[Signoff, frozenset[str]]:
    """Run the pipeline on every chosen server; returns the sign-off and the secrets to scrub from files.

    The size check runs first, for every server: a profile too large for the disk is refused (one
    line, exit 2) before any server starts; a local cluster too large for tmpfs goes to disk.
    """
    from chatbench import loadgen, schema
    from chatbench.loadgen.size import check_space

    spec = loadgen.load_spec(options.profile)
    smaller = tuple(loadgen.load_spec(p) for p in options.scaling())
    placements = {
        choice: check_space(spec, backend=choice.backend, use_cache=options.use_cache, also=smaller)
        for choice in options.servers
    }
    for note in sorted({p.note for p in placements.values() if p.note}):
        display.note(note)
    started = time.perf_counter()
    baselines = load_baselines(options.baseline) if options.baseline is not None else ()
    found_secrets: set[str] = set()
    targets = []
    for index, choice in enumerate(options.servers, start=1):
        if len(options.servers) > 1:
            display.console.rule(f"server {index} of {len(options.servers)}: {choice_text(choice)}")
        targets.append(run_target(choice, options, display, baselines, found_secrets, placements[choice].run_dir))
    from chatbench import __version__ as version

    signoff = Signoff(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        profile=options.profile,
        schema_source=options.schema_source,
        schema_fingerprint=schema.fingerprint(),
        chatbench_version=version,
        targets=tuple(targets),
        baseline=str(options.baseline) if options.baseline is not None else None,
        command=redact(options.command),
        notes=(f"pipeline wall time {time.perf_counter() - started:.1f} s",),
    )
    return signoff, frozenset(found_secrets)


def run_target(
    choice: ServerChoice,
    options: SignoffOptions,
    display: Display,
    baselines: Sequence[tuple[str, BenchmarkRun]],
    found_secrets: set[str],
    run_dir: Path | None = None,
) -> TargetSignoff:
    """The whole pipeline on one server. Never raises for a stage failure: it is recorded instead."""
    rec = Recorder(display)
    state: dict[str, Any] = {}
    stack = contextlib.ExitStack()
    try:
        _pipeline(choice, options, display, rec, state, stack, baselines, found_secrets, run_dir)
    except StageError:
        pass
    finally:
        teardown_started = time.perf_counter()
        try:
            stack.close()
            rec.add(
                StageTiming("teardown", time.perf_counter() - teardown_started, "ok", "server and databases removed")
            )
        except Exception as exc:  # teardown must not hide the verdict; it is reported
            rec.add(StageTiming("teardown", time.perf_counter() - teardown_started, "error", one_line(exc)))
    done = {s.stage for s in rec.stages}
    reason = f"not run: {rec.error.split(':', 1)[0]} errored" if rec.error else "not run"
    skipped = [StageTiming(name, 0.0, "skipped", reason) for name in planned_stages(options) if name not in done]
    order = {name: i for i, name in enumerate(planned_stages(options))}
    stages = tuple(sorted([*rec.stages, *skipped], key=lambda s: order.get(s.stage, len(order))))
    server: Server | None = state.get("server")
    label = state.get("label") or choice_text(choice)
    return TargetSignoff(
        label=label,
        server=server.describe() if server is not None else {"backend": choice.backend},
        stages=stages,
        checks=tuple(rec.checks),
        seed=state.get("seed_summary"),
        verification=state.get("verification"),
        benchmark=state.get("benchmark"),
        comparison=state.get("comparison"),
        scaling=tuple(state.get("scaling", ())),
        error=rec.error,
    )


def _pipeline(
    choice: ServerChoice,
    options: SignoffOptions,
    display: Display,
    rec: Recorder,
    state: dict[str, Any],
    stack: contextlib.ExitStack,
    baselines: Sequence[tuple[str, BenchmarkRun]],
    found_secrets: set[str],
    run_dir: Path | None = None,
) -> None:
    from chatbench import loadgen
    with rec.stage("provision") as info:
        server = stack.enter_context(
            provision(
                choice.backend,
                pg_bin=choice.pg_bin,
                image=choice.image,
                dsn=choice.dsn,
                use_dsn_database=options.use_dsn_database,
                allow_destructive=options.allow_destructive,
                announce=display.note,
                run_dir=run_dir,
            )
        )
        if server.url.password:
            found_secrets.add(str(server.url.password))
        state["server"] = server
        state["label"] = rec.label = f"PostgreSQL {server.version} ({server.backend})"
        info["detail"] = f"{server.backend}, PostgreSQL {server.version}, {server.display_url}"
    spec = loadgen.load_spec(options.profile)
    prebuilt = options.schema_from is not None or options.schema_from_cmd is not None

    with rec.stage("schema") as info:
        if prebuilt:
            from chatbench.schema.migrations import build_from_cmd, build_from_sql

            if options.schema_from is not None:
                build_from_sql(server, options.schema_from)
            else:
                assert options.schema_from_cmd is not None
                build_from_cmd(server, options.schema_from_cmd)
            info["detail"] = f"built by {options.schema_source}"
        else:
            info["detail"] = "canonical models (built around the bulk load from schema.load_phases())"

    if prebuilt:
        drift(server, None, rec, state, display)
        with rec.stage("seed") as info:
            seed_result = seed_prebuilt(server, spec, options, display, stack)
            info["detail"] = seed_detail(seed_result) + "; transplanted into the pre-built schema"
    else:
        with rec.stage("seed") as info:
            seed_result = loadgen.seed(server, spec, seed=options.seed, use_cache=options.use_cache, progress=True)
            info["detail"] = seed_detail(seed_result)
        if seed_result.database != server.database:
            server = server.with_database(seed_result.database, owns_database=True)
            state["server"] = server
    state["seed_summary"] = seed_summary(seed_result)

    with rec.stage("integrity") as info:
        with display.status("integrity check"):
            report = loadgen.check_integrity(
                server,
                spec,
                whales={w.conversation_id: w.messages for w in seed_result.params.whales},
                expected_checksum=seed_result.checksum,
                raise_on_failure=False,
            )
        for item in report.checks:
            rec.check("integrity", item.name, item.ok, f"{item.name}: expected {item.expected}, got {item.actual}")
        info["detail"] = report.summary()
        info["status"] = rec.status_of("integrity")

    if not prebuilt:
        drift(server, seed_result, rec, state, display)
    health_and_plans(server, seed_result, rec, state, display)

    with rec.stage("benchmarks") as info:
        run = measure(server, seed_result, options, display, profile=options.profile)
        # The verification's plans travel with the run, so a later comparison sees plan shapes too.
        plans = (state.get("verification") or {}).get("health_plans", {}).get("plans")
        if plans:
            run = replace(run, notes={**run.notes, "plans": plans})
        for result in run.scenarios:
            message = (
                "; ".join(result.failures)
                if result.failures
                else (
                    f"{result.scenario}: p95 {result.stats.p95:.3f} ms, p99 {result.stats.p99:.3f} ms"
                    + (" (no target)" if result.target is None else " within target")
                )
            )
            rec.check(
                "benchmarks",
                result.scenario,
                result.verdict != "FAIL",
                message,
                "error" if result.target is not None else "info",
            )
        for name, why in dict(run.notes.get("skipped", {})).items():
            rec.check("benchmarks", name, False, f"{name}: not measured: {why}", "warning")
        state["benchmark"] = run
        info["detail"] = (
            f"{len(run.scenarios)} scenarios × {run.notes.get('rounds')} rounds, "
            f"{sum(r.verdict == 'FAIL' for r in run.scenarios)} over target"
        )
        info["status"] = rec.status_of("benchmarks")

    state["scaling"] = main_points(seed_result, run, options.profile)
    if options.scaling():
        state["scaling"] += scaling(server, options, display, rec)

    if options.load:
        with rec.stage("load") as info:
            load = run_load_stage(server, seed_result, options, display)
            run = replace(run, load=load)
            state["benchmark"] = run
            ok = load.errors == 0
            first = f"; first: {load.error_samples[0]}" if load.error_samples else ""
            rec.check("load", "errors", ok, f"load: {load.errors} errors in {load.total} operations{first}")
            info["detail"] = (
                f"{load.clients} clients, {load.throughput_per_s:.0f} ops/s, "
                f"p99 {load.overall.percentiles_ms.get('p99', float('nan')):.3f} ms, {load.errors} errors"
            )
            info["status"] = rec.status_of("load")

    if options.baseline is not None:
        with rec.stage("compare") as info:
            baseline = pick_baseline(baselines, server)
            with display.status("comparing with the baseline"):
                comparison = compare_runs(run, baseline, options.thresholds)
            state["comparison"] = comparison
            comparison_checks(comparison, rec)
            info["detail"] = f"{comparison.verdict}: {comparison.conclusion()}"
            info["status"] = rec.status_of("compare")
