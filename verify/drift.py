"""Drift: the live catalog against the canonical one, by meaning, never by name.

Objects are paired by what they are, not what they are called: a primary key or UNIQUE constraint by
its columns, a foreign key by its columns and referenced table, an index by table, method, keys in
order (with direction, NULLS and opclass), INCLUDE and predicate, a trigger by table, timing, events and
level, a CHECK by the columns it reads. A difference in name alone is at most one info line per
object (a PK or UNIQUE constraint and its index are one object).

What has one spelling is compared exactly, and a difference is an error: columns present, their type
family, nullability, key columns, FK targets and actions, index shape. What has many spellings is
judged by behaviour (``chatbench.schema.behaviour``, probed by ``judge.py``): CHECK texts, defaults,
identity versus serial, ``varchar(n)`` versus ``text`` plus a length CHECK, trigger functions and their
``UPDATE OF``/``WHEN``. There a difference is info when the contracts judging it hold, a warning
(type and identity differences always) when they do not; the failing probe is the error.
Extra objects in the live database are findings too, judged by the mode (``ctx.mode``):

* ``exact``: the database equals the expected models; an extra column or constraint is an error, an
  extra table, index, CHECK or trigger a warning (the models are the source of truth);
* ``contract``: the database must give what the canonical queries and behaviours rely on, and extras
  are judged by what they do: an extra table, column, index, trigger or constraint is info (an extra
  index on ``messages`` or ``conversations`` with its measured append cost, ``costs.py``); an extra
  NOT NULL column without a default on a canonical table is an error (the canonical inserts omit it);
  an extra constraint that rejects canonical-valid rows is reported with the row (``acceptance.py``).

In both modes every missing or weakened canonical object stays an error, and so does anything that
gives up a canonical guarantee: durability (an UNLOGGED table or partition), integrity (a missing
foreign key or cascade), ordering (a missing history index, the ``history_order`` probe).
A partitioned table is its parent (the leaves are not tables); a primary key or UNIQUE that had to
take the partition key in is a warning in contract mode saying what uniqueness was given up.

A role the map renames (``[tool.chatbench.map]``: ``messages = "Message_v2"``) is paired by its role, not its
name, and judged by meaning in ``drift_roles.py`` (contract mode); the checks here judge the tables that
keep their canonical names, and leave out the foreign keys into a renamed role. Exact mode compares the
canonical names (``drift_roles.py`` says so in one line when there is a map).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Generic, TypeVar

from chatbench.schema.models import TRIGGER_FUNCTIONS
from chatbench.schema.package import TOOL_TABLES  # migration tools' tables: info, never drift
from chatbench.schema.queries import CANONICAL_QUERIES
from chatbench.verify.acceptance import rejected_by
from chatbench.verify.catalog import ColumnFact, ConstraintFact, IndexFact, TableFact, TriggerFact
from chatbench.verify.context import VerificationContext
from chatbench.verify.costs import append_costs
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.judge import judged, judgement
from chatbench.verify.keys import KEY_COLUMNS, is_key_type
from chatbench.verify.registry import check

# Tables every append_message writes (messages, and conversations through the trigger): an extra index
# there is measured (``costs.py``).
APPEND_TABLES = frozenset({"messages", "conversations"})
# Column types with one behaviour up to a length limit, which the length contracts probe.
# citext (the extension's case-insensitive text) is a string spelling too: what it changes for the
# canonical contract (no length limit) is what the behaviour probes judge.
_STRING_TYPE = re.compile(r"^((\w+\.)?citext|text|character varying(\(\d+\))?)$")

T = TypeVar("T")


@cache
def _query_texts() -> tuple[tuple[str, str], ...]:
    return tuple((q.name, q.sql()) for q in CANONICAL_QUERIES)


def queries_touching(table: str, columns: Iterable[str | None] = ()) -> str | None:
    """The canonical queries that use ``table`` (and, when given, any of ``columns``), comma-separated."""
    wanted = [c for c in columns if c]
    names = []
    for name, text in _query_texts():
        if not re.search(rf"\b{re.escape(table)}\b", text):
            continue
        if wanted and not any(re.search(rf"\b{re.escape(c)}\b", text) for c in wanted):
            continue
        names.append(name)
    return ", ".join(names) or None


def _finding(
    kind: str,
    obj: str,
    expected: Any,
    actual: Any,
    severity: Severity = "error",
    *,
    query: str | None = None,
    detail: str = "",
) -> Finding:
    # An info line (a name or a spelling) stays one short line: the queries matter where something differs.
    return Finding(
        "drift",
        kind,
        obj,
        str(expected),
        str(actual),
        severity,
        query=None if severity == "info" else query,
        detail=detail,
    )


@dataclass(frozen=True)
class Pairing(Generic[T]):
    pairs: tuple[tuple[T, T], ...]
    missing: tuple[T, ...]  # canonical objects nothing in the live schema is
    extra: tuple[T, ...]  # live objects nothing canonical is


def pair(expected: Sequence[T], actual: Sequence[T], *keys: Callable[[T], Hashable]) -> Pairing[T]:
    """Pair canonical and live objects by the first key that matches, in order of ``keys`` (stable)."""
    left, right = list(expected), list(actual)
    pairs: list[tuple[T, T]] = []
    for key in keys:
        for e in list(left):
            match = next((a for a in right if key(a) == key(e)), None)
            if match is not None:
                pairs.append((e, match))
                left.remove(e)
                right.remove(match)
    return Pairing(tuple(pairs), tuple(left), tuple(right))


def _common_tables(ctx: VerificationContext) -> set[str]:
    """The canonical tables the live database has under their own names (a role the map renames is judged
    by ``drift_roles.py``)."""
    return (set(ctx.canonical.tables) & set(ctx.live.tables)) - ctx.mapped


def _is_string(type_name: str) -> bool:
    return bool(_STRING_TYPE.match(type_name))


def _generates_ids(column: ColumnFact) -> bool:
    return bool(column.identity) or (column.default or "").startswith("nextval(")


def _contract(ctx: VerificationContext) -> bool:
    return ctx.mode == "contract"


def _extra_severity(ctx: VerificationContext, exact: Severity = "error") -> Severity:
    """An extra object: drift in exact mode (the database must equal the models), info in contract mode."""
    return "info" if _contract(ctx) else exact


def _rejecting(ctx: VerificationContext, table: str, name: str, exact: Severity) -> tuple[Severity, str]:
    """An extra constraint or unique index: does it reject canonical-valid rows? (severity, detail)."""
    rows = rejected_by(ctx, table, name)
    if rows:
        return "warning", f"rejects rows the canonical schema accepts (see drift/rejects_canonical_row): {rows[0].row}"
    return _extra_severity(ctx, exact), "accepts every canonical row written by the canonical writes"


def _severity(holds: bool | None) -> Severity:
    """A spelling difference the behaviour contracts judge: info when they hold, else a warning (they are the error)."""
    return "info" if holds else "warning"


@check("drift.tables")
def tables(ctx: VerificationContext) -> Iterator[Finding]:
    """Canonical tables missing from the live database, and extra tables in it (a table playing a role the
    map renames is neither: ``drift.roles`` judges it)."""
    expected = set(ctx.canonical.tables) - ctx.mapped
    playing = {ctx.roles.table(role) for role in ctx.mapped}
    for name in sorted(expected - set(ctx.live.tables)):
        yield _finding("missing_table", name, "table", "absent", query=queries_touching(name))
    for name in sorted(set(ctx.live.tables) - expected - playing):
        if name in TOOL_TABLES:
            yield _finding("tool_table", name, "absent", "migration tool table", "info")
        else:
            table = ctx.live.tables[name]
            yield _finding(
                "extra_table",
                name,
                "absent",
                "table" + (f", {table.partition.describe()}" if table.partition else ""),
                _extra_severity(ctx),
            )
    for name in sorted(_common_tables(ctx)):
        yield from durability(ctx.canonical.tables[name], ctx.live.tables[name])
        yield from _partitioning(ctx, ctx.canonical.tables[name], ctx.live.tables[name])


def durability(e: TableFact, a: TableFact, obj: str | None = None) -> Iterator[Finding]:
    """A canonical table that loses its rows on a crash is an error in every mode (the guarantee is gone).
    ``obj``: what the finding names (default the live table; a mapped role names both)."""
    if e.persistence != "permanent" or a.persistence == "permanent":
        return
    where = f" (partitions {', '.join(a.unlogged_leaves)})" if a.unlogged_leaves else ""
    yield _finding(
        "durability",
        obj or a.name,
        "logged (crash-safe, replicated)",
        f"{a.persistence.upper()}{where}",
        query=queries_touching(a.name),
        detail="an UNLOGGED table is truncated after a crash and is not replicated to standbys: acknowledged "
        "writes are lost" if a.persistence == "unlogged" else "a temporary table lives for one session",
    )


def _partitioning(ctx: VerificationContext, e: TableFact, a: TableFact) -> Iterator[Finding]:
    """Partitioning is a physical layout: info in contract mode; exact mode wants the models' layout."""
    e_key = e.partition.key if e.partition else None
    a_key = a.partition.key if a.partition else None
    if e_key == a_key and a.partition is None:
        return
    if e_key == a_key:
        yield _finding("partitioned", a.name, e_key, a.partition.describe() if a.partition else "", "info")
        return
    yield _finding(
        "partitioning",
        a.name,
        e.partition.describe() if e.partition else "not partitioned",
        a.partition.describe() if a.partition else "not partitioned",
        _extra_severity(ctx, "error"),
        query=queries_touching(a.name),
        detail="the plan contracts read the partitions as the table (see plans/partition_pruning)",
    )


