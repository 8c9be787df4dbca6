"""Plan contracts judged on EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of every scenario, twice.

* **custom plan**: the statement with literal parameters (psycopg ``ClientCursor`` interpolates them),
  planned for those very values;
* **generic plan**: what a prepared statement of the application gets once the plan cache switches:
  ``PREPARE`` + ``SET plan_cache_mode = force_generic_plan`` + ``EXPLAIN (ANALYZE ...) EXECUTE``.

Both are parsed into a small frozen plan model (``PlanNode``); findings quote the offending node in
one line. Only SELECTs are executed, so this works inside a READ ONLY transaction.

Partitioned tables are read as their parent: a scan of a leaf partition (under an Append or
MergeAppend) is a scan of the parent relation, and a leaf's index is the parent's partitioned index
(``pg_inherits``, flattened to the root by the catalog reader); the leaf's name stays on the node
(``partition``), so the contracts judge ``messages`` whatever its partitioning, and ``plans.partitions``
counts the partitions each plan touched.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import psycopg

from chatbench.schema.contracts import CONTRACTS, IndexAccess, PlanContract
from chatbench.schema.queries import QUERIES_BY_NAME
from chatbench.verify.catalog import IndexFact, unquoted
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.mapped import SKIPPED, not_run
from chatbench.verify.registry import check
from chatbench.verify.scenarios import Scenario, build_scenarios
from chatbench.verify.serialize import Params, client_explain, explain_options

SCAN_TYPES = frozenset({"Seq Scan", "Index Scan", "Index Only Scan", "Bitmap Heap Scan", "Tid Scan", "Tid Range Scan"})
MODES = ("custom", "generic")

# Keyset buffers are "flat" when the deepest page costs at most this much more than the cheapest.
FLAT_RATIO = 1.5
FLAT_SLACK_BUFFERS = 10


@dataclass(frozen=True)
class PlanNode:
    node_type: str
    relation: str | None
    index: str | None
    direction: str | None
    actual_rows: float
    loops: float
    plan_rows: float
    shared_hit: int
    shared_read: int
    sort_method: str | None
    condition: str | None  # Index Cond / Recheck Cond / Filter: "$1" in it marks a generic plan
    children: tuple[PlanNode, ...]
    partition: str | None = None  # the leaf partition scanned, when ``relation`` is its partitioned parent
    subplans_removed: int = 0  # Append/MergeAppend: partitions pruned when the executor started (generic plans)

    @classmethod
    def parse(cls, node: Mapping[str, Any]) -> PlanNode:
        return cls(
            node_type=str(node["Node Type"]),
            relation=node.get("Relation Name"),
            index=node.get("Index Name"),
            direction=node.get("Scan Direction"),
            actual_rows=float(node.get("Actual Rows", 0)),
            loops=float(node.get("Actual Loops", 1)),
            plan_rows=float(node.get("Plan Rows", 0)),
            shared_hit=int(node.get("Shared Hit Blocks", 0)),
            shared_read=int(node.get("Shared Read Blocks", 0)),
            sort_method=node.get("Sort Method"),
            condition=node.get("Index Cond") or node.get("Recheck Cond") or node.get("Filter"),
            children=tuple(cls.parse(c) for c in node.get("Plans", ())),
            subplans_removed=int(node.get("Subplans Removed", 0)),
        )

    def as_parents(self, leaf_parents: Mapping[str, str], index_parents: Mapping[str, str]) -> PlanNode:
        """This plan with every leaf partition read as its partitioned parent, and leaf indexes as the parent's."""
        parent = leaf_parents.get(self.relation or "")
        return replace(
            self,
            relation=parent or self.relation,
            partition=self.relation if parent else self.partition,
            index=index_parents.get(self.index or "", self.index),
            children=tuple(c.as_parents(leaf_parents, index_parents) for c in self.children),
        )

    @property
    def buffers(self) -> int:
        return self.shared_hit + self.shared_read

    @property
    def rows_total(self) -> float:
        return self.actual_rows * self.loops

    def walk(self) -> Iterator[PlanNode]:
        yield self
        for child in self.children:
            yield from child.walk()

    def relations(self) -> set[str]:
        return {n.relation for n in self.walk() if n.relation}

    def bitmap_indexes(self) -> list[str]:
        """Indexes of the Bitmap Index Scans feeding this (Bitmap Heap Scan) node."""
        return [n.index for n in self.walk() if n.node_type == "Bitmap Index Scan" and n.index]

    def label(self) -> str:
        name = self.node_type + (" Backward" if self.direction == "Backward" else "")
        if self.index and self.node_type != "Bitmap Heap Scan":
            name += f" using {self.index}"
        if self.relation:
            name += f" on {self.relation}"
        if self.partition:
            name += f" (partition {self.partition})"
        if self.node_type == "Bitmap Heap Scan":
            name += f" via {', '.join(self.bitmap_indexes()) or '?'}"
        return name

    def one_line(self) -> str:
        """The node in one line, with only what the same database reproduces exactly: actual rows and
        buffers as hit + read (the split depends on the cache, the sum does not; estimates move with
        every ANALYZE sample, so they are left out of findings)."""
        extra = f", {self.sort_method}" if self.sort_method else ""
        return f"{self.label()} (rows={self.actual_rows:g} loops={self.loops:g}, buffers={self.buffers}{extra})"

    def shape(self) -> str:
        inner = ", ".join(c.shape() for c in self.children)
        return self.label() + (f" [{inner}]" if inner else "")


