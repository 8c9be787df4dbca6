"""Distribution readiness: can this schema be distributed with Citus, and how does it behave once it is?

Two registered checks over the ``VerificationContext``:

- ``citus.static`` judges the live catalog against a distribution variant
  (``chatbench.schema.distributed``): the one the database is distributed as, read from Citus's metadata;
  on a database not distributed (the single-node preview) the one a caller asks for (``judging``, the
  sign-off's ``citus_distribution``), else ``by_conversation``. Every primary key, unique constraint
  and unique index of a distributed table includes its distribution column; foreign keys stay within a
  co-location group (between distributed tables on their distribution columns) or point into a
  reference table; identity and serial columns are ``bigint`` (Citus hands out per-node ranges of a
  bigint sequence; a smaller one cannot be split across nodes); triggers on distributed tables need
  ``citus.enable_unsafe_triggers``; every table has a placement. Each finding carries the fix (the DDL).
  On a Citus coordinator a violation is an error; on a single node the same findings are a preview
  (``info``): they say what a move to Citus would refuse, without failing a single-node verdict.
- ``citus.dynamic`` (on a Citus coordinator only): per canonical query, router (one shard, ``Task
  Count: 1`` in the distributed EXPLAIN) or multi-shard, the share of each kind, history pagination
  against its target (100 % router), the shard skew of ``messages`` (largest shard over the mean, rows
  and bytes) against the skew budget, and the shard (and node) holding the largest conversation.

Targets come from the ``[citus]`` section of the packaged ``targets.toml``.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from chatbench.schema.contracts import PAGE_SIZE
from chatbench.schema.distributed import VARIANTS, DistributionVariant, variant
from chatbench.schema.models import metadata
from chatbench.schema.queries import CANONICAL_QUERIES, CanonicalQuery
from chatbench.verify.catalog import CatalogFacts
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.keys import as_key
from chatbench.verify.registry import check

CHECK_STATIC = "citus.static"
CHECK_DYNAMIC = "citus.dynamic"
HISTORY_QUERIES = ("latest_messages", "messages_before", "messages_offset", "messages_after", "count_messages")
"""History pagination: the queries that open and scroll one conversation (the hot path of a chat client)."""
TARGETS_FILE = Path(__file__).resolve().parent.parent / "benchmarks" / "targets.toml"
TARGETS_SECTION = "citus"
_TASK_COUNT = re.compile(r"Task Count: (\d+)")
_SMALL_INTEGERS = ("integer", "smallint")
UNPLANNABLE = -1
"""``QueryRouting.tasks`` of a statement Citus refuses to plan (with bound parameters, as an application sends it)."""


@dataclass(frozen=True)
class CitusTargets:
    """The readiness budgets (``[citus]`` of targets.toml)."""

    history_router_share: float
    max_shard_rows_over_mean: float
    max_shard_bytes_over_mean: float


def load_citus_targets(path: Path = TARGETS_FILE) -> CitusTargets:
    data = tomllib.loads(path.read_text()).get(TARGETS_SECTION, {})
    return CitusTargets(
        float(data.get("history_router_share", 1.0)),
        float(data.get("max_shard_rows_over_mean", 4.0)),
        float(data.get("max_shard_bytes_over_mean", 4.0)),
    )


def is_citus(conn: psycopg.Connection[Any]) -> bool:
    """Whether this database has Citus (a coordinator, whatever backend brought it: citus or a dsn)."""
    return conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'citus'").fetchone() is not None


_ASKED: ContextVar[str | None] = ContextVar("chatbench_citus_variant", default=None)


@contextmanager
def judging(name: str | None) -> Iterator[None]:
    """Readiness judged against variant ``name`` where the database does not say (not distributed: the
    single-node preview): the sign-off's ``citus_distribution``, for the ``verify`` run inside the block."""
    token = _ASKED.set(name)
    try:
        yield
    finally:
        _ASKED.reset(token)


def live_variant(conn: psycopg.Connection[Any]) -> DistributionVariant | None:
    """The variant this database is distributed as (every table of it placed as the variant places it), read
    from Citus's metadata; None when it is not distributed (or as no declared variant)."""
    if not is_citus(conn):
        return None
    placed = {str(table): (str(kind), None if column == "<none>" else str(column)) for table, kind, column in
              conn.execute("SELECT table_name::text, citus_table_type, distribution_column FROM citus_tables")}
    for chosen in VARIANTS.values():
        if all(placed.get(t.table) == (t.placement, t.column) for t in chosen.tables):
            return chosen
    return None


