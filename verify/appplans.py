"""Plan contracts of the application's own queries (``--queries``), judged like the canonical ones.

Each query of the file gets a contract derived from what it is (``AppContract``): the big tables (the
tables playing ``messages`` and ``conversations``, through the role map) are never Seq Scanned; the table
it pages through is read through an index that leads with a column the query fixes by equality and,
when it sorts, delivers its ORDER BY; a Sort takes a bounded number of rows; a statement touches at most
a budget of buffers per scenario kind and returns at most a page of rows. ``[queries.NAME]`` of a
targets file widens any of them for one query. Every scenario is measured in both plan modes (custom:
literal values; generic: PREPARE + ``force_generic_plan``), as the canonical queries are.

A breach is named by the defect that explains it, from the query's shape and the plan's evidence
(``DEFECTS``): a reviewer reads ``no_limit`` or ``function_on_column`` with the offending plan node, not
only "too many buffers". Writes run inside a transaction that is always rolled back; against a database
chatbench did not create (read-only) a write is refused in one line and never sent.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg

from chatbench.loadgen.result import SeedParameters
from chatbench.provision import Server
from chatbench.schema.appqueries import AppQueries, AppQuery, ContractOverride
from chatbench.schema.contracts import PAGE_SIZE, IndexAccess, PlanContract
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify.catalog import CatalogFacts, IndexFact, read_catalog
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding
from chatbench.verify.index_candidate import big_tables, candidate, driving_table, existing_index
from chatbench.verify.plans import MODES, Breach, Measurement, Plan, explain_plan, judge, read_as_parents
from chatbench.verify.scenarios import Scenario, build_app_scenarios

CHECK = "queries"
DEFAULT_BUDGETS: Mapping[str, int] = MappingProxyType({"page": 200, "small_page": 40, "list": 120, "write": 200})
DEFAULT_ROWS = 2 * PAGE_SIZE
DEFAULT_SORT_ROWS = 500
DEFECTS: Mapping[str, str] = MappingProxyType({
    "no_index": "no index serves the columns the query fixes: every row of the table is read",
    "no_limit": "no LIMIT: the whole conversation (or list) comes back in one response",
    "cursor_without_tiebreaker": "the cursor is one column that is not unique: rows sharing its value are lost "
                                 "or repeated between pages",
    "offset_paging": "OFFSET reads and discards every row above the page: the cost grows with depth",
    "function_on_column": "a function or cast wraps the indexed column: the index cannot be used for it",
    "implicit_cast": "the column is cast to the parameter's type: the index on the column cannot be used",
    "or_across_columns": "an OR across columns: no single index range serves it",
    "join_without_index": "a joined table is read whole: no index serves the join",
    "count_all_history": "a count over all of a user's history: its cost grows with the history",
    "unbounded_sort": "no index delivers the ORDER BY: every matching row is sorted to return a page",
    "over_budget": "the statement touches more buffers than its budget",
})
_CAST_ON_COLUMN = re.compile(r"\(\(?\"?(\w+)\"?\)?\)::(\w+)")


@dataclass(frozen=True)
class AppContract:
    """One application query's plan contract: the canonical contract's terms plus the rows it may return."""

    plan: PlanContract
    max_rows: int | None
    p95_ms: float | None


@dataclass(frozen=True)
class AppMeasurement:
    """One scenario of one query in one plan mode, with the rows the statement returned."""

    query: str
    measurement: Measurement
    rows: int


@dataclass(frozen=True)
class AppPlanRun:
    scenarios: Mapping[str, tuple[Scenario, ...]]  # query -> its scenarios
    measurements: tuple[AppMeasurement, ...]
    refused: tuple[str, ...]  # writes not sent (read-only)
    failed: Mapping[str, str]  # query -> why it could not be measured
    seconds: float


def contract_for(query: AppQuery, roles: RoleMap, override: ContractOverride | None = None,
                 sizes: Mapping[str, int] | None = None) -> AppContract:
    """The default contract (module docstring), with the targets file's ``[queries.NAME]`` applied. ``sizes``
    (rows per table) adds every table of the query of ``SEQ_SCAN_MIN_ROWS`` or more to the Seq Scan ban."""
    o = override or ContractOverride()
    sized = {t for t in query.shape.tables if (sizes or {}).get(t, 0) >= SEQ_SCAN_MIN_ROWS}
    big = (big_tables(roles) | sized) - set(o.seq_scan_ok)
    access: list[IndexAccess] = []
    table = driving_table(query, big_tables(roles))
    if table is not None:
        equality = [u.column for u in query.shape.columns_of(query.shape.equality, table)]
        if equality:
            order = tuple(u.key() for u in query.shape.columns_of(query.shape.order_by, table))
            if order and order[0].split()[0] in equality:  # ORDER BY a fixed column first: it orders nothing
                order = order[1:]
            access.append(IndexAccess(table, equality[0], order, alternatives=tuple(equality[1:])))
    budgets = DEFAULT_BUDGETS if o.buffers is None else MappingProxyType({k: o.buffers for k in DEFAULT_BUDGETS})
    plan = PlanContract(query.name, tuple(access), budgets, no_seq_scan=frozenset(big),
                        max_sort_rows=o.sort_rows or DEFAULT_SORT_ROWS, doc=query.doc)
    rows = None if query.kind == "write" or query.shape.aggregate else (o.rows or DEFAULT_ROWS)
    return AppContract(plan, rows, o.p95_ms)


# -- measuring ----------------------------------------------------------------------------------


def explain(conn: psycopg.Connection[Any], query: AppQuery, scenario: Scenario, mode: str) -> Plan:
    """One scenario's plan in one plan mode (``explain_plan``: client buffers; a write is rolled back)."""
    return explain_plan(conn, mode, query.sql, dict(scenario.params), query.positional,
                        [scenario.params[p] for p in query.order], f"cba_{query.name}", rolled_back=True)