def _length_checks(ctx: VerificationContext) -> dict[tuple[str, str], ConstraintFact]:
    """Live CHECKs that spell a string column's length limit (``text`` + ``CHECK (char_length(x) <= n)``).

    A CHECK on exactly one column, where the canonical schema has none, on a column whose string type
    differs from the canonical one: the column's type finding names it, the CHECK is not reported again.
    """
    canonical_checked = {(c.table, c.columns) for c in ctx.canonical.constraints.values() if c.kind == "CHECK"}
    found: dict[tuple[str, str], ConstraintFact] = {}
    for c in ctx.live.constraints.values():
        if c.kind != "CHECK" or len(c.columns) != 1 or (c.table, c.columns) in canonical_checked:
            continue
        e, a = ctx.canonical.columns.get((c.table, c.columns[0])), ctx.live.columns.get((c.table, c.columns[0]))
        if e is not None and a is not None and e.type != a.type and _is_string(e.type) and _is_string(a.type):
            found[(c.table, c.name)] = c
    return found


@check("drift.columns")
def columns(ctx: VerificationContext) -> Iterator[Finding]:
    """Columns: presence, type, nullability, default, identity, generation (spellings judged by behaviour)."""
    common = _common_tables(ctx)
    exp = {k: v for k, v in ctx.canonical.columns.items() if k[0] in common}
    act = {k: v for k, v in ctx.live.columns.items() if k[0] in common}
    length_checks = _length_checks(ctx)
    for key in sorted(set(exp) | set(act)):
        table, name = key
        obj = f"{table}.{name}"
        query = queries_touching(table, [name])
        e, a = exp.get(key), act.get(key)
        if a is None and e is not None:
            yield _finding("missing_column", obj, e.type, "absent", query=query)
            continue
        if e is None and a is not None:
            yield from _extra_column(ctx, a, query)
            continue
        assert e is not None and a is not None
        if e.type != a.type:
            yield from _column_type(
                ctx, e, a, [c for (t, _), c in length_checks.items() if c.columns == (name,) and t == table], query
            )
        if e.not_null != a.not_null:
            yield _finding(
                "nullability",
                obj,
                "NOT NULL" if e.not_null else "NULL allowed",
                "NOT NULL" if a.not_null else "NULL allowed",
                query=query,
            )
        yield from _generation(ctx, e, a, query)
        if e.generated != a.generated:
            yield _finding(
                "generated", obj, e.generated or "not generated", a.generated or "not generated", query=query
            )


