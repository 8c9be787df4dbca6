"""The sign-off's adapter to the benchmark suite: scenarios, rounds and budget, and the short load.

It measures nothing itself: every number goes through ``benchmarks.session.BenchSession.measure``
and ``benchmarks.session.time_rounds``, so a sign-off's numbers are taken as ``chatbench bench`` takes them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from functools import partial
from typing import Any

import psycopg

from chatbench.benchmarks.results import BenchmarkRun
from chatbench.benchmarks.scenarios import SCENARIOS
from chatbench.benchmarks.session import TimedRounds, open_session, rounds_for, time_rounds
from chatbench.benchmarks.targets import load_targets
from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.signoff.display import Display
from chatbench.signoff.options import CONTRAST_ROUNDS, SIGNOFF_ROUNDS, SignoffOptions


def measure(
    server: Server,
    seed_result: SeedResult,
    options: SignoffOptions,
    display: Display,
    *,
    profile: str,
    only: Sequence[str] | None = None,
    rounds: int | None = None,
    warmup: int | None = None,
) -> BenchmarkRun:
    """Run the benchmark scenarios in-process through ``BenchSession.measure`` (the suite's own code)."""
    targets = load_targets(options.targets_file)
    scenarios = [s for s in SCENARIOS if only is None or s.name in only]
    load_before = os.getloadavg()[0]
    default_rounds, default_warmup = rounds_for(profile)
    if rounds is None:
        rounds = options.rounds if options.rounds is not None else min(default_rounds, SIGNOFF_ROUNDS[0])
    if warmup is None:
        warmup = options.warmup if options.warmup is not None else min(default_warmup, SIGNOFF_ROUNDS[1])
    with (
        open_session(
            server,
            seed_result,
            profile=profile,
            targets=targets,
            pin_mode=options.pin_mode,  # type: ignore[arg-type]
            rounds=rounds,
            warmup=warmup,
        ) as session,
        display.progress() as bar,
    ):
        task = bar.add_task(f"benchmarks ({profile})", total=len(scenarios))
        for scenario in scenarios:
            bar.update(task, description=f"{profile}: {scenario.name}")
            params = session.params_for(scenario)
            if not params:
                session.skipped[scenario.name] = f"the {profile} data has no instance of it ({scenario.doc})"
            else:
                contrast = "contrast" in scenario.canonical.tags
                session.rounds = min(rounds, CONTRAST_ROUNDS[0]) if contrast else rounds
                session.warmup = min(warmup, CONTRAST_ROUNDS[1]) if contrast else warmup
                session.measure(scenario, timed=budgeted_rounds(options.scenario_budget_s), params=params)
            bar.advance(task)
        run = session.to_run()
    # The machine's load while measuring: a comparison warns when either run shared the machine.
    load = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2), "cpus": os.cpu_count() or 1}
    notes = {
        **run.notes,
        "load_average": load,
        "scenario_budget_s": options.scenario_budget_s,
        "data_checksum": seed_result.checksum,
    }
    return replace(run, notes=notes)


def budgeted_rounds(budget_s: float | None) -> TimedRounds:
    """``benchmarks.session.time_rounds`` cut after ``budget_s`` seconds (None: every round).

    A function of the budget alone, so ``BenchSession.measure`` takes it as its timing loop; the
    loop itself (and its minimum of ``MIN_BUDGET_ROUNDS``) lives in ``benchmarks.session``.
    """
    return time_rounds if budget_s is None else partial(time_rounds, budget_s=budget_s)


def run_load_stage(server: Server, seed_result: SeedResult, options: SignoffOptions, display: Display) -> Any:
    from chatbench.benchmarks.loadtest import DEFAULT_WEIGHTS, LoadConfig, run_load
    from chatbench.benchmarks.loadtest.mix import parameter_pools

    weights = dict(DEFAULT_WEIGHTS)
    with psycopg.connect(server.conninfo(), autocommit=True) as conn:
        pools = parameter_pools(conn, seed_result.params, weights)
    config = LoadConfig(
        clients=options.load_clients, duration_s=options.load_seconds, weights=weights, seed=options.seed
    )
    with display.status("load") as update:
        return run_load(server.conninfo(), config, pools, progress=update)
