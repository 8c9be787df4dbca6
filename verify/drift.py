"""Drift: the live catalog against the canonical one, object by object, named.

Objects are matched by ``(table, name)``. An expected object missing under its name but present under
another name with an identical definition is reported once as *renamed* (a warning: the schema is
equivalent, but code and runbooks that name it are not), not as one missing plus one extra.
Extra objects in the live database are findings too: the canonical models are the source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import cache
from typing import Any, TypeVar

from chatbench.schema.queries import CANONICAL_QUERIES
from chatbench.verify.catalog import ConstraintFact, IndexFact, TriggerFact
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.registry import check

# Tables some migration tools add next to the application's; reported as info, never as drift.
TOOL_TABLES = frozenset({"alembic_version", "flyway_schema_history", "schema_migrations", "django_migrations"})

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
    check_name: str = "drift",
) -> Finding:
    return Finding(check_name, kind, obj, str(expected), str(actual), severity, query=query, detail=detail)


def _match(
    expected: Mapping[tuple[str, str], T],
    actual: Mapping[tuple[str, str], T],
    tables: set[str],
    signature: Callable[[T], Any],
) -> Iterator[tuple[tuple[str, str], T | None, T | None, str | None]]:
    """Yield (key, expected, actual, renamed_from) over objects of ``tables``, pairing renames by signature."""
    exp = {k: v for k, v in expected.items() if k[0] in tables}
    act = {k: v for k, v in actual.items() if k[0] in tables}
    missing = sorted(k for k in exp if k not in act)
    extra = sorted(k for k in act if k not in exp)
    renamed: dict[tuple[str, str], tuple[str, str]] = {}
    for k in missing:
        for e in extra:
            if e not in renamed.values() and e[0] == k[0] and signature(act[e]) == signature(exp[k]):
                renamed[k] = e
                break
    for k in sorted(set(exp) | set(act)):
        if k in exp and k in act:
            yield k, exp[k], act[k], None
        elif k in exp:
            if k in renamed:
                yield k, exp[k], act[renamed[k]], renamed[k][1]
            else:
                yield k, exp[k], None, None
        elif k not in renamed.values():
            yield k, None, act[k], None


def _common_tables(ctx: VerificationContext) -> set[str]:
    return set(ctx.canonical.tables) & set(ctx.live.tables)


@check("drift.tables")
def tables(ctx: VerificationContext) -> Iterator[Finding]:
    """Canonical tables missing from the live database, and extra tables in it."""
    for name in sorted(set(ctx.canonical.tables) - set(ctx.live.tables)):
        yield _finding("missing_table", name, "table", "absent", query=queries_touching(name))
    for name in sorted(set(ctx.live.tables) - set(ctx.canonical.tables)):
        if name in TOOL_TABLES:
            yield _finding("tool_table", name, "absent", "migration tool table", "info")
        else:
            yield _finding("extra_table", name, "absent", "table", "warning")


@check("drift.columns")
def columns(ctx: VerificationContext) -> Iterator[Finding]:
    """Columns: presence, type (incl. length), nullability, default, identity, generation."""
    common = _common_tables(ctx)
    exp = {k: v for k, v in ctx.canonical.columns.items() if k[0] in common}
    act = {k: v for k, v in ctx.live.columns.items() if k[0] in common}
    for key in sorted(set(exp) | set(act)):
        table, name = key
        obj = f"{table}.{name}"
        query = queries_touching(table, [name])
        e, a = exp.get(key), act.get(key)
        if a is None and e is not None:
            yield _finding("missing_column", obj, e.type, "absent", query=query)
            continue
        if e is None and a is not None:
            yield _finding("extra_column", obj, "absent", a.type, query=query)
            continue
        assert e is not None and a is not None
        if e.type != a.type:
            yield _finding("column_type", obj, e.type, a.type, query=query)
        if e.not_null != a.not_null:
            yield _finding(
                "nullability",
                obj,
                "NOT NULL" if e.not_null else "NULL allowed",
                "NOT NULL" if a.not_null else "NULL allowed",
                query=query,
            )
        if e.default != a.default:
            yield _finding("column_default", obj, e.default or "no default", a.default or "no default", query=query)
        if e.identity != a.identity:
            yield _finding(
                "identity",
                obj,
                f"GENERATED {e.identity} AS IDENTITY" if e.identity else "not identity",
                f"GENERATED {a.identity} AS IDENTITY" if a.identity else "not identity",
                query=query,
            )
        if e.generated != a.generated:
            yield _finding(
                "generated", obj, e.generated or "not generated", a.generated or "not generated", query=query
            )


def _constraint_signature(c: ConstraintFact) -> tuple[Any, ...]:
    return (c.table, c.kind, c.definition)


@check("drift.constraints")
def constraints(ctx: VerificationContext) -> Iterator[Finding]:
    """Primary keys, foreign keys (columns, target, ON DELETE/UPDATE), UNIQUE and CHECK constraints."""
    for key, e, a, renamed_from in _match(
        ctx.canonical.constraints, ctx.live.constraints, _common_tables(ctx), _constraint_signature
    ):
        table, name = key
        ref = e or a
        assert ref is not None
        obj = f"{table}.{name}"
        query = queries_touching(table, ref.columns)
        kind = ref.kind.lower().replace(" ", "_")
        if a is None:
            yield _finding(f"missing_{kind}", obj, e.definition if e else "", "absent", query=query)
            continue
        if e is None:
            yield _finding(f"extra_{kind}", obj, "absent", a.definition, query=query)
            continue
        if renamed_from:
            yield _finding(
                "renamed_constraint",
                obj,
                name,
                renamed_from,
                "warning",
                query=query,
                detail=f"same definition: {e.definition}",
            )
        if e.kind != a.kind:
            yield _finding("constraint_kind", obj, e.kind, a.kind, query=query)
            continue
        if e.kind == "FOREIGN KEY":
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
                yield _finding("foreign_key_deferrable", obj, e.deferrable, a.deferrable, "warning", query=query)
        elif e.definition != a.definition:
            yield _finding(f"{kind}_definition", obj, e.definition, a.definition, query=query)
        if e.validated and not a.validated:
            yield _finding("not_validated", obj, "VALID", "NOT VALID (existing rows unchecked)", query=query)


def _index_signature(i: IndexFact) -> tuple[Any, ...]:
    return i.signature()


@check("drift.indexes")
def indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """Indexes: key columns and their order, ASC/DESC and NULLS, uniqueness, method, predicate, INCLUDE."""
    for key, e, a, renamed_from in _match(
        ctx.canonical.indexes, ctx.live.indexes, _common_tables(ctx), _index_signature
    ):
        table, name = key
        ref = e or a
        assert ref is not None
        obj = f"{table}.{name}"
        query = queries_touching(table, ref.key_columns[:1])
        if a is None:
            yield _finding("missing_index", obj, e.describe() if e else "", "absent", query=query)
            continue
        if e is None:
            yield _finding("extra_index", obj, "absent", a.describe(), query=query, detail=a.definition)
            continue
        if renamed_from:
            yield _finding("renamed_index", obj, name, renamed_from, "warning", query=query, detail=e.describe())
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
            yield _finding(
                "index_predicate", obj, e.predicate or "not partial", a.predicate or "not partial", query=query
            )


def _trigger_signature(t: TriggerFact) -> tuple[Any, ...]:
    return (t.table, t.definition)


@check("drift.triggers")
def triggers(ctx: VerificationContext) -> Iterator[Finding]:
    """Triggers (timing, events, function) and the bodies of the functions they run."""
    for key, e, a, renamed_from in _match(
        ctx.canonical.triggers, ctx.live.triggers, _common_tables(ctx), _trigger_signature
    ):
        table, name = key
        obj = f"{table}.{name}"
        query = queries_touching(table)
        if a is None:
            yield _finding("missing_trigger", obj, e.definition if e else "", "absent", query=query)
            continue
        if e is None:
            yield _finding("extra_trigger", obj, "absent", a.definition, query=query)
            continue
        if renamed_from:
            yield _finding("renamed_trigger", obj, name, renamed_from, "warning", query=query)
        if e.definition != a.definition:
            yield _finding("trigger_definition", obj, e.definition, a.definition, query=query)
        if not a.enabled:
            yield _finding("trigger_disabled", obj, "enabled", "disabled", query=query)
    for fname in sorted(ctx.canonical.functions):
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
    for fname in sorted(set(ctx.live.functions) - set(ctx.canonical.functions)):
        yield _finding("extra_function", fname, "absent", ctx.live.functions[fname].returns, "info")
