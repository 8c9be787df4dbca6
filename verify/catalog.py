"""One catalog reader for both sides of the drift comparison.

The *expected* catalog facts are not derived from the models by hand: the canonical schema is applied
(``schema.apply``) into a scratch database and read back with this very reader, so both sides are the
server's own deparsed text (``format_type``, ``pg_get_indexdef``, ``pg_get_constraintdef``,
``pg_get_triggerdef``). Drift compares what has one spelling (columns, key columns and their order,
direction, opclass, predicate, method, FK targets and actions, trigger timing and events) exactly and
pairs objects by it, never by name; what has many spellings (CHECK texts, defaults, trigger
functions) is judged by behaviour (``chatbench.schema.behaviour``). The SQLAlchemy inspector is exact
for tables, columns and primary keys but not for DESC/NULLS ordering, opclasses, partial predicates,
INCLUDE columns, expressions, CHECK texts or triggers, so everything is read from ``pg_catalog`` in a
handful of queries (one per object kind).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import psycopg

# pg_index.indoption bits
_DESC = 1
_NULLS_FIRST = 2
_ON_DELETE = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
_INT_TYPES = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}


@dataclass(frozen=True)
class PartitionFact:
    """How a partitioned table is split: drift and the plan reader see the parent, never its leaves."""

    strategy: str  # "range" | "list" | "hash"
    key: str  # pg_get_partkeydef: "RANGE (created_at)"
    key_columns: tuple[str | None, ...]  # a plain column per key, None for an expression
    leaves: tuple[str, ...]  # every leaf partition (sub-partitions flattened), by name

    @property
    def leaf_count(self) -> int:
        return len(self.leaves)

    def describe(self) -> str:
        return f"partitioned by {self.key}, {self.leaf_count} leaf partition{'s' if self.leaf_count != 1 else ''}"


@dataclass(frozen=True)
class TableFact:
    name: str
    has_primary_key: bool
    estimated_rows: float
    # "permanent" | "unlogged" | "temporary": the weakest of the table and its leaf partitions
    persistence: str = "permanent"
    partition: PartitionFact | None = None
    unlogged_leaves: tuple[str, ...] = ()  # leaf partitions that are UNLOGGED (a crash empties them)


@dataclass(frozen=True)
class ColumnFact:
    table: str
    name: str
    position: int
    type: str  # format_type: "character varying(255)", "bigint", "timestamp with time zone"
    not_null: bool
    default: str | None
    identity: str  # "" | "ALWAYS" | "BY DEFAULT"
    generated: str  # "" | "STORED" | "VIRTUAL"


@dataclass(frozen=True)
class ConstraintFact:
    table: str
    name: str
    kind: str  # "PRIMARY KEY" | "FOREIGN KEY" | "UNIQUE" | "CHECK" | "EXCLUDE"
    columns: tuple[str, ...]
    definition: str  # pg_get_constraintdef(oid, true)
    ref_table: str | None = None
    ref_columns: tuple[str, ...] = ()
    on_delete: str | None = None
    on_update: str | None = None
    deferrable: bool = False
    validated: bool = True


@dataclass(frozen=True)
class IndexFact:
    table: str
    name: str
    unique: bool
    primary: bool
    method: str
    keys: tuple[str, ...]  # "conversation_id", "updated_at DESC", "lower(email)"
    key_columns: tuple[str | None, ...]  # plain column name per key, None for an expression
    include: tuple[str, ...]
    predicate: str | None
    valid: bool
    ready: bool
    definition: str
    constraint: str | None  # the constraint this index implements (pk, unique), if any

    @property
    def leading_column(self) -> str | None:
        return self.key_columns[0] if self.key_columns else None

    def signature(self) -> tuple[Any, ...]:
        """Everything but the name: two indexes with equal signatures are the same index."""
        return (self.table, self.unique, self.method, self.keys, self.include, self.predicate)

    def describe(self) -> str:
        text = f"{'UNIQUE ' if self.unique else ''}{self.method} ({', '.join(self.keys)})"
        if self.include:
            text += f" INCLUDE ({', '.join(self.include)})"
        if self.predicate:
            text += f" WHERE {self.predicate}"
        return text


@dataclass(frozen=True)
class TriggerFact:
    table: str
    name: str
    function: str
    definition: str  # pg_get_triggerdef with the trigger's name replaced by "<trigger>"
    enabled: bool
    timing: str = ""  # "BEFORE" | "AFTER" | "INSTEAD OF"
    events: tuple[str, ...] = ()  # ("INSERT", "UPDATE"), in that fixed order
    level: str = ""  # "ROW" | "STATEMENT"
    columns: tuple[str, ...] = ()  # UPDATE OF columns
    condition: str | None = None  # the WHEN clause

    def kind(self) -> tuple[str, str, tuple[str, ...], str]:
        """What the trigger is, whatever its name, function, column list or WHEN: table, timing, events, level."""
        return (self.table, self.timing, self.events, self.level)

    def describe(self) -> str:
        of = f" OF {', '.join(self.columns)}" if self.columns else ""
        when = f" WHEN ({self.condition})" if self.condition else ""
        events = " OR ".join(self.events)
        return f"{self.timing} {events}{of} FOR EACH {self.level}{when} EXECUTE FUNCTION {self.function}()"


@dataclass(frozen=True)
class FunctionFact:
    name: str
    arguments: str
    returns: str
    language: str
    source_hash: str  # sha256 of the whitespace-normalised body


@dataclass(frozen=True)
class SequenceFact:
    name: str
    type: str
    owner: str | None  # "table.column" for serial/identity sequences
    last_value: int | None
    max_value: int


@dataclass(frozen=True)
class CatalogFacts:
    """Everything drift and health compare, keyed by name (tables) or ``(table, name)``."""

    schema: str
    tables: Mapping[str, TableFact]
    columns: Mapping[tuple[str, str], ColumnFact]
    constraints: Mapping[tuple[str, str], ConstraintFact]
    indexes: Mapping[tuple[str, str], IndexFact]
    triggers: Mapping[tuple[str, str], TriggerFact]
    functions: Mapping[str, FunctionFact]
    sequences: Mapping[str, SequenceFact] = field(default_factory=dict)
    # leaf partition -> its root partitioned table; leaf index -> the root table's partitioned index
    leaf_parents: Mapping[str, str] = field(default_factory=dict)
    index_parents: Mapping[str, str] = field(default_factory=dict)

    def indexes_of(self, table: str) -> list[IndexFact]:
        return sorted((i for (t, _), i in self.indexes.items() if t == table), key=lambda i: i.name)

    def index_named(self, name: str) -> IndexFact | None:
        return next((i for (_, n), i in self.indexes.items() if n == name), None)

    def constraints_of(self, table: str, kind: str | None = None) -> list[ConstraintFact]:
        return sorted(
            (c for (t, _), c in self.constraints.items() if t == table and (kind is None or c.kind == kind)),
            key=lambda c: c.name,
        )


# Leaf partitions (relispartition) are not tables of the schema: their parent is. Everything else below
# reads parents only; the leaves are read once, with the root they belong to (pg_partition_root).
_TABLES = """
SELECT c.relname,
       EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'p'),
       CASE WHEN c.relkind = 'p'
            THEN (SELECT coalesce(sum(greatest(l.reltuples, 0)), 0) FROM pg_partition_tree(c.oid) t
                    JOIN pg_class l ON l.oid = t.relid WHERE t.isleaf)
            ELSE c.reltuples END::float8,
       c.relpersistence::text,
       CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relkind = 'p' THEN
            ARRAY(SELECT a.attname::text
                    FROM pg_partitioned_table pt, unnest(pt.partattrs::int2[]) WITH ORDINALITY u(num, ord)
                    LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.num
                   WHERE pt.partrelid = c.oid ORDER BY u.ord) END,
       CASE WHEN c.relkind = 'p' THEN
            ARRAY(SELECT l.relname::text FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                   WHERE t.isleaf ORDER BY l.relname) END,
       CASE WHEN c.relkind = 'p' THEN
            ARRAY(SELECT l.relname::text FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
                   WHERE t.isleaf AND l.relpersistence = 'u' ORDER BY l.relname) END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""