def judged_variant(conn: psycopg.Connection[Any]) -> DistributionVariant:
    """The variant readiness judges against: the live one, else the one asked for (``judging``), else the default."""
    return live_variant(conn) or variant(_ASKED.get())


def _cols(columns: Iterable[str]) -> str:
    return ", ".join(columns)


# --- static rules --------------------------------------------------------------------------------


def static_findings(facts: CatalogFacts, chosen: DistributionVariant, *, severity: Severity) -> Iterator[Finding]:
    """Every readiness rule over one catalog; ``severity`` of a violation (error on Citus, info as a preview)."""
    yield from _placements(facts, chosen, severity)
    yield from _unique_keys(facts, chosen, severity)
    yield from _foreign_keys(facts, chosen, severity)
    yield from _identities(facts, chosen, severity)
    yield from _triggers(facts, chosen)


def _finding(kind: str, obj: str, expected: str, actual: str, severity: Severity, fix: str) -> Finding:
    return Finding("citus", kind, obj, expected, actual, severity, detail=f"fix: {fix}")


def _placements(facts: CatalogFacts, chosen: DistributionVariant, severity: Severity) -> Iterator[Finding]:
    for name in sorted(facts.tables):
        plan = chosen.plan(name)
        if plan is None:
            yield _finding("table_not_placed", name, f"a placement in variant {chosen.name}",
                           "none: it stays a local table on the coordinator, which distributed tables cannot join",
                           "warning" if severity == "error" else "info",
                           f"SELECT create_reference_table('{name}') if it is small and read everywhere, else "
                           f"create_distributed_table('{name}', <column>) co-located with the table it joins")
        elif plan.column is not None and (name, plan.column) not in facts.columns:
            yield _finding("distribution_column_missing", f"{name}.{plan.column}",
                           f"distribution column {plan.column} (variant {chosen.name})", "no such column", severity,
                           f"ALTER TABLE {name} ADD COLUMN {plan.column} bigint NOT NULL (filled from its parent), "
                           "or choose another variant")


def _unique_keys(facts: CatalogFacts, chosen: DistributionVariant, severity: Severity) -> Iterator[Finding]:
    """Citus enforces uniqueness per shard only: a key without the distribution column cannot be kept."""
    covered: set[tuple[str, str]] = set()
    for (table, name), constraint in sorted(facts.constraints.items()):
        if constraint.kind not in ("PRIMARY KEY", "UNIQUE", "EXCLUDE"):
            continue
        covered.add((table, name))
        plan = chosen.plan(table)
        if plan is None or plan.column is None or plan.column in constraint.columns:
            continue
        key = "primary key" if constraint.kind == "PRIMARY KEY" else f"{constraint.kind.lower()} constraint"
        wanted = (plan.column, *constraint.columns)
        add = "PRIMARY KEY" if constraint.kind == "PRIMARY KEY" else "UNIQUE"
        yield _finding(
            "unique_without_distribution_column", f"{table}.{name}",
            f"the {key} to include the distribution column {plan.column}",
            f"{key} ({_cols(constraint.columns)})", severity,
            f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} {add} ({_cols(wanted)})",
        )
    for (table, name), index in sorted(facts.indexes.items()):
        if not index.unique or (index.constraint and (table, index.constraint) in covered):
            continue
        plan = chosen.plan(table)
        if plan is None or plan.column is None or plan.column in index.key_columns:
            continue
        yield _finding(
            "unique_without_distribution_column", f"{table}.{name}",
            f"the unique index to include the distribution column {plan.column}",
            f"unique index ({_cols(index.keys)})", severity,
            f"DROP INDEX {name}; CREATE UNIQUE INDEX {name} ON {table} ({_cols((plan.column, *index.keys))})",
        )


