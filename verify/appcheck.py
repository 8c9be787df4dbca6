"""The application's queries judged in one call: plan contracts, page walks and, for a missing index, the
proven fix. ``verify``, ``signoff`` and the pytest plugin call ``verify_app_queries`` after the schema's own
verification and merge its findings (check ``queries``) into their report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from types import MappingProxyType

from chatbench.loadgen.result import SeedParameters
from chatbench.provision import Server
from chatbench.schema.appqueries import AppQueries
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify import pagewalk
from chatbench.verify.appplans import CHECK, AppPlanRun, app_context, judge_app, measure_app
from chatbench.verify.context import connect
from chatbench.verify.findings import Finding
from chatbench.verify.proposals import Proposal, propose_and_prove
from chatbench.verify.result import CheckOutcome, PlanSummary, VerificationResult


@dataclass(frozen=True)
class AppVerification:
    """What the application's queries showed: findings, measured plans, walks and proven indexes."""

    queries: AppQueries
    findings: tuple[Finding, ...]
    run: AppPlanRun
    walks: tuple[pagewalk.Walk, ...]
    proposals: tuple[Proposal, ...]
    timings: MappingProxyType[str, float]

    @property
    def passed(self) -> bool:
        return not any(f.severity == "error" for f in self.findings)

    def errors_of(self, query: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error" and (f.query or "").split(" ")[0] == query)


def verify_app_queries(
    server: Server,
    params: SeedParameters | None,
    queries: AppQueries,
    *,
    roles: RoleMap = CANONICAL,
    read_only: bool = False,
    prove: bool = True,
    production_messages: float = 1e9,
    progress: Callable[[str], None] | None = None,
) -> AppVerification:
    """Judge every query of ``queries`` on ``server``'s seeded database (module docstring). ``prove`` builds
    each proposed index on a copy of the database (never when ``read_only``)."""
    timings: dict[str, float] = {}
    started = time.perf_counter()
    with connect(server, read_only=read_only) as conn:
        ctx = app_context(server, conn, params, read_only)
        if progress:
            progress("queries.plans")
        run = measure_app(ctx, queries, roles)
        found = judge_app(ctx, queries, run, roles)
        timings["queries.plans"] = time.perf_counter() - started
        t = time.perf_counter()
        if progress:
            progress("queries.page_walk")
        walked = pagewalk.walks(conn, queries.queries, params, roles) if params is not None else ()
        by_name = {q.name: q for q in queries}
        found.extend(pagewalk.findings(walked, by_name))
        timings["queries.page_walk"] = time.perf_counter() - t
    proposals: tuple[Proposal, ...] = ()
    if prove and params is not None:
        t = time.perf_counter()
        if progress:
            progress("queries.proposals")
        if read_only:
            failing = sorted({(f.query or "").split(" ")[0] for f in found if f.severity == "error"})
            if failing:
                found.append(Finding(CHECK, "fix_not_proven", ", ".join(failing), "an index proven on a copy",
                                     "not built: the database is not chatbench's (read-only)", "info"))
        else:
            proposals = propose_and_prove(server, params, queries, found, roles=roles,
                                          production_messages=production_messages)
            found.extend(p.finding() for p in proposals)
        timings["queries.proposals"] = time.perf_counter() - t
    timings["queries"] = time.perf_counter() - started
    return AppVerification(queries, tuple(found), run, walked, proposals, MappingProxyType(timings))


def merged_result(result: VerificationResult, app: AppVerification) -> VerificationResult:
    """``result`` with the application's queries' findings, check outcomes and plans added."""
    outcomes = []
    for name in ("queries.plans", "queries.page_walk", "queries.proposals"):
        if name not in app.timings:
            continue
        mine = [f for f in app.findings if f.kind in _KINDS.get(name, ()) or (
            name == "queries.plans" and not any(f.kind in k for k in _KINDS.values()))]
        count = {s: sum(f.severity == s for f in mine) for s in ("error", "warning", "info")}
        outcomes.append(CheckOutcome(name, _DOCS[name], not count["error"], count["error"], count["warning"],
                                     count["info"], app.timings[name]))
    plans = tuple(PlanSummary(m.measurement.scenario.key, m.measurement.scenario.description, m.query,
                              m.measurement.plan.mode, m.measurement.plan.buffers, m.measurement.plan.execution_ms,
                              m.measurement.plan.root.shape()) for m in app.run.measurements)
    findings = sorted((*result.findings, *app.findings), key=Finding.report_order)
    return replace(result, findings=tuple(findings), checks=(*result.checks, *outcomes),
                   plans=(*result.plans, *plans), timings={**result.timings, **app.timings})


# The finding kinds of the walk and proposal checks; every other kind belongs to queries.plans.
_KINDS = {"queries.page_walk": ("lost_rows", "repeated_rows", "walk_stuck", "page_walk"),
          "queries.proposals": ("proposed_index", "no_index_fix", "fix_not_proven")}
_DOCS = {
    "queries.plans": "the application's queries keep their plan contracts (custom and generic plans)",
    "queries.page_walk": "every page of the largest conversation and list: every row exactly once",
    "queries.proposals": "each missing index proposed from the query and proven on a copy of the database",
}
