"""What the database holds after a seed, checked in the database: checksum and integrity.

The checksum is a per-table (row count, sum of 64-bit hashes of each row's text) combined into one
hex digest: a sum does not depend on physical row order, so it is equal whatever the number of
workers that loaded the rows, and PostgreSQL computes it with a parallel scan. Rows are rendered
with a fixed ``TimeZone`` and ``DateStyle`` so the text of a timestamp is stable.

``check_integrity`` verifies what a seed promises: row counts equal the spec's, no orphan rows,
every conversation's ``updated_at`` is its last message's ``created_at``, the whales exist with their
sizes, within a conversation (created_at, id) order equals id order, identity sequences continue
after the data, and (when given) the checksum matches. Any failure raises ``IntegrityError``. The
big table is read once in its heap and once in its history index, whatever the number of checks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.spec import Spec

from chatbench.errors import ChatbenchError
from chatbench.provision.server import Server

TABLES = ("users", "conversations", "messages")
_STABLE_TEXT = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'postgres'"


class IntegrityError(ChatbenchError):
    """The seeded database does not hold what the spec promises."""


@dataclass(frozen=True)
class IntegrityCheck:
    name: str
    ok: bool
    expected: str
    actual: str


@dataclass(frozen=True)
class IntegrityReport:
    database: str
    checks: tuple[IntegrityCheck, ...]
    checksum: str

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> tuple[IntegrityCheck, ...]:
        return tuple(c for c in self.checks if not c.ok)

    def summary(self) -> str:
        if self.ok:
            return f"integrity OK ({len(self.checks)} checks) on {self.database}"
        first = self.failures[0]
        return (
            f"integrity FAILED on {self.database}: {len(self.failures)} of {len(self.checks)} checks; "
            f"first: {first.name} expected {first.expected}, got {first.actual}"
        )


def _row_hash(version_num: int, alias: str) -> str:
    # hash_record_extended (PG 14+) hashes the typed columns: twice as fast as hashing the row's text.
    return f"hash_record_extended({alias}, 0)" if version_num >= 140000 else f"hashtextextended({alias}::text, 0)"


def _connect(conninfo: str) -> psycopg.Connection:
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(_STABLE_TEXT)
    conn.execute("SET work_mem = '256MB'")  # the conversations' hash table of the messages pass
    return conn


def _table_hash(conninfo: str, table: str, version_num: int) -> tuple[int, int]:
    with _connect(conninfo) as conn:
        row = conn.execute(
            f"SELECT count(*), coalesce(sum({_row_hash(version_num, 't')}), 0)::text FROM {table} t"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def table_hashes(conninfo: str, version_num: int = 140000) -> dict[str, tuple[int, int]]:
    """(rows, hash sum) per table, the tables scanned concurrently."""
    with ThreadPoolExecutor(len(TABLES)) as pool:
        futures = {t: pool.submit(_table_hash, conninfo, t, version_num) for t in TABLES}
        return {t: f.result() for t, f in futures.items()}


def checksum_of(hashes: Mapping[str, tuple[int, int]]) -> str:
    text = ";".join(f"{t}:{hashes[t][0]}:{hashes[t][1]}" for t in TABLES)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def content_checksum(server: Server) -> str:
    return checksum_of(table_hashes(server.conninfo(), server.version_num))


ORPHAN_MESSAGES = "orphan messages (no conversation, or user differs from its owner)"
ORPHAN_CONVERSATIONS = "orphan conversations (no user)"
STALE_UPDATED_AT = "conversations whose updated_at is not their last message's created_at"
ORDER = "messages whose (created_at, id) order differs from id order"


def _messages_heap_pass(conninfo: str, version_num: int) -> tuple[tuple[int, int], int]:
    """One scan of the messages' heap: (rows, hash sum) and the orphan count, joined as it goes."""
    with _connect(conninfo) as conn:
        row = conn.execute(
            f"SELECT count(*), coalesce(sum({_row_hash(version_num, 'm')}), 0)::text, "
            "count(*) FILTER (WHERE c.user_id IS DISTINCT FROM m.user_id) "
            "FROM messages m LEFT JOIN conversations c ON c.id = m.conversation_id"
        ).fetchone()
        assert row is not None
        return (int(row[0]), int(row[1])), int(row[2])