def _extra_column(ctx: VerificationContext, a: ColumnFact, query: str | None) -> Iterator[Finding]:
    """Exact: an error (the models do not have it). Contract: info, unless the canonical inserts cannot
    write a row without it (NOT NULL, no default, not generated): then every canonical insert fails."""
    obj = f"{a.table}.{a.name}"
    shown = a.type + (" NOT NULL" if a.not_null else "") + (f" DEFAULT {a.default}" if a.default else "")
    if a.not_null and a.default is None and not a.identity and not a.generated:
        writes = ", ".join(q.name for q in CANONICAL_QUERIES if q.kind == "write" and _inserts_into(q.sql(), a.table))
        yield _finding(
            "extra_not_null_column",
            obj,
            "absent, nullable or with a default",
            shown,
            query=writes or query,
            detail=f"the canonical inserts into {a.table} ({writes or 'as the seed and the probes write them'}) "
            f"do not set {a.name}: every one fails with a not-null violation; give it a default or allow NULL",
        )
        return
    yield _finding("extra_column", obj, "absent", shown, _extra_severity(ctx, "error"), query=query)


def _inserts_into(text: str, table: str) -> bool:
    return bool(re.match(rf"\s*INSERT INTO {re.escape(table)}\b", text))


def _column_type(
    ctx: VerificationContext, e: ColumnFact, a: ColumnFact, checks: list[ConstraintFact], query: str | None
) -> Iterator[Finding]:
    obj = f"{e.table}.{e.name}"
    if _contract(ctx) and _other_key_type(e, a):
        yield _finding("key_type", obj, e.type, a.type, "info", query=query, detail=_KEY_TYPE_DETAIL)
        return
    names, holds = judged(ctx, columns=[obj]) if _is_string(e.type) and _is_string(a.type) else ((), None)
    if not names:
        yield _finding("column_type", obj, e.type, a.type, query=query)
        return
    spelled = a.type + "".join(f" + {c.definition}" for c in checks)
    yield _finding("column_type", obj, e.type, spelled, "warning", query=query, detail=judgement(names, holds))


