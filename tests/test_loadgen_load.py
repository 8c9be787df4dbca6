"""The load's own guarantees: foreign keys proven (or validated), COPY FREEZE's visibility, both paths equal."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

import psycopg
import pytest
from servers import drop_database, make_database

from chatbench import loadgen
from chatbench.loadgen.ddl import load_ddl
from chatbench.loadgen.integrity import IntegrityError
from chatbench.loadgen.seeder import _prove_foreign_keys
from chatbench.provision import Server

MESSAGE = "INSERT INTO messages (id, conversation_id, user_id, role, content) VALUES (%s, %s, %s, 'user', 'x')"


def _rows(
    db: Server, users: list[int], conversations: list[tuple[int, int]], messages: list[tuple[int, int, int]]
) -> None:
    """Rows written as the loader writes them: in replica mode, no foreign-key trigger fires."""
    with psycopg.connect(db.conninfo()) as conn:
        conn.execute("SET session_replication_role = replica")
        for uid in users:
            conn.execute("INSERT INTO users (id, email, display_name) VALUES (%s, %s, 'n')", (uid, f"u{uid}@x"))
        for cid, uid in conversations:
            conn.execute("INSERT INTO conversations (id, user_id) VALUES (%s, %s)", (cid, uid))
        for row in messages:
            conn.execute(MESSAGE, row)


def _constraints(db: Server) -> set[str]:
    with psycopg.connect(db.conninfo()) as conn:
        rows = conn.execute("SELECT conname FROM pg_constraint WHERE contype = 'f'").fetchall()
    return {r[0] for r in rows}


@pytest.mark.parametrize(
    ("users", "conversations", "messages", "violated"),
    [
        # Dense ids, references inside their range: proven from the index endpoints alone.
        ([1, 2, 3], [(1, 1), (2, 3)], [(1, 1, 1), (2, 2, 3), (3, 2, 3)], None),
        # A message whose conversation is past the last one.
        ([1, 2], [(1, 1), (2, 2)], [(1, 1, 1), (2, 3, 2)], "fk_messages_conversation_id_conversations"),
        # A message of a user who does not exist (below the first id).
        ([2, 3], [(1, 2)], [(1, 1, 0)], "fk_messages_user_id_users"),
        # Ids with a gap: not provable from the range; the anti-join finds the references valid.
        ([1, 5], [(1, 1), (4, 5)], [(1, 1, 1), (2, 4, 5)], None),
        # Ids with a gap and a message pointing into it: the anti-join finds it.
        ([1, 2], [(1, 1), (4, 2)], [(1, 1, 1), (2, 3, 1)], "fk_messages_conversation_id_conversations"),
    ],
)
def test_foreign_keys_loaded_without_triggers_are_proven_or_the_seed_fails(
    schema_db: Server,
    users: list[int],
    conversations: list[tuple[int, int]],
    messages: list[tuple[int, int, int]],
    violated: str | None,
) -> None:
    _rows(schema_db, users, conversations, messages)
    with psycopg.connect(schema_db.conninfo(), autocommit=True) as conn:
        keys = load_ddl(conn).kept_foreign_keys["messages"]
        if violated is None:
            _prove_foreign_keys(conn, keys)
            assert {k.name for k in keys} <= _constraints(schema_db)
        else:
            with pytest.raises(IntegrityError, match=violated):
                _prove_foreign_keys(conn, keys)
            assert violated not in _constraints(schema_db)  # a key the data breaks does not stay declared


@pytest.fixture
def plain_role_db(pg: Server) -> Iterator[Server]:
    """A database owned by a role that is not superuser: it cannot load with triggers off."""
    role = f"cb_plain_{secrets.token_hex(3)}"
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN")
    db = make_database(pg, "plain")
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE {db.database} OWNER TO {role}")
    with psycopg.connect(db.conninfo(), autocommit=True) as conn:
        conn.execute(f"ALTER SCHEMA public OWNER TO {role}")
    try:
        yield replace(db, url=db.url.set(username=role))
    finally:
        drop_database(db)
        with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {role}")


def test_without_superuser_the_keys_are_validated_and_the_data_is_the_same(
    plain_role_db: Server, fresh_db: Server
) -> None:
    spec = loadgen.load_spec("smoke", overrides={"messages.count": 8000, "conversations.count": 500})
    plain = loadgen.seed(plain_role_db, spec, seed=5, use_cache=False, progress=False)
    proven = loadgen.seed(fresh_db, spec, seed=5, use_cache=False, progress=False)
    assert plain.extra["foreign_keys"] == "validated" and proven.extra["foreign_keys"] == "proven"
    assert plain.checksum == proven.checksum and plain.params == proven.params
    with psycopg.connect(plain_role_db.conninfo()) as conn:
        valid = conn.execute(
            "SELECT bool_and(convalidated), count(*) FROM pg_constraint WHERE contype = 'f'").fetchone()
    assert valid == (True, 3)


def test_copy_freeze_leaves_every_page_visible_and_rows_in_id_order(fresh_db: Server) -> None:
    """Index-only scans need relallvisible = relpages; the single stream writes ids in physical order."""
    spec = loadgen.load_spec("smoke", overrides={"messages.count": 8000, "conversations.count": 500})
    loadgen.seed(fresh_db, spec, seed=6, use_cache=False, progress=False)
    with psycopg.connect(fresh_db.conninfo()) as conn:
        for table in ("users", "conversations", "messages"):
            pages, visible = conn.execute(
                "SELECT relpages, relallvisible FROM pg_class WHERE relname = %s", (table,)).fetchone() or (0, -1)
            assert pages > 0 and visible == pages, table
        out_of_order = conn.execute(
            "SELECT count(*) FROM (SELECT id < lag(id) OVER (ORDER BY ctid) AS back FROM messages) x WHERE back"
        ).fetchone()
        assert out_of_order == (0,)
        conn.execute("SET enable_seqscan = off")  # a small table: make the planner show the index-only scan
        plan = "\n".join(r[0] for r in conn.execute("EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM messages"))
        assert "Index Only Scan" in plan and "Heap Fetches: 0" in plan, plan


def test_maintenance_budget_shares_cores_and_memory_between_concurrent_builds() -> None:
    from chatbench.loadgen.ddl import MaintenanceBudget

    two_cores = MaintenanceBudget.for_machine(3, rows=10**7, cores=2, available_mb=20_000)
    assert (two_cores.parallel_workers, two_cores.work_mem_mb) == (0, 64)  # 3 builds already fill 2 cores
    assert MaintenanceBudget.for_machine(3, rows=10**7, cores=8, available_mb=20_000).parallel_workers == 1
    # Sort memory grows only to keep one merge pass (about 200 runs), within a quarter of the memory.
    assert MaintenanceBudget.for_machine(3, rows=10**9, cores=2, available_mb=20_000).work_mem_mb == 267
    assert MaintenanceBudget.for_machine(3, rows=10**10, cores=2, available_mb=20_000).work_mem_mb == 1666
    assert MaintenanceBudget.for_machine(1, rows=10**10, cores=2, available_mb=100).work_mem_mb == 64  # a floor
    assert "maintenance_work_mem = '64MB'" in two_cores.settings()[0]
