"""Verification of a live database against a schema package: drift, index health, plan contracts.

``verify(server, seed_result, expected=..., mode=...)`` runs every registered check (see ``registry.py``) over one
``VerificationContext`` and returns a frozen ``VerificationResult``; ``passed`` is False when any
finding has error severity. With ``seed_result=None`` the plan scenarios are discovered from the
data; with ``read_only=True`` nothing is ever written to (or created on) the live server: the
expected schema and the behaviour probes' schema-only copy live on a throwaway local server.

Two drift modes (``mode``): ``exact`` (the database equals ``expected``: every extra is drift) and
``contract`` (the database serves what the canonical queries and behaviours rely on: extras are judged
by what they do). A caller comparing one database both ways (``--models``: exact against the
application's models, contract against the canonical schema) calls ``verify`` twice; every finding
says which judgement it came from (``Finding.against``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import psycopg

from chatbench.loadgen.result import SeedParameters, SeedResult
from chatbench.provision import Server
from chatbench.schema.package import SchemaPackage
from chatbench.schema.package import canonical as canonical_package
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.settings import DriftMode
from chatbench.verify import (  # noqa: F401  (importing registers the checks, in order)
    acceptance,
    citus,
    drift,
    drift_behaviour,
    drift_roles,
    health,
    plans,
)
from chatbench.verify.catalog import CatalogFacts
from chatbench.verify.context import DRIFT_MODES, VerificationContext, build_context, connect
from chatbench.verify.discover import discover
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.probes import ProbeRun
from chatbench.verify.registry import CHECKS
from chatbench.verify.result import CheckOutcome, GrowthCurve, PlanSummary, VerificationResult
from chatbench.verify.sites import LocalScratch

__all__ = [
    "CHECKS",
    "DRIFT_MODES",
    "DriftMode",
    "Finding",
    "Severity",
    "VerificationContext",
    "VerificationResult",
    "verify",
]


def _run_check(ctx: VerificationContext, name: str) -> tuple[list[Finding], float]:
    started = time.perf_counter()
    try:
        found = list(CHECKS[name].fn(ctx))
    except psycopg.Error as exc:  # a check that cannot compute is a failure, never a silent pass
        found = [
            Finding(
                name.split(".")[0],
                "check_failed",
                name,
                "the check runs",
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                "error",
            )
        ]
    return found, time.perf_counter() - started


def verify(
    server: Server,
    seed_result: SeedResult | None = None,
    *,
    read_only: bool = False,
    canonical: tuple[CatalogFacts, str] | None = None,
    only: Iterable[str] | None = None,
    progress: Callable[[str], None] | None = None,
    pg_bin: str | Path | None = None,
    expected: SchemaPackage | None = None,
    mode: DriftMode = "exact",
    roles: RoleMap = CANONICAL,
) -> VerificationResult:
    """Run drift (with the behaviour probes), health and plan checks on ``server``'s database.

    ``expected`` is the schema package the database is compared with (default: the canonical models);
    ``mode`` how extras are judged (see the module docstring); ``roles`` the application's names for the
    roles (``[tool.chatbench.map]``: contract mode judges the role tables through it, and the canonical
    queries are not run on the tables and columns it renames, ``verify/mapped.py``). ``canonical`` lets a caller reuse
    already-read expected facts (tests verifying many mutants; they must be ``expected``'s);
    ``only`` restricts to check names or groups (``drift``, ``health.fk_indexes``); ``pg_bin`` picks
    the binaries of the throwaway local server a read-only verification uses (default: embedded).
    """
    if mode not in DRIFT_MODES:
        raise ValueError(f"mode {mode!r}: give one of {', '.join(DRIFT_MODES)}")
    package = expected if expected is not None else canonical_package()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    selected = _selected_checks(only)
    with contextlib.ExitStack() as stack:
        conn = stack.enter_context(connect(server, read_only=read_only))
        params, source = _plan_parameters(conn, seed_result, selected, timings, roles)
        t = time.perf_counter()
        ctx = build_context(
            server,
            conn,
            params=params,
            params_source=source,
            read_only=read_only,
            canonical=canonical,
            stack=stack,
            scratch=LocalScratch(stack, pg_bin),
            expected=package,
            mode=mode,
            roles=roles,
        )
        timings["catalog"] = time.perf_counter() - t
        findings, outcomes = _run_checks(ctx, selected, f"{mode} {package.name}", progress, timings)
        run = ctx.memo.get("plans")
        probes = ctx.memo.get("behaviour")
    curves, summaries = _plan_evidence(run) if isinstance(run, plans.PlanRun) else ((), ())
    timings["total"] = time.perf_counter() - started
    return VerificationResult(
        server=server.describe(),
        canonical_source=ctx.canonical_source,
        params_source=source,
        read_only=read_only,
        probes_site=probes.site if isinstance(probes, ProbeRun) else "",
        findings=tuple(sorted(findings, key=Finding.report_order)),
        checks=tuple(outcomes),
        curves=curves,
        plans=summaries,
        timings=timings,
        mode=mode,
        expected=package.name,
    )


def _selected_checks(only: Iterable[str] | None) -> list[str]:
    """The registered checks ``only`` names (a check's name or its group), in registration order."""
    wanted = None if only is None else tuple(only)
    return [n for n in CHECKS if wanted is None or any(n == o or n.startswith(o + ".") for o in wanted)]


def _plan_parameters(conn: psycopg.Connection, seed_result: SeedResult | None, selected: list[str],
                     timings: dict[str, float], roles: RoleMap) -> tuple[SeedParameters | None, str]:
    """The plan scenarios' parameters and where they came from: the seed's, else discovered from the data
    through the role map (only when a plan check runs), else none."""
    if seed_result is not None:
        return seed_result.params, "seed"
    if not any(n.startswith("plans.") for n in selected):
        return None, "none"
    t = time.perf_counter()
    try:
        return discover(conn, roles), "discovered"
    except psycopg.Error as exc:  # e.g. no messages table: drift says why, plans report no scenarios
        return None, f"discovery failed: {type(exc).__name__}: {str(exc).splitlines()[0]}"
    finally:
        timings["discover"] = time.perf_counter() - t


def _run_checks(ctx: VerificationContext, selected: list[str], against: str,
                progress: Callable[[str], None] | None,
                timings: dict[str, float]) -> tuple[list[Finding], list[CheckOutcome]]:
    """Every selected check over ``ctx``, each finding labelled with the judgement it came from."""
    findings: list[Finding] = []
    outcomes: list[CheckOutcome] = []
    for name in selected:
        if progress is not None:
            progress(name)
        found, seconds = _run_check(ctx, name)
        found = [replace(f, against=against) for f in found]
        findings.extend(found)
        outcomes.append(CheckOutcome(
            name,
            CHECKS[name].doc,
            not any(f.severity == "error" for f in found),
            sum(f.severity == "error" for f in found),
            sum(f.severity == "warning" for f in found),
            sum(f.severity == "info" for f in found),
            seconds,
        ))
        timings[name] = seconds
    return findings, outcomes


def _plan_evidence(run: plans.PlanRun) -> tuple[tuple[GrowthCurve, ...], tuple[PlanSummary, ...]]:
    """The plan run's growth curves (keyset and offset paging, per plan mode) and per-scenario summaries."""
    curves = tuple(
        GrowthCurve(curve, query, plan_mode, points)
        for curve, query in (("keyset", "messages_before"), ("offset", "messages_offset"))
        for plan_mode in plans.MODES
        if (points := run.curve(curve, plan_mode))
    )
    summaries = tuple(
        PlanSummary(m.scenario.key, m.scenario.description, m.scenario.query, m.plan.mode, m.plan.buffers,
                    m.plan.execution_ms, m.plan.root.shape())
        for m in run.measurements
    )
    return curves, summaries