@dataclass(frozen=True)
class Plan:
    mode: str  # "custom" | "generic"
    root: PlanNode
    planning_ms: float
    execution_ms: float
    detoast_buffers: int = 0  # of ``buffers``: converting the rows for the client (chatbench.verify.serialize)

    @property
    def buffers(self) -> int:
        return self.root.buffers

    @property
    def access_buffers(self) -> int:
        """The buffers of finding the rows, without detoasting them: what depth may not grow (keyset)."""
        return self.buffers - self.detoast_buffers

    @classmethod
    def parse(cls, mode: str, explain: Any) -> Plan:
        doc = explain[0] if isinstance(explain, list) else explain
        return cls(
            mode,
            PlanNode.parse(doc["Plan"]),
            float(doc.get("Planning Time", 0.0)),
            float(doc.get("Execution Time", 0.0)),
        )


@dataclass(frozen=True)
class Measurement:
    scenario: Scenario
    plan: Plan


@dataclass(frozen=True)
class PlanRun:
    """Every scenario measured in both modes: what plan checks judge and what the result reports."""

    scenarios: tuple[Scenario, ...]
    measurements: tuple[Measurement, ...]
    seconds: float

    def curve(self, curve: str, mode: str) -> tuple[tuple[int, int], ...]:
        """(depth, buffers) points of one growth curve, shallow first."""
        return tuple(
            sorted(
                (m.scenario.depth, m.plan.access_buffers)  # detoasting varies with the page's texts, not depth
                for m in self.measurements
                if m.scenario.curve == curve and m.plan.mode == mode and m.scenario.depth is not None
            )
        )


