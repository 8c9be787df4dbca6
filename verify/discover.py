"""Scenario parameters discovered from the data of a database this run did not seed.

Read-only by construction: plain SELECTs (the caller's connection is READ ONLY at the server level).
Every ordering has a tie-breaker on ids so that the same database always gives the same parameters.
An application on its own names is read through its role map (``[tool.chatbench.map]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from chatbench.loadgen.result import ConversationRef, SeedParameters, TieCursor, UserRef
from chatbench.schema.rolemap import CANONICAL, RoleMap
from chatbench.verify.keys import as_key

WHALE_MIN_MESSAGES = 1000
SMALL_MAX_MESSAGES = 5
LIGHT_MAX_CONVERSATIONS = 2
TAKE = 3


@dataclass(frozen=True)
class _Names:
    """The role tables and columns discovery reads, quoted, in the application's names (``RoleMap``)."""

    messages: sql.Identifier
    conversations: sql.Identifier
    message_id: sql.Identifier
    conversation_of_message: sql.Identifier
    created_at: sql.Identifier
    conversation_id: sql.Identifier
    owner: sql.Identifier

    @classmethod
    def of(cls, roles: RoleMap) -> _Names:
        return cls(
            messages=sql.Identifier(roles.table("messages")),
            conversations=sql.Identifier(roles.table("conversations")),
            message_id=sql.Identifier(roles.column("messages", "id")),
            conversation_of_message=sql.Identifier(roles.column("messages", "conversation_id")),
            created_at=sql.Identifier(roles.column("messages", "created_at")),
            conversation_id=sql.Identifier(roles.column("conversations", "id")),
            owner=sql.Identifier(roles.column("conversations", "user_id")),
        )

    def query(self, template: str) -> sql.Composed:
        return sql.SQL(template).format(**{name: getattr(self, name) for name in self.__dataclass_fields__})


_CONVERSATION_SIZES = """
SELECT m.{conversation_of_message}, c.{owner}, m.n
  FROM (SELECT {conversation_of_message}, count(*) AS n FROM {messages} GROUP BY {conversation_of_message}) m
  JOIN {conversations} c ON c.{conversation_id} = m.{conversation_of_message}
"""


def discover(conn: psycopg.Connection[Any], roles: RoleMap = CANONICAL) -> SeedParameters:
    """The largest conversations, tiny ones, heaviest and lightest users, and cursors inside ties, read
    from the tables and columns ``roles`` names (the canonical ones by default)."""
    names = _Names.of(roles)
    largest = [
        ConversationRef(as_key(r[0]), as_key(r[1]), int(r[2]))
        for r in conn.execute(names.query(_CONVERSATION_SIZES + " ORDER BY m.n DESC, 1 LIMIT %s"), (TAKE,))
    ]
    # Whales are 1000+ messages; if the data has none, the largest conversations still make the
    # scenarios (the report shows their sizes, so a toy database is visible as such).
    whales = [w for w in largest if w.messages >= WHALE_MIN_MESSAGES] or largest[:1]
    small = [
        ConversationRef(as_key(r[0]), as_key(r[1]), int(r[2]))
        for r in conn.execute(
            names.query(_CONVERSATION_SIZES + " WHERE m.n <= %s ORDER BY m.n DESC, 1 LIMIT %s"),
            (SMALL_MAX_MESSAGES, TAKE),
        )
    ]
    users = "SELECT {owner} AS owner, count(*) AS n FROM {conversations} GROUP BY {owner}"
    heavy = [
        UserRef(as_key(r[0]), int(r[1]))
        for r in conn.execute(names.query(f"SELECT * FROM ({users}) u ORDER BY n DESC, owner LIMIT %s"), (TAKE,))
    ]
    light = [
        UserRef(as_key(r[0]), int(r[1]))
        for r in conn.execute(
            names.query(f"SELECT * FROM ({users}) u WHERE n <= %s ORDER BY n, owner LIMIT %s"),
            (LIGHT_MAX_CONVERSATIONS, TAKE),
        )
    ]
    ties: list[TieCursor] = []
    for whale in whales:
        for r in conn.execute(
            names.query("""SELECT {created_at}, count(*), (array_agg({message_id} ORDER BY {message_id}))[2]
                 FROM {messages} WHERE {conversation_of_message} = %s
                GROUP BY {created_at} HAVING count(*) > 1
                ORDER BY count(*) DESC, {created_at} LIMIT 1"""),
            (whale.conversation_id,),
        ):
            ties.append(TieCursor(whale.conversation_id, whale.user_id, r[0], as_key(r[2]), int(r[1])))
    if not ties:
        row = conn.execute(
            names.query("""SELECT m.{conversation_of_message}, c.{owner}, m.{created_at}, count(*),
                       (array_agg(m.{message_id} ORDER BY m.{message_id}))[2]
                 FROM {messages} m JOIN {conversations} c ON c.{conversation_id} = m.{conversation_of_message}
                GROUP BY m.{conversation_of_message}, c.{owner}, m.{created_at} HAVING count(*) > 1
                ORDER BY count(*) DESC, 1, 3 LIMIT 1""")
        ).fetchone()
        if row is not None:
            ties.append(TieCursor(as_key(row[0]), as_key(row[1]), row[2], as_key(row[4]), int(row[3])))
    return SeedParameters(tuple(whales), tuple(small), tuple(heavy), tuple(light), tuple(ties))
