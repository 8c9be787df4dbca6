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

    def to_json(self) -> dict[str, Any]:
        from dataclasses import asdict

        data = asdict(self)
        for cursor in data["tie_cursors"]:
            cursor["created_at"] = cursor["created_at"].isoformat()
        return data


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


# --- JSON round trip (added for the seeded-snapshot cache's meta.json and for reports) -------------

def _params_from_json(data: Mapping[str, Any]) -> SeedParameters:
    return SeedParameters(
        whales=tuple(ConversationRef(**c) for c in data["whales"]),
        small_conversations=tuple(ConversationRef(**c) for c in data["small_conversations"]),
        heavy_users=tuple(UserRef(**u) for u in data["heavy_users"]),
        light_users=tuple(UserRef(**u) for u in data["light_users"]),
        tie_cursors=tuple(
            TieCursor(**{**t, "created_at": datetime.fromisoformat(t["created_at"])}) for t in data["tie_cursors"]
        ),
    )


def seed_result_to_json(result: SeedResult) -> dict[str, Any]:
    """Plain JSON data of a ``SeedResult`` (datetimes as ISO 8601)."""
    return {
        "database": result.database, "profile": result.profile, "spec": dict(result.spec), "seed": result.seed,
        "order": result.order, "counts": dict(result.counts), "checksum": result.checksum,
        "timings": dict(result.timings), "from_cache": result.from_cache, "cache_key": result.cache_key,
        "created_at_correlation": result.created_at_correlation, "params": result.params.to_json(),
        "extra": dict(result.extra),
    }


def seed_result_from_json(data: Mapping[str, Any]) -> SeedResult:
    """The inverse of ``seed_result_to_json``."""
    return SeedResult(**{**data, "params": _params_from_json(data["params"])})
