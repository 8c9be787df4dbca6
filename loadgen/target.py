"""The schema a seed fills, read from the database's own catalog after the schema was created.

Whatever built the schema (the canonical models, the application's ``--models``, its migrations),
the loader fills what the catalog says is there: every table (leaf partitions through their parent),
every column by its type, nullability, default, CHECK, foreign key and uniqueness. Tables and columns
are given roles through the role map (``chatbench.schema.rolemap``: ``[tool.chatbench.map]``, the
canonical names where it says nothing): the tables playing ``users``, ``conversations`` and ``messages``
get the plan's rows (the history's shape) in the columns playing the role's columns; any other table is
a *child* filled per row of the table its first foreign key references.

Only read-only catalog queries run here.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg

from chatbench.errors import ConfigError
from chatbench.schema.package import TOOL_TABLES
from chatbench.schema.rolemap import CANONICAL, ROLE_TABLES, RoleMap

_IN_LIST = re.compile(r"\(?\(?(\w+)\)?(?:::\w+(?: \w+)*)? = ANY \(\(?ARRAY\[(.*?)\]\)?(?:::[\w\[\] ]+)?\)")
_IN_PLAIN = re.compile(r"\(?(\w+)\)? IN \((.*?)\)")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")
_NUMBERS = re.compile(r"\s*'?-?\d+'?(?:::\w+)?(?:\s*,\s*'?-?\d+'?(?:::\w+)?)*\s*")
_BOUND = re.compile(r"^CHECK \(\(?(\w+) (>=|>|<=|<) \(?(-?\d+)\)?\)?\)$")
_LENGTH = re.compile(r"(?:char_length|length)\(\(?(\w+)\)?(?:::text)?\) <= (\d+)")


@dataclass(frozen=True)
class TargetColumn:
    name: str
    type_name: str  # format_type: "character varying(255)", "uuid", "jsonb", "my_enum"
    base: str  # pg_type.typname of the base type: "int8", "varchar", "uuid", "jsonb", "timestamptz"
    enum_labels: tuple[str, ...]
    max_length: int | None  # varchar(n) / char(n) / a length CHECK
    not_null: bool
    has_default: bool
    identity: bool
    generated: bool
    unique: bool
    choices: tuple[str, ...]  # from a CHECK (col IN (...)): the values allowed
    minimum: int | None
    maximum: int | None
    references: tuple[str, str] | None  # (table, column) of a single-column foreign key


@dataclass(frozen=True)
class TargetTable:
    name: str
    role: str | None  # users | conversations | messages | None (a child table)
    columns: tuple[TargetColumn, ...]
    primary_key: tuple[str, ...]
    partitioned: bool
    leaves: tuple[str, ...]
    parent: str | None  # for a child: the table whose rows it is filled per (its first foreign key)
    parent_column: str | None
    # the role's columns the table has: canonical name ("created_at") -> the table's column ("createdAt")
    role_columns: Mapping[str, str] = field(default_factory=dict)
    # foreign keys of several columns: (its columns, the referenced table, the referenced columns)
    composite_references: tuple[tuple[tuple[str, ...], str, tuple[str, ...]], ...] = ()
    # the columns of every primary key and UNIQUE constraint: what the filled rows must not repeat
    unique_keys: tuple[tuple[str, ...], ...] = ()

    def in_unique_key(self, column: str) -> bool:
        """Part of a key of several columns (a single-column one is ``TargetColumn.unique``)."""
        return any(column in key for key in self.unique_keys if len(key) > 1)

    def column(self, name: str) -> TargetColumn | None:
        return next((c for c in self.columns if c.name == name), None)

    def role_column(self, canonical: str) -> TargetColumn | None:
        """The column playing the role's ``canonical`` column (None when the table has none)."""
        name = self.role_columns.get(canonical)
        return None if name is None else self.column(name)


@dataclass(frozen=True)
class TargetSchema:
    tables: tuple[TargetTable, ...]  # referenced tables first
    roles: RoleMap = CANONICAL  # the map that gave the tables their roles

    def table(self, name: str) -> TargetTable | None:
        return next((t for t in self.tables if t.name == name), None)

    def role(self, role: str) -> TargetTable:
        found = next((t for t in self.tables if t.role == role), None)
        if found is None:
            mapped = self.roles.table(role)
            if mapped != role:
                raise ConfigError(f"[tool.chatbench.map] {role} = {mapped!r}: the schema has no table {mapped!r}; "
                                  "name the application's table as the catalog spells it")
            raise ConfigError(
                f"the schema has no {role!r} table; chatbench seeds the chat history into users, conversations "
                "and messages (create them, or name yours in [tool.chatbench.map])"
            )
        return found

    @property
    def children(self) -> tuple[TargetTable, ...]:
        return tuple(t for t in self.tables if t.role is None)


