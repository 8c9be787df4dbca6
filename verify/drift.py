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
Extra objects in the live database are findings too: the canonical models are the source of truth.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import cache
from typing import Any, Generic, TypeVar

from chatbench.schema.models import TRIGGER_FUNCTIONS
from chatbench.schema.queries import CANONICAL_QUERIES
from chatbench.verify.catalog import ColumnFact, ConstraintFact, IndexFact, TriggerFact
from chatbench.verify.context import VerificationContext
from chatbench.verify.findings import Finding, Severity
from chatbench.verify.judge import judged, judgement
from chatbench.verify.registry import check

# Tables some migration tools add next to the application's; reported as info, never as drift.
TOOL_TABLES = frozenset({"alembic_version", "flyway_schema_history", "schema_migrations", "django_migrations"})
# Column types with one behaviour up to a length limit, which the length contracts probe.
_STRING_TYPE = re.compile(r"^(text|character varying(\(\d+\))?)$")

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
    return set(ctx.canonical.tables) & set(ctx.live.tables)


def _is_string(type_name: str) -> bool:
    return bool(_STRING_TYPE.match(type_name))


def _generates_ids(column: ColumnFact) -> bool:
    return bool(column.identity) or (column.default or "").startswith("nextval(")


def _severity(holds: bool | None) -> Severity:
    """A spelling difference the behaviour contracts judge: info when they hold, else a warning (they are the error)."""
    return "info" if holds else "warning"


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
            yield _finding("extra_column", obj, "absent", a.type, query=query)
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


def _column_type(
    ctx: VerificationContext, e: ColumnFact, a: ColumnFact, checks: list[ConstraintFact], query: str | None
) -> Iterator[Finding]:
    obj = f"{e.table}.{e.name}"
    names, holds = judged(ctx, columns=[obj]) if _is_string(e.type) and _is_string(a.type) else ((), None)
    if not names:
        yield _finding("column_type", obj, e.type, a.type, query=query)
        return
    spelled = a.type + "".join(f" + {c.definition}" for c in checks)
    yield _finding("column_type", obj, e.type, spelled, "warning", query=query, detail=judgement(names, holds))


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
    exp = [c for c in ctx.canonical.constraints.values() if c.table in common]
    act = [c for c in ctx.live.constraints.values() if c.table in common]
    by_kind = sorted({c.kind for c in exp + act})
    for kind in by_kind:
        e_kind = sorted((c for c in exp if c.kind == kind), key=lambda c: (c.table, c.name))
        a_kind = sorted((c for c in act if c.kind == kind), key=lambda c: (c.table, c.name))
        if kind == "CHECK":
            yield from _checks(ctx, e_kind, a_kind)
        elif kind == "FOREIGN KEY":
            yield from _foreign_keys(e_kind, a_kind)
        else:
            yield from _keys(ctx, kind, e_kind, a_kind)


def _renamed(kind: str, e: Any, a: Any, query: str | None, detail: str = "") -> Iterator[Finding]:
    if e.name != a.name:
        yield _finding(f"renamed_{kind}", f"{e.table}.{e.name}", e.name, a.name, "info", query=query, detail=detail)


def _keys(
    ctx: VerificationContext, kind: str, exp: list[ConstraintFact], act: list[ConstraintFact]
) -> Iterator[Finding]:
    """PRIMARY KEY, UNIQUE, EXCLUDE: the same columns make the same constraint (a UNIQUE may be a unique index)."""
    paired = pair(exp, act, lambda c: (c.table, c.columns), lambda c: (c.table, c.name))
    label = kind.lower().replace(" ", "_")
    for e, a in paired.pairs:
        query = queries_touching(e.table, e.columns)
        if (e.columns, _normalised(e.definition)) != (a.columns, _normalised(a.definition)):
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
        yield _finding(
            f"extra_{label}", f"{a.table}.{a.name}", "absent", a.definition, query=queries_touching(a.table, a.columns)
        )


def _foreign_keys(exp: list[ConstraintFact], act: list[ConstraintFact]) -> Iterator[Finding]:
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
        yield _finding(
            "extra_foreign_key",
            f"{a.table}.{a.name}",
            "absent",
            a.definition,
            query=queries_touching(a.table, a.columns),
        )


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
        yield _finding(
            "extra_check",
            f"{a.table}.{a.name}",
            "absent",
            a.definition,
            "warning",
            query=queries_touching(a.table, a.columns),
            detail=("a constraint the canonical schema does not have; " + judgement(names, holds))
            if names
            else "a constraint the canonical schema does not have",
        )


@check("drift.indexes")
def indexes(ctx: VerificationContext) -> Iterator[Finding]:
    """Indexes by shape: keys in order with direction, NULLS and opclass, uniqueness, method, predicate, INCLUDE."""
    common = _common_tables(ctx)
    exp = sorted((i for i in ctx.canonical.indexes.values() if i.table in common), key=lambda i: (i.table, i.name))
    act = sorted((i for i in ctx.live.indexes.values() if i.table in common), key=lambda i: (i.table, i.name))
    paired = pair(exp, act, IndexFact.signature, lambda i: (i.table, i.name))
    for e, a in paired.pairs:
        obj = f"{e.table}.{e.name}"
        query = queries_touching(e.table, e.key_columns[:1])
        if e.signature() == a.signature():
            # a PK's or UNIQUE constraint's index is reported with its constraint, once
            if e.constraint is None and a.constraint is None:
                yield from _renamed("index", e, a, query, e.describe())
            continue
        yield from _index_differences(e, a, obj, query)
    for e in paired.missing:
        if e.constraint is not None and any(
            i.table == e.table and i.unique and i.key_columns == e.key_columns for i in act
        ):
            continue  # a UNIQUE constraint kept as a unique index of another shape: the constraint check says so
        yield _finding(
            "missing_index",
            f"{e.table}.{e.name}",
            e.describe(),
            "absent",
            query=queries_touching(e.table, e.key_columns[:1]),
        )
    for a in paired.extra:
        if a.constraint is not None:
            continue  # an extra PK/UNIQUE constraint's index: reported with the constraint
        yield _finding(
            "extra_index",
            f"{a.table}.{a.name}",
            "absent",
            a.describe(),
            "warning",
            query=queries_touching(a.table, a.key_columns[:1]),
            detail=f"every write maintains it: {a.definition}",
        )


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
            "warning",
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