_LEAVES = """
SELECT c.relname, r.relname
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_class r ON r.oid = pg_partition_root(c.oid)
 WHERE n.nspname = %(schema)s AND c.relispartition AND c.relkind IN ('r', 'p', 'f')
"""

_LEAF_INDEXES = """
SELECT i.relname, r.relname
  FROM pg_class i
  JOIN pg_namespace n ON n.oid = i.relnamespace
  JOIN pg_class r ON r.oid = pg_partition_root(i.oid)
 WHERE n.nspname = %(schema)s AND i.relispartition AND i.relkind IN ('i', 'I')
"""
_STRATEGIES = {"RANGE": "range", "LIST": "list", "HASH": "hash"}

_COLUMNS = """
SELECT c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity::text, a.attgenerated::text
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND a.attnum > 0 AND NOT a.attisdropped
"""

_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.ord),
       pg_get_constraintdef(k.oid, true),
       f.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.ord),
       k.confdeltype::text, k.confupdtype::text, k.condeferrable, k.convalidated
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class f ON f.oid = k.confrelid
 WHERE n.nspname = %(schema)s AND k.contype IN ('p', 'f', 'u', 'c', 'x') AND NOT c.relispartition
"""

_INDEXES = """
SELECT c.relname, i.relname, x.indisunique, x.indisprimary, am.amname, x.indnkeyatts,
       x.indoption::int2[], x.indkey::int2[],
       ARRAY(SELECT pg_get_indexdef(x.indexrelid, k, true) FROM generate_series(1, x.indnatts) k ORDER BY k),
       ARRAY(SELECT CASE WHEN o.opcdefault THEN '' ELSE o.opcname::text END
               FROM unnest(x.indclass::oid[]) WITH ORDINALITY u(opc, ord) JOIN pg_opclass o ON o.oid = u.opc
              ORDER BY u.ord),
       pg_get_expr(x.indpred, x.indrelid, true), x.indisvalid, x.indisready, pg_get_indexdef(x.indexrelid),
       (SELECT k.conname FROM pg_constraint k WHERE k.conindid = x.indexrelid AND k.conrelid = x.indrelid
         ORDER BY k.conname LIMIT 1)
  FROM pg_index x
  JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_class c ON c.oid = x.indrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_am am ON am.oid = i.relam
 WHERE n.nspname = %(schema)s AND NOT c.relispartition