_KEY_TYPE_DETAIL = (
    "a key of another type serves the canonical queries unchanged (they pass keys untyped); "
    "how its ids are generated and how ties page are judged by behaviour (ids_generated, history_order)"
)


def _other_key_type(e: ColumnFact, a: ColumnFact) -> bool:
    """A canonical key column (an id or a foreign key to one) keyed by uuid or text instead of bigint.

    Contract mode accepts it: the canonical queries pass keys untyped, the server enforces that a
    foreign key has its referenced key's type, and the behaviour probes judge what the type changes.
    """
    return (e.table, e.name) in KEY_COLUMNS and e.type == "bigint" and is_key_type(a.type)


def _generation(ctx: VerificationContext, e: ColumnFact, a: ColumnFact, query: str | None) -> Iterator[Finding]:
    """Defaults and identity: how a value is filled in is judged by behaviour (``ids_generated``, ``times_...``)."""
    obj = f"{e.table}.{e.name}"
    if (e.identity, e.default) == (a.identity, a.default):
        return
    names, holds = judged(ctx, columns=[obj])

    def how(c: ColumnFact) -> str:
        if c.identity:
            return f"GENERATED {c.identity} AS IDENTITY"
        return f"DEFAULT {c.default}" if c.default else "no default"

    if _generates_ids(e) and _generates_ids(a):
        # identity vs bigserial, ALWAYS vs BY DEFAULT: ids are generated either way (the probe says so)
        yield _finding("identity", obj, how(e), how(a), "warning", query=query, detail=judgement(names, holds))
    elif names:
        yield _finding(
            "identity" if e.identity or a.identity else "column_default",
            obj,
            how(e),
            how(a),
            _severity(holds),
            query=query,
            detail=judgement(names, holds),
        )
    elif e.default is None and not e.identity:
        yield _finding(
            "column_default",
            obj,
            how(e),
            how(a),
            "warning",
            query=query,
            detail="a default the canonical schema does not have",
        )
    else:
        yield _finding("column_default", obj, how(e), how(a), query=query)


def _normalised(definition: str) -> str:
    return " ".join(definition.split())


@check("drift.constraints")
def constraints(ctx: VerificationContext) -> Iterator[Finding]:
    """Primary keys, foreign keys (columns, target, ON DELETE/UPDATE) and UNIQUE by columns; CHECKs by behaviour."""
    common = _common_tables(ctx)
    # a foreign key into a role the map renames is judged with that role (``drift.roles``)
    exp = [c for c in ctx.canonical.constraints.values() if c.table in common and c.ref_table not in ctx.mapped]
    act = [c for c in ctx.live.constraints.values()
           if c.table in common and (c.ref_table is None or ctx.roles.role_of(c.ref_table) not in ctx.mapped)]
    by_kind = sorted({c.kind for c in exp + act})
    for kind in by_kind:
        e_kind = sorted((c for c in exp if c.kind == kind), key=lambda c: (c.table, c.name))
        a_kind = sorted((c for c in act if c.kind == kind), key=lambda c: (c.table, c.name))
        if kind == "CHECK":
            yield from _checks(ctx, e_kind, a_kind)
        elif kind == "FOREIGN KEY":
            yield from _foreign_keys(ctx, e_kind, a_kind)
        else:
            yield from _keys(ctx, kind, e_kind, a_kind)


