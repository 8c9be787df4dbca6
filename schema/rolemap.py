"""Which of the application's tables and columns play the canonical roles (``[tool.chatbench.map]``).

chatbench knows a chat history by meaning: a ``users`` table, ``conversations`` owned by a user, and
``messages`` of a conversation ordered by ``(created_at, id)``. An application names them its own way
(``"Message"``, ``"chatId"``, ``"createdAt"``). The map names them once, so the seed fills the history
into them (``loadgen.target`` gives each table and column its role through ``role_of`` and
``role_column``), the scenarios read their cursors from them, the page walk counts their rows and the
index proposals build on them without guessing:

.. code-block:: toml

    [tool.chatbench.map]
    messages = "Message"
    "messages.conversation_id" = "chatId"
    "messages.created_at" = "createdAt"
    "messages.content" = "parts"        # a json column: filled as [{"type": "text", "text": ...}]
    conversations = "Chat"

A role the map does not name keeps its canonical name. A key that is no role, or a value that is not
a name, is a one-line error before any server starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from chatbench.errors import ConfigError

ROLE_TABLES = ("users", "conversations", "messages")
ROLE_COLUMNS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "users": ("id", "created_at", "email", "display_name"),
    "conversations": ("id", "user_id", "created_at", "updated_at", "title"),
    "messages": ("id", "conversation_id", "user_id", "created_at", "role", "content"),
})
"""The columns each role's rows carry (what the canonical models declare)."""
ROLE_KEYS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "users": MappingProxyType({"id": "users"}),
    "conversations": MappingProxyType({"id": "conversations", "user_id": "users"}),
    "messages": MappingProxyType({"id": "messages", "conversation_id": "conversations", "user_id": "users"}),
})
"""role -> its key columns -> the role whose rows each numbers: the columns the seed fills with a key of the
owner's type (``KeyCodec``), declared beside the columns they are part of."""


@dataclass(frozen=True)
class RoleMap:
    """Role -> the application's table; (role, column) -> the application's column."""

    tables: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    columns: Mapping[tuple[str, str], str] = field(default_factory=lambda: MappingProxyType({}))

    def table(self, role: str) -> str:
        return self.tables.get(role, role)

    def column(self, role: str, column: str) -> str:
        return self.columns.get((role, column), column)

    def role_of(self, table: str) -> str | None:
        """The role ``table`` plays: the one the map gives it, else its own name when that is a role no
        other table was mapped to."""
        for role, name in self.tables.items():
            if name == table:
                return role
        return table if table in ROLE_TABLES and table not in self.tables else None

    def role_column(self, role: str, column: str) -> str | None:
        """The role column that the application's ``column`` of the role's table is (None if none)."""
        for (r, canonical), name in self.columns.items():
            if r == role and name == column:
                return canonical
        mapped = {c for (r, c) in self.columns if r == role}
        return column if column in ROLE_COLUMNS[role] and column not in mapped else None

    @property
    def empty(self) -> bool:
        return not self.tables and not self.columns

    def entries(self) -> tuple[tuple[str, str], ...]:
        """The map as its TOML keys and values, sorted: what the seed cache keys a mapped seed by."""
        pairs = [*self.tables.items(), *((f"{role}.{column}", name) for (role, column), name in self.columns.items())]
        return tuple(sorted(pairs))


CANONICAL = RoleMap()


def parse_map(table: Mapping[str, Any], label: str = "[tool.chatbench.map]") -> RoleMap:
    """The map from its TOML table (``label`` names it in errors)."""
    tables: dict[str, str] = {}
    columns: dict[tuple[str, str], str] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{label} {key} = {value!r}: give the name of your table or column as a string, "
                              f"e.g. {key} = \"Message\"")
        role, dot, column = key.partition(".")
        if role not in ROLE_TABLES:
            raise ConfigError(f"{label} {key}: {role!r} is not a role; roles are {', '.join(ROLE_TABLES)} "
                              "(a column as \"messages.created_at\")")
        if not dot:
            tables[role] = value
            continue
        if column not in ROLE_COLUMNS[role]:
            raise ConfigError(f"{label} {key}: {column!r} is not a column of the {role} role; use one of "
                              f"{', '.join(ROLE_COLUMNS[role])}")
        columns[(role, column)] = value
    clash = sorted({n for n in tables.values() if list(tables.values()).count(n) > 1})
    if clash:
        raise ConfigError(f"{label}: {clash[0]!r} is given two roles; each table plays one")
    return RoleMap(MappingProxyType(tables), MappingProxyType(columns))


def read_map(values: Mapping[str, Any] | None) -> RoleMap:
    """The map of the working directory's settings file (``chatbench.toml [map]`` or
    ``pyproject.toml [tool.chatbench.map]``); the canonical names when it has none."""
    if not values:
        return CANONICAL
    return parse_map(values)
