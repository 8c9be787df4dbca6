"""The frozen objects chatbench's fixtures hand to an application's tests.

Every object carries its connection details twice: ``url``, a plain ``postgresql://`` URL that psql,
libpq and psycopg accept, and ``sqlalchemy_url`` (``postgresql+psycopg://``) for SQLAlchemy and
Alembic. Both hold the password where there is one, so they are left out of ``repr`` (a failing
assertion prints the object); ``display_url`` is the masked form.

Importing this module is light (the plugin imports it in every pytest session): psycopg loads when
``connect()`` is first called.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from chatbench.loadgen.result import ConversationRef, SeedParameters, TieCursor, UserRef
    from chatbench.provision.server import Server


def _connect(url: str, kwargs: Mapping[str, Any]) -> psycopg.Connection[Any]:
    import psycopg  # lazy: start-up (the pytest plugin imports this module), +0.09 s

    return psycopg.connect(url, **kwargs)


@dataclass(frozen=True)
class ChatServer:
    """The session's throwaway server (``chatbench_server``), shared by every pytest-xdist worker."""

    backend: str  # local | container | dsn
    version: str  # "PostgreSQL 18.1 ..."
    display_url: str
    url: str = field(repr=False)
    sqlalchemy_url: str = field(repr=False)
    server: Server = field(repr=False, compare=False)  # chatbench's own handle (verify, seed, ...)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection to the server's run database (``psycopg.connect`` keyword arguments)."""
        return _connect(self.url, kwargs)


@dataclass(frozen=True)
class ChatDatabase:
    """A database of one test (``chat_db``): created for it, dropped after it, whatever happens."""

    name: str
    schema: str  # what built the schema: "canonical", "--chatbench-schema-from FILE", ...
    template: str  # the database it was cloned from (made once per session)
    display_url: str
    url: str = field(repr=False)
    sqlalchemy_url: str = field(repr=False)
    server: Server = field(repr=False, compare=False)

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A psycopg connection to this database (``psycopg.connect`` keyword arguments)."""
        return _connect(self.url, kwargs)


@dataclass(frozen=True)
class DeepCursor:
    """A keyset cursor ``depth`` messages into a whale conversation (the page before it is that deep)."""

    conversation_id: int
    user_id: int
    created_at: datetime
    id: int
    depth: int


@dataclass(frozen=True)
class SeededChatDatabase(ChatDatabase):
    """A test's clone of the session's seeded template (``seeded_chat_db``), with the scenario facts.

    The facts are those chatbench's own verifier and benchmarks judge plans and latency on: the
    largest conversations (1000+ messages), the heaviest users, cursors deep in a whale conversation
    and inside blocks of messages that share one ``created_at``.
    """

    profile: str  # the data profile (or spec file) seeded
    seed: int
    counts: Mapping[str, int]  # rows per table
    checksum: str  # equal for equal profile and seed, whatever the worker count
    params: SeedParameters = field(repr=False)  # every parameter set, most interesting first
    deep_cursors: tuple[DeepCursor, ...] = field(repr=False)  # into the whale, shallow first

    @property
    def whale(self) -> ConversationRef:
        """The largest conversation (its id, owner and message count)."""
        return self.params.whales[0]

    @property
    def heavy_user(self) -> UserRef:
        """The user with the most conversations."""
        return self.params.heavy_users[0]

    @property
    def light_user(self) -> UserRef:
        """A user with one or two conversations."""
        return self.params.light_users[0]

    @property
    def small_conversation(self) -> ConversationRef:
        """A conversation of a handful of messages."""
        return self.params.small_conversations[0]

    @property
    def tie_cursor(self) -> TieCursor:
        """A cursor inside a block of messages sharing one ``created_at`` (ties break by id)."""
        return self.params.tie_cursors[0]

    @property
    def deep_cursor(self) -> DeepCursor:
        """The deepest cursor into the whale: the page before it is the conversation's oldest."""
        return self.deep_cursors[-1]
