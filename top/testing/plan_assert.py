"""``assert_plan``: an application's own query judged by the verifier's plan-contract machinery.

The application states what its query's plan must do, in the terms chatbench's own contracts use
(``chatbench.schema.contracts``): which relation is read through an index on which columns, how many
shared buffers the whole statement may touch, how many rows a Sort may take, which relations are
never Seq Scanned. The query runs under ``EXPLAIN (ANALYZE, BUFFERS, SERIALIZE, FORMAT JSON)`` twice (on
PostgreSQL 15/16 the detoasting is measured apart: ``chatbench.verify.serialize``), like the
verifier's canonical queries: as a **custom** plan (planned for these very parameters) and as the
**generic** plan a prepared statement gets once the plan cache switches (``PREPARE`` +
``plan_cache_mode = force_generic_plan``). Both plans are parsed and judged by
``chatbench.verify.plans`` (``Plan.parse``, ``judge``), so a breach reads exactly like a finding of
``chatbench verify``. Everything runs in one transaction that is rolled back: a write statement's
EXPLAIN ANALYZE leaves nothing behind.

Judge on realistic data (``seeded_chat_db``: whales, heavy users, deep cursors): on a toy table the
planner rightly prefers a Seq Scan, and the contract would say nothing about production.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import Executable
from sqlalchemy.dialects import postgresql

from chatbench.errors import ConfigError
from chatbench.schema.contracts import BIG_TABLES, IndexAccess, PlanContract
from chatbench.schema.rolemap import CANONICAL as CANONICAL_ROLES
from chatbench.testing.app_assert import judge_by_name
from chatbench.testing.databases import ChatDatabase, ChatServer
from chatbench.verify.appplans import contract_for
from chatbench.verify.catalog import read_catalog
from chatbench.verify.context import build_context
from chatbench.verify.plans import MODES, Breach, Measurement, Plan, explain_plan, judge, read_as_parents
from chatbench.verify.scenarios import Scenario

SCENARIO_KIND = "application"
"""The budget key of the contract built for one ``assert_plan`` call."""
_INDEX_SPEC = re.compile(r"^\s*(?P<relation>[A-Za-z_][\w$]*)\s*\((?P<keys>[^()]*)\)\s*$")
_KEY = re.compile(r"^(?P<column>[A-Za-z_][\w$]*)(?:\s+(?P<direction>ASC|DESC))?$", re.IGNORECASE)
_PLACEHOLDER = re.compile(r"%%|%\((?P<name>\w+)\)[sbt]|%[sbt]")


class PlanContractError(AssertionError):
    """The query's plan breaks the contract the test stated; one line per breach, then the plan."""


@dataclass(frozen=True)
class PlanBreach:
    mode: str  # "custom" | "generic"
    breach: Breach

    def line(self) -> str:
        b = self.breach
        return f"{self.mode} plan: {b.kind} on {b.object}: expected {b.expected}, found {b.actual} ({b.node})"


@dataclass(frozen=True)
class PlanCheck:
    """What ``assert_plan`` judged: the plans (custom, generic) and every breach (none when it returns)."""

    name: str
    contract: PlanContract
    plans: tuple[Plan, ...]
    breaches: tuple[PlanBreach, ...]

    @property
    def passed(self) -> bool:
        return not self.breaches

    def report(self) -> str:
        lines = [f"query {self.name!r}: {len(self.breaches)} plan contract breach(es)"]
        lines += [f"  {b.line()}" for b in self.breaches]
        lines += [f"  {plan.mode} plan: {plan.root.shape()} ({plan.buffers} buffers)" for plan in self.plans]
        return "\n".join(lines)


def parse_index(text: str) -> IndexAccess:
    """``"messages(conversation_id, created_at DESC, id DESC)"``: the relation, the index's leading
    column and the order its next keys must deliver (forwards or backwards)."""
    __tracebackhide__ = True
    found = _INDEX_SPEC.match(text) if isinstance(text, str) else None
    keys = [k.strip() for k in found.group("keys").split(",")] if found else []
    if found is None or not keys or not all(_KEY.match(k) for k in keys):
        raise ConfigError(f"assert_plan(uses_index={text!r}): not TABLE(COLUMN, ...); "
                          "e.g. 'messages(conversation_id, created_at, id)'")
    first = _KEY.match(keys[0])
    if first is not None and first.group("direction"):
        raise ConfigError(f"assert_plan(uses_index={text!r}): the leading column takes no direction; e.g. "
                          "'conversations(user_id, updated_at DESC, id DESC)'")
    return IndexAccess(found.group("relation"), keys[0], tuple(" ".join(k.split()) for k in keys[1:]))


