"""Seeded rows loaded into a schema the application built its own way (``--schema-from``).

The loader creates its own canonical tables around the bulk load (it drops and recreates them), so
it cannot load *into* a pre-built schema. The data is therefore seeded into a canonical sibling
database on the same server and transplanted table by table with text COPY (column lists by name,
so a migration's column order or compatible type changes do not matter), with triggers and FK
checks off (``session_replication_role = replica``, the server is ours), then identity sequences are
moved past the copied ids and the tables analysed. Ids are copied verbatim, so the seed's scenario
parameters stay valid for the pre-built database.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import psycopg
from chatbench.loadgen.result import SeedResult
from psycopg import sql

from chatbench.errors import ProvisionError
from chatbench.provision import Server
from chatbench.provision.databases import temporary_database

TABLE_ORDER = ("users", "conversations", "messages")


def _columns(conn: psycopg.Connection[Any], table: str) -> list[str]:
    rows = conn.execute(
        "SELECT a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'public' AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped "
        "AND a.attgenerated = '' ORDER BY a.attnum",
        (table,),
    ).fetchall()
    return [r[0] for r in rows]


def transplant(source: Server, target: Server) -> dict[str, int]:
    """Copy the seeded rows of ``source`` into the pre-built tables of ``target``; rows per table."""
    target.require_destructive("load seeded rows")
    counts: dict[str, int] = {}
    with psycopg.connect(source.conninfo()) as src, psycopg.connect(target.conninfo()) as dst:
        dst.execute("SET session_replication_role = replica")
        for table in TABLE_ORDER:
            have, want = _columns(src, table), _columns(dst, table)
            if not want:
                raise ProvisionError(
                    f"--schema-from: the pre-built schema has no table {table!r}; cannot load the seed"
                )
            columns = [c for c in have if c in want]
            lacking = [c for c in want if c not in have]
            cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
            try:
                with (
                    src.cursor().copy(sql.SQL("COPY {} ({}) TO STDOUT").format(sql.Identifier(table), cols)) as out,
                    dst.cursor().copy(sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), cols)) as into,
                ):
                    for block in out:
                        into.write(block)
            except psycopg.Error as exc:
                extra = f" (columns only in the pre-built schema: {', '.join(lacking)})" if lacking else ""
                raise ProvisionError(
                    f"--schema-from: loading seeded {table} into the pre-built schema failed{extra}: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
            row = dst.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()
            counts[table] = int(row[0]) if row else 0
        for table in TABLE_ORDER:
            dst.execute(
                sql.SQL(
                    "SELECT setval(s, greatest((SELECT max(id) FROM {t}), 1)) "
                    "FROM pg_get_serial_sequence({name}, 'id') s WHERE s IS NOT NULL"
                ).format(t=sql.Identifier(table), name=sql.Literal(table))
            )
        dst.commit()
    with psycopg.connect(target.conninfo(), autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
    return counts


def seed_into_prebuilt(
    target: Server,
    seed: Callable[[Server], SeedResult],
    *,
    prefix: str,
    loading: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext,
) -> tuple[SeedResult, dict[str, int]]:
    """Fill ``target``'s pre-built schema: ``seed`` fills a canonical sibling database (named ``prefix``...,
    dropped on every way out), whose rows are transplanted into ``target`` under ``loading`` (a progress
    display). Returns the seed, now describing ``target``, and the rows per table."""
    with temporary_database(target, prefix) as sibling:
        result = seed(sibling)
        with loading():
            counts = transplant(result.server_for(sibling), target)
    return replace(result, database=target.database), counts
