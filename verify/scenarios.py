"""Concrete plan scenarios (query + literal parameters) built from ``SeedParameters``.

The parameter sets name conversations and users; the cursors at given depths are read from the data
(read-only SELECTs through the history index), so the same database always yields the same
scenarios. Depths include a deep one (the oldest page of the largest conversation) so that keyset
flatness and OFFSET growth are measured over the whole range.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from chatbench.loadgen.result import ConversationRef, SeedParameters
from chatbench.schema.contracts import PAGE_SIZE


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


def _row_at(conn: psycopg.Connection[Any], conversation_id: int, depth: int) -> tuple[Any, int] | None:
    row = conn.execute(
        "SELECT created_at, id FROM messages WHERE conversation_id = %s "
        "ORDER BY created_at DESC, id DESC OFFSET %s LIMIT 1",
        (conversation_id, depth),
    ).fetchone()
    return None if row is None else (row[0], int(row[1]))


def _message_scenarios(conn: psycopg.Connection[Any], whale: ConversationRef) -> list[Scenario]:
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
    for depth in depths_for(whale.messages):
        cursor = _row_at(conn, whale.conversation_id, depth - 1)
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


def build_scenarios(conn: psycopg.Connection[Any], params: SeedParameters) -> tuple[Scenario, ...]:
    """All scenarios the parameter sets allow (a missing set simply yields fewer scenarios)."""
    out: list[Scenario] = []
    if params.whales:
        out.extend(_message_scenarios(conn, params.whales[0]))
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
        row = conn.execute(
            "SELECT updated_at, id FROM conversations WHERE user_id = %s "
            "ORDER BY updated_at DESC, id DESC OFFSET %s LIMIT 1",
            (heavy.user_id, position),
        ).fetchone()
        if row is not None:
            out.append(
                Scenario(
                    "heavy-list-next",
                    f"next conversation-list page of the heaviest user ({tag})",
                    "list_conversations_next",
                    "list",
                    {**first, "cursor_updated_at": row[0], "cursor_id": int(row[1])},
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
        Scenario(s.key, s.description, s.query, s.kind, MappingProxyType(dict(s.params)), s.depth, s.curve) for s in out
    )
