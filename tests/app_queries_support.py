"""The application-query corpus (``tests/app_queries/``) seeded once per schema and server, and what a reviewer
expects of each query: the defect named, or no error (the fixed twins).

Each folder holds an application's ``schema.sql`` (its own migrations: other key types, ``json`` documents,
extra tables, partitions), ``queries.sql`` (its history queries, each defect beside its fixed twin
``NAME_fixed``) and, when its names are not chatbench's, a ``chatbench.toml`` whose ``[map]`` names its
tables and columns for the roles. ``seeded_schema`` builds the schema on a fresh database and fills it
through the map with the smoke profile (the cache keeps the seed between runs); ``seeded_app`` also judges
the queries once (``verify_app_queries``, proofs on).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import psycopg
from servers import drop_database, make_database

from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.schema.appqueries import AppQueries, load_queries
from chatbench.schema.rolemap import RoleMap, read_map
from chatbench.settings import read_file
from chatbench.verify.appcheck import AppVerification, verify_app_queries

CORPUS = Path(__file__).parent / "app_queries"
# The smoke profile (20k messages, whales of up to 2500): big enough that a Seq Scan is the planner's
# choice only when no index serves; the feedback table gets a row per message (a join child of weight).
OVERRIDES: Mapping[str, Mapping[str, Any]] = MappingProxyType({
    "chat_uuid": {"tables.message_feedback.per_parent": 1.0, "tables.attachments.per_parent": 0.3},
    "chat_tenant": {},
    "chat_partitioned": {},
    "ai_chatbot": {},
})
# query -> the defect a reviewer names (kind of the error finding); a query not listed must have no error.
DEFECTS: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "chat_uuid": {
        "feed_no_index": "no_index", "history_no_limit": "no_limit", "history_before_ts": "lost_rows",
        "history_offset": "offset_paging", "sync_by_day": "function_on_column",
        "mine_or_in_conversation": "or_across_columns", "page_with_feedback": "join_without_index",
        "count_user_messages": "count_all_history", "sidebar_by_title": "unbounded_sort",
    },
    "chat_tenant": {
        "history_numeric": "implicit_cast", "sidebar_all": "no_limit", "sync_inclusive": "repeated_rows",
        "tokens_of_user": "count_all_history",
    },
    "chat_partitioned": {"history_offset": "offset_paging", "history_lower_role": "function_on_column"},
    "ai_chatbot": {"messages_of_chat": "no_limit", "history_before": "lost_rows"},
})
# query -> the index proven on a copy of the database (its columns)
PROVEN: Mapping[str, Mapping[str, str]] = MappingProxyType({
    "chat_uuid": {"feed_no_index": "messages (user_id, created_at DESC, id DESC)",
                  "page_with_feedback": "message_feedback (message_id)",
                  "sidebar_by_title": "conversations (user_id, title)"},
    "chat_tenant": {},
    "chat_partitioned": {},
    "ai_chatbot": {},
})


@dataclass(frozen=True)
class SeededApp:
    name: str
    server: Server
    seed: SeedResult
    queries: AppQueries
    judged: AppVerification


def queries_of(name: str) -> AppQueries:
    return load_queries(CORPUS / name / "queries.sql")


def roles_of(name: str) -> RoleMap:
    """The folder's role map, read as ``chatbench`` run there reads it (the canonical names when it has none)."""
    return read_map(read_file(CORPUS / name).tables.get("map"))


@contextlib.contextmanager
def seeded_schema(pg: Server, name: str) -> Iterator[tuple[Server, SeedResult]]:
    """``name``'s schema built and seeded through its map on a database of ``pg`` (dropped afterwards)."""
    from chatbench.loadgen import load_spec, seed

    db = make_database(pg, "aq")
    owned = [db]
    try:
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute((CORPUS / name / "schema.sql").read_text())  # type: ignore[arg-type]
        result = seed(db, load_spec("smoke", overrides=dict(OVERRIDES[name])), progress=False, prebuilt=True,
                      roles=roles_of(name))
        server = result.server_for(db)
        if server is not db:
            owned.append(server)
        yield server, result
    finally:
        for database in owned:
            drop_database(database)


@contextlib.contextmanager
def seeded_app(pg: Server, name: str) -> Iterator[SeededApp]:
    """``name``'s schema built, seeded and its queries judged on a database of ``pg`` (dropped afterwards)."""
    with seeded_schema(pg, name) as (server, result):
        queries = queries_of(name)
        judged = verify_app_queries(server, result.params, queries, roles=roles_of(name), production_messages=1e8)
        yield SeededApp(name, server, result, queries, judged)
