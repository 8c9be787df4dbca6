"""What an extra index costs the canonical write path, measured on the schema-only copy.

An index the canonical schema does not have is harmless to the reads (the plan contracts judge them)
but every write maintains it. For indexes on ``messages`` and ``conversations`` the cost that matters
is that of one ``append_message`` (which also moves ``conversations.updated_at`` through the trigger,
so an index on ``conversations`` is paid on every append too). It is measured as the WAL one append
writes, with the index and with it dropped: WAL is what a write costs the primary's disk, the
replicas and the backups, and for one row it is deterministic, unlike its time.

How: on the schema-only copy (never among real rows), in one transaction that is rolled back, a probe
user and conversation are inserted; the WAL of one append is the difference of
``pg_current_wal_insert_lsn()`` around it, taken as the least of a few appends after two warm-up
appends (the first change of a page after a checkpoint writes the whole page; the least is the
steady state). Each extra index is dropped in a savepoint, measured without, and restored by the
savepoint's rollback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import psycopg
from psycopg import sql

from chatbench.schema.behaviour import CONVERSATION, USER, canonical_step, probe_bindings
from chatbench.verify.catalog import IndexFact
from chatbench.verify.context import VerificationContext
from chatbench.verify.judge import schema_copy
from chatbench.verify.probes import PROBE_STATEMENT_TIMEOUT_MS, free_ids

_MEMO = "append_costs"
WARM_UP = 2
SAMPLES = 3
_APPEND = canonical_step("append_message", "appending a message", role="'user'", content="'a message of a few words'")


@dataclass(frozen=True)
class AppendCost:
    """WAL bytes of one ``append_message`` with the index in place and with it dropped."""

    index: str
    table: str
    wal_bytes_with: int
    wal_bytes_without: int

    @property
    def extra_bytes(self) -> int:
        return self.wal_bytes_with - self.wal_bytes_without

    def describe(self) -> str:
        return (
            f"one append_message writes {self.wal_bytes_with} WAL bytes with it, {self.wal_bytes_without} without "
            f"(+{self.extra_bytes} bytes, {self.extra_bytes / max(self.wal_bytes_without, 1):.0%}; "
            "measured on the schema-only copy)"
        )


def _wal_of_append(conn: psycopg.Connection[Any], binds: dict[str, Any]) -> int:
    samples = []
    for i in range(WARM_UP + SAMPLES):
        before = conn.execute("SELECT pg_current_wal_insert_lsn()::text").fetchone()
        conn.execute(_APPEND.sql.encode(), binds)
        diff = conn.execute(
            "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s::pg_lsn)", (before[0] if before else None,)
        ).fetchone()
        if i >= WARM_UP and diff is not None:
            samples.append(int(diff[0]))
    return min(samples)


def append_costs(ctx: VerificationContext, indexes: Sequence[IndexFact]) -> Mapping[str, AppendCost]:
    """The append cost of each of ``indexes`` (measured once per verification; empty when none is given)."""
    cached = ctx.memo.get(_MEMO)
    if isinstance(cached, Mapping):
        return cached
    costs: dict[str, AppendCost] = {}
    if indexes:
        copy = schema_copy(ctx)
        with (
            psycopg.connect(copy.server.conninfo(), autocommit=True, application_name="chatbench-costs") as conn,
            conn.transaction(force_rollback=True),
        ):
            conn.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(ctx.schema_name)))
            conn.execute(
                sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(PROBE_STATEMENT_TIMEOUT_MS))
            )
            binds: dict[str, Any] = {**probe_bindings(), **free_ids(conn)}
            for step in (USER, CONVERSATION):
                conn.execute(step.sql.encode(), binds)
            with_all = _wal_of_append(conn, binds)
            for index in indexes:
                with conn.transaction(force_rollback=True):
                    conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(index.name)))
                    without = _wal_of_append(conn, binds)
                costs[index.name] = AppendCost(index.name, index.table, with_all, without)
    result = MappingProxyType(costs)
    ctx.memo[_MEMO] = result
    return result