def _renamed(kind: str, e: Any, a: Any, query: str | None, detail: str = "") -> Iterator[Finding]:
    if e.name != a.name:
        yield _finding(f"renamed_{kind}", f"{e.table}.{e.name}", e.name, a.name, "info", query=query, detail=detail)


def _keys(
    ctx: VerificationContext, kind: str, exp: list[ConstraintFact], act: list[ConstraintFact]
) -> Iterator[Finding]:
    """PRIMARY KEY, UNIQUE, EXCLUDE: the same columns make the same constraint (a UNIQUE may be a unique index).

    On a partitioned table PostgreSQL requires them to include the partition key: the canonical key with
    the partition key columns added is the same constraint, weakened (see ``_partition_key_added``).
    """
    paired = pair(
        exp,
        act,
        lambda c: (c.table, c.columns),
        lambda c: (c.table, _without_partition_key(ctx, c)),
        lambda c: (c.table, c.name),
    )
    label = kind.lower().replace(" ", "_")
    for e, a in paired.pairs:
        query = queries_touching(e.table, e.columns)
        if e.columns != a.columns and _without_partition_key(ctx, a) == e.columns:
            yield _partition_key_added(ctx, kind, e, a, query)
        elif (e.columns, _normalised(e.definition)) != (a.columns, _normalised(a.definition)):
            yield _finding(f"{label}_definition", f"{e.table}.{e.name}", e.definition, a.definition, query=query)
        else:
            yield from _renamed("constraint", e, a, query, e.definition)
        if e.validated and not a.validated:
            yield _finding(
                "not_validated", f"{e.table}.{e.name}", "VALID", "NOT VALID (existing rows unchecked)", query=query
            )
    unique_indexes = [
        i
        for i in ctx.live.indexes.values()
        if i.unique and i.predicate is None and i.valid and None not in i.key_columns
    ]
    for e in paired.missing:
        query = queries_touching(e.table, e.columns)
        index = next(
            (i for i in unique_indexes if kind == "UNIQUE" and i.table == e.table and i.key_columns == e.columns), None
        )
        if index is not None:
            yield _finding(
                "unique_as_index",
                f"{e.table}.{e.name}",
                e.definition,
                f"unique index {index.name}",
                "info",
                query=query,
                detail="a unique index rejects the same rows as a UNIQUE constraint",
            )
        else:
            yield _finding(f"missing_{label}", f"{e.table}.{e.name}", e.definition, "absent", query=query)
    for a in paired.extra:
        yield _extra_constraint(ctx, f"extra_{label}", a)


def _extra_constraint(ctx: VerificationContext, kind: str, a: ConstraintFact) -> Finding:
    """An extra UNIQUE, EXCLUDE, PRIMARY KEY or FOREIGN KEY: an error in exact mode; in contract mode info
    unless it rejects canonical-valid rows (then a warning pointing at the rejected row, the error)."""
    severity, detail = _rejecting(ctx, a.table, a.name, "error")
    return _finding(
        kind,
        f"{a.table}.{a.name}",
        "absent",
        a.definition,
        severity,
        query=queries_touching(a.table, a.columns),
        detail=detail if _contract(ctx) or severity == "warning" else "",
    )


def _partition_key(ctx: VerificationContext, table: str) -> tuple[str | None, ...]:
    fact = ctx.live.tables.get(table)
    return fact.partition.key_columns if fact is not None and fact.partition is not None else ()


def _without_partition_key(ctx: VerificationContext, c: ConstraintFact) -> tuple[str, ...]:
    """A live key's columns without the partition key's (the part the canonical key must equal)."""
    key = _partition_key(ctx, c.table)
    return tuple(col for col in c.columns if col not in key) if key else c.columns


def _partition_key_added(
    ctx: VerificationContext, kind: str, e: ConstraintFact, a: ConstraintFact, query: str | None
) -> Finding:
    """A key that had to take the partition key in: warning in contract mode, saying what was given up."""
    added = [c for c in a.columns if c not in e.columns]
    canonical_cols, live_cols = ", ".join(e.columns), ", ".join(a.columns)
    table = ctx.live.tables[a.table]
    return _finding(
        "partition_key_in_" + kind.lower().replace(" ", "_"),
        f"{e.table}.{e.name}",
        e.definition,
        a.definition,
        "warning" if _contract(ctx) else "error",
        query=query,
        detail=f"PostgreSQL requires a {kind} of a table {table.partition.describe() if table.partition else ''} "
        f"to include the partition key: ({canonical_cols}) alone is no longer unique, only ({live_cols}) is; "
        f"two rows may share {canonical_cols} if their {', '.join(added)} differ (ids the database generates "
        f"stay distinct, ids written explicitly or copied are not checked across partitions), and no foreign "
        f"key can reference {e.table}({canonical_cols}) alone",
    )


