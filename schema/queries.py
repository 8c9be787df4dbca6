"""The canonical history reads and writes the application runs, as SQLAlchemy Core statements.

Each query is a ``CanonicalQuery``: a name, the statement with bound parameters, and a docstring
saying which screen of the app runs it. Every read of a conversation also filters by the owning
user (``conversations.user_id = :user_id``): isolation is part of the query, not of the caller.
Verification (plan contracts) and benchmarks iterate over ``CANONICAL_QUERIES``; nothing else
writes history SQL.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from sqlalchemy import (
    BigInteger,
    DateTime,
    Executable,
    Integer,
    Text,
    bindparam,
    cast,
    exists,
    func,
    insert,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine.interfaces import BindTyping
from sqlalchemy.sql.elements import BindParameter

from chatbench.schema.models import conversations, messages

m = messages.c
c = conversations.c
_DIALECT = postgresql.psycopg.dialect()
_DIALECT.bind_typing = BindTyping.NONE

_TIMESTAMP = DateTime(timezone=True)


def _ts(name: str) -> BindParameter[datetime]:
    return bindparam(name, type_=_TIMESTAMP)


def _id(name: str) -> BindParameter[int]:
    return bindparam(name, type_=BigInteger)


_LIMIT = bindparam("limit", type_=Integer)

_OWNED = exists().where(c.id == bindparam("conversation_id"), c.user_id == bindparam("user_id"))
_MESSAGE_COLUMNS = (m.id, m.conversation_id, m.user_id, m.role, m.content, m.created_at)
_CONVERSATION_COLUMNS = (c.id, c.title, c.created_at, c.updated_at)


def _messages_of_owned_conversation() -> Executable:
    return select(*_MESSAGE_COLUMNS).where(m.conversation_id == bindparam("conversation_id"), _OWNED)


@dataclass(frozen=True)
class CanonicalQuery:
    """One statement of the application's history access path."""

    name: str
    kind: Literal["read", "write"]
    statement: Executable
    doc: str
    params: tuple[str, ...]
    returns_rows: bool = True
    tags: frozenset[str] = field(default_factory=frozenset)

    def sql(self) -> str:
        """The statement as PostgreSQL text with psycopg ``%(name)s`` placeholders.

        Parameters carry no casts: the server types each by the column it meets, so one text serves a
        schema keyed by bigint, uuid or text (a uuid or text key is passed as a string, untyped).
        """
        return str(self.statement.compile(dialect=_DIALECT))  # type: ignore[attr-defined]

    def sql_positional(self) -> tuple[str, tuple[str, ...]]:
        """The statement with ``$1..$n`` placeholders and the parameter order: what PREPARE takes."""
        text = self.sql()
        order: list[str] = []
        for name in self._placeholder_order(text):
            if name not in order:
                order.append(name)
        for index, name in enumerate(order, start=1):
            text = text.replace(f"%({name})s", f"${index}")
        return text, tuple(order)

    @staticmethod
    def _placeholder_order(text: str) -> list[str]:

        return re.findall(r"%\((\w+)\)s", text)

    def check_params(self, values: Mapping[str, object]) -> None:
        missing = [p for p in self.params if p not in values]
        if missing:
            raise KeyError(f"{self.name}: missing parameter(s) {', '.join(missing)}")


LIST_CONVERSATIONS_FIRST = CanonicalQuery(
    name="list_conversations_first",
    kind="read",
    doc="Sidebar on app open: the user's most recently active conversations, first page.",
    params=("user_id", "limit"),
    statement=select(*_CONVERSATION_COLUMNS)
    .where(c.user_id == bindparam("user_id"))
    .order_by(c.updated_at.desc(), c.id.desc())
    .limit(_LIMIT),
)

LIST_CONVERSATIONS_NEXT = CanonicalQuery(
    name="list_conversations_next",
    kind="read",
    doc="Sidebar scrolled down: the next page after the last (updated_at, id) shown (keyset).",
    params=("user_id", "cursor_updated_at", "cursor_id", "limit"),
    statement=select(*_CONVERSATION_COLUMNS)
    .where(
        c.user_id == bindparam("user_id"),
        tuple_(c.updated_at, c.id) < tuple_(_ts("cursor_updated_at"), _id("cursor_id")),
    )
    .order_by(c.updated_at.desc(), c.id.desc())
    .limit(_LIMIT),
)

LATEST_MESSAGES = CanonicalQuery(
    name="latest_messages",
    kind="read",
    doc="Opening a conversation: its latest N messages, newest first (the client reverses them).",
    params=("user_id", "conversation_id", "limit"),
    statement=_messages_of_owned_conversation()
    .order_by(m.created_at.desc(), m.id.desc())  # type: ignore[attr-defined]
    .limit(_LIMIT),
)

