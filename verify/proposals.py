"""A proven fix for each index finding: the index proposed from the query, built on a copy, measured.

When an application query breaks its plan contract for want of an index (``no_index``, ``unbounded_sort``,
``join_without_index``, ``over_budget``), the index is read off the query the way a reviewer writes it:
the columns it fixes by equality, then its ORDER BY (with its directions), then its cursor columns (for a
joined table read whole: its join column). Then it is proven, never assumed:

1. the seeded database is copied (``CREATE DATABASE ... TEMPLATE``): the original is never changed;
2. on the copy, the query's contract and a short benchmark (p95 of prepared executions) run before,
   ``CREATE INDEX CONCURRENTLY`` builds the index (timed, as a release would build it), ``ANALYZE``,
   and both run again; an append of rows to the table is timed before and after (the index's cost to
   every write);
3. the index is *proposed* only if the query's contract passes with it; otherwise the report says that
   no index from the query fixes it (a rewrite does: the defect's name says which).

The report gives the plan, buffers and p95 before and after, the index's size, its build time and that
time extrapolated linearly to ``--production-messages``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from chatbench.loadgen.result import SeedParameters
from chatbench.loadgen.target import read_target
from chatbench.provision import Server
from chatbench.provision.databases import temporary_database
from chatbench.schema.appqueries import AppQueries, AppQuery
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify.appplans import (
    CHECK,
    app_context,
    judge_app,
    measure_app,
    time_query,
)
from chatbench.verify.catalog import read_catalog
from chatbench.verify.context import connect
from chatbench.verify.findings import Finding
from chatbench.verify.index_candidate import Candidate, candidate, existing_index, identifier

INDEX_DEFECTS = frozenset({"no_index", "unbounded_sort", "join_without_index", "over_budget"})
APPEND_ROWS = 200
APPEND_ROUNDS = 5
BENCH_ROUNDS = 40


@dataclass(frozen=True)
class Side:
    """The query on the copy before or after the index: its errors, worst plan and a short benchmark."""

    errors: int
    buffers: int  # worst over its scenarios and plan modes
    plan: str  # the worst plan's shape
    p95_ms: float
    append_us_per_row: float | None
    not_chosen: int = 0  # plans the planner read through another index within budget (``index_not_chosen``)


@dataclass(frozen=True)
class Proposal:
    query: str
    defects: tuple[str, ...]
    candidate: Candidate
    proven: bool  # the contract passes with the index
    before: Side
    after: Side
    size_bytes: int
    build_seconds: float
    table_rows: int
    production_seconds: float
    production_messages: float

    def finding(self) -> Finding:
        sizes = f"size {self.size_bytes / 1024:.0f} kB, built CONCURRENTLY in {self.build_seconds:.2f} s " \
                f"({self.table_rows} rows; ~{self.production_seconds:.0f} s at {self.production_messages:g} messages)"
        append = ""
        if self.before.append_us_per_row is not None and self.after.append_us_per_row is not None:
            append = (f"; appends {self.before.append_us_per_row:.1f} -> {self.after.append_us_per_row:.1f} µs/row")
        chosen = (f" ({self.after.not_chosen} plan(s) read through another index within budget on this data: "
                  "index_not_chosen)" if self.after.not_chosen else "")
        evidence = (f"before: {self.before.errors} errors, {self.before.buffers} buffers, p95 "
                    f"{self.before.p95_ms:.2f} ms, {self.before.plan}; after: {self.after.errors} errors{chosen}, "
                    f"{self.after.buffers} buffers, p95 "
                    f"{self.after.p95_ms:.2f} ms, {self.after.plan}; {sizes}{append}")
        if self.proven:
            return Finding(CHECK, "proposed_index", f"{self.candidate.table}.{self.candidate.name}",
                           "an index that makes the contract pass", self.candidate.definition(), "info",
                           query=self.query, scenario="copy", detail=evidence)
        return Finding(CHECK, "no_index_fix", self.query, "an index that makes the contract pass",
                       f"{self.candidate.definition()} leaves {self.after.errors} errors: fix the query "
                       f"({', '.join(self.defects)})", "info", query=self.query, scenario="copy", detail=evidence)


def _side(conn: psycopg.Connection[Any], server: Server, params: SeedParameters, queries: AppQueries, query: AppQuery,
          roles: RoleMap, table: str) -> Side:
    one = AppQueries(queries.source, (query,), queries.overrides)
    ctx = app_context(server, conn, params, False)
    run = measure_app(ctx, one, roles)
    # judged as verify judges the schema with the index in it: a plan the planner reads through another index
    # within budget is a warning there (``index_not_chosen``), counted apart so the evidence says so
    judged = judge_app(ctx, one, run, roles)
    errors = [f for f in judged if f.severity == "error"]
    not_chosen = sum(1 for f in judged if f.kind == "index_not_chosen")
    worst = max(run.measurements, key=lambda m: m.measurement.plan.buffers, default=None)
    p95 = 0.0
    if worst is not None:
        p95 = time_query(conn, query, worst.measurement.scenario.params, rounds=BENCH_ROUNDS)[1]
    return Side(len(errors), worst.measurement.plan.buffers if worst else 0,
                worst.measurement.plan.root.shape() if worst else "", p95, _append_cost(conn, table), not_chosen)


def _append_cost(conn: psycopg.Connection[Any], table: str) -> float | None:
    """µs per row of appending ``APPEND_ROWS`` copies of existing rows (rolled back); None when a unique column
    without a default makes a copy impossible."""
    target = read_target(conn).table(table)
    if target is None:
        return None
    columns = [c for c in target.columns if not c.generated and not c.identity and not (c.unique and c.has_default)]
    if any(c.unique for c in columns):
        return None
    names = ", ".join(identifier(c.name) for c in columns)
    statement = f"INSERT INTO {identifier(table)} ({names}) SELECT {names} FROM {identifier(table)} LIMIT {APPEND_ROWS}"
    samples = []
    for _ in range(APPEND_ROUNDS):
        try:
            with conn.transaction(force_rollback=True):
                started = time.perf_counter()
                conn.execute(statement)
                samples.append(time.perf_counter() - started)
        except psycopg.errors.IntegrityError:  # a composite key (partitioned tables) that a copy repeats
            return None
    samples.sort()
    return samples[len(samples) // 2] / APPEND_ROWS * 1e6


def prove(server: Server, params: SeedParameters, queries: AppQueries, query: AppQuery, cand: Candidate,
          defects: tuple[str, ...], roles: RoleMap, production_messages: float) -> Proposal:
    """Build ``cand`` on a copy of ``server``'s database and measure the query before and after it."""
    with temporary_database(server, "cbv_fix", template=server.database) as copy, \
            connect(copy, read_only=False) as conn:
        conn.execute("SET jit = off")
        before = _side(conn, copy, params, queries, query, roles, cand.table)
        leaves = [str(r[0]) for r in conn.execute(
            "SELECT relid::regclass::text FROM pg_partition_tree(to_regclass(%s)) WHERE isleaf AND relid <> "
            "to_regclass(%s)", (identifier(cand.table), identifier(cand.table)))]
        started = time.perf_counter()
        for statement in cand.build_statements(leaves):
            conn.execute(statement)
        build = time.perf_counter() - started
        conn.execute(f"ANALYZE {identifier(cand.table)}")
        size = conn.execute("SELECT greatest(pg_relation_size(to_regclass(%(i)s)), (SELECT sum(pg_relation_size("
                            "relid)) FROM pg_partition_tree(to_regclass(%(i)s))))",
                            {"i": identifier(cand.name)}).fetchone()
        rows = conn.execute(f"SELECT count(*) FROM {identifier(cand.table)}").fetchone()
        messages = conn.execute(f"SELECT count(*) FROM {identifier(roles.table('messages'))}").fetchone()
        after = _side(conn, copy, params, queries, query, roles, cand.table)
    table_rows = int(rows[0]) if rows else 0
    message_rows = max(int(messages[0]) if messages else 1, 1)
    production_rows = production_messages * table_rows / message_rows
    return Proposal(query.name, defects, cand, after.errors == 0, before, after, int(size[0] or 0) if size else 0,
                    build,
                    table_rows, build * production_rows / max(table_rows, 1), production_messages)


def propose_and_prove(server: Server, params: SeedParameters, queries: AppQueries, found: Sequence[Finding], *,
                      roles: RoleMap = CANONICAL, production_messages: float = 1e9) -> tuple[Proposal, ...]:
    """A proposal for every query whose contract failed for want of an index (module docstring)."""
    out: list[Proposal] = []
    live = None
    for query in queries:
        mine = [f for f in found if f.severity == "error" and f.check == CHECK and (f.query or "").split(" ")[0]
                == query.name]
        defects = tuple(dict.fromkeys(f.kind for f in mine))
        if not mine or not set(defects) <= INDEX_DEFECTS | {"lost_rows", "repeated_rows"} \
                or not set(defects) & INDEX_DEFECTS:
            continue
        cand = candidate(query, defects, [f.object for f in mine], roles)
        if cand is None:
            continue
        if live is None:
            with connect(server, read_only=True) as conn:
                live = read_catalog(conn)
        if existing_index(cand, live) is not None:
            continue  # the index exists: more of it will not help
        out.append(prove(server, params, queries, query, cand, defects, roles, production_messages))
    return tuple(out)
