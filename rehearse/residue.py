"""What a migration leaves behind that a passing rehearsal would hide.

- An INVALID or not-ready index: a ``CREATE INDEX CONCURRENTLY`` that failed (a duplicate under a
  unique index, a deadlock, its lock_timeout) leaves its index in the catalog. Every write maintains
  it and no read uses it; the release's next attempt fails with "already exists".
- A constraint left ``NOT VALID`` that the release's models declare (so expect valid): ``ADD CONSTRAINT
  ... NOT VALID`` without its ``VALIDATE CONSTRAINT``, or a validation that failed. The rows before it
  are unchecked, and the planner cannot use it.
- A sequence no column owns and no default uses, that was owned or used before the migration or did
  not exist: a serial turned identity, a dropped default, a table dropped but not its sequence.

Each is read from the catalog before and after the migration; only what the migration changed is
residue. The statement that left it is the one naming it (a SQL file's), else the last naming its table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from chatbench.rehearse.result import Residue
from chatbench.schema.package import SchemaPackage

_INDEXES = """
SELECT c.relname, t.relname, i.indisvalid, i.indisready, pg_get_indexdef(c.oid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_class t ON t.oid = i.indrelid
WHERE c.relnamespace = current_schema()::regnamespace AND NOT (i.indisvalid AND i.indisready)
"""
_NOT_VALID = """
SELECT con.conname, t.relname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class t ON t.oid = con.conrelid
WHERE con.connamespace = current_schema()::regnamespace AND NOT con.convalidated
"""
_LOOSE_SEQUENCES = """
SELECT s.relname FROM pg_class s
WHERE s.relkind = 'S' AND s.relnamespace = current_schema()::regnamespace
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = s.oid
                  AND d.deptype IN ('a', 'i'))
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid
                  AND d.classid = 'pg_attrdef'::regclass)
"""


@dataclass(frozen=True)
class Catalog:
    """The catalog's loose ends at one moment."""

    bad_indexes: dict[str, tuple[str, bool, bool, str]]  # name -> (table, valid, ready, definition)
    not_valid: dict[str, tuple[str, str]]  # constraint -> (table, definition)
    loose_sequences: frozenset[str]


def read_catalog(conn: psycopg.Connection) -> Catalog:
    indexes = {str(n): (str(t), bool(v), bool(r), str(d)) for n, t, v, r, d in conn.execute(_INDEXES).fetchall()}
    constraints = {str(n): (str(t), str(d)) for n, t, d in conn.execute(_NOT_VALID).fetchall()}
    sequences = frozenset(str(n) for (n,) in conn.execute(_LOOSE_SEQUENCES).fetchall())
    return Catalog(indexes, constraints, sequences)


def _declared_constraints(package: SchemaPackage) -> set[str]:
    return {str(c.name) for t in package.metadata.tables.values() for c in t.constraints if c.name is not None}


def _mentions(sql: str, name: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(name)}(?![\w$])", sql, re.IGNORECASE) is not None


def _source(statements: Sequence[tuple[int | None, str]], name: str, table: str | None) -> tuple[int | None, str]:
    for wanted in (name, table):
        if wanted is None:
            continue
        found = [(i, s) for i, s in statements if _mentions(s, wanted)]
        if found:
            return found[-1]
    return None, ""


def residue(before: Catalog, after: Catalog, package: SchemaPackage,
            statements: Sequence[tuple[int | None, str]]) -> tuple[Residue, ...]:
    """What the migration left behind (``statements``: (index, SQL) of what it ran, for naming the culprit)."""
    out = []
    for name, (table, _valid, ready, definition) in sorted(after.bad_indexes.items()):
        if name in before.bad_indexes:
            continue
        state = "INVALID" + ("" if ready else " and not ready")
        index, sql = _source(statements, name, table)
        out.append(Residue(
            "invalid index", name, table, f"index {name} on {table} is {state} ({definition}): every write to {table} "
            "maintains it and no query can use it", index, sql,
            f"DROP INDEX CONCURRENTLY {name}; remove what made the build fail (for a unique index, the duplicate "
            f"rows), then CREATE INDEX CONCURRENTLY again; a migration that builds it should drop an invalid "
            f"leftover first (DROP INDEX CONCURRENTLY IF EXISTS {name})"))
    declared = _declared_constraints(package)
    for name, (table, definition) in sorted(after.not_valid.items()):
        if name in before.not_valid or name not in declared:
            continue
        index, sql = _source(statements, name, table)
        out.append(Residue(
            "not valid constraint", name, table, f"constraint {name} on {table} ({definition}) is NOT VALID, and the "
            f"release's models ({package.name}) declare it: the rows before the migration are unchecked", index, sql,
            f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}; (SHARE UPDATE EXCLUSIVE: reads and appends go on), "
            "in the same release"))
    for name in sorted(after.loose_sequences - before.loose_sequences):
        index, sql = _source(statements, name, None)
        out.append(Residue(
            "orphan sequence", name, None, f"sequence {name} is owned by no column and used by no default after the "
            "migration", index, sql,
            f"DROP SEQUENCE {name}; once nothing reads it (or ALTER SEQUENCE {name} OWNED BY the column that uses it)"))
    return tuple(out)