def _positional(text: str, params: Mapping[str, Any] | Sequence[Any]) -> tuple[str, list[Any]]:
    """``%(name)s`` / ``%s`` placeholders as ``$1..$n`` (what PREPARE takes) and the values in that order."""
    __tracebackhide__ = True
    order: list[str] = []
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        if match.group(0) == "%%":
            return "%"
        name = match.group("name")
        if name is None:
            count += 1
            return f"${count}"
        if name not in order:
            order.append(name)
        return f"${order.index(name) + 1}"

    converted = _PLACEHOLDER.sub(number, text)
    if order and count:
        raise ConfigError("assert_plan: the query mixes %(name)s and %s placeholders; use one kind")
    if order:
        if not isinstance(params, Mapping):
            raise ConfigError("assert_plan: the query has %(name)s placeholders; give params as a mapping")
        missing = [name for name in order if name not in params]
        if missing:
            raise ConfigError(f"assert_plan: no value for {', '.join(missing)}; add it to params")
        return converted, [params[name] for name in order]
    values = [] if isinstance(params, Mapping) else list(params)
    if len(values) != count:
        raise ConfigError(f"assert_plan: the query has {count} %s placeholder(s) and {len(values)} value(s) in params")
    return converted, values


def _statement(query: str | Executable, params: Mapping[str, Any] | Sequence[Any] | None
               ) -> tuple[str, Mapping[str, Any] | Sequence[Any]]:
    """SQL text with psycopg placeholders and its parameters (a SQLAlchemy statement is compiled first)."""
    __tracebackhide__ = True
    if isinstance(query, str):
        if not query.strip():
            raise ConfigError("assert_plan: the query is empty; give the SQL the application runs")
        return query, () if params is None else params
    if isinstance(query, Executable):
        compiled = query.compile(dialect=postgresql.psycopg.dialect(),  # type: ignore[attr-defined]
                                 compile_kwargs={"render_postcompile": True})
        if params is not None and not isinstance(params, Mapping):
            raise ConfigError("assert_plan: a SQLAlchemy statement takes its parameters by name (a mapping)")
        return str(compiled), {**compiled.params, **(params or {})}
    raise ConfigError(f"assert_plan: the query is a {type(query).__name__}; give SQL text or a SQLAlchemy statement")


def _explain(conn: psycopg.Connection[Any], text: str, params: Mapping[str, Any] | Sequence[Any], mode: str) -> Plan:
    """The plan; its buffers count what the client receives (``chatbench.verify.plans.explain_plan``)."""
    positional, values = _positional(text, params)
    return explain_plan(conn, mode, text, params, positional, values, "chatbench_assert_plan", rolled_back=True)


def _names(value: str | Sequence[str], what: str) -> tuple[str, ...]:
    __tracebackhide__ = True
    items = (value,) if isinstance(value, str) else tuple(value)
    if not all(isinstance(item, str) and item.strip() for item in items):
        raise ConfigError(f"assert_plan({what}={value!r}): give names as strings")
    return items


def _count(value: int | None, what: str) -> int | None:
    __tracebackhide__ = True
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise ConfigError(f"assert_plan({what}={value!r}): give a whole number >= 0 (or None: not checked)")
    return value