def explain_plan(conn: psycopg.Connection[Any], mode: str, sql: str, params: Params, positional: str,
                 values: Sequence[Any], name: str, *, rolled_back: bool) -> Plan:
    """One statement's plan in one mode; its buffers count what the client receives (detoasting included:
    ``SERIALIZE`` on PostgreSQL 17+, the whole-row probe of ``chatbench.verify.serialize`` on 15/16).

    ``sql`` and ``params``: the statement with psycopg placeholders, planned for these very values (custom);
    ``positional`` and ``values``: the same with ``$1..$n`` for ``PREPARE`` ``name``, run under
    ``force_generic_plan`` (generic). ``rolled_back``: run inside a transaction (or savepoint) that is rolled
    back, so that a write's EXPLAIN ANALYZE leaves nothing behind (the canonical SELECTs need none: a
    read-only verification counts exactly one rollback). The prepared statement and the plan cache mode are
    reset whatever happens.
    """
    cur = psycopg.ClientCursor(conn)
    options = explain_options(conn)
    prepared = False
    try:
        with conn.transaction(force_rollback=True) if rolled_back else contextlib.nullcontext():
            if mode == "custom":
                row = cur.execute(options + sql, params or None).fetchone()
            else:
                cur.execute(f"PREPARE {name} AS {positional}")
                prepared = True
                cur.execute("SET plan_cache_mode = force_generic_plan")
                arguments = f"({', '.join(['%s'] * len(values))})" if values else ""
                row = cur.execute(f"{options}EXECUTE {name}{arguments}", list(values)).fetchone()
            assert row is not None
            counted, serialization = client_explain(conn, row[0], sql, params)
    finally:
        if prepared:
            cur.execute("RESET plan_cache_mode")
            cur.execute(f"DEALLOCATE {name}")
    return replace(Plan.parse(mode, counted), detoast_buffers=serialization.buffers)


def _explain(conn: psycopg.Connection[Any], scenario: Scenario, mode: str) -> Plan:
    """One canonical scenario's plan (``explain_plan``)."""
    query = QUERIES_BY_NAME[scenario.query]
    positional, order = query.sql_positional()
    return explain_plan(conn, mode, query.sql(), dict(scenario.params), positional,
                        [scenario.params[p] for p in order], f"cbv_{scenario.query}", rolled_back=False)


def read_as_parents(ctx: VerificationContext, plan: Plan) -> Plan:
    """``plan`` with leaf partitions read as their partitioned parents (``PlanNode.as_parents``)."""
    if not ctx.live.leaf_parents:
        return plan
    return replace(plan, root=plan.root.as_parents(ctx.live.leaf_parents, ctx.live.index_parents))


def measure(ctx: VerificationContext) -> PlanRun:
    """Run (once per context) every scenario in both modes."""
    cached = ctx.memo.get("plans")
    if isinstance(cached, PlanRun):
        return cached
    started = time.perf_counter()
    scenarios = build_scenarios(ctx.conn, ctx.params, skip=not_run_here(ctx)) if ctx.params is not None else ()
    ctx.conn.execute("SET jit = off")
    measurements = tuple(
        Measurement(s, read_as_parents(ctx, _explain(ctx.conn, s, mode))) for s in scenarios for mode in MODES
    )
    run = PlanRun(scenarios, measurements, time.perf_counter() - started)
    ctx.memo["plans"] = run
    return run


def _split_key(key: str) -> tuple[str, bool]:
    """(column, descending) of an index key or ORDER BY item; an index key's quoted column (``"createdAt"``)
    by its name, as the query names it."""
    parts = key.split()
    return unquoted(parts[0]), "DESC" in parts[1:]


def serves(index: IndexFact | None, access: IndexAccess) -> bool:
    """True when ``index`` leads with the access column and its next keys deliver ``order_by``."""
    if index is None or index.leading_column not in access.leading_columns:
        return False
    if not access.order_by:
        return True
    wanted = [_split_key(k) for k in access.order_by]
    have = [_split_key(k) for k in index.keys[1 : 1 + len(wanted)]]
    if [c for c, _ in have] != [c for c, _ in wanted]:
        return False
    same = all(hd == wd for (_, hd), (_, wd) in zip(have, wanted, strict=True))
    flipped = all(hd != wd for (_, hd), (_, wd) in zip(have, wanted, strict=True))
    return same or flipped


def _ordered_elsewhere(
    ctx: VerificationContext, contract: PlanContract, access: IndexAccess, facts: list[IndexFact | None], root: PlanNode
) -> bool:
    """A scan through an index with the right leading column that does not deliver the order is fine when
    an index that does exists and the plan sorts only a handful of rows: the planner's choice for a tiny
    conversation (Django's default single-column foreign-key index, say). Without such an index, or with a
    Sort past the bound (a whale), it is a breach whatever the statistics say."""
    if not access.order_by or contract.max_sort_rows is None:
        return False
    if not any(f is not None and f.leading_column in access.leading_columns for f in facts):
        return False
    if not any(serves(index, access) for index in ctx.live.indexes_of(access.relation)
               if index.valid and index.predicate is None):
        return False
    sorts = [n for n in root.walk() if n.node_type in ("Sort", "Incremental Sort") and n.children
             and access.relation in n.relations()]
    return all(sum(c.rows_total for c in node.children) <= contract.max_sort_rows for node in sorts)