def _messages_index_pass(conninfo: str) -> tuple[int, int]:
    """One ordered pass over the history index (an index-only scan, no sort): stale updated_at, bad order.

    Per conversation, in (created_at, id) order: the last created_at (compared with the conversation's
    updated_at) and the messages whose id is lower than the one before them.
    """
    with _connect(conninfo) as conn:
        row = conn.execute(
            """SELECT count(*) FILTER (WHERE s.last IS DISTINCT FROM c.updated_at), coalesce(sum(s.bad), 0)
               FROM conversations c LEFT JOIN (
                   SELECT conversation_id, max(created_at) AS last, count(*) FILTER (WHERE bad) AS bad FROM (
                       SELECT conversation_id, created_at, id < lag(id) OVER w AS bad FROM messages
                       WINDOW w AS (PARTITION BY conversation_id ORDER BY created_at, id)) x
                   GROUP BY conversation_id) s ON s.conversation_id = c.id"""
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


def _orphan_conversations(conninfo: str) -> int:
    with _connect(conninfo) as conn:
        row = conn.execute(
            "SELECT count(*) FROM conversations c LEFT JOIN users u ON u.id = c.user_id WHERE u.id IS NULL"
        ).fetchone()
        return int(row[0]) if row else -1


def check_integrity(
    server: Server,
    spec: Spec,
    *,
    result: SeedResult | None = None,
    whales: Mapping[int, int] | None = None,
    expected_checksum: str | None = None,
    raise_on_failure: bool = True,
) -> IntegrityReport:
    """Check the seeded database against ``spec`` (and the seed's whales and checksum if given).

    ``result`` (a ``SeedResult``) supplies both the whales and the expected checksum. ``whales``
    maps conversation id -> message count; without whales, the largest conversations must have the
    spec's whale sizes.

    The messages are read twice, concurrently: once in the heap (row count, content hash, orphans
    by a hash join with conversations) and once in the history index (per conversation: last
    created_at and order), instead of once per check.
    """
    if result is not None:
        whales = whales if whales is not None else {w.conversation_id: w.messages for w in result.params.whales}
        expected_checksum = expected_checksum if expected_checksum is not None else result.checksum
    conninfo, version = server.conninfo(), server.version_num
    with ThreadPoolExecutor(5) as pool:
        heap = pool.submit(_messages_heap_pass, conninfo, version)
        index = pool.submit(_messages_index_pass, conninfo)
        small = {t: pool.submit(_table_hash, conninfo, t, version) for t in ("users", "conversations")}
        orphan_conversations = pool.submit(_orphan_conversations, conninfo)
        messages_hash, orphan_messages = heap.result()
        stale, disordered = index.result()
        hashes = {**{t: f.result() for t, f in small.items()}, "messages": messages_hash}
        bad = {
            ORPHAN_MESSAGES: orphan_messages,
            ORPHAN_CONVERSATIONS: orphan_conversations.result(),
            STALE_UPDATED_AT: stale,
            ORDER: disordered,
        }
    checksum = checksum_of(hashes)
    expected_counts = {
        "users": spec.users.count, "conversations": spec.conversations.count, "messages": spec.messages.count,
    }
    checks = [
        IntegrityCheck(f"rows in {t}", hashes[t][0] == expected_counts[t], str(expected_counts[t]), str(hashes[t][0]))
        for t in TABLES
    ]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name, count in bad.items():
            checks.append(IntegrityCheck(name, count == 0, "0", str(count)))
        sizes = spec.whale_sizes()
        if whales is None:
            rows = conn.execute(
                "SELECT count(*) FROM messages GROUP BY conversation_id ORDER BY 1 DESC LIMIT %s", (len(sizes),)
            ).fetchall()
            actual = [int(r[0]) for r in rows]
            checks.append(IntegrityCheck("largest conversations are the spec's whales", actual == list(sizes),
                                         str(list(sizes)), str(actual)))
        else:
            rows = conn.execute(
                "SELECT conversation_id, count(*) FROM messages WHERE conversation_id = ANY(%s) GROUP BY 1",
                (list(whales),),
            ).fetchall()
            found = {int(r[0]): int(r[1]) for r in rows}
            wanted = {int(k): int(v) for k, v in whales.items()}
            checks.append(IntegrityCheck("whale conversations and their sizes", found == wanted,
                                         _short(wanted), _short(found)))
        for table in TABLES:
            row = conn.execute(
                f"SELECT (SELECT coalesce(max(id), 0) FROM {table}), "
                f"(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                f"FROM {_sequence(conn, table)})"
            ).fetchone()
            assert row is not None
            checks.append(IntegrityCheck(f"{table} identity sequence continues after max(id)",
                                         int(row[1]) >= int(row[0]), f">= {row[0]}", str(row[1])))
    if expected_checksum is not None:
        checks.append(IntegrityCheck("content checksum", checksum == expected_checksum, expected_checksum, checksum))
    report = IntegrityReport(server.database, tuple(checks), checksum)
    if raise_on_failure and not report.ok:
        raise IntegrityError(report.summary())
    return report


def _sequence(conn: psycopg.Connection, table: str) -> str:
    row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
    if row is None or row[0] is None:
        raise IntegrityError(f"table {table} has no identity sequence on id (was the schema changed?)")
    return str(row[0])


def _short(mapping: Mapping[int, int]) -> str:
    items = sorted(mapping.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k}:{v}" for k, v in items[:5])
    return "{" + text + (", ..." if len(items) > 5 else "") + "}"