def run_query(conn: psycopg.Connection[Any], query: AppQuery, values: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The query's rows as dicts (a write inside a rolled-back transaction)."""
    with conn.transaction(force_rollback=True), conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(query.sql, dict(values))
        return cur.fetchall() if cur.description is not None else []


def time_query(conn: psycopg.Connection[Any], query: AppQuery, values: Mapping[str, Any], rounds: int = 50,
               warmup: int = 5) -> tuple[float, float]:
    """(p50, p95) in ms of ``rounds`` executions as the application runs it: a prepared statement, rows fetched
    (a write in a rolled-back transaction each time). A short measurement, for before/after comparisons."""
    samples: list[float] = []
    params = dict(values)
    for i in range(warmup + rounds):
        started = time.perf_counter()
        with conn.transaction(force_rollback=True), conn.cursor() as cur:
            cur.execute(query.sql, params, prepare=True)
            if cur.description is not None:
                cur.fetchall()
        if i >= warmup:
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(0.95 * len(samples)))]


def measure_app(ctx: VerificationContext, queries: AppQueries, roles: RoleMap) -> AppPlanRun:
    """Every scenario of every query in both plan modes (writes refused when read-only)."""
    started = time.perf_counter()
    ctx.conn.execute("SET jit = off")
    scenarios: dict[str, tuple[Scenario, ...]] = {}
    measured: list[AppMeasurement] = []
    refused: list[str] = []
    failed: dict[str, str] = {}
    for query in queries:
        if query.kind == "write" and ctx.read_only:
            refused.append(query.name)
            continue
        try:
            found = build_app_scenarios(ctx.conn, ctx.params, query, roles) if ctx.params else ()
            scenarios[query.name] = found
            for s in found:
                for mode in MODES:
                    plan = read_as_parents(ctx, explain(ctx.conn, query, s, mode))
                    rows = int(plan.root.actual_rows) if query.kind == "read" else 0
                    measured.append(AppMeasurement(query.name, Measurement(s, plan), rows))
        except psycopg.Error as exc:
            failed[query.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return AppPlanRun(MappingProxyType(scenarios), tuple(measured), tuple(refused), MappingProxyType(failed),
                      time.perf_counter() - started)


# -- judging ------------------------------------------------------------------------------------


def defect(query: AppQuery, breach: Breach, m: Measurement, roles: RoleMap, live: CatalogFacts | None = None) -> str:
    """The defect that explains ``breach`` (``DEFECTS``), read from the query's shape, the plan and the indexes
    (``live``: a Seq Scan of a table that has an index on the fixed column is the planner giving up on an
    index that cannot deliver the ORDER BY, not a missing index)."""
    shape = query.shape
    big = big_tables(roles)
    table = driving_table(query, big)
    conditions = " ".join(n.condition or "" for n in m.plan.root.walk())
    if breach.kind == "rows":
        return "no_limit"
    if breach.kind in ("seq_scan", "index_access", "sort_rows", "buffer_budget") and any(
            u.table in (None, table) for u in shape.wrapped):
        return "function_on_column"
    casts = {c for c, _ in _CAST_ON_COLUMN.findall(conditions)}
    equality_columns = {u.column for u in shape.equality}
    if casts & equality_columns and breach.kind in ("seq_scan", "index_access", "buffer_budget"):
        return "implicit_cast"
    if shape.or_across_columns and breach.kind in ("seq_scan", "index_access", "buffer_budget", "sort_rows"):
        return "or_across_columns"
    if shape.has_offset and breach.kind in ("buffer_budget", "sort_rows") and (m.scenario.depth or 0) > PAGE_SIZE:
        return "offset_paging"
    if breach.kind == "seq_scan" and len(shape.tables) > 1 and breach.object != table:
        return "join_without_index"
    if shape.aggregate and not shape.has_limit and breach.kind in ("buffer_budget", "seq_scan", "index_access"):
        return "count_all_history"
    if breach.kind in ("seq_scan", "index_access"):
        equality_on_table = shape.columns_of(shape.equality, table) if table else ()
        if breach.kind == "index_access" and equality_on_table and shape.order_by and "Seq Scan" not in breach.actual:
            return "unbounded_sort"
        fixed = {u.column for u in equality_on_table}
        if (breach.kind == "seq_scan" and breach.object == table and shape.order_by and live is not None
                and any(i.valid and i.leading_column in fixed for i in live.indexes_of(table))):
            return "unbounded_sort"
        return "no_index"
    if breach.kind == "sort_rows":
        return "unbounded_sort"
    return "over_budget"


def breaches(ctx: VerificationContext, query: AppQuery, contract: AppContract, am: AppMeasurement) -> Iterator[Breach]:
    yield from judge(ctx, contract.plan, am.measurement)
    if contract.max_rows is not None and am.rows > contract.max_rows:
        root = am.measurement.plan.root
        yield Breach("rows", query.shape.tables[0] if query.shape.tables else query.name,
                     f"at most {contract.max_rows} rows returned", f"{am.rows} rows returned", root.one_line())


PRECEDENCE = ("no_limit", "implicit_cast", "function_on_column", "or_across_columns", "offset_paging",
              "join_without_index", "count_all_history", "no_index", "unbounded_sort", "over_budget")
"""When one plan shows several breaches, the defect named first here explains the others (a Seq Scan also
sorts every row and blows the budget: it is named ``no_index``, the rest go to the evidence)."""


def judge_app(ctx: VerificationContext, queries: AppQueries, run: AppPlanRun, roles: RoleMap) -> list[Finding]:
    """One finding per query and plan mode: its primary defect (``PRECEDENCE``) on the first scenario that shows
    it, with the offending node and the other breaches as evidence."""
    out: list[Finding] = []
    for name in run.refused:
        out.append(Finding(CHECK, "write_refused", name, "a read (the database is not chatbench's: read-only)",
                           f"a write ({queries.named(name).shape.statement[:-4].upper()})", "warning", query=name,
                           detail="writes are never sent to a database chatbench did not create"))
    for name, why in run.failed.items():
        out.append(Finding(CHECK, "query_failed", name, "the query runs on the seeded data", why, "error", query=name))
    sizes = {name: int(t.estimated_rows) for name, t in ctx.live.tables.items()}  # partitions: their leaves' sum
    for query in queries:
        if query.name in run.scenarios and not run.scenarios[query.name]:
            out.append(Finding(CHECK, "no_scenarios", query.name, "at least one scenario", "none", "error",
                               query=query.name))
        contract = contract_for(query, roles, queries.override(query.name), sizes)
        for mode in MODES:
            named: list[tuple[str, Breach, Measurement]] = []
            for am in (a for a in run.measurements if a.query == query.name and a.measurement.plan.mode == mode):
                named.extend((defect(query, b, am.measurement, roles, ctx.live), b, am.measurement)
                             for b in breaches(ctx, query, contract, am))
            if not named:
                continue
            named.sort(key=lambda n: PRECEDENCE.index(n[0]))
            primary, breach, m = named[0]
            serving = _serving_index(query, named, roles, ctx.live)
            if serving is not None:
                out.append(_index_not_chosen(query, mode, breach, m, serving))
                continue
            others = sorted({n for n, _, _ in named[1:] if n != primary}, key=PRECEDENCE.index)
            also = f"; also {', '.join(others)}" if others else ""
            out.append(Finding(CHECK, primary, breach.object, breach.expected, breach.actual, "error",
                               query=f"{query.name} ({mode} plan)", scenario=m.scenario.key,
                               detail=f"{DEFECTS[primary]}; {breach.kind}: {breach.node}{also}"))
    return out


def _serving_index(query: AppQuery, named: list[tuple[str, Breach, Measurement]], roles: RoleMap,
                   live: CatalogFacts) -> IndexFact | None:
    """The index the query asks for (``index_candidate``), when the table has it and the plan's only breach
    is reading the table through another index: within its buffer and sort budgets, the planner chose
    another path on this data, which is not a missing index (and no proposal can add it)."""
    if {b.kind for _, b, _ in named} != {"index_access"}:
        return None
    cand = candidate(query, [n for n, _, _ in named], [b.object for _, b, _ in named], roles)
    return existing_index(cand, live) if cand is not None else None


def _index_not_chosen(query: AppQuery, mode: str, breach: Breach, m: Measurement, serving: IndexFact) -> Finding:
    return Finding(
        CHECK, "index_not_chosen", breach.object, breach.expected, breach.actual, "warning",
        query=f"{query.name} ({mode} plan)", scenario=m.scenario.key,
        detail=f"the table has the index the query asks for ({serving.name}), and the planner read it through "
               f"another within the page's buffer and sort budgets ({m.plan.buffers} buffers): on this data the "
               "conversation is a large share of the table, so walking another index and filtering is as cheap; "
               f"on production volume it is a smaller share and {serving.name} wins; {breach.kind}: {breach.node}")


SEQ_SCAN_MIN_ROWS = 5000
"""A table of the query with at least this many rows is never Seq Scanned either (a joined child table)."""


def app_context(server: Server, conn: psycopg.Connection[Any], params: SeedParameters | None,
                read_only: bool) -> VerificationContext:
    """A verification context for the application's queries: the live catalog (what plans are judged on)."""
    live = read_catalog(conn)
    return VerificationContext(server=server, conn=conn, live=live, canonical=live,
                               canonical_source="the live database", params=params,
                               params_source="seed" if params else "none", read_only=read_only)


@dataclass(frozen=True)
class BoundStatement:
    """One application query with one scenario's values: what a live load runs, as the application would."""

    query: str
    scenario: str
    sql: str  # psycopg ``%(name)s`` placeholders
    params: Mapping[str, Any]
    write: bool


def live_statements(conn: psycopg.Connection[Any], params: SeedParameters, queries: AppQueries,
                    roles: RoleMap = CANONICAL) -> tuple[BoundStatement, ...]:
    """Every query of the file bound to every scenario it allows on this database: the application's own reads
    and writes for a live load (the rehearsal runs them while a migration runs; a write's caller decides whether
    it commits or rolls back). Read-only: only SELECTs that read the cursors run here."""
    out: list[BoundStatement] = []
    for query in queries:
        for scenario in build_app_scenarios(conn, params, query, roles):
            out.append(BoundStatement(query.name, scenario.key, query.sql, scenario.params, query.kind == "write"))
    return tuple(out)
