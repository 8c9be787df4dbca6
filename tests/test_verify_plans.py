"""The plan model and the two plan modes, on a real server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from verify_fixtures import seed_database

from chatbench.loadgen.result import SeedResult
from chatbench.provision import Server
from chatbench.provision.databases import create_database, drop_database
from chatbench.schema.contracts import CONTRACTS, IndexAccess
from chatbench.verify.catalog import IndexFact
from chatbench.verify.context import build_context, canonical_facts, connect
from chatbench.verify.plans import MODES, measure, serves


def _index(keys: tuple[str, ...]) -> IndexFact:
    columns = tuple(k.split()[0] for k in keys)
    return IndexFact("t", "ix", False, False, "btree", keys, columns, (), None, True, True, "", None)


def test_serves_needs_the_leading_column_and_the_order_in_either_direction() -> None:
    access = IndexAccess("conversations", "user_id", ("updated_at DESC", "id DESC"))
    assert serves(_index(("user_id", "updated_at DESC", "id DESC")), access)
    assert serves(_index(("user_id", "updated_at", "id")), access)  # a backward scan delivers it
    assert not serves(_index(("user_id", "updated_at", "id DESC")), access)  # mixed: no scan order fits
    assert not serves(_index(("user_id",)), access)
    assert not serves(_index(("updated_at DESC", "user_id", "id DESC")), access)
    ownership = IndexAccess("conversations", "id", alternatives=("user_id",))
    assert serves(_index(("id",)), ownership) and serves(_index(("user_id", "updated_at DESC", "id DESC")), ownership)


def test_every_canonical_read_query_has_a_contract() -> None:
    from chatbench.schema.queries import READ_QUERIES

    assert {q.name for q in READ_QUERIES} == set(CONTRACTS)
    assert [c.query for c in CONTRACTS.values() if c.contrast] == ["messages_offset"]


@pytest.fixture(scope="module")
def seeded(pg: Server) -> Iterator[tuple[Server, SeedResult]]:
    db = create_database(pg, "vplan")
    try:
        yield db, seed_database(db, "smoke")
    finally:
        drop_database(db)


def test_custom_plans_use_literals_and_generic_plans_use_parameters(seeded: tuple[Server, SeedResult]) -> None:
    db, result = seeded
    with connect(db, read_only=True) as conn:
        ctx = build_context(
            db,
            conn,
            params=result.params,
            params_source="seed",
            read_only=True,
            canonical=canonical_facts(db, read_only=False),
        )
        run = measure(ctx)
        mode_after = conn.execute("SHOW plan_cache_mode").fetchone()
        prepared = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert mode_after == ("auto",) and prepared == (0,), "the generic-plan check leaves the session as it found it"
    whale = {m.plan.mode: m.plan for m in run.measurements if m.scenario.key == "whale-latest"}
    assert set(whale) == set(MODES)

    def conditions(plan) -> str:  # type: ignore[no-untyped-def]
        return " ".join(n.condition or "" for n in plan.root.walk())

    assert "$1" in conditions(whale["generic"]) and "$1" not in conditions(whale["custom"])
    assert str(result.params.whales[0].conversation_id) in conditions(whale["custom"])
    assert whale["custom"].root.node_type == "Limit" and whale["custom"].root.actual_rows == 50
