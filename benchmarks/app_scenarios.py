"""The application's own queries (``--queries FILE.sql``) as benchmark scenarios, measured beside the canonical ones.

Each query of the file becomes one scenario per scenario role its parameters bind (whale, deep, small, tie,
heavy, light; ``all`` for a query that names neither a conversation nor a user), bound by the function
``verify`` judges its plans with (``verify.scenarios.build_app_scenarios``), so the benchmark times exactly the
parameter set whose plan the contract judged. A scenario is named ``app:QUERY/ROLE``: the colon is in no
canonical scenario's name, so the two can never collide in a run, a comparison or a report.

Measured by ``BenchSession.measure`` like every scenario: a prepared statement on the pinned connection,
warm-up discarded, raw samples kept, buffers from ``EXPLAIN (ANALYZE, BUFFERS)`` of the prepared statement
as the client receives the rows. A write runs each round in its own transaction, always rolled back (the
BEGIN and ROLLBACK are in its timing): an application's UPDATE or DELETE must not change the data the
scenarios after it read.

Targets: an application query is held to what the canonical query of its kind is held to for the profile
(a page to ``latest_page``, a list to ``conversation_list_first``, a write to ``append_message``: the same
argued latency) and to its plan contract's buffer budget (``verify.appplans.contract_for``, the budget
``verify`` judges). ``[queries.NAME]`` of the targets file overrides both (``p95_ms``, ``buffers``; p99 keeps
the canonical ratio to p95).

The scenario's ``params_version`` hashes its SQL text (``BenchSession``), so ``compare`` reports an edited
query ``changed`` instead of comparing it with the old query's numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg.rows import TupleRow

from chatbench.benchmarks import scenarios as sc
from chatbench.benchmarks.results import Target
from chatbench.benchmarks.targets import Targets
from chatbench.errors import redact
from chatbench.loadgen.result import SeedParameters
from chatbench.schema.appqueries import AppQueries, AppQuery
from chatbench.schema.queries import CanonicalQuery
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.settings import Driver
from chatbench.verify.appplans import AppContract, contract_for
from chatbench.verify.scenarios import build_app_scenarios

PREFIX = "app:"
"""Every application scenario's name starts with it (no canonical scenario name has a colon)."""
COUNTERPARTS: Mapping[str, str] = MappingProxyType({
    "page": "latest_page", "small_page": "latest_page", "list": "conversation_list_first", "write": "append_message",
})
"""An application scenario's budget kind -> the canonical scenario whose latency target it is held to."""


def scenario_name(query: str, role: str) -> str:
    """``app:history_page/whale``."""
    return f"{PREFIX}{query}/{role}"


def is_app(name: str) -> bool:
    return name.startswith(PREFIX)


@dataclass(frozen=True)
class AppStatement:
    """An application query in the form ``benchmarks.scenarios`` executes a statement (``Statement``)."""

    query: AppQuery

    @property
    def name(self) -> str:
        """Names its prepared statements: an identifier no canonical query has."""
        return f"app_{self.query.name}"

    @property
    def kind(self) -> str:
        return self.query.kind

    @property
    def returns_rows(self) -> bool:
        return self.query.kind == "read"

    @property
    def tags(self) -> frozenset[str]:
        return frozenset({"app"})

    def sql(self) -> str:
        return self.query.sql

    def sql_positional(self) -> tuple[str, tuple[str, ...]]:
        return self.query.positional, self.query.order


