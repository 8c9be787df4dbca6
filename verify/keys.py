"""Row keys of any type the canonical queries serve: bigint, uuid or text.

The canonical queries take keys as untyped parameters (``schema/queries.py``), so a key read from the
database is handed on as an ``int`` when it is an integer and as its text otherwise (a ``uuid.UUID``
becomes its canonical spelling); the server types it by the column it meets.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from chatbench.loadgen.result import Key

INTEGER_TYPES = frozenset({"bigint", "integer", "smallint"})
# Key types a schema may use instead of the canonical bigint: the canonical queries run unchanged on them.
KEY_TYPES = frozenset({"bigint", "uuid", "text"})
# The canonical key columns: each table's id and the foreign keys that reference one.
KEY_COLUMNS = frozenset(
    {
        ("users", "id"),
        ("conversations", "id"),
        ("conversations", "user_id"),
        ("messages", "id"),
        ("messages", "conversation_id"),
        ("messages", "user_id"),
    }
)


def as_key(value: Any) -> Key:
    """A key read from the database as a query parameter: an ``int``, or the text of any other key."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return str(value)


def is_key_type(type_name: str) -> bool:
    """Whether a key column of this type serves the canonical queries (``character varying(n)`` is text)."""
    return type_name in KEY_TYPES or type_name.startswith("character varying")


def key_type(conn: psycopg.Connection[Any], table: str, column: str = "id") -> str | None:
    """The type of ``table.column`` as ``format_type`` spells it (None when there is no such column)."""
    row = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(%s) AND attname = %s AND NOT attisdropped",
        (table, column),
    ).fetchone()
    return None if row is None else str(row[0])


def fresh_key(type_name: str | None) -> str:
    """A key of a non-integer type no row has: a new uuid, spelled as the type takes it (text: its hex)."""
    fresh = uuid.uuid4()
    return str(fresh) if type_name == "uuid" else fresh.hex
