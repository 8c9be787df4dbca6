"""``verify --url`` on a database another role owns, as a role that may only read: it works, writes nothing.

The live database is created and owned by ``cbv_owner``; the harness connects as ``cbv_reader``, which
has CONNECT, USAGE on the schema and SELECT on the tables, nothing else. Proof that nothing was
written: ``pg_stat_database``'s tuple counters (inserted, updated, deleted: a rolled-back insert counts
there too) and every sequence's value are the same after the run, and no database, table or function
appeared on that server. The transaction counters cannot stand still, and the test pins down why:
``xact_commit`` grows because every read-only statement commits a read-only transaction, and
``xact_rollback`` grows by exactly one, the read-only snapshot transaction of ``pg_dump --schema-only``,
which pg_dump ends by disconnecting rather than by COMMIT (measured: pg_dump alone adds exactly that one).
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from verify_fixtures import seed_database

from chatbench.cli import main
from chatbench.provision import Server
from chatbench.provision.databases import drop_database

OWNER, READER = "cbv_owner", "cbv_reader"
WRITE_COUNTERS = ("tup_inserted", "tup_updated", "tup_deleted")
XACT_COUNTERS = ("xact_commit", "xact_rollback")


@pytest.fixture(scope="module")
def live(pg: Server) -> Iterator[tuple[Server, str]]:
    """A seeded database owned by another role, and a libpq URL of a read-only role for it."""
    password = secrets.token_hex(8)
    name = f"vro_{secrets.token_hex(4)}"
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as admin:
        for role in (OWNER, READER):
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(role), sql.Literal(password))
            )
        admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(name), sql.Identifier(OWNER)))
    db = pg.with_database(name, owns_database=True)
    try:
        seed_database(db, "smoke")
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER SCHEMA public OWNER TO {}").format(sql.Identifier(OWNER)))
            for table in ("users", "conversations", "messages"):
                conn.execute(sql.SQL("ALTER TABLE {} OWNER TO {}").format(sql.Identifier(table), sql.Identifier(OWNER)))
            for (function,) in conn.execute(
                "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
                "WHERE n.nspname = 'public'"
            ).fetchall():
                conn.execute(f"ALTER FUNCTION {function} OWNER TO {OWNER}".encode())
            conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(sql.Identifier(name)))
            conn.execute(
                sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(name), sql.Identifier(READER))
            )
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(sql.Identifier(READER)))
            conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(sql.Identifier(READER)))
        reader = db.url.set(drivername="postgresql", username=READER, password=password)
        yield db, reader.render_as_string(hide_password=False)
    finally:
        drop_database(db)
        with psycopg.connect(pg.admin_conninfo(), autocommit=True) as admin:
            for role in (READER, OWNER):
                admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def _settled(db: Server) -> dict[str, Any]:
    """The database's counters and sequences once no other session of it is left (exit flushes stats)."""
    with psycopg.connect(db.admin_conninfo(), autocommit=True) as conn:
        for _ in range(200):
            others = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (db.database,)
            ).fetchone()
            if others == (0,):
                break
            time.sleep(0.05)
        conn.execute("SET stats_fetch_consistency = none")
        counters = conn.execute(
            sql.SQL("SELECT {} FROM pg_stat_database WHERE datname = %s").format(
                sql.SQL(", ").join(sql.Identifier(c) for c in (*XACT_COUNTERS, *WRITE_COUNTERS))
            ),
            (db.database,),
        ).fetchone()
        databases = conn.execute("SELECT array_agg(datname ORDER BY datname) FROM pg_database").fetchone()
    assert counters is not None and databases is not None
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        sequences = conn.execute(
            "SELECT array_agg(sequencename || '=' || coalesce(last_value::text, 'NULL') ORDER BY sequencename) "
            "FROM pg_sequences"
        ).fetchone()
        objects = conn.execute(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "        WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')), "
            "       (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "        WHERE n.nspname = 'public')"
        ).fetchone()
    return {
        **dict(zip((*XACT_COUNTERS, *WRITE_COUNTERS), counters, strict=True)),
        "sequences": sequences,
        "databases": databases,
        "objects": objects,
    }


def test_url_as_a_read_only_role_works_and_writes_nothing(live: tuple[Server, str], tmp_path: Path) -> None:
    db, reader_url = live
    with psycopg.connect(reader_url, autocommit=True) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("INSERT INTO users (email, display_name) VALUES ('x@y.invalid', 'x')")
    before = _settled(db)
    out = tmp_path / "result.json"
    assert main(["verify", "--url", reader_url, "--json", str(out)]) == 0
    after = _settled(db)
    data = json.loads(out.read_text())
    assert data["passed"] and data["read_only"], [f for f in data["findings"] if f["severity"] == "error"]
    assert "schema-only copy" in data["probes_site"] and "nothing was written to the live server" in data["probes_site"]
    assert all(c["passed"] for c in data["checks"] if c["name"].startswith("drift.behaviour."))
    for counter in (*WRITE_COUNTERS, "sequences", "databases", "objects"):
        assert after[counter] == before[counter], counter
    assert after["xact_commit"] > before["xact_commit"], "the read-only run's transactions were counted"
    assert after["xact_rollback"] == before["xact_rollback"] + 1, "only pg_dump's read-only snapshot, no probe"


def test_url_missing_table_fails_with_one_line_per_finding(live: tuple[Server, str], tmp_path: Path) -> None:
    """A live database missing a table: verified, fails (exit 1); one line says why the probes did not run."""
    db, reader_url = live
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        conn.execute("BEGIN")
        conn.execute("ALTER TABLE messages RENAME TO messages_gone")
        conn.execute("COMMIT")
    try:
        out = tmp_path / "result.json"
        assert main(["verify", "--url", reader_url, "--json", str(out)]) == 1
    finally:
        with psycopg.connect(db.conninfo(), autocommit=True) as conn:
            conn.execute("ALTER TABLE messages_gone RENAME TO messages")
    findings = json.loads(out.read_text())["findings"]
    errors = {(f["kind"], f["object"]) for f in findings if f["severity"] == "error"}
    assert ("missing_table", "messages") in errors
    not_run = [f for f in findings if f["kind"] == "probes_not_run"]
    assert len(not_run) == 1 and "messages." in not_run[0]["actual"]


@pytest.mark.pg15
def test_a_server_newer_than_pg_dump_is_refused_with_the_remedy(live: tuple[Server, str]) -> None:
    """pg_dump must be at least the dumped server's major version: said before anything runs, exit 2."""
    from servers import DEBIAN_PG15

    from chatbench.errors import ChatbenchError
    from chatbench.provision.binaries import resolve_binaries
    from chatbench.verify.sites import dump_schema

    db, _ = live
    with pytest.raises(ChatbenchError, match=r"give --pg-bin with PostgreSQL 18\+ binaries"):
        dump_schema(db, resolve_binaries(DEBIAN_PG15), "public")