_TABLES = """
SELECT c.oid, c.relname, c.relkind = 'p',
       ARRAY(SELECT l.relname::text FROM pg_partition_tree(c.oid) t JOIN pg_class l ON l.oid = t.relid
              WHERE t.isleaf AND t.relid <> c.oid ORDER BY 1)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
"""
_COLUMNS = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
       coalesce(bt.typname, t.typname), t.typtype = 'e',
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE WHEN coalesce(bt.typname, t.typname) IN ('varchar', 'bpchar') AND a.atttypmod > 4
            THEN a.atttypmod - 4 END,
       a.attnotnull, a.atthasdef, a.attidentity <> '', a.attgenerated <> ''
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
   AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY c.relname, a.attnum
"""
_CONSTRAINTS = """
SELECT c.relname, k.conname, k.contype::text,
       ARRAY(SELECT a.attname::text FROM unnest(k.conkey) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = u.num ORDER BY u.ord),
       f.relname,
       ARRAY(SELECT a.attname::text FROM unnest(k.confkey) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = k.confrelid AND a.attnum = u.num ORDER BY u.ord),
       pg_get_constraintdef(k.oid)
  FROM pg_constraint k
  JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_class f ON f.oid = k.confrelid
 WHERE n.nspname = %(schema)s AND NOT c.relispartition AND k.contype IN ('p', 'u', 'f', 'c')
   AND k.conparentid = 0
UNION ALL
SELECT c.relname, i.relname, 'i',
       ARRAY(SELECT a.attname::text FROM unnest(x.indkey::int2[]) WITH ORDINALITY u(num, ord)
               JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = u.num ORDER BY u.ord),
       NULL, ARRAY[]::text[], pg_get_indexdef(x.indexrelid)
  FROM pg_index x
  JOIN pg_class c ON c.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND NOT c.relispartition AND x.indisunique
   AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = x.indexrelid)
   AND 0 <> ALL (x.indkey::int2[])
 ORDER BY 1, 2