MESSAGES_BEFORE = CanonicalQuery(
    name="messages_before",
    kind="read",
    doc="Scrolling up in a conversation: the N messages older than the oldest shown (keyset cursor).",
    params=("user_id", "conversation_id", "cursor_created_at", "cursor_id", "limit"),
    statement=_messages_of_owned_conversation()
    .where(tuple_(m.created_at, m.id) < tuple_(_ts("cursor_created_at"), _id("cursor_id")))  # type: ignore[attr-defined]
    .order_by(m.created_at.desc(), m.id.desc())
    .limit(_LIMIT),
)

MESSAGES_OFFSET = CanonicalQuery(
    name="messages_offset",
    kind="read",
    doc="The same scroll-up page by OFFSET, kept as the contrast: its cost grows with depth.",
    params=("user_id", "conversation_id", "offset", "limit"),
    statement=_messages_of_owned_conversation()
    .order_by(m.created_at.desc(), m.id.desc())  # type: ignore[attr-defined]
    .limit(_LIMIT)
    .offset(bindparam("offset", type_=Integer)),
    tags=frozenset({"contrast"}),
)

MESSAGES_AFTER = CanonicalQuery(
    name="messages_after",
    kind="read",
    doc="Sync after reconnect: messages newer than the newest the client holds, oldest first.",
    params=("user_id", "conversation_id", "cursor_created_at", "cursor_id", "limit"),
    statement=_messages_of_owned_conversation()
    .where(tuple_(m.created_at, m.id) > tuple_(_ts("cursor_created_at"), _id("cursor_id")))  # type: ignore[attr-defined]
    .order_by(m.created_at.asc(), m.id.asc())
    .limit(_LIMIT),
)

COUNT_MESSAGES = CanonicalQuery(
    name="count_messages",
    kind="read",
    doc="Conversation header: the number of messages in the conversation.",
    params=("user_id", "conversation_id"),
    statement=select(func.count().label("messages")).where(m.conversation_id == bindparam("conversation_id"), _OWNED),
)

CREATE_CONVERSATION = CanonicalQuery(
    name="create_conversation",
    kind="write",
    doc="New chat button: creates an (optionally titled) conversation for the user.",
    params=("user_id", "title"),
    statement=insert(conversations)
    .values(user_id=bindparam("user_id"), title=bindparam("title"))
    .returning(c.id, c.created_at),
)

APPEND_MESSAGE = CanonicalQuery(
    name="append_message",
    kind="write",
    doc="Sending a message (or storing the assistant's reply): inserts it if the user owns the "
    "conversation; the trigger moves conversations.updated_at.",
    params=("user_id", "conversation_id", "role", "content"),
    # The keys come from the owning conversation's row (typed by its columns), not from the parameters:
    # the same statement serves bigint, uuid and text keys.
    statement=insert(messages)
    .from_select(
        ["conversation_id", "user_id", "role", "content"],
        select(c.id, c.user_id, cast(bindparam("role"), Text), cast(bindparam("content"), Text)).where(
            c.id == bindparam("conversation_id"), c.user_id == bindparam("user_id")
        ),
    )
    .returning(m.id, m.created_at),
)

RENAME_CONVERSATION = CanonicalQuery(
    name="rename_conversation",
    kind="write",
    doc="Renaming a chat: sets the title of the user's conversation; the trigger moves updated_at.",
    params=("user_id", "conversation_id", "title"),
    statement=update(conversations)
    .where(c.id == bindparam("conversation_id"), c.user_id == bindparam("user_id"))
    .values(title=bindparam("title"))
    .returning(c.id, c.updated_at),
)

CANONICAL_QUERIES: tuple[CanonicalQuery, ...] = (
    LIST_CONVERSATIONS_FIRST,
    LIST_CONVERSATIONS_NEXT,
    LATEST_MESSAGES,
    MESSAGES_BEFORE,
    MESSAGES_OFFSET,
    MESSAGES_AFTER,
    COUNT_MESSAGES,
    CREATE_CONVERSATION,
    APPEND_MESSAGE,
    RENAME_CONVERSATION,
)
QUERIES_BY_NAME: dict[str, CanonicalQuery] = {q.name: q for q in CANONICAL_QUERIES}
READ_QUERIES = tuple(q for q in CANONICAL_QUERIES if q.kind == "read")
WRITE_QUERIES = tuple(q for q in CANONICAL_QUERIES if q.kind == "write")