def _foreign_keys(facts: CatalogFacts, chosen: DistributionVariant, severity: Severity) -> Iterator[Finding]:
    for (table, name), fk in sorted(facts.constraints.items()):
        if fk.kind != "FOREIGN KEY" or fk.ref_table is None:
            continue
        source, target = chosen.plan(table), chosen.plan(fk.ref_table)
        if source is None or target is None:
            continue  # an unplaced table has its own finding
        obj = f"{table}.{name}"
        shown = f"({_cols(fk.columns)}) -> {fk.ref_table} ({_cols(fk.ref_columns)})"
        if target.placement == "reference":
            continue  # into a reference table: always allowed (a copy is on every node)
        if source.placement == "reference":
            yield _finding("foreign_key_reference_to_distributed", obj,
                           "no foreign key from a reference table into a distributed table", shown, severity,
                           f"ALTER TABLE {table} DROP CONSTRAINT {name} (check it in the application), or "
                           f"distribute {table} co-located with {fk.ref_table}")
            continue
        if chosen.group(table) != chosen.group(fk.ref_table):
            yield _finding("foreign_key_across_colocation_groups", obj,
                           f"{table} and {fk.ref_table} in one co-location group", shown, severity,
                           f"create_distributed_table('{table}', ..., colocate_with => '{fk.ref_table}')")
            continue
        pairs = dict(zip(fk.columns, fk.ref_columns, strict=False))
        if pairs.get(str(source.column)) != target.column:
            wanted_from = (str(source.column), *[c for c in fk.columns if c != source.column])
            wanted_to = (str(target.column), *[pairs[c] for c in fk.columns if c != source.column])
            yield _finding(
                "foreign_key_without_distribution_column", obj,
                f"the foreign key to map {table}.{source.column} to {fk.ref_table}.{target.column}", shown, severity,
                f"ALTER TABLE {table} DROP CONSTRAINT {name}, ADD CONSTRAINT {name} FOREIGN KEY "
                f"({_cols(wanted_from)}) REFERENCES {fk.ref_table} ({_cols(wanted_to)}) (a unique key on "
                f"{fk.ref_table} ({_cols(wanted_to)}) first)",
            )


def _identities(facts: CatalogFacts, chosen: DistributionVariant, severity: Severity) -> Iterator[Finding]:
    for (table, name), column in sorted(facts.columns.items()):
        plan = chosen.plan(table)
        if plan is None or plan.placement != "distributed":
            continue
        sequenced = bool(column.identity) or "nextval(" in (column.default or "")
        if sequenced and column.type in _SMALL_INTEGERS:
            what = "identity" if column.identity else "serial"
            yield _finding("sequence_not_bigint", f"{table}.{name}", f"a bigint {what} column",
                           f"{column.type} {what}", severity,
                           f"ALTER TABLE {table} ALTER COLUMN {name} TYPE bigint (and its sequence AS bigint): "
                           "Citus gives each node its own range of a bigint sequence")


def _triggers(facts: CatalogFacts, chosen: DistributionVariant) -> Iterator[Finding]:
    for (table, name), _trigger in sorted(facts.triggers.items()):
        plan = chosen.plan(table)
        if plan is None or plan.placement != "distributed":
            continue
        yield _finding("trigger_on_distributed_table", f"{table}.{name}", "triggers that stay on one shard",
                       "a trigger, run on every shard", "info",
                       "SET citus.enable_unsafe_triggers = on before distributing, and keep the trigger's writes "
                       "within the co-location group of the row that fires it (filter on the distribution column)")


def declared_by_variant(finding: Finding, chosen: DistributionVariant) -> bool:
    """A drift finding the distribution step made on purpose: a canonical primary key re-keyed to the variant's
    key (with the distribution column), a canonical foreign key the variant replaces (absent), or the variant's
    own foreign key in its place (extra). Drift judges the canonical schema; on a cluster these differences are
    the fix ``static_findings`` asks for, so a sign-off does not fail them."""
    table, _, name = finding.object.partition(".")
    plan = chosen.plan(table)
    if finding.check != "drift" or plan is None or table not in metadata.tables:
        return False
    if plan.primary_key and name == str(metadata.tables[table].primary_key.name):
        return f"({_cols(plan.primary_key)})" in finding.actual
    canonical = {str(fk.name) for fk in metadata.tables[table].foreign_key_constraints}
    declared = {fk.name: fk for fk in chosen.foreign_keys if fk.table == table}
    if name in canonical and name not in declared:
        return finding.kind == "missing_foreign_key"
    if name in declared and name not in canonical:
        return finding.kind == "extra_foreign_key" and f"({_cols(declared[name].columns)})" in finding.actual
    return False


@check(CHECK_STATIC)
def static_readiness(ctx: VerificationContext) -> Iterable[Finding]:
    """Distribution readiness (static): keys, foreign keys, sequences and triggers against the Citus variant."""
    on_citus = is_citus(ctx.conn)
    chosen = judged_variant(ctx.conn)
    return list(static_findings(ctx.live, chosen, severity="error" if on_citus else "info"))


# --- dynamic: router or multi-shard, skew, hot shard ------------------------------------------------


@dataclass(frozen=True)
class QueryRouting:
    """How Citus runs one canonical query: ``tasks`` shards touched (1: router)."""

    query: str
    kind: str  # "read" | "write"
    tasks: int
    router: bool
    plan_head: str  # the distributed node, e.g. "Custom Scan (Citus Adaptive)"


