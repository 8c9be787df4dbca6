"""Seeding real servers (smoke-sized): determinism, integrity, data shapes, cache, safety."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from servers import drop_database, make_database

from chatbench import loadgen
from chatbench.errors import UnsafeOperationError
from chatbench.loadgen import IntegrityError, SeedResult, TemplateStore
from chatbench.loadgen.pools import build_pools
from chatbench.provision import Server, provision


@pytest.fixture(scope="module")
def smoke_spec() -> loadgen.Spec:
    return loadgen.load_spec("smoke")


@pytest.fixture(scope="module")
def seeded(pg: Server, smoke_spec: loadgen.Spec) -> Iterator[tuple[Server, SeedResult]]:
    """One smoke seed (two workers) shared by the read-only tests; it also fills the template cache."""
    db = make_database(pg, "seed")
    try:
        yield db, loadgen.seed(db, smoke_spec, seed=0, workers=2, progress=False)
    finally:
        drop_database(db)


def _scalar(server: Server, query: str, params: tuple[object, ...] = ()) -> object:
    with psycopg.connect(server.conninfo()) as conn:
        row = conn.execute(query, params).fetchone()
    assert row is not None
    return row[0]


def test_seed_loads_what_the_spec_says(seeded: tuple[Server, SeedResult], smoke_spec: loadgen.Spec) -> None:
    db, result = seeded
    assert result.counts == {"users": 300, "conversations": 1200, "messages": smoke_spec.messages.count}
    assert _scalar(db, "SELECT count(*) FROM messages") == smoke_spec.messages.count
    assert result.order == "time" and result.created_at_correlation > 0.9
    report = loadgen.check_integrity(db, smoke_spec, expected_checksum=result.checksum)
    assert report.ok and report.checksum == result.checksum


def test_determinism_across_worker_counts(fresh_db: Server, seeded: tuple[Server, SeedResult],
                                          smoke_spec: loadgen.Spec) -> None:
    _, two_workers = seeded
    one_worker = loadgen.seed(fresh_db, smoke_spec, seed=0, workers=1, use_cache=False, progress=False)
    assert one_worker.from_cache is False
    assert one_worker.checksum == two_workers.checksum
    assert one_worker.params == two_workers.params


def test_other_seed_and_conversation_order_differ(fresh_db: Server, seeded: tuple[Server, SeedResult],
                                                  smoke_spec: loadgen.Spec) -> None:
    other = loadgen.seed(fresh_db, smoke_spec, seed=1, workers=2, use_cache=False, progress=False)
    assert other.checksum != seeded[1].checksum
    by_conversation = loadgen.seed(fresh_db, smoke_spec, seed=0, order="conversation", use_cache=False,
                                   progress=False)
    assert by_conversation.order == "conversation"
    assert by_conversation.checksum not in (other.checksum, seeded[1].checksum)
    # Contiguous conversations: physical created_at order is far from time order.
    assert by_conversation.created_at_correlation < seeded[1].created_at_correlation


def test_whales_present_largest_first(seeded: tuple[Server, SeedResult], smoke_spec: loadgen.Spec) -> None:
    db, result = seeded
    whales = result.params.whales
    assert [w.messages for w in whales] == list(smoke_spec.whale_sizes())
    for whale in whales:
        assert whale.messages >= 1000
        assert _scalar(db, "SELECT count(*) FROM messages WHERE conversation_id = %s", (whale.conversation_id,)) \
            == whale.messages
        assert _scalar(db, "SELECT user_id FROM conversations WHERE id = %s", (whale.conversation_id,)) \
            == whale.user_id
    heavy = result.params.heavy_users[0]
    assert heavy.conversations >= 100
    assert _scalar(db, "SELECT count(*) FROM conversations WHERE user_id = %s", (heavy.user_id,)) \
        == heavy.conversations
    assert all(1 <= u.conversations <= 2 for u in result.params.light_users)
    assert all(c.messages <= 5 for c in result.params.small_conversations)


def test_ties_present(seeded: tuple[Server, SeedResult]) -> None:
    db, result = seeded
    cursors = result.params.tie_cursors
    assert cursors and any(c.conversation_id == result.params.whales[0].conversation_id for c in cursors)
    for cursor in cursors:
        assert cursor.tie_size >= 2
        same = _scalar(db, "SELECT count(*) FROM messages WHERE conversation_id = %s AND created_at = %s",
                       (cursor.conversation_id, cursor.created_at))
        assert same == cursor.tie_size
        # The cursor is inside the block: messages of the block on both sides of it.
        older = _scalar(db, "SELECT count(*) FROM messages WHERE conversation_id = %s AND created_at = %s "
                            "AND id < %s", (cursor.conversation_id, cursor.created_at, cursor.id))
        assert isinstance(older, int) and 0 < older < cursor.tie_size


def test_non_ascii_round_trips(seeded: tuple[Server, SeedResult], smoke_spec: loadgen.Spec) -> None:
    db, _ = seeded
    pools = build_pools(smoke_spec.locales, smoke_spec.non_ascii_share, 0, smoke_spec.content)
    contents = set(pools.contents)
    with psycopg.connect(db.conninfo()) as conn:
        rows = conn.execute(
            "SELECT content FROM messages WHERE content ~ '[^\\x01-\\x7f]' ORDER BY id LIMIT 200").fetchall()
        assert len(rows) == 200
        assert all(r[0] in contents for r in rows)  # byte-exact round trip of the generated text
        assert any(any("\u3040" <= ch <= "\u9fff" for ch in r[0]) for r in rows)  # CJK
        assert any(any(ord(ch) >= 0x1F300 for ch in r[0]) for r in rows)  # emoji
        names = conn.execute("SELECT count(*) FROM users WHERE display_name ~ '[^\\x01-\\x7f]'").fetchone()
        assert names is not None and names[0] > 0
        titles = conn.execute(
            "SELECT count(*) FILTER (WHERE title IS NULL), count(*) FILTER (WHERE length(title) = 255) "
            "FROM conversations").fetchone()
        assert titles is not None and titles[0] > 0 and titles[1] > 0
        roles = dict(conn.execute("SELECT role, count(*) FROM messages GROUP BY role").fetchall())
        assert set(roles) == {"user", "assistant", "system", "tool"}


def test_application_can_insert_after_seed(fresh_db: Server, seeded: tuple[Server, SeedResult],
                                           smoke_spec: loadgen.Spec) -> None:
    loadgen.seed(fresh_db, smoke_spec, seed=0, progress=False)  # a template hit
    with psycopg.connect(fresh_db.conninfo()) as conn:
        row = conn.execute(
            "INSERT INTO messages (conversation_id, user_id, role, content) "
            "SELECT id, user_id, 'user', 'hello 👋' FROM conversations WHERE id = 1 RETURNING id, created_at"
        ).fetchone()
        assert row is not None and row[0] == smoke_spec.messages.count + 1
        updated = conn.execute("SELECT updated_at FROM conversations WHERE id = 1").fetchone()
        assert updated is not None and updated[0] == row[1]  # the trigger exists after the load


@pytest.mark.parametrize(
    ("tamper", "expected_check"),
    [
        ("DELETE FROM messages WHERE id = 17", "rows in messages"),
        ("UPDATE conversations SET updated_at = updated_at + interval '1 second' WHERE id = 5",
         "updated_at"),
        ("UPDATE messages SET content = content || '!' WHERE id = 100", "content checksum"),
        ("UPDATE messages SET created_at = created_at - interval '1 year' "
         "WHERE id = (SELECT max(id) FROM messages WHERE conversation_id = 1)", "order differs"),
    ],
)
def test_integrity_catches_tampering(fresh_db: Server, seeded: tuple[Server, SeedResult],
                                     smoke_spec: loadgen.Spec, tamper: str, expected_check: str) -> None:
    result = loadgen.seed(fresh_db, smoke_spec, seed=0, progress=False)
    assert result.from_cache  # cloned from the module's template: fast
    with psycopg.connect(fresh_db.conninfo(), autocommit=True) as conn:
        conn.execute("ALTER TABLE messages DISABLE TRIGGER USER")
        conn.execute(tamper)
    with pytest.raises(IntegrityError, match="integrity FAILED") as info:
        loadgen.check_integrity(fresh_db, smoke_spec, expected_checksum=result.checksum,
                                whales={w.conversation_id: w.messages for w in result.params.whales})
    report = loadgen.check_integrity(fresh_db, smoke_spec, expected_checksum=result.checksum,
                                     raise_on_failure=False)
    assert not report.ok
    assert any(expected_check in c.name for c in report.failures), (info.value, report.failures)


def test_cache_hit_and_invalidation(pg: Server, smoke_spec: loadgen.Spec) -> None:
    seed = 1000 + secrets.randbelow(10**6)  # a key no other test uses
    spec = loadgen.load_spec("smoke", overrides={"messages.count": 10_000, "conversations.count": 600})
    first, second, third = make_database(pg), make_database(pg), make_database(pg)
    try:
        miss = loadgen.seed(first, spec, seed=seed, progress=False)
        assert not miss.from_cache
        hit = loadgen.seed(second, spec, seed=seed, progress=False)
        assert hit.from_cache and hit.cache_key == miss.cache_key
        assert hit.checksum == miss.checksum and hit.params == miss.params
        assert hit.database == second.database
        loadgen.check_integrity(second, spec, expected_checksum=miss.checksum)
        changed = loadgen.load_spec("smoke", overrides={"messages.count": 10_001, "conversations.count": 600})
        other = loadgen.seed(third, changed, seed=seed, progress=False)
        assert not other.from_cache and other.cache_key != miss.cache_key
        bypass = loadgen.seed(third, spec, seed=seed, use_cache=False, progress=False)
        assert not bypass.from_cache and bypass.checksum == miss.checksum
    finally:
        for db in (first, second, third):
            drop_database(db)
        TemplateStore.drop(pg, miss.cache_key)
        TemplateStore.drop(pg, other.cache_key)


def test_crash_mid_seed_leaves_no_usable_template(pg: Server, fresh_db: Server, smoke_spec: loadgen.Spec,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    seed = 2000 + secrets.randbelow(10**6)
    key = loadgen.cache_key(fresh_db, smoke_spec, seed, "time")

    def crash(*_: object, **__: object) -> None:
        raise KeyboardInterrupt  # as if the user hit Ctrl-C while indexes were being built

    monkeypatch.setattr("chatbench.loadgen.ddl.run_parallel", crash)
    with pytest.raises(KeyboardInterrupt):
        loadgen.seed(fresh_db, smoke_spec, seed=seed, progress=False)
    monkeypatch.undo()
    with psycopg.connect(pg.admin_conninfo()) as conn:
        left = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (f"%{key}%",)).fetchall()
    assert left == []
    # A template published half-way (cloned, not yet renamed) is never served either.
    partial = f"{TemplateStore.name(key)}_pdeadbeef"
    with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(partial)))
        conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(partial)))
    try:
        result = loadgen.seed(fresh_db, smoke_spec, seed=seed, progress=False)
        assert not result.from_cache
        loadgen.check_integrity(fresh_db, smoke_spec)
    finally:
        with psycopg.connect(pg.admin_conninfo(), autocommit=True) as conn:
            conn.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(sql.Identifier(partial)))
            conn.execute(sql.SQL("DROP DATABASE {}").format(sql.Identifier(partial)))
        TemplateStore.drop(pg, key)


def test_refuses_database_it_did_not_create(fresh_db: Server, smoke_spec: loadgen.Spec) -> None:
    foreign = fresh_db.with_database(fresh_db.database, owns_database=False)
    with pytest.raises(UnsafeOperationError, match="refusing to seed"):
        loadgen.seed(foreign, smoke_spec, progress=False)
    assert _scalar(fresh_db, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == 0
    # With the user's permission it seeds the tables, but never swaps the database for a cached copy.
    allowed = replace(foreign, allow_destructive=True)
    result = loadgen.seed(allowed, smoke_spec, progress=False)
    assert not result.from_cache and "cache" not in result.extra
    loadgen.check_integrity(allowed, smoke_spec, result=result)


def test_local_snapshot_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The local backend's run database is cached as a whole-cluster snapshot; partial ones are ignored."""
    monkeypatch.setattr("chatbench.loadgen.cache.snapshot_root", lambda: tmp_path / "seeds")
    spec = loadgen.load_spec("smoke", overrides={"messages.count": 8_000, "conversations.count": 500})
    with provision("local") as server:
        key = loadgen.cache_key(server, spec, 0, "time")
        # A crash while publishing leaves only a .partial directory: never served.
        partial = tmp_path / "seeds" / f"{key}.partial-0000"
        (partial / "data").mkdir(parents=True)
        (partial / "meta.json").write_text("{}")
        miss = loadgen.seed(server, spec, progress=False)
        assert not miss.from_cache and miss.extra["cache"] == "snapshot"
        entry = tmp_path / "seeds" / key
        assert json.loads((entry / "meta.json").read_text())["checksum"] == miss.checksum
        assert partial.exists()  # not this run's: a save removes only its own partial (``clean`` the dead)
        # The run's own partial and owner record are gone: only the entry and the stranger remain.
        assert sorted(p.name for p in (tmp_path / "seeds").iterdir()) == sorted([key, partial.name])
        hit = loadgen.seed(server, spec, progress=False)
        assert hit.from_cache and hit.checksum == miss.checksum and hit.params == miss.params
        loadgen.check_integrity(server, spec, expected_checksum=miss.checksum)
