"""Concrete plan scenarios (query + literal parameters) built from ``SeedParameters``.

The parameter sets name conversations and users; the cursors at given depths are read from the data
(read-only SELECTs through the history index), so the same database always yields the same
scenarios. Depths include a deep one (the oldest page of the largest conversation) so that keyset
flatness and OFFSET growth are measured over the whole range.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg import sql

from chatbench.loadgen.result import ConversationRef, Key, SeedParameters, UserRef
from chatbench.schema.appqueries import CURSOR_PARAMS, SCENARIO_ROLES, AppQuery
from chatbench.schema.contracts import PAGE_SIZE
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify.keys import as_key


@dataclass(frozen=True)
class Scenario:
    """One query with literal parameters, judged against the query's contract."""

    key: str  # short, stable id: "whale-latest", "keyset-d500"
    description: str
    query: str
    kind: str  # the contract's budget key: page | small_page | count | list
    params: Mapping[str, Any]
    depth: int | None = None  # rows above the page (for growth curves)
    curve: str | None = None  # "keyset" | "offset"


def depths_for(size: int) -> tuple[int, ...]:
    """Depths (rows skipped before the page) spread over a conversation of ``size`` messages."""
    deep = size - PAGE_SIZE - 1
    candidates = [PAGE_SIZE, 4 * PAGE_SIZE, size // 4, size // 2, deep]
    return tuple(sorted({d for d in candidates if PAGE_SIZE <= d <= deep}))


def _message_scenarios(conn: psycopg.Connection[Any], whale: ConversationRef, skip: Collection[str]) -> list[Scenario]:
    base = {"conversation_id": whale.conversation_id, "user_id": whale.user_id, "limit": PAGE_SIZE}
    tag = f"conversation {whale.conversation_id}, {whale.messages} messages"
    out = [
        Scenario("whale-latest", f"latest page of the largest conversation ({tag})", "latest_messages", "page", base),
        Scenario(
            "whale-count",
            f"message count of the largest conversation ({tag})",
            "count_messages",
            "count",
            {k: v for k, v in base.items() if k != "limit"},
        ),
    ]
    paged = {"messages_before", "messages_offset", "messages_after"} - set(skip)  # read a cursor row per depth
    for depth in depths_for(whale.messages) if paged else ():
        cursor = _cursor_row(conn, message_subject(whale, CANONICAL), depth - 1)
        if cursor is None:
            continue
        keyset = {**base, "cursor_created_at": cursor[0], "cursor_id": cursor[1]}
        out.append(
            Scenario(
                f"keyset-d{depth}",
                f"keyset page {depth} rows deep ({tag})",
                "messages_before",
                "page",
                keyset,
                depth=depth,
                curve="keyset",
            )
        )
        out.append(
            Scenario(
                f"offset-d{depth}",
                f"OFFSET {depth} page ({tag})",
                "messages_offset",
                "page",
                {**base, "offset": depth},
                depth=depth,
                curve="offset",
            )
        )
        out.append(
            Scenario(
                f"after-d{depth}",
                f"messages after a cursor {depth} rows deep ({tag})",
                "messages_after",
                "page",
                keyset,
                depth=depth,
            )
        )
    return out


def build_scenarios(conn: psycopg.Connection[Any], params: SeedParameters,
                    skip: Collection[str] = ()) -> tuple[Scenario, ...]:
    """All scenarios the parameter sets allow (a missing set simply yields fewer scenarios), but those of the
    canonical queries in ``skip`` (not run on this schema: ``verify.mapped``), whose rows are not read either."""
    out: list[Scenario] = []
    if params.whales:
        out.extend(_message_scenarios(conn, params.whales[0], skip))
    if params.small_conversations:
        small = params.small_conversations[0]
        out.append(
            Scenario(
                "small-latest",
                f"latest page of a tiny conversation ({small.conversation_id}, {small.messages} messages)",
                "latest_messages",
                "small_page",
                {"conversation_id": small.conversation_id, "user_id": small.user_id, "limit": PAGE_SIZE},
            )
        )
    for tie in params.tie_cursors[:1]:
        cursor = {
            "conversation_id": tie.conversation_id,
            "user_id": tie.user_id,
            "cursor_created_at": tie.created_at,
            "cursor_id": tie.id,
            "limit": PAGE_SIZE,
        }
        tag = (
            f"conversation {tie.conversation_id}, {tie.tie_size} messages share created_at {tie.created_at.isoformat()}"
        )
        out.append(
            Scenario(
                "tie-before", f"keyset page from a cursor inside a tie block ({tag})", "messages_before", "page", cursor
            )
        )
        out.append(
            Scenario("tie-after", f"sync from a cursor inside a tie block ({tag})", "messages_after", "page", cursor)
        )
    if params.heavy_users:
        heavy = params.heavy_users[0]
        first = {"user_id": heavy.user_id, "limit": PAGE_SIZE}
        tag = f"user {heavy.user_id}, {heavy.conversations} conversations"
        out.append(
            Scenario(
                "heavy-list-first",
                f"conversation list of the heaviest user ({tag})",
                "list_conversations_first",
                "list",
                first,
            )
        )
        position = min(PAGE_SIZE, max(heavy.conversations // 2, 1)) - 1
        row = None if "list_conversations_next" in skip else _cursor_row(conn, list_subject(heavy, CANONICAL),
                                                                          position)
        if row is not None:
            out.append(
                Scenario(
                    "heavy-list-next",
                    f"next conversation-list page of the heaviest user ({tag})",
                    "list_conversations_next",
                    "list",
                    {**first, "cursor_updated_at": row[0], "cursor_id": row[1]},
                )
            )
    if params.light_users:
        light = params.light_users[0]
        out.append(
            Scenario(
                "light-list-first",
                f"conversation list of a light user (user {light.user_id}, {light.conversations} conversations)",
                "list_conversations_first",
                "list",
                {"user_id": light.user_id, "limit": PAGE_SIZE},
            )
        )
    return tuple(
        Scenario(s.key, s.description, s.query, s.kind, MappingProxyType(dict(s.params)), s.depth, s.curve)
        for s in out if s.query not in skip
    )


# -- the application's own queries (``--queries``) ------------------------------------------------

BIG_LIMIT = 1_000_000_000
"""The page size of the page walk's one-page reference read (every row the query can return)."""


@dataclass(frozen=True)
class Subject:
    """What an application query's scenario pages through: a conversation's messages or a user's list."""

    table: str  # the application's table (through the role map)
    key_column: str  # its column fixed by the scenario (conversation_id or user_id, mapped)
    key: Key
    order_columns: tuple[str, str]  # (time column, id column), mapped
    rows: int


def _cursor_row(conn: psycopg.Connection[Any], subject: Subject, depth: int) -> tuple[Any, Key] | None:
    """(time, id) of the subject's row ``depth`` rows below the newest (``(time, id)`` descending)."""
    time_col, id_col = subject.order_columns
    query = sql.SQL("SELECT {t}, {i} FROM {table} WHERE {k} = %s ORDER BY {t} DESC, {i} DESC OFFSET %s LIMIT 1").format(
        t=sql.Identifier(time_col), i=sql.Identifier(id_col), table=sql.Identifier(subject.table),
        k=sql.Identifier(subject.key_column))
    row = conn.execute(query, (subject.key, max(depth, 0))).fetchone()
    return None if row is None else (row[0], as_key(row[1]))


def message_subject(conversation: ConversationRef, roles: RoleMap) -> Subject:
    return Subject(roles.table("messages"), roles.column("messages", "conversation_id"), conversation.conversation_id,
                   (roles.column("messages", "created_at"), roles.column("messages", "id")), conversation.messages)


def list_subject(user: UserRef, roles: RoleMap) -> Subject:
    return Subject(roles.table("conversations"), roles.column("conversations", "user_id"), user.user_id,
                   (roles.column("conversations", "updated_at"), roles.column("conversations", "id")),
                   user.conversations)


WRITE_VALUES: Mapping[str, Any] = MappingProxyType({
    "role": "user", "content": "chatbench: a message written inside a rolled-back transaction",
    "title": "chatbench: a title written inside a rolled-back transaction"})


def cursor_values(query: AppQuery, row: tuple[Any, Key] | None) -> dict[str, Any]:
    """The query's cursor and time parameters taken from one (time, id) row."""
    out: dict[str, Any] = {}
    for name in query.params:
        if row is None:
            break
        if (name.endswith("_id") and name.split("_", 1)[0] in ("before", "after", "cursor")) or name == "message_id":
            out[name] = row[1]
        elif name in CURSOR_PARAMS or name == "since":
            out[name] = row[0]
    return out


def _app_scenario(key: str, description: str, query: AppQuery, kind: str, values: Mapping[str, Any],
                  depth: int | None) -> Scenario:
    wanted = {p: values[p] for p in query.params if p in values}
    wanted.update({p: WRITE_VALUES[p] for p in query.params if p in WRITE_VALUES})
    return Scenario(key, description, query.name, kind, MappingProxyType(wanted), depth=depth,
                    curve="offset" if "offset" in query.params else ("keyset" if query.cursor_params else None))


def build_app_scenarios(conn: psycopg.Connection[Any], params: SeedParameters, query: AppQuery,
                        roles: RoleMap = CANONICAL) -> tuple[Scenario, ...]:
    """The scenarios an application query's parameters allow, bound from the seed's parameter sets (and, for
    cursors, from the rows at the scenario's depth, read through the role map)."""
    out: list[Scenario] = []
    names = set(query.params)
    kind_write = query.kind == "write"
    if names & {"conversation_id", "message_id"}:
        convs: list[tuple[str, ConversationRef, int, str]] = []
        if params.whales:
            whale = params.whales[0]
            first = PAGE_SIZE if query.pages or "since" in names else 0
            convs.append(("whale", whale, first, "page"))
            if query.pages or "since" in names or "message_id" in names:
                convs.append(("deep", whale, max(whale.messages - PAGE_SIZE - 1, first), "page"))
        if params.small_conversations:
            small = params.small_conversations[0]
            convs.append(("small", small, min(1, small.messages), "small_page"))
        for key, conv, depth, kind in convs:
            if not query.allows(key):
                continue
            needs_row = bool(query.cursor_params or names & {"since", "message_id"})
            subject = message_subject(conv, roles)
            row = _cursor_row(conn, subject, depth - 1 if query.cursor_params else depth) if needs_row else None
            if needs_row and row is None:
                continue
            values = {"conversation_id": conv.conversation_id, "user_id": conv.user_id, "limit": PAGE_SIZE,
                      "offset": depth, **cursor_values(query, row)}
            out.append(_app_scenario(key, f"{query.name}: {SCENARIO_ROLES[key]} (conversation {conv.conversation_id}, "
                                     f"{conv.messages} messages, depth {depth})", query,
                                     "write" if kind_write else kind, values, depth))
        if query.cursor_params and params.tie_cursors and query.allows("tie"):
            tie = params.tie_cursors[0]
            values = {"conversation_id": tie.conversation_id, "user_id": tie.user_id, "limit": PAGE_SIZE,
                      "offset": 0, **cursor_values(query, (tie.created_at, tie.id))}
            out.append(_app_scenario("tie", f"{query.name}: {SCENARIO_ROLES['tie']} ({tie.tie_size} messages at "
                                     f"{tie.created_at.isoformat()})", query, "page", values, None))
    elif "user_id" in names:
        users = [("heavy", params.heavy_users[0])] if params.heavy_users else []
        users += [("light", params.light_users[0])] if params.light_users else []
        for key, user in users:
            if not query.allows(key):
                continue
            subject = list_subject(user, roles)
            depth = min(PAGE_SIZE, max(user.conversations // 2, 1)) if query.pages else 0
            row = _cursor_row(conn, subject, depth - 1) if query.cursor_params or "since" in names else None
            values = {"user_id": user.user_id, "limit": PAGE_SIZE, "offset": depth, **cursor_values(query, row)}
            out.append(_app_scenario(key, f"{query.name}: {SCENARIO_ROLES[key]} (user {user.user_id}, "
                                     f"{user.conversations} conversations)", query,
                                     "write" if kind_write else "list", values, depth))
    else:
        out.append(_app_scenario("all", f"{query.name}: no conversation or user (reads across the history)", query,
                                 "write" if kind_write else "page", {"limit": PAGE_SIZE, "offset": 0}, None))
    return tuple(out)