@dataclass(frozen=True, kw_only=True)
class AppScenario(sc.Scenario):
    """One application query bound to one scenario role; measured by the session like a canonical scenario."""

    app: AppQuery
    role: str  # whale, deep, small, tie, heavy, light, all
    budget_kind: str  # the plan contract's budget key: page, small_page, list, write
    bound: Mapping[str, Any]  # the parameter set verify judged the plan with
    contract: AppContract

    @property
    def canonical(self) -> CanonicalQuery:
        raise LookupError(f"{self.name} runs the application's query {self.app.name}, not a canonical one")

    @property
    def statement(self) -> sc.Statement:
        return AppStatement(self.app)

    @property
    def kind(self) -> str:
        return self.app.kind

    def bind(self, conn: psycopg.Connection[TupleRow], seed: SeedParameters) -> list[sc.Params]:
        return [dict(self.bound)]

    def runner(self, conn: psycopg.Connection[TupleRow], driver: Driver = "psycopg") -> Callable[[sc.Params], int]:
        """As ``scenarios.runner`` (rows counted whether or not a write returns any), a write inside a transaction
        rolled back every round (the prepared statement kept across rounds, as for a read)."""
        if driver == "libpq":
            run = sc.runner(conn, self.statement, driver)
        else:
            cursor = conn.cursor()
            execute, text = cursor.execute, self.app.sql

            def run(params: sc.Params) -> int:
                execute(text, params, prepare=True)
                return len(cursor.fetchall()) if cursor.description is not None else 0

        if self.app.kind == "read":
            return run
        pgconn = conn.pgconn

        def rolled_back(params: sc.Params) -> int:
            # BEGIN/ROLLBACK sent as they are: psycopg's own transaction() answers a rollback with DEALLOCATE
            # ALL, which would drop the prepared statement every round (a PREPARE survives a ROLLBACK).
            pgconn.exec_(b"BEGIN")
            try:
                return run(params)
            finally:
                pgconn.exec_(b"ROLLBACK")

        return rolled_back

    def target_in(self, targets: Targets, profile: str) -> Target | None:
        """The canonical counterpart's latency (``COUNTERPARTS``) and the plan contract's buffer budget, each
        overridden by ``[queries.NAME]`` (module docstring)."""
        counterpart = COUNTERPARTS.get(self.budget_kind, "latest_page")
        base = targets.get(counterpart, profile)
        p95, p99 = (base.p95_ms, base.p99_ms) if base is not None else (None, None)
        override = self.contract.p95_ms
        if override is not None:
            p99 = round(override * p99 / p95, 3) if p95 and p99 else None
            p95 = override
        buffers = self.contract.plan.budget(self.budget_kind)
        if p95 is None and p99 is None and buffers is None:
            return None
        why = (f"{self.app.name}: [queries.{self.app.name}] of {targets.source}" if override is not None
               else f"an application {self.budget_kind.replace('_', ' ')}: {counterpart}'s latency")
        return Target(p95_ms=p95, p99_ms=p99, buffers=buffers,
                      why=f"{why}, the plan contract's {self.budget_kind} buffer budget")


def app_scenarios(conn: psycopg.Connection[TupleRow], seed: SeedParameters, queries: AppQueries,
                  roles: RoleMap = CANONICAL) -> tuple[tuple[AppScenario, ...], dict[str, str]]:
    """(the scenarios, query scenario -> why not measured): every query bound to every role it allows on this
    database. A query the data has no instance of, or whose binding the server refuses, is listed with the reason
    instead, under ``app:QUERY``."""
    out: list[AppScenario] = []
    skipped: dict[str, str] = {}
    for query in queries:
        contract = contract_for(query, roles, queries.override(query.name))
        try:
            bound = build_app_scenarios(conn, seed, query, roles)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            skipped[scenario_name(query.name, "*")] = redact(f"its parameters could not be bound: "
                                                             f"{type(exc).__name__}: {first}")
            continue
        if not bound:
            skipped[scenario_name(query.name, "*")] = "the seeded data has no instance of any scenario it allows"
        for s in bound:
            extra: dict[str, Any] = {"app_query": query.name, "role": s.key, "queries_file": queries.source,
                                     "budget_kind": s.kind}
            if query.kind == "write":
                extra["transaction"] = "each round rolled back (BEGIN and ROLLBACK timed)"
            out.append(AppScenario(
                name=scenario_name(query.name, s.key), query=AppStatement(query).name, doc=s.description,
                depth=s.depth, extra=MappingProxyType(extra), app=query, role=s.key, budget_kind=s.kind,
                bound=s.params, contract=contract))
    return tuple(out), skipped