@dataclass(frozen=True)
class ShardSkew:
    """Rows and bytes per shard of one table: the largest over the mean."""

    table: str
    shards: int
    rows_over_mean: float
    bytes_over_mean: float
    largest_rows: int
    mean_rows: float


@dataclass(frozen=True)
class HotShard:
    """Where the largest conversation lives and how much of its shard it is."""

    conversation_id: int
    messages: int
    shard: int
    node: str
    shard_rows: int
    share_of_shard: float


def explain_routing(conn: psycopg.Connection[Any], query: CanonicalQuery, params: Mapping[str, object]) -> QueryRouting:
    """The distributed EXPLAIN (never executed: no ANALYZE) of one canonical query with real parameters."""
    try:
        rows = conn.execute("EXPLAIN " + query.sql(), dict(params)).fetchall()
    except psycopg.errors.FeatureNotSupported as exc:  # Citus cannot plan it at all: the worst routing
        return QueryRouting(query.name, query.kind, UNPLANNABLE, False, str(exc).splitlines()[0])
    text = "\n".join(str(r[0]) for r in rows)
    counts = [int(n) for n in _TASK_COUNT.findall(text)]
    head = next((line.strip(" ->") for line in text.splitlines() if "Citus" in line), text.splitlines()[0].strip())
    tasks = sum(counts) if counts else 0
    # No task count: the coordinator runs it in steps (e.g. INSERT ... SELECT pulled to the coordinator).
    return QueryRouting(query.name, query.kind, tasks, tasks == 1 and len(counts) == 1, head)


