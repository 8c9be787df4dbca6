"""What a seed hands to the later stages (verification, benchmarks, reports).

``SeedParameters`` are the data scenarios later stages judge plans and latencies on: the whale
conversations, tiny ones, heavy and light users, cursors inside blocks of equal ``created_at``.
Verification can also *discover* the same parameters from a database it did not seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chatbench.convert import from_plain, to_plain

if TYPE_CHECKING:
    from chatbench.provision.server import Server

Key = int | str
"""A row's key as a query parameter: an integer, or the text of a uuid or text key (the server casts it)."""


@dataclass(frozen=True)
class ConversationRef:
    """A conversation and its owner, with its message count."""

    conversation_id: Key
    user_id: Key
    messages: int


@dataclass(frozen=True)
class UserRef:
    """A user and how many conversations they own."""

    user_id: Key
    conversations: int


@dataclass(frozen=True)
class TieCursor:
    """A keyset cursor inside a block of ``tie_size`` messages sharing one ``created_at``."""

    conversation_id: Key
    user_id: Key
    created_at: datetime
    id: Key
    tie_size: int


@dataclass(frozen=True)
class SeedParameters:
    """Parameter sets for scenarios; each tuple is ordered most interesting first."""

    whales: tuple[ConversationRef, ...]  # 1000+ messages, largest first
    small_conversations: tuple[ConversationRef, ...]  # a handful of messages
    heavy_users: tuple[UserRef, ...]  # most conversations first
    light_users: tuple[UserRef, ...]  # one or two conversations
    tie_cursors: tuple[TieCursor, ...]


@dataclass(frozen=True)
class SeedResult:
    """The outcome of one seed: what was loaded, how fast, its checksum, and the scenario parameters."""

    database: str
    profile: str
    spec: Mapping[str, Any]  # the validated spec as plain data (what the cache key hashes)
    seed: int
    order: str  # "time" | "conversation"
    counts: Mapping[str, int]  # rows per table
    checksum: str  # content checksum: equal for equal spec+seed, whatever the worker count
    timings: Mapping[str, float]  # seconds per phase
    from_cache: bool
    cache_key: str
    created_at_correlation: float  # pg_stats.correlation of messages.created_at after ANALYZE
    params: SeedParameters
    extra: Mapping[str, Any] = field(default_factory=dict)

    def server_for(self, server: Server) -> Server:
        """``server`` pointed at the database this seed filled: the loader's cache may have handed back
        another database than the one asked for (a template clone), which the run then owns."""
        if self.database == server.database:
            return server
        return server.with_database(self.database, owns_database=True)


# --- the seeded-snapshot cache's meta.json and the test session's template record --------------------
# Both are the converter's document of a ``SeedResult`` (``chatbench.convert``: fields by name, datetimes as
# ISO 8601); the two names stay for the callers that store one (loadgen.cache, chatbench.testing.session).

def seed_result_to_json(result: SeedResult) -> dict[str, Any]:
    return to_plain(result)


def seed_result_from_json(data: Mapping[str, Any]) -> SeedResult:
    """``DocumentError`` (a ``ValueError``) when ``data`` is not a seed result's document."""
    return from_plain(SeedResult, data)
