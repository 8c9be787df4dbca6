"""Databases for the content tests: a conversation whose messages are stored out of line (TOAST).

``toasted_conversation(server)`` builds the canonical schema in a new database and fills one
conversation with ``rows`` of the generator's own longest assistant answers (several kB each, so
PostgreSQL compresses them and still moves them out of line), then yields the database, the
conversation's ids and how many of its values are out of line. ``pg15_server()`` is Debian's
PostgreSQL 15, started by chatbench's own provisioning.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from servers import DEBIAN_PG15, drop_database, make_database

from chatbench import schema
from chatbench.loadgen.pools import ROLES, build_pools
from chatbench.provision import Server, provision

LOCALES = ("en_US", "fr_FR", "de_DE", "ja_JP", "zh_CN")


@dataclass(frozen=True)
class ToastedConversation:
    db: Server
    user_id: int
    conversation_id: int
    rows: int
    out_of_line: int  # messages whose content is stored in the TOAST table


def longest_assistant_texts(count: int) -> list[str]:
    pools = build_pools(LOCALES, 0.2, 0)
    role = ROLES.index("assistant")
    first, size = pools.role_offsets[role], pools.role_sizes[role]
    texts = sorted(pools.contents[first : first + size], key=lambda t: len(t.encode()), reverse=True)
    return texts[:count]


@contextlib.contextmanager
def toasted_conversation(server: Server, rows: int = 60) -> Iterator[ToastedConversation]:
    db = make_database(server, "toast")
    try:
        schema.apply(db.url)
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            user = conn.execute("INSERT INTO users (email, display_name) VALUES ('t@example.com', 't') "
                                "RETURNING id").fetchone()
            assert user is not None
            conv = conn.execute("INSERT INTO conversations (user_id, title) VALUES (%s, 'long answers') RETURNING id",
                                (user[0],)).fetchone()
            assert conv is not None
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO messages (conversation_id, user_id, role, content) "
                                "VALUES (%s, %s, 'assistant', %s)",
                                [(conv[0], user[0], text) for text in longest_assistant_texts(rows)])
            conn.execute("VACUUM ANALYZE messages")
            toast = conn.execute("SELECT reltoastrelid::regclass::text FROM pg_class WHERE relname = 'messages'"
                                 ).fetchone()
            assert toast is not None
            chunked = conn.execute(f"SELECT count(DISTINCT chunk_id) FROM {toast[0]}").fetchone()
            assert chunked is not None
        yield ToastedConversation(db, int(user[0]), int(conv[0]), rows, int(chunked[0]))
    finally:
        drop_database(db)


@contextlib.contextmanager
def pg15_server() -> Iterator[Server]:
    with provision("local", pg_bin=str(DEBIAN_PG15), announce=lambda _: None) as server:
        yield server