def query_parameters(conn: psycopg.Connection[Any]) -> dict[str, object]:
    """One real parameter set for every canonical query: the largest conversation, its owner, a cursor."""
    whale = conn.execute(
        "SELECT conversation_id, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
    if whale is None:
        raise LookupError("messages is empty: seed the database before judging routing")
    conversation_id = as_key(whale[0])
    owner = conn.execute("SELECT user_id FROM conversations WHERE id = %s", (conversation_id,)).fetchone()
    cursor = conn.execute(
        "SELECT created_at, id FROM messages WHERE conversation_id = %s ORDER BY created_at DESC, id DESC "
        "OFFSET 100 LIMIT 1", (conversation_id,)).fetchone()
    listed = conn.execute("SELECT updated_at, id FROM conversations WHERE user_id = %s ORDER BY updated_at DESC, "
                          "id DESC LIMIT 1", (owner[0] if owner else 0,)).fetchone()
    return {
        "user_id": as_key(owner[0]) if owner else 0, "conversation_id": conversation_id, "limit": PAGE_SIZE,
        "offset": 100,
        "cursor_created_at": cursor[0] if cursor else None, "cursor_id": as_key(cursor[1]) if cursor else 0,
        "cursor_updated_at": listed[0] if listed else None, "role": "user", "content": "readiness probe",
        "title": "readiness probe",
    }


def routing(conn: psycopg.Connection[Any], queries: Iterable[CanonicalQuery] = CANONICAL_QUERIES) \
        -> tuple[QueryRouting, ...]:
    params = query_parameters(conn)
    return tuple(explain_routing(conn, q, params) for q in queries)


def shard_skew(conn: psycopg.Connection[Any], table: str = "messages") -> ShardSkew:
    """Rows (counted on each shard) and bytes (``citus_shards``) of every shard of ``table``."""
    counted = conn.execute(
        "SELECT shardid, result FROM run_command_on_shards(%s, 'SELECT count(*) FROM %%s')", (table,)).fetchall()
    rows = [int(r[1]) for r in counted]
    sizes = [int(r[0]) for r in conn.execute(
        "SELECT shard_size FROM citus_shards WHERE table_name = %s::regclass", (table,)).fetchall()]
    mean_rows = sum(rows) / len(rows) if rows else 0.0
    mean_bytes = sum(sizes) / len(sizes) if sizes else 0.0
    return ShardSkew(
        table, len(rows),
        max(rows) / mean_rows if mean_rows else 0.0,
        max(sizes) / mean_bytes if mean_bytes else 0.0,
        max(rows) if rows else 0, mean_rows,
    )


def hot_shard(conn: psycopg.Connection[Any]) -> HotShard:
    whale = conn.execute(
        "SELECT conversation_id, count(*) FROM messages GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1").fetchone()
    if whale is None:
        raise LookupError("messages is empty: seed the database before judging skew")
    # The shard of the whale's rows, by whatever column the table is distributed on (its conversation, its owner).
    placed = conn.execute("SELECT distribution_column FROM citus_tables WHERE table_name = 'messages'::regclass"
                          ).fetchone()
    column = str(placed[0]) if placed else "conversation_id"
    row = conn.execute(sql.SQL(
        "SELECT s.shardid, s.nodename || ':' || s.nodeport FROM citus_shards s "
        "WHERE s.table_name = 'messages'::regclass "
        "AND s.shardid = get_shard_id_for_distribution_column('messages'::regclass, "
        "(SELECT {} FROM messages WHERE conversation_id = %s LIMIT 1))").format(sql.Identifier(column)),
        (whale[0],)).fetchone()
    assert row is not None
    counted = conn.execute(
        "SELECT result FROM run_command_on_shards('messages', 'SELECT count(*) FROM %%s') WHERE shardid = %s",
        (row[0],)).fetchone()
    shard_rows = int(counted[0]) if counted else 0
    return HotShard(int(whale[0]), int(whale[1]), int(row[0]), str(row[1]), shard_rows,
                    int(whale[1]) / shard_rows if shard_rows else 0.0)


def dynamic_findings(conn: psycopg.Connection[Any], targets: CitusTargets) -> Iterator[Finding]:
    routes = routing(conn)
    for route in routes:
        if route.tasks == UNPLANNABLE:
            yield Finding("citus", "unplannable", route.query, "a distributed plan", "refused by Citus", "error",
                          query=route.query, detail=f"{route.plan_head}; fix: rewrite it so that every table is "
                          "filtered on its distribution column (e.g. INSERT ... VALUES after a separate ownership "
                          "check), or run it through a PL/pgSQL function")
            continue
        shape = "router (1 shard)" if route.router else f"multi-shard ({route.tasks or 'coordinator'} tasks)"
        yield Finding("citus", "routing", route.query, "-", shape, "info", query=route.query, detail=route.plan_head)
    for kind in ("read", "write"):
        mine = [r for r in routes if r.kind == kind]
        if mine:
            share = sum(r.router for r in mine) / len(mine)
            yield Finding("citus", f"router_share_{kind}", f"{kind} queries", "-",
                          f"{share:.0%} router ({sum(r.router for r in mine)} of {len(mine)})", "info")
    history = [r for r in routes if r.query in HISTORY_QUERIES]
    share = sum(r.router for r in history) / len(history) if history else 0.0
    fanning = [r.query for r in history if not r.router]
    yield Finding(
        "citus", "history_router_share", "history pagination",
        f">= {targets.history_router_share:.0%} router", f"{share:.0%} router",
        "error" if share < targets.history_router_share else "info",
        detail=(f"multi-shard: {', '.join(fanning)}; fix: filter each of them on the distribution column"
                if fanning else "every history page is a router query"),
    )
    skew = shard_skew(conn)
    over = skew.rows_over_mean > targets.max_shard_rows_over_mean or \
        skew.bytes_over_mean > targets.max_shard_bytes_over_mean
    yield Finding(
        "citus", "shard_skew", f"{skew.table} ({skew.shards} shards)",
        f"largest shard <= {targets.max_shard_rows_over_mean:g}x the mean rows and "
        f"<= {targets.max_shard_bytes_over_mean:g}x the mean bytes",
        f"{skew.rows_over_mean:.2f}x rows, {skew.bytes_over_mean:.2f}x bytes", "error" if over else "info",
        detail=f"largest {skew.largest_rows} rows, mean {skew.mean_rows:.0f}" +
        ("; fix: more shards (citus.shard_count), or split whale conversations" if over else ""),
    )
    hot = hot_shard(conn)
    yield Finding(
        "citus", "hot_shard", f"conversation {hot.conversation_id}", "-",
        f"shard {hot.shard} on {hot.node}: {hot.messages} of its {hot.shard_rows} messages "
        f"({hot.share_of_shard:.0%})", "info",
    )


@check(CHECK_DYNAMIC)
def dynamic_readiness(ctx: VerificationContext) -> Iterable[Finding]:
    """Distribution readiness (dynamic, Citus only): router vs multi-shard per query, shard skew, hot shard."""
    if not is_citus(ctx.conn):
        return [Finding("citus", "not_citus", "database", "a Citus coordinator", "a single node", "info",
                        detail="routing and skew are measured on a Citus cluster (--backend citus)")]
    if ctx.conn.execute("SELECT 1 FROM citus_tables WHERE table_name = 'messages'::regclass").fetchone() is None:
        return [Finding("citus", "not_distributed", "messages", "a distributed table", "a local table", "error",
                        detail="fix: chatbench.schema.distributed.distribute(...) after the seed")]
    return list(dynamic_findings(ctx.conn, load_citus_targets()))
