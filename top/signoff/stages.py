"""The stages of a sign-off on one server, in order: declared here once.

Each entry names the rows it records in the stage table, the function that runs it (``(StageContext,
Evidence) -> Evidence``) and when it applies. The pipeline runs exactly these, and a stage that did
not get to run (an earlier one could not) is listed as skipped from the same declaration. An
application-built schema (``--schema-from``) is checked for drift before the seed, so a broken
migration is named before minutes of seeding; the canonical schema is built around the bulk load,
so its drift check comes after the seed. With ``--migration`` the ``migration`` stage takes the place
of schema, seed and integrity: it seeds the before-schema, migrates it under live load and hands the
migrated database on (its rows are the seed's plus what the app appended meanwhile, so the seed's
checksum no longer describes them: the seed was verified when it was made), and drift, health,
plans and benchmarks judge that database. Against ``--baseline history:BRANCH`` a ``confirm`` stage follows
the comparison: what it found slower on this run is measured again before it may FAIL (``baseline``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from chatbench.history import is_history_baseline
from chatbench.signoff.baseline import CONFIRM, compare_stage, confirm_stage
from chatbench.signoff.build import provision_stage, schema_stage
from chatbench.signoff.data import integrity_stage, seed_stage
from chatbench.signoff.evidence import Evidence, StageContext
from chatbench.signoff.measure import benchmarks_stage, load_stage, scaling_stage
from chatbench.signoff.migration import migration_stage
from chatbench.signoff.options import SignoffOptions
from chatbench.signoff.verification import drift_stage, health_and_plans_stage, readiness_stage

StageFn = Callable[[StageContext, Evidence], Evidence]


def _always(_options: SignoffOptions) -> bool:
    return True


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline: the stage-table rows it records, what runs, and when it applies."""

    rows: tuple[str, ...]
    run: StageFn
    applies: Callable[[SignoffOptions], bool] = _always


def _migrating(options: SignoffOptions) -> bool:
    return options.migration is not None


def _built_here(options: SignoffOptions) -> bool:
    return options.migration is None


def _against_history(options: SignoffOptions) -> bool:
    return options.baseline is not None and is_history_baseline(options.baseline)


STAGES: tuple[Stage, ...] = (
    Stage(("provision",), provision_stage),
    Stage(("schema",), schema_stage, _built_here),
    Stage(("migration",), migration_stage, _migrating),
    Stage(("drift",), drift_stage, lambda o: o.prebuilt),
    Stage(("seed",), seed_stage, _built_here),
    Stage(("integrity",), integrity_stage, _built_here),
    Stage(("drift",), drift_stage, lambda o: not o.prebuilt),
    Stage(("health", "plans"), health_and_plans_stage),
    Stage(("readiness",), readiness_stage, lambda o: o.citus),
    Stage(("benchmarks",), benchmarks_stage),
    Stage(("scaling",), scaling_stage, lambda o: bool(o.scaling())),
    Stage(("load",), load_stage, lambda o: o.load),
    Stage(("compare",), compare_stage, lambda o: o.baseline is not None),
    Stage((CONFIRM,), confirm_stage, _against_history),
)
TEARDOWN = "teardown"
"""Always last, always run (the pipeline's ``finally``): it is not a step a stage can skip."""


def stages_for(options: SignoffOptions) -> tuple[Stage, ...]:
    return tuple(stage for stage in STAGES if stage.applies(options))


def planned_stages(options: SignoffOptions) -> tuple[str, ...]:
    """The stage-table rows of a run with these options, in order (teardown last)."""
    return (*(row for stage in stages_for(options) for row in stage.rows), TEARDOWN)