def _foreign_keys(ctx: VerificationContext, exp: list[ConstraintFact], act: list[ConstraintFact]) -> Iterator[Finding]:
    paired = pair(
        exp,
        act,
        lambda c: (c.table, c.columns, c.ref_table, c.ref_columns),
        lambda c: (c.table, c.columns),
        lambda c: (c.table, c.name),
    )
    for e, a in paired.pairs:
        differences = list(_foreign_key_differences(e, a))
        if not differences:
            yield from _renamed("constraint", e, a, queries_touching(e.table, e.columns), e.definition)
        for f in differences:  # the name goes with what differs: one object, no separate rename line
            renamed = f"named {a.name} here" if e.name != a.name else ""
            yield replace(f, detail="; ".join(x for x in (f.detail, renamed) if x))
    for e in paired.missing:
        yield _finding(
            "missing_foreign_key",
            f"{e.table}.{e.name}",
            e.definition,
            "absent",
            query=queries_touching(e.table, e.columns),
        )
    for a in paired.extra:
        yield _extra_constraint(ctx, "extra_foreign_key", a)


def _foreign_key_differences(e: ConstraintFact, a: ConstraintFact) -> Iterator[Finding]:
    obj = f"{e.table}.{e.name}"
    query = queries_touching(e.table, e.columns)
    if (e.columns, e.ref_table, e.ref_columns) != (a.columns, a.ref_table, a.ref_columns):
        yield _finding(
            "foreign_key_target",
            obj,
            f"({', '.join(e.columns)}) -> {e.ref_table}({', '.join(e.ref_columns)})",
            f"({', '.join(a.columns)}) -> {a.ref_table}({', '.join(a.ref_columns)})",
            query=query,
        )
    if e.on_delete != a.on_delete:
        yield _finding(
            "foreign_key_on_delete", obj, f"ON DELETE {e.on_delete}", f"ON DELETE {a.on_delete}", query=query
        )
    if e.on_update != a.on_update:
        yield _finding(
            "foreign_key_on_update", obj, f"ON UPDATE {e.on_update}", f"ON UPDATE {a.on_update}", query=query
        )
    if e.deferrable != a.deferrable:
        yield _finding(
            "foreign_key_deferrable",
            obj,
            "NOT DEFERRABLE" if not e.deferrable else "DEFERRABLE",
            "DEFERRABLE" if a.deferrable else "NOT DEFERRABLE",
            "warning",
            query=query,
            detail="the probes check its cascades with constraints made immediate",
        )
    if e.validated and not a.validated:
        yield _finding("not_validated", obj, "VALID", "NOT VALID (existing rows unchecked)", query=query)


def _checks(ctx: VerificationContext, exp: list[ConstraintFact], act: list[ConstraintFact]) -> Iterator[Finding]:
    """CHECKs are paired by the columns they read; what they accept is judged by the behaviour contracts."""
    folded = set(_length_checks(ctx))
    act = [a for a in act if (a.table, a.name) not in folded]
    paired = pair(
        exp,
        act,
        lambda c: (c.table, frozenset(c.columns), _normalised(c.definition)),
        lambda c: (c.table, frozenset(c.columns)),
    )
    for e, a in paired.pairs:
        obj = f"{e.table}.{e.name}"
        query = queries_touching(e.table, e.columns)
        if _normalised(e.definition) == _normalised(a.definition):
            yield from _renamed("constraint", e, a, query, e.definition)
        else:
            names, holds = judged(ctx, columns=[f"{e.table}.{c}" for c in e.columns])
            if names:
                yield _finding(
                    "check_definition" if not holds else "equivalent_check",
                    obj,
                    f"{e.name}: {e.definition}",
                    f"{a.name}: {a.definition}",
                    _severity(holds),
                    query=query,
                    detail=judgement(names, holds),
                )
            else:
                yield _finding("check_definition", obj, e.definition, a.definition, query=query)
        if e.validated and not a.validated:
            yield _finding("not_validated", obj, "VALID", "NOT VALID (existing rows unchecked)", query=query)
    for e in paired.missing:
        obj = f"{e.table}.{e.name}"
        query = queries_touching(e.table, e.columns)
        names, holds = judged(ctx, columns=[f"{e.table}.{c}" for c in e.columns])
        if names:
            yield _finding(
                "missing_check",
                obj,
                e.definition,
                "absent (enforced otherwise)" if holds else "absent",
                _severity(holds),
                query=query,
                detail=judgement(names, holds),
            )
        else:
            yield _finding("missing_check", obj, e.definition, "absent", query=query)
    for a in paired.extra:
        names, holds = judged(ctx, columns=[f"{a.table}.{c}" for c in a.columns])
        severity, accepts = _rejecting(ctx, a.table, a.name, "error")
        if holds is False and severity == "info":
            severity = "warning"  # a behaviour contract over its columns breaks: that probe is the error
        yield _finding(
            "extra_check",
            f"{a.table}.{a.name}",
            "absent",
            a.definition,
            severity,
            query=queries_touching(a.table, a.columns),
            detail="; ".join(
                x
                for x in (
                    "a constraint the canonical schema does not have",
                    judgement(names, holds) if names else "",
                    accepts,
                )
                if x
            ),
        )