@dataclass(frozen=True)
class Breach:
    """One way one plan breaks its contract: the object (relation or index), what and where."""

    kind: str
    object: str
    expected: str
    actual: str
    node: str  # the offending plan node in one line


SMALL_LEAF_BUFFERS = 8
"""A leaf partition this small (64 kB) costs less to scan whole than an index descent and its heap fetches."""


def empty_leaf(node: PlanNode) -> bool:
    """A Seq Scan of a leaf partition that holds (next to) nothing: a DEFAULT partition, a month still to
    come, a month of a small data set.

    The planner rightly scans such a leaf rather than its index: it costs at most ``SMALL_LEAF_BUFFERS``,
    and the rows it will hold later are judged when the data has them. Not a breach of ``no_seq_scan`` or
    of an index access; a leaf that holds more is judged like the table itself."""
    return node.partition is not None and node.node_type == "Seq Scan" and node.buffers <= SMALL_LEAF_BUFFERS


def judge(ctx: VerificationContext, contract: PlanContract, m: Measurement) -> Iterator[Breach]:
    """Every breach of ``contract`` by one measured plan (a partitioned relation is judged as its parent)."""
    root = m.plan.root
    for node in root.walk():
        if node.node_type == "Seq Scan" and node.relation in contract.no_seq_scan and not empty_leaf(node):
            yield Breach("seq_scan", str(node.relation), f"no Seq Scan on {node.relation}", "Seq Scan", node.one_line())
    for access in contract.access:
        scans = [
            n for n in root.walk() if n.node_type in SCAN_TYPES and n.relation == access.relation and not empty_leaf(n)
        ]
        if not scans:
            yield Breach("index_access", access.relation, access.describe(), "relation not read", root.shape())
        for scan in scans:
            if scan.node_type == "Seq Scan":
                if scan.relation not in contract.no_seq_scan:
                    yield Breach("index_access", access.relation, access.describe(), "Seq Scan", scan.one_line())
                continue  # else reported above as seq_scan
            names = scan.bitmap_indexes() if scan.node_type == "Bitmap Heap Scan" else [scan.index]
            facts = [ctx.live.index_named(n) if n else None for n in names]
            if not any(serves(f, access) for f in facts) and not _ordered_elsewhere(ctx, contract, access, facts, root):
                used = "; ".join(f"{f.name} ({', '.join(f.keys)})" for f in facts if f) or "no index"
                obj = ", ".join(f"{access.relation}.{f.name}" for f in facts if f) or access.relation
                yield Breach("index_access", obj, access.describe(), used, scan.one_line())
    if contract.max_sort_rows is not None:
        for node in root.walk():
            if node.node_type in ("Sort", "Incremental Sort") and node.children:
                sorted_rows = sum(c.rows_total for c in node.children)
                relations = node.relations() & contract.no_seq_scan
                if sorted_rows > contract.max_sort_rows and relations:
                    yield Breach(
                        "sort_rows",
                        ", ".join(sorted(relations)),
                        f"Sort of at most {contract.max_sort_rows} rows",
                        f"Sort of {sorted_rows:g} rows of {', '.join(sorted(node.relations()))}",
                        f"{node.one_line()} <- {node.children[0].one_line()}",
                    )
    budget = contract.budget(m.scenario.kind)
    if budget is not None and m.plan.buffers > budget:
        yield Breach(
            "buffer_budget",
            ", ".join(sorted(root.relations())) or "plan",
            f"at most {budget} buffers",
            f"{m.plan.buffers} buffers",
            root.one_line(),
        )


_SKIPPED = "plans.not_run"  # the memo key of ``not_run_here``