"""

_TRIGGERS = """
SELECT c.relname, t.tgname, p.proname, pg_get_triggerdef(t.oid, true), t.tgenabled <> 'D', t.tgtype::int,
       ARRAY(SELECT a.attname::text FROM unnest(t.tgattr::int2[]) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = t.tgrelid AND a.attnum = u.num ORDER BY u.ord)
  FROM pg_trigger t
  JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_proc p ON p.oid = t.tgfoid
 WHERE n.nspname = %(schema)s AND NOT t.tgisinternal AND NOT c.relispartition
"""

_FUNCTIONS = """
SELECT p.proname, pg_get_function_identity_arguments(p.oid), format_type(p.prorettype, NULL), l.lanname, p.prosrc
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_language l ON l.oid = p.prolang
 WHERE n.nspname = %(schema)s AND p.prokind = 'f'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
"""

_SEQUENCES = """
SELECT c.relname, format_type(s.seqtypid, NULL), s.seqmax,
       (SELECT t.relname || '.' || a.attname FROM pg_depend d
          JOIN pg_class t ON t.oid = d.refobjid
          JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype IN ('a', 'i') LIMIT 1),
       CASE WHEN has_sequence_privilege(c.oid, 'SELECT') THEN pg_sequence_last_value(c.oid) END
  FROM pg_sequence s
  JOIN pg_class c ON c.oid = s.seqrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s
"""


def unquoted(identifier: str) -> str:
    """A column as the deparsed text spells it (``"createdAt"``), as its name (``createdAt``): what queries and
    contracts name it by."""
    if len(identifier) > 1 and identifier[0] == identifier[-1] == '"':
        return identifier[1:-1].replace('""', '"')
    return identifier


def _render_key(expression: str, option: int, method: str, opclass: str = "") -> str:
    """A key as written in CREATE INDEX: a non-default opclass and btree's DESC/NULLS are part of it."""
    if opclass:
        expression = f"{expression} {opclass}"
    if method != "btree":
        return expression
    desc = bool(option & _DESC)
    nulls_first = bool(option & _NULLS_FIRST)
    text = expression + (" DESC" if desc else "")
    if nulls_first and not desc:
        text += " NULLS FIRST"
    elif desc and not nulls_first:
        text += " NULLS LAST"
    return text


# pg_trigger.tgtype bits
_ROW, _BEFORE, _INSERT, _DELETE, _UPDATE, _TRUNCATE, _INSTEAD = 1, 2, 4, 8, 16, 32, 64
_WHEN = re.compile(r" WHEN \((.*)\) EXECUTE ", re.DOTALL)


def _trigger(r: tuple[Any, ...]) -> TriggerFact:
    table, name, function, definition, enabled, tgtype, columns = r
    timing = "INSTEAD OF" if tgtype & _INSTEAD else "BEFORE" if tgtype & _BEFORE else "AFTER"
    events = tuple(
        e
        for bit, e in ((_INSERT, "INSERT"), (_UPDATE, "UPDATE"), (_DELETE, "DELETE"), (_TRUNCATE, "TRUNCATE"))
        if tgtype & bit
    )
    when = _WHEN.search(definition)
    return TriggerFact(
        table=table,
        name=name,
        function=function,
        definition=definition.replace(f"TRIGGER {name} ", "TRIGGER <trigger> ", 1),
        enabled=bool(enabled),
        timing=timing,
        events=events,
        level="ROW" if tgtype & _ROW else "STATEMENT",
        columns=tuple(columns or ()),
        condition=when.group(1) if when else None,
    )


