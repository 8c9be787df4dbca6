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
The tables and columns are the ones playing the roles (the role map, as the seed filled them); a check
about a column the application lacks (no ``updated_at``, no owner on messages) is not made: verify
names the contract the schema breaks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psycopg

from chatbench.errors import ChatbenchError
from chatbench.loadgen.ddl import quoted
from chatbench.loadgen.result import SeedResult
from chatbench.loadgen.spec import Spec
from chatbench.loadgen.target import read_target
from chatbench.provision.server import Server
from chatbench.schema.rolemap import CANONICAL, ROLE_TABLES, RoleMap

TABLES = ROLE_TABLES  # the history's tables by role, in the checksum's order
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


@dataclass(frozen=True)
class HistoryNames:
    """The history's tables and columns as the schema spells them, quoted for SQL (read through the role map)."""

    tables: Mapping[str, str]  # role -> quoted table
    columns: Mapping[tuple[str, str], str]  # (role, canonical column) -> quoted column, for the columns it has
    labels: Mapping[str, str]  # role -> the table's name as the catalog spells it (for check names)

    def column(self, role: str, canonical: str) -> str | None:
        return self.columns.get((role, canonical))

    def need(self, role: str, canonical: str) -> str:
        found = self.column(role, canonical)
        if found is None:  # the seed refuses such a schema before loading it (``layout``)
            raise IntegrityError(f"{self.labels[role]} has no column playing {role}.{canonical}")
        return found


