"""Scenario parameters discovered from the data of a database this run did not seed.

Read-only by construction: plain SELECTs (the caller's connection is READ ONLY at the server level).
Every ordering has a tie-breaker on ids so that the same database always gives the same parameters.
"""

from __future__ import annotations

from typing import Any

import psycopg

from chatbench.loadgen.result import ConversationRef, SeedParameters, TieCursor, UserRef
from chatbench.verify.keys import as_key

WHALE_MIN_MESSAGES = 1000
SMALL_MAX_MESSAGES = 5
LIGHT_MAX_CONVERSATIONS = 2
TAKE = 3

_CONVERSATION_SIZES = """
SELECT m.conversation_id, c.user_id, m.n
  FROM (SELECT conversation_id, count(*) AS n FROM messages GROUP BY conversation_id) m
  JOIN conversations c ON c.id = m.conversation_id
"""


def discover(conn: psycopg.Connection[Any]) -> SeedParameters:
    """The largest conversations, tiny ones, heaviest and lightest users, and cursors inside ties."""
    largest = [
        ConversationRef(as_key(r[0]), as_key(r[1]), int(r[2]))
        for r in conn.execute(_CONVERSATION_SIZES + " ORDER BY m.n DESC, m.conversation_id LIMIT %s", (TAKE,))
    ]
    # Whales are 1000+ messages; if the data has none, the largest conversations still make the
    # scenarios (the report shows their sizes, so a toy database is visible as such).
    whales = [w for w in largest if w.messages >= WHALE_MIN_MESSAGES] or largest[:1]
    small = [
        ConversationRef(as_key(r[0]), as_key(r[1]), int(r[2]))
        for r in conn.execute(
            _CONVERSATION_SIZES + " WHERE m.n <= %s ORDER BY m.n DESC, m.conversation_id LIMIT %s",
            (SMALL_MAX_MESSAGES, TAKE),
        )
    ]
    users = "SELECT user_id, count(*) AS n FROM conversations GROUP BY user_id"
    heavy = [
        UserRef(as_key(r[0]), int(r[1]))
        for r in conn.execute(f"SELECT * FROM ({users}) u ORDER BY n DESC, user_id LIMIT %s", (TAKE,))
    ]
    light = [
        UserRef(as_key(r[0]), int(r[1]))
        for r in conn.execute(
            f"SELECT * FROM ({users}) u WHERE n <= %s ORDER BY n, user_id LIMIT %s", (LIGHT_MAX_CONVERSATIONS, TAKE)
        )
    ]
    ties: list[TieCursor] = []
    for whale in whales:
        for r in conn.execute(
            """SELECT created_at, count(*), (array_agg(id ORDER BY id))[2]
                 FROM messages WHERE conversation_id = %s
                GROUP BY created_at HAVING count(*) > 1
                ORDER BY count(*) DESC, created_at LIMIT 1""",
            (whale.conversation_id,),
        ):
            ties.append(TieCursor(whale.conversation_id, whale.user_id, r[0], as_key(r[2]), int(r[1])))
    if not ties:
        row = conn.execute(
            """SELECT m.conversation_id, c.user_id, m.created_at, count(*), (array_agg(m.id ORDER BY m.id))[2]
                 FROM messages m JOIN conversations c ON c.id = m.conversation_id
                GROUP BY m.conversation_id, c.user_id, m.created_at HAVING count(*) > 1
                ORDER BY count(*) DESC, m.conversation_id, m.created_at LIMIT 1"""
        ).fetchone()
        if row is not None:
            ties.append(TieCursor(as_key(row[0]), as_key(row[1]), row[2], as_key(row[4]), int(row[3])))
    return SeedParameters(tuple(whales), tuple(small), tuple(heavy), tuple(light), tuple(ties))
