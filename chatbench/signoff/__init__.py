"""The pre-release sign-off pipeline: every stage, in order, on one or more servers, then the reports.

provision → schema (canonical, or the application's own ``--schema-from``) → drift → seed (cache)
→ integrity → health + plan contracts → benchmarks vs targets → scaling by data size → optional load
→ optional baseline comparison; teardown always. Each stage is timed and recorded as a
``StageTiming``; what it judged becomes ``CheckItem``s; the whole is a frozen ``reports.signoff``
model that the renderers turn into files. This package wires stages together and measures nothing
itself: benchmarks go through ``benchmarks.session.BenchSession.measure``, checks through
``chatbench.verify.verify``, data through ``loadgen``.

A stage that cannot run (a ChatbenchError, a database error, a bug) stops that server's pipeline:
the remaining stages are recorded as skipped and the verdict is ERROR (exit 2); a stage that ran
and found problems is ``failed`` and the pipeline goes on, so one run lists every failing item.

Layout: ``options`` (what to run; where is ``chatbench.provision.choice``), ``display`` (the terminal), ``recorder``
(stage and check bookkeeping), ``measure`` (the benchmark adapter), ``stages`` (verification, seed,
scaling), ``baseline`` (comparison), ``pipeline`` (the order). This module only re-exports the names
other code imports, so ``from chatbench.signoff import ...`` stays the one entry point.
"""

from __future__ import annotations

from chatbench.benchmarks.session import MIN_BUDGET_ROUNDS
from chatbench.signoff.baseline import load_baselines, pick_baseline
from chatbench.signoff.display import Display, summary_table
from chatbench.signoff.measure import budgeted_rounds, measure, run_load_stage
from chatbench.signoff.options import (
    CONTRAST_ROUNDS,
    PROFILE_ORDER,
    SCALING_SCENARIOS,
    SIGNOFF_ROUNDS,
    SignoffOptions,
    planned_stages,
)
from chatbench.signoff.pipeline import run_signoff, run_target

__all__ = [
    "CONTRAST_ROUNDS",
    "MIN_BUDGET_ROUNDS",
    "PROFILE_ORDER",
    "SCALING_SCENARIOS",
    "SIGNOFF_ROUNDS",
    "Display",
    "SignoffOptions",
    "budgeted_rounds",
    "load_baselines",
    "measure",
    "pick_baseline",
    "planned_stages",
    "run_load_stage",
    "run_signoff",
    "run_target",
    "summary_table",
]