def not_run_here(ctx: VerificationContext) -> dict[str, str]:
    """The canonical queries with a plan contract that are not run on this schema, each with why: those
    reading a table or column the role map renames (``verify.mapped``; none with an empty map)."""
    skipped = ctx.memo.get(_SKIPPED)
    if not isinstance(skipped, dict):
        skipped = not_run(ctx.roles, ctx.live.columns, (QUERIES_BY_NAME[name] for name in CONTRACTS))
        ctx.memo[_SKIPPED] = skipped
    return skipped


@check("plans.contracts")
def contracts(ctx: VerificationContext) -> Iterator[Finding]:
    """Every scenario's custom and generic plan keeps its query's contract (a canonical query not run on a
    schema whose roles are renamed is reported skipped, with why: info)."""
    skipped = not_run_here(ctx)
    for name, why in skipped.items():
        yield Finding("plans", SKIPPED, name, "the canonical query runs on this schema", why, "info", query=name)
    if len(skipped) == len(CONTRACTS):
        return  # nothing canonical to plan here: the application's queries are judged (``queries`` group)
    if ctx.params is None:
        yield Finding("plans", "no_scenarios", "scenarios", "parameter sets from a seed or the data", "none", "error")
        return
    run = measure(ctx)
    if not run.scenarios:
        yield Finding("plans", "no_scenarios", "scenarios", "at least one scenario", "none (empty data?)", "error")
    for m in run.measurements:
        contract = CONTRACTS.get(m.scenario.query)
        if contract is None:
            yield Finding(
                "plans", "no_contract", m.scenario.query, "a plan contract", "none", "error", query=m.scenario.query
            )
            continue
        severity: Severity = "info" if contract.contrast else "error"
        for breach in judge(ctx, contract, m):
            yield Finding(
                "plans",
                breach.kind,
                breach.object,
                breach.expected,
                breach.actual,
                severity,
                query=f"{m.scenario.query} ({m.plan.mode} plan)",
                scenario=m.scenario.key,
                detail=breach.node,
            )


@dataclass(frozen=True)
class PartitionTouch:
    """How many partitions of one partitioned relation one plan touched.

    ``planned``: partitions the plan kept after plan-time pruning (the scans in the plan, plus those the
    executor pruned at startup, shown as ``Subplans Removed``); ``executed``: partitions actually read
    (a scan with at least one loop; an Append stopping at LIMIT leaves the rest "never executed").
    """

    relation: str
    leaves: int
    planned: int
    executed: int
    executed_names: tuple[str, ...]

    def describe(self) -> str:
        names = ", ".join(self.executed_names)  # every one, whole: a log line is grepped for the names
        text = f"{self.relation}: {self.planned} of {self.leaves} partitions in the plan, {self.executed} executed"
        return text + (f" ({names})" if names else "")


def partitions_touched(ctx: VerificationContext, plan: Plan) -> tuple[PartitionTouch, ...]:
    """One ``PartitionTouch`` per partitioned relation the plan reads (none for plain tables)."""
    out = []
    for relation in sorted(plan.root.relations()):
        table = ctx.live.tables.get(relation)
        if table is None or table.partition is None:
            continue
        scans = [n for n in plan.root.walk() if n.relation == relation and n.partition and n.node_type in SCAN_TYPES]
        in_plan = {n.partition for n in scans if n.partition}
        executed = sorted({n.partition for n in scans if n.partition and n.loops > 0})
        removed = sum(
            n.subplans_removed
            for n in plan.root.walk()
            if n.node_type in ("Append", "Merge Append") and relation in n.relations()
        )
        out.append(PartitionTouch(relation, table.partition.leaf_count, len(in_plan) + removed, len(executed),
                                  tuple(executed)))
    return tuple(out)


def _equality_columns(contract: PlanContract, relation: str) -> set[str]:
    """The columns of ``relation`` the query fixes by equality: the leading columns of its index access."""
    return {c for a in contract.access if a.relation == relation for c in a.leading_columns}