"""
_KEYS = ("p", "u", "i")
"""Primary keys, UNIQUE constraints and unique indexes that are no constraint (``CREATE UNIQUE INDEX``, as
migrations often write them; expression indexes left out): what the filled rows must not repeat."""


def read_target(conn: psycopg.Connection[Any], schema: str = "public", *, keep_filled: bool = False,
                roles: RoleMap = CANONICAL) -> TargetSchema:
    """The tables of ``schema`` as the loader sees them (read-only), with the roles ``roles`` gives them.

    A migration tool's table is never a target. With ``keep_filled`` (a schema the application's
    migrations built), a table beyond the history that already holds rows (reference data the
    migrations inserted) is left as it is, not emptied and filled again. A column the map names that
    its table lacks is a one-line error: the map is misspelt, and the history would miss it silently.
    """
    p = {"schema": schema}
    tables = {r[1]: (bool(r[2]), tuple(r[3])) for r in conn.execute(_TABLES, p) if r[1] not in TOOL_TABLES}
    if keep_filled:
        tables = {name: facts for name, facts in tables.items()
                  if roles.role_of(name) is not None or not _holds_rows(conn, name)}
    columns: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
    for r in conn.execute(_COLUMNS, p):
        columns[r[0]].append(r[1:])
    constraints = conn.execute(_CONSTRAINTS, p).fetchall()
    built = [_table(name, partitioned, leaves, columns[name], [k for k in constraints if k[0] == name], roles)
             for name, (partitioned, leaves) in tables.items()]
    _check_mapped_columns(built, roles)
    return TargetSchema(_dependency_order(built), roles)


def _check_mapped_columns(tables: list[TargetTable], roles: RoleMap) -> None:
    for table in tables:
        for (role, canonical), name in sorted(roles.columns.items()):
            if role == table.role and table.column(name) is None:
                raise ConfigError(
                    f"[tool.chatbench.map] \"{role}.{canonical}\" = {name!r}: table {table.name!r} has no column "
                    f"{name!r}; name the column as the catalog spells it ({', '.join(c.name for c in table.columns)})"
                )


_DEFINITIONS = """
SELECT 'column', c.relname || '.' || a.attname, concat_ws(' ', format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation, a.attnum)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'relation', c.relname, concat_ws(' ', c.relkind, c.relpersistence, c.reloptions::text,
       pg_get_expr(c.relpartbound, c.oid), CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END,
       CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
UNION ALL
SELECT 'constraint', c.relname || '.' || k.conname, pg_get_constraintdef(k.oid) || k.convalidated::text
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'index', i.relname, pg_get_indexdef(x.indexrelid) || x.indisvalid::text
  FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = i.relnamespace
 WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'trigger', c.relname || '.' || t.tgname, pg_get_triggerdef(t.oid) || t.tgenabled::text
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND NOT t.tgisinternal
UNION ALL
SELECT 'function', p.oid::regprocedure::text, p.prosrc
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(schema)s
UNION ALL
SELECT 'type', t.typname, concat_ws(' ', t.typtype, (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
       FROM pg_enum e WHERE e.enumtypid = t.oid))
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname = %(schema)s AND t.typtype IN ('e', 'd', 'c') AND t.typrelid = 0
UNION ALL
SELECT 'extension', e.extname, e.extversion FROM pg_extension e
"""


def schema_digest(conn: psycopg.Connection[Any], schema: str = "public") -> str:
    """A digest of every definition in ``schema`` (columns, keys, indexes, triggers, functions, partitions,
    types, extensions): two databases with equal digests hold the same schema. The seed cache keys a
    pre-built schema by it, so a schema that differs in one index is never handed another's seed."""
    rows = sorted(tuple(str(v) for v in r) for r in conn.execute(_DEFINITIONS, {"schema": schema}))
    return hashlib.sha256(repr(rows).encode()).hexdigest()[:16]


def _holds_rows(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute(f'SELECT EXISTS (SELECT 1 FROM "{table}")').fetchone()
    return bool(row and row[0])


def _table(name: str, partitioned: bool, leaves: tuple[str, ...], cols: list[tuple[Any, ...]],
           constraints: list[tuple[Any, ...]], roles: RoleMap) -> TargetTable:
    unique = {k[3][0] for k in constraints if k[2] in _KEYS and len(k[3]) == 1}
    references = {k[3][0]: (k[4], k[5][0]) for k in constraints if k[2] == "f" and len(k[3]) == 1}
    checks = [k[6] for k in constraints if k[2] == "c"]
    primary = next((tuple(k[3]) for k in constraints if k[2] == "p"), ())
    out = []
    for attname, type_name, base, is_enum, labels, length, not_null, has_default, identity, generated in cols:
        choices, low, high, limit = _check_facts(attname, checks)
        out.append(TargetColumn(
            name=attname, type_name=type_name, base=base, enum_labels=tuple(labels) if is_enum else (),
            max_length=min(x for x in (length, limit) if x is not None) if length or limit else None,
            not_null=bool(not_null), has_default=bool(has_default), identity=bool(identity),
            generated=bool(generated), unique=attname in unique or primary == (attname,), choices=choices,
            minimum=low, maximum=high, references=references.get(attname),
        ))
    role = roles.role_of(name)
    role_columns: dict[str, str] = {}  # a plain dict: layouts holding it are pickled to the render workers
    if role is not None:
        for column in out:
            canonical = roles.role_column(role, column.name)
            if canonical is not None:
                role_columns[canonical] = column.name
    fk = next(((k[3][0], k[4]) for k in constraints if k[2] == "f" and len(k[3]) == 1 and k[4] != name), None)
    parent = fk if fk and role is None else None
    composites = tuple((tuple(k[3]), k[4], tuple(k[5])) for k in constraints if k[2] == "f" and len(k[3]) > 1)
    keys = tuple(tuple(k[3]) for k in constraints if k[2] in _KEYS)
    return TargetTable(name, role, tuple(out), primary, partitioned, leaves,
                       parent=parent[1] if parent else None, parent_column=parent[0] if parent else None,
                       role_columns=role_columns, composite_references=composites, unique_keys=keys)


def _check_facts(column: str, checks: list[str]) -> tuple[tuple[str, ...], int | None, int | None, int | None]:
    """What the CHECKs on one column allow: a list of values, integer bounds, a length limit."""
    choices: tuple[str, ...] = ()
    low = high = limit = None
    for definition in checks:
        for pattern in (_IN_LIST, _IN_PLAIN):
            match = pattern.search(definition)
            if match and match.group(1) == column:
                choices = _listed(match.group(2))
        bound = _BOUND.match(definition)
        if bound and bound.group(1) == column:
            value = int(bound.group(3))
            if bound.group(2) in (">=", ">"):
                low = value + (bound.group(2) == ">")
            else:
                high = value - (bound.group(2) == "<")
        length = _LENGTH.search(definition)
        if length and length.group(1) == column:
            limit = int(length.group(2))
    return choices, low, high, limit


def _listed(items: str) -> tuple[str, ...]:
    """The values of a CHECK's IN list as written: quoted strings, or the numbers of an integer column's list
    (``ARRAY['-1'::integer, 1]``)."""
    quoted = _LITERAL.findall(items)
    if quoted and not _NUMBERS.fullmatch(items):
        return tuple(v.replace("''", "'") for v in quoted)
    return tuple(n for n in re.findall(r"-?\d+", re.sub(r"::\w+", "", items)))


def _dependency_order(tables: list[TargetTable]) -> tuple[TargetTable, ...]:
    """Roles first (users, conversations, messages), then children, each after the tables it hangs from."""
    by_role = {t.role: t for t in tables if t.role is not None}
    ordered: list[TargetTable] = [by_role[r] for r in ROLE_TABLES if r in by_role]
    rest = sorted((t for t in tables if t.role is None), key=lambda t: t.name)
    while rest:
        ready = [t for t in rest if t.parent is None or t.parent not in {r.name for r in rest}]
        if not ready:  # a cycle among children: take them as they come
            ready = rest[:1]
        for t in ready:
            ordered.append(t)
            rest.remove(t)
    return tuple(ordered)
