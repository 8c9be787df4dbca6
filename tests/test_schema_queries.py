"""The canonical queries return correct pages and never cross users (real server, prepared statements)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from chatbench.provision import Server
from chatbench.schema.queries import CANONICAL_QUERIES, QUERIES_BY_NAME, READ_QUERIES

T0 = datetime(2025, 3, 1, tzinfo=UTC)
MESSAGES_IN_CONVERSATION = 57  # created_at in blocks of 3 equal timestamps: ties on every page edge
CONVERSATIONS_OF_ALICE = 23  # updated_at in pairs of equal timestamps


def run(conn: psycopg.Connection, name: str, **params: Any) -> list[tuple[Any, ...]]:
    query = QUERIES_BY_NAME[name]
    query.check_params(params)
    return conn.execute(query.sql(), params, prepare=True).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def chat(schema_db: Server) -> Iterator[tuple[psycopg.Connection, dict[str, int]]]:
    with psycopg.connect(schema_db.conninfo(), autocommit=True) as conn:
        alice, bob = (
            int(
                conn.execute("INSERT INTO users (email, display_name) VALUES (%s, %s) RETURNING id", (e, e)).fetchone()[
                    0
                ]
            )  # type: ignore[index]
            for e in ("alice@example.com", "bob@example.com")
        )
        conversations = [
            int(
                conn.execute(
                    "INSERT INTO conversations (user_id, title, created_at, updated_at) "
                    "VALUES (%s, %s, %s, %s) RETURNING id",
                    (alice, f"c{i}", T0, T0 + timedelta(minutes=i // 2)),
                ).fetchone()[0]
            )  # type: ignore[index]
            for i in range(CONVERSATIONS_OF_ALICE)
        ]
        big = conversations[0]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO messages (conversation_id, user_id, role, content, created_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                [
                    (big, alice, ("user", "assistant")[i % 2], f"m{i}", T0 + timedelta(seconds=i // 3))
                    for i in range(MESSAGES_IN_CONVERSATION)
                ],
            )
        bob_conversation = int(
            conn.execute(
                "INSERT INTO conversations (user_id, title) VALUES (%s, 'bob') RETURNING id", (bob,)
            ).fetchone()[0]
        )  # type: ignore[index]
        yield conn, {"alice": alice, "bob": bob, "big": big, "bob_conversation": bob_conversation}


def _all_messages(conn: psycopg.Connection, cid: int) -> list[int]:
    return [
        r[0]
        for r in conn.execute(
            "SELECT id FROM messages WHERE conversation_id = %s ORDER BY created_at DESC, id DESC", (cid,)
        ).fetchall()
    ]


def test_keyset_pages_backwards_cover_the_conversation_exactly_once(chat: Any) -> None:
    conn, ids = chat
    page = run(conn, "latest_messages", user_id=ids["alice"], conversation_id=ids["big"], limit=5)
    seen = [r[0] for r in page]
    while page:
        last = page[-1]
        page = run(
            conn,
            "messages_before",
            user_id=ids["alice"],
            conversation_id=ids["big"],
            cursor_created_at=last[5],
            cursor_id=last[0],
            limit=5,
        )
        seen += [r[0] for r in page]
    assert seen == _all_messages(conn, ids["big"])
    assert len(seen) == len(set(seen)) == MESSAGES_IN_CONVERSATION


def test_offset_pages_equal_keyset_pages(chat: Any) -> None:
    conn, ids = chat
    expected = _all_messages(conn, ids["big"])
    by_offset = []
    for offset in range(0, MESSAGES_IN_CONVERSATION, 5):
        by_offset += [
            r[0]
            for r in run(
                conn, "messages_offset", user_id=ids["alice"], conversation_id=ids["big"], offset=offset, limit=5
            )
        ]
    assert by_offset == expected


def test_newer_than_cursor_pages_forward_in_order(chat: Any) -> None:
    conn, ids = chat
    oldest_first = list(reversed(_all_messages(conn, ids["big"])))
    first = conn.execute("SELECT created_at, id FROM messages WHERE id = %s", (oldest_first[0],)).fetchone()
    seen = [oldest_first[0]]
    cursor = first
    while True:
        page = run(
            conn,
            "messages_after",
            user_id=ids["alice"],
            conversation_id=ids["big"],
            cursor_created_at=cursor[0],
            cursor_id=cursor[1],
            limit=7,
        )
        if not page:
            break
        seen += [r[0] for r in page]
        cursor = (page[-1][5], page[-1][0])
    assert seen == oldest_first


def test_conversation_list_keyset_covers_all_with_ties(chat: Any) -> None:
    conn, ids = chat
    page = run(conn, "list_conversations_first", user_id=ids["alice"], limit=4)
    seen = [r[0] for r in page]
    while page:
        page = run(
            conn,
            "list_conversations_next",
            user_id=ids["alice"],
            cursor_updated_at=page[-1][3],
            cursor_id=page[-1][0],
            limit=4,
        )
        seen += [r[0] for r in page]
    expected = [
        r[0]
        for r in conn.execute(
            "SELECT id FROM conversations WHERE user_id = %s ORDER BY updated_at DESC, id DESC", (ids["alice"],)
        )
    ]
    assert seen == expected and len(seen) == CONVERSATIONS_OF_ALICE


def test_count_messages(chat: Any) -> None:
    conn, ids = chat
    assert run(conn, "count_messages", user_id=ids["alice"], conversation_id=ids["big"]) == [
        (MESSAGES_IN_CONVERSATION,)
    ]


@pytest.mark.parametrize("query", READ_QUERIES, ids=lambda q: q.name)
def test_reads_never_cross_users(chat: Any, query: Any) -> None:
    conn, ids = chat
    far_future = datetime(2999, 1, 1, tzinfo=UTC)
    params = {
        "user_id": ids["bob"],
        "conversation_id": ids["big"],
        "limit": 50,
        "offset": 0,
        "cursor_created_at": far_future,
        "cursor_updated_at": far_future,
        "cursor_id": 2**62,
    }
    if query.name == "messages_after":
        params["cursor_created_at"] = T0 - timedelta(days=1)
    rows = run(conn, query.name, **{p: params[p] for p in query.params})
    alice_ids = {
        ids["big"],
        *(r[0] for r in conn.execute("SELECT id FROM conversations WHERE user_id = %s", (ids["alice"],))),
    }
    if query.name == "list_conversations_first":
        assert [r[0] for r in rows] == [ids["bob_conversation"]]
    if query.name == "count_messages":
        assert rows == [(0,)]
    elif query.name.startswith("list_conversations"):
        assert {r[0] for r in rows} <= {ids["bob_conversation"]}
        assert not {r[0] for r in rows} & alice_ids
    else:
        assert rows == []


def test_writes_are_isolated_and_move_updated_at(chat: Any) -> None:
    conn, ids = chat
    assert run(conn, "append_message", user_id=ids["bob"], conversation_id=ids["big"], role="user", content="x") == []
    assert run(conn, "rename_conversation", user_id=ids["bob"], conversation_id=ids["big"], title="mine") == []
    created = run(conn, "create_conversation", user_id=ids["bob"], title=None)
    assert len(created) == 1
    new_id, created_at = created[0]
    appended = run(conn, "append_message", user_id=ids["bob"], conversation_id=new_id, role="user", content="héllo 🌍")
    assert len(appended) == 1
    updated = conn.execute("SELECT updated_at FROM conversations WHERE id = %s", (new_id,)).fetchone()
    assert updated == (appended[0][1],) and updated[0] >= created_at
    renamed = run(conn, "rename_conversation", user_id=ids["bob"], conversation_id=new_id, title="Trip ✈")
    assert len(renamed) == 1 and renamed[0][1] >= updated[0]


def test_every_canonical_query_prepares_with_positional_parameters(chat: Any) -> None:
    conn, _ = chat
    for query in CANONICAL_QUERIES:
        text, order = query.sql_positional()
        assert set(order) == set(query.params), query.name
        conn.execute(f"PREPARE chk_{query.name} AS {text}")
        conn.execute(f"DEALLOCATE chk_{query.name}")
