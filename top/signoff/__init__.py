"""The pre-release sign-off pipeline: every stage, in order, on one or more servers, then the reports.

provision → schema (canonical, or the application's own ``--schema-from``) → drift → seed (cache)
→ integrity → health + plan contracts → benchmarks vs targets → scaling by data size → optional load
→ optional baseline comparison; teardown always. With ``--migration`` a ``migration`` stage takes the
place of schema, seed and integrity: the before-schema is seeded and the release's migration rehearsed
on it under live load (``chatbench.rehearse``), and the later stages judge the migrated database.
The order is declared once, in ``stages.STAGES``.
Each stage is a function ``(StageContext, Evidence) -> Evidence``: it reads what earlier stages
produced from the frozen ``Evidence`` by attribute and returns it with its own part filled in; it is
timed and recorded as a ``StageTiming``; what it judged becomes ``CheckItem``s; the whole is a frozen
``reports.signoff`` model that the renderers turn into files. This package wires stages together and
measures nothing itself: benchmarks go through ``benchmarks.session.BenchSession.measure``, checks
through ``chatbench.verify.verify``, data through ``loadgen``.

A stage that cannot run (a ChatbenchError, a database error, a bug) stops that server's pipeline:
the remaining stages are recorded as skipped and the verdict is ERROR (exit 2); a stage that ran
and found problems is ``failed`` and the pipeline goes on, so one run lists every failing item.

Layout: ``options`` (what to run; where is ``chatbench.provision.choice``), ``display`` (the terminal),
``recorder`` (stage and check bookkeeping), ``evidence`` (what stages hand each other), the stages by
concern (``build``: provision and schema; ``migration``: the migration rehearsed and handed on;
``data``: seed and integrity; ``verification``: drift, health, plans; ``measure``: benchmarks,
scaling, load; ``baseline``: comparison), ``stages`` (their
order, declared once) and ``pipeline`` (one run over every server). This module only re-exports the
names other code imports, so ``from chatbench.signoff import ...`` stays the one entry point.
"""

from __future__ import annotations

from chatbench.benchmarks.session import MIN_BUDGET_ROUNDS
from chatbench.signoff.baseline import load_baselines, pick_baseline
from chatbench.signoff.display import Display, summary_table
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.measure import budgeted_rounds, measure, run_load_stage
from chatbench.signoff.options import (
    CONTRAST_ROUNDS,
    PROFILE_ORDER,
    SCALING_SCENARIOS,
    SIGNOFF_ROUNDS,
    SignoffOptions,
)
from chatbench.signoff.pipeline import run_signoff, run_target
from chatbench.signoff.stages import STAGES, Stage, planned_stages

__all__ = [
    "CONTRAST_ROUNDS",
    "MIN_BUDGET_ROUNDS",
    "PROFILE_ORDER",
    "SCALING_SCENARIOS",
    "SIGNOFF_ROUNDS",
    "STAGES",
    "Display",
    "Evidence",
    "SignoffOptions",
    "Stage",
    "StageContext",
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