@check("drift.indexes")
def indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """Indexes by shape: keys in order with direction, NULLS and opclass, uniqueness, method, predicate, INCLUDE."""
    common = _common_tables(ctx)
    exp = sorted((i for i in ctx.canonical.indexes.values() if i.table in common), key=lambda i: (i.table, i.name))
    act = sorted((i for i in ctx.live.indexes.values() if i.table in common), key=lambda i: (i.table, i.name))
    paired = pair(exp, act, IndexFact.signature, lambda i: (i.table, i.name))
    extra = [a for a in paired.extra if a.constraint is None]
    # the append is measured with canonical rows on the canonical names: not on roles the map renames
    measured = [a for a in extra if a.table in APPEND_TABLES and a.valid] if _contract(ctx) and not ctx.mapped else []
    costs = append_costs(ctx, measured) if measured else {}
    for e, a in paired.pairs:
        obj = f"{e.table}.{e.name}"
        query = queries_touching(e.table, e.key_columns[:1])
        if e.constraint is not None and a.constraint is not None and _with_partition_key(ctx, e, a):
            continue  # a key that took the partition key in: the constraint check says what it gave up
        if e.signature() == a.signature():
            # a PK's or UNIQUE constraint's index is reported with its constraint, once
            if e.constraint is None and a.constraint is None:
                yield from _renamed("index", e, a, query, e.describe())
            continue
        yield from _index_differences(e, a, obj, query)
    for e in paired.missing:
        if e.constraint is not None and any(
            i.table == e.table
            and i.unique
            and (i.key_columns == e.key_columns or _with_partition_key(ctx, e, i))
            for i in act
        ):
            # a UNIQUE constraint kept as a unique index of another shape, or a key that took the partition
            # key in: the constraint check says so
            continue
        yield _finding(
            "missing_index",
            f"{e.table}.{e.name}",
            e.describe(),
            "absent",
            query=queries_touching(e.table, e.key_columns[:1]),
        )
    for a in extra:  # an extra PK/UNIQUE constraint's index is reported with the constraint
        cost = costs.get(a.name)
        detail = f"every write maintains it: {a.definition}"
        if cost is not None:
            detail = f"{cost.describe()}: {a.definition}"
        severity: Severity = _extra_severity(ctx)
        if a.unique:
            severity, accepts = _rejecting(ctx, a.table, a.name, "error")
            detail = f"{detail}; {accepts}" if _contract(ctx) or severity == "warning" else detail
        yield _finding(
            "extra_index",
            f"{a.table}.{a.name}",
            "absent",
            a.describe(),
            severity,
            query=queries_touching(a.table, a.key_columns[:1]),
            detail=detail,
        )


def _with_partition_key(ctx: VerificationContext, e: IndexFact, a: IndexFact) -> bool:
    """``a`` is ``e``'s key with the partition key columns added (what a partitioned table's PK must be)."""
    key = _partition_key(ctx, a.table)
    return bool(key) and tuple(c for c in a.key_columns if c not in key) == e.key_columns


