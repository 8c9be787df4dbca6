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

from chatbench.errors import ChatbenchError
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.spec import Spec
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


def _hash_version(conn: psycopg.Connection, table: str, version_num: int) -> int:
    """``version_num``, or 0 (hash the row's text) when a column's type has no hash function (json, point...).

    A type hashes when a default hash opclass takes it, its domain's base type, or a type it is binary-
    coercible to (varchar uses text's): the same test ``hash_record_extended`` makes."""
    row = conn.execute(
        "SELECT count(*) FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0 "
        "AND NOT a.attisdropped AND NOT EXISTS (SELECT 1 FROM pg_opclass o JOIN pg_am m ON m.oid = o.opcmethod "
        "WHERE m.amname = 'hash' AND o.opcdefault AND (o.opcintype IN (a.atttypid, "
        "(SELECT t.typbasetype FROM pg_type t WHERE t.oid = a.atttypid)) OR EXISTS (SELECT 1 FROM pg_cast c "
        "WHERE c.castsource = a.atttypid AND c.casttarget = o.opcintype AND c.castmethod = 'b')))"
        " AND a.atttypid NOT IN (SELECT oid FROM pg_type WHERE typtype IN ('e', 'c') OR typcategory = 'A')",
        (table,),
    ).fetchone()
    return version_num if row is None or row[0] == 0 else 0


def _connect(conninfo: str) -> psycopg.Connection:
    conn = psycopg.connect(conninfo, autocommit=True)
    conn.execute(_STABLE_TEXT)
    conn.execute("SET work_mem = '256MB'")  # the conversations' hash table of the messages pass
    return conn


def _table_hash(conninfo: str, table: str, version_num: int) -> tuple[int, int]:
    with _connect(conninfo) as conn:
        version_num = _hash_version(conn, table, version_num)
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
    """The history's three tables, then any other table by name (a three-table schema keeps its checksum)."""
    order = [*TABLES, *sorted(t for t in hashes if t not in TABLES)]
    text = ";".join(f"{t}:{hashes[t][0]}:{hashes[t][1]}" for t in order)
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
        version_num = _hash_version(conn, "messages", version_num)
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
    whales: Mapping[int | str, int] | None = None,
    expected_checksum: str | None = None,
    raise_on_failure: bool = True,
    children: Mapping[str, int] | None = None,
) -> IntegrityReport:
    """Check the seeded database against ``spec`` (and the seed's whales and checksum if given).

    ``result`` (a ``SeedResult``) supplies both the whales and the expected checksum. ``whales``
    maps conversation id -> message count; without whales, the largest conversations must have the
    spec's whale sizes. ``children`` maps each table beyond the history's to the rows it must hold
    (default: those ``result`` counted); they are part of the checksum.

    The messages are read twice, concurrently: once in the heap (row count, content hash, orphans
    by a hash join with conversations) and once in the history index (per conversation: last
    created_at and order), instead of once per check.
    """
    if result is not None:
        whales = whales if whales is not None else {w.conversation_id: w.messages for w in result.params.whales}
        expected_checksum = expected_checksum if expected_checksum is not None else result.checksum
        if children is None:
            children = {t: n for t, n in result.counts.items() if t not in TABLES}
    children = dict(children or {})
    conninfo, version = server.conninfo(), server.version_num
    with ThreadPoolExecutor(5) as pool:
        child_hashes = {t: pool.submit(_table_hash, conninfo, f'"{t}"', version) for t in sorted(children)}
        heap = pool.submit(_messages_heap_pass, conninfo, version)
        index = pool.submit(_messages_index_pass, conninfo)
        small = {t: pool.submit(_table_hash, conninfo, t, version) for t in ("users", "conversations")}
        orphan_conversations = pool.submit(_orphan_conversations, conninfo)
        messages_hash, orphan_messages = heap.result()
        stale, disordered = index.result()
        hashes = {**{t: f.result() for t, f in small.items()}, "messages": messages_hash,
                  **{t: f.result() for t, f in child_hashes.items()}}
        bad = {
            ORPHAN_MESSAGES: orphan_messages,
            ORPHAN_CONVERSATIONS: orphan_conversations.result(),
            STALE_UPDATED_AT: stale,
            ORDER: disordered,
        }
    checksum = checksum_of(hashes)
    expected_counts = {
        "users": spec.users.count, "conversations": spec.conversations.count, "messages": spec.messages.count,
        **children,
    }
    checks = [
        IntegrityCheck(f"rows in {t}", hashes[t][0] == expected_counts[t], str(expected_counts[t]), str(hashes[t][0]))
        for t in expected_counts
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
            rows = conn.execute(  # keys compared as text: bigint, uuid and text keys alike
                "SELECT conversation_id::text, count(*) FROM messages WHERE conversation_id::text = ANY(%s) "
                "GROUP BY 1", ([str(k) for k in whales],),
            ).fetchall()
            found = {str(r[0]): int(r[1]) for r in rows}
            wanted = {str(k): int(v) for k, v in whales.items()}
            checks.append(IntegrityCheck("whale conversations and their sizes", found == wanted,
                                         _short(wanted), _short(found)))
        for table in TABLES:
            sequence = _sequence(conn, table)
            if sequence is None:
                continue  # a key the application generates (uuid, text): nothing to continue
            row = conn.execute(
                f"SELECT (SELECT coalesce(max(id), 0) FROM {table}), "
                f"(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                f"FROM {sequence})"
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


def _sequence(conn: psycopg.Connection, table: str) -> str | None:
    """The identity or serial sequence of ``table.id``; None when the key is not generated by one."""
    row = conn.execute(
        "SELECT pg_get_serial_sequence(%s, 'id') FROM pg_attribute a WHERE a.attrelid = %s::regclass "
        "AND a.attname = 'id' AND format_type(a.atttypid, NULL) IN ('bigint', 'integer', 'smallint')",
        (table, table),
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _short(mapping: Mapping[str, int]) -> str:
    items = sorted(mapping.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k}:{v}" for k, v in items[:5])
    return "{" + text + (", ..." if len(items) > 5 else "") + "}"