@check("plans.partitions")
def partitions(ctx: VerificationContext) -> Iterator[Finding]:
    """Partitions each history query's plans touched (pruning), judged by what the query fixes.

    A query that fixes every partition-key column by equality (``conversation_id`` for a conversation's
    history under hash or list partitioning by conversation, ``user_id`` for a user's conversation list)
    has all its rows in one partition: reading more than one means pruning failed (a cast, a generic
    plan the executor could not prune), and each extra partition costs at least one index descent per
    page, growing with the number of partitions. That is an error.

    A query that does not fix the key (a conversation's history under range partitioning by
    ``created_at``) cannot be pruned to one partition. Its pages are judged by their buffers (the plan
    contracts' budgets and the keyset flatness) as for any table; here the counts are reported (info),
    and a page that read every partition is a warning: its cost grows with the number of partitions
    (months), which the budgets only catch once it is large. A count reads every partition by design
    (info).
    """
    if ctx.params is None or not any(t.partition for t in ctx.live.tables.values()):
        return
    run = measure(ctx)
    # one line per query, plan mode and relation: the scenario that touched the most partitions
    worst: dict[tuple[str, str, str], tuple[PartitionTouch, Measurement]] = {}
    for m in run.measurements:
        for touch in partitions_touched(ctx, m.plan):
            key = (m.scenario.query, m.plan.mode, touch.relation)
            if key not in worst or touch.executed > worst[key][0].executed:
                worst[key] = (touch, m)
    for (query, mode, relation), (touch, m) in sorted(worst.items()):
        contract = CONTRACTS.get(query)
        table = ctx.live.tables[relation]
        assert table.partition is not None
        key_columns = set(table.partition.key_columns)
        fixed = contract is not None and None not in key_columns and key_columns <= _equality_columns(contract,
                                                                                                         relation)
        severity: Severity = "info"
        expected = f"partitions read as {table.partition.key} allows"
        if fixed:
            expected = "1 partition executed (the query fixes the partition key)"
            if touch.executed > 1:
                severity = "error"
        elif m.scenario.kind != "count" and touch.leaves > 1 and touch.executed == touch.leaves:
            severity = "warning"
            expected = "a page reads fewer than every partition"
        if contract is not None and contract.contrast and severity != "info":
            severity = "info"
        yield Finding(
            "plans",
            "partition_pruning",
            relation,
            expected,
            touch.describe(),
            severity,
            query=f"{query} ({mode} plan)",
            scenario=m.scenario.key,
            detail=table.partition.describe(),
        )


@check("plans.growth")
def growth(ctx: VerificationContext) -> Iterator[Finding]:
    """Keyset buffers stay flat across depths (failure if not); OFFSET buffers are measured (info)."""
    if ctx.params is None:
        return
    run = measure(ctx)
    for mode in MODES:
        keyset = run.curve("keyset", mode)
        offset = run.curve("offset", mode)
        if len(keyset) >= 2:
            low = min(b for _, b in keyset)
            high = max(b for _, b in keyset)
            points = " ".join(f"d{d}:{b}" for d, b in keyset)
            if high > low * FLAT_RATIO + FLAT_SLACK_BUFFERS:
                yield Finding(
                    "plans",
                    "keyset_growth",
                    "messages",
                    f"flat buffers (<= {FLAT_RATIO}x + {FLAT_SLACK_BUFFERS})",
                    f"{low} -> {high} buffers",
                    "error",
                    query=f"messages_before ({mode} plan)",
                    scenario="keyset-*",
                    detail=points,
                )
        if len(offset) >= 2:
            points = " ".join(f"d{d}:{b}" for d, b in offset)
            grows = offset[-1][1] > offset[0][1]
            yield Finding(
                "plans",
                "offset_growth",
                "messages",
                "grows with depth (contrast)",
                f"{offset[0][1]} -> {offset[-1][1]} buffers",
                "info",
                query=f"messages_offset ({mode} plan)",
                scenario="offset-*",
                detail=points + ("" if grows else " (did not grow: the conversation may be too small)"),
            )