def _index_differences(e: IndexFact, a: IndexFact, obj: str, query: str | None) -> Iterator[Finding]:
    if e.keys != a.keys:
        yield _finding("index_columns", obj, f"({', '.join(e.keys)})", f"({', '.join(a.keys)})", query=query)
    if e.unique != a.unique:
        yield _finding(
            "index_unique",
            obj,
            "UNIQUE" if e.unique else "not unique",
            "UNIQUE" if a.unique else "not unique",
            query=query,
        )
    if e.method != a.method:
        yield _finding("index_method", obj, e.method, a.method, query=query)
    if e.include != a.include:
        yield _finding(
            "index_include",
            obj,
            f"INCLUDE ({', '.join(e.include)})" if e.include else "no INCLUDE",
            f"INCLUDE ({', '.join(a.include)})" if a.include else "no INCLUDE",
            query=query,
        )
    if e.predicate != a.predicate:
        yield _finding("index_predicate", obj, e.predicate or "not partial", a.predicate or "not partial", query=query)


@check("drift.triggers")
def triggers(ctx: VerificationContext) -> Iterator[Finding]:
    """Triggers by table, timing, events and level; their functions, UPDATE OF and WHEN judged by behaviour."""
    common = _common_tables(ctx)
    exp = sorted((t for t in ctx.canonical.triggers.values() if t.table in common), key=lambda t: (t.table, t.name))
    act = sorted((t for t in ctx.live.triggers.values() if t.table in common), key=lambda t: (t.table, t.name))
    live_bodies = ctx.live.functions
    canonical_bodies = ctx.canonical.functions
    paired = pair(exp, act, lambda t: (*t.kind(), t.name), TriggerFact.kind)
    for e, a in paired.pairs:
        obj = f"{e.table}.{e.name}"
        query = queries_touching(e.table)
        names, holds = judged(ctx, triggers=[e.name])
        body_e, body_a = canonical_bodies.get(e.function), live_bodies.get(a.function)
        same_text = (e.columns, e.condition) == (a.columns, a.condition) and (
            body_e is not None and body_a is not None and body_e.source_hash == body_a.source_hash
        )
        if not a.enabled:
            yield _finding(
                "trigger_disabled",
                obj,
                "enabled",
                "disabled",
                "warning",
                query=query,
                detail=judgement(names, holds) if names else "",
            )
        elif not same_text:
            yield _finding(
                "equivalent_trigger" if holds else "trigger_definition",
                obj,
                f"{e.name}: {e.describe()}",
                f"{a.name}: {a.describe()}",
                _severity(holds) if names else "error",
                query=query,
                detail=judgement(names, holds) if names else "",
            )
        elif (e.name, e.function) != (a.name, a.function):
            yield _finding(
                "renamed_trigger", obj, f"{e.name} ({e.function})", f"{a.name} ({a.function})", "info", query=query
            )
    for e in paired.missing:
        names, holds = judged(ctx, triggers=[e.name])
        yield _finding(
            "missing_trigger",
            f"{e.table}.{e.name}",
            e.describe(),
            "absent (behaviour implemented otherwise)" if holds else "absent",
            _severity(holds) if names else "error",
            query=queries_touching(e.table),
            detail=judgement(names, holds) if names else "",
        )
    for a in paired.extra:
        yield _finding(
            "extra_trigger",
            f"{a.table}.{a.name}",
            "absent",
            a.describe(),
            _extra_severity(ctx),
            query=queries_touching(a.table),
            detail="the behaviour probes run with it in place",
        )


@check("drift.functions")
def functions(ctx: VerificationContext) -> Iterator[Finding]:
    """Functions other than trigger functions (those are judged by the behaviour of their triggers)."""
    live_trigger_functions = {t.function for t in ctx.live.triggers.values()}
    for fname in sorted(set(ctx.canonical.functions) - set(TRIGGER_FUNCTIONS)):
        ef, af = ctx.canonical.functions[fname], ctx.live.functions.get(fname)
        if af is None:
            yield _finding("missing_function", fname, f"{ef.language} function returning {ef.returns}", "absent")
        elif (ef.arguments, ef.returns, ef.language, ef.source_hash) != (
            af.arguments,
            af.returns,
            af.language,
            af.source_hash,
        ):
            yield _finding(
                "function_definition",
                fname,
                f"body {ef.source_hash} ({ef.language}, returns {ef.returns})",
                f"body {af.source_hash} ({af.language}, returns {af.returns})",
            )
    for fname in sorted(set(ctx.live.functions) - set(ctx.canonical.functions) - live_trigger_functions):
        yield _finding("extra_function", fname, "absent", ctx.live.functions[fname].returns, "info")