def assert_plan(
    db: ChatDatabase | ChatServer,
    query: str | Executable,
    params: Mapping[str, Any] | Sequence[Any] | None = None,
    *,
    uses_index: str | Sequence[str] = (),
    max_buffers: int | None = None,
    max_sort_rows: int | None = None,
    no_seq_scan: str | Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    name: str = "query",
    queries: str | Path | None = None,
) -> PlanCheck:
    """Judge ``query``'s custom and generic plans on ``db``; raise ``PlanContractError`` on any breach.

    - ``uses_index``: ``"TABLE(COLUMN, ...)"`` (one or several): the table is read through an index
      whose first key is the first column and whose next keys deliver the listed order;
    - ``max_buffers``: shared buffers (hit + read) the whole statement may touch;
    - ``max_sort_rows``: no Sort (of a table in ``no_seq_scan``) takes more input rows than this;
    - ``no_seq_scan``: tables never Seq Scanned (default: the ``uses_index`` tables, messages and
      conversations).

    ``query`` is SQL with psycopg placeholders (``%(name)s`` or ``%s``) or a SQLAlchemy statement, or the
    name of a query of the application's queries file (``queries=``, else the ``queries`` setting): then its
    own contract is judged over the scenarios its parameters allow (``chatbench.testing.app_assert``).
    Returns the ``PlanCheck`` (plans included) when the contract holds.
    """
    __tracebackhide__ = True  # pytest: the report points at the test's line, not at this helper
    if isinstance(query, str) and _QUERY_NAME.match(query) and params is None:
        return _by_name(db, query, queries)
    accesses = tuple(map(parse_index, _names(uses_index, "uses_index")))
    unknown_modes = [m for m in _names(modes, "modes") if m not in MODES]
    if unknown_modes or not modes:
        raise ConfigError(f"assert_plan(modes={modes!r}): use {' and/or '.join(MODES)}")
    guarded = BIG_TABLES | {a.relation for a in accesses} if no_seq_scan is None else frozenset(
        _names(no_seq_scan, "no_seq_scan"))
    budget = _count(max_buffers, "max_buffers")
    contract = PlanContract(
        query=name, access=accesses, no_seq_scan=frozenset(guarded),
        buffer_budgets={} if budget is None else {SCENARIO_KIND: budget},
        max_sort_rows=_count(max_sort_rows, "max_sort_rows"),
    )
    text, values = _statement(query, params)
    _positional(text, values)  # placeholders and values agree, before anything runs
    plans: list[Plan] = []
    breaches: list[PlanBreach] = []
    with psycopg.connect(db.url, application_name="chatbench-assert-plan") as conn:
        try:
            facts = read_catalog(conn)
            _check_known(facts, accesses)
            ctx = build_context(db.server, conn, params=None, params_source="none", read_only=False,
                                canonical=(facts, "not compared: assert_plan judges plans only"))
            conn.execute("SET LOCAL jit = off")
            scenario = Scenario(name, name, name, SCENARIO_KIND, dict(values) if isinstance(values, Mapping) else {})
            for mode in modes:
                plan = read_as_parents(ctx, _explain(conn, text, values, mode))  # a leaf partition reads as its parent
                plans.append(plan)
                breaches += [PlanBreach(mode, b) for b in judge(ctx, contract, Measurement(scenario, plan))]
        except psycopg.Error as exc:
            raise ConfigError(f"assert_plan({name!r}): the query failed: {str(exc).strip().splitlines()[0]}") from None
        finally:
            conn.rollback()
    check = PlanCheck(name, contract, tuple(plans), tuple(breaches))
    if not check.passed:
        raise PlanContractError(check.report())
    return check


_QUERY_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _by_name(db: ChatDatabase | ChatServer, name: str, queries: str | Path | None) -> PlanCheck:
    """An application query of the queries file, judged by its own contract over its scenarios
    (``chatbench.testing.app_assert``); the breaches read like ``chatbench verify --queries`` findings."""
    __tracebackhide__ = True

    judged = judge_by_name(db.server, name, queries)
    query = judged.queries.named(name)
    plans = tuple(m.measurement.plan for m in judged.run.measurements)
    breaches = tuple(PlanBreach(f.query.split("(")[-1].split()[0] if f.query and "(" in f.query else "walk",
                                Breach(f.kind, f.object, f.expected, f.actual, f.detail))
                     for f in judged.findings if f.severity == "error")
    check = PlanCheck(name, contract_for(query, CANONICAL_ROLES).plan, plans, breaches)
    if not check.passed:
        raise PlanContractError(check.report())
    return check


def _check_known(facts: Any, accesses: tuple[IndexAccess, ...]) -> None:
    """Every ``uses_index`` table and column exists: a misspelling is an error, not a plan breach."""
    __tracebackhide__ = True
    for access in accesses:
        if access.relation not in facts.tables:
            raise ConfigError(f"assert_plan(uses_index=...): no table {access.relation!r} in the database; "
                              f"tables: {', '.join(sorted(facts.tables))}")
        for key in (access.leading_column, *access.order_by):
            column = key.split()[0]
            if (access.relation, column) not in facts.columns:
                raise ConfigError(f"assert_plan(uses_index=...): {access.relation} has no column {column!r}")
