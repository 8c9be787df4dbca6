"""Static index health of the live database, independent of the canonical schema.

These are the properties a reviewer checks by eye on any schema: every foreign key has an index whose
leading columns are the FK columns (else ON DELETE CASCADE and the FK check scan the child table);
no duplicate or redundant indexes (they cost every write); every table has a primary key; ids are
64-bit (32-bit ids overflow at 2.1 billion rows); no invalid index left behind by a failed
CREATE INDEX CONCURRENTLY (the planner ignores it, writes still maintain it).
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

from chatbench.verify.catalog import IndexFact, int_type_max
from chatbench.verify.context import VerificationContext
from chatbench.verify.drift import queries_touching
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.registry import check

# A 32-bit sequence this far consumed is an incident in waiting, not a style remark.
SEQUENCE_USAGE_ERROR = 0.5


def _finding(
    kind: str, obj: str, expected: str, actual: str, severity: Severity, *, query: str | None = None, detail: str = ""
) -> Finding:
    return Finding("health", kind, obj, expected, actual, severity, query=query, detail=detail)


def _usable(index: IndexFact) -> bool:
    return index.valid and index.ready and index.predicate is None


@check("health.fk_indexes")
def fk_indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """Every foreign key has a valid index whose leading columns are the FK's columns."""
    for fk in sorted(
        (c for c in ctx.live.constraints.values() if c.kind == "FOREIGN KEY"), key=lambda c: (c.table, c.name)
    ):
        n = len(fk.columns)
        supported = [
            i
            for i in ctx.live.indexes_of(fk.table)
            if _usable(i) and len(i.key_columns) >= n and set(i.key_columns[:n]) == set(fk.columns)
        ]
        if not supported:
            yield _finding(
                "fk_without_index",
                f"{fk.table}.{fk.name}",
                f"an index leading with ({', '.join(fk.columns)})",
                "none",
                "error",
                query=queries_touching(fk.table, fk.columns),
                detail=f"deleting from {fk.ref_table} ({fk.on_delete}) scans {fk.table}",
            )


@check("health.duplicate_indexes")
def duplicate_indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """Duplicate indexes (same definition) and redundant ones (keys a prefix of another's)."""
    for table in sorted(ctx.live.tables):
        for a, b in combinations(ctx.live.indexes_of(table), 2):
            if a.method != b.method or a.predicate != b.predicate:
                continue
            query = queries_touching(table, a.key_columns[:1])
            if a.keys == b.keys and a.include == b.include and a.unique == b.unique:
                yield _finding(
                    "duplicate_index",
                    f"{table}.{b.name}",
                    "no duplicate",
                    f"same as {table}.{a.name}: {a.describe()}",
                    "error",
                    query=query,
                    detail="every write maintains both; drop one",
                )
                continue
            for short, long in ((a, b), (b, a)):
                if short.unique or short.method != "btree" or short.include:
                    continue
                if len(short.keys) <= len(long.keys) and long.keys[: len(short.keys)] == short.keys:
                    yield _finding(
                        "redundant_index",
                        f"{table}.{short.name}",
                        "not a prefix of another index",
                        f"prefix of {table}.{long.name} ({', '.join(long.keys)})",
                        "warning",
                        query=query,
                    )
                    break
            else:
                if a.leading_column is not None and a.leading_column == b.leading_column and not (a.unique or b.unique):
                    yield _finding(
                        "same_leading_column",
                        f"{table}.{a.name}",
                        "distinct leading columns",
                        f"{table}.{a.name} ({', '.join(a.keys)}) and {table}.{b.name} ({', '.join(b.keys)})",
                        "info",
                        query=query,
                    )


@check("health.primary_keys")
def primary_keys(ctx: VerificationContext) -> Iterator[Finding]:
    """Every table has a primary key."""
    for table in sorted(ctx.live.tables.values(), key=lambda t: t.name):
        if not table.has_primary_key:
            yield _finding(
                "table_without_primary_key",
                table.name,
                "PRIMARY KEY",
                "none",
                "error",
                query=queries_touching(table.name),
            )


@check("health.integer_ids")
def integer_ids(ctx: VerificationContext) -> Iterator[Finding]:
    """Key columns and their sequences are 64-bit; a 32-bit sequence past half its range is an error."""
    key_columns: dict[tuple[str, str], str] = {}
    for c in ctx.live.constraints.values():
        if c.kind in ("PRIMARY KEY", "FOREIGN KEY"):
            for col in c.columns:
                key_columns[(c.table, col)] = c.kind
    for (table, name), kind in sorted(key_columns.items()):
        column = ctx.live.columns.get((table, name))
        if column is not None and column.type in ("smallint", "integer"):
            yield _finding(
                "narrow_id",
                f"{table}.{name}",
                "bigint",
                column.type,
                "warning",
                query=queries_touching(table, [name]),
                detail=f"{kind} column overflows at {int_type_max(column.type):,}",
            )
    for seq in sorted(ctx.live.sequences.values(), key=lambda s: s.name):
        if seq.type == "bigint":
            continue
        limit = min(seq.max_value, int_type_max(seq.type) or seq.max_value)
        used = (seq.last_value or 0) / limit
        severity: Severity = "error" if used >= SEQUENCE_USAGE_ERROR else "warning"
        yield _finding(
            "narrow_sequence",
            seq.name + (f" ({seq.owner})" if seq.owner else ""),
            "bigint",
            f"{seq.type}, {used:.1%} of {limit:,} used",
            severity,
        )


@check("health.invalid_indexes")
def invalid_indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """No index is invalid or not ready (a failed CREATE INDEX CONCURRENTLY leaves one)."""
    for (table, name), index in sorted(ctx.live.indexes.items()):
        if not (index.valid and index.ready):
            yield _finding(
                "invalid_index",
                f"{table}.{name}",
                "valid",
                "INVALID" if not index.valid else "not ready",
                "error",
                query=queries_touching(table, index.key_columns[:1]),
                detail="the planner ignores it; REINDEX or drop and recreate it",
            )
