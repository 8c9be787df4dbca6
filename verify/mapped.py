"""The canonical queries on a schema whose roles carry the application's names (``[tool.chatbench.map]``).

The canonical queries are written on the canonical names (``messages.conversation_id``). On a schema the
map names otherwise (``"Message_v2"."chatId"``) they are the reference for the canonical schema only: a
canonical query that reads a table or column the map renames is not run there, neither by the plan
contracts (``plans.contracts`` reports it as ``plans/skipped``) nor by the benchmarks
(``benchmarks.session.measure_scenarios`` records it as skipped), each with one reason naming what the
query would need: the role columns the application lacks (``messages.user_id``), or else its own names
for what the query reads. They are not rendered through the map: most need a role column an application
shaped otherwise does not have (every message page selects ``messages.user_id``, the conversation list
orders by ``updated_at``), and a canonical query rewritten onto another schema would judge a query the
application does not run. What a mapped schema is judged on is the application's own queries
(``--queries``: ``queries/*`` findings, ``app:QUERY/ROLE`` scenarios). A canonical query that reads no
renamed table or column (``list_conversations_first`` when only ``messages`` is mapped) runs as written.

With an empty map nothing is skipped: a schema without the canonical tables and without a map is drift
(``drift/missing_table``), as before.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from functools import cache
from typing import Any, cast

import psycopg
from sqlalchemy import Column, Table
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import ClauseElement

from chatbench.schema.appqueries import analyse
from chatbench.schema.queries import CANONICAL_QUERIES, CanonicalQuery
from chatbench.schema.rolemap import ROLE_COLUMNS, ROLE_TABLES, RoleMap

SKIPPED = "skipped"
"""The kind of the finding (and the start of the reason) of a canonical query not run on a mapped schema."""


def quoted(name: str) -> str:
    """An application's identifier as SQL writes it: ``"Message_v2"``."""
    return '"' + name.replace('"', '""') + '"'


def named(roles: RoleMap, role: str, column: str | None = None) -> str:
    """A role (or role column) in the role's words and, where the map renames it, the application's names:
    ``messages ("Message_v2")``, ``messages.created_at ("Message_v2"."createdAt")``, ``users.email``."""
    table = roles.table(role)
    if column is None:
        return role if table == role else f"{role} ({quoted(table)})"
    mine = roles.column(role, column)
    if (table, mine) == (role, column):
        return f"{role}.{column}"
    return f"{role}.{column} ({quoted(table)}.{quoted(mine)})"


def mapped_roles(roles: RoleMap) -> frozenset[str]:
    """The roles the map renames: their table, or any of their columns (judged through the map)."""
    return frozenset(r for r in ROLE_TABLES
                     if roles.table(r) != r or any(roles.column(r, c) != c for c in ROLE_COLUMNS[r]))


@cache
def uses(query: CanonicalQuery) -> tuple[frozenset[str], frozenset[tuple[str, str]]]:
    """The role tables and role columns (``(role, column)``) a canonical query reads or writes.

    The statement's columns are found by walking it; an INSERT's or UPDATE's target columns are only names
    in it, so they are read from PostgreSQL's parse of its text (``QueryShape.written``, the parser the
    application's queries are read with)."""
    tables: set[str] = set()
    columns: set[tuple[str, str]] = set()
    # every canonical statement is a ClauseElement (a select, insert or update) behind its Executable type
    for element in visitors.iterate(cast(ClauseElement, query.statement)):
        if isinstance(element, Table) and element.name in ROLE_TABLES:
            tables.add(element.name)
        elif isinstance(element, Column) and isinstance(element.table, Table) and element.table.name in ROLE_TABLES:
            tables.add(element.table.name)
            columns.add((element.table.name, element.name))
    if query.kind == "write":
        for target in analyse(*query.sql_positional(), query.name).written:
            if target.table in ROLE_TABLES:
                tables.add(target.table)
                if target.column in ROLE_COLUMNS[target.table]:
                    columns.add((target.table, target.column))
    return frozenset(tables), frozenset(columns)


def not_run(roles: RoleMap, live_columns: Collection[tuple[str, str]],
            queries: Iterable[CanonicalQuery] = CANONICAL_QUERIES) -> dict[str, str]:
    """query -> why it is not run on this schema: the canonical queries that read a table or column the map
    renames (empty with an empty map). ``live_columns``: the database's ``(table, column)`` pairs."""
    if roles.empty:
        return {}
    live = set(live_columns)
    out: dict[str, str] = {}
    for query in queries:
        tables, columns = uses(query)
        renamed_tables = sorted(t for t in tables if roles.table(t) != t)
        renamed_columns = sorted((t, c) for t, c in columns if roles.column(t, c) != c)
        if not renamed_tables and not renamed_columns:
            continue
        lacking = sorted((t, c) for t, c in columns if (roles.table(t), roles.column(t, c)) not in live)
        if lacking:
            needs = ", ".join(f"{t}.{c}" for t, c in lacking)
            owners = ", ".join(dict.fromkeys(quoted(roles.table(t)) for t, _ in lacking))
            why = f"needs {needs}, which {owners} {'does' if len(set(t for t, _ in lacking)) == 1 else 'do'} not have"
        else:
            here = [f"{t} is {quoted(roles.table(t))}" for t in renamed_tables]
            here += [f"{t}.{c} is {quoted(roles.column(t, c))}" for t, c in renamed_columns]
            why = f"written on the canonical names, and here {', '.join(here)}"
        out[query.name] = f"{SKIPPED}: {why} (a mapped schema is judged on the application's own queries)"
    return out


_COLUMNS = """
SELECT c.relname::text, a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
 WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND c.relname = ANY(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""


def not_run_on(conn: psycopg.Connection[Any], roles: RoleMap,
               queries: Iterable[CanonicalQuery] = CANONICAL_QUERIES) -> dict[str, str]:
    """``not_run`` with the role tables' columns read from ``conn``'s current schema (none read with an empty
    map): what a caller without the verification's catalog (the benchmarks) asks."""
    if roles.empty:
        return {}
    names = sorted({roles.table(r) for r in ROLE_TABLES})
    rows = conn.execute(_COLUMNS, (names,)).fetchall()
    return not_run(roles, {(str(t), str(c)) for t, c in rows}, queries)