def _body_hash(source: str) -> str:
    return hashlib.sha256(" ".join(source.split()).encode()).hexdigest()[:16]


def read_catalog(conn: psycopg.Connection[Any], schema: str = "public") -> CatalogFacts:
    """Read the facts of one schema of the connected database (read-only queries only)."""
    p = {"schema": schema}
    tables = {r[0]: _table(r) for r in conn.execute(_TABLES, p)}
    columns = {
        (r[0], r[1]): ColumnFact(
            r[0],
            r[1],
            int(r[2]),
            r[3],
            bool(r[4]),
            r[5],
            {"a": "ALWAYS", "d": "BY DEFAULT"}.get(r[6] or "", ""),
            {"s": "STORED", "v": "VIRTUAL"}.get(r[7] or "", ""),
        )
        for r in conn.execute(_COLUMNS, p)
    }
    kinds = {"p": "PRIMARY KEY", "f": "FOREIGN KEY", "u": "UNIQUE", "c": "CHECK", "x": "EXCLUDE"}
    constraints = {
        (r[0], r[1]): ConstraintFact(
            table=r[0],
            name=r[1],
            kind=kinds[r[2]],
            columns=tuple(r[3]),
            definition=r[4],
            ref_table=r[5],
            ref_columns=tuple(r[6] or ()),
            on_delete=_ON_DELETE.get(r[7]) if r[2] == "f" else None,
            on_update=_ON_DELETE.get(r[8]) if r[2] == "f" else None,
            deferrable=bool(r[9]),
            validated=bool(r[10]),
        )
        for r in conn.execute(_CONSTRAINTS, p)
    }
    indexes: dict[tuple[str, str], IndexFact] = {}
    for r in conn.execute(_INDEXES, p):
        table, name, unique, primary, method, nkey = r[0], r[1], bool(r[2]), bool(r[3]), r[4], int(r[5])
        options, attnums, exprs, opclasses = list(r[6]), list(r[7]), list(r[8]), list(r[9])
        keys = tuple(
            _render_key(
                exprs[k], options[k] if k < len(options) else 0, method, opclasses[k] if k < len(opclasses) else ""
            )
            for k in range(nkey)
        )
        key_columns = tuple(unquoted(exprs[k]) if attnums[k] != 0 else None for k in range(nkey))
        indexes[(table, name)] = IndexFact(
            table=table,
            name=name,
            unique=unique,
            primary=primary,
            method=method,
            keys=keys,
            key_columns=key_columns,
            include=tuple(exprs[nkey:]),
            predicate=r[10],
            valid=bool(r[11]),
            ready=bool(r[12]),
            definition=r[13],
            constraint=r[14],
        )
    triggers = {(r[0], r[1]): _trigger(r) for r in conn.execute(_TRIGGERS, p)}
    functions = {
        r[0]: FunctionFact(r[0], r[1], r[2], r[3], _body_hash(r[4] or "")) for r in conn.execute(_FUNCTIONS, p)
    }
    sequences = {
        r[0]: SequenceFact(r[0], r[1], r[3], None if r[4] is None else int(r[4]), int(r[2]))
        for r in conn.execute(_SEQUENCES, p)
    }
    return CatalogFacts(
        schema=schema,
        tables=MappingProxyType(tables),
        columns=MappingProxyType(columns),
        constraints=MappingProxyType(constraints),
        indexes=MappingProxyType(indexes),
        triggers=MappingProxyType(triggers),
        functions=MappingProxyType(functions),
        sequences=MappingProxyType(sequences),
        leaf_parents=MappingProxyType({r[0]: r[1] for r in conn.execute(_LEAVES, p)}),
        index_parents=MappingProxyType({r[0]: r[1] for r in conn.execute(_LEAF_INDEXES, p)}),
    )


def _table(r: tuple[Any, ...]) -> TableFact:
    name, has_pk, rows, persistence, partkey, key_columns, leaves, unlogged = r
    partition = None
    if partkey is not None:
        partition = PartitionFact(
            _STRATEGIES.get(partkey.split(" ", 1)[0], partkey.split(" ", 1)[0].lower()),
            partkey,
            tuple(key_columns or ()),
            tuple(leaves or ()),
        )
    kind = {"p": "permanent", "u": "unlogged", "t": "temporary"}.get(persistence, persistence)
    if unlogged and kind == "permanent":
        kind = "unlogged"
    return TableFact(name, bool(has_pk), float(rows), kind, partition, tuple(unlogged or ()))


def int_type_max(type_name: str) -> int | None:
    """The largest value of an integer column type, None for other types."""
    return _INT_TYPES.get(type_name)