def history_names(conninfo: str, roles: RoleMap = CANONICAL) -> HistoryNames:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        target = read_target(conn, roles=roles)
    tables = {role: target.role(role) for role in TABLES}
    return HistoryNames(
        {role: quoted(t.name) for role, t in tables.items()},
        {(role, canonical): quoted(name) for role, t in tables.items() for canonical, name in t.role_columns.items()},
        {role: t.name for role, t in tables.items()},
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


def _messages_heap_pass(conninfo: str, version_num: int, names: HistoryNames) -> tuple[tuple[int, int], int]:
    """One scan of the messages' heap: (rows, hash sum) and the orphan count, joined as it goes (a message
    without a conversation, or whose owner is not its conversation's when both tables have an owner)."""
    m, c = names.tables["messages"], names.tables["conversations"]
    conv_id, key = names.need("conversations", "id"), names.need("messages", "conversation_id")
    owner, conv_owner = names.column("messages", "user_id"), names.column("conversations", "user_id")
    orphan = f"c.{conv_owner} IS DISTINCT FROM m.{owner}" if owner and conv_owner else f"c.{conv_id} IS NULL"
    with _connect(conninfo) as conn:
        version_num = _hash_version(conn, m, version_num)
        row = conn.execute(
            f"SELECT count(*), coalesce(sum({_row_hash(version_num, 'm')}), 0)::text, "
            f"count(*) FILTER (WHERE {orphan}) "
            f"FROM {m} m LEFT JOIN {c} c ON c.{conv_id} = m.{key}"
        ).fetchone()
        assert row is not None
        return (int(row[0]), int(row[1])), int(row[2])


def _messages_index_pass(conninfo: str, names: HistoryNames) -> tuple[int | None, int]:
    """One ordered pass over the history index (an index-only scan, no sort): stale updated_at, bad order.

    Per conversation, in (created_at, id) order: the last created_at (compared with the conversation's
    updated_at; None when conversations have no column playing it) and the messages whose id is lower
    than the one before them.
    """
    m, c = names.tables["messages"], names.tables["conversations"]
    conv_id, updated = names.need("conversations", "id"), names.column("conversations", "updated_at")
    key, at, mid = (names.need("messages", col) for col in ("conversation_id", "created_at", "id"))
    stale = f"count(*) FILTER (WHERE s.last IS DISTINCT FROM c.{updated})" if updated else "NULL"
    with _connect(conninfo) as conn:
        row = conn.execute(
            f"""SELECT {stale}, coalesce(sum(s.bad), 0)
               FROM {c} c LEFT JOIN (
                   SELECT conversation_id, max(created_at) AS last, count(*) FILTER (WHERE bad) AS bad FROM (
                       SELECT {key} AS conversation_id, {at} AS created_at, {mid} < lag({mid}) OVER w AS bad FROM {m}
                       WINDOW w AS (PARTITION BY {key} ORDER BY {at}, {mid})) x
                   GROUP BY conversation_id) s ON s.conversation_id = c.{conv_id}"""
        ).fetchone()
        assert row is not None
        return None if row[0] is None else int(row[0]), int(row[1])


def _orphan_conversations(conninfo: str, names: HistoryNames) -> int | None:
    """Conversations whose owner is no user (None when conversations have no column playing the owner)."""
    owner = names.column("conversations", "user_id")
    if owner is None:
        return None
    user_id = names.need("users", "id")
    with _connect(conninfo) as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {names.tables['conversations']} c LEFT JOIN {names.tables['users']} u "
            f"ON u.{user_id} = c.{owner} WHERE u.{user_id} IS NULL"
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
    roles: RoleMap = CANONICAL,
) -> IntegrityReport:
    """Check the seeded database against ``spec`` (and the seed's whales and checksum if given).

    ``result`` (a ``SeedResult``) supplies both the whales and the expected checksum. ``whales``
    maps conversation id -> message count; without whales, the largest conversations must have the
    spec's whale sizes. ``children`` maps each table beyond the history's to the rows it must hold
    (default: those ``result`` counted); they are part of the checksum. ``roles`` is the map the seed
    filled the application's tables through.

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
    names = history_names(conninfo, roles)
    messages, conversation_key = names.tables["messages"], names.need("messages", "conversation_id")
    with ThreadPoolExecutor(5) as pool:
        child_hashes = {t: pool.submit(_table_hash, conninfo, quoted(t), version) for t in sorted(children)}
        heap = pool.submit(_messages_heap_pass, conninfo, version, names)
        index = pool.submit(_messages_index_pass, conninfo, names)
        small = {t: pool.submit(_table_hash, conninfo, names.tables[t], version) for t in ("users", "conversations")}
        orphan_conversations = pool.submit(_orphan_conversations, conninfo, names)
        messages_hash, orphan_messages = heap.result()
        stale, disordered = index.result()
        hashes = {**{t: f.result() for t, f in small.items()}, "messages": messages_hash,
                  **{t: f.result() for t, f in child_hashes.items()}}
        counted = {
            ORPHAN_MESSAGES: orphan_messages,
            ORPHAN_CONVERSATIONS: orphan_conversations.result(),
            STALE_UPDATED_AT: stale,
            ORDER: disordered,
        }
        bad = {name: count for name, count in counted.items() if count is not None}  # None: a column it lacks
    checksum = checksum_of(hashes)
    expected_counts = {
        "users": spec.users.count, "conversations": spec.conversations.count, "messages": spec.messages.count,
        **children,
    }
    checks = [
        IntegrityCheck(f"rows in {names.labels.get(t, t)}", hashes[t][0] == expected_counts[t],
                       str(expected_counts[t]), str(hashes[t][0]))
        for t in expected_counts
    ]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for name, count in bad.items():
            checks.append(IntegrityCheck(name, count == 0, "0", str(count)))
        sizes = spec.whale_sizes()
        if whales is None:
            rows = conn.execute(
                f"SELECT count(*) FROM {messages} GROUP BY {conversation_key} ORDER BY 1 DESC LIMIT %s", (len(sizes),)
            ).fetchall()
            actual = [int(r[0]) for r in rows]
            checks.append(IntegrityCheck("largest conversations are the spec's whales", actual == list(sizes),
                                         str(list(sizes)), str(actual)))
        else:
            rows = conn.execute(  # keys compared as text: bigint, uuid and text keys alike
                f"SELECT {conversation_key}::text, count(*) FROM {messages} WHERE {conversation_key}::text = ANY(%s) "
                "GROUP BY 1", ([str(k) for k in whales],),
            ).fetchall()
            found = {str(r[0]): int(r[1]) for r in rows}
            wanted = {str(k): int(v) for k, v in whales.items()}
            checks.append(IntegrityCheck("whale conversations and their sizes", found == wanted,
                                         _short(wanted), _short(found)))
        for role in TABLES:
            table, key = names.tables[role], names.need(role, "id")
            sequence = _sequence(conn, table, key)
            if sequence is None:
                continue  # a key the application generates (uuid, text): nothing to continue
            row = conn.execute(
                f"SELECT (SELECT coalesce(max({key}), 0) FROM {table}), "
                f"(SELECT CASE WHEN is_called THEN last_value ELSE last_value - 1 END "
                f"FROM {sequence})"
            ).fetchone()
            assert row is not None
            checks.append(IntegrityCheck(f"{names.labels[role]} identity sequence continues after max(id)",
                                         int(row[1]) >= int(row[0]), f">= {row[0]}", str(row[1])))
    if expected_checksum is not None:
        checks.append(IntegrityCheck("content checksum", checksum == expected_checksum, expected_checksum, checksum))
    report = IntegrityReport(server.database, tuple(checks), checksum)
    if raise_on_failure and not report.ok:
        raise IntegrityError(report.summary())
    return report


def _sequence(conn: psycopg.Connection, table: str, key: str) -> str | None:
    """The identity or serial sequence of the key column (both quoted); None when no sequence generates it."""
    column = key[1:-1].replace('""', '"')  # pg_get_serial_sequence takes the column's name as it is spelt
    row = conn.execute(
        "SELECT pg_get_serial_sequence(%s, %s) FROM pg_attribute a WHERE a.attrelid = %s::regclass "
        "AND a.attname = %s AND format_type(a.atttypid, NULL) IN ('bigint', 'integer', 'smallint')",
        (table, column, table, column),
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _short(mapping: Mapping[str, int]) -> str:
    items = sorted(mapping.items(), key=lambda kv: -kv[1])
    text = ", ".join(f"{k}:{v}" for k, v in items[:5])
    return "{" + text + (", ..." if len(items) > 5 else "") + "}"
