"""One run over every chosen server: the declared stages in order on each, teardown always, then the sign-off.

A stage that cannot run stops that server's pipeline (``StageError``): the remaining stages are
recorded as skipped and teardown still runs; a stage that ran and found problems goes on, unless it
left nothing for the next stages to judge (``Evidence.halted``: a migration that did not complete),
when the remaining stages are recorded as not run and its failed checks decide the verdict.
"""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime
from pathlib import Path

from chatbench import __version__ as version
from chatbench import loadgen
from chatbench.errors import redact
from chatbench.loadgen.size import check_space
from chatbench.loadgen.spec import Spec
from chatbench.provision.choice import ServerChoice, choice_text
from chatbench.reports.signoff import CitusRun, SeedSummary, ServerSummary, Signoff, StageTiming, TargetSignoff
from chatbench.signoff.baseline import Baselines, check_baseline_profile, resolve_baselines
from chatbench.signoff.display import Display
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.options import SignoffOptions
from chatbench.signoff.recorder import Recorder, StageError, one_line
from chatbench.signoff.stages import TEARDOWN, planned_stages, stages_for


def run_signoff(options: SignoffOptions, display: Display) -> tuple[Signoff, frozenset[str]]:
    """Run the pipeline on every chosen server; returns the sign-off and the secrets to scrub from files.

    The size check runs first, for every server: a profile too large for the disk is refused (one
    line, exit 2) before any server starts; a local cluster too large for tmpfs goes to disk.
    """
    spec = loadgen.load_spec(options.profile)
    smaller = tuple(loadgen.load_spec(p) for p in options.scaling())
    choices = options.targets()
    placements = {
        choice: check_space(spec, backend=choice.backend, use_cache=options.use_cache, also=smaller)
        for choice in choices
    }
    for note in sorted({p.note for p in placements.values() if p.note}):
        display.note(note)
    if options.no_comparison:
        display.note(options.no_comparison)
    started = time.perf_counter()
    baselines = resolve_baselines(options)
    check_baseline_profile(baselines.pairs, options)
    found_secrets: set[str] = set()
    targets = []
    for index, choice in enumerate(choices, start=1):
        if len(choices) > 1:
            beside = " (the single node beside the cluster)" if options.citus and choice.backend == "local" else (
                f" (a Citus cluster, distributed {options.citus_distribution})" if options.on_cluster(choice) else "")
            display.console.rule(f"server {index} of {len(choices)}: {choice_text(choice)}{beside}")
        targets.append(run_target(choice, options, display, baselines, found_secrets, placements[choice].run_dir,
                                  specs=(spec, smaller)))
    signoff = Signoff(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        profile=options.profile,
        schema_source=options.schema_source,
        schema_fingerprint=options.package.fingerprint(),
        chatbench_version=version,
        targets=tuple(targets),
        baseline=baselines.name,
        command=redact(options.command),
        notes=(f"pipeline wall time {time.perf_counter() - started:.1f} s",),
        citus=CitusRun(options.citus_distribution, options.no_comparison) if options.citus else None,
    )
    return signoff, frozenset(found_secrets)


def run_target(
    choice: ServerChoice,
    options: SignoffOptions,
    display: Display,
    baselines: Baselines,
    found_secrets: set[str],
    run_dir: Path | None = None,
    *,
    specs: tuple[Spec, tuple[Spec, ...]],
) -> TargetSignoff:
    """The whole pipeline on one server. Never raises for a stage failure: it is recorded instead.
    ``specs``: the profile's data spec and the scaling profiles' (loaded once per sign-off); ``baselines``: what
    ``--baseline`` resolved to."""
    rec = Recorder(display)
    evidence = Evidence()
    stack = contextlib.ExitStack()
    ctx = StageContext(options, choice, display, rec, stack, specs[0], baselines.pairs, found_secrets, run_dir,
                       scaling_specs=specs[1], history=baselines.history)
    try:
        for stage in stages_for(options):
            evidence = stage.run(ctx, evidence)
            if evidence.halted is not None:
                break
    except StageError:
        pass
    finally:
        teardown_started = time.perf_counter()
        try:
            stack.close()
            rec.add(StageTiming(TEARDOWN, time.perf_counter() - teardown_started, "ok", "server and databases removed"))
        except Exception as exc:  # teardown must not hide the verdict; it is reported
            rec.add(StageTiming(TEARDOWN, time.perf_counter() - teardown_started, "error", one_line(exc)))
    planned = planned_stages(options)
    done = {s.stage for s in rec.stages}
    reason = (f"not run: {rec.error.split(':', 1)[0]} errored" if rec.error
              else f"not run: {evidence.halted}" if evidence.halted else "not run")
    skipped = [StageTiming(name, 0.0, "skipped", reason) for name in dict.fromkeys(planned) if name not in done]
    order = {name: i for i, name in enumerate(planned)}
    stages = tuple(sorted([*rec.stages, *skipped], key=lambda s: order.get(s.stage, len(order))))
    server = evidence.server
    return TargetSignoff(
        label=evidence.label or choice_text(choice),
        server=ServerSummary.of(server) if server is not None else ServerSummary(choice.backend),
        stages=stages,
        checks=tuple(rec.checks),
        seed=SeedSummary.of(evidence.seed) if evidence.seed is not None else None,
        verification=evidence.verification if evidence.verification.ran else None,
        benchmark=evidence.benchmark,
        comparison=evidence.comparison,
        scaling=evidence.scaling,
        migration=evidence.migration,
        error=rec.error,
        query_costs=evidence.query_costs,
    )
